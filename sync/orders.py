"""SALESORDER-ORDER: sales orders submitted in Sales become Business Central sales orders.

An order is created on demand, or by the mapping's scheduled job when the connection setup says
"automatically create sales orders" (then every submitted order not yet sent to the back office is
picked). Each order is worked on by itself: a failure is an error on that order, naming the field,
kept with the other failed records and tried again at the next run.

Nothing is created twice: before creating, the order's coupling is looked up, then a Business
Central order carrying the Sales order number as Your Reference (one created by an attempt whose
coupling was lost), then a posted invoice with it. The order and its lines go in one deep insert, so
Business Central has either the whole order or none of it. API v2.0 orders have no Your Reference:
it is written through page 42 right after the insert, with the page's other values, so an attempt
whose answer was lost may have left an order without it; that one is recognised as a draft of the
same customer with the order's name as External Document No., no Your Reference and exactly the
lines this order would get.

The same job follows the coupled orders: changed -> the Sales order shows their progress (sync.order_progress:
date fulfilled, totals, status posts); their notes are kept both ways (sync.order_notes); posted in full (the
order is gone and a posted invoice names it) -> the Sales order becomes Invoiced; deleted by a user -> the Sales
order is set back to Active / Pending with its back-office submit date cleared, so it can be submitted again.

A submitted order is read-only in Sales, so what bcsync writes to it goes as Business Central writes
it: Active, the columns, Submitted again, three updates, recorded before the first so that the next
job completes what a stopped one began (sync.writeback).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
from dataclasses import dataclass
from typing import Any, Sequence

from .errors import RecordError, SyncError, stops_job
from .failures import failed_again
from .values import as_guid, same
from .model import BcTable, CrmTable, Direction, OptionSet, Side, UpdateConflictResolution
from .ports import Coupling, NewRow, Record, RowChange, WriteBack
from .process import JobContext
from .rules.currency import CurrencyRules
from .tables import (
    BC_CURRENCY,
    BC_ITEM,
    BC_RECORD_LINK,
    BC_RESOURCE,
    BC_SALES_INVOICE,
    BC_SALES_INVOICE_LINE,
    BC_SALES_ORDER,
    BC_SALES_ORDER_LINE,
    BC_SALES_QUOTE,
    BC_SALES_SETUP,
    BC_UNIT_OF_MEASURE,
    BC_VAT_POSTING_SETUP,
    CRM_ACCOUNT,
    CRM_CONTACT,
    CRM_CURRENCY,
    CRM_NOTE,
    CRM_POST,
    CRM_PRICE_LIST,
    CRM_PRODUCT,
    CRM_SALES_ORDER,
    CRM_SALES_ORDER_DETAIL,
    CRM_UNIT,
)
from .order_notes import OrderNotes
from .order_prices import net_prices
from .order_progress import RELEASED as BC_RELEASED, OrderProgress
from .order_push import (ARCHIVED, LINE_NUMBER, ORDER_NUMBER, PUSHED, REOPENED, UPDATING, OrderPush, paired,
                         update_conflict)
from .rules.units import ITEM_UNITS, RESOURCE_UNITS, unit_groups
from .writeback import WriteBacks

MAPPING = "SALESORDER-ORDER"
QUOTES = "SALESQUOTE-QUOTE"  # sync.quotes: a Sales quote coupled to the Business Central quote made from it
ACTIVE, SUBMITTED, INVOICED = 0, 1, 4
PENDING, INVOICED_STATUS = 2, 100003
CUSTOMER_TYPE = 3                 # account.customertypecode Customer
SALES_INVENTORY, SERVICES = 1, 3  # product.producttypecode
LINE_STEP = 10_000
TEXT_LINE = 100                   # a sales line's Description
REFERENCE = 35                    # Your Reference, External Document No.
ADDRESS = (("line1", "AddressLine1", 100), ("line2", "AddressLine2", 50), ("city", "City", 30),
           ("postalcode", "PostCode", 20), ("country", "Country", 10), ("stateorprovince", "State", 30))
CUSTOM_ADDRESS = "Custom Address"  # page 42's BillToOptions that makes its bill-to address editable
# the order's option attributes use the account's option mappings
# (order attribute, option mapping, order field, caption, the code field when the order takes a code, not an id)
SHIPPING_AGENT = ("shippingmethodcode", "SHIPPING AGENT", "shippingAgentCode", "Shipping Agent", "Code")
API_OPTIONS = (("paymenttermscode", "PAYMENT TERMS", "paymentTermsId", "Payment Terms", None),
               ("freighttermscode", "SHIPMENT METHOD", "shipmentMethodId", "Shipment Method", None))
OPTIONS = (*API_OPTIONS, SHIPPING_AGENT)
ORDER_FIELDS = ["name", "ordernumber", "quoteid", "description", "statecode", "customerid", "customeridtype",
                "transactioncurrencyid",
                "requestdeliveryby", "lastbackofficesubmit", "submitstatusdescription", "discountamount",
                "discountpercentage", "totallineitemamount", "totalamountlessfreight", "freightamount",
                *(o[0] for o in OPTIONS),
                *(f"{p}_{a}" for p in ("billto", "shipto") for a, _, _ in ADDRESS)]
DETAIL_FIELDS = ["salesorderid", "sequencenumber", "productid", "uomid", "isproductoverridden", "productdescription",
                 "description", "quantity", "priceperunit", "manualdiscountamount", "volumediscountamount"]
INCOMPLETE = "OrderIncomplete"   # created; what is set after creation is still missing (tried again)
RELEASED = "OrderReleased"       # created, then released before that could be set (shown, not tried again)
# what Business Central takes only once the order exists, by the Sales attribute it comes from: the
# invoice discount, computed from the lines, and the controls of page 42
SET_AFTER = {"ordernumber": "Your Reference", "discountamount": "order discount",
             "shippingmethodcode": "shipping agent", "discountpercentage": "payment discount %",
             "description": "work description", "billto_composite": "bill-to address", "quoteid": "quote number"}
ALL_SET_AFTER = list(SET_AFTER)
PAGE_42 = [attribute for attribute in SET_AFTER if attribute != "discountamount"]
LINE_PRINT = ["documentId", "sequence", "lineType", "lineObjectNumber", "quantity"]
# a submitted order is re-activated to be written; other closed orders are left alone
WRITE_BACKS = WriteBacks(CRM_SALES_ORDER, reopens=frozenset({SUBMITTED}))
PROGRESS = OrderProgress(WRITE_BACKS, MAPPING)
NOTES = OrderNotes(MAPPING)


def order_fields(job: JobContext) -> list[str]:
    """What is read of a Sales order; in two-way mode also the column of Business Central's integration solution
    that holds the Business Central order's number (a Sales organisation without the solution has none)."""
    return [*ORDER_FIELDS, ORDER_NUMBER] if job.setup.two_way_orders else ORDER_FIELDS


def order_label(order: Record) -> str:
    v = order.values
    return f"Sales order {v.get('ordernumber') or order.id} '{v.get('name') or ''}'"


def text_lines(text: str) -> list[str]:
    """A memo as sales line descriptions: each of its lines, cut into pieces of up to 100 characters."""
    pieces = []
    for line in text.replace("\r\n", "\n").split("\n"):
        line = line.strip()
        pieces += [line[i:i + TEXT_LINE] for i in range(0, len(line), TEXT_LINE)]
    return pieces


@dataclass
class OrderResult:
    """What became of one order: created, coupled (found already created), exists, incomplete (created,
    but its order discount or shipping agent is still to be set), or failed."""

    order_id: str
    order: str
    status: str
    bc_order: str = ""
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status in ("created", "coupled", "exists")

    def to_dict(self) -> dict:
        return {"order_id": self.order_id, "order": self.order, "status": self.status, "bc_order": self.bc_order,
                "message": self.message}


