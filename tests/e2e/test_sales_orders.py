"""SALESORDER-ORDER end to end: Sales orders submitted in Sales become Business Central sales orders."""

from __future__ import annotations

import datetime as dt
import json

import azure.functions as func

import function_app
from sync.model import Side

from .conftest import job

LONG = ("Hand-engraved name plate on the top tube, brushed steel, font Garamond, letters no higher than "
        "eight millimetres, centred, with the customer's logo as attached to the quote, and a protective clear coat "
        "applied twice.")


def setup(env, write_in="WRITE-IN", freight="6610"):
    env.dv.seed("systemuser", [{"fullname": "Alicia Thornber", "islicensed": True,
                                "internalemailaddress": "alicia@contoso.com"}])
    env.bc.seed("salespeoplePurchasers", [{"code": "AT", "displayName": "Alicia", "email": "alicia@contoso.com"}])
    env.bc.seed("unitsOfMeasure", [{"code": "PCS", "displayName": "Piece"}, {"code": "HOUR", "displayName": "Hour"}])
    env.bc.seed("items", [{"number": "1000", "displayName": "Bicycle", "baseUnitOfMeasureCode": "PCS", "unitPrice": 100},
                          {"number": write_in, "displayName": "Write-in", "baseUnitOfMeasureCode": "PCS"}])
    env.bc.seed("Resources", [{"No": "R0010", "Name": "Installation", "Base_Unit_of_Measure": "HOUR", "Unit_Price": 80}])
    env.bc.seed("paymentTerms", [{"code": "NET 30", "displayName": "Net 30 days", "dueDateCalculation": "30D"},
                                 {"code": "NET 60", "displayName": "Net 60 days", "dueDateCalculation": "60D"}])
    env.bc.seed("shipmentMethods", [{"code": "FOB", "displayName": "Free on board"}])
    env.bc.seed("ShippingAgents", [{"Code": "UPS", "Name": "United Parcel Service"}])
    env.bc.seed("accounts", [{"number": "6610", "displayName": "Freight", "accountType": "Posting"}])
    terms = {t["code"]: t["id"] for t in env.bc.rows("paymentTerms")}
    env.bc.seed("customers", [{"number": "10000", "displayName": "Adatum", "salespersonCode": "AT",
                               "paymentTermsId": terms["NET 60"]}])
    setup_row = env.bc.rows("SalesReceivablesSetup")[0]
    env.bc.update("SalesReceivablesSetup", setup_row["SystemId"], {"Write_in_Product_Type": "Item",
                                                                   "Write_in_Product_No": write_in,
                                                                   "Freight_G_L_Acc_No": freight})
    env.full_sync()


def account(env, name="Adatum"):
    return next(a["accountid"] for a in env.dv.rows("account") if a["name"] == name)


def product(env, number):
    return next(p for p in env.dv.rows("product") if p["productnumber"] == number)


def lcy(env):
    return next(c["transactioncurrencyid"] for c in env.dv.rows("transactioncurrency") if c["isocurrencycode"] == "USD")


def active_product(env, name, number, type_code):
    """A product made in Sales alone (coupled to nothing), in the bicycle's unit group."""
    user, bike = env.stack.ids.user_systemuser_id, product(env, "1000")
    [made] = env.dv.seed("product", [{"name": name, "productnumber": number, "producttypecode": type_code,
                                      "defaultuomscheduleid": bike["defaultuomscheduleid"],
                                      "defaultuomid": bike["defaultuomid"]}], as_user=user)
    env.dv.update("product", made, {"statecode": 0, "statuscode": 1}, as_user=user)
    return made


def submitted_order(env, lines, customer=None, **header):
    user = env.stack.ids.user_systemuser_id
    [order] = env.dv.seed("salesorder", [{"name": "PO 4711", "customerid": customer or account(env),
                                          "transactioncurrencyid": lcy(env), **header}], as_user=user)
    for line in lines:
        env.dv.seed("salesorderdetail", [{"salesorderid": order, **line}], as_user=user)
    env.dv.update("salesorder", order, {"statecode": 1, "statuscode": 3}, as_user=user)
    return order


def product_line(env, number, quantity, price, **more):
    p = product(env, number)
    return {"productid": p["productid"], "uomid": p["defaultuomid"], "quantity": quantity, "priceperunit": price,
            "ispriceoverridden": True, **more}


