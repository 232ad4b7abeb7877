"""The Business Central simulator's marketing, inventory, pricing and sales document data over real
HTTPS: contacts and business relations, items and their ledger, G/L accounts, opportunities, sales
orders and invoices (with freight on G/L account lines) with posting and payments, and the page web
services integrations publish (Resources, CustomerPriceGroups, SalesPrices, CurrencyExchangeRates,
SalesReceivablesSetup, SalesOrder)."""

from __future__ import annotations

import time
import uuid

import pytest
import test_businesscentral_simulator as base
from test_businesscentral_simulator import EMPTY_GUID, error_of, when

from simulators.businesscentral.errors import BCError

# the fixtures of the main simulator tests (module-scoped: this module gets its own simulator)
env = base.env
bc = base.bc

POSTED = "The invoice has been posted and can no longer be modified."


def created(response) -> dict:
    assert response.status_code == 201, response.text
    return response.json()


def ok(response) -> dict:
    assert response.status_code == 200, response.text
    return response.json()


def literal(stamp: str) -> str:
    """A wire datetime as a $filter literal with milliseconds."""
    moment = when(stamp)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def later() -> None:
    """Let the SQL clock tick so that a following write gets a later SystemModifiedAt than a literal."""
    time.sleep(0.01)


def master_data(env) -> dict:
    """A unit of measure, an item with 10 on hand, a resource, payment terms and a customer."""
    sim = env.sim
    sim.seed("unitsOfMeasure", [{"code": "PCS", "displayName": "Pieces"}, {"code": "HOUR", "displayName": "Hour"}])
    [terms] = sim.seed("paymentTerms", [{"code": "30 DAYS", "displayName": "Net 30", "dueDateCalculation": "30D"}])
    [item] = sim.seed("items", [{"displayName": "Bicycle", "unitPrice": 100, "baseUnitOfMeasureCode": "PCS",
                                 "inventory": 10}])
    [resource] = sim.seed("Resources", [{"Name": "Installer", "Base_Unit_of_Measure": "HOUR", "Unit_Price": 50}])
    [customer] = sim.seed("customers", [{"displayName": "Adatum", "addressLine1": "1 Main St", "city": "Atlanta",
                                         "state": "GA", "postalCode": "31772", "country": "US",
                                         "paymentTermsId": terms}])
    return {"item": item, "resource": resource, "customer": customer, "terms": terms,
            "item_no": sim.get("items", item)["number"], "resource_no": sim.get("Resources", resource)["No"]}


def chart_of_accounts(env) -> dict[str, str]:
    """G/L accounts by number: 6610 freight, 6000 a heading, 6620 blocked, 6630 without direct posting."""
    numbers = ["6610", "6000", "6620", "6630"]
    return dict(zip(numbers, env.sim.seed("accounts", [
        {"number": "6610", "displayName": "Freight Income", "category": "Income", "subCategory": "Income, Services"},
        {"number": "6000", "displayName": "Revenue", "accountType": "Heading", "directPosting": False},
        {"number": "6620", "displayName": "Old freight", "blocked": True},
        {"number": "6630", "displayName": "Freight, indirect", "directPosting": False},
    ])))


# -- contacts and business relations ------------------------------------------------------------------------

def test_contacts_with_companies_and_person_names_composed_on_the_contact_card(env, bc):
    url = f"{env.company}/contacts"
    company = created(bc.post(url, json={"displayName": "Fabrikam", "type": "Company", "city": "Oslo"}))
    assert company["number"] == "CT000010" and company["companyNumber"] == "CT000010"
    assert company["companyName"] == "Fabrikam" and company["contactBusinessRelation"] == "_x0020_"
    assert company["searchName"] == "FABRIKAM" and company["lastInteractionDate"] == "0001-01-01"
    person = created(bc.post(url, json={"displayName": "Kim Abercrombie", "type": "Person", "jobTitle": "Buyer",
                                        "companyNumber": "ct000010", "email": "kim@fabrikam.example"}))
    assert (person["number"], person["companyNumber"], person["companyName"]) == ("CT000020", "CT000010", "Fabrikam")

    assert error_of(bc.post(url, json={"displayName": "Nobody", "type": "Person", "companyNumber": "CT000020"})) == (
        400, "Internal_InvalidTableRelation",
        "The field Company No. of table Contact contains a value (CT000020) that cannot be found in the related "
        "table (Contact).")
    assert error_of(bc.post(url, json={"displayName": "X", "companyNumber": "CT000010"}))[:2] == (
        400, "Application_FieldValidationException")  # a company contact is its own company
    assert error_of(bc.post(url, json={"displayName": "X", "jobTitle": "J" * 31}))[:2] == (
        400, "Application_StringExceededLength")
    assert error_of(bc.post(url, json={"displayName": "X", "contactBusinessRelation": "Customer"}))[:2] == (
        400, "BadRequest_InvalidOperation")

    # the card composes a person's name from its parts ...
    card = created(bc.post(f"{env.odata}/ContactCard", json={
        "Type": "Person", "First_Name": "Ann", "Middle_Name": "Marie", "Surname": "Smith", "Company_No": "CT000010",
        "Fax_No": "555-0100", "Pager": "77"}))
    assert card["Name"] == "Ann Marie Smith" and card["No"] == "CT000030" and card["Company_Name"] == "Fabrikam"
    card_url = f"{env.odata}/ContactCard('CT000030')"
    assert error_of(bc.patch(card_url, json={"Surname": "Jones"}))[:2] == (400, "BadRequest_InvalidToken")
    later()
    renamed = ok(bc.patch(card_url, json={"Surname": "Jones"}, headers={"If-Match": card["@odata.etag"]}))
    assert renamed["Name"] == "Ann Marie Jones"
    assert when(renamed["SystemModifiedAt"]) > when(card["SystemModifiedAt"])
    api = ok(bc.get(f"{url}({card['SystemId']})"))
    assert api["displayName"] == "Ann Marie Jones" and api["lastModifiedDateTime"] == renamed["SystemModifiedAt"]
    # ... and breaks a person's new name down into them
    ok(bc.patch(f"{url}({person['id']})", json={"displayName": "Kim A. Ralls"}, headers={"If-Match": "*"}))
    parts = ok(bc.get(f"{env.odata}/ContactCard('CT000020')", params={"$select": "First_Name,Middle_Name,Surname"}))
    assert (parts["First_Name"], parts["Middle_Name"], parts["Surname"]) == ("Kim", "A.", "Ralls")
    assert error_of(bc.patch(card_url, json={"Salesperson_Code": "NOBODY"}, headers={"If-Match": "*"})) == (
        400, "Internal_InvalidTableRelation",
        "The field Salesperson Code of table Contact contains a value (NOBODY) that cannot be found in the related "
        "table (Salesperson/Purchaser).")
    assert error_of(bc.patch(card_url, json={"Currency_Code": "XXX"}, headers={"If-Match": "*"}))[:2] == (
        400, "Internal_InvalidTableRelation")

    # renaming the company renames it on its persons, which count as changed
    before = literal(ok(bc.get(f"{url}({person['id']})"))["lastModifiedDateTime"])
    later()
    ok(bc.patch(f"{url}({company['id']})", json={"displayName": "Fabrikam Inc."}, headers={"If-Match": "*"}))
    changed = ok(bc.get(url, params={"$filter": f"lastModifiedDateTime gt {before}", "$orderby": "number"}))["value"]
    assert [(c["number"], c["companyName"]) for c in changed] == [
        ("CT000010", "Fabrikam Inc."), ("CT000020", "Fabrikam Inc."), ("CT000030", "Fabrikam Inc.")]
    on_card = ok(bc.get(f"{env.odata}/ContactCard", params={"$filter": f"SystemModifiedAt gt {before} and Type eq 'Person'"}))
    assert [c["No"] for c in on_card["value"]] == ["CT000020", "CT000030"]


