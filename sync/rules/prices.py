"""Sales price lists and their items, in either of Business Central's two pricing experiences.

Legacy (CUSTPRCGRP-PRICE, SALESPRC-PRODPRICE): a customer price group is a Sales price list, its sales prices
the list's items; Sales holds one price per product and unit in a list, so only the price in force today, for
any quantity and no variant, is carried, and the others are listed in the job log.

Extended (PLHEADER-PRICE, PLLINE-PRODPRICE, the new sales pricing experience): a sales price list (Price List
Header) is a Sales price list with its dates and state, its lines (items and resources) the list's items.

In both, a Sales price list has one currency: that of its first price (line), which every other price of the list
must share, or the local currency when it has none; a price list item is in its list's currency, never in
another list's. Dataverse cannot change a price list's currency, so a list whose prices moved to another currency
is an error naming it. The unit of an item is its price's unit of measure, or the item's or resource's base unit
when blank: the group's one unit in legacy unit mode, the unit of that unit of measure in unit-group mode.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Sequence

from ..errors import RecordError
from ..facts import DEFAULT_PRICE_LIST
from ..model import BcTable, Side
from ..ports import Record
from ..tables import (
    BC_ITEM,
    BC_PRICE_LIST_HEADER,
    BC_PRICE_LIST_LINE,
    BC_RESOURCE,
    BC_SALES_PRICE,
    BC_SALES_SETUP,
    CRM_UNIT,
)
from ..values import BC_BLANK_DATE, normalize
from . import IGNORE, MappingRules, RuleContext, Written
from .currency import BC_COMPANY_INFORMATION, CurrencyRules
from .units import ITEM_UNITS, RESOURCE_UNITS, UnitOwner, coupled_groups, coupled_units, single_unit, unit_groups, \
    unit_of

ITEM, RESOURCE = "Item", "Resource"
# what an asset of a price is: its table, number and base unit fields, its product mapping, its units
ASSETS: dict[str, tuple[BcTable, str, str, str, UnitOwner]] = {
    ITEM: (BC_ITEM, "number", "baseUnitOfMeasureCode", "ITEM-PRODUCT", ITEM_UNITS),
    RESOURCE: (BC_RESOURCE, "No", "Base_Unit_of_Measure", "RESOURCE-PRODUCT", RESOURCE_UNITS),
}
LINE_FIELDS = ["Price_List_Code", "Line_No", "Asset_Type", "Asset_No", "Currency_Code", "Unit_of_Measure_Code",
               "Minimum_Quantity"]
PRICE_FIELDS = ["Sales_Code", "Item_No", "Currency_Code", "Unit_of_Measure_Code", "Minimum_Quantity", "Variant_Code",
                "Starting_Date", "Ending_Date"]


class Price:
    """A price of a price list, whichever the experience: a Price List Line, or a legacy Sales Price (an item's)."""

    def __init__(self, row: Record, legacy: bool):
        v = row.values
        self.row, self.legacy = row, legacy
        self.list_code = str(v.get("Sales_Code" if legacy else "Price_List_Code") or "")
        self.kind = ITEM if legacy else str(v.get("Asset_Type") or "")
        self.number = str(v.get("Item_No" if legacy else "Asset_No") or "")
        self.currency = str(v.get("Currency_Code") or "")
        self.unit = str(v.get("Unit_of_Measure_Code") or "")
        self.label = (f"Sales Price of item {self.number} for {self.list_code}" if legacy else
                      f"Price list {self.list_code} line {v.get('Line_No')} ({self.kind} {self.number})")

    @property
    def asset(self) -> tuple[str, str]:
        return self.kind, self.number

    @property
    def sent(self) -> bool:
        """Extended: whether PLLINE-PRODPRICE carries this line: an item's or a resource's (its filter), with an Asset
        No. (its rule), for Minimum Quantity 0 (its filter)."""
        return self.kind in ASSETS and bool(self.number) and not float(self.row.values.get("Minimum_Quantity") or 0)


# -- products and units of the items and resources prices name ---------------------------------------------------


def prepare_assets(ctx: RuleContext, prices: Sequence[Price], rows: Sequence[Record]) -> None:
    """Reads, once per job and asset, the base unit and the coupled product of every item and resource these prices
    name (products not coupled yet are synchronised first), and their units."""
    cache = ctx.cache.setdefault("price_assets", {})
    for kind, (table, number, base, mapping, owner) in ASSETS.items():
        wanted = [n for n in dict.fromkeys(p.number for p in prices if p.kind == kind and p.number)
                  if (kind, n) not in cache]
        if not wanted:
            continue
        found = ctx.bc.read_matching(table, [number, base], number, wanted)
        coupled, why = ctx.coupled_first(mapping, [r.id for r in found], rows)
        for n in wanted:
            cache[(kind, n)] = (None, "", f"there is no {kind.lower()} {n}")
        for r in found:
            c = coupled.get(r.id)
            cache[(kind, r.values.get(number))] = (
                c.crm_id if c else None, str(r.values.get(base) or ""),
                "" if c else why.get(r.id.lower()) or f"it is not coupled to a Sales product ({mapping})")
        if unit_groups(ctx):
            coupled_units(ctx, owner, wanted, rows)
    if not unit_groups(ctx):
        coupled_groups(ctx, [unit_code(ctx, p) for p in prices if p.kind in ASSETS])


def product_of(ctx: RuleContext, price: Price) -> str:
    """The Sales product of the price's item or resource, or an error naming both (prepared beforehand)."""
    product, _, why = ctx.cache["price_assets"].get(price.asset, (None, "", "it was not read"))
    if product is None:
        raise RecordError(f"{price.label}: {price.kind.lower()} {price.number} has no Sales product: {why.rstrip('.')}.",
                          field="Item No." if price.legacy else "Asset No.", code="NotCoupled")
    return product


def unit_code(ctx: RuleContext, price: Price) -> str:
    """The price's unit of measure, or its item's or resource's base unit when blank."""
    return price.unit or ctx.cache["price_assets"].get(price.asset, (None, "", ""))[1]


def unit_of_price(ctx: RuleContext, price: Price) -> str:
    """The Sales unit the price is for, or an error naming the price and the unit of measure."""
    code = unit_code(ctx, price)
    if unit_groups(ctx):
        return unit_of(ctx, ASSETS[price.kind][4], price.number, code, [price.row], "Unit of Measure Code")
    group = coupled_groups(ctx, [code]).get(code) if code else None
    if group is None:
        raise RecordError(f"{price.label}: unit of measure {code!r} is not coupled to a Sales unit group; couple it "
                          f"first (table mapping UNIT OF MEASURE).", field="Unit of Measure Code", code="NotCoupled")
    return single_unit(ctx, group, code)


# -- the price list: its one currency ---------------------------------------------------------------------------


def list_currency(ctx: RuleContext, list_label: str, prices: Sequence[Price], dst_row: Record | None) -> str:
    """The Sales currency of a price list: its first price's, which all its prices must share (the local currency
    when it has none); a Sales list already in another currency is an error, as Dataverse keeps a list's currency."""
    code = prices[0].currency if prices else ""
    for price in prices:
        if price.currency != code:
            raise RecordError(
                f"{list_label}: {price.label} is in currency {price.currency or 'LCY'}, but the list's first price is "
                f"in {code or 'LCY'}. A Sales price list has one currency, so every price of a list must share it; "
                f"move the prices in {price.currency or 'LCY'} to a price list of their own.",
                field="Currency Code", code="MixedCurrencies", skippable=False)
    if code:
        currency = ctx.resolver.coupled("CURRENCY", "code", [code]).get(code)
        if currency is None:
            raise RecordError(f"{list_label}: its currency {code} is not coupled to a Sales currency; couple it first "
                              f"(table mapping CURRENCY).", field="Currency Code", code="NotCoupled", skippable=False)
    else:
        currency = CurrencyRules().lcy_currency_id(ctx)
    held = dst_row.values.get("transactioncurrencyid") if dst_row is not None else None
    if held and normalize(held) != normalize(currency):
        raise RecordError(
            f"{list_label}: its Sales price list {dst_row.values.get('name')!r} is in another currency than its prices "
            f"({code or 'LCY'}), and Sales cannot change a price list's currency. Give the prices in {code or 'LCY'} a "
            f"price list of their own, or retire the Sales price list and uncouple it so that a new one is made.",
            field="Currency Code", code="CurrencyChanged", skippable=False)
    return currency


def _read_prices(ctx: RuleContext, table: BcTable, fields: list[str], key: str, codes: list[str], legacy: bool,
                 where: str = "") -> None:
    """The prices of these lists, once per job, in their order (cache "list_prices": list code -> prices)."""
    cache = ctx.cache.setdefault("list_prices", {})
    wanted = [c for c in dict.fromkeys(codes) if c and c not in cache]
    if not wanted:
        return
    for c in wanted:
        cache[c] = []
    order = "Starting_Date" if legacy else "Line_No"
    for row in sorted(ctx.bc.read_matching(table, fields, key, wanted, where=where),
                      key=lambda r: (r.values.get(order) or 0) if order == "Line_No" else str(r.values.get(order))):
        price = Price(row, legacy)
        cache.setdefault(price.list_code, []).append(price)


class PriceListRules(MappingRules):
    """CUSTPRCGRP-PRICE and PLHEADER-PRICE: the list's currency from its prices (checked before every write);
    extended, also its state from the list's Status, the Allow Updating Defaults rule, and its lines pushed after."""

    stales = (DEFAULT_PRICE_LIST,)  # the job writes Sales price lists
    reads = (BC_COMPANY_INFORMATION,)

    def __init__(self, extended: bool):
        self.extended = extended
        if extended:
            self.extra_fields = {Side.BC: ("Status", "Allow_Updating_Defaults")}
            self.reads = (BC_COMPANY_INFORMATION, BC_PRICE_LIST_LINE, BC_SALES_SETUP, BC_ITEM, BC_RESOURCE, CRM_UNIT)
        else:
            self.reads = (BC_COMPANY_INFORMATION, BC_SALES_PRICE)

    def accept(self, ctx: RuleContext, row: Record, coupling) -> Any:
        """Extended: only lists whose Allow Updating Defaults is on when Sales & Receivables Setup names a default
        price list, and only the others when it does not (Business Central's filter, which depends on the setup)."""
        if self.extended and bool(row.values.get("Allow_Updating_Defaults")) != updating_defaults_wanted(ctx):
            ctx.note_record(left_out_note(ctx), str(row.values.get("Code")))
            return IGNORE
        return None

    def prepare(self, ctx: RuleContext, rows: Sequence[Record]) -> None:
        codes = [str(r.values.get("Code") or "") for r in rows]
        if self.extended:
            _read_prices(ctx, BC_PRICE_LIST_LINE, LINE_FIELDS, "Price_List_Code", codes, legacy=False)
        else:
            _read_prices(ctx, BC_SALES_PRICE, PRICE_FIELDS, "Sales_Code", codes, legacy=True,
                         where="Sales_Type eq 'Customer_x0020_Price_x0020_Group'")
        prices = [p for c in codes for p in ctx.cache["list_prices"].get(c, [])]
        prepare_assets(ctx, [p for p in prices if p.sent] if self.extended else
                       [p for p in prices if p.kind in ASSETS and p.number and carried(p.row) is None], rows)

    def extra_values(self, ctx: RuleContext, row: Record, dst_row: Record | None) -> dict[str, Any]:
        code = str(row.values.get("Code") or "")
        label = f"Price list {code}" if self.extended else f"Customer price group {code}"
        prices = ctx.cache["list_prices"].get(code, [])
        if not self.extended:  # the prices Sales gets: in force today, for any quantity, no variant
            prices = [p for p in prices if carried(p.row) is None]
        # the currency: of every line, as Business Central's header check reads them all
        values: dict[str, Any] = {"transactioncurrencyid": list_currency(ctx, label, prices, dst_row)}
        for price in prices:
            if self.extended:
                note_left_out(ctx, price)
            if (price.sent if self.extended else price.kind in ASSETS and price.number):
                try:  # only the lines sent: a line never sent cannot miss a product or a unit in Sales
                    product_of(ctx, price)
                    unit_of_price(ctx, price)
                except RecordError as exc:  # the list waits on its price's item or unit: retried at every run
                    raise RecordError(exc.message, field=exc.field, code=exc.code, skippable=False) from None
        if self.extended:
            active = row.values.get("Status") == "Active"
            values.update(statecode=0 if active else 1, statuscode=100001 if active else 100002)
        return values

    def after_write(self, ctx: RuleContext, written: Sequence[Written]) -> dict:
        """Extended: the lines of a list written now follow it at once (PLLINE-PRODPRICE), as in Business Central;
        those already coupled, and those of unchanged lists, are the line job's, which runs next."""
        if not self.extended or not written:
            return {}
        codes = {str(w.source.values.get("Code") or "") for w in written}
        lines = [p.row for c in codes for p in ctx.cache["list_prices"].get(c, []) if p.sent]
        if lines:
            ctx.coupled_first("PLLINE-PRODPRICE", [r.id for r in lines], [w.source for w in written])
        return {}


def note_left_out(ctx: RuleContext, price: Price) -> None:
    """Extended: lists in the job log a line PLLINE-PRODPRICE does not carry, with why."""
    if price.sent:
        return
    if price.kind not in ASSETS:
        why = "other asset types than items and resources have no Sales product"
    elif not price.number:
        why = "a price for every item or resource has no one Sales product"
    else:
        why = "a Sales price list item has no minimum quantity"
    ctx.note_record(f"price list lines not carried to Sales ({why})",
                    f"{price.label}, minimum quantity {price.row.values.get('Minimum_Quantity') or 0}")


def updating_defaults_wanted(ctx: RuleContext) -> bool:
    """The Allow Updating Defaults of the price lists synchronised: on when Sales & Receivables Setup names a default
    price list, else off (Business Central's filter); read once per job."""
    if "default_price_list_code" not in ctx.cache:
        setup = next(iter(ctx.bc.read_changed(BC_SALES_SETUP, ["Default_Price_List_Code"], since=None)), [])
        ctx.cache["default_price_list_code"] = (setup[0].values.get("Default_Price_List_Code") or "") if setup else ""
    return bool(ctx.cache["default_price_list_code"])


def left_out_note(ctx: RuleContext) -> str:
    if updating_defaults_wanted(ctx):
        return ("price lists left out: Sales & Receivables Setup names a default price list, so, as in Business "
                "Central, only lists whose Allow Updating Defaults is on are synchronised")
    return ("price lists left out: Sales & Receivables Setup names no default price list, so, as in Business Central, "
            "only lists whose Allow Updating Defaults is off are synchronised")


def left_out_lists(ctx: RuleContext) -> set[str]:
    """The codes of the sales price lists the Allow Updating Defaults rule leaves out, read once per job."""
    if "left_out_lists" not in ctx.cache:
        where = f"Price_Type eq 'Sale' and Allow_Updating_Defaults eq {str(not updating_defaults_wanted(ctx)).lower()}"
        ctx.cache["left_out_lists"] = {str(r.values.get("Code")) for page in ctx.bc.read_changed(
            BC_PRICE_LIST_HEADER, ["Code"], since=None, where=where) for r in page}
    return ctx.cache["left_out_lists"]


def carried(row: Record) -> str | None:
    """Legacy: why a sales price is not carried to Sales (None when it is). Sales has one price per product and unit
    in a price list: the one in force now, for any quantity and no variant."""
    v = row.values
    today = dt.date.today().isoformat()
    start, end = str(v.get("Starting_Date") or "")[:10], str(v.get("Ending_Date") or "")[:10]
    if start > today:
        return f"not in force before {start}"
    if end and end != BC_BLANK_DATE and end < today:
        return f"ended on {end}"
    if float(v.get("Minimum_Quantity") or 0) != 0:
        return f"for a minimum quantity of {v.get('Minimum_Quantity')}"
    if v.get("Variant_Code"):
        return f"for variant {v.get('Variant_Code')}"
    return None


class PriceRules(MappingRules):
    """SALESPRC-PRODPRICE and PLLINE-PRODPRICE: a price list item's product and unit from its price's item or
    resource and unit of measure; legacy, prices not in force today (or for a quantity or variant) are listed in the
    job log instead."""

    reads = (BC_ITEM, BC_RESOURCE, CRM_UNIT)

    def __init__(self, extended: bool):
        self.legacy = not extended
        if extended:
            self.reads = (BC_ITEM, BC_RESOURCE, CRM_UNIT, BC_PRICE_LIST_HEADER, BC_SALES_SETUP)
        self.extra_fields = {Side.BC: tuple(PRICE_FIELDS if self.legacy else LINE_FIELDS)}

    def accept(self, ctx: RuleContext, row: Record, coupling) -> Any:
        if not self.legacy:  # the lines of a list left out go with it; a changed line without a product is noted
            code = str(row.values.get("Price_List_Code") or "")
            if code in left_out_lists(ctx):
                ctx.note_record(left_out_note(ctx), code)
                return IGNORE
            if not row.values.get("Asset_No"):
                note_left_out(ctx, Price(row, False))
                return IGNORE
            return None
        why = carried(row)
        if why:
            price = Price(row, True)
            ctx.note_record("sales prices not carried to Sales, which holds one price per product and unit in a "
                            "price list: the one in force today, for any quantity and no variant",
                            f"{price.label} ({why})")
            return IGNORE
        return None

    def prepare(self, ctx: RuleContext, rows: Sequence[Record]) -> None:
        prepare_assets(ctx, [Price(r, self.legacy) for r in rows], rows)

    def extra_values(self, ctx: RuleContext, row: Record, dst_row: Record | None) -> dict[str, Any]:
        price = Price(row, self.legacy)
        values = {"uomid": unit_of_price(ctx, price)}
        if not self.legacy:  # legacy: the item's product comes through its field mapping
            values["productid"] = product_of(ctx, price)
        return values