class SalesOrderProcess:
    """The job of SALESORDER-ORDER (a sync.process.JobProcess)."""

    # the tables the job reads, updates and creates rows in (what the connection check tries)
    reads = (CRM_SALES_ORDER_DETAIL, CRM_PRODUCT, CRM_CONTACT, CRM_ACCOUNT, CRM_CURRENCY, CRM_UNIT, BC_SALES_INVOICE,
             BC_SALES_INVOICE_LINE, BC_SALES_ORDER_LINE, BC_ITEM, BC_RESOURCE, BC_CURRENCY, BC_UNIT_OF_MEASURE,
             BC_SALES_SETUP, BC_VAT_POSTING_SETUP)
    writes = (CRM_SALES_ORDER,)
    creates = (BC_SALES_ORDER, BC_RECORD_LINK, CRM_POST, CRM_NOTE)

    def __init__(self, two_way: bool = False):
        if two_way:  # two-way mode also makes Sales orders with their lines, and changes Business Central lines
            self.writes = (*self.writes, BC_SALES_ORDER_LINE)
            self.creates = (*self.creates, CRM_SALES_ORDER, CRM_SALES_ORDER_DETAIL, CRM_PRICE_LIST, BC_SALES_ORDER_LINE)

    def has_work(self, job: JobContext) -> bool:
        if next(iter(job.couplings.coupled_ids(MAPPING, Side.BC, page_size=1)), []) or job.state.write_backs(MAPPING):
            return True
        if job.setup.two_way_orders:
            return bool(next(iter(job.bc.read_changed(
                BC_SALES_ORDER, ["number"], since=job.state.watermark(MAPPING, Direction.TO_CRM),
                where=job.mapping.bc_filter, limit=1)), [])) or bool(next(iter(job.crm.read_changed(
                    CRM_SALES_ORDER, ["name"], since=job.state.watermark(MAPPING, Direction.FROM_CRM),
                    where=job.mapping.crm_filter, not_modified_by=job.integration_user_id(), limit=1)), []))
        return job.setup.auto_create_sales_orders and bool(
            next(iter(job.crm.read_changed(CRM_SALES_ORDER, ["name"], since=None, where=self._unsent(), limit=1)),
                 []))

    @staticmethod
    def _unsent() -> str:
        # Business Central treats 1900-01-01 as "never submitted" too
        return f"statecode eq {SUBMITTED} and (lastbackofficesubmit eq null or lastbackofficesubmit le 1900-01-01)"

    def run(self, job: JobContext, deadline: dt.datetime | None):
        WRITE_BACKS.finish(job)  # first: an order a stopped job left Active is no longer submitted
        if job.setup.two_way_orders:
            return self._run_two_way(job, deadline)
        self.follow_coupled(job)
        self._settle_failures(job)
        if not job.setup.auto_create_sales_orders:
            job.note("automatic creation of sales orders is off: submitted orders are created on demand")
            return job.outcome()
        for page in job.crm.read_changed(CRM_SALES_ORDER, order_fields(job), since=None, where=self._unsent(),
                                         page_size=50):
            self._create(job, page)
            job.progress()
            if deadline is not None and job.clock.now() >= deadline:
                return job.outcome(complete=False)
        return job.outcome()

    def _run_two_way(self, job: JobContext, deadline: dt.datetime | None):
        """Business Central -> Sales: released orders pushed, coupled orders followed (their progress, notes,
        posting). Sales -> Business Central: submitted orders a user changed since the last job, and those that
        failed before, are created (sync.order_push has the other direction)."""
        if job.direction is Direction.TO_CRM:
            if not PUSH.run(job, deadline):
                return job.outcome(complete=False)
            self.follow_coupled(job)
            return job.outcome()
        self._settle_failures(job)
        retried = [i for i, f in job.failures.items() if not f.skipped]
        if retried:
            self._create(job, job.crm.read_ids(CRM_SALES_ORDER, order_fields(job), retried))
        since = None if job.full else job.state.watermark(MAPPING, Direction.FROM_CRM)
        for page in job.crm.read_changed(CRM_SALES_ORDER, order_fields(job), since=since,
                                         where=job.mapping.crm_filter, not_modified_by=job.integration_user_id(),
                                         page_size=50):
            self._create(job, [o for o in page if o.id not in retried])
            job.progress()
            if deadline is not None and job.clock.now() >= deadline:
                return job.outcome(complete=False)
        job.state.advance_watermark(MAPPING, Direction.FROM_CRM, job.cap)
        return job.outcome()

    def create(self, job: JobContext, order_ids: Sequence[str]) -> list[OrderResult]:
        """Create these orders now (bcsync orders create): each must be submitted."""
        WRITE_BACKS.finish(job)
        guids = {i: as_guid(i) for i in order_ids}
        orders = job.crm.read_ids(CRM_SALES_ORDER, order_fields(job),
                                  list(dict.fromkeys(g for g in guids.values() if g)))
        found = {o.id.lower() for o in orders}
        results = [OrderResult(i, f"Sales order {i}", "failed", message=(
            f"Sales order {i} does not exist in Sales." if guid else
            f"'{i}' is not a Sales order id (a GUID, the salesorderid)."))
            for i, guid in guids.items() if guid not in found]
        return results + self._create(job, orders)

    def _settle_failures(self, job: JobContext) -> None:
        """Errors of orders that wait no more are cleared (the order is gone, no longer submitted, or
        created meanwhile); an order created with a part missing gets that part again."""
        if not job.failures:
            return
        orders = {o.id.lower(): o for o in job.crm.read_ids(CRM_SALES_ORDER, order_fields(job), list(job.failures))}
        coupled = {i.lower() for i in job.couplings.get_many(MAPPING, Side.CRM, list(orders))}
        incomplete, settled = [], []
        for source_id, failure in list(job.failures.items()):
            order, is_coupled = orders.get(source_id.lower()), source_id.lower() in coupled
            if order is not None and is_coupled and failure.code == INCOMPLETE:
                incomplete.append(order)  # whatever Sales did with the order since: its BC order is still open
            elif order is not None and is_coupled and failure.code == RELEASED:
                continue  # shown until the order is invoiced or deleted
            elif order is None or order.values.get("statecode") != SUBMITTED or (
                    is_coupled and not job.setup.two_way_orders):  # two-way mode: a coupled order's update waits
                settled.append(source_id)
                del job.failures[source_id]
        if settled:
            job.errors.clear_many(MAPPING, Direction.FROM_CRM, settled)
        if incomplete:
            self._create(job, incomplete)

    # -- creating ---------------------------------------------------------------------------------

    def _create(self, job: JobContext, orders: list[Record]) -> list[OrderResult]:
        results: dict[str, OrderResult] = {}
        failed: dict[str, tuple[Record, SyncError]] = {}
        stamps: list[tuple[Record, str]] = []   # orders created, with their Business Central number
        lookups = None
        try:
            coupled = job.couplings.get_many(MAPPING, Side.CRM, [o.id for o in orders])
            bc_orders = {r.id.lower(): r for r in job.bc.read_ids(BC_SALES_ORDER, ["number", "status", "customerId"],
                                                                  [c.bc_id for c in coupled.values()])}
            todo, updates = [], []
            for order in orders:
                if order.id in coupled:
                    coupling, row = coupled[order.id], bc_orders.get(coupled[order.id].bc_id.lower())
                    if (coupling.bc_values or {}).get(ARCHIVED):  # two-way mode: posted, nothing more is sent
                        results[order.id] = OrderResult(order.id, order_label(order), "exists", message=(
                            f"{order_label(order)}: its Business Central order was posted (archived)."))
                        continue
                    if job.setup.two_way_orders and row is not None and order.values.get("statecode") == SUBMITTED:
                        if _changed_since(order, coupling):  # a user changed the submitted order since
                            updates.append((order, coupling, row))
                        else:
                            job.counts.unchanged += 1
                        continue
                    results[order.id] = self._existing(job, order, coupling, row, failed)
                elif order.values.get("statecode") != SUBMITTED:
                    state = {ACTIVE: "Active", 2: "Canceled", 3: "Fulfilled", INVOICED: "Invoiced"}.get(
                        order.values.get("statecode"), str(order.values.get("statecode")))
                    results[order.id] = OrderResult(order.id, order_label(order), "failed", message=(
                        f"{order_label(order)} is {state}, not Submitted: only submitted orders are created in "
                        f"Business Central."))
                else:
                    todo.append(order)
            lookups = Lookups(job, todo + [order for order, _, _ in updates])
            for order, coupling, row in updates:
                results[order.id] = self._update(job, order, coupling, row, lookups, failed)
            todo = self._found_again(job, todo, lookups, results, failed)
            for order in todo:
                try:
                    body = self._order_body(job, order, lookups)
                except RecordError as exc:
                    failed[order.id] = (order, exc)
                    continue
                results[order.id] = self._insert(job, order, body, failed, stamps)
        finally:
            # what was done stays recorded when a service gives out midway (the job is retried); the new
            # orders are stamped together, each write-back step for all of them at once
            numbered = lookups is not None and job.setup.two_way_orders
            self._stamp(job, stamps, lookups.line_numbers if numbered else None)
            self._record(job, [o for o in orders if o.id in results or o.id in failed], results, failed)
        return [results[o.id] for o in orders if o.id in results]

    def _existing(self, job: JobContext, order: Record, coupling: Coupling, row: Record | None,
                  failed: dict) -> OrderResult:
        if row is not None:
            number = row.values.get("number") or ""
            previous = job.failures.get(order.id)
            if previous is not None and previous.code == INCOMPLETE:
                return self._complete(job, order, row, previous.field.split(","), failed)
            job.counts.unchanged += 1
            self._stamp(job, [(order, number)])
            return OrderResult(order.id, order_label(order), "exists", number,
                               f"{order_label(order)} was already created as Business Central sales order {number}.")
        outcome = self._follow(job, [coupling]).get(coupling.bc_id, "")
        return OrderResult(order.id, order_label(order), "failed", message=f"{order_label(order)}: {outcome}")

    # -- updating (two-way mode) ------------------------------------------------------------------

    def _update(self, job: JobContext, order: Record, coupling: Coupling, row: Record, lookups: "Lookups",
                failed: dict) -> OrderResult:
        """A submitted order a user changed in Sales, onto its Business Central order, as Business Central's
        bidirectional mode does: reopened, the header written, the lines made the Sales lines (paired by Line No.:
        changed, added, and deleted when their Sales line is gone), the invoice discount applied again, released
        again (an order that was open stays open)."""
        label, number = order_label(order), row.values.get("number") or ""
        marks = coupling.bc_values or {}
        # a Business Central user changed the order since bcsync last pushed or wrote it (not bcsync's own
        # update, stopped midway): both sides changed, the mapping's update-conflict resolution decides
        if PUSHED in marks and row.etag != marks[PUSHED] and not marks.get(UPDATING) \
                and job.mapping.update_conflict is not UpdateConflictResolution.GET_FROM_CRM:
            conflict = update_conflict(job, f"Business Central sales order {number}", order.id)
            if conflict is not None:
                failed[order.id] = (order, conflict)
                return OrderResult(order.id, label, "failed", number, conflict.message)
            # Business Central wins: the Sales change is dropped, the order's next push writes over it
            job.couplings.save_many([dataclasses.replace(coupling, crm_etag=order.etag, synced_at=job.clock.now(),
                                                         job_id=job.job_id)])
            job.counts.skipped += 1
            return OrderResult(order.id, label, "exists", number, f"{label}: Business Central sales order {number} "
                               f"was changed too and wins (the mapping's update-conflict resolution).")
        try:
            body = self._order_body(job, order, lookups)
            inserts, changes, deletes, numbers = self._line_changes(job, order, row, body.pop("salesOrderLines"),
                                                                    lookups)
        except RecordError as exc:
            failed[order.id] = (order, exc)
            return OrderResult(order.id, label, "failed", number, exc.message)
        same_customer_kept(body, row)
        discount = self.set_after_values(job, order, ["discountamount"]).get("discountamount",
                                                                               {"discountAmount": 0})

        def step(what: str, errors: Sequence[SyncError | None]) -> None:
            error = next((e for e in errors if e is not None), None)
            if error is not None:
                failure = RecordError(f"{label}: Business Central sales order {number} could not be updated "
                                      f"({what}): {error.message}", field=getattr(error, "field", "") or "",
                                      code=error.code)
                failure.transient = error.transient
                raise failure from error

        # one a user reopened stays open for them; one bcsync reopened before a step failed is released again: the
        # coupling remembers it (the order's error may go, if the Sales order leaves Submitted meanwhile)
        released = row.values.get("status") == BC_RELEASED or bool((coupling.bc_values or {}).get(REOPENED))
        try:
            # what the update writes is bcsync's own: a retry after a failed step takes it for no user's change
            coupling = dataclasses.replace(coupling, bc_values={
                **(coupling.bc_values or {}), UPDATING: True,
                **({REOPENED: True} if row.values.get("status") == BC_RELEASED else {})})
            job.couplings.save_many([coupling])
            if row.values.get("status") == BC_RELEASED:
                step("reopen", job.bc.run_action(BC_SALES_ORDER, [row], "Reopen"))
            step("header", [r.error for r in job.bc.update(BC_SALES_ORDER, [RowChange(row.id, None, body)],
                                                           ["number"])])
            step("lines deleted", job.bc.delete_rows(BC_SALES_ORDER_LINE, deletes))
            step("lines changed", [r.error for r in job.bc.update(BC_SALES_ORDER_LINE, changes, ["sequence"])])
            step("lines added", [r.error for r in job.bc.insert(BC_SALES_ORDER_LINE, inserts, ["sequence"])])
            step("invoice discount", [r.error for r in job.bc.update(
                BC_SALES_ORDER, [RowChange(row.id, None, discount)], ["number"])])
            if released:
                step("release", job.bc.run_action(BC_SALES_ORDER, [row], "Release"))
        except RecordError as exc:
            failed[order.id] = (order, exc)
            if stops_job(exc.__cause__):  # a service giving out; a row changed meanwhile fails this order only
                raise
            return OrderResult(order.id, label, "failed", number, exc.message)
        # what bcsync wrote is not pushed back to Sales (sync.order_push)
        [now] = job.bc.read_ids(BC_SALES_ORDER, ["number"], [row.id]) or [row]
        kept = {k: v for k, v in (coupling.bc_values or {}).items() if k not in (REOPENED, UPDATING)}
        job.couplings.save_many([dataclasses.replace(coupling, bc_values={**kept, PUSHED: now.etag},
                                                     crm_etag=order.etag, synced_at=job.clock.now(),
                                                     job_id=job.job_id)])
        job.counts.modified += 1
        today = job.clock.now().date().isoformat()
        self._write_stamps(job, [WriteBack(order.id, {"lastbackofficesubmit": today})], numbers)
        return OrderResult(order.id, label, "exists", number,
                           f"{label} updated Business Central sales order {number}.")

    @staticmethod
    def _line_changes(job: JobContext, order: Record, row: Record, lines: list[dict], lookups: "Lookups") \
            -> tuple[list[NewRow], list[RowChange], list[str], dict[str, int]]:
        """What makes the Business Central order's item and resource lines the Sales order's: lines to add,
        changes, lines to delete (their Sales line is gone, or now sells something else), and the Line No. each
        Sales line added gets. Comment lines (long descriptions) and the freight line stay as they are."""
        existing = {line.values.get("sequence"): line for line in job.bc.read_matching(
            BC_SALES_ORDER_LINE, [*LINE_PRINT, "unitPrice", "discountAmount", "unitOfMeasureCode", "description"],
            "documentId", [row.id])}
        by_position = {line["sequence"]: line for line in lines}
        inserts, changes, numbers, kept = [], [], {}, set()
        last = max(existing, default=0)
        details = lookups.details.get(order.id.lower(), [])
        # a Sales line with no Line No. pairs with a line of the same item or resource that no Sales line numbers
        numbered = {d.values.get(LINE_NUMBER) for d in details}
        by_number, unnumbered = dict(existing), [line for n, line in sorted(existing.items()) if n not in numbered
                                                 and line.values.get("lineType") in ("Item", "Resource")]
        for detail in details:
            line = dict(by_position[lookups.line_numbers[detail.id.lower()]])
            del line["sequence"]
            sells = (line["lineType"], line["lineObjectNumber"])
            current = paired(by_number, unnumbered, detail.values.get(LINE_NUMBER), lambda x: _sells(x) == sells)
            if current is not None and _sells(current) == sells:
                kept.add(current.values.get("sequence"))
                if detail.values.get(LINE_NUMBER) != current.values.get("sequence"):  # paired by what it sells
                    numbers[detail.id.lower()] = current.values.get("sequence")
                changed = {k: v for k, v in line.items() if k not in ("lineType", "lineObjectNumber")
                           and not same(current.values.get(k), v)}
                if changed:
                    changes.append(RowChange(current.id, None, changed))
                continue
            last += LINE_STEP
            inserts.append(NewRow({"documentId": row.id, "sequence": last, **line}))
            numbers[detail.id.lower()] = last
        deletes = [line.id for n, line in existing.items()
                   if n not in kept and line.values.get("lineType") in ("Item", "Resource")]
        return inserts, changes, deletes, numbers

    def _complete(self, job: JobContext, order: Record, row: Record, attributes: list[str],
                  failed: dict) -> OrderResult:
        """Set what an earlier attempt could not set after creating the order, while the order is open."""
        label, number = order_label(order), row.values.get("number") or ""
        values = self.set_after_values(job, order, attributes)
        if values and row.values.get("status") != "Draft":  # API v2.0 "Draft" is BC's Open; released takes none
            failed[order.id] = (order, RecordError(
                f"{label} was created as Business Central sales order {number}, which was released before its "
                f"{self._captions(values)} could be set; set it there if it still applies.",
                field=",".join(values), code=RELEASED))
            return OrderResult(order.id, label, "incomplete", number)
        if values and not self._set_after(job, order, row, values, failed):
            return OrderResult(order.id, label, "incomplete", number)
        job.counts.modified += 1
        self._describe(job, [(order, f"Business Central sales order {number}")])
        what = f"its {self._captions(values)} is now set" if values else "nothing was left to set"
        return OrderResult(order.id, label, "exists", number,
                           f"{label} was already created as Business Central sales order {number}; {what}.")

    def _found_again(self, job: JobContext, orders: list[Record], lookups: "Lookups", results: dict,
                     failed: dict) -> list[Record]:
        """Orders Business Central already has: coupled, not created, and given what is set only after
        creation (the attempt that created them may have stopped short). A posted one is an error."""
        numbers = {(o.values.get("ordernumber") or "")[:REFERENCE]: o for o in orders if o.values.get("ordernumber")}
        if not numbers:
            return orders
        fields = ["number", "status", "customerId", "externalDocumentNumber", "yourReference"]
        found = self._referenced(job, BC_SALES_ORDER, fields, "yourReference", numbers, "")
        referenced = {order.id for order, _ in found}
        found += self.lost_answers(job, [o for o in orders if o.id not in referenced], lookups,
                                    BC_SALES_ORDER, BC_SALES_ORDER_LINE, fields, "yourReference", "")
        coupled: list[tuple[Record, str]] = []
        for order, row in found:
            if order.id in results:
                continue
            job.couplings.save_many([Coupling(MAPPING, row.id, order.id, bc_etag=row.etag, synced_at=job.clock.now(),
                                              job_id=job.job_id)])
            job.counts.coupled += 1
            coupled.append((order, row.values.get("number")))
            complete = row.values.get("status") != "Draft" or self._set_after(
                job, order, row, self.set_after_values(job, order, ALL_SET_AFTER), failed)
            results[order.id] = OrderResult(order.id, order_label(order), "coupled" if complete else "incomplete",
                                            row.values.get("number") or "",
                                            f"{order_label(order)} was found as Business Central sales order "
                                            f"{row.values.get('number')} and coupled to it.")
        self._stamp(job, coupled)
        left = [o for o in orders if o.id not in results]
        fields = ["number", "customerId", "externalDocumentNumber", "customerPurchaseOrderReference"]
        posted = self._referenced(job, BC_SALES_INVOICE, fields, "customerPurchaseOrderReference", numbers,
                                  "status ne 'Draft'")
        referenced = {order.id for order, _ in posted}
        posted += self.lost_answers(job, [o for o in left if o.id not in referenced], lookups,
                                     BC_SALES_INVOICE, BC_SALES_INVOICE_LINE, fields, "customerPurchaseOrderReference",
                                     "status ne 'Draft' and orderNumber ne ''")
        for order, row in posted:
            if order.id in results or order.id in failed:
                continue
            why = (f"has Your Reference {order.values.get('ordernumber')}"
                   if row.values.get("customerPurchaseOrderReference") else
                   "has its name as External Document No., its customer and its lines, and no Your Reference (an "
                   "attempt created it, but its answer was lost)")
            failed[order.id] = (order, RecordError(
                f"{order_label(order)} was already created and posted in Business Central: posted sales invoice "
                f"{row.values.get('number')} {why}.", field="ordernumber", code="AlreadyPosted"))
        return [o for o in left if o.id not in failed]

    @staticmethod
    def _referenced(job: JobContext, table: BcTable, fields: list[str], reference: str, numbers: dict[str, Record],
                    where: str) -> list[tuple[Record, Record]]:
        """The orders or invoices whose Your Reference is one of the order numbers."""
        return [(numbers[row.values[reference]], row) for row in job.bc.read_matching(
            table, fields, reference, list(numbers), where=where) if row.values.get(reference) in numbers]

    @staticmethod
    def lost_answers(job: JobContext, orders: list[Record], lookups: "Lookups", table: BcTable, line_table: BcTable,
                      fields: list[str], reference: str, where: str) -> list[tuple[Record, Record]]:
        """Orders (or their posted invoices, or quotes) an attempt created without hearing back, so before it could
        write Your Reference: those of the same customer whose External Document No. is the order's name, with no
        Your Reference and, line for line, the lines this order would get. One a user made by hand differs."""
        by_name: dict[str, list[Record]] = {}
        for order in orders:
            if order.values.get("name"):  # External Document No. is a Code field: upper case
                by_name.setdefault(order.values["name"][:REFERENCE].upper(), []).append(order)
        if not by_name:
            return []
        rows = [row for row in job.bc.read_matching(table, fields, "externalDocumentNumber", list(by_name), where=where)
                if not row.values.get(reference)]
        if not rows:
            return []
        lines: dict[str, list[dict]] = {}
        for line in job.bc.read_matching(line_table, LINE_PRINT, "documentId", [r.id for r in rows]):
            lines.setdefault(str(line.values["documentId"]).lower(), []).append(line.values)
        found, taken = [], set()
        for row in rows:
            for order in by_name.get((row.values.get("externalDocumentNumber") or "").upper(), []):
                if order.id in taken:
                    continue
                try:
                    same = (str(row.values.get("customerId")).lower() == lookups.customer(order).lower()
                            and _line_print(lines.get(row.id.lower(), [])) == _line_print(lookups.lines(order)))
                except RecordError:
                    continue  # this order cannot be created as it stands: it fails below with the reason
                if same:
                    taken.add(order.id)
                    found.append((order, row))
                    break
        return found

    def _order_body(self, job: JobContext, order: Record, lookups: "Lookups") -> dict:
        """The deep insert of the order with its lines, and the page 42 values written right after it."""
        v = order.values
        body = lookups.header(order)
        if v.get("requestdeliveryby"):
            body["requestedDeliveryDate"] = str(v["requestdeliveryby"])[:10]
        for values in self.set_after_values(job, order, PAGE_42).values():
            body.update(values)
        body["salesOrderLines"] = net_prices(job, body["customerId"], lookups.lines(order))
        return body

    @staticmethod
    def invoice_discount(v: dict) -> float:
        """The order discount as Business Central's invoice discount: line total less the total before freight."""
        amount, percent = float(v.get("discountamount") or 0), float(v.get("discountpercentage") or 0)
        if not amount and not percent:
            return 0.0
        lines = float(v.get("totallineitemamount") or 0)
        before_freight = v.get("totalamountlessfreight")
        if before_freight is None:
            before_freight = lines - round(lines * percent / 100, 2) - amount
        return round(lines - float(before_freight), 2)

    def _insert(self, job: JobContext, order: Record, body: dict, failed: dict,
                stamps: list[tuple[Record, str]]) -> OrderResult:
        [result] = job.bc.insert(BC_SALES_ORDER, [NewRow(body)], ["number"])
        if result.record is None:
            failed[order.id] = (order, result.error)
            return OrderResult(order.id, order_label(order), "failed", message=result.error.message)
        created = result.record
        job.couplings.save_many([Coupling(MAPPING, created.id, order.id, bc_etag=created.etag, crm_etag=order.etag,
                                          synced_at=job.clock.now(), job_id=job.job_id)])
        job.counts.inserted += 1
        number = created.values.get("number") or ""
        stamps.append((order, number))
        # the order stands; a page write after it that failed is tried once more, then next run
        # the insert's own page write failed: all of SET_AFTER again, else just the discount
        later = self.set_after_values(job, order, ALL_SET_AFTER if result.error is not None
                                       else ["discountamount"])
        status = "created" if self._set_after(job, order, created, later, failed) else "incomplete"
        if job.setup.two_way_orders:  # its version now is bcsync's own: a later one is a Business Central user's
            [now] = job.bc.read_ids(BC_SALES_ORDER, ["number"], [created.id]) or [created]
            job.couplings.save_many([Coupling(MAPPING, created.id, order.id, bc_etag=created.etag,
                                              crm_etag=order.etag, bc_values={PUSHED: now.etag},
                                              synced_at=job.clock.now(), job_id=job.job_id)])
        return OrderResult(order.id, order_label(order), status, number,
                           f"{order_label(order)} was created as Business Central sales order {number}.")

    @staticmethod
    def _captions(values: dict) -> str:
        return " and ".join(SET_AFTER[attribute] for attribute in values)

    @staticmethod
    def set_after_values(job: JobContext, order: Record, attributes: list[str]) -> dict[str, dict]:
        """What the order takes once it exists, for those of the Sales attributes that have a value: Your
        Reference = the order number, the order discount as Business Central's invoice discount, and as
        Business Central does, the shipping agent, Payment Discount % = the order discount %, Work
        Description = the order's description; the bill-to address, as a custom address; and Quote No. = the
        Business Central quote of the Sales quote the order was made from."""
        v, values = order.values, {}
        if "ordernumber" in attributes and v.get("ordernumber"):
            values["ordernumber"] = {"yourReference": v["ordernumber"][:REFERENCE]}
        discount = SalesOrderProcess.invoice_discount(v)
        if "discountamount" in attributes and discount:
            values["discountamount"] = {"discountAmount": discount}
        if "shippingmethodcode" in attributes:
            code = order_option(job, order, SHIPPING_AGENT)
            if code:
                values["shippingmethodcode"] = {"shippingAgentCode": code}
        if "discountpercentage" in attributes and v.get("discountpercentage"):
            values["discountpercentage"] = {"paymentDiscountPercent": float(v["discountpercentage"])}
        if "description" in attributes and (v.get("description") or "").strip():
            values["description"] = {"workDescription": v["description"]}
        if "quoteid" in attributes and v.get("quoteid"):  # made from a won quote coupled to a Business Central one
            number = coupled_quote_number(job, v["quoteid"])
            if number:
                values["quoteid"] = {"quoteNumber": number}
        # copied only when Sales has one (names are not), else the customer's stays
        if "billto_composite" in attributes and any(v.get(f"billto_{attr}") for attr, _, _ in ADDRESS):
            values["billto_composite"] = {"billToOptions": CUSTOM_ADDRESS, **{
                f"billTo{suffix}": (v.get(f"billto_{attr}") or "")[:length] for attr, suffix, length in ADDRESS}}
        return values

    def _set_after(self, job: JobContext, order: Record, row: Record, values: dict[str, dict], failed: dict) -> bool:
        """Write what the order takes only once it exists; False, and an error on the order naming what
        is still missing, when it fails. A service giving out stops the job once that is recorded."""
        if not values:
            return True
        change = RowChange(row.id, row.etag, {k: x for group in values.values() for k, x in group.items()})
        [result] = job.bc.update(BC_SALES_ORDER, [change], ["number"])
        if result.error is None:
            return True
        if result.record is not None:  # the API write went through; the page write after it did not
            values = {attribute: group for attribute, group in values.items() if attribute != "discountamount"}
        number = row.values.get("number") or ""
        error = RecordError(
            f"{order_label(order)} was created as Business Central sales order {number}, but its "
            f"{self._captions(values)} could not be set: {result.error.message} It is set again at the next run.",
            field=",".join(values), code=INCOMPLETE)
        error.transient = result.error.transient
        failed[order.id] = (order, error)
        if stops_job(result.error):
            raise result.error
        return False

    def _stamp(self, job: JobContext, orders: list[tuple[Record, str]],
               line_numbers: dict[str, int] | None = None) -> None:
        """Sent to the back office: today's date, and the Business Central order number for Sales users. In
        two-way mode each order product of a new order gets the Line No. of its line (`line_numbers`, by order
        product id), which pairs them from then on (SOLINE-ORDERDETAIL)."""
        today = job.clock.now().date().isoformat()
        # two-way mode: the number in the Business Central integration solution's column too
        number_column = ORDER_NUMBER if job.setup.two_way_orders else None
        self._write_stamps(job, [WriteBack(o.id, {"lastbackofficesubmit": today,
                                                  "submitstatusdescription": f"Business Central sales order {number}",
                                                  **({number_column: number} if number_column else {})})
                                 for o, number in orders
                                 if str(o.values.get("lastbackofficesubmit") or "")[:10] != today
                                 or (number_column and o.values.get(number_column) != number)], line_numbers)

    def _describe(self, job: JobContext, orders: list[tuple[Record, str]]) -> None:
        """The Submit Status Description Sales users read, where it differs."""
        self._write_stamps(job, [WriteBack(o.id, {"submitstatusdescription": text[:2000]})
                                 for o, text in orders if o.values.get("submitstatusdescription") != text[:2000]])

    @staticmethod
    def _write_stamps(job: JobContext, write_backs: list[WriteBack],
                      line_numbers: dict[str, int] | None = None) -> None:
        if not line_numbers:
            failed = WRITE_BACKS.write(job, write_backs)
        else:
            details: dict[str, list[RowChange]] = {}  # the order products to number, by order
            for d in job.crm.read_matching(CRM_SALES_ORDER_DETAIL, ["salesorderid"], "salesorderid",
                                           [w.row_id for w in write_backs]):
                if d.id.lower() in line_numbers:
                    details.setdefault(str(d.values.get("salesorderid")).lower(), []).append(
                        RowChange(d.id, None, {LINE_NUMBER: line_numbers[d.id.lower()]}))

            def number_lines(ids: list[str]) -> dict[str, str]:
                changes = [(i, c) for i in ids for c in details.get(i.lower(), [])]
                results = job.crm.update(CRM_SALES_ORDER_DETAIL, [c for _, c in changes], [LINE_NUMBER])
                return {i: f"its lines' Business Central line numbers could not be set: {r.error.message}"
                        for (i, _), r in zip(changes, results) if r.error is not None}

            failed = WRITE_BACKS.complete(job, WRITE_BACKS.begin(job, write_backs, keep=frozenset(details)),
                                          while_active=number_lines)
        for order_id, reason in failed.items():
            job.note(f"sales order {order_id}: its back-office submit status could not be set ({reason}); it is set "
                     f"by the next run")

    def _record(self, job: JobContext, orders: list[Record], results: dict, failed: dict) -> None:
        now = job.clock.now()
        entries, shown = [], []
        for order, error in failed.values():
            label = order_label(order)
            message = error.message if error.message.startswith(label) else f"{label}: {error.message}"
            prior = results.get(order.id)
            results[order.id] = OrderResult(order.id, label, "incomplete" if prior and error.code in (
                INCOMPLETE, RELEASED) else "failed", prior.bc_order if prior else "", message)
            job.counts.failed += 1
            entries.append(failed_again(job.failures.get(order.id), error, mapping=MAPPING, direction=Direction.FROM_CRM,
                                        source_id=order.id, record=label, message=message, now=now, job_id=job.job_id,
                                        source_etag=order.etag, skippable=False))
            shown.append((order, message))
        if entries:
            job.errors.save_many(entries)
            for entry in entries:
                job.failures[entry.source_id] = entry
        done = [o.id for o in orders if o.id not in failed and o.id in job.failures]
        if done:
            job.errors.clear_many(MAPPING, Direction.FROM_CRM, done)
            for i in done:
                del job.failures[i]
        # the reason shows on the order in Sales too, where the salesperson looks
        self._describe(job, shown)

    # -- following coupled orders -----------------------------------------------------------------

    def follow_coupled(self, job: JobContext) -> None:
        coupled = False
        for ids in job.couplings.coupled_ids(MAPPING, Side.BC, page_size=100):
            coupled = True
            # an archived order (two-way mode) was posted: nothing more comes of it
            couplings = {i: c for i, c in job.couplings.get_many(MAPPING, Side.BC, ids).items()
                         if not (c.bc_values or {}).get(ARCHIVED)}
            rows = job.bc.read_ids(BC_SALES_ORDER, ["number"], list(couplings))
            PROGRESS.follow(job, rows, couplings, write_values=not job.setup.two_way_orders)
            present = {r.id.lower() for r in rows}
            NOTES.to_business_central(job, [c for i, c in couplings.items() if i.lower() in present])
            gone = [c for i, c in couplings.items() if i.lower() not in present]
            if gone:
                self._follow(job, gone)
        if coupled:  # Business Central's notes of coupled orders only
            NOTES.to_sales(job)

    def _follow(self, job: JobContext, couplings: list[Coupling]) -> dict[str, str]:
        """Orders gone from Business Central: posted (an invoice names the order) or deleted."""
        invoices = job.bc.read_matching(BC_SALES_INVOICE, ["number", "orderId", "orderNumber", "customerId",
                                                           "customerPurchaseOrderReference"], "orderId",
                                        [c.bc_id for c in couplings])
        posted = {str(r.values.get("orderId")).lower(): r for r in invoices}
        said: dict[str, str] = {}
        write_backs, archived = [], []
        for c in couplings:
            invoice = posted.get(c.bc_id.lower())
            if invoice is not None:
                write_backs.append(WriteBack(c.crm_id, {}, INVOICED, INVOICED_STATUS))
                if job.setup.two_way_orders:  # Business Central's "Archived Sales Order": the pair is kept, ignored
                    archived.append(dataclasses.replace(c, bc_values={**(c.bc_values or {}), ARCHIVED: True},
                                                        synced_at=job.clock.now(), job_id=job.job_id))
                said[c.bc_id] = (f"the Business Central order {invoice.values.get('orderNumber')} was posted as "
                                 f"invoice {invoice.values.get('number')}; the Sales order is Invoiced")
                job.counts.modified += 1
            else:
                write_backs.append(WriteBack(c.crm_id, {"lastbackofficesubmit": None, "submitstatusdescription": None},
                                             ACTIVE, PENDING))
                said[c.bc_id] = ("its Business Central order was deleted, so the Sales order was set back to Active; "
                                 "submit it again to create a new one")
                job.counts.uncoupled += 1
            job.note(f"sales order {c.crm_id}: {said[c.bc_id]}")
        # recorded, the write-backs are what remembers the orders: a job that stops after this completes them
        # rather than deciding anew (by then a user may have submitted the order again)
        begun = WRITE_BACKS.begin(job, write_backs)
        PROGRESS.posted(job, couplings, posted)
        job.couplings.save_many(archived)
        kept = {c.bc_id for c in archived}
        job.couplings.delete_many([c for c in couplings if c.bc_id not in kept])
        for order_id, reason in WRITE_BACKS.complete(job, begun).items():
            job.note(f"sales order {order_id} could not be updated ({reason}); completed by the next run")
        return said


