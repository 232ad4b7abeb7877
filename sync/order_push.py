"""SALESORDER-ORDER in two-way order mode, Business Central -> Sales (Business Central's "Bidirectional Sales
Order Int."): a released Business Central order becomes a Sales order, and a released coupled order that changed
updates its Sales order, lines included (SOLINE-ORDERDETAIL).

- The Sales order is named after the sell-to customer and takes the coupled account, the salesperson's coupled
  user as owner (person ownership model; an order without one keeps its owner; the team model's default team for
  a new order), the currency (the local one
  for a blank code) and that currency's price list (legacy pricing: the default price list, "Price List in <code>"
  otherwise), the ship-to and bill-to addresses, the payment terms, shipment method and shipping agent (through
  their option couplings), the requested delivery date, Payment Discount % -> discountpercentage, the work
  description, the order's number -> bcbi_businesscentralordernumber, and what posting leaves (date fulfilled,
  totals, invoice discount).
- Its Item and Resource lines become order products, each carrying its Line No. in
  bcbi_businesscentrallinenumber, which pairs it with its line from then on: tax = Amount Including VAT - Amount,
  the write-in item or resource of Sales & Receivables Setup becomes a write-in product (isproductoverridden,
  productdescription). An order with an item or resource that has no Sales product is not written at all; the
  error names the line. A product line gone from Business Central is deleted in Sales.
- A Sales order is Submitted, so read-only: bcsync re-activates it, writes the columns and the lines, and submits
  it again (sync.writeback), recorded before the first step so that the next job completes a stopped one.

What bcsync itself wrote to Business Central is not sent back: the coupling keeps the version of the order last
pushed or pulled (`~pushed`), and an order at that version is left alone.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from typing import Any, Callable, Sequence

from .errors import AlreadyExistsError, ConflictError, RecordError, SyncError
from .failures import clear_gone, failed_again
from .model import DeletionConflictResolution, Direction, Side, UpdateConflictResolution
from .order_progress import SEEN, bc_date
from .ports import Coupling, NewRow, Record, RowChange, WriteBack
from .process import JobContext
from .rules.currency import CurrencyRules
from .rules.invoices import WITH_PRODUCT, check_lines, currency_price_list, line_products, line_units
from .rules.products import write_in_product
from .tables import BC_SALES_ORDER, BC_SALES_ORDER_LINE, BC_SALESPERSON, CRM_SALES_ORDER, CRM_SALES_ORDER_DETAIL
from .values import same

ORDERS = uuid.UUID("5d0f7d1e-8a43-4b0c-9f3e-2b7f0c8e6a11")   # namespace of the ids of Sales orders made here
DETAILS = uuid.UUID("8c1e2f4a-6b5d-4e3f-a7c9-0d1b2e3f4a5b")  # and of their lines
ARCHIVED = "~archived"  # two-way mode: a coupled order posted in Business Central, kept and ignored from then on
PUSHED = "~pushed"  # the version of the Business Central order last pushed to Sales or pulled from it
REOPENED = "~reopened"  # reopened by bcsync to be updated from Sales, to be released again (sync.orders)
UPDATING = "~updating"  # an update from Sales begun (sync.orders): what it wrote is bcsync's own, not a user's
ACTIVE, SUBMITTED = 0, 1
LINE_FIELDS = ["documentId", "sequence", "lineType", "lineObjectNumber", "description", "quantity", "unitPrice",
               "discountAmount", "netAmount", "netAmountIncludingTax", "shippedQuantity", "unitOfMeasureCode"]
# columns of Business Central's integration solution in Sales: the order's number, an order product's Line No.
ORDER_NUMBER, LINE_NUMBER = "bcbi_businesscentralordernumber", "bcbi_businesscentrallinenumber"
DETAIL_FIELDS = ["salesorderid", "sequencenumber", LINE_NUMBER, "productid", "uomid", "isproductoverridden",
                 "productdescription", "quantity", "priceperunit", "ispriceoverridden", "manualdiscountamount", "tax",
                 "baseamount", "extendedamount", "quantityshipped", "description", "requestdeliveryby"]


def order_label(row: Record) -> str:
    return f"Business Central sales order {row.values.get('number') or row.id}"


def paired(by_number: dict, unnumbered: list[Record], number: Any, sells_the_same: Callable[[Record], bool]) \
        -> Record | None:
    """The other side's line paired with a line (SOLINE-ORDERDETAIL): the one `by_number` has under its Line No.,
    else the first of `unnumbered` that `sells_the_same` (lines never given a number: an order made in one-way
    mode, found again, or whose numbers could not be written), in their order. The pair is taken from both."""
    line = by_number.pop(number, None) or next((x for x in unnumbered if sells_the_same(x)), None)
    if line in unnumbered:
        unnumbered.remove(line)
    return line


def update_conflict(job: JobContext, bc_order: str, crm_id: str) -> ConflictError | None:
    """Both the Business Central order and its Sales order were changed by users since they were last synchronised:
    as for any bidirectional mapping, the mapping's update-conflict resolution decides. The error (both orders left
    as they are) when there is none; None when a side wins."""
    if job.mapping.update_conflict is not UpdateConflictResolution.NONE:
        return None
    return ConflictError(f"{bc_order} and its Sales order {crm_id} were both changed since they were last "
                         f"synchronised; neither is written. Set an update-conflict resolution on "
                         f"{job.mapping.name} to say which side wins.", fields=("salesorderid",))


class OrderPush:
    """Released Business Central orders towards Sales (the TO_CRM job of SALESORDER-ORDER in two-way mode).

    `address`: the address parts, (Sales suffix, Business Central suffix, length); `options`: the order's
    option attributes (SalesOrderProcess's), with `option_codes` answering an option's coupled codes."""

    def __init__(self, write_backs, address: Sequence[tuple], options: Sequence[tuple], option_codes):
        self.write_backs = write_backs
        self.address = address
        self.options = options
        self.option_codes = option_codes
        self.header = list(dict.fromkeys([
            "number", "status", "customerId", "customerNumber", "customerName", "salesperson", "currencyId",
            "currencyCode",
            "requestedDeliveryDate", "paymentDiscountPercent", "workDescription", "discountAmount",
            "totalAmountExcludingTax", "totalAmountIncludingTax", "lastShipmentDate", "shipToName",
            *(o[2] for o in options), *(f"{side}{suffix}" for side in ("shipTo", "billTo") for _, suffix, _ in address),
            *SEEN]))

    def run(self, job: JobContext, deadline: dt.datetime | None) -> bool:
        """Push what changed since the watermark; False when the job's time ran out first (the watermark stays, so
        the job's continuation reads the rest again)."""
        since = None if job.full else job.state.watermark(job.mapping.name, Direction.TO_CRM)
        retried = [i for i, f in job.failures.items() if not f.skipped]
        if retried:
            found = job.bc.read_ids(BC_SALES_ORDER, self.header, retried)
            clear_gone(job, Direction.TO_CRM, retried, found)
            self.push(job, found, forced=set(retried))
        for page in job.bc.read_changed(BC_SALES_ORDER, self.header, since=since, where=job.mapping.bc_filter,
                                        page_size=50):
            self.push(job, [r for r in page if r.id not in retried], forced=set())
            job.progress()
            if deadline is not None and job.clock.now() >= deadline:
                return False
        job.state.advance_watermark(job.mapping.name, Direction.TO_CRM, job.cap)
        return True

    def push(self, job: JobContext, rows: list[Record], forced: set[str]) -> None:
        couplings = job.couplings.get_many(job.mapping.name, Side.BC, [r.id for r in rows])
        todo = []
        for row in rows:
            coupling = couplings.get(row.id)
            if row.values.get("status") != "Open":  # API v2.0's Released; a failed order reopened waits for it
                continue
            if coupling is not None and (coupling.bc_values or {}).get(ARCHIVED):
                continue
            if coupling is not None and row.etag == (coupling.bc_values or {}).get(PUSHED) and row.id not in forced:
                job.counts.unchanged += 1
                continue
            todo.append(row)
        if not todo:
            return
        lines: dict[str, list[Record]] = {}
        found = job.bc.read_matching(BC_SALES_ORDER_LINE, LINE_FIELDS, "documentId", [r.id for r in todo])
        for line in sorted(found, key=lambda l: l.values.get("sequence") or 0):
            if line.values.get("lineType") in WITH_PRODUCT:  # SOLINE-ORDERDETAIL: Type = Item|Resource
                lines.setdefault(str(line.values["documentId"]).lower(), []).append(line)
        all_lines = [l for ls in lines.values() for l in ls]
        products, problems = line_products(job, all_lines, todo)
        units = line_units(job, all_lines, todo)
        accounts, _ = job.coupled_first("CUSTOMER", sorted({str(r.values.get("customerId")) for r in todo
                                                            if r.values.get("customerId")}), todo)
        owners = self._owners(job, todo)
        failed: dict[str, SyncError] = {}
        plans: list[tuple[Record, Coupling | None, dict, list[Record]]] = []
        for row in todo:
            try:
                mine = lines.get(row.id.lower(), [])
                check_lines(job, order_label(row), "order", mine, products, problems, units)
                values = self._values(job, row, accounts)
                owner = owners.get(str(row.values.get("salesperson") or "").upper())
                if owner:  # "Not Null": an order without a coupled salesperson keeps its owner
                    values.update(ownerid=owner, owneridtype="systemuser")
                plans.append((row, couplings.get(row.id), values, mine))
            except RecordError as exc:
                failed[row.id] = exc
        self._write(job, self._counterparts(job, plans, failed), products, units or {}, failed)
        self._record(job, rows, todo, failed)

    @staticmethod
    def _counterparts(job: JobContext, plans: list, failed: dict[str, SyncError]) -> list:
        """The plans whose Sales order can be written. A coupled Sales order that is gone is a deletion conflict,
        decided by the mapping's deletion-conflict resolution as for any mapping (none: an error; restore: made
        again; remove coupling); one closed in Sales (canceled, fulfilled, invoiced) is an error. One a Sales user
        changed since bcsync last wrote or took it is an update conflict (the Business Central order changed too)."""
        coupled = [p for p in plans if p[1] is not None]
        if not coupled:
            return plans
        orders = {r.id.lower(): r for r in job.crm.read_ids(CRM_SALES_ORDER, ["statecode"],
                                                           [c.crm_id for _, c, _, _ in coupled])}
        resolution = job.mapping.deletion_conflict
        kept, uncoupled = [], []
        for plan in plans:
            row, coupling = plan[0], plan[1]
            order = orders.get(coupling.crm_id.lower()) if coupling is not None else None
            if coupling is None:
                kept.append(plan)
            elif order is None and resolution is DeletionConflictResolution.NONE:
                failed[row.id] = RecordError(
                    f"{order_label(row)} cannot be pushed because its coupled Sales order {coupling.crm_id} was "
                    f"deleted. Restore it, remove the coupling, or set a deletion-conflict resolution on "
                    f"{job.mapping.name}.", field="salesorderid", code="DeletionConflict")
            elif order is None:
                uncoupled.append(coupling)
                if resolution is DeletionConflictResolution.RESTORE:  # made again as a new Sales order
                    kept.append((row, None, *plan[2:]))
                else:
                    job.note(f"couplings removed because the Sales order was deleted: {order_label(row)}")
            elif order.values.get("statecode") not in (ACTIVE, SUBMITTED):
                failed[row.id] = RecordError(
                    f"{order_label(row)}: its Sales order {coupling.crm_id} is closed in Sales (state "
                    f"{order.values.get('statecode')}), so it cannot be updated.", field="salesorderid",
                    code="Closed")
            elif _changed_in_sales(job, order, coupling) \
                    and job.mapping.update_conflict is not UpdateConflictResolution.SEND_TO_CRM:
                conflict = update_conflict(job, order_label(row), coupling.crm_id)
                if conflict is not None:
                    failed[row.id] = conflict
                else:  # Sales wins: its update reaches Business Central in the job the other way
                    job.counts.skipped += 1
            else:
                kept.append(plan)
        if uncoupled:
            job.couplings.delete_many(uncoupled)
            job.counts.uncoupled += len(uncoupled)
        return kept

    # -- the Sales order's values -----------------------------------------------------------------

    def _values(self, job: JobContext, row: Record, accounts: dict[str, Coupling]) -> dict[str, Any]:
        v, label = row.values, order_label(row)
        account = accounts.get(str(v.get("customerId")))
        if account is None:
            raise RecordError(f"{label}: its customer {v.get('customerNumber') or v.get('customerName') or ''} is not "
                              f"coupled to a Sales account; couple it first (table mapping CUSTOMER).",
                              field="Sell-to Customer No.", code="NotCoupled")
        values: dict[str, Any] = {
            "customerid": account.crm_id, "customeridtype": "account",
            "transactioncurrencyid": self._currency(job, row), "pricelevelid": currency_price_list(job, row, label),
            ORDER_NUMBER: v.get("number"),
            "requestdeliveryby": bc_date(v.get("requestedDeliveryDate")),
            "discountpercentage": float(v.get("paymentDiscountPercent") or 0),
            "description": v.get("workDescription") or None,
            "datefulfilled": bc_date(v.get("lastShipmentDate")),
            "totalamountlessfreight": v.get("totalAmountExcludingTax"), "totalamount": v.get("totalAmountIncludingTax"),
            "discountamount": v.get("discountAmount"),
            "shipto_name": v.get("shipToName") or None,
        }
        for side, api in (("shipto", "shipTo"), ("billto", "billTo")):
            for attribute, suffix, _ in self.address:
                values[f"{side}_{attribute}"] = v.get(f"{api}{suffix}") or None
        for option in self.options:
            values[option[0]] = self._option(job, row, option)
        return values

    @staticmethod
    def _owners(job: JobContext, rows: list[Record]) -> dict[str, str]:
        """Salesperson code (upper case) -> the user coupled to it; none in the team ownership model, where owners
        never follow salespeople (SALESPEOPLE does not exist there)."""
        codes = sorted({str(r.values["salesperson"]) for r in rows if r.values.get("salesperson")})
        if not codes or "SALESPEOPLE" not in job.catalog:
            return {}
        people = job.bc.read_matching(BC_SALESPERSON, ["code"], "code", codes)
        coupled = job.couplings.get_many("SALESPEOPLE", Side.BC, [p.id for p in people])
        return {str(p.values.get("code")).upper(): coupled[p.id].crm_id for p in people if p.id in coupled}

    @staticmethod
    def _currency(job: JobContext, row: Record) -> str:
        code = (row.values.get("currencyCode") or "").upper()
        currencies = CurrencyRules()
        if not code or code == currencies.lcy_code(job):
            return currencies.lcy_currency_id(job)
        coupled = job.couplings.get_many("CURRENCY", Side.BC, [str(row.values.get("currencyId"))])
        if not coupled:
            raise RecordError(f"{order_label(row)}: currency {code} is not coupled to a Sales currency (table mapping "
                              f"CURRENCY).", field="Currency Code", code="NotCoupled")
        return next(iter(coupled.values())).crm_id

    def _option(self, job: JobContext, row: Record, option: tuple) -> int | None:
        """The order option whose label is the account option's coupled to the order's code; blank stays blank."""
        attribute, mapping, field, caption, _ = option
        code = row.values.get(field)
        if not code or code == "00000000-0000-0000-0000-000000000000":
            return None
        coupled, _ = self.option_codes(job, option)
        value = next((v for v, c in coupled.items() if str(c).lower() == str(code).lower()), None)
        if value is None:
            raise RecordError(f"{order_label(row)}: its {caption} is not coupled to an option of the Sales order's "
                              f"{attribute} (table mapping {mapping}).", field=f"{caption} Code", code="NotCoupled")
        return value

    # -- lines ------------------------------------------------------------------------------------

    def _details(self, job: JobContext, order_id: str, row: Record, lines: list[Record], products: dict,
                 units: dict, existing: list[Record]) -> tuple[list[NewRow], list[RowChange], list[str]]:
        """The order products to insert, to update and to delete so that the Sales order has the lines of `row`."""
        _, write_in = write_in_product(job)
        by_number = {d.values[LINE_NUMBER]: d for d in existing if d.values.get(LINE_NUMBER)}
        # lines of an order created in one-way mode have no number yet: paired by product, in their order
        unnumbered = sorted((d for d in existing if not d.values.get(LINE_NUMBER)),
                            key=lambda d: d.values.get("sequencenumber") or 0)
        inserts, updates = [], []
        for line in lines:
            v = line.values
            kind, number = v.get("lineType"), v.get("lineObjectNumber")
            net, quantity = float(v.get("netAmount") or 0), float(v.get("quantity") or 0)
            values: dict[str, Any] = {
                LINE_NUMBER: int(v.get("sequence") or 0), "quantity": quantity,
                "priceperunit": float(v.get("unitPrice") or 0), "ispriceoverridden": True,
                "manualdiscountamount": float(v.get("discountAmount") or 0),
                "tax": round(float(v.get("netAmountIncludingTax") or 0) - net, 2), "baseamount": net,
                "extendedamount": float(v.get("netAmountIncludingTax") or 0),
                "quantityshipped": float(v.get("shippedQuantity") or 0),
                "requestdeliveryby": bc_date(row.values.get("requestedDeliveryDate")),
            }
            if number == write_in or (kind, number) not in products:  # checked before: only the write-in is not
                values.update(isproductoverridden=True, productid=None,
                              productdescription=(v.get("description") or number or "")[:500])
            else:
                product = products[(kind, number)]
                values.update(isproductoverridden=False, productid=product.id, productdescription=None,
                              description=v.get("description"),
                              uomid=units.get((kind, number, v.get("unitOfMeasureCode")))
                              or product.values.get("defaultuomid"))
            product = str(values.get("productid") or "").lower()
            detail = paired(by_number, unnumbered, values[LINE_NUMBER],
                            lambda d: str(d.values.get("productid") or "").lower() == product)
            if detail is None:
                inserts.append(NewRow({"salesorderid": order_id, **values}, id=str(uuid.uuid5(DETAILS, line.id))))
            else:
                changed = {k: x for k, x in values.items() if not same(detail.values.get(k), x)}
                if changed:
                    updates.append(RowChange(detail.id, detail.etag, changed))
        # a Sales line that came from Business Central whose line is gone; one added in Sales (no number) stays
        deletes = [d.id for d in by_number.values()]
        return inserts, updates, deletes

    def _write(self, job: JobContext, plans: list, products: dict, units: dict, failed: dict[str, SyncError]) -> None:
        """Insert the new Sales orders, then for every order: re-activate, columns, lines, submit again."""
        new = [(row, values) for row, coupling, values, _ in plans if coupling is None]
        order_ids: dict[str, str] = {row.id: c.crm_id for row, c, _, _ in plans if c is not None}
        if new:
            # the name only for a new order: a Sales order's name is its Business Central order's External
            # Document No. (sync.orders), the customer's reference, never overwritten by the customer's name
            rows = [NewRow({**job.team_owner(), "name": row.values.get("customerName") or row.values.get("number"),
                            **{k: x for k, x in values.items() if x is not None}},
                           id=str(uuid.uuid5(ORDERS, row.id))) for row, values in new]
            made = []
            for (row, _), new_row, result in zip(new, rows, job.crm.insert(CRM_SALES_ORDER, rows, ["name"])):
                if result.error is not None and not isinstance(result.error, AlreadyExistsError):
                    failed[row.id] = _named(result.error, "salesorderid")
                    continue
                order_ids[row.id] = new_row.id
                made.append(Coupling(job.mapping.name, row.id, new_row.id, synced_at=job.clock.now(),
                                     job_id=job.job_id))
                job.counts.inserted += 1
            job.couplings.save_many(made)  # at once: a write after it that fails leaves no order uncoupled
        plans = [p for p in plans if p[0].id in order_ids]
        if not plans:
            return
        existing: dict[str, list[Record]] = {}
        for d in job.crm.read_matching(CRM_SALES_ORDER_DETAIL, DETAIL_FIELDS, "salesorderid",
                                       [order_ids[row.id] for row, _, _, _ in plans]):
            existing.setdefault(str(d.values.get("salesorderid")).lower(), []).append(d)
        changes = {}
        for row, _, _, lines in plans:
            order_id = order_ids[row.id]
            changes[order_id.lower()] = (row, self._details(job, order_id, row, lines, products, units,
                                                            existing.get(order_id.lower(), [])))

        lines_failed: set[str] = set()

        def write_lines(ids: list[str]) -> dict[str, str]:
            failures = self._write_lines(job, {i: changes[i.lower()][1] for i in ids})
            lines_failed.update(failures)
            return failures

        write_backs = [WriteBack(order_ids[row.id], {k: x for k, x in values.items()
                                                     if k not in ("customeridtype", "owneridtype")}, SUBMITTED)
                       for row, coupling, values, _ in plans]
        with_lines = frozenset(i for i, (_, (ins, upd, dels)) in changes.items() if ins or upd or dels)
        begun = self.write_backs.begin(job, write_backs, keep=with_lines)
        failures = self.write_backs.complete(job, begun, while_active=write_lines if with_lines else None)
        done = []
        for row, coupling, _, _ in plans:
            reason = failures.get(order_ids[row.id])
            if reason is not None:
                failed[row.id] = RecordError(
                    f"{order_label(row)}: its Sales order could not be written: {reason}",
                    field=CRM_SALES_ORDER_DETAIL.logical_name if order_ids[row.id] in lines_failed else "salesorderid")
                continue
            if coupling is not None:
                job.counts.modified += 1
            current = coupling or Coupling(job.mapping.name, row.id, order_ids[row.id])
            done.append(dataclasses.replace(
                current, bc_etag=current.bc_etag or row.etag, synced_at=job.clock.now(), job_id=job.job_id,
                bc_values={**(current.bc_values or {}), PUSHED: row.etag,
                           **({} if coupling else {k: row.values.get(k) for k in SEEN})}))
        job.couplings.save_many(done)

    @staticmethod
    def _write_lines(job: JobContext, plans: dict[str, tuple[list[NewRow], list[RowChange], list[str]]]) \
            -> dict[str, str]:
        """The lines of orders that are active now; the orders whose lines failed, with the reason."""
        failed: dict[str, str] = {}
        inserts = [(o, n) for o, (ins, _, _) in plans.items() for n in ins]
        for (order, _), result in zip(inserts, job.crm.insert(CRM_SALES_ORDER_DETAIL, [n for _, n in inserts],
                                                              ["quantity"])):
            if result.error is not None and not isinstance(result.error, AlreadyExistsError):
                failed.setdefault(order, f"a line could not be written: {result.error.message}")
        updates = [(o, c) for o, (_, upd, _) in plans.items() for c in upd]
        for (order, _), result in zip(updates, job.crm.update(CRM_SALES_ORDER_DETAIL, [c for _, c in updates],
                                                              ["quantity"])):
            if result.error is not None:
                failed.setdefault(order, f"a line could not be updated: {result.error.message}")
        deletes = [(o, d) for o, (_, _, dels) in plans.items() for d in dels]
        for (order, _), error in zip(deletes, job.crm.delete_rows(CRM_SALES_ORDER_DETAIL, [d for _, d in deletes])):
            if error is not None:
                failed.setdefault(order, f"a line could not be deleted: {error.message}")
        return failed

    # -- errors -----------------------------------------------------------------------------------

    @staticmethod
    def _record(job: JobContext, rows: list[Record], worked: list[Record], failed: dict[str, SyncError]) -> None:
        now: dt.datetime = job.clock.now()
        entries = []
        for row in rows:
            error = failed.get(row.id)
            if error is None:
                continue
            label = order_label(row)
            message = error.message if error.message.startswith(label) else f"{label}: {error.message}"
            entries.append(failed_again(job.failures.get(row.id), error, mapping=job.mapping.name,
                                        direction=Direction.TO_CRM, source_id=row.id, record=label, message=message,
                                        now=now, job_id=job.job_id, source_etag=row.etag, skippable=False))
            job.counts.failed += 1
        if entries:
            job.errors.save_many(entries)
            job.failures.update({e.source_id: e for e in entries})
        done = [r.id for r in worked if r.id not in failed and r.id in job.failures]
        if done:
            job.errors.clear_many(job.mapping.name, Direction.TO_CRM, done)
            for i in done:
                del job.failures[i]


def _named(error: SyncError, field: str) -> SyncError:
    """The error as the order's: with its own field, else `field`."""
    if getattr(error, "field", ""):
        return error
    named = RecordError(error.message, field=field, code=error.code, status=error.status)
    named.transient = error.transient
    return named


def _changed_in_sales(job: JobContext, order: Record, coupling: Coupling) -> bool:
    """Whether a Sales user changed the order since bcsync last wrote it or took it: its version is not the one the
    coupling keeps, and bcsync did not make it."""
    return order.etag != coupling.crm_etag and (order.modified_by or "").lower() != job.integration_user_id().lower()
