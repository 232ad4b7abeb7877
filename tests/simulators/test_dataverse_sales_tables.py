"""The Dataverse simulator's Sales tables over real HTTPS: unit groups, products and price lists, opportunities,
orders, invoices and their lines, notes, option values added by an integration, and the SDK on top."""

from __future__ import annotations

import base64
import re
import uuid

import pytest
import test_dataverse_simulator as base
from test_dataverse_simulator import APP_USER, GUID, MsalCredential, entity_id, error_code

from simulators.dataverse import DataverseError

# the organisation fixtures of the main simulator tests (module-scoped: this module gets its own organisation)
env = base.env
dv = base.dv

ANNOTATIONS = {"Prefer": 'odata.include-annotations="*"'}
REPRESENTATION = {"Prefer": "return=representation"}
ANNOTATED_REPRESENTATION = {"Prefer": 'return=representation,odata.include-annotations="*"'}
LOOKUP_TABLE = "@Microsoft.Dynamics.CRM.lookuplogicalname"
FORMATTED = "@OData.Community.Display.V1.FormattedValue"


def created(response) -> str:
    assert response.status_code == 204, response.text
    return entity_id(response)


def message(response) -> str:
    return response.json()["error"]["message"]


def unit_group(dv, name: str, base: str) -> tuple[str, str]:
    """A unit group and its base unit (found, not made: the service creates it)."""
    group = created(dv.post("uomschedules", {"name": name, "baseuomname": base}))
    (unit,) = dv.get("uoms", params={"$select": "uomid", "$filter": f"_uomscheduleid_value eq {group}"}).json()["value"]
    return group, unit["uomid"]


def add_unit(dv, group: str, base_unit: str, name: str, quantity: float) -> str:
    return created(dv.post("uoms", {"name": name, "quantity": quantity, "uomscheduleid@odata.bind": f"/uomschedules({group})",
                                    "baseuom@odata.bind": f"/uoms({base_unit})"}))


def published_product(dv, number: str, group: str, unit: str, **extra) -> str:
    product = created(dv.post("products", {"productnumber": number, "name": f"Product {number}",
                                           "defaultuomscheduleid@odata.bind": f"/uomschedules({group})",
                                           "defaultuomid@odata.bind": f"/uoms({unit})", **extra}))
    assert dv.patch(f"products({product})", {"statecode": 0, "statuscode": 1}).status_code == 204
    return product


def company(env, external_id: str = "7a1b0000-0000-4000-8000-000000000001", name: str = "CRONUS") -> str:
    """The integration solution's row of a Business Central company (bcbi_company), as Business Central creates it
    when its connection is set up."""
    return env.sim.create("bcbi_company", {"bcbi_externalid": external_id, "bcbi_name": name})


def price_list(env, dv, name: str = "Default Price List") -> str:
    return created(dv.post("pricelevels", {"name": name, "transactioncurrencyid@odata.bind":
                                           f"/transactioncurrencies({env.sim.base_currency_id})"}))


# --------------------------------------------------------------------------- units

def test_a_unit_group_creates_its_base_unit(env, dv):
    group = dv.post("uomschedules?$select=name,baseuomname,statecode", {"name": "ITEM 1000 UOM GR", "baseuomname": "PCS"},
                    headers=REPRESENTATION)
    assert group.status_code == 201, group.text
    group_id = group.json()["uomscheduleid"]
    assert group.json()["statecode"] == 0
    (base,) = dv.get("uoms", params={"$filter": f"_uomscheduleid_value eq {group_id}"}).json()["value"]
    assert (base["name"], base["quantity"], base["isschedulebaseuom"]) == ("PCS", 1.0, True)
    assert base["_baseuom_value"] == base["uomid"]

    box = add_unit(dv, group_id, base["uomid"], "BOX", 12)
    row = dv.get(f"uoms({box})?$select=name,quantity,isschedulebaseuom,_baseuom_value,_uomscheduleid_value").json()
    assert (row["quantity"], row["isschedulebaseuom"], row["_baseuom_value"]) == (12.0, False, base["uomid"])
    assert row["_uomscheduleid_value"] == group_id

    missing_name = dv.post("uomschedules", {"name": "No base"})
    assert missing_name.status_code == 400 and error_code(missing_name) == "0x80043810"
    no_base = dv.post("uoms", {"name": "PALLET", "quantity": 100, "uomscheduleid@odata.bind": f"/uomschedules({group_id})"})
    assert no_base.status_code == 400 and "'baseuom'" in message(no_base)
    other_group, other_base = unit_group(dv, "Other", "KG")
    foreign = dv.post("uoms", {"name": "PALLET", "quantity": 100, "uomscheduleid@odata.bind": f"/uomschedules({group_id})",
                               "baseuom@odata.bind": f"/uoms({other_base})"})
    assert foreign.status_code == 400 and error_code(foreign) == "0x80043b0b"
    assert dv.post("uoms", {"name": "X", "quantity": 1, "uomscheduleid@odata.bind": f"/uomschedules({uuid.uuid4()})",
                            "baseuom@odata.bind": f"/uoms({base['uomid']})"}).status_code == 404

    undeletable = dv.delete(f"uoms({base['uomid']})")
    assert undeletable.status_code == 400 and error_code(undeletable) == "0x80043b03"
    assert dv.patch(f"uoms({base['uomid']})", {"quantity": 2}).status_code == 400
    assert dv.patch(f"uomschedules({group_id})", {"baseuomname": "EACH"}).status_code == 204
    assert env.sim.get("uom", base["uomid"])["name"] == "EACH"
    assert dv.delete(f"uoms({box})").status_code == 204
    assert dv.delete(f"uomschedules({other_group})").status_code == 204  # its units go with it
    assert [u["name"] for u in env.sim.rows("uom")] == ["EACH"]


