"""ITEM-PRODUCT and RESOURCE-PRODUCT.

- Items become products of type Sales Inventory, resources of type Services; a new product gets the
  local currency, quantity decimals 2, the default price list, its unit group's unit, and is
  published (Dataverse creates products as drafts); afterwards Blocked and Retired follow each other.
- A product's vendor name is the name of the item's or resource's vendor (blank without one).
- Uncoupled blocked items/resources and uncoupled products that are not active create nothing; the
  write-in item or resource of Sales & Receivables Setup is never synchronised.
- The default price list "<company> Default Price List" in the local currency is created when
  missing and holds one item per product and unit: in legacy unit mode the product's one unit at its price;
  in unit-group mode each unit of its group at its price times the unit's quantity of base units.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Sequence

from ..errors import AlreadyExistsError, RecordError
from ..facts import BC_WRITE_IN_PRODUCT, DEFAULT_PRICE_LIST
from ..model import Direction, Side
from ..ports import NewRow, Record, RowChange
from ..tables import BC_SALES_SETUP, BC_VENDOR, CRM_PRICE_LIST, CRM_PRICE_LIST_ITEM, CRM_PRODUCT, CRM_UNIT
from . import IGNORE, MappingRules, RuleContext, Written
from .currency import BC_COMPANY_INFORMATION, CurrencyRules, company_information
from .units import ITEM_UNITS, RESOURCE_UNITS, UNIT_GROUP, coupled_groups, coupled_units, single_unit, \
    unit_groups, unit_of

ACTIVE, RETIRED, DRAFT = 0, 1, 2
PRICE_LIST_NAMESPACE = uuid.UUID("5c2f8e3a-8a0b-4d36-9a47-0d7f3c2b1e64")
STATUS_OF = {ACTIVE: 1, RETIRED: 2}


def write_in_product(ctx: RuleContext) -> tuple[str, str]:
    """(type, number) of the write-in product in Sales & Receivables Setup, blanks when none."""
    def read() -> list[str]:
        rows = next(iter(ctx.bc.read_changed(BC_SALES_SETUP, ["Write_in_Product_Type", "Write_in_Product_No"],
                                             since=None)), [])
        setup = rows[0].values if rows else {}
        return [setup.get("Write_in_Product_Type") or "", setup.get("Write_in_Product_No") or ""]
    kind, number = ctx.facts.get(BC_WRITE_IN_PRODUCT, read)
    return kind, number


def default_price_list(ctx: RuleContext) -> str:
    """The id of "<company> Default Price List" in the local currency, created when missing (found again
    when the local currency's row changed since)."""
    lcy_id = CurrencyRules().lcy_currency_id(ctx)
    return ctx.facts.get(DEFAULT_PRICE_LIST, lambda: {"currency": lcy_id, "id": _default_price_list(ctx, lcy_id)},
                         fits=lambda kept: kept["currency"] == lcy_id)["id"]


def _default_price_list(ctx: RuleContext, lcy_id: str) -> str:
    name = f"{company_information(ctx).get('displayName') or 'Business Central'} Default Price List"
    lcy = CurrencyRules.lcy_code(ctx)
    found = ctx.crm.read_matching(CRM_PRICE_LIST, ["name", "transactioncurrencyid"], "name", [name, f"{name} {lcy}"])
    in_lcy = [p for p in found if str(p.values.get("transactioncurrencyid")).lower() == lcy_id.lower()]
    if in_lcy:
        return in_lcy[0].id
    # a list of that name in another currency stays; ours gets the currency code in its name
    wanted = f"{name} {lcy}" if found else name
    # an id derived from the name: two jobs creating it at once make one list, not two
    list_id = str(uuid.uuid5(PRICE_LIST_NAMESPACE, f"{wanted}/{lcy}"))
    [result] = ctx.crm.insert(CRM_PRICE_LIST, [NewRow({"name": wanted, "transactioncurrencyid": lcy_id}, list_id)],
                              ["name"])
    if isinstance(result.error, AlreadyExistsError):
        return list_id
    if result.error is not None:
        raise RecordError(f"The default price list {wanted!r} could not be created: {result.error.message}",
                          code="DefaultPriceList")
    ctx.note(f"created the default price list {wanted!r} in {lcy}")
    return result.record.id


class ProductRules(MappingRules):
    update_only = ("statecode", "statuscode")
    reads = (BC_SALES_SETUP, BC_COMPANY_INFORMATION, CRM_UNIT, BC_VENDOR)
    creates = (CRM_PRICE_LIST, CRM_PRICE_LIST_ITEM)

    def __init__(self, product_type: int, blocked: str, unit: str, price: str, what: str, vendor: str):
        self.product_type = product_type   # 1 Sales Inventory (items), 3 Services (resources)
        self.blocked = blocked             # the Business Central Blocked field
        self.unit = unit                   # the Business Central base unit code field
        self.price = price                 # the Business Central unit price field
        self.what = what                   # "Item" / "Resource", as in Write-in Product Type
        self.vendor = vendor               # the Business Central Vendor No. field
        # a product's unit and its price list item cost reads: a scheduled run finds them again only where the
        # unit or the price changed since the pair was last synchronised
        self.inputs = {Side.BC: (unit, price)}
        self.owner = ITEM_UNITS if what == "Item" else RESOURCE_UNITS  # in unit-group mode
        self.extra_fields = {Side.CRM: ("defaultuomid", "defaultuomscheduleid", "pricelevelid", "transactioncurrencyid",
                                        "statecode", "statuscode", "producttypecode", "quantitydecimal", "price",
                                        "productnumber", "vendorname"),
                             Side.BC: (blocked, unit, price, vendor)}

    def accept(self, ctx: RuleContext, row: Record, coupling) -> Any:
        if ctx.direction is Direction.TO_CRM:
            kind, number = write_in_product(ctx)
            if number and kind.casefold() == self.what.casefold() and row.values.get(ctx.mapping.bc.key_field) == number:
                return IGNORE  # the write-in item or resource is never synchronised
            if coupling is None and row.values.get(self.blocked):
                return IGNORE  # a blocked item does not become a product
        elif coupling is None and row.values.get("statecode") != ACTIVE:
            return IGNORE  # only active products become items or resources
        return None

    def _kept_unit(self, ctx: RuleContext, row: Record) -> dict[str, Any] | None:
        return ctx.remembered(row, (self.unit,), ("defaultuomid",))

    def prepare(self, ctx: RuleContext, rows: Sequence[Record]) -> None:
        if ctx.direction is Direction.TO_CRM:
            if unit_groups(ctx):
                key = ctx.mapping.bc.key_field
                coupled_units(ctx, self.owner, [r.values.get(key) for r in rows], rows)
                ctx.resolver.coupled(UNIT_GROUP, "Source_Id", [r.id for r in rows])
            else:
                coupled_groups(ctx, [r.values.get(self.unit) for r in rows if self._kept_unit(ctx, r) is None])
            self._vendor_names(ctx, [r.values.get(self.vendor) for r in rows])
            # rows whose price list item holds their price and unit already, in the default price list
            kept = {r.id: k["pricelevelid"] for r in rows
                    if (k := ctx.remembered(r, (self.unit, self.price), ("pricelevelid",)))}
            try:
                price_list = default_price_list(ctx) if kept else None
            except RecordError:
                price_list = None  # each row fails on it in extra_values
            ctx.cache.setdefault("priced", set()).update(i for i, kept_list in kept.items() if kept_list == price_list)

    @staticmethod
    def _vendor_names(ctx: RuleContext, numbers: Sequence[str | None]) -> dict[str, str | None]:
        """Vendor numbers -> the vendors' names (None for a vendor that does not exist)."""
        names = ctx.cache.setdefault("vendor_names", {})
        wanted = sorted({n for n in numbers if n} - set(names))
        if wanted:
            found = {v.values.get("number"): v.values.get("displayName")
                     for v in ctx.bc.read_matching(BC_VENDOR, ["number", "displayName"], "number", wanted)}
            names.update({n: found.get(n) for n in wanted})
        return {n: names.get(n) for n in numbers if n}

    def extra_values(self, ctx: RuleContext, row: Record, dst_row: Record | None) -> dict[str, Any]:
        if ctx.direction is Direction.FROM_CRM:
            values = {self.blocked: row.values.get("statecode") != ACTIVE}
            if dst_row is None and row.values.get("productnumber"):
                # a new item or resource takes the product's number (No. -> productnumber is one-way)
                values[ctx.mapping.bc.key_field] = str(row.values["productnumber"])[:20]
            return values
        vendor = row.values.get(self.vendor)
        values: dict[str, Any] = {"producttypecode": self.product_type, "pricelevelid": default_price_list(ctx),
                                  "vendorname": self._vendor_names(ctx, [vendor]).get(vendor) if vendor else None}
        code = row.values.get(self.unit) or ""
        kept = self._kept_unit(ctx, row) if dst_row is not None else None
        if kept is not None:
            values.update(kept)
        elif code and unit_groups(ctx):
            number = row.values.get(ctx.mapping.bc.key_field)
            values["defaultuomid"] = unit_of(ctx, self.owner, number, code, [row], "Base Unit of Measure")
            group = ctx.resolver.coupled(UNIT_GROUP, "Source_Id", [row.id]).get(row.id)
            if group is None:
                raise RecordError(f"{self.what} {number}: its unit group is not coupled to a Sales unit group; couple "
                                  f"it first (table mapping {UNIT_GROUP}).", field="Base Unit of Measure",
                                  code="NotCoupled")
            values["defaultuomscheduleid"] = group
        elif code:
            group = coupled_groups(ctx, [code]).get(code)
            if group is None:
                raise RecordError(f"{ctx.mapping.bc.caption} {row.values.get(ctx.mapping.bc.key_field)}: unit of measure "
                                  f"{code!r} is not coupled to a Sales unit group; couple it first (table mapping "
                                  f"UNIT OF MEASURE).", field="Base Unit of Measure", code="NotCoupled")
            values["defaultuomid"] = single_unit(ctx, group, code)
        state = RETIRED if row.values.get(self.blocked) else ACTIVE
        if dst_row is None:
            values["transactioncurrencyid"] = CurrencyRules().lcy_currency_id(ctx)
            values["quantitydecimal"] = 2
        elif state == RETIRED and dst_row.values.get("statecode") == DRAFT:
            state = ACTIVE  # a draft cannot be retired: publish it now, retire it next run
        values.update(statecode=state, statuscode=STATUS_OF[state])  # a new product is published by after_write
        return values

    def after_write(self, ctx: RuleContext, written: Sequence[Written]) -> dict[str, RecordError]:
        if ctx.direction is not Direction.TO_CRM:
            return {}
        failures: dict[str, RecordError] = {}
        # Dataverse creates products as drafts; Business Central publishes them right away
        new = [w for w in written if w.target.values.get("statecode") == DRAFT]
        published = ctx.crm.update(CRM_PRODUCT, [RowChange(w.target.id, None, {"statecode": ACTIVE, "statuscode": 1})
                                                 for w in new], ["statecode"])
        for w, result in zip(new, published):
            if result.error is not None:
                number = w.target.values.get("productnumber") or w.target.id
                failures[w.source.id] = _follow_up_error(result.error, f"Product {number} could not be published")
        failures.update(self._keep_price_list_items(ctx, [w for w in written if w.source.id not in failures]))
        return failures

    def _keep_price_list_items(self, ctx: RuleContext, written: Sequence[Written]) -> dict[str, RecordError]:
        """One item per product and unit in the default price list (see the module's docstring)."""
        priced = ctx.cache.get("priced", set())
        products = [w for w in written if w.target.values.get("defaultuomid")
                    and (w.inserted or w.retried or w.source.id not in priced)]
        key = ctx.mapping.bc.key_field
        sources = [w.source for w in products]
        units = coupled_units(ctx, self.owner, [r.values.get(key) for r in sources], sources) \
            if unit_groups(ctx) else {}
        entries = []
        for w in products:
            price = max(0, w.source.values.get(self.price) or 0)
            number = w.source.values.get(key)
            label = w.target.values.get("productnumber") or w.target.id
            if unit_groups(ctx):
                entries += [PriceItem(w.source.id, w.target.id, uom, unit_price(price, quantity), label)
                            for (n, _), (uom, quantity) in units.items() if n == number]
            else:
                entries.append(PriceItem(w.source.id, w.target.id, w.target.values["defaultuomid"], price, label))
        return keep_price_list_items(ctx, entries)


@dataclass(frozen=True)
class PriceItem:
    """A price list item of the default price list as it should be: for the source row `source_id`."""

    source_id: str
    product_id: str
    uom_id: str
    amount: float
    label: str          # the product, for messages


def unit_price(price: float, quantity: float) -> float:
    """The price of a unit holding `quantity` base units, in the currency's cents."""
    return round(price * quantity, 2)


def keep_price_list_items(ctx: RuleContext, entries: Sequence[PriceItem]) -> dict[str, RecordError]:
    """Create or update these items of the default price list; the source rows whose item failed."""
    if not entries:
        return {}
    price_list = default_price_list(ctx)
    fields = ["pricelevelid", "productid", "uomid", "amount"]
    existing = {(str(r.values.get("productid")).lower(), str(r.values.get("uomid")).lower()): r
                for r in ctx.crm.read_matching(CRM_PRICE_LIST_ITEM, fields, "productid",
                                               sorted({e.product_id for e in entries}),
                                               where=f"_pricelevelid_value eq {price_list}")}
    inserts, updates = [], []
    for e in entries:
        item = existing.get((e.product_id.lower(), e.uom_id.lower()))
        if item is None:
            inserts.append((e, NewRow({"pricelevelid": price_list, "productid": e.product_id, "uomid": e.uom_id,
                                       "amount": e.amount, "pricingmethodcode": 1})))
        elif float(item.values.get("amount") or 0) != float(e.amount):
            updates.append((e, RowChange(item.id, None, {"amount": e.amount})))
    results = ctx.crm.insert(CRM_PRICE_LIST_ITEM, [r for _, r in inserts], ["amount"]) if inserts else []
    results += ctx.crm.update(CRM_PRICE_LIST_ITEM, [c for _, c in updates], ["amount"]) if updates else []
    failures = {}
    for (e, _), result in zip(inserts + updates, results):
        if result.error is not None:
            failures[e.source_id] = _follow_up_error(result.error, f"The default price list item of product {e.label} "
                                                                   f"could not be written")
    return failures


def _follow_up_error(error, what: str):
    """The error of a follow-up write, keeping whether it is worth retrying."""
    return type(error)(f"{what}: {error.message}", code=error.code) if error.transient else \
        RecordError(f"{what}: {error.message}", code=error.code)
