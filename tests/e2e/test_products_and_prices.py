"""Units of measure, items, resources, price groups and sales prices, end to end."""

from __future__ import annotations

from sync.runs import RunStatus

from .conftest import job


def seed_catalogue(env):
    env.bc.seed("unitsOfMeasure", [{"code": "PCS", "displayName": "Piece"}, {"code": "HOUR", "displayName": "Hour"},
                                   {"code": "BOX", "displayName": "Box"}])
    items = env.bc.seed("items", [
        {"number": "1000", "displayName": "Bicycle", "baseUnitOfMeasureCode": "PCS", "unitPrice": 4000, "unitCost": 3500,
         "inventory": 12},
        {"number": "1100", "displayName": "Front Wheel", "baseUnitOfMeasureCode": "PCS", "unitPrice": 120,
         "unitCost": 90, "inventory": -3},
        {"number": "1200", "displayName": "Old Frame", "baseUnitOfMeasureCode": "PCS", "unitPrice": 50,
         "blocked": True},
        {"number": "9999", "displayName": "Write-in product", "baseUnitOfMeasureCode": "PCS", "unitPrice": 0},
    ])
    resources = env.bc.seed("Resources", [{"No": "R0010", "Name": "Installation", "Base_Unit_of_Measure": "HOUR",
                                           "Unit_Price": 85, "Unit_Cost": 60, "Capacity": 160}])
    sales_setup = env.bc.rows("SalesReceivablesSetup")[0]
    env.bc.update("SalesReceivablesSetup", sales_setup["SystemId"], {"Write_in_Product_Type": "Item",
                                                                     "Write_in_Product_No": "9999"})
    return items, resources


def products(env):
    return {p["productnumber"]: p for p in env.dv.rows("product")}


def test_units_items_and_resources_become_unit_groups_and_published_products_in_the_default_price_list(env):
    items, _ = seed_catalogue(env)
    report = env.full_sync()
    assert report.run.status is RunStatus.DONE, report.to_dict()

    groups = {g["name"]: g for g in env.dv.rows("uomschedule")}
    assert set(groups) == {"NAV PCS", "NAV HOUR", "NAV BOX"}
    units = {u["name"]: u for u in env.dv.rows("uom")}
    assert units["PCS"]["uomscheduleid"] == groups["NAV PCS"]["uomscheduleid"] and units["PCS"]["isschedulebaseuom"]

    found = products(env)
    assert set(found) == {"1000", "1100", "R0010"}            # no blocked item, no write-in item
    bike, wheel, install = found["1000"], found["1100"], found["R0010"]
    assert bike["producttypecode"] == 1 and install["producttypecode"] == 3
    assert bike["statecode"] == 0 and install["statecode"] == 0     # published, not left as drafts
    assert bike["price"] == 4000 and bike["standardcost"] == 3500 and bike["quantityonhand"] == 12
    assert wheel["quantityonhand"] == 0                             # negative inventory is 0 in Sales
    assert bike["defaultuomscheduleid"] == groups["NAV PCS"]["uomscheduleid"]
    assert bike["defaultuomid"] == units["PCS"]["uomid"] and install["defaultuomid"] == units["HOUR"]["uomid"]
    usd = next(c for c in env.dv.rows("transactioncurrency") if c["isocurrencycode"] == "USD")
    assert bike["transactioncurrencyid"] == usd["transactioncurrencyid"] and bike["quantitydecimal"] == 2

    [price_list] = env.dv.rows("pricelevel")
    assert price_list["name"] == "CRONUS USA, Inc. Default Price List"
    assert price_list["transactioncurrencyid"] == usd["transactioncurrencyid"]
    assert bike["pricelevelid"] == price_list["pricelevelid"]
    prices = {(p["productid"], p["uomid"]): p["amount"] for p in env.dv.rows("productpricelevel")}
    assert prices == {(bike["productid"], units["PCS"]["uomid"]): 4000, (wheel["productid"], units["PCS"]["uomid"]): 120,
                      (install["productid"], units["HOUR"]["uomid"]): 85}

    # a price change reaches the product and its price list item; blocking an item retires its product
    env.bc.update("items", items[0], {"unitPrice": 4200})
    env.bc.update("items", items[1], {"blocked": True})
    env.sync()
    found = products(env)
    assert found["1000"]["price"] == 4200 and found["1100"]["statecode"] == 1
    assert {p["productid"]: p["amount"] for p in env.dv.rows("productpricelevel")}[bike["productid"]] == 4200
    # and a product retired in Sales blocks its item; re-activating it unblocks it
    env.dv.update("product", bike["productid"], {"statecode": 1, "statuscode": 2})
    env.sync()
    assert env.bc.get("items", items[0])["blocked"] is True
    env.dv.update("product", bike["productid"], {"statecode": 0, "statuscode": 1})
    env.sync()
    assert env.bc.get("items", items[0])["blocked"] is False and products(env)["1000"]["statecode"] == 0