def test_a_new_customer_gets_a_company_contact_and_a_customer_business_relation(env, bc):
    person_contact = created(bc.post(f"{env.company}/contacts", json={"displayName": "Walk-in", "type": "Company"}))
    customer = created(bc.post(f"{env.company}/customers", json={
        "displayName": "Trey Research", "addressLine1": "153 Thomas Drive", "city": "Chicago", "state": "IL",
        "postalCode": "61236", "country": "US", "phoneNumber": "555-0101", "email": "info@trey.example"}))
    [contact] = ok(bc.get(f"{env.company}/contacts", params={"$filter": "contactBusinessRelation eq 'Customer'"}))["value"]
    assert contact["number"] == "CT000020" and contact["type"] == "Company"
    assert (contact["displayName"], contact["addressLine1"], contact["city"], contact["state"], contact["postalCode"],
            contact["country"], contact["phoneNumber"], contact["email"]) == (
        "Trey Research", "153 Thomas Drive", "Chicago", "IL", "61236", "US", "555-0101", "info@trey.example")

    [info] = ok(bc.get(f"{env.company}/contactsInformation"))["value"]
    assert {k: info[k] for k in ("contactId", "contactNumber", "contactName", "contactType", "relatedId", "relatedType")} == {
        "contactId": contact["id"], "contactNumber": "CT000020", "contactName": "Trey Research", "contactType": "Company",
        "relatedId": customer["id"], "relatedType": "Customer"}
    nested = ok(bc.get(f"{env.company}/customers({customer['id']})/contactsInformation"))
    assert nested["@odata.context"].endswith(f"/customers({customer['id']})/contactsInformation")
    assert [i["contactNumber"] for i in nested["value"]] == ["CT000020"]
    assert error_of(bc.post(f"{env.company}/contactsInformation", json={"contactNumber": "CT000010"}))[:2] == (
        405, "BadRequest_MethodNotAllowed")
    assert ok(bc.get(f"{env.company}/contactsInformation", params={
        "$filter": f"contactId eq {person_contact['id']}"}))["value"] == []

    # a person of that company belongs to the customer too
    person = created(bc.post(f"{env.company}/contacts", json={"displayName": "Helen Ray", "type": "Person",
                                                              "companyNumber": "CT000020"}))
    assert person["contactBusinessRelation"] == "Customer" and person["companyName"] == "Trey Research"

    # the customer's changes reach its contact; the relation goes with the customer
    ok(bc.patch(f"{env.company}/customers({customer['id']})", json={"city": "Evanston"}, headers={"If-Match": "*"}))
    assert ok(bc.get(f"{env.company}/contacts({contact['id']})"))["city"] == "Evanston"
    ok(bc.patch(f"{env.company}/contacts({contact['id']})", json={"phoneNumber": "555-0199"}, headers={"If-Match": "*"}))
    assert ok(bc.get(f"{env.company}/customers({customer['id']})"))["phoneNumber"] == "555-0199"
    stamp = literal(ok(bc.get(f"{env.company}/contacts({person['id']})"))["lastModifiedDateTime"])
    later()
    assert bc.delete(f"{env.company}/customers({customer['id']})", headers={"If-Match": "*"}).status_code == 204
    assert ok(bc.get(f"{env.company}/contactsInformation"))["value"] == []
    relations = ok(bc.get(f"{env.company}/contacts", params={"$filter": f"lastModifiedDateTime gt {stamp}"}))["value"]
    assert sorted((c["number"], c["contactBusinessRelation"]) for c in relations) == [
        ("CT000020", "_x0020_"), ("CT000030", "_x0020_")]

    # the card page and the in-process API create contacts the same way; a failed snapshot batch none
    created(bc.post(f"{env.odata}/CustomerCard", json={"Name": "From the card"}))
    env.sim.seed("customers", [{"displayName": "Seeded", "type": "Person"}])
    names = {c["displayName"]: (c["type"], c["contactBusinessRelation"]) for c in env.sim.rows("contacts")}
    assert names["From the card"] == ("Company", "Customer") and names["Seeded"] == ("Person", "Customer")
    count = len(env.sim.rows("contacts"))
    cid = env.sim.company_id
    batch = bc.post(f"{env.api}/$batch", headers={"Isolation": "snapshot"}, json={"requests": [
        {"id": "1", "method": "POST", "url": f"companies({cid})/customers", "body": {"displayName": "Rolled back"}},
        {"id": "2", "method": "POST", "url": f"companies({cid})/customers", "body": {"displayName": "X", "country": "ZZ"}},
    ]})
    assert [r["status"] for r in batch.json()["responses"]] == [201, 400]
    assert len(env.sim.rows("contacts")) == count and len(env.sim.rows("contactsInformation")) == 2


def test_customer_card_price_group_and_currency(env, bc):
    created(bc.post(f"{env.odata}/CustomerPriceGroups", json={"Code": "retail", "Description": "Retail"}))
    env.sim.seed("currencies", [{"code": "EUR", "displayName": "Euro"}])
    card = created(bc.post(f"{env.odata}/CustomerCard", json={"Name": "Priced", "Customer_Price_Group": "RETAIL",
                                                               "Currency_Code": "eur"}))
    assert (card["Customer_Price_Group"], card["Currency_Code"]) == ("RETAIL", "EUR")
    assert ok(bc.get(f"{env.company}/customers({card['SystemId']})"))["currencyCode"] == "EUR"
    url = f"{env.odata}/CustomerCard('{card['No']}')"
    assert error_of(bc.patch(url, json={"Customer_Price_Group": "VIP"}, headers={"If-Match": card["@odata.etag"]})) == (
        400, "Internal_InvalidTableRelation",
        "The field Customer Price Group of table Customer contains a value (VIP) that cannot be found in the related "
        "table (Customer Price Group).")
    blanked = ok(bc.patch(url, json={"Customer_Price_Group": "", "Currency_Code": ""}, headers={"If-Match": "*"}))
    assert (blanked["Customer_Price_Group"], blanked["Currency_Code"]) == ("", "")


# -- items and inventory -----------------------------------------------------------------------------------

def test_items_with_a_base_unit_and_inventory_from_item_ledger_entries(env, bc):
    pcs = created(bc.post(f"{env.company}/unitsOfMeasure", json={"code": "pcs", "displayName": "Pieces",
                                                                 "internationalStandardCode": "H87", "symbol": "pc"}))
    box = created(bc.post(f"{env.company}/unitsOfMeasure", json={"code": "BOX", "displayName": "Box"}))
    assert pcs["code"] == "PCS" and pcs["internationalStandardCode"] == "H87"
    url = f"{env.company}/items"
    item = created(bc.post(url, json={"displayName": "Touring Bike", "type": "Non_x002D_Inventory", "unitPrice": 1299.5,
                                      "baseUnitOfMeasureCode": "PCS", "gtin": "0123456789012"}))
    assert item["number"] == "1000" and item["type"] == "Non_x002D_Inventory" and item["inventory"] == 0
    assert item["baseUnitOfMeasureId"] == pcs["id"] and item["baseUnitOfMeasureCode"] == "PCS"
    assert item["itemCategoryId"] == EMPTY_GUID and item["taxGroupCode"] == "" and item["blocked"] is False
    assert "unitVolume" not in item
    second = created(bc.post(url, json={"displayName": "Helmet", "baseUnitOfMeasureId": box["id"]}))
    assert second["number"] == "1010" and second["baseUnitOfMeasureCode"] == "BOX"

    item_url = f"{url}({item['id']})"
    assert error_of(bc.patch(item_url, json={"baseUnitOfMeasureCode": "KG"}, headers={"If-Match": "*"})) == (
        400, "Internal_InvalidTableRelation",
        "The field Base Unit of Measure of table Item contains a value (KG) that cannot be found in the related "
        "table (Unit of Measure).")
    assert error_of(bc.patch(item_url, json={"baseUnitOfMeasureId": box["id"], "baseUnitOfMeasureCode": "PCS"},
                             headers={"If-Match": "*"})) == (
        400, "Application_DialogException", "The unit of measure values do not match to a specific Unit of Measure.")
    assert error_of(bc.patch(item_url, json={"baseUnitOfMeasureId": str(uuid.uuid4())}, headers={"If-Match": "*"})) == (
        400, "Application_DialogException", 'The "baseUnitOfMeasureId" does not match to a Unit of Measure.')
    assert error_of(bc.patch(item_url, json={"inventory": 5}, headers={"If-Match": "*"})) == (
        400, "BadRequest_InvalidOperation", "Control 'Inventory' is read-only.")
    assert error_of(bc.post(url, json={"displayName": "X", "type": "Bundle"}))[:2] == (400, "Application_EvaluateException")
    assert error_of(bc.post(url, json={"displayName": "X", "itemCategoryCode": "NONE"}))[:2] == (
        400, "Internal_InvalidTableRelation")
    moved = ok(bc.patch(item_url, json={"baseUnitOfMeasureId": box["id"]}, headers={"If-Match": item["@odata.etag"]}))
    assert moved["baseUnitOfMeasureCode"] == "BOX"

    # inventory moves only through item ledger entries, which leave the item itself unchanged
    stamp = literal(moved["lastModifiedDateTime"])
    later()
    assert env.sim.post_item_ledger("1000", 12) == 12
    admin = env.session().post(f"{env.url}/_sim/inventory", json={"item": "1000", "quantity": -2.5})
    assert admin.status_code == 200 and admin.json() == {"inventory": 9.5}
    assert ok(bc.get(url, params={"$filter": f"lastModifiedDateTime gt {stamp}"}))["value"] == []
    assert ok(bc.get(item_url))["inventory"] == 9.5
    entries = ok(bc.get(f"{env.company}/itemLedgerEntries", params={"$filter": "itemNumber eq '1000'"}))["value"]
    assert [(e["entryNumber"], e["entryType"], e["quantity"]) for e in entries] == [
        (1, "Positive_x0020_Adjmt_x002E_", 12), (2, "Negative_x0020_Adjmt_x002E_", -2.5)]
    [seeded] = env.sim.seed("items", [{"displayName": "Lock", "inventory": 40, "baseUnitOfMeasureCode": "PCS"}])
    assert ok(bc.get(f"{url}({seeded})"))["inventory"] == 40
    assert env.sim.update("items", seeded, {"inventory": 35})["inventory"] == 35
    assert ok(bc.get(url, params={"$filter": "inventory gt 30", "$select": "number,inventory"}))["value"][0]["inventory"] == 35
    assert error_of(bc.delete(f"{url}({seeded})", headers={"If-Match": "*"}))[:2] == (400, "Application_DialogException")

    # the table-only fields through the item card page
    card_url = f"{env.odata}/ItemCard('1000')"
    card = ok(bc.get(card_url))
    assert card["SystemId"] == item["id"] and card["Unit_Volume"] == 0
    patched = ok(bc.patch(card_url, json={"Unit_Volume": 0.25, "Gross_Weight": 12.4, "Vendor_No": "v100",
                                          "Vendor_Item_No": "TB-2000"}, headers={"If-Match": card["@odata.etag"]}))
    assert (patched["Vendor_No"], patched["Gross_Weight"]) == ("V100", 12.4)
    assert env.sim.get("items", item["id"])["vendorItemNo"] == "TB-2000"