def test_unit_names_are_unique_within_their_group(env, dv):
    group, base = unit_group(dv, "Items", "PCS")
    box = add_unit(dv, group, base, "BOX", 12)
    again = dv.post("uoms", {"name": "box", "quantity": 6, "uomscheduleid@odata.bind": f"/uomschedules({group})",
                             "baseuom@odata.bind": f"/uoms({base})"})
    assert again.status_code == 400 and error_code(again) == "0x80047010"
    assert "'box'" in message(again)
    renamed = dv.patch(f"uoms({box})", {"name": "PCS"})
    assert renamed.status_code == 400 and "'PCS'" in message(renamed)
    other, other_base = unit_group(dv, "Resources", "HOUR")
    assert add_unit(dv, other, other_base, "BOX", 3)  # the same name in another group is fine


# --------------------------------------------------------------------------- products

def test_product_lifecycle_and_product_number(env, dv):
    group, pcs = unit_group(dv, "Items", "PCS")
    body = dv.post("products?$select=statecode,statuscode,producttypecode,productstructure,_defaultuomscheduleid_value",
                   {"productnumber": "1000", "name": "Bicycle", "producttypecode": 1, "price": 350.5,
                    "quantitydecimal": 2, "defaultuomscheduleid@odata.bind": f"/uomschedules({group})",
                    "defaultuomid@odata.bind": f"/uoms({pcs})"},
                   headers=ANNOTATED_REPRESENTATION)
    assert body.status_code == 201, body.text
    product = body.json()
    assert (product["statecode"], product["statuscode"]) == (2, 0)
    assert product["statecode" + FORMATTED] == "Draft" and product["productstructure"] == 1
    url = f"products({product['productid']})"

    def state() -> tuple[int, int]:
        row = env.sim.get("product", product["productid"])
        return row["statecode"], row["statuscode"]

    assert dv.patch(url, {"statecode": 0, "statuscode": 1}).status_code == 204          # publish
    assert state() == (0, 1)
    assert dv.patch(url, {"name": "Bicycle 2", "price": 360}).status_code == 204        # edits are not draft-only here
    assert dv.patch(url, {"statecode": 1}).status_code == 204                            # retire
    assert state() == (1, 2)
    assert dv.patch(url, {"statecode": 0, "statuscode": 1}).status_code == 204          # activate again
    assert dv.patch(url, {"statecode": 3, "statuscode": 3}).status_code == 204          # revise
    assert dv.patch(url, {"statecode": 0}).status_code == 204                            # publish the revision
    assert state() == (0, 1)
    for change, code in (({"statecode": 0, "statuscode": 1}, "0x8004F982"), ({"statecode": 2}, "0x8004F912")):
        refused = dv.patch(url, change)
        assert refused.status_code == 400 and error_code(refused) == code, refused.text
    draft = created(dv.post("products", {"productnumber": "1001", "name": "Draft Bike"}))
    refused = dv.patch(f"products({draft})", {"statecode": 1, "statuscode": 2})
    assert refused.status_code == 400 and error_code(refused) == "0x8004F978" and "Draft Bike" in message(refused)
    assert state() == (0, 1)

    duplicate = dv.post("products", {"productnumber": "1000", "name": "Another"})
    assert duplicate.status_code == 400
    assert duplicate.json()["error"] == {"code": "0x80043b06",
                                         "message": "A product with the specified product ID already exists."}
    assert dv.patch(f"products({draft})", {"productnumber": "1000"}).status_code == 400
    missing = dv.post("products", {"name": "No number"})
    assert missing.status_code == 400 and error_code(missing) == "0x80043b05"
    assert dv.post("products", {"productnumber": "1002", "producttypecode": 5}).status_code == 400
    assert dv.post("products", {"productnumber": "1002", "quantitydecimal": 6}).status_code == 400


def test_the_default_unit_belongs_to_the_products_unit_group(env, dv):
    items, pcs = unit_group(dv, "Items", "PCS")
    hours, hour = unit_group(dv, "Resources", "HOUR")
    wrong = dv.post("products", {"productnumber": "R1", "defaultuomscheduleid@odata.bind": f"/uomschedules({items})",
                                 "defaultuomid@odata.bind": f"/uoms({hour})"})
    assert wrong.status_code == 400 and error_code(wrong) == "0x80043b14"
    product = created(dv.post("products", {"productnumber": "R1", "producttypecode": 3,
                                           "defaultuomid@odata.bind": f"/uoms({hour})"}))
    row = dv.get(f"products({product})?$select=_defaultuomscheduleid_value,_defaultuomid_value").json()
    assert (row["_defaultuomscheduleid_value"], row["_defaultuomid_value"]) == (hours, hour)  # the group is filled in
    assert dv.patch(f"products({product})", {"defaultuomscheduleid@odata.bind": f"/uomschedules({items})"}).status_code == 400
    assert dv.patch(f"products({product})", {"defaultuomscheduleid@odata.bind": f"/uomschedules({items})",
                                             "defaultuomid@odata.bind": f"/uoms({pcs})"}).status_code == 204


# --------------------------------------------------------------------------- price lists

def test_a_price_list_requires_a_currency(env, dv):
    missing = dv.post("pricelevels", {"name": "No currency"})
    assert missing.status_code == 400 and "'transactioncurrencyid'" in message(missing)
    pl = dv.post("pricelevels?$select=name,statecode,statuscode,_transactioncurrencyid_value,begindate",
                 {"name": "CRONUS Default Price List", "begindate": "2024-01-01",
                  "transactioncurrencyid@odata.bind": f"/transactioncurrencies({env.sim.base_currency_id})"},
                 headers=REPRESENTATION).json()
    assert (pl["statecode"], pl["statuscode"], pl["begindate"]) == (0, 100001, "2024-01-01")
    assert pl["_transactioncurrencyid_value"] == env.sim.base_currency_id
    assert dv.patch(f"pricelevels({pl['pricelevelid']})", {"statecode": 1}).status_code == 204
    assert env.sim.get("pricelevel", pl["pricelevelid"])["statuscode"] == 100002
    same_name = dv.post("pricelevels", {"name": "cronus default price list", "transactioncurrencyid@odata.bind":
                                        f"/transactioncurrencies({env.sim.base_currency_id})"})
    assert same_name.status_code == 400 and error_code(same_name) == "0x80043b0f"


