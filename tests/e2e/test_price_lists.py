"""Extended pricing (BCSYNC_PRICING=extended) end to end: sales price lists and their lines as Sales price lists and
their items, with currency, dates and state; the header's checks; and the refusal of the other experience's
couplings. Also the legacy experience's price lists in their prices' currency."""

from __future__ import annotations

import datetime as dt

from simulators import sample
from sync.runs import JobStatus, RunStatus

from .conftest import job
from .test_unit_groups import UNIT_GROUPS

EXTENDED = {"BCSYNC_PRICING": "extended"}
EXTENDED_MAPPINGS = ("PLHEADER-PRICE", "PLLINE-PRODPRICE")
TODAY = dt.date.today()


def seed(env):
    env.bc.seed("unitsOfMeasure", [{"code": "PCS", "displayName": "Piece"}, {"code": "BOX", "displayName": "Box"},
                                   {"code": "HOUR", "displayName": "Hour"}])
    env.bc.seed("currencies", [{"code": "EUR", "displayName": "Euro"}])
    env.bc.seed("CurrencyExchangeRates", [{"Currency_Code": "EUR", "Starting_Date": "2020-01-01",
                                           "Exchange_Rate_Amount": 1, "Relational_Exch_Rate_Amount": 1.1}])
    env.bc.seed("items", [
        {"number": "1000", "displayName": "Bicycle", "baseUnitOfMeasureCode": "PCS", "unitPrice": 100},
        {"number": "1100", "displayName": "Front Wheel", "baseUnitOfMeasureCode": "PCS", "unitPrice": 20}])
    env.bc.seed("ItemUnitsOfMeasure", [{"Item_No": "1000", "Code": "BOX", "Qty_per_Unit_of_Measure": 12}])
    env.bc.seed("Resources", [{"No": "R0010", "Name": "Installation", "Base_Unit_of_Measure": "HOUR",
                               "Unit_Price": 80}])


def price_list(env, code, lines, **header):
    [header_id] = env.bc.seed("PriceListHeaders", [{"Code": code, "Description": f"{code} prices", "Price_Type": "Sale",
                                                    "Amount_Type": "Price", "Status": "Active", **header}])
    ids = env.bc.seed("PriceListLines", [{"Price_List_Code": code, "Price_Type": "Sale", "Amount_Type": "Price",
                                          **line} for line in lines])
    return header_id, ids


def lists(env):
    return {p["name"]: p for p in env.dv.rows("pricelevel")}


def items_of(env, name):
    """(product number, unit) -> amount of the Sales price list `name`."""
    units = {u["uomid"]: u["name"] for u in env.dv.rows("uom")}
    level = lists(env)[name]["pricelevelid"]
    return {(p["productnumber"], units[p["uomid"]]): p["amount"] for p in env.dv.rows("productpricelevel")
            if p["pricelevelid"] == level}


def currency(env, code):
    return next(c["transactioncurrencyid"] for c in env.dv.rows("transactioncurrency") if c["isocurrencycode"] == code)