def bc_lines(env, order_id):
    lines = [line for line in env.bc.rows("salesOrderLines") if line["documentId"] == order_id]
    return [(line["lineType"], line["lineObjectNumber"], line["description"], line["quantity"], line["unitPrice"])
            for line in sorted(lines, key=lambda line: line["sequence"])]


def test_a_submitted_order_becomes_a_business_central_order_with_write_ins_and_long_descriptions(env, cli):
    setup(env)
    order = submitted_order(env, [
        product_line(env, "1000", 2, 95, manualdiscountamount=10, description="Gift wrap, please"),
        {"isproductoverridden": True, "productdescription": LONG, "quantity": 1, "priceperunit": 250},
        product_line(env, "R0010", 3, 80),
    ], paymenttermscode=1, freighttermscode=1, shippingmethodcode=4, requestdeliveryby="2026-12-01", discountamount=20,
        freightamount=15,
        shipto_line1="1 Harbour Road", shipto_city="Seattle", shipto_postalcode="98101")
    ordernumber = env.dv.get("salesorder", order)["ordernumber"]

    code, out, _ = cli("orders", "create", order)
    assert code == 0 and "created" in out, out
    [created] = env.bc.rows("salesOrders")
    terms = {t["code"]: t["id"] for t in env.bc.rows("paymentTerms")}
    assert created["externalDocumentNumber"] == "PO 4711"
    [page] = [p for p in env.bc.rows("SalesOrder") if p["No"] == created["number"]]
    assert page["Your_Reference"] == ordernumber                              # through page 42 "Sales Order"
    assert created["customerNumber"] == "10000" and created["currencyCode"] == "USD"
    assert created["paymentTermsId"] == terms["NET 30"]                        # the order's, not the customer's
    assert created["shipmentMethodId"] == env.bc.rows("shipmentMethods")[0]["id"]
    assert page["Shipping_Agent_Code"] == "UPS"
    assert str(created["requestedDeliveryDate"]) == "2026-12-01"
    assert (created["shipToAddressLine1"], created["shipToCity"]) == ("1 Harbour Road", "Seattle")
    assert created["discountAmount"] == 20
    assert bc_lines(env, created["id"]) == [
        ("Item", "1000", "Bicycle", 2, 95),
        ("Comment", "", "Gift wrap, please", 0, 0),
        ("Item", "WRITE-IN", LONG[:100], 1, 250),
        ("Comment", "", LONG[100:200], 0, 0),
        ("Comment", "", LONG[200:], 0, 0),
        ("Resource", "R0010", "Installation", 3, 80),
        ("Account", "6610", "Freight", 1, 15),
    ]
    first = next(line for line in env.bc.rows("salesOrderLines") if line["lineObjectNumber"] == "1000")
    assert first["discountAmount"] == 10
    sales_order = env.dv.get("salesorder", order)
    assert sales_order["lastbackofficesubmit"] is not None
    assert created["number"] in sales_order["submitstatusdescription"]
    assert [c.crm_id for c in env.couplings("SALESORDER-ORDER")] == [order]

    # asked again, or found again after its coupling was lost: never a second order
    code, out, _ = cli("orders", "create", order, "--json")
    assert code == 0 and '"exists"' in out
    env.services.uncouple("SALESORDER-ORDER", Side.CRM, order)
    code, out, _ = cli("orders", "create", order, "--json")
    assert code == 0 and '"coupled"' in out
    assert len(env.bc.rows("salesOrders")) == 1

    # posted in full in Business Central: the Sales order is Invoiced
    env.bc.post_document("salesOrders", created["id"])
    report = env.sync(["SALESORDER-ORDER"])
    assert job(report, "SALESORDER-ORDER:from-crm").counts.modified == 1
    sales_order = env.dv.get("salesorder", order)
    assert (sales_order["statecode"], sales_order["statuscode"]) == (4, 100003)
    assert env.couplings("SALESORDER-ORDER") == []