def test_price_list_items_are_unique_per_product_and_unit_of_its_group(env, dv):
    group, pcs = unit_group(dv, "Items", "PCS")
    box = add_unit(dv, group, pcs, "BOX", 12)
    _, hour = unit_group(dv, "Resources", "HOUR")
    product = published_product(dv, "1000", group, pcs)
    pl = price_list(env, dv)
    item = dv.post("productpricelevels?$select=productnumber,_uomscheduleid_value,_transactioncurrencyid_value,"
                   "amount,pricingmethodcode", {
                       "pricelevelid@odata.bind": f"/pricelevels({pl})", "productid@odata.bind": f"/products({product})",
                       "uomid@odata.bind": f"/uoms({pcs})", "amount": 350}, headers=REPRESENTATION)
    assert item.status_code == 201, item.text
    body = item.json()
    assert (body["productnumber"], body["_uomscheduleid_value"], body["pricingmethodcode"]) == ("1000", group, 1)
    assert body["_transactioncurrencyid_value"] == env.sim.base_currency_id and body["amount"] == 350.0

    twice = dv.post("productpricelevels", {"pricelevelid@odata.bind": f"/pricelevels({pl})",
                                           "productid@odata.bind": f"/products({product})",
                                           "uomid@odata.bind": f"/uoms({pcs})", "amount": 1})
    assert twice.status_code == 400
    assert twice.json()["error"] == {"code": "0x80043b08",
                                     "message": "This product and unit combination has a price for this price list."}
    foreign = dv.post("productpricelevels", {"pricelevelid@odata.bind": f"/pricelevels({pl})",
                                             "productid@odata.bind": f"/products({product})",
                                             "uomid@odata.bind": f"/uoms({hour})", "amount": 1})
    assert foreign.status_code == 400 and error_code(foreign) == "0x80043b14"
    assert dv.post("productpricelevels", {"pricelevelid@odata.bind": f"/pricelevels({pl})",
                                          "productid@odata.bind": f"/products({product})",
                                          "uomid@odata.bind": f"/uoms({box})", "amount": 4200}).status_code == 204
    missing_unit = dv.post("productpricelevels", {"pricelevelid@odata.bind": f"/pricelevels({pl})",
                                                  "productid@odata.bind": f"/products({product})", "amount": 1})
    assert missing_unit.status_code == 400 and "'uomid'" in message(missing_unit)
    other = price_list(env, dv, "Price List in USD")
    assert dv.post("productpricelevels", {"pricelevelid@odata.bind": f"/pricelevels({other})",
                                          "productid@odata.bind": f"/products({product})",
                                          "uomid@odata.bind": f"/uoms({pcs})", "amount": 340}).status_code == 204
    assert dv.delete(f"pricelevels({other})").status_code == 204  # its items go with it
    assert len(env.sim.rows("productpricelevel")) == 2


# --------------------------------------------------------------------------- opportunities

def test_an_opportunity_with_a_customer_account(env, dv):
    acc = env.sim.create("account", {"name": "Adatum"})
    contact = env.sim.create("contact", {"firstname": "Ada", "lastname": "Tum", "parentcustomerid": acc})
    opp = dv.post("opportunities?$select=name,_customerid_value,_parentaccountid_value,_parentcontactid_value,"
                  "_transactioncurrencyid_value,estimatedvalue,estimatedclosedate,statecode,statuscode", {
                      "name": "10 bikes", "customerid_account@odata.bind": f"/accounts({acc})",
                      "parentaccountid@odata.bind": f"/accounts({acc})", "parentcontactid@odata.bind": f"/contacts({contact})",
                      "estimatedvalue": 3500, "estimatedclosedate": "2024-06-30", "closeprobability": 60,
                      "bcbi_CompanyId@odata.bind": f"/bcbi_companies({company(env)})"},
                  headers=ANNOTATED_REPRESENTATION)
    assert opp.status_code == 201, opp.text
    body = opp.json()
    assert body["_customerid_value"] == acc and body["_customerid_value" + LOOKUP_TABLE] == "account"
    assert body["_customerid_value@Microsoft.Dynamics.CRM.associatednavigationproperty"] == "customerid_account"
    assert (body["_parentaccountid_value"], body["_parentcontactid_value"]) == (acc, contact)
    assert body["_transactioncurrencyid_value"] == env.sim.base_currency_id
    assert (body["estimatedvalue"], body["estimatedclosedate"], body["statecode"], body["statuscode"]) == (
        3500.0, "2024-06-30", 0, 1)
    url = f"opportunities({body['opportunityid']})"
    assert dv.patch(url, {"customerid_contact@odata.bind": f"/contacts({contact})"}).status_code == 204
    assert dv.get(f"{url}?$select=_customerid_value", headers=ANNOTATIONS).json()["_customerid_value" + LOOKUP_TABLE] == "contact"
    for closing, label in (({"statecode": 1}, "won"), ({"statecode": 2, "statuscode": 5}, "lost")):
        refused = dv.patch(url, closing)   # WinOpportunity / LoseOpportunity, not an update
        assert refused.status_code == 400 and error_code(refused) == "0x80100005"
        assert message(refused) == (f"This message can not be used to set the state of opportunity to {label}. In "
                                    f"order to set state of opportunity to {label}, use the "
                                    f"{'won' if label == 'won' else 'lose'} message instead.")
    assert env.sim.get("opportunity", body["opportunityid"])["statecode"] == 0
    missing = dv.post("opportunities", {"name": "x", "customerid_account@odata.bind": f"/accounts({uuid.uuid4()})"})
    assert missing.status_code == 404 and error_code(missing) == "0x80040217"
    wrong = dv.post("opportunities", {"name": "x", "customerid_account@odata.bind": f"/contacts({contact})"})
    assert wrong.status_code == 400