def test_opportunities_for_contacts(env, bc):
    env.sim.seed("salespeoplePurchasers", [{"code": "JR", "displayName": "John Roberts"}])
    company = created(bc.post(f"{env.company}/contacts", json={"displayName": "Contoso", "type": "Company"}))
    person = created(bc.post(f"{env.company}/contacts", json={"displayName": "Sam Doe", "type": "Person",
                                                              "companyNumber": company["number"]}))
    url = f"{env.company}/opportunities"
    opportunity = created(bc.post(url, json={
        "contactNumber": person["number"], "salespersonCode": "jr", "description": "50 bikes",
        "status": "In_x0020_Progress", "estimatedValue": 25000, "chancesOfSuccessPrc": 40,
        "estimatedClosingDate": "2030-06-30"}))
    assert opportunity["number"] == "OP000010"
    assert (opportunity["contactName"], opportunity["contactCompanyName"]) == ("Sam Doe", "Contoso")
    assert opportunity["status"] == "In_x0020_Progress" and opportunity["closed"] is False
    assert opportunity["creationDate"] != "0001-01-01" and opportunity["dateClosed"] == "0001-01-01"
    assert opportunity["salespersonCode"] == "JR" and opportunity["estimatedClosingDate"] == "2030-06-30"

    later()
    won = ok(bc.patch(f"{url}({opportunity['id']})", json={"status": "Won", "calculatedCurrentValue": 25000},
                      headers={"If-Match": opportunity["@odata.etag"]}))
    assert won["closed"] is True and won["dateClosed"] != "0001-01-01"
    assert when(won["lastModifiedDateTime"]) > when(opportunity["lastModifiedDateTime"])
    assert [o["number"] for o in ok(bc.get(url, params={"$filter": "status eq 'Won'"}))["value"]] == ["OP000010"]
    assert error_of(bc.get(url, params={"$filter": "status eq 'Won' or closed eq true"}))[:2] == (
        501, "BadRequest_MethodNotImplemented")
    assert error_of(bc.patch(f"{url}({opportunity['id']})", json={"closed": False}, headers={"If-Match": "*"}))[:2] == (
        400, "BadRequest_InvalidOperation")
    assert error_of(bc.post(url, json={"contactNumber": "CT999999"})) == (
        400, "Internal_InvalidTableRelation",
        "The field Contact No. of table Opportunity contains a value (CT999999) that cannot be found in the related "
        "table (Contact).")
    assert error_of(bc.post(url, json={"contactNumber": person["number"], "salespersonCode": "XX"}))[:2] == (
        400, "Internal_InvalidTableRelation")
    assert error_of(bc.post(url, json={"status": "Pending"}))[:2] == (400, "Application_EvaluateException")


# -- G/L accounts ------------------------------------------------------------------------------------------

def test_g_l_accounts_are_read_only_on_the_wire_and_seeded_in_process(env, bc):
    ids = chart_of_accounts(env)
    url = f"{env.company}/accounts"
    listed = ok(bc.get(url))["value"]
    assert [a["number"] for a in listed] == ["6000", "6610", "6620", "6630"]
    freight = listed[1]
    assert {k: v for k, v in freight.items() if k not in ("@odata.etag", "lastModifiedDateTime")} == {
        "id": ids["6610"], "number": "6610", "displayName": "Freight Income", "category": "Income",
        "subCategory": "Income, Services", "blocked": False, "accountType": "Posting", "directPosting": True,
        "netChange": 0}
    assert when(freight["lastModifiedDateTime"]).year > 2000 and listed[0]["category"] == "_x0020_"
    assert listed[0]["accountType"] == "Heading" and listed[3]["directPosting"] is False
    postable = ok(bc.get(url, params={"$filter": "accountType eq 'Posting' and directPosting eq true and blocked eq false"}))
    assert [a["number"] for a in postable["value"]] == ["6610"]
    assert ok(bc.get(f"{url}({ids['6610']})"))["displayName"] == "Freight Income"
    assert '<EntitySet Name="accounts" EntityType="Microsoft.NAV.account"' in bc.get(f"{env.api}/$metadata").text

    assert error_of(bc.post(url, json={"number": "7000", "displayName": "X"}))[:2] == (405, "BadRequest_MethodNotAllowed")
    assert error_of(bc.patch(f"{url}({ids['6610']})", json={"blocked": True}, headers={"If-Match": "*"}))[:2] == (
        405, "BadRequest_MethodNotAllowed")
    assert error_of(bc.delete(f"{url}({ids['6610']})", headers={"If-Match": "*"}))[:2] == (
        405, "BadRequest_MethodNotAllowed")

    # the in-process API keeps the chart of accounts as BC users do on its pages
    assert env.sim.update("accounts", ids["6630"], {"directPosting": True})["directPosting"] is True
    assert env.sim.get("accounts", ids["6610"])["incomeBalance"] == "Income Statement"
    env.sim.delete("accounts", ids["6620"])
    assert [a["number"] for a in env.sim.rows("accounts")] == ["6000", "6610", "6630"]
    assert error_of(bc.get(f"{url}({ids['6620']})"))[:2] == (404, "Internal_RecordNotFound")


# -- sales documents -----------------------------------------------------------------------------------------

def test_sales_order_with_item_resource_and_comment_lines_ships_and_invoices(env, bc):
    data = master_data(env)
    orders = f"{env.company}/salesOrders"
    assert error_of(bc.post(orders, json={"externalDocumentNumber": "PO-1"})) == (
        400, "Application_DialogException", "A customerNumber or a customerID must be provided.")
    assert error_of(bc.post(orders, json={"customerNumber": "NOPE"})) == (
        400, "Application_DialogException", "The sell-to customer cannot be found.")
    for reference in ("yourReference", "customerPurchaseOrderReference"):  # API v2.0 orders have neither
        assert error_of(bc.post(orders, json={"customerNumber": "c00010", reference: "SO-DV-0042"}))[:2] == (
            400, "BadRequest")
    order = created(bc.post(orders, json={"customerNumber": "c00010", "externalDocumentNumber": "PO-4711",
                                          "orderDate": "2030-01-15"}))
    assert (order["number"], order["status"], order["customerId"], order["customerName"]) == (
        "101001", "Draft", data["customer"], "Adatum")
    assert (order["sellToAddressLine1"], order["billToCity"], order["shipToName"], order["shipToState"]) == (
        "1 Main St", "Atlanta", "Adatum", "GA")
    assert order["currencyCode"] == "USD" and order["paymentTermsId"] == data["terms"]
    assert "customerPurchaseOrderReference" not in order and order["totalAmountIncludingTax"] == 0
    ok(bc.patch(f"{env.odata}/SalesOrder('Order','101001')", json={"Your_Reference": "SO-DV-0042"},
                headers={"If-Match": "*"}))                                   # page 42 has Your Reference
    lines_url = f"{orders}({order['id']})/salesOrderLines"

    item_line = created(bc.post(lines_url, json={"itemId": data["item"], "quantity": 3}))
    assert (item_line["lineType"], item_line["lineObjectNumber"], item_line["description"], item_line["unitPrice"],
            item_line["unitOfMeasureCode"], item_line["sequence"], item_line["documentId"]) == (
        "Item", data["item_no"], "Bicycle", 100, "PCS", 10000, order["id"])
    assert item_line["amountExcludingTax"] == 300 and item_line["shipQuantity"] == 3
    resource_line = created(bc.post(f"{env.company}/salesOrderLines", json={
        "documentId": order["id"], "lineType": "Resource", "lineObjectNumber": data["resource_no"], "quantity": 2,
        "discountPercent": 10}))
    assert (resource_line["description"], resource_line["unitOfMeasureCode"], resource_line["discountAmount"],
            resource_line["netAmount"]) == ("Installer", "HOUR", 10, 90)
    comment = created(bc.post(lines_url, json={"lineType": "Comment", "description": "Deliver to the back door"}))
    assert comment["amountIncludingTax"] == 0 and comment["sequence"] == 30000

    assert error_of(bc.post(lines_url, json={"lineType": "Resource", "lineObjectNumber": "R9999", "quantity": 1})) == (
        400, "Internal_InvalidTableRelation",
        "The field No. of table Sales Line contains a value (R9999) that cannot be found in the related table (Resource).")
    assert error_of(bc.post(lines_url, json={"lineType": "Item", "lineObjectNumber": "NOPE", "quantity": 1})) == (
        400, "Application_DialogException", "Item does not exist.")
    assert error_of(bc.post(lines_url, json={"description": "X", "quantity": 1}))[:2] == (
        400, "Application_FieldValidationException")
    [blocked] = env.sim.seed("items", [{"displayName": "Old model", "blocked": True}])
    assert error_of(bc.post(lines_url, json={"itemId": blocked, "quantity": 1}))[:2] == (
        400, "Application_FieldValidationException")
    assert error_of(bc.get(f"{env.company}/salesOrderLines")) == (
        400, "Application_DialogException", "You must specify an Id or a Document Id to get the lines.")
    listed = ok(bc.get(f"{env.company}/salesOrderLines", params={"$filter": f"documentId eq {order['id']}"}))["value"]
    assert [line["lineType"] for line in listed] == ["Item", "Resource", "Comment"]

    later()
    patched = ok(bc.patch(f"{lines_url}({item_line['id']})", json={"quantity": 4, "discountAmount": 40},
                          headers={"If-Match": item_line["@odata.etag"]}))
    assert (patched["amountExcludingTax"], patched["discountPercent"], patched["shipQuantity"]) == (360, 10, 4)
    header = ok(bc.get(f"{orders}({order['id']})", params={"$expand": "salesOrderLines"}))
    assert when(header["lastModifiedDateTime"]) > when(order["lastModifiedDateTime"])
    assert header["totalAmountExcludingTax"] == 450 and header["fullyShipped"] is False
    assert [line["sequence"] for line in header["salesOrderLines"]] == [10000, 20000, 30000]

    # released orders keep their lines
    assert bc.post(f"{orders}({order['id']})/Microsoft.NAV.release").status_code == 204
    assert ok(bc.get(f"{orders}({order['id']})"))["status"] == "Open"
    assert error_of(bc.post(lines_url, json={"description": "late"}))[:2] == (400, "Application_FieldValidationException")

    response = bc.post(f"{orders}({order['id']})/Microsoft.NAV.shipAndInvoice")
    assert response.status_code == 204 and response.content == b""
    assert error_of(bc.get(f"{orders}({order['id']})"))[:2] == (404, "Internal_RecordNotFound")
    [invoice] = ok(bc.get(f"{env.company}/salesInvoices", params={"$filter": "orderNumber eq '101001'"}))["value"]
    assert (invoice["number"], invoice["status"], invoice["orderId"], invoice["externalDocumentNumber"],
            invoice["customerPurchaseOrderReference"], invoice["invoiceDate"]) == (
        "103001", "Open", order["id"], "PO-4711", "SO-DV-0042", "2030-01-15")
    assert invoice["dueDate"] == "2030-02-14"
    assert invoice["totalAmountIncludingTax"] == invoice["remainingAmount"] == 450
    posted_lines = ok(bc.get(f"{env.company}/salesInvoices({invoice['id']})/salesInvoiceLines"))["value"]
    assert [(line["lineType"], line["quantity"], line["netAmount"]) for line in posted_lines] == [
        ("Item", 4, 360), ("Resource", 2, 90), ("Comment", 0, 0)]

    # the item's inventory went down by what was shipped; the customer owes the invoice
    item = ok(bc.get(f"{env.company}/items({data['item']})"))
    assert item["inventory"] == 6
    sale = ok(bc.get(f"{env.company}/itemLedgerEntries", params={"$filter": "entryType eq 'Sale'"}))["value"]
    assert [(e["quantity"], e["documentNumber"]) for e in sale] == [(-4, "103001")]
    assert ok(bc.get(f"{env.company}/customers({data['customer']})"))["balanceDue"] == 450

    # a posted invoice and its lines are read-only
    invoice_url = f"{env.company}/salesInvoices({invoice['id']})"
    assert error_of(bc.patch(invoice_url, json={"externalDocumentNumber": "X"}, headers={"If-Match": "*"})) == (
        400, "Application_DialogException", POSTED)
    assert error_of(bc.delete(invoice_url, headers={"If-Match": "*"})) == (400, "Application_DialogException", POSTED)
    assert error_of(bc.patch(f"{invoice_url}/salesInvoiceLines({posted_lines[0]['id']})", json={"quantity": 1},
                             headers={"If-Match": "*"})) == (400, "Application_DialogException", POSTED)
    assert error_of(bc.post(f"{invoice_url}/salesInvoiceLines", json={"description": "x"})) == (
        400, "Application_DialogException", POSTED)
    assert error_of(bc.post(f"{invoice_url}/Microsoft.NAV.post"))[:2] == (400, "Application_DialogException")


