"""ITEM-AVAILABILITY: Business Central inventory for Sales users.

Posting does not change an item: only item ledger entries are added. So, as Business Central's own
"Item Availability" job does, the job reads the ledger entries posted since its watermark and
pushes the inventory of their items, when coupled, to the products' quantityonhand. Its first run
pushes every coupled item. `lookup` answers a Sales user's question for one product on the spot.
"""

from __future__ import annotations

import datetime as dt
from typing import Sequence

from .errors import RecordError
from .model import Direction, Side
from .failures import clear_gone, failed_again
from .ports import Record, RowChange
from .process import JobContext
from .tables import BC_ITEM, BC_ITEM_LEDGER_ENTRY, CRM_PRODUCT
from .values import as_guid

MAPPING = "ITEM-AVAILABILITY"
ITEMS = "ITEM-PRODUCT"


class ItemAvailabilityProcess:
    """The job of ITEM-AVAILABILITY (a sync.process.JobProcess)."""

    # the tables the job reads and updates (what the connection check tries)
    reads = (BC_ITEM_LEDGER_ENTRY, BC_ITEM)
    writes = (CRM_PRODUCT,)

    def has_work(self, job: JobContext) -> bool:
        since = job.state.watermark(MAPPING, Direction.TO_CRM)
        if since is None or job.failures:
            return True
        return bool(next(iter(job.bc.read_changed(BC_ITEM_LEDGER_ENTRY, ["itemNumber"], since=since, limit=1)), []))

    def run(self, job: JobContext, deadline: dt.datetime | None):
        since = job.state.watermark(MAPPING, Direction.TO_CRM)
        if since is None:
            for ids in job.couplings.coupled_ids(ITEMS, Side.BC, page_size=100):
                self._push(job, job.bc.read_ids(BC_ITEM, ["number", "inventory"], ids))
                job.progress()
        else:
            retried: set[str] = set()
            if job.failures:  # items whose inventory could not be written last time
                items = job.bc.read_ids(BC_ITEM, ["number", "inventory"], list(job.failures))
                clear_gone(job, Direction.TO_CRM, list(job.failures), items)  # deleted since they failed
                self._push(job, items)
                retried = {i.id.lower() for i in items}
            for page in job.bc.read_changed(BC_ITEM_LEDGER_ENTRY, ["itemNumber"], since=since, page_size=500):
                numbers = sorted({r.values.get("itemNumber") for r in page if r.values.get("itemNumber")})
                items = job.bc.read_matching(BC_ITEM, ["number", "inventory"], "number", numbers)
                self._push(job, [i for i in items if i.id.lower() not in retried])
                job.progress()
        # entries are never changed once posted; the cap's margin covers those committed late
        job.state.advance_watermark(MAPPING, Direction.TO_CRM, job.cap)
        return job.outcome()

    @staticmethod
    def _push(job: JobContext, items: Sequence[Record]) -> None:
        coupled = job.couplings.get_many(ITEMS, Side.BC, [i.id for i in items])
        products = {p.id.lower(): p for p in job.crm.read_ids(CRM_PRODUCT, ["quantityonhand"],
                                                              [c.crm_id for c in coupled.values()])}
        changes, done = [], []
        for item in items:
            c = coupled.get(item.id)
            product = products.get(c.crm_id.lower()) if c else None
            if product is None:
                done.append(item.id)  # not in the integration
                continue
            inventory = on_hand(item)
            if float(product.values.get("quantityonhand") or 0) == inventory:
                job.counts.unchanged += 1
                done.append(item.id)
            else:
                changes.append((item, RowChange(product.id, None, {"quantityonhand": inventory})))
        now, failures, outage = job.clock.now(), [], None
        for (item, _), result in zip(changes, job.crm.update(CRM_PRODUCT, [c for _, c in changes], ["quantityonhand"])):
            if result.error is None:
                job.counts.modified += 1
                done.append(item.id)
                continue
            if result.error.transient:  # not the item's fault: the job stops, its watermark stays
                outage = outage or result.error
                continue
            job.counts.failed += 1
            label = f"Item {item.values.get('number')}"
            failures.append(failed_again(
                job.failures.get(item.id), result.error, mapping=MAPPING, direction=Direction.TO_CRM,
                source_id=item.id, record=label, now=now, job_id=job.job_id, skippable=False,
                message=f"{label}: the inventory could not be written to its product: {result.error.message}"))
        if failures:  # tried again at the next run
            job.errors.save_many(failures)
            job.failures.update({f.source_id: f for f in failures})
        cleared = [i for i in done if job.failures.pop(i, None) is not None]
        if cleared:
            job.errors.clear_many(MAPPING, Direction.TO_CRM, cleared)
        if outage is not None:
            raise outage

    @staticmethod
    def lookup(job: JobContext, product: str) -> dict:
        """Inventory of one product, by its Dataverse id or its product number, from its coupled item."""
        guid = as_guid(product)
        field = "productid" if guid else "productnumber"
        rows = job.crm.read_matching(CRM_PRODUCT, ["productnumber", "name"], field, [guid or product.strip()])
        if not rows:
            raise RecordError(f"There is no product with {field} {product} in Sales.", field=field, code="NotFound")
        row = rows[0]
        coupled = job.couplings.get_many(ITEMS, Side.CRM, [row.id])
        items = job.bc.read_ids(BC_ITEM, ["number", "baseUnitOfMeasureCode", "inventory"],
                                [c.bc_id for c in coupled.values()])
        if not items:
            raise RecordError(f"Product {row.values.get('productnumber')} is not coupled to a Business Central item "
                              f"(table mapping {ITEMS}).", field="productid", code="NotCoupled")
        item = items[0].values
        return {"product_id": row.id, "product_number": row.values.get("productnumber"), "item_no": item.get("number"),
                "unit": item.get("baseUnitOfMeasureCode"), "inventory": on_hand(items[0])}


def on_hand(item: Record) -> float:
    """The quantity on hand Sales is told: Business Central's inventory, never below zero, as Sales
    keeps no negative stock (the push and the on-the-spot lookup agree)."""
    return max(0.0, float(item.values.get("inventory") or 0))
