"""CUSTPRCGRP-PRICE and SALESPRC-PRODPRICE: customer price groups as Sales price lists
in the local currency, and their sales prices as price list items in the unit of the product's group: the
group's one unit in legacy unit mode, the unit of the price's unit of measure in unit-group mode."""

from __future__ import annotations

import datetime as dt
from typing import Any, Sequence

from ..errors import RecordError
from ..facts import DEFAULT_PRICE_LIST
from ..model import Side
from ..ports import Record
from ..tables import BC_ITEM, CRM_UNIT
from . import IGNORE, MappingRules, RuleContext
from .currency import BC_COMPANY_INFORMATION, CurrencyRules
from .units import ITEM_UNITS, coupled_groups, coupled_units, single_unit, unit_groups, unit_of


class PriceListRules(MappingRules):
    stales = (DEFAULT_PRICE_LIST,)  # the job writes Sales price lists
    reads = (BC_COMPANY_INFORMATION,)

    def extra_values(self, ctx: RuleContext, row: Record, dst_row: Record | None) -> dict[str, Any]:
        return {"transactioncurrencyid": CurrencyRules().lcy_currency_id(ctx)} if dst_row is None else {}


class SalesPriceRules(MappingRules):
    """The unit of a price list item: the price's unit of measure, or the item's base unit when blank."""

    extra_fields = {Side.BC: ("Unit_of_Measure_Code", "Item_No", "Sales_Code", "Starting_Date", "Ending_Date",
                              "Minimum_Quantity", "Variant_Code")}
    reads = (BC_ITEM, CRM_UNIT)

    def accept(self, ctx: RuleContext, row: Record, coupling) -> Any:
        """Sales has one price per product and unit in a price list: the one in force now, for any
        quantity and no variant. Future, expired, quantity and variant prices are left out."""
        today = dt.date.today().isoformat()
        start, end = str(row.values.get("Starting_Date") or "")[:10], str(row.values.get("Ending_Date") or "")[:10]
        if start > today or (end and end not in ("0001-01-01",) and end < today):
            return IGNORE
        if float(row.values.get("Minimum_Quantity") or 0) != 0 or row.values.get("Variant_Code"):
            return IGNORE
        return None

    def prepare(self, ctx: RuleContext, rows: Sequence[Record]) -> None:
        units = ctx.cache.setdefault("base_unit_of_item", {})
        wanted = [n for n in dict.fromkeys(r.values.get("Item_No") for r in rows) if n and n not in units]
        if wanted:
            for item in ctx.bc.read_matching(BC_ITEM, ["number", "baseUnitOfMeasureCode"], "number", wanted):
                units[item.values["number"]] = item.values.get("baseUnitOfMeasureCode") or ""
        if unit_groups(ctx):
            coupled_units(ctx, ITEM_UNITS, [r.values.get("Item_No") for r in rows], rows)
        else:
            coupled_groups(ctx, [self._unit(ctx, r) for r in rows])

    @staticmethod
    def _unit(ctx: RuleContext, row: Record) -> str:
        return row.values.get("Unit_of_Measure_Code") or ctx.cache["base_unit_of_item"].get(row.values.get("Item_No"), "")

    def extra_values(self, ctx: RuleContext, row: Record, dst_row: Record | None) -> dict[str, Any]:
        code = self._unit(ctx, row)
        if unit_groups(ctx):
            return {"uomid": unit_of(ctx, ITEM_UNITS, row.values.get("Item_No"), code, [row], "Unit of Measure Code")}
        group = coupled_groups(ctx, [code]).get(code) if code else None
        if group is None:
            raise RecordError(f"Sales Price of item {row.values.get('Item_No')} for {row.values.get('Sales_Code')}: "
                              f"unit of measure {code!r} is not coupled to a Sales unit group; couple it first "
                              f"(table mapping UNIT OF MEASURE).", field="Unit of Measure Code", code="NotCoupled")
        return {"uomid": single_unit(ctx, group, code)}