def test_a_price_list_of_items_and_resources_becomes_a_sales_price_list_with_its_dates_and_state(env):
    env.configure(**EXTENDED)
    seed(env)
    price_list(env, "S00001", [
        {"Asset_Type": "Item", "Asset_No": "1000", "Unit_Price": 95},
        {"Asset_Type": "Item", "Asset_No": "1100", "Unit_Price": 18, "Unit_of_Measure_Code": "PCS"},
        {"Asset_Type": "Resource", "Asset_No": "R0010", "Unit_Price": 75},
        {"Asset_Type": "Item", "Asset_No": "1000", "Unit_Price": 90, "Minimum_Quantity": 10},   # not carried
        {"Asset_Type": "Item", "Asset_No": "", "Unit_Price": 10},                              # every item: neither
    ], Starting_Date="2026-01-01", Ending_Date="2026-12-31")
    price_list(env, "S00002", [], Status="Inactive")                  # no lines: a list in the local currency
    price_list(env, "P00001", [{"Asset_Type": "Item", "Asset_No": "1000", "Unit_Price": 60}], Price_Type="Purchase")
    report = env.full_sync()
    assert report.run.status is RunStatus.DONE, report.to_dict()
    assert {"PLHEADER-PRICE", "PLLINE-PRODPRICE"} <= {j.mapping for j in report.jobs}
    assert not {"CUSTPRCGRP-PRICE", "SALESPRC-PRODPRICE"} & {j.mapping for j in report.jobs}
    assert [f.message for f in env.errors()] == []

    found = lists(env)
    assert "P00001" not in found                                      # a purchase price list is not a Sales one
    s1, s2 = found["S00001"], found["S00002"]
    assert s1["description"] == "S00001 prices" and s1["transactioncurrencyid"] == currency(env, "USD")
    assert str(s1["begindate"])[:10] == "2026-01-01" and str(s1["enddate"])[:10] == "2026-12-31"
    assert (s1["statecode"], s2["statecode"], s2["statuscode"]) == (0, 1, 100002)
    assert s2["transactioncurrencyid"] == currency(env, "USD") and s2["begindate"] is None
    assert items_of(env, "S00001") == {("1000", "PCS"): 95, ("1100", "PCS"): 18, ("R0010", "HOUR"): 75}
    header = job(report, "PLHEADER-PRICE:to-crm")
    assert any("minimum quantity" in note and "S00001 line 40000" in note for note in header.notes), header.notes
    assert any("every item or resource" in note and "S00001 line 50000" in note for note in header.notes), header.notes
    # the resource's product did not exist yet (RESOURCE-PRODUCT runs later): the list's check synchronised it first
    assert any("synchronised first (table mapping RESOURCE-PRODUCT)" in note for note in header.notes), header.notes
    # a new list's lines follow it at once, in the header's job; the line job finds them done
    assert any("PLLINE-PRODPRICE" in note for note in header.notes), header.notes
    assert job(report, "PLLINE-PRODPRICE:to-crm").counts.inserted == 0
    again = env.full_sync(["PLHEADER-PRICE", "PLLINE-PRODPRICE"])     # dates and states compare equal: no writes
    assert [(j.counts.inserted, j.counts.modified, j.counts.failed) for j in again.jobs] == [(0, 0, 0), (0, 0, 0)]

    # a line's price changes: a scheduled run carries it; nothing else moves
    line = next(r for r in env.bc.rows("PriceListLines") if r["Asset_No"] == "1100")
    env.bc.update("PriceListLines", line["SystemId"], {"Unit_Price": 17})
    report = env.sync()
    assert report.run.status is RunStatus.DONE, report.to_dict()
    assert items_of(env, "S00001")[("1100", "PCS")] == 17
    assert job(report, "PLLINE-PRODPRICE:to-crm").counts.modified == 1
    # and the list's state and dates follow its header
    header = next(r for r in env.bc.rows("PriceListHeaders") if r["Code"] == "S00001")
    env.bc.update("PriceListHeaders", header["SystemId"], {"Status": "Inactive", "Ending_Date": "2026-06-30"})
    env.sync()
    s1 = lists(env)["S00001"]
    assert s1["statecode"] == 1 and str(s1["enddate"])[:10] == "2026-06-30"

    # a line for every item added to the unchanged list: the line job reads it and lists it
    env.bc.seed("PriceListLines", [{"Price_List_Code": "S00001", "Price_Type": "Sale", "Amount_Type": "Price",
                                    "Asset_Type": "Item", "Asset_No": "", "Unit_Price": 9}])
    report = env.sync()
    lines = job(report, "PLLINE-PRODPRICE:to-crm")
    assert any("every item or resource" in note and "S00001 line 60000" in note for note in lines.notes), lines.notes


def test_a_foreign_currency_price_list_becomes_a_sales_price_list_in_that_currency(env):
    env.configure(**EXTENDED)
    seed(env)
    price_list(env, "EURO", [{"Asset_Type": "Item", "Asset_No": "1000", "Unit_Price": 88}], Currency_Code="EUR")
    report = env.full_sync()
    assert report.run.status is RunStatus.DONE, report.to_dict()
    euro = lists(env)["EURO"]
    assert euro["transactioncurrencyid"] == currency(env, "EUR")
    [item] = [p for p in env.dv.rows("productpricelevel") if p["pricelevelid"] == euro["pricelevelid"]]
    assert item["transactioncurrencyid"] == currency(env, "EUR") and item["amount"] == 88
    # never in the local-currency default list
    default = next(p for p in lists(env) if p.endswith("Default Price List"))
    assert items_of(env, default) == {("1000", "PCS"): 100, ("1100", "PCS"): 20, ("R0010", "HOUR"): 80}