def test_a_unit_group_with_more_than_one_unit_is_an_error_naming_it(env):
    env.bc.seed("unitsOfMeasure", [{"code": "KG", "displayName": "Kilogram"}])
    [group] = env.dv.seed("uomschedule", [{"name": "NAV KG", "baseuomname": "KG"}])
    kg = next(u for u in env.dv.rows("uom") if u["name"] == "KG")
    env.dv.seed("uom", [{"name": "G", "quantity": 0.001, "baseuom": kg["uomid"], "uomscheduleid": group}])
    env.bc.seed("items", [{"number": "2000", "displayName": "Flour", "baseUnitOfMeasureCode": "KG", "unitPrice": 2}])
    report = env.full_sync()
    assert job(report, "UNIT OF MEASURE:to-crm").counts.coupled == 1       # matched by name, then checked
    failures = [f for f in env.errors() if f.mapping in ("ITEM-PRODUCT", "UNIT OF MEASURE")]
    assert failures and all("Unit group NAV KG must contain exactly one unit, KG; it has 2" in f.message
                            for f in failures)
    assert "2000" not in products(env)


def test_the_unit_of_measure_job_itself_reports_a_two_unit_group_on_the_unit(env):
    env.bc.seed("unitsOfMeasure", [{"code": "KG", "displayName": "Kilogram"}])
    [group] = env.dv.seed("uomschedule", [{"name": "NAV KG", "baseuomname": "KG"}])
    kg = next(u for u in env.dv.rows("uom") if u["name"] == "KG")
    env.dv.seed("uom", [{"name": "G", "quantity": 0.001, "baseuom": kg["uomid"], "uomscheduleid": group}])
    report = env.full_sync(["UNIT OF MEASURE"])                            # no item names the unit yet
    outcome = job(report, "UNIT OF MEASURE:to-crm")
    assert outcome.counts.coupled == 1 and outcome.counts.failed == 1
    [failure] = [f for f in env.errors() if f.mapping == "UNIT OF MEASURE"]
    unit = next(u for u in env.bc.rows("unitsOfMeasure") if u["code"] == "KG")
    assert failure.source_id == unit["id"]                                 # an error on that unit
    assert "Unit group NAV KG must contain exactly one unit, KG; it has 2 (G, KG)" in failure.message
    # once the extra unit is gone from the group, the next run clears the error
    extra = next(u for u in env.dv.rows("uom") if u["name"] == "G")
    env.dv.delete("uom", extra["uomid"])
    env.sync(["UNIT OF MEASURE"])
    assert [f for f in env.errors() if f.mapping == "UNIT OF MEASURE"] == []