def coupled_quote_number(job: JobContext, quote_id: str) -> str | None:
    """The number of the Business Central quote a Sales quote is coupled to; None when it is not (or it is gone)."""
    coupling = job.couplings.get_many(QUOTES, Side.CRM, [quote_id]).get(quote_id)
    rows = job.bc.read_ids(BC_SALES_QUOTE, ["number"], [coupling.bc_id]) if coupling else []
    return rows[0].values.get("number") if rows else None


def same_customer_kept(body: dict, row: Record) -> None:
    """A header written over a Business Central order's or quote's (`row`, read with its customerId) names the
    customer only when it changes: validating the same customer again would reset the document's addresses."""
    if str(body.get("customerId")).lower() == str(row.values.get("customerId")).lower():
        del body["customerId"]


def _changed_since(order: Record, coupling: Coupling) -> bool:
    """Whether a user changed the order since bcsync last took it: its version is not the one the coupling keeps
    (orders are read without bcsync's own changes, so the version read is a user's; a full run reads them all)."""
    return coupling.crm_etag is None or order.etag != coupling.crm_etag


def _sells(line: Record) -> tuple:
    """What a Business Central line sells: its type and number."""
    return line.values.get("lineType"), line.values.get("lineObjectNumber")


def _line_print(lines: Sequence[dict]) -> list[tuple]:
    """What tells one order's lines from another's: per line, in order, its type, number and quantity."""
    ordered = sorted(lines, key=lambda line: line.get("sequence") or 0)
    return [(line.get("sequence"), line.get("lineType"), line.get("lineObjectNumber") or "",
             round(float(line.get("quantity") or 0), 5)) for line in ordered]


