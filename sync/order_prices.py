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


def net_prices(job: JobContext, customer_id: str, lines: list[dict]) -> list[dict]:
    """The order's lines with the prices of items that include VAT for this customer converted to prices
    without VAT."""
    rates = vat_rates(job)
    numbers = sorted({line["lineObjectNumber"] for line in lines if line.get("lineType") == "Item"})
    items = {r.values.get("number"): r.values for r in job.bc.read_matching(
        BC_ITEM, ["number", "priceIncludesTax", "vatBusPostingGrPrice", "vatProdPostingGroup"], "number", numbers)
        if r.values.get("priceIncludesTax")} if numbers else {}
    if not items:
        return lines
    [customer] = job.bc.read_ids(BC_CUSTOMER, ["vatBusPostingGroup"], [customer_id]) or [None]
    group = customer.values.get("vatBusPostingGroup") if customer else None
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