# --------------------------------------------------------------------------- invoices

def test_invoice_lines_amounts_and_a_paid_invoice_is_read_only(env, dv):
    group, pcs = unit_group(dv, "Items", "PCS")
    product = published_product(dv, "1000", group, pcs, price=10)
    pl = price_list(env, dv)
    acc = env.sim.create("account", {"name": "Adatum"})
    currency = f"/transactioncurrencies({env.sim.base_currency_id})"
    header = {"name": "Posted invoice 103001", "customerid_account@odata.bind": f"/accounts({acc})",
              "pricelevelid@odata.bind": f"/pricelevels({pl})", "transactioncurrencyid@odata.bind": currency}
    for left_out in ("customerid_account@odata.bind", "pricelevelid@odata.bind", "transactioncurrencyid@odata.bind"):
        incomplete = dv.post("invoices", {k: v for k, v in header.items() if k != left_out})
        assert incomplete.status_code == 400, left_out
    invoice = dv.post("invoices?$select=invoicenumber,statecode,statuscode,totallineitemamount",
                      {**header, "duedate": "2024-05-31", "paymenttermscode": 1, "shippingmethodcode": 4,
                       "billto_city": "Atlanta", "shipto_line1": "1 Main St", "freightamount": 5},
                      headers=REPRESENTATION).json()
    assert re.fullmatch(r"INV-\d{5}-[A-Z0-9]{6}", invoice["invoicenumber"]), invoice["invoicenumber"]
    assert (invoice["statecode"], invoice["statuscode"], invoice["totallineitemamount"]) == (0, 1, None)
    inv = invoice["invoiceid"]
    given = created(dv.post("invoices", {**header, "invoicenumber": "103002"}))
    assert env.sim.get("invoice", given)["invoicenumber"] == "103002"

    lines = f"/invoices({inv})"
    line = dv.post("invoicedetails?$select=baseamount,extendedamount,sequencenumber,_transactioncurrencyid_value", {
        "invoiceid@odata.bind": lines, "productid@odata.bind": f"/products({product})", "uomid@odata.bind": f"/uoms({pcs})",
        "priceperunit": 10, "quantity": 3, "manualdiscountamount": 1, "tax": 2.5, "ispriceoverridden": True,
        "lineitemnumber": 10000}, headers=REPRESENTATION)
    assert line.status_code == 201, line.text
    assert (line.json()["baseamount"], line.json()["extendedamount"], line.json()["sequencenumber"]) == (30.0, 31.5, 1)
    assert line.json()["_transactioncurrencyid_value"] == env.sim.base_currency_id
    write_in = created(dv.post("invoicedetails", {"invoiceid@odata.bind": lines, "isproductoverridden": True,
                                                  "productdescription": "Rounding", "priceperunit": 0.5, "quantity": 1}))
    explicit = created(dv.post("invoicedetails", {"invoiceid@odata.bind": lines, "isproductoverridden": True,
                                                  "productdescription": "1000 Bicycle.", "priceperunit": 100,
                                                  "quantity": 2, "baseamount": 190, "extendedamount": 237.5}))
    assert env.sim.get("invoicedetail", explicit)["extendedamount"] == 237.5
    assert env.sim.get("invoicedetail", write_in)["sequencenumber"] == 2
    assert env.sim.get("invoice", inv)["totallineitemamount"] == 220.5
    for bad in ({"isproductoverridden": True, "priceperunit": 1, "quantity": 1},
                {"priceperunit": 1, "quantity": 1},
                {"productid@odata.bind": f"/products({product})", "priceperunit": 1, "quantity": 1},
                {"isproductoverridden": True, "productdescription": "x", "quantity": 1},
                {"isproductoverridden": True, "productdescription": "x" * 851, "priceperunit": 1, "quantity": 1}):
        refused = dv.post("invoicedetails", {"invoiceid@odata.bind": lines, **bad})
        assert refused.status_code == 400, (bad, refused.text)
    assert dv.patch(f"invoicedetails({write_in})", {"quantity": 4}).status_code == 204
    assert env.sim.get("invoicedetail", write_in)["baseamount"] == 2.0
    assert dv.patch(f"invoices({inv})", {"totallineitemamount": 1}).status_code == 204  # read-only: ignored
    read = dv.get(f"invoices({inv})?$select=totallineitemamount,totallineitemamount_base", headers=ANNOTATIONS).json()
    assert read["totallineitemamount"] == 222.0 and read["totallineitemamount" + FORMATTED] == "$222.00"

    assert dv.patch(f"invoices({inv})", {"statecode": 2, "statuscode": 100001}).status_code == 204  # paid
    for refused in (dv.patch(f"invoices({inv})", {"name": "changed"}),
                    dv.patch(f"invoices({inv})", {"statecode": 2, "statuscode": 100002, "description": "x"}),
                    dv.patch(f"invoices({inv})", {"statecode": 0, "statuscode": 4, "description": "x"}),
                    dv.patch(f"invoices({inv})", {"statuscode": 100002}),      # closed to closed: re-activate first
                    dv.patch(f"invoices({inv})", {"statecode": 3, "statuscode": 100003})):
        assert refused.status_code == 400 and refused.json()["error"] == {
            "code": "0x8004022e", "message": "The object cannot be updated because it is read-only."}
    for refused in (dv.patch(f"invoicedetails({write_in})", {"quantity": 5}), dv.delete(f"invoicedetails({write_in})"),
                    dv.post("invoicedetails", {"invoiceid@odata.bind": lines, "isproductoverridden": True,
                                               "productdescription": "late", "priceperunit": 1, "quantity": 1})):
        assert refused.status_code == 400 and error_code(refused) == "0x80043b09", refused.text
    assert (env.sim.get("invoice", inv)["statecode"], env.sim.get("invoice", inv)["statuscode"]) == (2, 100001)
    assert dv.patch(f"invoices({inv})", {"statecode": 0, "statuscode": 4}).status_code == 204   # re-activated
    assert dv.patch(f"invoices({inv})", {"name": "reopened", "statecode": 2, "statuscode": 100002}).status_code == 204
    assert (env.sim.get("invoice", inv)["name"], env.sim.get("invoice", inv)["statuscode"]) == ("reopened", 100002)
    assert dv.patch(f"invoices({inv})", {"statecode": 0, "statuscode": 4}).status_code == 204
    assert dv.delete(f"invoices({inv})").status_code == 204
    assert {r["invoiceid"] for r in env.sim.rows("invoicedetail")} == set()