def test_draft_invoice_is_posted_under_its_id_and_paid(env, bc):
    data = master_data(env)
    invoices = f"{env.company}/salesInvoices"
    draft = created(bc.post(invoices, json={
        "customerId": data["customer"], "invoiceDate": "2030-03-01", "discountAmount": 20,
        "salesInvoiceLines": [{"lineObjectNumber": data["item_no"], "quantity": 2},
                              {"lineType": "Resource", "lineObjectNumber": data["resource_no"], "quantity": 4}]}))
    assert (draft["number"], draft["status"], draft["dueDate"]) == ("102001", "Draft", "2030-03-31")
    assert [line["lineType"] for line in draft["salesInvoiceLines"]] == ["Item", "Resource"]
    assert draft["totalAmountExcludingTax"] == 380 and draft["remainingAmount"] == 380
    allocations = [line["invoiceDiscountAllocation"] for line in draft["salesInvoiceLines"]]
    assert sum(allocations) == 20 and allocations == [10, 10]

    empty = created(bc.post(invoices, json={"customerNumber": "C00010",
                                            "salesInvoiceLines": [{"description": "only a comment"}]}))
    assert error_of(bc.post(f"{invoices}({empty['id']})/Microsoft.NAV.post")) == (
        400, "Application_DialogException", "There is nothing to post.")
    assert error_of(bc.post(invoices, json={"customerId": data["customer"], "salesInvoiceLines": [
        {"lineObjectNumber": "NOPE", "quantity": 1}]}))[:2] == (400, "Application_DialogException")
    assert len(ok(bc.get(invoices))["value"]) == 2  # the failed deep insert left nothing behind
    assert error_of(bc.get(f"{invoices}({draft['id']})/Microsoft.NAV.post"))[:2] == (405, "BadRequest_MethodNotAllowed")

    assert bc.post(f"{invoices}({draft['id']})/Microsoft.NAV.post").status_code == 204
    posted = ok(bc.get(f"{invoices}({draft['id']})"))
    assert (posted["number"], posted["status"], posted["remainingAmount"], posted["totalAmountIncludingTax"]) == (
        "103001", "Open", 380, 380)
    assert ok(bc.get(invoices, params={"$filter": "number eq '102001'"}))["value"] == []
    assert ok(bc.get(f"{env.company}/items({data['item']})"))["inventory"] == 8

    admin = env.session()
    paid = admin.post(f"{env.url}/_sim/payment", json={"invoice": draft["id"], "amount": 300})
    assert paid.status_code == 200 and paid.json()["remainingAmount"] == 80 and paid.json()["status"] == "Open"
    partly = ok(bc.get(f"{invoices}({draft['id']})"))
    # the invoice row is not modified: only its ledger entry, which remainingAmount reads live
    assert (partly["lastModifiedDateTime"], partly["@odata.etag"]) == (posted["lastModifiedDateTime"],
                                                                       posted["@odata.etag"])
    assert partly["remainingAmount"] == 80
    assert ok(bc.get(f"{env.company}/customers({data['customer']})"))["balanceDue"] == 80
    later()
    settled = env.sim.apply_payment(draft["id"], 80)
    assert settled["status"] == "Paid" and settled["remainingAmount"] == 0
    paid_in_full = ok(bc.get(f"{invoices}({draft['id']})"))   # closed: the status changes, and the row with it
    assert when(paid_in_full["lastModifiedDateTime"]) > when(posted["lastModifiedDateTime"])
    assert ok(bc.get(f"{env.company}/customers({data['customer']})"))["balanceDue"] == 0
    assert [i["number"] for i in ok(bc.get(invoices, params={"$filter": "status eq 'Paid'"}))["value"]] == ["103001"]
    # remainingAmount and currencyCode are page variables: no filtering or sorting on them
    for option, text in (("$filter", "remainingAmount gt 0"), ("$filter", "currencyCode eq 'USD'"),
                         ("$orderby", "remainingAmount desc")):
        assert error_of(bc.get(invoices, params={option: text})) == (
            501, "BadRequest_MethodNotImplemented",
            f"The property '{text.split()[0]}' is not bound to a table field and cannot be used in {option}.")
    assert ok(bc.get(invoices, params={"$select": "number,remainingAmount", "$filter": "status eq 'Open'"}))
    assert admin.post(f"{env.url}/_sim/payment", json={"invoice": empty["id"], "amount": 1}).status_code == 400


def test_a_partly_shipped_order_stays_until_it_is_fully_invoiced(env, bc):
    data = master_data(env)
    orders = f"{env.company}/salesOrders"
    order = created(bc.post(orders, json={"customerId": data["customer"], "salesOrderLines": [
        {"itemId": data["item"], "quantity": 5, "shipQuantity": 2, "invoiceQuantity": 2}]}))
    [line] = order["salesOrderLines"]
    assert error_of(bc.patch(f"{orders}({order['id']})/salesOrderLines({line['id']})", json={"shipQuantity": 6},
                             headers={"If-Match": "*"})) == (
        400, "Application_DialogException", "You cannot ship more than 5 units.")
    assert bc.post(f"{orders}({order['id']})/Microsoft.NAV.shipAndInvoice").status_code == 204
    listed = ok(bc.get(orders, params={"$expand": "salesOrderLines"}))["value"]
    [left] = listed[0]["salesOrderLines"]
    assert (left["shippedQuantity"], left["invoicedQuantity"], left["shipQuantity"], left["invoiceQuantity"]) == (2, 2, 3, 3)
    assert listed[0]["fullyShipped"] is False
    assert ok(bc.get(f"{env.company}/items({data['item']})"))["inventory"] == 8
    [first] = ok(bc.get(f"{env.company}/salesInvoices"))["value"]
    assert first["totalAmountExcludingTax"] == 200 and first["orderNumber"] == order["number"]
    # the order remembers that posting (page 42 shows it): its shipment's date and number, its invoice's number
    page = ok(bc.get(f"{env.odata}/SalesOrder(Document_Type='Order',No='{order['number']}')"))
    assert (page["Last_Shipment_Date"], page["Last_Shipping_No"], page["Last_Posting_No"]) == (
        first["postingDate"], "108001", first["number"])
    assert error_of(bc.delete(f"{env.company}/customers({data['customer']})", headers={"If-Match": "*"})) == (
        400, "Application_DialogException", "You cannot delete Customer C00010 because it has open ledger entries.")

    assert bc.post(f"{orders}({order['id']})/Microsoft.NAV.shipAndInvoice").status_code == 204
    assert ok(bc.get(orders))["value"] == []
    assert [i["totalAmountExcludingTax"] for i in ok(bc.get(f"{env.company}/salesInvoices"))["value"]] == [200, 300]
    assert ok(bc.get(f"{env.company}/items({data['item']})"))["inventory"] == 5


