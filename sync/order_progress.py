"""SALESORDER-ORDER towards Sales: what becomes of a coupled order in Business Central shows on its Sales order.

Each run of the mapping's job reads the coupled Business Central orders changed since it last saw them (their
version differs from the one the coupling keeps) and, as Business Central's own integration does:

- updates the Sales order of a released order from it: Last Shipment Date -> datefulfilled, the amount before
  and after tax -> totalamountlessfreight and totalamount, the invoice discount -> discountamount. A submitted
  order is written as bcsync writes it elsewhere (Active, the columns, Submitted again: sync.writeback);
- writes status posts on the Sales order's wall (Business Central's Sales Order Status job): when the order is
  released, when a shipment is posted and when an invoice is posted for it;
- when the order is posted in full (it is gone and a posted invoice names it), posts on the account's wall that
  the order was posted, besides the posts on the order.

Business Central learns of a release or a posting from events inside its own session; bcsync sees them as
changes of what posting leaves on the order (Status, Last Shipping No., Last Posting No.), remembered on the
coupling with the version they were read at. A post's id is made from the event, so a run that repeats a post
(its answer lost, or the run stopped before the coupling was saved) finds it already there instead of posting
twice.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Sequence

from .errors import AlreadyExistsError
from .model import Side
from .ports import Coupling, NewRow, Record, WriteBack
from .process import JobContext
from .tables import BC_SALES_ORDER, CRM_POST
from .writeback import WriteBacks

RELEASED = "Open"        # API v2.0's name for Business Central's Released (its "Draft" is Business Central's Open)
AUTO_POST, STATUS_POST = 1, 7  # post.source Auto Post, post.type Status
PROGRESS = ["number", "status", "totalAmountExcludingTax", "totalAmountIncludingTax", "discountAmount",
            "fullyShipped", "lastShipmentDate", "lastShippingNumber", "lastPostingNumber"]
SEEN = ("status", "fullyShipped", "lastShippingNumber", "lastPostingNumber")  # kept on the coupling
POSTS = uuid.UUID("0c6f5f8e-53c4-4d4e-9a51-3e1f1d1b6a7e")  # namespace of the post ids


@dataclasses.dataclass(frozen=True)
class Post:
    table: str      # the table of the wall: salesorder or account
    row_id: str
    text: str
    event: str      # what makes the post one of a kind (its id is made from it)

    def new_row(self) -> NewRow:
        return NewRow({"text": self.text[:1000], "source": AUTO_POST, "type": STATUS_POST,
                       f"regardingobjectid_{self.table}": self.row_id},
                      id=str(uuid.uuid5(POSTS, f"{self.table}/{self.row_id.lower()}/{self.event}")))


def order_posts(coupling: Coupling, row: Record, now: dict) -> list[Post]:
    """The status posts that what Business Central shows now (`now`, the SEEN fields of `row`) calls for, against
    what the coupling saw last. An order bcsync has not seen yet was created by it, open and not posted."""
    before, order = coupling.bc_values or {}, coupling.crm_id
    posts = []
    if now.get("status") == RELEASED and before.get("status") != RELEASED:
        posts.append(Post("salesorder", order, "The order was released in Business Central.",
                          f"released/{row.etag}"))
    if now.get("lastShippingNumber") and now["lastShippingNumber"] != before.get("lastShippingNumber"):
        posts.append(Post("salesorder", order, f"Business Central posted shipment {now['lastShippingNumber']} "
                                               f"for the order.", f"shipment/{now['lastShippingNumber']}"))
    if now.get("lastPostingNumber") and now["lastPostingNumber"] != before.get("lastPostingNumber"):
        posts.append(invoice_post(order, now["lastPostingNumber"]))
    return posts


def bc_date(value) -> str | None:
    """A Business Central date as a Sales date; its blank date (0001-01-01) as none."""
    text = str(value)[:10] if value else ""
    return None if text in ("", "0001-01-01") else text


def invoice_post(order_id: str, number: str) -> Post:
    return Post("salesorder", order_id, f"Business Central posted invoice {number} for the order.", f"invoice/{number}")


def write_posts(job: JobContext, posts: Sequence[Post]) -> None:
    """Create the posts; one already there is not posted again, one that fails is named in the job log (a post
    tells, it is not worth failing the order over, as in Business Central)."""
    if not posts:
        return
    for post, result in zip(posts, job.crm.insert(CRM_POST, [p.new_row() for p in posts], ["text"])):
        if result.error is not None and not isinstance(result.error, AlreadyExistsError):
            job.note(f"post on {post.table} {post.row_id} ('{post.text}') could not be written: "
                     f"{result.error.message}")


class OrderProgress:
    """Follows coupled Business Central orders towards Sales (a part of SalesOrderProcess's job)."""

    def __init__(self, write_backs: WriteBacks, mapping: str):
        self.write_backs = write_backs
        self.mapping = mapping

    def follow(self, job: JobContext, present: list[Record], couplings: dict[str, Coupling],
               write_values: bool = True) -> None:
        """The orders of `present` (read with their version) that changed since their coupling saw them. Without
        `write_values` only the posts (two-way mode, where the order's push writes the values)."""
        couplings = {bc_id.lower(): c for bc_id, c in couplings.items()}
        changed = [r.id for r in present if r.id.lower() in couplings and r.etag != couplings[r.id.lower()].bc_etag]
        if not changed:
            return
        rows = job.bc.read_ids(BC_SALES_ORDER, PROGRESS, changed)
        posts: list[Post] = []
        write_backs: list[WriteBack] = []
        seen: list[Coupling] = []
        # an order whose error names Sales fields its Business Central order still lacks (released before they
        # could be set) keeps its Sales amounts: Business Central's would undo the discount Sales asks for, which
        # bcsync reads from them, and clear the error that shows it
        lacking = {i.lower() for i, f in job.failures.items() if f.field}
        for row in rows:
            coupling, v = couplings[row.id.lower()], row.values
            now = {k: v.get(k) for k in SEEN}
            posts += order_posts(coupling, row, now)
            if v.get("status") == RELEASED and write_values:  # Business Central's mapping takes released orders only
                values = {"datefulfilled": bc_date(v.get("lastShipmentDate"))}
                if coupling.crm_id.lower() not in lacking:
                    values.update(totalamountlessfreight=v.get("totalAmountExcludingTax"),
                                  totalamount=v.get("totalAmountIncludingTax"), discountamount=v.get("discountAmount"))
                write_backs.append(WriteBack(coupling.crm_id, values))
            seen.append(dataclasses.replace(coupling, bc_etag=row.etag, bc_values={**(coupling.bc_values or {}), **now},
                                            synced_at=job.clock.now(), job_id=job.job_id))
        # recorded first, the write-backs outlive a run that stops here; the posts' ids make them unique
        begun = self.write_backs.begin(job, write_backs)
        write_posts(job, posts)
        job.couplings.save_many(seen)
        job.counts.modified += len(begun)
        for order_id, reason in self.write_backs.complete(job, begun).items():
            job.note(f"sales order {order_id}: what Business Central shows of it could not be written ({reason}); "
                     f"completed by the next run")

    def posted(self, job: JobContext, couplings: Sequence[Coupling], invoices: dict[str, Record]) -> None:
        """Orders posted in full (each coupling's posted invoice, by Business Central order id): the posts of
        what that last posting did on the Sales order, and one on the customer's account."""
        accounts = job.couplings.get_many("CUSTOMER", Side.BC, sorted({
            str(i.values.get("customerId")) for i in invoices.values() if i.values.get("customerId")}))
        posts: list[Post] = []
        for c in couplings:
            invoice = invoices.get(c.bc_id.lower())
            if invoice is None:
                continue
            v, order = invoice.values, c.crm_id
            if not (c.bc_values or {}).get("fullyShipped"):  # that posting shipped what was left
                posts.append(Post("salesorder", order, f"Business Central posted the last shipment of the order with "
                                                       f"invoice {v['number']}.", f"shipment/{v['number']}"))
            if v["number"] != (c.bc_values or {}).get("lastPostingNumber"):
                posts.append(invoice_post(order, v["number"]))
            account = accounts.get(str(v.get("customerId")))
            if account is not None:
                reference = v.get("customerPurchaseOrderReference") or v.get("orderNumber")
                posts.append(Post("account", account.crm_id,
                                  f"Order {reference} was posted in Business Central: invoice {v['number']}.",
                                  f"posted/{v['number']}"))
        write_posts(job, posts)