# --------------------------------------------------------------------------- sales orders

def test_a_submitted_sales_order_is_read_only_and_written_the_way_business_central_does(env, dv):
    group, pcs = unit_group(dv, "Items", "PCS")
    product = published_product(dv, "1000", group, pcs)
    acc = env.sim.create("account", {"name": "Adatum"})
    opp = env.sim.create("opportunity", {"name": "10 bikes", "customerid": acc})
    order = dv.post("salesorders?$select=ordernumber,statecode,statuscode,_customerid_value,_opportunityid_value", {
        "name": "PO 4711", "customerid_account@odata.bind": f"/accounts({acc})", "opportunityid@odata.bind": f"/opportunities({opp})",
        "transactioncurrencyid@odata.bind": f"/transactioncurrencies({env.sim.base_currency_id})",
        "pricelevelid@odata.bind": f"/pricelevels({price_list(env, dv)})", "requestdeliveryby": "2024-05-20",
        "freighttermscode": 1, "shippingmethodcode": 3, "paymenttermscode": 2, "willcall": False,
        "discountpercentage": 2.5, "bcbi_CompanyId@odata.bind": f"/bcbi_companies({company(env)})"},
        headers=REPRESENTATION)
    assert order.status_code == 201, order.text
    body = order.json()
    assert re.fullmatch(r"ORD-\d{5}-[A-Z0-9]{6}", body["ordernumber"])
    assert (body["statecode"], body["statuscode"], body["_customerid_value"]) == (0, 1, acc)
    assert body["_opportunityid_value"] == opp
    so = body["salesorderid"]
    wrong_table = dv.post("salesorderdetails", {"salesorderid@odata.bind": f"/salesorders({so})", "quantity": 1,
                                                "priceperunit": 1, "productid@odata.bind": f"/accounts({acc})"})
    assert wrong_table.status_code == 400 and error_code(wrong_table) == "0x80048d19"
    gone = dv.post("salesorderdetails", {"salesorderid@odata.bind": f"/salesorders({uuid.uuid4()})", "quantity": 1,
                                         "priceperunit": 1, "isproductoverridden": True, "productdescription": "x"})
    assert gone.status_code == 404 and error_code(gone) == "0x80040217"
    long_text = "A very long line description. " * 66
    assert len(long_text) <= 2000
    line = created(dv.post("salesorderdetails", {
        "salesorderid@odata.bind": f"/salesorders({so})", "productid@odata.bind": f"/products({product})",
        "uomid@odata.bind": f"/uoms({pcs})", "quantity": 2, "priceperunit": 100, "volumediscountamount": 5,
        "description": long_text, "requestdeliveryby": "2024-05-21", "producttypecode": 1}))
    row = env.sim.get("salesorderdetail", line)
    assert (row["baseamount"], row["extendedamount"], row["description"]) == (200.0, 190.0, long_text)
    assert dv.post("salesorderdetails", {"salesorderid@odata.bind": f"/salesorders({so})", "isproductoverridden": True,
                                         "productdescription": "x" * 501, "quantity": 1, "priceperunit": 1}).status_code == 400
    assert env.sim.get("salesorder", so)["totallineitemamount"] == 200.0

    assert dv.patch(f"salesorders({so})", {"statecode": 1}).status_code == 204  # submitted
    assert (env.sim.get("salesorder", so)["statecode"], env.sim.get("salesorder", so)["statuscode"]) == (1, 3)

    def state():
        row = env.sim.get("salesorder", so)
        return row["statecode"], row["statuscode"]

    # nothing but the state changes on a submitted order: not the back-office columns either, nor columns sent
    # along with the state change that re-activates it (they are applied first, to the submitted order)
    for refused in (dv.patch(f"salesorders({so})", {"name": "PO 4712"}),
                    dv.patch(f"salesorders({so})", {"lastbackofficesubmit": "2024-05-02"}),
                    dv.patch(f"salesorders({so})", {"submitstatusdescription": "Created as BC order 101005"}),
                    dv.patch(f"salesorders({so})", {"statecode": 0, "lastbackofficesubmit": "2024-05-02"})):
        assert refused.status_code == 400 and refused.json()["error"] == {
            "code": "0x8004022e", "message": "The object cannot be updated because it is read-only."}
    assert state() == (1, 3)
    line_refused = dv.patch(f"salesorderdetails({line})", {"quantity": 3})
    assert line_refused.status_code == 400 and error_code(line_refused) == "0x80043b09"
    # Business Central's way: Active, the column, Submitted again, each its own update
    assert dv.patch(f"salesorders({so})", {"statecode": 0}).status_code == 204
    assert state() == (0, 1)
    assert dv.patch(f"salesorders({so})", {"lastbackofficesubmit": "2024-05-02", "submitstatus": 1,
                                           "submitstatusdescription": "Created as BC order 101005"}).status_code == 204
    assert dv.patch(f"salesorders({so})", {"statecode": 1}).status_code == 204
    assert state() == (1, 3)
    assert env.sim.get("salesorder", so)["submitstatusdescription"] == "Created as BC order 101005"
    # Fulfilled and Canceled need FulfillSalesOrder and CancelSalesOrder
    for closing, label, message_name in (({"statecode": 3}, "Fulfilled", "FulfillSalesOrder"),
                                         ({"statecode": 2, "statuscode": 4}, "Canceled", "CancelSalesOrder")):
        refused = dv.patch(f"salesorders({so})", closing)
        assert refused.status_code == 400 and message_name in message(refused) and label in message(refused)
    assert dv.patch(f"salesorders({so})", {"statecode": 0, "statuscode": 2}).status_code == 204  # back to Active, Pending
    assert dv.patch(f"salesorders({so})", {"name": "PO 4712", "lastbackofficesubmit": None}).status_code == 204
    assert dv.patch(f"salesorderdetails({line})", {"quantity": 3}).status_code == 204
    assert env.sim.get("salesorder", so)["totallineitemamount"] == 300.0
    assert dv.patch(f"salesorders({so})", {"statecode": 1}).status_code == 204
    assert dv.patch(f"salesorders({so})", {"statecode": 4, "statuscode": 100003}).status_code == 204  # Invoiced
    assert dv.patch(f"salesorders({so})", {"lastbackofficesubmit": "2024-05-03"}).status_code == 400