def test_freight_on_a_g_l_account_line_is_shipped_invoiced_and_posts_no_item_ledger_entry(env, bc):
    data = master_data(env)
    accounts = chart_of_accounts(env)
    orders = f"{env.company}/salesOrders"
    order = created(bc.post(orders, json={"customerId": data["customer"], "salesOrderLines": [
        {"itemId": data["item"], "quantity": 2},
        {"lineType": "Account", "lineObjectNumber": "6610", "quantity": 1, "unitPrice": 25}]}))
    item_line, freight = order["salesOrderLines"]
    assert (freight["lineType"], freight["lineObjectNumber"], freight["accountId"], freight["itemId"],
            freight["description"], freight["unitOfMeasureCode"], freight["unitPrice"]) == (
        "Account", "6610", accounts["6610"], EMPTY_GUID, "Freight Income", "", 25)
    assert (freight["amountExcludingTax"], freight["netAmount"], freight["shipQuantity"]) == (25, 25, 1)
    assert item_line["accountId"] == EMPTY_GUID and order["totalAmountExcludingTax"] == 225

    lines_url = f"{orders}({order['id']})/salesOrderLines"
    by_id = created(bc.post(lines_url, json={"accountId": accounts["6610"], "quantity": 1, "description": "Express"}))
    assert (by_id["lineType"], by_id["lineObjectNumber"], by_id["description"], by_id["unitPrice"]) == (
        "Account", "6610", "Express", 0)
    assert error_of(bc.post(lines_url, json={"lineType": "Account", "lineObjectNumber": "9999", "quantity": 1})) == (
        400, "Application_DialogException", "Account does not exist.")
    assert error_of(bc.post(lines_url, json={"accountId": str(uuid.uuid4()), "quantity": 1})) == (
        400, "Application_DialogException", "Account does not exist.")
    assert error_of(bc.post(lines_url, json={"lineType": "Account", "lineObjectNumber": "6620", "quantity": 1})) == (
        400, "Application_FieldValidationException",
        "Blocked must be equal to 'No'  in G/L Account: No.=6620. Current value is 'Yes'.")
    assert error_of(bc.post(lines_url, json={"lineType": "Account", "lineObjectNumber": "6000", "quantity": 1})) == (
        400, "Application_FieldValidationException",
        "Account Type must be equal to 'Posting'  in G/L Account: No.=6000. Current value is 'Heading'.")
    assert error_of(bc.post(lines_url, json={"lineType": "Account", "lineObjectNumber": "6630", "quantity": 1})) == (
        400, "Application_FieldValidationException",
        "Direct Posting must be equal to 'Yes'  in G/L Account: No.=6630. Current value is 'No'.")
    assert error_of(bc.post(lines_url, json={"accountId": accounts["6610"], "lineObjectNumber": "6630"})) == (
        400, "Application_DialogException", "The account values do not match to a specific Account.")
    assert error_of(bc.post(lines_url, json={"itemId": data["item"], "accountId": accounts["6610"]})) == (
        400, "Application_DialogException", 'Both "itemId" and "accountId" are specified. Specify only one of them.')
    assert bc.delete(f"{lines_url}({by_id['id']})", headers={"If-Match": "*"}).status_code == 204

    assert bc.post(f"{orders}({order['id']})/Microsoft.NAV.shipAndInvoice").status_code == 204
    [invoice] = ok(bc.get(f"{env.company}/salesInvoices", params={"$expand": "salesInvoiceLines"}))["value"]
    assert invoice["totalAmountExcludingTax"] == invoice["remainingAmount"] == 225
    assert [(line["lineType"], line["lineObjectNumber"], line["accountId"], line["description"], line["quantity"],
             line["netAmount"]) for line in invoice["salesInvoiceLines"]] == [
        ("Item", data["item_no"], EMPTY_GUID, "Bicycle", 2, 200),
        ("Account", "6610", accounts["6610"], "Freight Income", 1, 25)]
    sales = ok(bc.get(f"{env.company}/itemLedgerEntries", params={"$filter": "entryType eq 'Sale'"}))["value"]
    assert [(e["itemNumber"], e["quantity"]) for e in sales] == [(data["item_no"], -2)]

    # posting checks the account again: one blocked since the order was taken cannot be posted to
    draft = created(bc.post(f"{env.company}/salesInvoices", json={"customerId": data["customer"], "salesInvoiceLines": [
        {"lineType": "Account", "lineObjectNumber": "6610", "quantity": 1, "unitPrice": 10}]}))
    env.sim.update("accounts", accounts["6610"], {"blocked": True})
    assert error_of(bc.post(f"{env.company}/salesInvoices({draft['id']})/Microsoft.NAV.post")) == (
        400, "Application_FieldValidationException",
        "Blocked must be equal to 'No'  in G/L Account: No.=6610. Current value is 'Yes'.")


# -- published pages ----------------------------------------------------------------------------------------------

def test_resources_and_customer_price_groups_pages(env, bc):
    env.sim.seed("unitsOfMeasure", [{"code": "HOUR", "displayName": "Hour"}])
    url = f"{env.odata}/Resources"
    first = created(bc.post(url, json={"Name": "Lina Townsend", "Type": "Person", "Base_Unit_of_Measure": "hour",
                                       "Unit_Price": 120, "Unit_Cost": 80, "Capacity": 160}))
    assert (first["No"], first["Base_Unit_of_Measure"], first["Blocked"]) == ("R0010", "HOUR", False)
    machine = created(bc.post(url, json={"Name": "Forklift", "Type": "Machine"}))
    third = bc.post(url, json={"Name": "x"})
    assert machine["No"] == "R0020" and third.headers["Location"].endswith("/Resources('R0030')")
    assert error_of(bc.post(url, json={"Name": "Bad", "Base_Unit_of_Measure": "DAY"})) == (
        400, "Internal_InvalidTableRelation",
        "The field Base Unit of Measure of table Resource contains a value (DAY) that cannot be found in the related "
        "table (Unit of Measure).")
    assert error_of(bc.post(url, json={"Name": "Bad", "Type": "Robot"}))[:2] == (400, "Application_EvaluateException")
    assert error_of(bc.post(url, json={"No": "R0010", "Name": "Dup"}))[:2] == (400, "Internal_EntityWithSameKeyExists")

    item_url = f"{url}('R0010')"
    stamp = literal(third.json()["SystemModifiedAt"])
    later()
    assert error_of(bc.patch(item_url, json={"Unit_Price": 130}))[:2] == (400, "BadRequest_InvalidToken")
    patched = ok(bc.patch(item_url, json={"Unit_Price": 130, "Blocked": True}, headers={"If-Match": first["@odata.etag"]}))
    assert patched["Unit_Price"] == 130 and patched["@odata.etag"] != first["@odata.etag"]
    assert error_of(bc.patch(item_url, json={"Unit_Price": 140}, headers={"If-Match": first["@odata.etag"]}))[:2] == (
        409, "Request_EntityChanged")
    changed = ok(bc.get(url, params={"$filter": f"SystemModifiedAt gt {stamp}", "$select": "No,Unit_Price"}))["value"]
    assert [(r["No"], r["Unit_Price"]) for r in changed] == [("R0010", 130)]
    assert bc.delete(f"{url}('R0020')", headers={"If-Match": machine["@odata.etag"]}).status_code == 204
    assert error_of(bc.get(f"{url}('R0020')"))[:2] == (404, "Internal_RecordNotFound")

    groups = f"{env.odata}/CustomerPriceGroups"
    retail = created(bc.post(groups, json={"Code": "retail", "Description": "Retail customers"}))
    assert (retail["Code"], retail["Allow_Invoice_Disc"], retail["Price_Includes_VAT"]) == ("RETAIL", True, False)
    assert error_of(bc.post(groups, json={"Code": "TOO-LONG-CODE"}))[:2] == (400, "Application_StringExceededLength")
    updated = ok(bc.patch(f"{groups}('RETAIL')", json={"Price_Includes_VAT": True}, headers={"If-Match": "*"}))
    assert updated["Price_Includes_VAT"] is True and updated["SystemId"] == retail["SystemId"]