def option_codes(job: JobContext, option: tuple) -> tuple[dict[int, str], dict[int, str]]:
    """The order option's values -> the coupled Business Central ids (or codes), and their labels;
    read once per job. The order's option set is matched to the account's by label."""
    attribute, mapping_name, _, _, code_field = option
    cache = job.cache.setdefault("options", {})
    if attribute not in cache:
        mapping = job.catalog[mapping_name]
        order_labels = job.crm.option_labels(OptionSet(CRM_SALES_ORDER, attribute))
        account_values = {label.casefold(): v for v, label in job.crm.option_labels(mapping.option_set).items()}
        values = {v: account_values.get(label.casefold()) for v, label in order_labels.items()}
        coupled = job.couplings.get_many(mapping_name, Side.CRM, [str(v) for v in values.values() if v is not None])
        found = {v: coupled[str(a)].bc_id for v, a in values.items() if str(a) in coupled}
        if code_field:
            codes = {r.id.lower(): r.values.get(code_field)
                     for r in job.bc.read_ids(mapping.bc, [code_field], sorted(set(found.values())))}
            found = {v: codes[i.lower()] for v, i in found.items() if i.lower() in codes}
        cache[attribute] = (found, order_labels)
    return cache[attribute]


def order_option(job: JobContext, order: Record, option: tuple) -> str | None:
    """The Business Central code (its id, or its code field) coupled to the account option with the order
    option's label; None (the customer's default stays) when the order has none or it is not coupled."""
    attribute, mapping_name, _, caption, _ = option
    value = order.values.get(attribute)
    if value is None:
        return None
    bc_ids, labels = option_codes(job, option)
    if int(value) not in bc_ids:
        job.note(f"{caption} '{labels.get(int(value), value)}' of an order is not coupled (table mapping "
                 f"{mapping_name}): the customer's {caption} is kept")
        return None
    return bc_ids[int(value)]