def test_a_quote_is_edited_as_a_draft_activated_revised_and_won(env, dv):
    group, pcs = unit_group(dv, "Quoted", "PCS")
    product = published_product(dv, "2000", group, pcs)
    acc = env.sim.create("account", {"name": "Adatum"})
    quote = dv.post("quotes?$select=quotenumber,revisionnumber,statecode,statuscode", {
        "name": "10 bikes", "customerid_account@odata.bind": f"/accounts({acc})",
        "transactioncurrencyid@odata.bind": f"/transactioncurrencies({env.sim.base_currency_id})",
        "effectiveto": "2024-06-30", "freighttermscode": 1}, headers=REPRESENTATION)
    assert quote.status_code == 201, quote.text
    body = quote.json()
    assert re.fullmatch(r"QUO-\d{5}-[A-Z0-9]{6}", body["quotenumber"])
    assert (body["statecode"], body["statuscode"]) == (0, 1)  # Draft, In Progress
    first = body["quoteid"]
    line = created(dv.post("quotedetails", {"quoteid@odata.bind": f"/quotes({first})",
                                            "productid@odata.bind": f"/products({product})", "uomid@odata.bind": f"/uoms({pcs})",
                                            "quantity": 2, "priceperunit": 100}))
    created(dv.post("quotedetails", {"quoteid@odata.bind": f"/quotes({first})", "isproductoverridden": True,
                                     "productdescription": "Engraving", "quantity": 1, "priceperunit": 25}))
    assert env.sim.get("quote", first)["totallineitemamount"] == 225.0
    assert dv.patch(f"quotes({first})", {"statecode": 1, "statuscode": 3}).status_code == 204  # activated
    # an active quote is read-only, and so are its lines
    refused = dv.patch(f"quotes({first})", {"name": "12 bikes"})
    assert refused.status_code == 400 and error_code(refused) == "0x8004022e"
    assert error_code(dv.patch(f"quotedetails({line})", {"quantity": 3})) == "0x80043b09"
    # Won and Closed need WinQuote and CloseQuote
    for closing, message_name in (({"statecode": 2, "statuscode": 4}, "WinQuote"),
                                  ({"statecode": 3, "statuscode": 5}, "CloseQuote")):
        refused = dv.patch(f"quotes({first})", closing)
        assert refused.status_code == 400 and message_name in message(refused)
    # ReviseQuote: the quote is closed as Revised; a Draft copy with its lines takes the next revision number
    second = env.sim.revise_quote(first)
    old, new = env.sim.get("quote", first), env.sim.get("quote", second)
    assert (old["statecode"], old["statuscode"]) == (3, 7)
    assert (new["statecode"], new["statuscode"], new["revisionnumber"]) == (0, 1, 1)
    assert (new["quotenumber"], new["name"], new["effectiveto"]) == (old["quotenumber"], "10 bikes", old["effectiveto"])
    lines = dv.get("quotedetails", params={"$select": "quantity,productdescription",
                                           "$filter": f"_quoteid_value eq {second}"}).json()["value"]
    assert sorted((r["quantity"], r["productdescription"]) for r in lines) == [(1.0, "Engraving"), (2.0, None)]
    assert env.sim.get("quote", second)["totallineitemamount"] == 225.0
    with pytest.raises(DataverseError):
        env.sim.revise_quote(first)  # revised already
    assert dv.patch(f"quotes({second})", {"name": "12 bikes"}).status_code == 204  # a draft again