def test_the_sales_order_page_sets_the_shipping_agent_of_an_order(env, bc):
    data = master_data(env)
    env.sim.seed("ShippingAgents", [{"Code": "DHL", "Name": "DHL Express"}, {"Code": "UPS", "Name": "UPS"}])
    env.sim.update("customers", data["customer"], {"shippingAgentCode": "DHL"})
    order = created(bc.post(f"{env.company}/salesOrders", json={"customerId": data["customer"], "salesOrderLines": [
        {"itemId": data["item"], "quantity": 1}]}))
    assert "shippingAgentCode" not in order  # API v2.0 does not publish it
    url = f"{env.odata}/SalesOrder"
    key_url = f"{url}(Document_Type='Order',No='{order['number']}')"
    page = ok(bc.get(key_url))
    assert page["@odata.context"].endswith("/$metadata#Company('CRONUS%20USA%2C%20Inc.')/SalesOrder/$entity")
    assert {k: v for k, v in page.items() if not k.startswith("@")} == {
        "Document_Type": "Order", "No": "101001", "Sell_to_Customer_No": "C00010", "Your_Reference": "",
        "External_Document_No": "", "Shipping_Agent_Code": "DHL", "Shipment_Method_Code": "",
        "Payment_Terms_Code": "30 DAYS", "Payment_Discount_Percent": 0, "WorkDescription": "",
        "BillToOptions": "Default_x0020__x0028_Customer_x0029_", "Bill_to_Address": "1 Main St",
        "Bill_to_Address_2": "", "Bill_to_City": "Atlanta", "Bill_to_County": "GA", "Bill_to_Post_Code": "31772",
        "Bill_to_Country_Region_Code": "US", "Last_Shipment_Date": "0001-01-01", "Last_Shipping_No": "",
        "Last_Posting_No": "", "Quote_No": "", "QuoteNo": "", "SystemId": order["id"],
        "SystemModifiedAt": order["lastModifiedDateTime"]}
    assert ok(bc.get(f"{url}('Order','101001')"))["SystemId"] == order["id"]

    assert error_of(bc.patch(key_url, json={"Shipping_Agent_Code": "UPS"}))[:2] == (400, "BadRequest_InvalidToken")
    patched = ok(bc.patch(key_url, json={"Shipping_Agent_Code": "ups", "Your_Reference": "SO-DV-0042"},
                          headers={"If-Match": page["@odata.etag"]}))
    assert (patched["Shipping_Agent_Code"], patched["Your_Reference"]) == ("UPS", "SO-DV-0042")
    assert ok(bc.get(key_url))["Shipping_Agent_Code"] == "UPS"
    again = ok(bc.get(f"{env.company}/salesOrders({order['id']})"))
    assert "yourReference" not in again and again["@odata.etag"] == patched["@odata.etag"]
    assert error_of(bc.patch(key_url, json={"Shipping_Agent_Code": "DHL"}, headers={"If-Match": page["@odata.etag"]}))[:2] == (
        409, "Request_EntityChanged")
    assert error_of(bc.patch(key_url, json={"Shipping_Agent_Code": "FEDEX"}, headers={"If-Match": "*"})) == (
        400, "Internal_InvalidTableRelation",
        "The field Shipping Agent Code of table Sales Order Entity Buffer contains a value (FEDEX) that cannot be found "
        "in the related table (Shipping Agent).")
    assert error_of(bc.patch(key_url, json={"Sell_to_Customer_No": "C00020"}, headers={"If-Match": "*"})) == (
        400, "BadRequest_InvalidOperation", "Control 'Sell-to Customer No.' is read-only.")
    # the bill-to address, read-only on API v2.0, is editable on the page once Bill-to is a Custom Address
    assert error_of(bc.patch(f"{env.company}/salesOrders({order['id']})", json={"billToCity": "Macon"},
                             headers={"If-Match": "*"})) == (
        400, "BadRequest_InvalidOperation", "Control 'Bill-to City' is read-only.")
    assert error_of(bc.patch(key_url, json={"Bill_to_City": "Macon"}, headers={"If-Match": "*"})) == (
        400, "BadRequest_InvalidOperation", "Control 'Bill-to City' is read-only.")
    billed = ok(bc.patch(key_url, json={"Bill_to_City": "Macon", "BillToOptions": "Custom_x0020_Address",
                                        "Bill_to_Address": "9 Mill Rd", "Bill_to_Post_Code": "31201"},
                         headers={"If-Match": "*"}))
    assert (billed["Bill_to_Address"], billed["Bill_to_City"], billed["Bill_to_County"], billed["BillToOptions"]) == (
        "9 Mill Rd", "Macon", "GA", "Default_x0020__x0028_Customer_x0029_")  # a page variable, never read back
    api = ok(bc.get(f"{env.company}/salesOrders({order['id']})"))
    assert (api["billToAddressLine1"], api["billToCity"], api["billToPostCode"], api["sellToCity"]) == (
        "9 Mill Rd", "Macon", "31201", "Atlanta")
    cleared = ok(bc.patch(key_url, json={"Payment_Terms_Code": ""}, headers={"If-Match": "*"}))
    assert cleared["Payment_Terms_Code"] == ""  # and the due date follows, as through salesOrders
    assert str(env.sim.get("salesOrders", order["id"])["dueDate"]) == order["orderDate"]

    # Document Type is always Order: another value finds nothing
    assert error_of(bc.get(f"{url}(Document_Type='Quote',No='101001')")) == (
        404, "Internal_RecordNotFound",
        "The Sales Order Entity Buffer does not exist. Identification fields and values: Document Type='Quote',No.='101001'")
    assert error_of(bc.get(f"{url}(Document_Type='Order',No='101999')"))[:2] == (404, "Internal_RecordNotFound")
    listed = ok(bc.get(url, params={"$filter": "No eq '101001' and Document_Type eq 'Order'"}))["value"]
    assert [(row["No"], row["Shipping_Agent_Code"]) for row in listed] == [("101001", "UPS")]
    assert ok(bc.get(url, params={"$filter": "No eq '101999'"}))["value"] == []
    assert error_of(bc.post(url, json={"Sell_to_Customer_No": "C00010"}))[:2] == (405, "BadRequest_MethodNotAllowed")
    assert error_of(bc.delete(key_url, headers={"If-Match": "*"}))[:2] == (405, "BadRequest_MethodNotAllowed")
    metadata = bc.get(f"{env.base}/ODataV4/$metadata").text
    assert '<EntityType Name="SalesOrder"><Key><PropertyRef Name="Document_Type" /><PropertyRef Name="No" /></Key>' in metadata

    # posting carries the shipping agent onto the posted invoice
    assert bc.post(f"{env.company}/salesOrders({order['id']})/Microsoft.NAV.shipAndInvoice").status_code == 204
    assert error_of(bc.get(key_url))[:2] == (404, "Internal_RecordNotFound")
    [invoice] = ok(bc.get(f"{env.company}/salesInvoices"))["value"]
    posted = env.sim.store.get(env.sim.catalog.tables["Sales Invoice Entity Aggregate"],
                               env.sim.store.companies[env.sim.company_id], invoice["id"])
    assert posted["Shipping Agent Code"] == "UPS"


def test_a_sales_quote_with_lines_is_changed_line_by_line_and_an_order_names_it_as_its_quote(env, bc):
    data = master_data(env)
    quote = created(bc.post(f"{env.company}/salesQuotes?$expand=salesQuoteLines", json={
        "customerId": data["customer"], "externalDocumentNumber": "10 bikes", "validUntilDate": "2024-06-30",
        "salesQuoteLines": [{"lineType": "Item", "lineObjectNumber": data["item_no"], "quantity": 2, "unitPrice": 90},
                            {"lineType": "Comment", "description": "Gift-wrapped"}]}))
    assert (quote["number"], quote["status"], quote["validUntilDate"], quote["customerNumber"]) == (
        "1001", "Draft", "2024-06-30", "C00010")
    assert quote["totalAmountExcludingTax"] == 180 and "yourReference" not in quote and "orderDate" not in quote
    lines = quote["salesQuoteLines"]
    assert [(line["sequence"], line["lineType"], line["quantity"]) for line in lines] == [
        (10000, "Item", 2), (20000, "Comment", 0)]
    lines_url = f"{env.company}/salesQuotes({quote['id']})/salesQuoteLines"
    comment = lines[1]
    assert bc.delete(f"{lines_url}({comment['id']})", headers={"If-Match": comment["@odata.etag"]}).status_code == 204
    created(bc.post(lines_url, json={"lineType": "Resource", "lineObjectNumber": data["resource_no"], "quantity": 3}))
    header = ok(bc.patch(f"{env.company}/salesQuotes({quote['id']})", json={"externalDocumentNumber": "12 bikes"},
                         headers={"If-Match": "*"}))
    assert (header["externalDocumentNumber"], header["totalAmountExcludingTax"]) == ("12 BIKES", 330)
    assert [(line["lineType"], line["sequence"]) for line in ok(bc.get(lines_url))["value"]] == [
        ("Item", 10000), ("Resource", 20000)]  # after the last line number left
    assert ok(bc.get(f"{env.company}/salesOrders"))["value"] == []  # quotes are no orders
    # page 41 "Sales Quote": what API v2.0 quotes lack
    quote_page = f"{env.odata}/SalesQuote(Document_Type='Quote',No='1001')"
    written = ok(bc.patch(quote_page, json={"Your_Reference": "QUO-01001-AB12CD", "Requested_Delivery_Date": "2024-07-01",
                                            "WorkDescription": "Deliver in June"}, headers={"If-Match": "*"}))
    assert (written["Your_Reference"], written["Requested_Delivery_Date"], written["Quote_Valid_Until_Date"]) == (
        "QUO-01001-AB12CD", "2024-07-01", "2024-06-30")
    assert error_of(bc.get(f"{env.odata}/SalesQuote(Document_Type='Order',No='1001')"))[:2] == (
        404, "Internal_RecordNotFound")

    # page 42 shows an order's Quote No. read-only; bcsync's extension adds a control that sets it
    order = created(bc.post(f"{env.company}/salesOrders", json={"customerId": data["customer"]}))
    key_url = f"{env.odata}/SalesOrder(Document_Type='Order',No='{order['number']}')"
    assert error_of(bc.patch(key_url, json={"Quote_No": "1001"}, headers={"If-Match": "*"})) == (
        400, "BadRequest_InvalidOperation", "Control 'Quote No.' is read-only.")
    page = ok(bc.patch(key_url, json={"QuoteNo": "1001"}, headers={"If-Match": "*"}))
    assert (page["Quote_No"], page["QuoteNo"]) == ("1001", "1001")


