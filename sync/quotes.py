"""SALESQUOTE-QUOTE: Sales quotes processed into Business Central sales quotes.

Business Central's "Auto Process Sales Quotes" job, run when "Automatically Process Sales Quotes" is on
(BCSYNC_AUTO_PROCESS_SALES_QUOTES). It picks the Active and Won quotes changed since its last run, and the
quotes that failed before, each worked on by itself; a failure is an error on that quote, naming the field,
tried again at the next run.

- An Active quote not coupled yet becomes a Business Central sales quote, coupled to it: the customer, the
  currency, External Document No. = its name, Quote Valid Until = its Effective To, the ship-to address,
  payment terms and shipment method, its lines as an order's lines (write-ins, long descriptions as comment
  lines; sync.orders.Lookups) and its discount as the invoice discount. A coupled Active quote is left alone:
  Sales does not let an active quote change. What is written after the quote is made (page 41, then the
  discount) and could not be is an error on the quote naming it (QuoteIncomplete): the next run writes it, and
  only then is the quote done.
- A new revision (ReviseQuote closes the quote as Revised and copies it to a Draft with the next revision
  number) replaces, once activated, the Business Central quote of the revision before it: its header is
  written again, its lines are deleted and made anew, and the coupling moves to the new revision. Business
  Central archives the quote first; API v2.0 cannot archive (README: what differs). A quote not coupled whose
  number is a Business Central quote's Your Reference (an attempt made it, its coupling lost) is written over
  that quote the same way; so is one an attempt made without hearing back (Your Reference, written through
  page 41 after the POST, is then missing): of the same customer, with the quote's name as External Document
  No., no Your Reference and exactly the quote's lines, as orders are found again. Nothing is made twice.
- A Won quote is made a Business Central quote first if it is not one yet. Then the Sales order made from it
  (its quoteid) is looked for: none yet is an error, tried again at the next run; a coupled one gets Quote No. =
  the Business Central quote's number; one submitted but not created yet gets it when SALESORDER-ORDER creates
  it (sync.orders); one not submitted is left: its order, once created, gets Quote No. then.
- Closed quotes (lost, canceled, revised) are not processed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from .errors import RecordError, SyncError, stops_job
from .failures import clear_gone, failed_again
from .model import Direction, Side
from .order_push import PUSHED
from .orders import MAPPING as ORDERS
from .orders import (ADDRESS, OPTIONS, QUOTES, REFERENCE, SUBMITTED, DocumentKind, Lookups,
                     SalesOrderProcess, same_customer_kept)
from .ports import Coupling, NewRow, Record, RowChange
from .process import JobContext
from .tables import (BC_SALES_ORDER, BC_SALES_QUOTE, BC_SALES_QUOTE_LINE, CRM_QUOTE, CRM_QUOTE_DETAIL,
                     CRM_SALES_ORDER)
from .values import BC_BLANK_DATE, as_guid

MAPPING = QUOTES
ACTIVE, WON, CLOSED = 1, 2, 3     # quote.statecode
REVISED = 7                       # statuscode of a quote closed by ReviseQuote
QUOTE = DocumentKind(CRM_QUOTE_DETAIL, "quoteid", "quote")
QUOTE_FIELDS = ["name", "quotenumber", "revisionnumber", "statecode", "statuscode", "customerid", "customeridtype",
                "transactioncurrencyid", "effectiveto", "discountamount", "discountpercentage", "totallineitemamount",
                "totalamountlessfreight", "freightamount", "description", "requestdeliveryby",
                *(o[0] for o in OPTIONS), *(f"{p}_{a}" for p in ("billto", "shipto") for a, _, _ in ADDRESS)]
PAGE_41 = ["shippingmethodcode", "description", "billto_composite"]  # what set_after_values gives a quote
# what is written after the quote is made (page 41 after the POST, the invoice discount once the lines are there),
# by the Sales attribute it comes from
SET_AFTER = {"quotenumber": "Your Reference", "requestdeliveryby": "requested delivery date",
             "shippingmethodcode": "shipping agent", "description": "work description",
             "billto_composite": "bill-to address", "discountamount": "quote discount"}
# a quote written over: its customer (sent only when it changes) and address, the ship-to a new quote would get
MADE_FIELDS = ["number", "customerId", *(f"sellTo{suffix}" for _, suffix, _ in ADDRESS)]
# what a replaced revision had and the new one may lack, blank as in a new quote (addresses: the customer's)
BLANKS = {"validUntilDate": BC_BLANK_DATE, "requestedDeliveryDate": BC_BLANK_DATE, "shippingAgentCode": "",
          "workDescription": "", "billToOptions": "Default (Customer)"}
INCOMPLETE = "QuoteIncomplete"    # made (or written over); what is written after that is still missing
LINES = "salesQuoteLines"


def quote_label(quote: Record) -> str:
    v = quote.values
    return f"Sales quote {v.get('quotenumber') or quote.id} revision {v.get('revisionnumber') or 0} " \
           f"'{v.get('name') or ''}'"


class SalesQuoteProcess:
    """The job of SALESQUOTE-QUOTE (a sync.process.JobProcess)."""

    # the tables the job reads, updates and creates rows in (what the connection check tries)
    reads = (CRM_QUOTE_DETAIL, CRM_SALES_ORDER, BC_SALES_QUOTE_LINE, *SalesOrderProcess.reads)
    writes = (BC_SALES_QUOTE, BC_SALES_ORDER)
    creates = (BC_SALES_QUOTE, BC_SALES_QUOTE_LINE)

    def has_work(self, job: JobContext) -> bool:
        if not job.setup.auto_process_sales_quotes:
            return False
        since = job.state.watermark(MAPPING, Direction.FROM_CRM)
        return bool(job.failures) or bool(next(iter(job.crm.read_changed(
            CRM_QUOTE, ["name"], since=since, where=self._picked(), limit=1)), []))

    @staticmethod
    def _picked() -> str:
        return f"(statecode eq {ACTIVE} or statecode eq {WON})"

    def run(self, job: JobContext, deadline: dt.datetime | None):
        if not job.setup.auto_process_sales_quotes:
            job.note("automatic processing of sales quotes is off: no quote is processed")
            return job.outcome()
        retried = list(job.failures)
        if retried:
            found = job.crm.read_ids(CRM_QUOTE, QUOTE_FIELDS, [i for i in retried if as_guid(i)])
            clear_gone(job, Direction.FROM_CRM, retried, found)  # deleted since they failed
            self._process(job, found)
        done = {i.lower() for i in retried}
        since = job.state.watermark(MAPPING, Direction.FROM_CRM)
        for page in job.crm.read_changed(CRM_QUOTE, QUOTE_FIELDS, since=since, where=self._picked(), page_size=50):
            self._process(job, [q for q in page if q.id.lower() not in done])
            job.progress()
            if deadline is not None and job.clock.now() >= deadline:
                return job.outcome(complete=False)
        job.state.advance_watermark(MAPPING, Direction.FROM_CRM, job.cap)
        return job.outcome()

    # -- one page of quotes ---------------------------------------------------------------------------

    def _process(self, job: JobContext, quotes: list[Record]) -> None:
        if not quotes:
            return
        coupled = job.couplings.get_many(MAPPING, Side.CRM, [q.id for q in quotes])
        lookups = Lookups(job, [q for q in quotes if q.id not in coupled], QUOTE)
        failed: dict[str, tuple[Record, SyncError]] = {}
        done: list[str] = []
        try:
            for quote in quotes:
                try:
                    state = quote.values.get("statecode")
                    if state == ACTIVE:
                        self._active(job, quote, coupled.get(quote.id), lookups)
                    elif state == WON:
                        self._won(job, quote, coupled.get(quote.id), lookups)
                    done.append(quote.id)  # a closed quote (or one made a draft again) waits no more
                except RecordError as exc:
                    failed[quote.id] = (quote, exc)
                    if stops_job(exc.__cause__):  # a quote left incomplete is recorded, then the job stops
                        raise exc.__cause__ from None
        finally:
            self._record(job, done, failed)

    def _record(self, job: JobContext, done: list[str], failed: dict[str, tuple[Record, SyncError]]) -> None:
        now, entries = job.clock.now(), []
        for quote, error in failed.values():
            label = quote_label(quote)
            message = f"{label}: {error.message}"
            job.counts.failed += 1
            entries.append(failed_again(job.failures.get(quote.id), error, mapping=MAPPING,
                                        direction=Direction.FROM_CRM, source_id=quote.id, record=label,
                                        message=message, now=now, job_id=job.job_id, source_etag=quote.etag,
                                        skippable=False))
        if entries:
            job.errors.save_many(entries)
            for entry in entries:
                job.failures[entry.source_id] = entry
        settled = [i for i in done if i in job.failures]
        if settled:
            job.errors.clear_many(MAPPING, Direction.FROM_CRM, settled)
            for i in settled:
                del job.failures[i]

    # -- Active quotes ------------------------------------------------------------------------------

    def _active(self, job: JobContext, quote: Record, coupling: Coupling | None, lookups: Lookups) -> str:
        """The Business Central quote of an Active quote (made, or one made before written over); its number. One
        left incomplete gets what is missing first: until then the quote's error stays."""
        if coupling is not None:
            previous = job.failures.get(quote.id)
            if previous is None or previous.code != INCOMPLETE:
                job.counts.unchanged += 1
                return self._row(job, coupling).values.get("number") or ""
            row = self._row(job, coupling)
            self._complete(job, quote, row, self._page_values(job, quote), float(row.values.get("discountAmount") or 0))
            job.counts.modified += 1
            number = row.values.get("number") or ""
            job.note(f"{quote_label(quote)}: what was missing on Business Central sales quote {number} is written")
            return number
        body = self._body(job, quote, lookups)
        made = self._made_before(job, quote, body, lookups)
        return self._replace(job, quote, made, body) if made is not None else self._insert(job, quote, body)

    def _made_before(self, job: JobContext, quote: Record, body: dict, lookups: Lookups) -> Record | None:
        """The Business Central quote this quote is written over: its previous revision's (by that one's coupling),
        else one whose Your Reference is the quote number, as Business Central finds a quote (one an attempt made
        whose coupling was lost, or the previous revision's once uncoupled), else one an attempt made without
        hearing back, so before it could write Your Reference (page 41, written after the POST): as for orders,
        one of the same customer with the quote's name as External Document No., no Your Reference and exactly
        the quote's lines."""
        previous = self._previous_revision(job, quote)
        rows = job.bc.read_ids(BC_SALES_QUOTE, MADE_FIELDS, [previous.bc_id]) if previous else []
        if previous is not None and not rows:  # deleted in Business Central meanwhile
            job.couplings.delete_many([previous])
        if not rows and body.get("yourReference"):
            rows = job.bc.read_matching(BC_SALES_QUOTE, MADE_FIELDS, "yourReference", [body["yourReference"]])
        if not rows:
            rows = [row for _, row in SalesOrderProcess.lost_answers(
                job, [quote], lookups, BC_SALES_QUOTE, BC_SALES_QUOTE_LINE,
                [*MADE_FIELDS, "externalDocumentNumber", "yourReference"], "yourReference", "")]
        return rows[-1] if rows else None

    @staticmethod
    def _row(job: JobContext, coupling: Coupling) -> Record:
        rows = job.bc.read_ids(BC_SALES_QUOTE, ["number", "discountAmount"], [coupling.bc_id])
        if not rows:
            raise RecordError(f"Its Business Central quote {coupling.bc_id} no longer exists; uncouple the quote "
                              f"(table mapping {MAPPING}) to make it again.", field="quoteid", code="QuoteGone")
        return rows[0]

    @staticmethod
    def _body(job: JobContext, quote: Record, lookups: Lookups) -> dict[str, Any]:
        """The Business Central quote's header, as Business Central fills it from a Sales quote, and its lines. A
        quote's option sets (payment terms, shipment method) carry the order's labels, which the order's options
        are read by: Business Central writes the same labels to both."""
        v = quote.values
        body = lookups.header(quote)
        if v.get("effectiveto"):
            body["validUntilDate"] = str(v["effectiveto"])[:10]
        for values in SalesQuoteProcess._page_values(job, quote).values():
            body.update(values)
        body[LINES] = lookups.lines(quote)
        return body

    @staticmethod
    def _page_values(job: JobContext, quote: Record) -> dict[str, dict]:
        """What goes through page 41, by Sales attribute: Your Reference = the quote number, the requested delivery
        date, and as for orders the shipping agent, Work Description = the description and the bill-to address."""
        v, values = quote.values, {}
        if v.get("quotenumber"):
            values["quotenumber"] = {"yourReference": v["quotenumber"][:REFERENCE]}
        if v.get("requestdeliveryby"):
            values["requestdeliveryby"] = {"requestedDeliveryDate": str(v["requestdeliveryby"])[:10]}
        return {**values, **SalesOrderProcess.set_after_values(job, quote, PAGE_41)}

    def _insert(self, job: JobContext, quote: Record, body: dict) -> str:
        [result] = job.bc.insert(BC_SALES_QUOTE, [NewRow(body)], ["number"])
        if result.record is None:
            raise self._as_record_error(result.error)
        created = result.record
        job.couplings.save_many([Coupling(MAPPING, created.id, quote.id, bc_etag=created.etag,
                                          synced_at=job.clock.now(), job_id=job.job_id)])
        job.counts.inserted += 1
        # made; its page 41 write failed: tried once more with the discount, else at the next run
        self._complete(job, quote, created, self._page_values(job, quote) if result.error is not None else {})
        number = created.values.get("number") or ""
        job.note(f"{quote_label(quote)} was made Business Central sales quote {number}")
        return number

    @staticmethod
    def _previous_revision(job: JobContext, quote: Record) -> Coupling | None:
        """The coupling of an earlier revision of the quote (closed as Revised), when it has one."""
        if not quote.values.get("revisionnumber") or not quote.values.get("quotenumber"):
            return None
        revised = [q.id for q in job.crm.read_matching(
            CRM_QUOTE, ["quotenumber"], "quotenumber", [quote.values["quotenumber"]],
            where=f"statecode eq {CLOSED} and statuscode eq {REVISED}") if q.id.lower() != quote.id.lower()]
        coupled = job.couplings.get_many(MAPPING, Side.CRM, revised)
        return next(iter(coupled.values()), None)

    def _replace(self, job: JobContext, quote: Record, row: Record, body: dict) -> str:
        """The quote written over a Business Central quote made before (a previous revision's, or one an attempt
        made): the header again, what this revision lacks blank (BLANKS; the ship-to address the customer's), the
        lines deleted and made anew (each step safe to repeat: a stopped job redoes them all), then the coupling
        moved to this quote."""
        lines = body.pop(LINES)
        same_customer_kept(body, row)
        body = {**{k: v for k, v in BLANKS.items() if k not in body}, **body}
        if "customerId" not in body and not any(k.startswith("shipTo") for k in body):
            body.update({f"shipTo{suffix}": row.values.get(f"sellTo{suffix}") or "" for _, suffix, _ in ADDRESS})
        old = job.bc.read_matching(BC_SALES_QUOTE_LINE, ["sequence"], "documentId", [row.id])
        for error in job.bc.delete_rows(BC_SALES_QUOTE_LINE, [line.id for line in old]):
            if error is not None:
                raise self._as_record_error(error)
        [result] = job.bc.update(BC_SALES_QUOTE, [RowChange(row.id, None, body)], ["number"])
        if result.error is not None:
            raise self._as_record_error(result.error)
        for made in job.bc.insert(BC_SALES_QUOTE_LINE, [NewRow({**line, "documentId": row.id}) for line in lines],
                                  ["sequence"]):
            if made.error is not None:
                raise self._as_record_error(made.error)
        job.couplings.delete_many(list(job.couplings.get_many(MAPPING, Side.BC, [row.id]).values()))
        job.couplings.save_many([Coupling(MAPPING, row.id, quote.id, synced_at=job.clock.now(), job_id=job.job_id)])
        job.counts.modified += 1
        [fresh] = job.bc.read_ids(BC_SALES_QUOTE, ["number", "discountAmount"], [row.id])
        self._complete(job, quote, fresh, {}, float(fresh.values.get("discountAmount") or 0))
        number = row.values.get("number") or ""
        job.note(f"{quote_label(quote)} was written over Business Central sales quote {number}, made before")
        return number

    @staticmethod
    def _complete(job: JobContext, quote: Record, row: Record, values: dict[str, dict], current: float = 0.0) -> None:
        """What the Business Central quote takes once made: these page 41 values, and the quote discount as its
        invoice discount, once its lines are there (a replaced revision's discount goes when the new one has
        none). When that fails, the quote's error names what is missing (code INCOMPLETE): the next run writes
        it, and the quote counts as done only then."""
        discount = SalesOrderProcess.invoice_discount(quote.values)
        if discount != current:
            values = {**values, "discountamount": {"discountAmount": discount}}
        if not values:
            return
        change = RowChange(row.id, None, {k: x for group in values.values() for k, x in group.items()})
        [result] = job.bc.update(BC_SALES_QUOTE, [change], ["number"])
        if result.error is None:
            return
        if result.record is not None:  # the API write (the discount) went through; the page write after it did not
            values = {attribute: group for attribute, group in values.items() if attribute != "discountamount"}
        missing = " and ".join(SET_AFTER[attribute] for attribute in values)
        raise RecordError(f"It is Business Central sales quote {row.values.get('number') or row.id}, but its "
                          f"{missing} could not be written: {result.error.message} It is written at the next run.",
                          field=",".join(values), code=INCOMPLETE) from result.error

    @staticmethod
    def _as_record_error(error: SyncError | None) -> SyncError:
        """A write's error as the quote's: a service giving out stops the job (raised as it is)."""
        if error is None:
            return RecordError("Business Central answered without the quote.", code="NoAnswer")
        if stops_job(error):
            raise error
        return error if isinstance(error, RecordError) else RecordError(error.message, code=error.code)

    # -- Won quotes ---------------------------------------------------------------------------------

    def _won(self, job: JobContext, quote: Record, coupling: Coupling | None, lookups: Lookups) -> None:
        number = self._active(job, quote, coupling, lookups)
        orders = job.crm.read_matching(CRM_SALES_ORDER, ["ordernumber", "name", "statecode"], "quoteid", [quote.id])
        if not orders:
            raise RecordError("The quote is won, but no Sales order was made from it (an order whose Quote is this "
                              "quote); it is processed again once there is one.", field="quoteid", code="NoOrder")
        order = orders[0]
        label = f"Sales order {order.values.get('ordernumber') or order.id}"
        order_coupling = job.couplings.get_many(ORDERS, Side.CRM, [order.id]).get(order.id)
        if order_coupling is None:
            waits = "is created by SALESORDER-ORDER" if order.values.get("statecode") == SUBMITTED else \
                "is not submitted; once created in Business Central"
            job.note(f"{quote_label(quote)} is won: {label} {waits}, with Quote No. {number}")
            return
        rows = job.bc.read_ids(BC_SALES_ORDER, ["number", "quoteNumber"], [order_coupling.bc_id])
        if not rows:
            job.note(f"{quote_label(quote)} is won: the Business Central order of {label} no longer exists")
            return
        row = rows[0]
        if row.values.get("quoteNumber") == number:
            return
        [result] = job.bc.update(BC_SALES_ORDER, [RowChange(row.id, row.etag, {"quoteNumber": number})], ["number"])
        if result.error is not None:
            raise self._as_record_error(result.error)
        kept = order_coupling.bc_values or {}
        if kept.get(PUSHED) is not None and kept[PUSHED] == row.etag and result.record is not None:
            # two-way mode: bcsync's own write gives the order a new version, which has nothing for Sales (sync.
            # order_push would re-activate and submit the Sales order again for it)
            moved = dataclasses.replace(order_coupling, bc_values={**kept, PUSHED: result.record.etag})
            job.couplings.save_many([moved])
        job.counts.modified += 1
        job.note(f"{quote_label(quote)} is won: Business Central order {row.values.get('number')} of {label} has "
                 f"Quote No. {number}")