def test_products_created_in_sales_become_items(env):
    env.bc.seed("unitsOfMeasure", [{"code": "PCS", "displayName": "Piece"}])
    env.full_sync()
    group = next(g for g in env.dv.rows("uomschedule") if g["name"] == "NAV PCS")
    unit = next(u for u in env.dv.rows("uom") if u["name"] == "PCS")
    [product] = env.dv.seed("product", [{"productnumber": "S-1", "name": "Service kit", "producttypecode": 1,
                                         "defaultuomscheduleid": group["uomscheduleid"], "defaultuomid": unit["uomid"],
                                         "statecode": 0, "statuscode": 1}])
    env.dv.seed("product", [{"productnumber": "S-2", "name": "Draft only", "producttypecode": 1,
                             "defaultuomscheduleid": group["uomscheduleid"], "defaultuomid": unit["uomid"]}])
    env.full_sync(mappings=["ITEM-PRODUCT"])
    [item] = [i for i in env.bc.rows("items")]
    assert item["displayName"] == "Service kit" and item["baseUnitOfMeasureCode"] == "PCS" and item["blocked"] is False
    assert item["number"] == "S-1"                      # the item takes the product's number
    env.dv.update("product", product, {"name": "Service kit, large"})
    env.sync()
    assert env.bc.rows("items")[0]["displayName"] == "Service kit, large"


def test_customer_price_groups_and_their_sales_prices_become_price_lists_and_items(env):
    items, _ = seed_catalogue(env)
    env.bc.seed("CustomerPriceGroups", [{"Code": "RETAIL", "Description": "Retail customers"},
                                        {"Code": "DEALER", "Description": "Dealers"}])
    env.bc.seed("SalesPrices", [
        {"Item_No": "1000", "Sales_Type": "Customer Price Group", "Sales_Code": "RETAIL", "Unit_Price": 3900},
        {"Item_No": "1100", "Sales_Type": "Customer Price Group", "Sales_Code": "DEALER", "Unit_Price": 99},
        {"Item_No": "1000", "Sales_Type": "All Customers", "Sales_Code": "", "Unit_Price": 4100},   # not a group price
        {"Item_No": "1000", "Sales_Type": "Customer Price Group", "Sales_Code": "DEALER", "Unit_Price": 3700,
         "Unit_of_Measure_Code": "BOX"},                           # BOX is not the item's unit group in Sales
    ])
    report = env.full_sync()
    lists = {p["name"]: p for p in env.dv.rows("pricelevel")}
    assert {"RETAIL", "DEALER"} <= set(lists)
    assert lists["RETAIL"]["description"] == "Retail customers"
    found = products(env)
    items_by_list = {(p["pricelevelid"], p["productid"]): p for p in env.dv.rows("productpricelevel")}
    retail_bike = items_by_list[(lists["RETAIL"]["pricelevelid"], found["1000"]["productid"])]
    assert retail_bike["amount"] == 3900 and retail_bike["pricingmethodcode"] == 1
    assert items_by_list[(lists["DEALER"]["pricelevelid"], found["1100"]["productid"])]["amount"] == 99
    assert job(report, "SALESPRC-PRODPRICE:to-crm").counts.inserted == 2
    assert job(report, "SALESPRC-PRODPRICE:to-crm").counts.failed == 1
    [failure] = [f for f in env.errors() if f.mapping == "SALESPRC-PRODPRICE"]
    assert "Sales Price" in failure.record and failure.message

    # a price changed in Business Central appears in Sales on the next run
    retail = next(p for p in env.bc.rows("SalesPrices") if p["Sales_Code"] == "RETAIL")
    env.bc.update("SalesPrices", retail["SystemId"], {"Unit_Price": 3850})
    env.sync()
    assert next(p for p in env.dv.rows("productpricelevel")
                if p["productpricelevelid"] == retail_bike["productpricelevelid"])["amount"] == 3850