def test_notes_on_an_order(env, dv):
    acc = env.sim.create("account", {"name": "Adatum"})
    so = env.sim.create("salesorder", {"name": "PO 1", "customerid": acc, "transactioncurrencyid": env.sim.base_currency_id})
    note = created(dv.post("annotations", {"subject": "Delivery", "notetext": "Ring twice.\nGate code 1234",
                                           "objectid_salesorder@odata.bind": f"/salesorders({so})"}))
    attachment = created(dv.post("annotations", {"subject": "PO scan", "filename": "po.txt", "mimetype": "text/plain",
                                                 "documentbody": base64.b64encode(b"hello world").decode(),
                                                 "objectid_salesorder@odata.bind": f"/salesorders({so})"}))
    created(dv.post("annotations", {"subject": "Other", "objectid_account@odata.bind": f"/accounts({acc})"}))
    notes = dv.get("annotations", params={"$select": "subject,notetext,isdocument,filesize,objecttypecode,_objectid_value",
                                          "$filter": f"_objectid_value eq {so} and isdocument eq false"},
                   headers=ANNOTATIONS).json()["value"]
    assert [n["annotationid"] for n in notes] == [note]
    assert notes[0]["notetext"] == "Ring twice.\nGate code 1234" and notes[0]["filesize"] == 0
    assert notes[0]["objecttypecode"] == "salesorder" and notes[0]["_objectid_value" + LOOKUP_TABLE] == "salesorder"
    assert notes[0]["_objectid_value@Microsoft.Dynamics.CRM.associatednavigationproperty"] == "objectid_salesorder"
    assert notes[0]["_objectid_value" + FORMATTED] == "PO 1"
    doc = env.sim.get("annotation", attachment)
    assert (doc["isdocument"], doc["filesize"], doc["ownerid"]) == (True, 11, APP_USER)
    assert dv.post("annotations", {"subject": "x", "objectid_salesorder@odata.bind": f"/accounts({acc})"}).status_code == 400
    assert dv.delete(f"salesorders({so})").status_code == 204  # notes go with their record
    assert [n["subject"] for n in env.sim.rows("annotation")] == ["Other"]


# --------------------------------------------------------------------------- option values

def test_insert_option_value_and_the_metadata_showing_it(env, dv):
    def options(entity: str, attribute: str) -> dict[int, str]:
        body = dv.get(f"EntityDefinitions(LogicalName='{entity}')/Attributes(LogicalName='{attribute}')"
                      "/Microsoft.Dynamics.CRM.PicklistAttributeMetadata?$select=LogicalName"
                      "&$expand=OptionSet($select=Options)").json()
        assert body["LogicalName"] == attribute
        return {o["Value"]: o["Label"]["UserLocalizedLabel"]["Label"] for o in body["OptionSet"]["Options"]}

    assert options("salesorder", "paymenttermscode") == {1: "Net 30", 2: "2% 10; Net 30", 3: "Net 45", 4: "Net 60"}
    assert options("salesorder", "freighttermscode") == {1: "FOB", 2: "No Charge"}
    assert options("invoice", "shippingmethodcode")[7] == "Will Call"
    assert options("product", "producttypecode") == {1: "Sales Inventory", 2: "Miscellaneous Charges", 3: "Services",
                                                     4: "Flat Fees"}

    def insert(entity: str, attribute: str, label: str, value=None):
        body = {"EntityLogicalName": entity, "AttributeLogicalName": attribute,
                "Label": {"LocalizedLabels": [{"Label": label, "LanguageCode": 1033}]}}
        if value is not None:
            body["Value"] = value
        return dv.post("InsertOptionValue", body)

    cod = insert("account", "paymenttermscode", "COD")
    assert cod.status_code == 200, cod.text
    assert cod.json()["NewOptionValue"] == 100000000
    assert insert("account", "paymenttermscode", "14 DAYS").json()["NewOptionValue"] == 100000001
    assert insert("salesorder", "paymenttermscode", "COD").json()["NewOptionValue"] == 100000000
    assert insert("account", "address1_shippingmethodcode", "OWN LOG.", 42).json()["NewOptionValue"] == 42
    assert options("account", "paymenttermscode")[100000000] == "COD"
    assert options("account", "address1_shippingmethodcode")[42] == "OWN LOG."
    for refused, code in ((insert("account", "paymenttermscode", "cod"), "0x80047010"),
                          (insert("account", "paymenttermscode", "Other", 3), "0x80044310"),
                          (insert("account", "statuscode", "Dormant"), "0x80040203"),
                          (insert("account", "paymenttermscode", ""), "0x80040203")):
        assert refused.status_code == 400 and error_code(refused) == code, refused.text
    assert insert("nosuchtable", "x", "y").status_code == 404
    assert insert("account", "nosuchcolumn", "y").status_code == 404
    assert dv.get("InsertOptionValue").status_code == 405

    acc = created(dv.post("accounts", {"name": "Cash customer", "paymenttermscode": 100000000}))
    row = dv.get(f"accounts({acc})?$select=paymenttermscode", headers=ANNOTATIONS).json()
    assert row["paymenttermscode" + FORMATTED] == "COD"
    assert env.sim.add_option("invoice", "paymenttermscode", "COD") == 100000000
    with pytest.raises(DataverseError) as duplicate:
        env.sim.add_option("invoice", "paymenttermscode", "COD")
    assert duplicate.value.code == "0x80047010"
    env.sim.reset()  # a fresh organisation has the shipped option sets again
    assert 100000000 not in env.sim.schema["account"].attributes["paymenttermscode"].options


# --------------------------------------------------------------------------- contacts and the common columns