def test_orders_are_created_on_schedule_when_automatic_creation_is_on(env):
    setup(env)
    order = submitted_order(env, [product_line(env, "1000", 1, 100)])
    report = env.sync(["SALESORDER-ORDER"])
    assert env.bc.rows("salesOrders") == []                         # off by default, as in Business Central
    assert any("on demand" in n for n in job(report, "SALESORDER-ORDER:from-crm").notes)

    env.configure(BCSYNC_AUTO_CREATE_SALES_ORDERS="true")
    report = env.sync(["SALESORDER-ORDER"])
    assert job(report, "SALESORDER-ORDER:from-crm").counts.inserted == 1
    [created] = env.bc.rows("salesOrders")
    again = env.sync(["SALESORDER-ORDER"])                           # nothing is created twice
    assert job(again, "SALESORDER-ORDER:from-crm").counts.inserted == 0 and len(env.bc.rows("salesOrders")) == 1

    # a user deletes the Business Central order: the Sales order can be submitted again
    env.bc.delete("salesOrders", created["id"])
    report = env.sync(["SALESORDER-ORDER"])
    assert job(report, "SALESORDER-ORDER:from-crm").counts.uncoupled == 1
    sales_order = env.dv.get("salesorder", order)
    assert (sales_order["statecode"], sales_order["statuscode"]) == (0, 2)   # Active, Pending
    assert sales_order["lastbackofficesubmit"] is None and env.couplings("SALESORDER-ORDER") == []
    env.dv.update("salesorder", order, {"statecode": 1, "statuscode": 3}, as_user=env.stack.ids.user_systemuser_id)
    env.sync(["SALESORDER-ORDER"])
    [recreated] = env.bc.rows("salesOrders")
    assert recreated["id"] != created["id"]


def test_each_precondition_failure_is_an_error_on_that_order_and_retried_next_run(env):
    setup(env, write_in="", freight="")
    env.configure(BCSYNC_AUTO_CREATE_SALES_ORDERS="true")
    user = env.stack.ids.user_systemuser_id
    [prospect] = env.dv.seed("account", [{"name": "Fabrikam", "customertypecode": 3}], as_user=user)  # not coupled
    [inactive] = env.dv.seed("account", [{"name": "Northwind", "customertypecode": 3}], as_user=user)
    [vendor] = env.dv.seed("account", [{"name": "Litware", "customertypecode": 10}], as_user=user)
    active_product(env, "Saddle", "SAD-1", 1)
    uncoupled_customer = submitted_order(env, [product_line(env, "1000", 1, 100)], customer=prospect, name="A")
    filtered_customer = submitted_order(env, [product_line(env, "1000", 1, 100)], customer=inactive, name="I")
    env.dv.update("account", inactive, {"statecode": 1, "statuscode": 2}, as_user=user)  # left out by CUSTOMER's rules
    not_a_customer = submitted_order(env, [product_line(env, "1000", 1, 100)], customer=vendor, name="B")
    uncoupled_product = submitted_order(env, [product_line(env, "SAD-1", 1, 30)], name="C")
    write_in = submitted_order(env, [{"isproductoverridden": True, "productdescription": "Bell", "quantity": 1,
                                      "priceperunit": 5}], name="D")
    good = submitted_order(env, [product_line(env, "1000", 1, 100)], name="E")
    freight = submitted_order(env, [product_line(env, "1000", 1, 100)], name="F", freightamount=9.5)
    active_product(env, "Handling fee", "FEE", 2)
    misc = submitted_order(env, [product_line(env, "FEE", 1, 10)], name="G")
    gone = submitted_order(env, [product_line(env, "R0010", 1, 80)], name="H")
    env.bc.delete("Resources", env.bc.rows("Resources")[0]["SystemId"])      # coupled, then deleted in BC

    report = env.sync(["SALESORDER-ORDER"])
    counts = job(report, "SALESORDER-ORDER:from-crm").counts
    assert (counts.inserted, counts.failed) == (3, 6)
    # the account and the product not coupled yet were synchronised first: created in Business Central
    assert "Fabrikam" in [c["displayName"] for c in env.bc.rows("customers")]
    assert "SAD-1" in [i["number"] for i in env.bc.rows("items")]
    failures = {f.source_id: f for f in env.errors() if f.mapping == "SALESORDER-ORDER"}
    assert set(failures) == {filtered_customer, not_a_customer, write_in, freight, misc, gone}
    assert "neither Sales Inventory nor Services" in failures[misc].message
    assert "R0010" in failures[gone].message and "no longer exists" in failures[gone].message
    assert "Account 'Northwind' is not coupled to a Business Central customer; it could not be synchronised first: " \
           "account 'Northwind'" in failures[filtered_customer].message
    assert "is left out by the rules of table mapping CUSTOMER" in failures[filtered_customer].message
    assert failures[filtered_customer].field == "customerid"
    assert "relationship type Customer" in failures[not_a_customer].message
    assert "Write-in Product No." in failures[write_in].message
    assert "Freight G/L Acc. No." in failures[freight].message and failures[freight].field == "freightamount"
    assert all(f.message.startswith("Sales order ") for f in failures.values())
    assert "not coupled" in env.dv.get("salesorder", filtered_customer)["submitstatusdescription"]  # shown in Sales

    # fixed at the source: retried by the next run, each created once, the errors gone
    setup_row = env.bc.rows("SalesReceivablesSetup")[0]
    env.bc.seed("items", [{"number": "WI", "displayName": "Write-in", "baseUnitOfMeasureCode": "PCS"}])
    env.bc.seed("accounts", [{"number": "6620", "displayName": "Carriage", "accountType": "Posting"}])
    env.bc.update("SalesReceivablesSetup", setup_row["SystemId"], {"Write_in_Product_No": "WI",
                                                                   "Freight_G_L_Acc_No": "6620"})
    again = env.sync(["SALESORDER-ORDER"])
    counts = job(again, "SALESORDER-ORDER:from-crm").counts
    assert (counts.inserted, counts.failed) == (2, 4)
    assert {f.source_id for f in env.errors() if f.mapping == "SALESORDER-ORDER"} == {
        filtered_customer, not_a_customer, misc, gone}
    assert sorted(o["externalDocumentNumber"] for o in env.bc.rows("salesOrders")) == ["A", "C", "D", "E", "F"]
    assert env.dv.get("salesorder", good)["lastbackofficesubmit"] is not None