def test_a_price_list_with_lines_in_two_currencies_fails_whole_naming_the_list_and_the_line(env):
    env.configure(**EXTENDED)
    seed(env)
    price_list(env, "MIXED", [{"Asset_Type": "Item", "Asset_No": "1000", "Unit_Price": 95},
                              {"Asset_Type": "Item", "Asset_No": "1100", "Unit_Price": 15, "Currency_Code": "EUR"}],
               Allow_Updating_Defaults=True)   # only such a list lets its lines have their own currency
    price_list(env, "OTHER", [{"Asset_Type": "Item", "Asset_No": "1000", "Unit_Price": 97}])
    setup = env.bc.rows("SalesReceivablesSetup")[0]
    env.bc.update("SalesReceivablesSetup", setup["SystemId"], {"Default_Price_List_Code": "MIXED"})
    report = env.full_sync()
    assert job(report, "PLHEADER-PRICE:to-crm").counts.failed == 1
    failures = {f.mapping: f for f in env.errors()}
    assert {"PLHEADER-PRICE", "PLLINE-PRODPRICE"} <= set(failures)
    message = failures["PLHEADER-PRICE"].message
    assert "Price list MIXED" in message and "line 20000" in message and "EUR" in message, message
    assert failures["PLHEADER-PRICE"].field == "Currency Code"
    assert "MIXED" not in lists(env)                                  # nothing half-written
    # with a default price list in Sales & Receivables Setup, only lists that allow updating defaults are read
    assert "OTHER" not in lists(env)
    notes = job(report, "PLHEADER-PRICE:to-crm").notes
    assert any("only lists whose Allow Updating Defaults is on" in note and "OTHER" in note for note in notes), notes
    assert not [p for p in env.dv.rows("productpricelevel") if p["amount"] in (95, 15)]

    # once the line is moved to the list's currency, the next run writes the list and its lines
    line = next(r for r in env.bc.rows("PriceListLines") if r["Currency_Code"] == "EUR")
    env.bc.update("PriceListLines", line["SystemId"], {"Currency_Code": ""})
    report = env.sync()
    assert report.run.status is RunStatus.DONE, report.to_dict()
    assert items_of(env, "MIXED") == {("1000", "PCS"): 95, ("1100", "PCS"): 15}
    assert env.errors() == []


def item_without_product(env) -> None:
    """Item 1200, blocked: outside ITEM-PRODUCT's filter, so it has no Sales product."""
    env.bc.seed("items", [{"number": "1200", "displayName": "Old Frame", "baseUnitOfMeasureCode": "PCS",
                           "unitPrice": 50, "blocked": True}])


def test_a_line_whose_item_cannot_reach_sales_fails_the_list_naming_the_item(env):
    env.configure(**EXTENDED)
    seed(env)
    item_without_product(env)
    price_list(env, "S00003", [{"Asset_Type": "Item", "Asset_No": "1000", "Unit_Price": 95},
                               {"Asset_Type": "Item", "Asset_No": "1200", "Unit_Price": 45}])
    report = env.full_sync()
    failures = {f.mapping: f for f in env.errors()}
    message = failures["PLHEADER-PRICE"].message
    assert "S00003 line 20000" in message and "item 1200 has no Sales product" in message, message
    assert "left out by the rules of table mapping ITEM-PRODUCT." in message and ".." not in message, message
    assert "S00003" not in lists(env) and job(report, "PLHEADER-PRICE:to-crm").counts.failed == 1


def test_a_line_never_sent_does_not_fail_the_list_for_its_item(env):
    # a minimum-quantity line for an item without a Sales product: PLLINE-PRODPRICE never sends it, so the list's
    # product check leaves it be
    env.configure(**EXTENDED)
    seed(env)
    item_without_product(env)
    price_list(env, "S00004", [{"Asset_Type": "Item", "Asset_No": "1000", "Unit_Price": 95},
                               {"Asset_Type": "Item", "Asset_No": "1200", "Unit_Price": 45, "Minimum_Quantity": 5}])
    report = env.full_sync()
    assert report.run.status is RunStatus.DONE, report.to_dict()
    assert env.errors() == []
    assert items_of(env, "S00004") == {("1000", "PCS"): 95}
    notes = job(report, "PLHEADER-PRICE:to-crm").notes
    assert any("minimum quantity" in note and "S00004 line 20000" in note for note in notes), notes


def test_unit_group_mode_gives_one_price_list_item_per_unit(env):
    env.configure(**EXTENDED, **UNIT_GROUPS)
    seed(env)
    price_list(env, "UNITS", [{"Asset_Type": "Item", "Asset_No": "1000", "Unit_Price": 95},
                              {"Asset_Type": "Item", "Asset_No": "1000", "Unit_Price": 1100,
                               "Unit_of_Measure_Code": "BOX"},
                              {"Asset_Type": "Resource", "Asset_No": "R0010", "Unit_Price": 70}])
    report = env.full_sync()
    assert report.run.status is RunStatus.DONE, report.to_dict()
    assert items_of(env, "UNITS") == {("1000", "PCS"): 95, ("1000", "BOX"): 1100, ("R0010", "HOUR"): 70}


