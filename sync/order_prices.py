"""SALESORDER-ORDER's prices that include VAT: as Business Central does when it makes an order's lines from a Sales
order, an item whose Unit Price includes VAT (Price Includes VAT) for the customers of its VAT Bus. Posting Gr.
(Price) takes the Sales price without VAT when the order's customer is of that group: the price divided by
1 + VAT % / 100, the VAT % of the customer's and the item's posting groups (page 472 VAT Posting Setup), rounded to
the unit-amount precision. Other lines keep the Sales price. Without a VAT posting setup for the two groups the
order fails with an error saying so (Business Central could not make the line either).
"""

from __future__ import annotations

from .errors import RecordError
from .process import JobContext
from .tables import BC_CUSTOMER, BC_ITEM, BC_VAT_POSTING_SETUP

# Business Central's default Unit-Amount Rounding Precision (General Ledger Setup), which API v2.0 does not publish
UNIT_AMOUNT_PRECISION = 5


def vat_rates(job: JobContext) -> dict[tuple[str, str], float]:
    """(VAT business posting group, VAT product posting group) -> VAT %, read once per job."""
    if "vat_rates" not in job.cache:
        job.cache["vat_rates"] = {
            (r.values.get("VAT_Bus_Posting_Group") or "", r.values.get("VAT_Prod_Posting_Group") or ""):
                float(r.values.get("VAT_Percent") or 0)
            for page in job.bc.read_changed(BC_VAT_POSTING_SETUP, ["VAT_Bus_Posting_Group", "VAT_Prod_Posting_Group",
                                                                   "VAT_Percent"], since=None) for r in page}
    return job.cache["vat_rates"]


def _known(job: JobContext, name: str, keys: list[str], read) -> dict[str, dict | None]:
    """The values of `keys` kept in the job's cache under `name`, those not kept yet read in one go (`read`:
    missing keys -> (key, values) pairs): the orders of a page share their items and often their customer."""
    kept = job.cache.setdefault(name, {})
    missing = [k for k in keys if k not in kept]
    if missing:
        kept.update(dict.fromkeys(missing))  # none: not found
        kept.update(read(missing))
    return {k: kept[k] for k in keys}


def net_prices(job: JobContext, customer_id: str, lines: list[dict]) -> list[dict]:
    """The order's lines with the prices of items that include VAT for this customer converted to prices
    without VAT."""
    rates = vat_rates(job)
    numbers = sorted({line["lineObjectNumber"] for line in lines if line.get("lineType") == "Item"})
    items = {n: v for n, v in _known(job, "vat_items", numbers, lambda missing: (
        (r.values.get("number"), r.values) for r in job.bc.read_matching(
            BC_ITEM, ["number", "priceIncludesTax", "vatBusPostingGrPrice", "vatProdPostingGroup"], "number",
            missing))).items() if v and v.get("priceIncludesTax")}
    if not items:
        return lines
    customer = _known(job, "vat_customers", [customer_id], lambda missing: (
        (r.id, r.values) for r in job.bc.read_ids(BC_CUSTOMER, ["vatBusPostingGroup"], missing)))[customer_id]
    group = customer.get("vatBusPostingGroup") if customer else None
    converted = []
    for line in lines:
        item = items.get(line.get("lineObjectNumber")) if line.get("lineType") == "Item" else None
        if item is not None and group and item.get("vatBusPostingGrPrice") == group:
            product = item.get("vatProdPostingGroup") or ""
            if (group, product) not in rates:
                raise RecordError(f"Item {line['lineObjectNumber']} has a price that includes VAT, but Business "
                                  f"Central has no VAT Posting Setup for {group} and {product or '(blank)'} to take "
                                  f"the VAT out of it.", field="priceperunit", code="NoVatPostingSetup")
            line = {**line, "unitPrice": round(line["unitPrice"] / (1 + rates[group, product] / 100),
                                               UNIT_AMOUNT_PRECISION)}
        converted.append(line)
    return converted