def test_an_order_not_submitted_is_refused_and_unmapped_options_keep_the_customers(env, cli):
    setup(env)
    user = env.stack.ids.user_systemuser_id
    [draft] = env.dv.seed("salesorder", [{"name": "Draft", "customerid": account(env),
                                          "transactioncurrencyid": lcy(env)}], as_user=user)
    code, out, _ = cli("orders", "create", draft)
    assert code == 1 and "not Submitted" in out and env.bc.rows("salesOrders") == []

    order = submitted_order(env, [product_line(env, "1000", 1, 100)], paymenttermscode=3)   # Net 45: no such code
    code, out, _ = cli("orders", "create", order)
    assert code == 0
    [created] = env.bc.rows("salesOrders")
    terms = {t["code"]: t["id"] for t in env.bc.rows("paymentTerms")}
    assert created["paymentTermsId"] == terms["NET 60"]                    # the customer's default
    today = dt.date.today().isoformat()
    assert str(env.dv.get("salesorder", order)["lastbackofficesubmit"])[:10] == today


def test_orders_created_over_http_never_alongside_a_running_job(env, monkeypatch):
    setup(env)
    monkeypatch.setattr(function_app, "_services", env.services)
    call = function_app.create_orders.build().get_user_function()

    def post(body):
        answer = call(func.HttpRequest("POST", "http://localhost/api/orders/create", body=json.dumps(body).encode()))
        return answer.status_code, json.loads(answer.get_body())

    assert post({"orders": []})[0] == 400
    order = submitted_order(env, [product_line(env, "1000", 1, 100)])
    status, body = post({"orders": [order]})
    assert status == 200 and body["orders"][0]["status"] == "created" and body["orders"][0]["bc_order"]

    lease = "mapping:SALESORDER-ORDER"
    assert env.services.state.acquire(lease, "a job", dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=5))
    status, body = post({"orders": [order]})
    assert status == 409 and "running" in body["error"]
    env.services.state.release(lease, "a job")

    status, body = post({"orders": [order, "00000000-0000-0000-0000-00000000abcd"]})
    assert status == 422
    assert [o["status"] for o in body["orders"]] == ["failed", "exists"]
    assert "does not exist" in body["orders"][0]["message"]
    assert len(env.bc.rows("salesOrders")) == 1
