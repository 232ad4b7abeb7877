"""ITEM UOM and RESOURCE UOM (unit-group mode): the units of measure of an item or resource as the units of
its Sales unit group (sync.rules.units), based on the group's base unit (which carries the group's name and
holds 1, so a unit's quantity is its Qty. per Unit of Measure). A unit written to Sales, new or with another
quantity, gets its item in the default price list at once, at the product's price times the unit's quantity:
the product's own job only reprices when the item or resource changes, which adding a unit of measure does
not."""

from __future__ import annotations

from typing import Any, Sequence

from ..errors import RecordError
from ..model import BcTable, Side
from ..ports import Record
from ..tables import CRM_PRICE_LIST, CRM_PRICE_LIST_ITEM, CRM_UNIT
from . import MappingRules, RuleContext, Written
from .products import PriceItem, keep_price_list_items, unit_price
from .units import UNIT_GROUP, UnitOwner, units_of_groups


class UnitOfMeasureRules(MappingRules):
    creates = (CRM_PRICE_LIST, CRM_PRICE_LIST_ITEM)

    def __init__(self, owner: UnitOwner, products: str, table: BcTable, price: str):
        self.owner = owner          # items or resources
        self.products = products    # their table mapping: ITEM-PRODUCT
        self.table = table          # and Business Central table: items
        self.price = price          # its unit price field
        self.reads = (table, CRM_UNIT)
        self.extra_fields = {Side.CRM: ("baseuom",)}

    def _groups(self, ctx: RuleContext, rows: Sequence[Record]) -> dict[Any, Any]:
        return ctx.resolver.coupled(UNIT_GROUP, "Source_Id", [r.values.get(self.owner.system_id) for r in rows])

    def prepare(self, ctx: RuleContext, rows: Sequence[Record]) -> None:
        units_of_groups(ctx, list(self._groups(ctx, rows).values()))

    def extra_values(self, ctx: RuleContext, row: Record, dst_row: Record | None) -> dict[str, Any]:
        """A new unit is based on its group's base unit."""
        if dst_row is not None:
            return {}
        group = self._groups(ctx, [row]).get(row.values.get(self.owner.system_id))
        base = next((u.id for u in units_of_groups(ctx, [group]).get(group, []) if u.values.get("isschedulebaseuom")),
                    None) if group else None
        return {"baseuom": base} if base else {}  # no group: the lookup of uomscheduleid fails the row, naming it

    def after_write(self, ctx: RuleContext, written: Sequence[Written]) -> dict[str, RecordError]:
        owner_ids = sorted({str(w.source.values.get(self.owner.system_id) or "") for w in written} - {""})
        if not owner_ids:
            return {}
        coupled = ctx.couplings.get_many(self.products, Side.BC, owner_ids)
        products = {c.bc_id.lower(): c.crm_id for c in coupled.values()}
        prices = {r.id.lower(): float(r.values.get(self.price) or 0)
                  for r in ctx.bc.read_ids(self.table, [self.price], [i for i in owner_ids if i.lower() in products])}
        entries = []
        for w in written:
            owner_id = str(w.source.values.get(self.owner.system_id) or "").lower()
            if owner_id in products and owner_id in prices:  # a product not there yet is priced by its own job
                quantity = float(w.source.values.get("Qty_per_Unit_of_Measure") or 0)
                entries.append(PriceItem(w.source.id, products[owner_id], w.target.id,
                                         unit_price(max(0.0, prices[owner_id]), quantity),
                                         f"{w.source.values.get(self.owner.number)} ({w.source.values.get('Code')})"))
        return keep_price_list_items(ctx, entries)