def test_sales_prices_are_addressed_by_their_composite_key(env, bc):
    data = master_data(env)
    created(bc.post(f"{env.odata}/CustomerPriceGroups", json={"Code": "RETAIL"}))
    url = f"{env.odata}/SalesPrices"
    price = created(bc.post(url, json={"Item_No": data["item_no"], "Sales_Type": "Customer_x0020_Price_x0020_Group",
                                       "Sales_Code": "retail", "Minimum_Quantity": 5, "Unit_Price": 89.5}))
    key = (f"Item_No='{data['item_no']}',Sales_Type='Customer_x0020_Price_x0020_Group',Sales_Code='RETAIL',"
           "Starting_Date=0001-01-01,Currency_Code='',Variant_Code='',Unit_of_Measure_Code='',Minimum_Quantity=5")
    response = bc.post(url, json={"Item_No": data["item_no"], "Sales_Type": "All_x0020_Customers", "Unit_Price": 99,
                                  "Starting_Date": "2030-01-01", "Ending_Date": "2030-12-31"})
    assert created(response)["Sales_Code"] == ""
    assert response.headers["Location"].endswith(
        f"/SalesPrices(Item_No='{data['item_no']}',Sales_Type='All_x0020_Customers',Sales_Code='',"
        "Starting_Date=2030-01-01,Currency_Code='',Variant_Code='',Unit_of_Measure_Code='',Minimum_Quantity=0)")
    assert price["Starting_Date"] == "0001-01-01" and price["Sales_Type"] == "Customer_x0020_Price_x0020_Group"

    entity = ok(bc.get(f"{url}({key})"))
    assert entity["SystemId"] == price["SystemId"] and entity["@odata.context"].endswith("/SalesPrices/$entity")
    shuffled = ("Minimum_Quantity=5,Sales_Code='RETAIL',Unit_of_Measure_Code='',Variant_Code='',Currency_Code='',"
                f"Starting_Date=0001-01-01,Sales_Type='Customer_x0020_Price_x0020_Group',Item_No='{data['item_no']}'")
    assert ok(bc.get(f"{url}({shuffled})"))["SystemId"] == price["SystemId"]
    assert error_of(bc.get(f"{url}({key.replace('RETAIL', 'VIP')})"))[:2] == (404, "Internal_RecordNotFound")
    assert error_of(bc.patch(f"{url}({key})", json={"Unit_Price": 80}))[:2] == (400, "BadRequest_InvalidToken")
    patched = ok(bc.patch(f"{url}({key})", json={"Unit_Price": 80}, headers={"If-Match": price["@odata.etag"]}))
    assert patched["Unit_Price"] == 80
    listed = ok(bc.get(url, params={"$filter": "Sales_Type eq 'Customer_x0020_Price_x0020_Group'"}))["value"]
    assert [p["Unit_Price"] for p in listed] == [80]
    assert error_of(bc.get(url, params={"$filter": "Sales_Type eq 'Customer Price Group'"}))[:2] == (400, "BadRequest")

    assert error_of(bc.post(url, json={"Item_No": data["item_no"], "Sales_Type": "Customer_x0020_Price_x0020_Group",
                                       "Sales_Code": "RETAIL", "Minimum_Quantity": 5})) == (
        400, "Internal_EntityWithSameKeyExists",
        f"The record in table Sales Price already exists. Identification fields and values: Item No.='{data['item_no']}',"
        "Sales Type='Customer Price Group',Sales Code='RETAIL',Starting Date='',Currency Code='',Variant Code='',"
        "Unit of Measure Code='',Minimum Quantity='5'")
    assert error_of(bc.post(url, json={"Item_No": data["item_no"], "Sales_Type": "Customer_x0020_Price_x0020_Group",
                                       "Sales_Code": "VIP"})) == (
        400, "Internal_InvalidTableRelation",
        "The field Sales Code of table Sales Price contains a value (VIP) that cannot be found in the related table "
        "(Customer Price Group).")
    assert error_of(bc.post(url, json={"Item_No": "NOPE", "Sales_Type": "All_x0020_Customers"}))[:2] == (
        400, "Internal_InvalidTableRelation")
    assert error_of(bc.post(url, json={"Item_No": data["item_no"], "Sales_Type": "Customer"}))[:2] == (
        400, "Application_FieldValidationException")
    assert error_of(bc.post(url, json={"Item_No": data["item_no"], "Sales_Type": "All_x0020_Customers",
                                       "Sales_Code": "RETAIL"})) == (400, "Application_DialogException", "Sales Code must be blank.")
    assert error_of(bc.post(url, json={"Item_No": data["item_no"], "Sales_Type": "Customer", "Sales_Code": "C00010",
                                       "Unit_of_Measure_Code": "BOX"}))[:2] == (400, "Internal_InvalidTableRelation")
    assert error_of(bc.post(url, json={"Item_No": data["item_no"], "Sales_Type": "Customer", "Sales_Code": "C00010",
                                       "Starting_Date": "2030-02-01", "Ending_Date": "2030-01-01"})) == (
        400, "Application_DialogException", "Starting Date cannot be after Ending Date")
    customer_price = created(bc.post(url, json={"Item_No": data["item_no"], "Sales_Type": "Customer",
                                                "Sales_Code": "c00010", "Unit_of_Measure_Code": "PCS", "Unit_Price": 75}))
    assert customer_price["Sales_Code"] == "C00010"
    assert bc.delete(f"{url}({key})", headers={"If-Match": patched["@odata.etag"]}).status_code == 204
    assert len(ok(bc.get(url))["value"]) == 2


def test_currency_exchange_rates_and_the_sales_receivables_setup(env, bc):
    data = master_data(env)
    env.sim.seed("currencies", [{"code": "EUR", "displayName": "Euro"}])
    url = f"{env.odata}/CurrencyExchangeRates"
    response = bc.post(url, json={"Currency_Code": "eur", "Starting_Date": "2030-01-01", "Exchange_Rate_Amount": 1,
                                  "Relational_Exch_Rate_Amount": 1.08})
    rate = created(response)
    assert response.headers["Location"].endswith("/CurrencyExchangeRates(Currency_Code='EUR',Starting_Date=2030-01-01)")
    key_url = f"{url}(Currency_Code='EUR',Starting_Date=2030-01-01)"
    assert ok(bc.get(key_url))["Relational_Exch_Rate_Amount"] == 1.08
    assert ok(bc.patch(key_url, json={"Relational_Exch_Rate_Amount": 1.1}, headers={"If-Match": rate["@odata.etag"]}))[
        "Relational_Exch_Rate_Amount"] == 1.1
    assert error_of(bc.post(url, json={"Currency_Code": "GBP", "Starting_Date": "2030-01-01"})) == (
        400, "Internal_InvalidTableRelation",
        "The field Currency Code of table Currency Exchange Rate contains a value (GBP) that cannot be found in the "
        "related table (Currency).")
    assert error_of(bc.post(url, json={"Currency_Code": "EUR"}))[:2] == (400, "Application_FieldValidationException")
    assert error_of(bc.post(url, json={"Currency_Code": "EUR", "Starting_Date": "2030-01-01"}))[:2] == (
        400, "Internal_EntityWithSameKeyExists")
    assert error_of(bc.post(url, json={"Currency_Code": "EUR", "Starting_Date": "not a date"}))[:2] == (400, "BadRequest")

    setup_url = f"{env.odata}/SalesReceivablesSetup('')"
    setup = ok(bc.get(setup_url))
    assert (setup["Primary_Key"], setup["Write_in_Product_Type"], setup["Write_in_Product_No"]) == ("", "Item", "")
    assert [s["Primary_Key"] for s in ok(bc.get(f"{env.odata}/SalesReceivablesSetup"))["value"]] == [""]
    assert ok(bc.get(f"{env.odata}/SalesReceivablesSetup(Primary_Key='')"))["SystemId"] == setup["SystemId"]
    later()
    patched = ok(bc.patch(setup_url, json={"Write_in_Product_Type": "Resource", "Write_in_Product_No": data["resource_no"],
                                           "Default_Price_List_Code": "S00001"}, headers={"If-Match": setup["@odata.etag"]}))
    assert (patched["Write_in_Product_Type"], patched["Write_in_Product_No"]) == ("Resource", data["resource_no"])
    assert when(patched["SystemModifiedAt"]) > when(setup["SystemModifiedAt"])
    assert error_of(bc.patch(setup_url, json={"Write_in_Product_No": data["item_no"]}, headers={"If-Match": "*"})) == (
        400, "Internal_InvalidTableRelation",
        f"The field Write-in Product No. of table Sales & Receivables Setup contains a value ({data['item_no']}) that "
        "cannot be found in the related table (Resource).")
    switched = ok(bc.patch(setup_url, json={"Write_in_Product_Type": "Item"}, headers={"If-Match": "*"}))
    assert switched["Write_in_Product_No"] == ""  # a new type clears the number
    # the freight account must be a G/L account that can be posted to
    chart_of_accounts(env)
    assert switched["Freight_G_L_Acc_No"] == ""
    assert ok(bc.patch(setup_url, json={"Freight_G_L_Acc_No": "6610"}, headers={"If-Match": "*"}))["Freight_G_L_Acc_No"] == "6610"
    assert ok(bc.get(setup_url, params={"$select": "Freight_G_L_Acc_No"}))["Freight_G_L_Acc_No"] == "6610"
    assert env.sim.rows("SalesReceivablesSetup")[0]["Freight_G_L_Acc_No"] == "6610"
    assert error_of(bc.patch(setup_url, json={"Freight_G_L_Acc_No": "9999"}, headers={"If-Match": "*"})) == (
        400, "Internal_InvalidTableRelation",
        "The field Freight G/L Acc. No. of table Sales & Receivables Setup contains a value (9999) that cannot be "
        "found in the related table (G/L Account).")
    assert error_of(bc.patch(setup_url, json={"Freight_G_L_Acc_No": "6000"}, headers={"If-Match": "*"})) == (
        400, "Application_FieldValidationException",
        "Account Type must be equal to 'Posting'  in G/L Account: No.=6000. Current value is 'Heading'.")
    assert error_of(bc.patch(setup_url, json={"Freight_G_L_Acc_No": "6620"}, headers={"If-Match": "*"}))[:2] == (
        400, "Application_FieldValidationException")
    assert ok(bc.get(setup_url))["Freight_G_L_Acc_No"] == "6610"
    assert error_of(bc.post(f"{env.odata}/SalesReceivablesSetup", json={"Primary_Key": "X"}))[:2] == (
        405, "BadRequest_MethodNotAllowed")
    assert error_of(bc.delete(setup_url, headers={"If-Match": "*"}))[:2] == (405, "BadRequest_MethodNotAllowed")
    metadata = bc.get(f"{env.base}/ODataV4/$metadata").text
    assert '<EntitySet Name="SalesPrices"' in metadata and '<PropertyRef Name="Minimum_Quantity" />' in metadata
    api_metadata = bc.get(f"{env.api}/$metadata").text
    assert '<Action Name="shipAndInvoice" IsBound="true">' in api_metadata