def test_currencies_with_exchange_rates_and_the_customer_currency(env):
    env.bc.seed("currencies", [{"code": "EUR", "displayName": "Euro", "symbol": "€"},
                               {"code": "XYZ", "displayName": "Not a currency", "symbol": ""}])
    env.bc.seed("CurrencyExchangeRates", [{"Currency_Code": "EUR", "Starting_Date": "2024-01-01",
                                           "Exchange_Rate_Amount": 1, "Relational_Exch_Rate_Amount": 1.08}])
    eur = next(c for c in env.bc.rows("currencies") if c["code"] == "EUR")
    env.bc.seed("customers", [{"number": "10000", "displayName": "Europa GmbH", "currencyId": eur["id"]},
                              {"number": "20000", "displayName": "Local Inc."}])
    report = env.full_sync()
    currencies = {c["isocurrencycode"]: c for c in env.dv.rows("transactioncurrency")}
    assert currencies["EUR"]["exchangerate"] == round(1 / 1.08, 10) and currencies["EUR"]["currencysymbol"] == "€"
    assert "XYZ" not in currencies
    [failure] = [f for f in env.errors() if f.mapping == "CURRENCY"]
    assert "'XYZ' is not a standard ISO 4217 currency code" in failure.message
    accounts = {a["name"]: a for a in env.dv.rows("account")}
    assert accounts["Europa GmbH"]["transactioncurrencyid"] == currencies["EUR"]["transactioncurrencyid"]
    assert accounts["Local Inc."]["transactioncurrencyid"] == currencies["USD"]["transactioncurrencyid"]
    assert job(report, "CURRENCY:to-crm").counts.inserted == 1


def test_a_product_retired_in_sales_while_its_item_is_edited_in_business_central_stays_retired(env):
    items, _ = seed_catalogue(env)
    env.full_sync()
    bike = products(env)["1000"]
    env.dv.update("product", bike["productid"], {"statecode": 1, "statuscode": 2})   # retired in Sales ...
    env.bc.update("items", items[0], {"unitPrice": 4100})                            # ... while BC edits the item
    env.sync()
    assert products(env)["1000"]["statecode"] == 1 and products(env)["1000"]["price"] == 4100
    assert env.bc.get("items", items[0])["blocked"] is True


def test_prices_not_in_force_today_are_left_out(env):
    seed_catalogue(env)
    env.bc.seed("CustomerPriceGroups", [{"Code": "RETAIL", "Description": "Retail"}])
    env.bc.seed("SalesPrices", [
        {"Item_No": "1000", "Sales_Type": "Customer Price Group", "Sales_Code": "RETAIL", "Unit_Price": 3900},
        {"Item_No": "1000", "Sales_Type": "Customer Price Group", "Sales_Code": "RETAIL", "Unit_Price": 3500,
         "Starting_Date": "2099-01-01"},
        {"Item_No": "1000", "Sales_Type": "Customer Price Group", "Sales_Code": "RETAIL", "Unit_Price": 3000,
         "Minimum_Quantity": 10},
    ])
    report = env.full_sync()
    retail = next(p for p in env.dv.rows("pricelevel") if p["name"] == "RETAIL")
    amounts = [p["amount"] for p in env.dv.rows("productpricelevel") if p["pricelevelid"] == retail["pricelevelid"]]
    assert amounts == [3900] and job(report, "SALESPRC-PRODPRICE:to-crm").counts.failed == 0


def test_a_product_takes_its_vendor_s_name(env):
    env.bc.seed("vendors", [{"number": "V100", "displayName": "Fabrikam Supplies"},
                            {"number": "V200", "displayName": "Litware Parts"}])
    env.bc.seed("unitsOfMeasure", [{"code": "PCS", "displayName": "Piece"}, {"code": "HOUR", "displayName": "Hour"}])
    [bicycle, _] = env.bc.seed("items", [
        {"number": "1000", "displayName": "Bicycle", "baseUnitOfMeasureCode": "PCS", "vendorNo": "V100"},
        {"number": "1100", "displayName": "Wheel", "baseUnitOfMeasureCode": "PCS"}])
    env.bc.seed("Resources", [{"No": "R0010", "Name": "Installation", "Base_Unit_of_Measure": "HOUR",
                               "Vendor_No": "V200"}])
    env.full_sync()
    found = products(env)
    assert (found["1000"]["vendorid"], found["1000"]["vendorname"]) == ("V100", "Fabrikam Supplies")
    assert found["1100"]["vendorname"] is None
    assert found["R0010"]["vendorname"] == "Litware Parts"
    env.bc.update("items", bicycle, {"vendorNo": "V200"})
    env.sync()
    assert products(env)["1000"]["vendorname"] == "Litware Parts"