def test_couplings_of_the_other_pricing_experience_stop_the_price_jobs(env, cli):
    seed(env)
    env.bc.seed("CustomerPriceGroups", [{"Code": "RETAIL", "Description": "Retail customers"}])
    env.bc.seed("SalesPrices", [{"Item_No": "1000", "Sales_Type": "Customer Price Group", "Sales_Code": "RETAIL",
                                 "Unit_Price": 90}])
    legacy = env.full_sync()                                          # legacy pricing, the default
    assert legacy.run.status is RunStatus.DONE and env.couplings("CUSTPRCGRP-PRICE")

    env.configure(**EXTENDED)
    price_list(env, "S00001", [{"Asset_Type": "Item", "Asset_No": "1000", "Unit_Price": 95}])
    report = env.full_sync()
    refused = job(report, "PLHEADER-PRICE:to-crm")
    assert refused.status is JobStatus.FAILED
    assert "BCSYNC_PRICING" in refused.message and "CUSTPRCGRP-PRICE" in refused.message, refused.message
    assert "S00001" not in lists(env)
    assert job(report, "ITEM-PRODUCT:to-crm").status is JobStatus.DONE   # the other mappings run

    # the legacy mappings are not in use: showing one names the setting (the HTTP API answers 404 with the same)
    code, out, err = cli("mappings", "show", "CUSTPRCGRP-PRICE")
    assert code == 2 and "CUSTPRCGRP-PRICE is not in use with the current BCSYNC_PRICING" in err, err

    for mapping in ("CUSTPRCGRP-PRICE", "SALESPRC-PRODPRICE"):
        assert cli("uncouple", mapping, "--all")[0] == 0
    report = env.full_sync()
    assert report.run.status is RunStatus.DONE, report.to_dict()
    assert items_of(env, "S00001") == {("1000", "PCS"): 95}


def test_legacy_price_lists_take_their_prices_currency_and_list_the_prices_left_out(env):
    seed(env)
    env.bc.seed("CustomerPriceGroups", [{"Code": "EXPORT", "Description": "Export"},
                                        {"Code": "BOTH", "Description": "Two currencies"}])
    later = (TODAY + dt.timedelta(days=30)).isoformat()
    env.bc.seed("SalesPrices", [
        {"Item_No": "1000", "Sales_Type": "Customer Price Group", "Sales_Code": "EXPORT", "Currency_Code": "EUR",
         "Unit_Price": 80},
        {"Item_No": "1000", "Sales_Type": "Customer Price Group", "Sales_Code": "EXPORT", "Currency_Code": "EUR",
         "Unit_Price": 85, "Starting_Date": later},                  # not in force yet
        {"Item_No": "1000", "Sales_Type": "Customer Price Group", "Sales_Code": "BOTH", "Unit_Price": 90},
        {"Item_No": "1100", "Sales_Type": "Customer Price Group", "Sales_Code": "BOTH", "Currency_Code": "EUR",
         "Unit_Price": 15},
    ])
    report = env.full_sync()
    export = lists(env)["EXPORT"]
    assert export["transactioncurrencyid"] == currency(env, "EUR")  # not the local currency
    assert items_of(env, "EXPORT") == {("1000", "PCS"): 80}
    notes = job(report, "SALESPRC-PRODPRICE:to-crm").notes
    assert any("item 1000 for EXPORT" in note and f"not in force before {later}" in note for note in notes), notes
    failures = {f.mapping: f for f in env.errors()}
    assert "BOTH" not in lists(env)
    assert "Customer price group BOTH" in failures["CUSTPRCGRP-PRICE"].message
    assert "EUR" in failures["CUSTPRCGRP-PRICE"].message


def test_the_sample_company_in_extended_pricing_gets_its_price_lists_in_their_currencies(env):
    env.configure(**EXTENDED)
    sample.seed(env.dv, env.bc)
    report = env.full_sync(["CURRENCY", *EXTENDED_MAPPINGS])          # items, resources, units synchronised first
    assert report.run.status is RunStatus.DONE, report.to_dict()
    assert [f.message for f in env.errors() if f.mapping in EXTENDED_MAPPINGS] == []
    found = lists(env)
    assert "RETAIL" not in found                                      # customer price groups are legacy pricing
    assert found["S00002"]["transactioncurrencyid"] == currency(env, "EUR")
    assert items_of(env, "S00001") == {("1896-S", "PCS"): 995, ("1900-S", "PCS"): 175, ("R0010", "HOUR"): 80}
    assert items_of(env, "S00002") == {("1896-S", "PCS"): 920}