@dataclass(frozen=True)
class DocumentKind:
    """A Sales document that becomes a Business Central one: its lines' table, the lines' column naming the
    document, and what error messages call it."""

    details: CrmTable
    parent: str
    noun: str


ORDER = DocumentKind(CRM_SALES_ORDER_DETAIL, "salesorderid", "order")


class Lookups:
    """Everything the orders (or quotes) of one page refer to, read in bulk: accounts, currencies, products,
    units and their couplings, Business Central's write-in setup."""

    def __init__(self, job: JobContext, orders: list[Record], kind: DocumentKind = ORDER):
        self.job = job
        self.kind = kind
        orders = list(orders)
        self.details: dict[str, list[Record]] = {}
        self.line_numbers: dict[str, int] = {}  # order product id -> the Line No. of its Business Central line
        if not orders:
            return
        fields = [kind.parent, *DETAIL_FIELDS[1:]]
        if kind is ORDER and job.setup.two_way_orders:  # the pairing of lines exists on order products only
            fields.append(LINE_NUMBER)
        for d in job.crm.read_matching(kind.details, fields, kind.parent, [o.id for o in orders]):
            self.details.setdefault(str(d.values.get(kind.parent)).lower(), []).append(d)
        details = [d for ds in self.details.values() for d in ds]
        self.accounts = self._accounts(orders)
        self.products = {p.id.lower(): p for p in job.crm.read_ids(
            CRM_PRODUCT, ["name", "productnumber", "statecode", "producttypecode"],
            sorted({d.values["productid"] for d in details if d.values.get("productid")}))}
        self.objects = self._coupled_objects(list(self.products.values()), orders)
        self.units = self._units(sorted({d.values["uomid"] for d in details if d.values.get("uomid")}))
        self.currencies = self._currencies(orders)
        # read up front, so that a service giving out stops the job before any order is created
        for option in OPTIONS:
            if any(o.values.get(option[0]) is not None for o in orders):
                option_codes(job, option)
        self._setup()
        with contextlib.suppress(RecordError):  # no LCY: an error on each order, raised there
            CurrencyRules.lcy_code(job)

    def header(self, document: Record) -> dict[str, Any]:
        """What an order's or a quote's Business Central header takes alike: the customer, External Document No.
        = its name, the currency, the ship-to address (copied only when Sales has one, names not: else the
        customer's stays), payment terms and shipment method through their couplings."""
        v = document.values
        body: dict[str, Any] = {
            "customerId": self.customer(document),
            "externalDocumentNumber": (v.get("name") or "")[:REFERENCE],
            "currencyCode": self.currency(document),
        }
        if any(v.get(f"shipto_{attr}") for attr, _, _ in ADDRESS):
            for attr, suffix, length in ADDRESS:
                body[f"shipTo{suffix}"] = (v.get(f"shipto_{attr}") or "")[:length]
        for option in API_OPTIONS:
            value = order_option(self.job, document, option)
            if value:
                body[option[2]] = value
        return body

    # customers

    def _accounts(self, orders: list[Record]) -> dict[str, tuple[Record | None, str | None]]:
        """customer id -> (the account, the coupled Business Central customer id)."""
        job = self.job
        contact_ids = [o.values["customerid"] for o in orders
                       if o.values.get("customerid") and o.values.get("customeridtype") == "contact"]
        contacts = job.crm.read_ids(CRM_CONTACT, ["fullname", "parentcustomerid", "parentcustomeridtype"], contact_ids)
        self.contact_names = {c.id.lower(): c.values.get("fullname") or c.id for c in contacts}
        parent_of = {c.id.lower(): c.values.get("parentcustomerid") for c in contacts
                     if c.values.get("parentcustomeridtype") in (None, "account")}
        self.parent_of = parent_of
        account_ids = [o.values["customerid"] for o in orders
                       if o.values.get("customerid") and o.values.get("customeridtype") != "contact"]
        account_ids += [p for p in parent_of.values() if p]
        accounts = {a.id.lower(): a for a in job.crm.read_ids(CRM_ACCOUNT, ["name", "customertypecode"], account_ids)}
        customers = [i for i, a in accounts.items() if a.values.get("customertypecode") == CUSTOMER_TYPE]
        coupled, self.problems = job.coupled_first("CUSTOMER", customers, orders)
        return {i: (a, coupled[i].bc_id if i in coupled else None) for i, a in accounts.items()}

    def customer(self, order: Record) -> str:
        v = order.values
        customer = v.get("customerid")
        if not customer:
            raise RecordError(f"There is no customer on the {self.kind.noun}.", field="customerid", code="NoCustomer")
        if v.get("customeridtype") == "contact":
            parent = self.parent_of.get(customer.lower())
            if not parent:
                name = self.contact_names.get(customer.lower())
                what = f"contact '{name}', which has no parent account to bill" if name else \
                    f"contact {customer}, which does not exist in Sales"
                raise RecordError(f"The {self.kind.noun}'s customer is {what}.", field="customerid", code="NoCustomer")
            customer = parent
        account, bc_id = self.accounts.get(customer.lower(), (None, None))
        if account is None:
            raise RecordError(f"The {self.kind.noun}'s account {customer} does not exist in Sales.", field="customerid",
                              code="NoCustomer")
        name = account.values.get("name")
        if account.values.get("customertypecode") != CUSTOMER_TYPE:
            raise RecordError(f"Account '{name}' is not of relationship type Customer, so it cannot buy in Business "
                              f"Central.", field="customerid", code="NotACustomer")
        if bc_id is None:
            raise RecordError(f"Account '{name}' is not coupled to a Business Central customer; "
                              f"{self._advice(account.id, 'CUSTOMER')}", field="customerid", code="NotCoupled")
        return bc_id

    # currency

    def _currencies(self, orders: list[Record]) -> dict[str, tuple[str, str | None]]:
        """currency id -> (ISO code, the coupled Business Central currency code)."""
        job = self.job
        ids = sorted({o.values["transactioncurrencyid"] for o in orders if o.values.get("transactioncurrencyid")})
        rows = job.crm.read_ids(CRM_CURRENCY, ["isocurrencycode"], ids)
        coupled = job.couplings.get_many("CURRENCY", Side.CRM, [r.id for r in rows])
        codes = {r.id: r.values.get("code") for r in job.bc.read_ids(
            BC_CURRENCY, ["code"], [c.bc_id for c in coupled.values()])}
        return {r.id.lower(): (r.values.get("isocurrencycode") or "",
                               codes.get(coupled[r.id].bc_id) if r.id in coupled else None) for r in rows}

    def currency(self, order: Record) -> str:
        currency = order.values.get("transactioncurrencyid")
        iso, code = self.currencies.get(str(currency).lower(), ("", None)) if currency else ("", None)
        lcy = CurrencyRules.lcy_code(self.job)
        if not currency or iso.upper() == lcy:
            return lcy  # the local currency: Business Central's blank currency code
        if code is None:
            raise RecordError(f"Currency {iso} of the {self.kind.noun} is not coupled to a Business Central currency "
                              f"(table mapping CURRENCY).", field="transactioncurrencyid", code="NotCoupled")
        return code

    # lines

    def _advice(self, crm_id: str, mapping: str) -> str:
        """Why a record the order refers to is not coupled, when it could not be synchronised first."""
        why = self.problems.get(crm_id.lower())
        return f"it could not be synchronised first: {why}" if why else f"couple it first (table mapping {mapping})."

    def _coupled_objects(self, products: list[Record], orders: list[Record]) \
            -> dict[str, tuple[str, str | None, str, bool]]:
        """product id -> (line type, the coupled item's or resource's number or None, the mapping, coupled); active
        products not coupled yet are synchronised first."""
        found: dict[str, tuple[str, str | None, str, bool]] = {}
        for kind, type_code, mapping, table, key in (("Item", SALES_INVENTORY, "ITEM-PRODUCT", BC_ITEM, "number"),
                                                     ("Resource", SERVICES, "RESOURCE-PRODUCT", BC_RESOURCE, "No")):
            ids = [p.id for p in products if p.values.get("producttypecode") == type_code]
            active = [p.id for p in products if p.values.get("producttypecode") == type_code
                      and p.values.get("statecode") == ACTIVE]
            coupled, why = self.job.coupled_first(mapping, active, orders)
            self.problems.update(why)
            numbers = {r.id.lower(): r.values.get(key) for r in self.job.bc.read_ids(
                table, [key], [c.bc_id for c in coupled.values()])}
            for i in ids:
                c = coupled.get(i)
                found[i.lower()] = (kind, numbers.get(c.bc_id.lower()) if c else None, mapping, bool(c))
        return found

    def _units(self, uom_ids: list[str]) -> dict[str, tuple[str, str | None, str | None]]:
        """uom id -> (its name, the Business Central unit of measure code it is coupled to, and in unit-group mode the
        item's or resource's number whose unit it is; None in legacy mode, where a group serves every product)."""
        job = self.job
        if unit_groups(job):
            units = job.crm.read_ids(CRM_UNIT, ["name"], uom_ids)
            result: dict[str, tuple[str, str | None, str | None]] = {}
            for owner in (ITEM_UNITS, RESOURCE_UNITS):
                coupled = job.couplings.get_many(owner.mapping, Side.CRM, [u.id for u in units])
                rows = {r.id.lower(): r.values for r in job.bc.read_ids(
                    owner.table, [owner.number, "Code"], [c.bc_id for c in coupled.values()])}
                for u in units:
                    row = rows.get(coupled[u.id].bc_id.lower()) if u.id in coupled else None
                    if row is not None:
                        result[u.id.lower()] = (u.values.get("name") or "", row.get("Code"), row.get(owner.number))
            return {u.id.lower(): result.get(u.id.lower(), (u.values.get("name") or "", None, None)) for u in units}
        units = job.crm.read_ids(CRM_UNIT, ["name", "uomscheduleid"], uom_ids)
        coupled = job.couplings.get_many("UNIT OF MEASURE", Side.CRM, [u.values.get("uomscheduleid") for u in units
                                                                        if u.values.get("uomscheduleid")])
        codes = {r.id.lower(): r.values.get("code") for r in job.bc.read_ids(
            BC_UNIT_OF_MEASURE, ["code"], [c.bc_id for c in coupled.values()])}
        result = {}
        for u in units:
            c = coupled.get(u.values.get("uomscheduleid") or "")
            result[u.id.lower()] = (u.values.get("name") or "", codes.get(c.bc_id.lower()) if c else None, None)
        return result

    def _setup(self) -> dict:
        cache = self.job.cache
        if "sales_setup" not in cache:
            rows = next(iter(self.job.bc.read_changed(
                BC_SALES_SETUP, ["Write_in_Product_Type", "Write_in_Product_No", "Freight_G_L_Acc_No"], since=None)), [])
            cache["sales_setup"] = rows[0].values if rows else {}
        return cache["sales_setup"]

    def lines(self, order: Record) -> list[dict]:
        details = sorted(self.details.get(order.id.lower(), []), key=lambda d: d.values.get("sequencenumber") or 0)
        lines: list[dict] = []

        def add(line: dict) -> None:
            lines.append({"sequence": LINE_STEP * (len(lines) + 1), **line})

        for n, d in enumerate(details, start=1):
            v = d.values
            text = (v.get("description") or v.get("productdescription") or "").strip()
            line = {"quantity": float(v.get("quantity") or 0), "unitPrice": float(v.get("priceperunit") or 0),
                    "discountAmount": round(float(v.get("quantity") or 0) * float(v.get("volumediscountamount") or 0)
                                            + float(v.get("manualdiscountamount") or 0), 2)}
            if not v.get("productid"):
                kind, number = self._write_in(n)
                pieces = text_lines(text)
                add({**line, "lineType": kind, "lineObjectNumber": number,
                     **({"description": pieces.pop(0)} if pieces else {})})
                self.line_numbers[d.id.lower()] = len(lines) * LINE_STEP
            else:
                kind, number = self._product(v, n)
                line.update(lineType=kind, lineObjectNumber=number)
                if v.get("uomid"):
                    line["unitOfMeasureCode"] = self._unit(v, n, number)
                add(line)
                self.line_numbers[d.id.lower()] = len(lines) * LINE_STEP
                pieces = text_lines(text)
            for piece in pieces:
                add({"lineType": "Comment", "description": piece})
        if not details:
            raise RecordError(f"The {self.kind.noun} has no lines.", field=self.kind.details.logical_name,
                              code="NoLines")
        freight = float(order.values.get("freightamount") or 0)
        if freight:
            account = self._setup().get("Freight_G_L_Acc_No")
            if not account:
                raise RecordError(f"The {self.kind.noun} has a freight amount of {freight:g}, but Business Central's "
                                  f"Sales & Receivables Setup has no Freight G/L Acc. No. to charge it to.",
                                  field="freightamount", code="NoFreightAccount")
            add({"lineType": "Account", "lineObjectNumber": account, "quantity": 1, "unitPrice": freight})
        return lines

    def _write_in(self, n: int) -> tuple[str, str]:
        setup = self._setup()
        kind, number = setup.get("Write_in_Product_Type") or "Item", setup.get("Write_in_Product_No") or ""
        if not number:
            raise RecordError(f"Line {n} is a write-in product, but Business Central's Sales & Receivables Setup has "
                              f"no Write-in Product No.; set one (an item or resource) to take write-ins.",
                              field="productid", code="NoWriteInProduct")
        return kind, number

    def _product(self, v: dict, n: int) -> tuple[str, str]:
        product = self.products.get(str(v["productid"]).lower())
        if product is None:
            raise RecordError(f"The product of line {n} ({v['productid']}) does not exist in Sales.", field="productid",
                              code="NotCoupled")
        name = product.values.get("productnumber") or product.values.get("name")
        if product.values.get("statecode") != ACTIVE:
            raise RecordError(f"Product {name} on line {n} is not active in Sales.", field="productid",
                              code="ProductNotActive")
        if product.id.lower() not in self.objects:
            raise RecordError(f"Product {name} on line {n} is neither Sales Inventory nor Services, so it has no item "
                              f"or resource in Business Central.", field="producttypecode", code="ProductType")
        kind, number, mapping, was_coupled = self.objects[product.id.lower()]
        if number is None:
            what = "is coupled to an item or resource that no longer exists." if was_coupled else \
                f"is not coupled to a Business Central {kind.lower()}; {self._advice(product.id, mapping)}"
            raise RecordError(f"Product {name} on line {n} {what}", field="productid", code="NotCoupled")
        return kind, number

    def _unit(self, v: dict, n: int, number: str) -> str:
        name, code, owner = self.units.get(str(v["uomid"]).lower(), (str(v["uomid"]), None, None))
        if code is None:
            mappings = "ITEM UOM or RESOURCE UOM" if unit_groups(self.job) else "UNIT OF MEASURE"
            raise RecordError(f"Unit {name} on line {n} is not coupled to a Business Central unit of measure (table "
                              f"mapping {mappings}).", field="uomid", code="NotCoupled")
        if owner is not None:
            # unit-group mode: any unit of the product's own group, which Business Central converts by its quantity
            if owner.casefold() != str(number).casefold():
                raise RecordError(f"Unit {name} on line {n} is a unit of measure of {owner}, not of {number}, the "
                                  f"line's item or resource.", field="uomid", code="UnitNotCoupled")
            return code
        # a unit group stands for one Business Central unit of measure, named as its code; other units
        # of the group have no conversion Business Central knows of
        if name.casefold() != code.casefold():
            raise RecordError(f"Unit {name} on line {n} is not the unit {code} of its unit group, the one Business "
                              f"Central sells in.", field="uomid", code="UnitNotCoupled")
        return code


# two-way mode, Business Central -> Sales
PUSH = OrderPush(WRITE_BACKS, ADDRESS, OPTIONS, option_codes)