def test_a_contacts_parent_customer_and_its_columns(env, dv):
    acc = env.sim.create("account", {"name": "Adatum"})
    boss = env.sim.create("contact", {"firstname": "Big", "lastname": "Boss"})
    cronus = company(env)
    contact = dv.post("contacts?$select=fullname,_parentcustomerid_value,middlename,pager,fax,websiteurl,jobtitle,"
                      "mobilephone,address1_city,_ownerid_value,_transactioncurrencyid_value,_bcbi_companyid_value", {
                          "firstname": "Ada", "middlename": "B.", "lastname": "Tum", "pager": "555-0100", "fax": "555-0101",
                          "websiteurl": "https://adatum.example", "jobtitle": "Buyer", "mobilephone": "555-0102",
                          "address1_city": "Atlanta", "parentcustomerid_account@odata.bind": f"/accounts({acc})",
                          "transactioncurrencyid@odata.bind": f"/transactioncurrencies({env.sim.base_currency_id})",
                          "bcbi_CompanyId@odata.bind": f"/bcbi_companies({cronus})"},
                      headers=ANNOTATED_REPRESENTATION)
    assert contact.status_code == 201, contact.text
    body = contact.json()
    assert body["fullname"] == "Ada B. Tum" and body["pager"] == "555-0100" and body["websiteurl"] == "https://adatum.example"
    assert body["_parentcustomerid_value"] == acc and body["_parentcustomerid_value" + LOOKUP_TABLE] == "account"
    assert body["_ownerid_value"] == APP_USER and body["_bcbi_companyid_value"] == cronus
    url = f"contacts({body['contactid']})"
    assert dv.patch(url, {"parentcustomerid_contact@odata.bind": f"/contacts({boss})"}).status_code == 204
    row = dv.get(f"{url}?$select=_parentcustomerid_value", headers=ANNOTATIONS).json()
    assert row["_parentcustomerid_value"] == boss and row["_parentcustomerid_value" + LOOKUP_TABLE] == "contact"
    assert row["_parentcustomerid_value" + FORMATTED] == "Big Boss"
    plain = dv.get(f"{url}?$select=_parentcustomerid_value").json()
    assert LOOKUP_TABLE not in "".join(plain)

    for table in ("account", "contact", "opportunity", "quote", "product", "pricelevel", "productpricelevel",
                  "invoice", "salesorder"):
        attrs = dv.get(f"EntityDefinitions(LogicalName='{table}')/Attributes(LogicalName='bcbi_companyid')"
                       "?$select=LogicalName,AttributeType").json()
        assert attrs["AttributeType"] == "Lookup", table


def test_rows_belong_to_a_company_by_the_bcbi_companyid_lookup(env, dv):
    """The integration solution's company table, found by its external id; a row is bound to a company with
    bcbi_CompanyId@odata.bind, read and filtered as _bcbi_companyid_value, and unbound with null."""
    first, second = company(env, "11111111-1111-4111-8111-111111111111", "CRONUS"), \
        company(env, "22222222-2222-4222-8222-222222222222", "FABRIKAM")
    found = dv.get("bcbi_companies?$select=bcbi_companyid,bcbi_name"
                   "&$filter=bcbi_externalid eq '22222222-2222-4222-8222-222222222222'").json()["value"]
    assert [(r["bcbi_companyid"], r["bcbi_name"]) for r in found] == [(second, "FABRIKAM")]
    a = created(dv.post("accounts", {"name": "A", "bcbi_CompanyId@odata.bind": f"/bcbi_companies({first})"}))
    b = created(dv.post("accounts", {"name": "B", "bcbi_CompanyId@odata.bind": f"/bcbi_companies({second})"}))
    created(dv.post("accounts", {"name": "Nobody's"}))
    mine = dv.get(f"accounts?$select=name,_bcbi_companyid_value&$filter=_bcbi_companyid_value eq {first} "
                  f"or _bcbi_companyid_value eq null&$orderby=name").json()["value"]
    assert [(r["name"], r["_bcbi_companyid_value"]) for r in mine] == [("A", first), ("Nobody's", None)]
    wrong = dv.post("accounts", {"name": "C", "bcbi_companyid": first})
    assert wrong.status_code == 400, wrong.text  # a lookup is bound, never written as a value
    assert dv.patch(f"accounts({b})", {"bcbi_CompanyId@odata.bind": None}).status_code == 204
    assert dv.get(f"accounts({b})?$select=_bcbi_companyid_value").json()["_bcbi_companyid_value"] is None
    assert dv.get(f"accounts({a})?$select=_bcbi_companyid_value").json()["_bcbi_companyid_value"] == first


# --------------------------------------------------------------------------- Microsoft's SDK

def test_the_sdk_creates_and_reads_a_product_and_a_sales_order(env, dv, monkeypatch):
    from PowerPlatform.Dataverse.client import DataverseClient

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(env.ca.combined_bundle()))
    group, pcs = unit_group(dv, "Items", "PCS")
    acc = env.sim.create("account", {"name": "Adatum"})
    with DataverseClient(env.dv_url, MsalCredential(env.msal_app(env.client))) as client:
        product = client.records.create("product", {
            "productnumber": "SDK-1", "name": "SDK bike", "producttypecode": "Services",  # a label: the SDK maps it
            "price": 99.5, "defaultuomscheduleid@odata.bind": f"/uomschedules({group})",
            "defaultuomid@odata.bind": f"/uoms({pcs})"})
        assert GUID.fullmatch(product)
        client.records.update("product", product, {"statecode": 0, "statuscode": 1})
        record = client.records.retrieve("product", product, select=["productnumber", "producttypecode", "statecode"])
        assert (record["productnumber"], record["producttypecode"], record["statecode"]) == ("SDK-1", 3, 0)

        order = client.records.create("salesorder", {
            "name": "SDK order", "paymenttermscode": "Net 45", "customerid_account@odata.bind": f"/accounts({acc})",
            "transactioncurrencyid@odata.bind": f"/transactioncurrencies({env.sim.base_currency_id})"})
        line = client.records.create("salesorderdetail", {
            "salesorderid@odata.bind": f"/salesorders({order})", "productid@odata.bind": f"/products({product})",
            "uomid@odata.bind": f"/uoms({pcs})", "quantity": 2, "priceperunit": 99.5})
        read = client.records.retrieve("salesorder", order, select=["name", "ordernumber", "paymenttermscode",
                                                                    "totallineitemamount", "_customerid_value"])
        assert read["name"] == "SDK order" and read["paymenttermscode"] == 3 and read["totallineitemamount"] == 199.0
        assert read["_customerid_value"] == acc and read["ordernumber"].startswith("ORD-")
        lines = client.records.list("salesorderdetail", filter=f"_salesorderid_value eq {order}",
                                    select=["baseamount", "sequencenumber"])
        assert [(r["baseamount"], r["sequencenumber"]) for r in lines] == [(199.0, 1)]
        assert lines[0]["salesorderdetailid"] == line
        info = client.tables.get("salesorder")
        assert info["entity_set_name"] == "salesorders"