def test_the_in_process_api_and_admin_endpoints_cover_every_entity_set_and_page(env, bc):
    data = master_data(env)
    [order] = env.sim.seed("salesOrders", [{"customerId": data["customer"], "number": "SO-1"}])
    env.sim.seed("salesOrderLines", [{"documentId": order, "lineObjectNumber": data["item_no"], "quantity": 1}])
    catalog = env.sim.catalog
    for name in [*catalog.apis["v2.0"], *catalog.pages]:
        for row in env.sim.rows(name)[:1]:
            assert env.sim.get(name, row.get("id") or row["SystemId"]) == row
    [line] = env.sim.rows("salesOrderLines")
    assert env.sim.update("salesOrderLines", line["id"], {"quantity": 2, "taxPercent": 10})["amountIncludingTax"] == 220
    assert env.sim.get("salesOrders", order)["totalTaxAmount"] == 20

    admin = env.session()
    seeded = admin.post(f"{env.url}/_sim/seed", json={"entity": "SalesPrices", "rows": [
        {"Item_No": data["item_no"], "Sales_Type": "All Customers", "Unit_Price": 95}]})
    assert seeded.status_code == 200, seeded.text
    [price] = seeded.json()["ids"]
    admin.post(f"{env.url}/_sim/update", json={"entity": "SalesPrices", "id": price, "values": {"Unit_Price": 90}})
    assert admin.get(f"{env.url}/_sim/rows/SalesPrices").json()["value"][0]["Unit_Price"] == 90
    posted = admin.post(f"{env.url}/_sim/post", json={"entity": "salesOrders", "id": order})
    assert posted.status_code == 200 and env.sim.get("salesInvoices", posted.json()["posted_invoice_id"])["orderNumber"] == "SO-1"
    assert admin.post(f"{env.url}/_sim/delete", json={"entity": "SalesPrices", "id": price}).json() == {"ok": True}
    assert env.sim.rows("SalesPrices") == []
    assert admin.post(f"{env.url}/_sim/inventory", json={"item": "NOPE", "quantity": 1}).status_code == 404


def test_price_lists_and_their_lines_are_read_through_the_extension_pages(env, bc):
    data = master_data(env)
    env.sim.seed("currencies", [{"code": "EUR", "displayName": "Euro"}, {"code": "GBP", "displayName": "Pound"}])
    [listed] = env.sim.seed("PriceListHeaders", [{"Code": "S00001", "Description": "Retail", "Price_Type": "Sale",
                                                  "Amount_Type": "Price", "Currency_Code": "EUR",
                                                  "Starting_Date": "2026-01-01", "Status": "Active"}])
    item_line, resource_line = env.sim.seed("PriceListLines", [
        {"Price_List_Code": "S00001", "Asset_Type": "Item", "Asset_No": data["item_no"], "Unit_Price": 90},
        {"Price_List_Code": "S00001", "Asset_Type": "Resource", "Asset_No": data["resource_no"], "Unit_Price": 45,
         "Currency_Code": "GBP"}])       # a list without Allow Updating Defaults gives its lines its currency
    lines = ok(bc.get(f"{env.odata}/PriceListLines", params={"$filter": "Asset_Type eq 'Item' or "
                                                                        "Asset_Type eq 'Resource'"}))["value"]
    assert [(line["Line_No"], line["Currency_Code"], line["Starting_Date"], line["Status"], line["Price_Type"])
            for line in lines] == [(10000, "EUR", "2026-01-01", "Active", "Sale"), (20000, "EUR", "2026-01-01",
                                                                                  "Active", "Sale")]
    assert ok(bc.get(f"{env.odata}/PriceListLines(Price_List_Code='S00001',Line_No=20000)"))["SystemId"] \
        == resource_line
    # a property that starts like the lambda operators any and all is a property
    filtered = ok(bc.get(f"{env.odata}/PriceListHeaders", params={"$filter": "Allow_Updating_Defaults eq false"}))
    assert [h["Code"] for h in filtered["value"]] == ["S00001"]
    header = ok(bc.get(f"{env.odata}/PriceListHeaders('S00001')"))
    assert header["SystemId"] == listed and header["Ending_Date"] == "0001-01-01"
    # the pages are read only; the header's changes reach its lines
    assert error_of(bc.patch(f"{env.odata}/PriceListHeaders('S00001')", json={"Description": "x"},
                             headers={"If-Match": header["@odata.etag"]}))[0] == 405
    env.sim.update("PriceListHeaders", listed, {"Currency_Code": "", "Ending_Date": "2026-12-31"})
    lines = ok(bc.get(f"{env.odata}/PriceListLines"))["value"]
    assert {(line["Currency_Code"], line["Ending_Date"]) for line in lines} == {("", "2026-12-31")}
    with pytest.raises(BCError, match="Asset No."):
        env.sim.seed("PriceListLines", [{"Price_List_Code": "S00001", "Asset_Type": "Item", "Asset_No": "NOPE"}])
    with pytest.raises(BCError, match="Price List Code"):
        env.sim.seed("PriceListLines", [{"Price_List_Code": "NONE", "Asset_Type": "Item", "Asset_No": data["item_no"]}])
    env.sim.delete("PriceListHeaders", listed)
    assert env.sim.rows("PriceListLines") == [] and item_line


def test_page_42_reopens_and_releases_an_order_as_the_extensions_service_enabled_procedures_do(env, bc):
    data = master_data(env)
    orders = f"{env.company}/salesOrders"
    order = created(bc.post(orders, json={"customerId": data["customer"], "salesOrderLines": [
        {"itemId": data["item"], "quantity": 1}, {"itemId": data["item"], "quantity": 2}]}))
    page = f"{env.odata}/SalesOrder(Document_Type='Order',No='{order['number']}')"
    assert bc.post(f"{page}/NAV.Release").status_code == 204
    assert ok(bc.get(f"{orders}({order['id']})"))["status"] == "Open"  # API v2.0's Released
    [first, second] = order["salesOrderLines"]
    assert error_of(bc.delete(f"{env.company}/salesOrderLines({second['id']})", headers={"If-Match": "*"}))[:2] == (
        400, "Application_FieldValidationException")  # a released order's lines cannot change
    assert bc.post(f"{page}/NAV.Reopen").status_code == 204
    assert ok(bc.get(f"{orders}({order['id']})"))["status"] == "Draft"
    assert bc.delete(f"{env.company}/salesOrderLines({second['id']})", headers={"If-Match": "*"}).status_code == 204
    assert [line["id"] for line in ok(bc.get(f"{orders}({order['id']})/salesOrderLines"))["value"]] == [first["id"]]
    assert error_of(bc.get(f"{page}/NAV.Release"))[:2] == (405, "BadRequest_MethodNotAllowed")
    assert error_of(bc.post(f"{page}/NAV.Post"))[0] == 404
    assert bc.post(f"{page}/NAV.Release").status_code == 204
