"""SALESORDER-ORDER end to end, the finer rules: line amounts and numbering, contacts as customers,
currencies, units, orders already posted, orders that change or vanish in Sales, and a write that
fails after the order was created."""

from __future__ import annotations

import requests

from sync.model import Side

from .conftest import job
from .test_sales_orders import (
    LONG,
    account,
    active_product,
    bc_lines,
    product,
    product_line,
    setup,
    submitted_order,
)

MAPPING = "SALESORDER-ORDER"


def order_errors(env):
    return {f.source_id: f for f in env.errors() if f.mapping == MAPPING}


def page_of(env, order):
    """The order as page 42 "Sales Order" (published as SalesOrder) shows it."""
    return next(p for p in env.bc.rows("SalesOrder") if p["No"] == order["number"])


def test_line_amounts_numbering_and_a_contact_as_the_customer(env, cli):
    setup(env)
    [ann] = env.dv.seed("contact", [{"firstname": "Ann", "lastname": "Lee", "parentcustomerid": account(env)}],
                        as_user=env.stack.ids.user_systemuser_id)
    order = submitted_order(env, [
        product_line(env, "1000", 4, 100, volumediscountamount=5, manualdiscountamount=2, description=LONG),
        product_line(env, "R0010", 1, 80),
    ], customer=("contact", ann))

    code, out, _ = cli("orders", "create", order)
    assert code == 0, out
    [created] = env.bc.rows("salesOrders")
    assert created["customerNumber"] == "10000"                        # the contact's parent account buys
    lines = sorted((line for line in env.bc.rows("salesOrderLines") if line["documentId"] == created["id"]),
                   key=lambda line: line["sequence"])
    assert [line["sequence"] for line in lines] == [10000, 20000, 30000, 40000, 50000]
    assert lines[0]["discountAmount"] == 4 * 5 + 2                     # volume discount per unit, then manual
    # a real product keeps its own description; the order line's text follows as comment lines
    assert bc_lines(env, created["id"])[:4] == [("Item", "1000", "Bicycle", 4, 100),
                                                ("Comment", "", LONG[:100], 0, 0),
                                                ("Comment", "", LONG[100:200], 0, 0),
                                                ("Comment", "", LONG[200:], 0, 0)]

    [orphan] = env.dv.seed("contact", [{"firstname": "Solo", "lastname": "Buyer"}],
                           as_user=env.stack.ids.user_systemuser_id)
    alone = submitted_order(env, [product_line(env, "1000", 1, 100)], customer=("contact", orphan))
    code, out, _ = cli("orders", "create", alone)
    assert code == 1 and "contact 'Solo Buyer', which has no parent account" in out


def test_the_order_currency_goes_through_its_coupling(env, cli):
    env.bc.seed("currencies", [{"code": "EUR", "displayName": "Euro", "symbol": "€"},
                               {"code": "GBP", "displayName": "Pound", "symbol": "£"}])
    env.bc.seed("CurrencyExchangeRates", [{"Currency_Code": code, "Starting_Date": "2024-01-01",
                                           "Exchange_Rate_Amount": 1, "Relational_Exch_Rate_Amount": rate}
                                          for code, rate in (("EUR", 1.08), ("GBP", 1.27))])
    setup(env)
    currencies = {c["isocurrencycode"]: c["transactioncurrencyid"] for c in env.dv.rows("transactioncurrency")}
    env.services.uncouple("CURRENCY", Side.CRM, currencies["GBP"])
    in_euro = submitted_order(env, [product_line(env, "1000", 1, 90)], transactioncurrencyid=currencies["EUR"])
    in_pounds = submitted_order(env, [product_line(env, "1000", 1, 80)], transactioncurrencyid=currencies["GBP"])

    code, out, _ = cli("orders", "create", in_euro, in_pounds)
    assert code == 1
    [created] = env.bc.rows("salesOrders")
    assert created["currencyCode"] == "EUR"
    failure = order_errors(env)[in_pounds]
    assert failure.field == "transactioncurrencyid" and "GBP" in failure.message and "not coupled" in failure.message


def test_a_unit_other_than_the_unit_groups_own_is_refused(env, cli):
    setup(env)
    bike = product(env, "1000")
    [box] = env.dv.seed("uom", [{"name": "Box of 4", "uomscheduleid": bike["defaultuomscheduleid"], "quantity": 4,
                                 "baseuom": bike["defaultuomid"]}])
    order = submitted_order(env, [{**product_line(env, "1000", 1, 400), "uomid": box}])
    code, out, _ = cli("orders", "create", order)
    assert code == 1 and env.bc.rows("salesOrders") == []
    failure = order_errors(env)[order]
    assert failure.field == "uomid" and "Box of 4" in failure.message and "PCS" in failure.message

    # a unit group made in Sales is coupled to no Business Central unit of measure
    [crates] = env.dv.seed("uomschedule", [{"name": "Crates", "baseuomname": "CRATE"}])
    crate = next(u["uomid"] for u in env.dv.rows("uom") if u["uomscheduleid"] == crates)
    other = submitted_order(env, [{**product_line(env, "1000", 1, 400), "uomid": crate}], name="PO 4712")
    assert cli("orders", "create", other)[0] == 1
    failure = order_errors(env)[other]
    assert failure.field == "uomid" and "CRATE" in failure.message and "not coupled" in failure.message


def test_an_order_posted_before_its_coupling_was_lost_is_never_created_again(env, cli):
    setup(env)
    order = submitted_order(env, [product_line(env, "1000", 1, 100)])
    other = submitted_order(env, [product_line(env, "1000", 2, 100)], name="PO 4712")
    ordernumber = env.dv.get("salesorder", order)["ordernumber"]
    # a draft invoice naming the other order is no posted order: that one is still created
    env.bc.seed("salesInvoices", [{"customerNumber": "10000",
                                   "customerPurchaseOrderReference": env.dv.get("salesorder", other)["ordernumber"]}])
    assert cli("orders", "create", order)[0] == 0
    [created] = env.bc.rows("salesOrders")
    env.services.uncouple(MAPPING, Side.CRM, order)
    env.bc.post_document("salesOrders", created["id"])

    code, out, _ = cli("orders", "create", order, other)
    assert code == 1 and "already created and posted" in out
    assert order_errors(env)[order].code == "AlreadyPosted" and ordernumber in order_errors(env)[order].message
    assert [o["externalDocumentNumber"] for o in env.bc.rows("salesOrders")] == ["PO 4712"]


def test_errors_of_orders_that_wait_no_more_are_cleared_and_1900_counts_as_never_sent(env):
    setup(env)
    env.configure(BCSYNC_AUTO_CREATE_SALES_ORDERS="true")
    user = env.stack.ids.user_systemuser_id
    active_product(env, "Handling fee", "FEE", 2)   # neither an item nor a resource: the orders fail
    revised = submitted_order(env, [product_line(env, "FEE", 1, 30)], name="revised")
    dropped = submitted_order(env, [product_line(env, "FEE", 1, 30)], name="dropped")
    env.sync([MAPPING])
    assert set(order_errors(env)) == {revised, dropped}

    # the salesperson takes one back to revise it and deletes the other: their errors go
    env.dv.update("salesorder", revised, {"statecode": 0, "statuscode": 2}, as_user=user)
    env.dv.delete("salesorder", dropped)
    legacy = submitted_order(env, [product_line(env, "1000", 1, 100)], name="legacy")
    env.dv.update("salesorder", legacy, {"lastbackofficesubmit": "1900-01-01"}, as_user=user)
    report = env.sync([MAPPING])
    assert order_errors(env) == {}
    assert job(report, f"{MAPPING}:from-crm").counts.inserted == 1     # 1900-01-01 is Business Central's "never"
    assert [o["externalDocumentNumber"] for o in env.bc.rows("salesOrders")] == ["LEGACY"]   # a Code field


def test_an_order_deleted_in_both_services_loses_its_coupling_quietly(env, cli):
    setup(env)
    env.configure(BCSYNC_AUTO_CREATE_SALES_ORDERS="true")
    order = submitted_order(env, [product_line(env, "1000", 1, 100)])
    env.sync([MAPPING])
    [created] = env.bc.rows("salesOrders")
    env.bc.delete("salesOrders", created["id"])
    env.dv.delete("salesorder", order)
    report = env.sync([MAPPING])
    assert job(report, f"{MAPPING}:from-crm").counts.uncoupled == 1
    assert env.couplings(MAPPING) == [] and order_errors(env) == {}


def test_a_discount_that_could_not_be_applied_is_an_error_set_again_next_run(env, cli):
    setup(env)
    env.configure(BCSYNC_AUTO_CREATE_SALES_ORDERS="true")
    order = submitted_order(env, [product_line(env, "1000", 5, 100)], discountamount=50)
    env.stack.business_central.faults.fail(400, times=1, methods=("PATCH",), path_contains="salesOrders(",
                                           body={"error": {"code": "Internal_Error", "message": "Locked."}})
    code, out, _ = cli("orders", "create", order)
    assert code == 1 and out.startswith("incomplete")
    [created] = env.bc.rows("salesOrders")
    assert created["discountAmount"] == 0
    failure = order_errors(env)[order]
    assert failure.field == "discountamount" and created["number"] in failure.message
    assert "order discount could not be set" in env.dv.get("salesorder", order)["submitstatusdescription"]

    report = env.sync([MAPPING])
    assert job(report, f"{MAPPING}:from-crm").counts.modified == 1
    [created] = env.bc.rows("salesOrders")
    assert created["discountAmount"] == 50 and order_errors(env) == {}
    assert created["number"] in env.dv.get("salesorder", order)["submitstatusdescription"]
    assert len(env.bc.rows("salesOrders")) == 1


def test_match_based_coupling_is_refused_for_the_order_job(env, cli):
    code, out, err = cli("match", MAPPING)
    assert code != 0 and "not coupled by matching" in out + err


def test_payment_discount_and_work_description_reach_page_42_even_when_its_write_fails_once(env, cli):
    setup(env)
    env.configure(BCSYNC_AUTO_CREATE_SALES_ORDERS="true")
    note = "Deliver to the back door.\nCall Ann first."
    order = submitted_order(env, [product_line(env, "1000", 2, 100)], discountpercentage=2, description=note)
    # the page write after the order's insert fails, and so does the one more try at once
    env.stack.business_central.faults.fail(400, times=2, methods=("PATCH",), path_contains="SalesOrder(",
                                           body={"error": {"code": "Internal_Error", "message": "Locked."}})
    code, out, _ = cli("orders", "create", order)
    assert code == 1 and out.startswith("incomplete")
    failure = order_errors(env)[order]
    assert "description" in failure.field.split(",") and "work description" in failure.message

    env.sync([MAPPING])
    [created] = env.bc.rows("salesOrders")
    [page] = [p for p in env.bc.rows("SalesOrder") if p["No"] == created["number"]]
    assert (page["Payment_Discount_Percent"], page["WorkDescription"]) == (2, note)
    assert order_errors(env) == {} and len(env.bc.rows("salesOrders")) == 1


def test_the_invoice_of_an_order_from_sales_belongs_to_that_order(env, cli):
    setup(env)
    env.bc.seed("customers", [{"number": "20000", "displayName": "Fabrikam", "salespersonCode": "AT"}])
    env.full_sync(["CUSTOMER"])
    user = env.stack.ids.user_systemuser_id
    order = submitted_order(env, [product_line(env, "1000", 1, 100)])
    assert cli("orders", "create", order)[0] == 0
    [created] = env.bc.rows("salesOrders")
    posted = env.bc.post_document("salesOrders", created["id"])
    # an order made in Business Central for another customer, naming the same Sales order
    ordernumber = env.dv.get("salesorder", order)["ordernumber"]
    [stray] = env.bc.seed("salesOrders", [{"customerNumber": "20000"}])
    env.bc.update("SalesOrder", stray, {"Your_Reference": ordernumber})
    env.bc.seed("salesOrderLines", [{"documentId": stray, "lineType": "Item", "lineObjectNumber": "1000",
                                     "quantity": 1, "unitPrice": 100}])
    env.bc.post_document("salesOrders", stray)

    env.sync(["POSTEDSALESINV-INV"])
    [invoice] = env.dv.rows("invoice")
    assert (invoice["name"], invoice["salesorderid"]) == ("PO 4711", order)
    alicia = next(u["systemuserid"] for u in env.dv.rows("systemuser") if u["fullname"] == "Alicia Thornber")
    assert invoice["ownerid"] == user == env.dv.get("salesorder", order)["ownerid"] != alicia  # not the salesperson's
    [failure] = [f for f in env.errors() if f.mapping == "POSTEDSALESINV-INV"]
    assert failure.field == "customerid" and ordernumber in failure.message and "customer has changed" in failure.message

    env.bc.apply_payment(posted, 40)                                  # later updates keep the order's owner
    env.sync(["POSTEDSALESINV-INV"])
    [invoice] = env.dv.rows("invoice")
    assert invoice["statecode"] == 2 and invoice["ownerid"] == user


def test_an_order_released_before_its_discount_was_set_keeps_its_error_until_invoiced(env, cli):
    setup(env)
    env.configure(BCSYNC_AUTO_CREATE_SALES_ORDERS="true")
    order = submitted_order(env, [product_line(env, "1000", 5, 100)], discountamount=50)
    faults = env.stack.business_central.faults
    faults.fail(400, times=1, methods=("PATCH",), path_contains="salesOrders(",
                body={"error": {"code": "Internal_Error", "message": "Locked."}})
    assert cli("orders", "create", order)[1].startswith("incomplete")
    [created] = env.bc.rows("salesOrders")
    env.bc.act("salesOrders", created["id"], "release")             # a user releases it meanwhile

    for _ in range(2):                                                # shown, never written over the release
        faults.requests.clear()
        env.sync([MAPPING])
        assert not [r for r in faults.requests if r[0] == "PATCH"]
        failure = order_errors(env)[order]
        assert failure.code == "OrderReleased" and "released before its order discount" in failure.message
    assert env.bc.rows("salesOrders")[0]["discountAmount"] == 0

    env.bc.post_document("salesOrders", created["id"])
    env.sync([MAPPING])                                               # Invoiced: nothing is waiting any more
    assert env.dv.get("salesorder", order)["statecode"] == 4
    env.sync([MAPPING])
    assert order_errors(env) == {}


def lose_first_order_answer(env, monkeypatch, failure: Exception, entity_set: str = "salesOrders") -> None:
    """Business Central creates the first order (or row of `entity_set`) POSTed, but its answer never reaches
    bcsync."""
    session, lost = env.services.business_central.api.session, []
    send = session.request

    def creates_an_order(url, body) -> bool:   # on its own, or inside a $batch
        inner = (body or {}).get("requests", []) if url.endswith("/$batch") else [{"method": "POST", "url": url}]
        return any(r.get("method") == "POST" and r.get("url", "").endswith(entity_set) for r in inner)

    def lose_the_answer(method, url, **kwargs):
        response = send(method, url, **kwargs)
        if method == "POST" and creates_an_order(url, kwargs.get("json")) and not lost:
            lost.append(url)
            raise failure
        return response
    monkeypatch.setattr(session, "request", lose_the_answer)


def test_an_order_whose_answer_was_lost_is_found_again_by_name_customer_and_lines_never_created_twice(env, monkeypatch):
    setup(env)
    order = submitted_order(env, [product_line(env, "1000", 2, 100)], discountpercentage=2)
    ordernumber = env.dv.get("salesorder", order)["ordernumber"]
    # a draft a user made by hand with the same name and customer, but other lines, is not this order
    [by_hand] = env.bc.seed("salesOrders", [{"customerNumber": "10000", "externalDocumentNumber": "PO 4711"}])
    env.bc.seed("salesOrderLines", [{"documentId": by_hand, "lineType": "Item", "lineObjectNumber": "1000",
                                     "quantity": 1}])
    # Business Central creates the order, but its answer never arrives (so Your Reference was never written)
    lose_first_order_answer(env, monkeypatch, requests.exceptions.ReadTimeout("the connection dropped before the answer"))

    [result] = env.services.create_sales_orders([order])
    assert result.status == "failed" and "may or may not have been applied" in result.message
    [created] = [o for o in env.bc.rows("salesOrders") if o["id"] != by_hand]
    assert page_of(env, created)["Your_Reference"] == ""

    [result] = env.services.create_sales_orders([order])              # tried again: found, not created
    assert result.status == "coupled" and result.bc_order == created["number"], result.message
    assert len(env.bc.rows("salesOrders")) == 2
    page = page_of(env, created)
    assert (page["Your_Reference"], page["Payment_Discount_Percent"]) == (ordernumber, 2)
    assert page_of(env, env.bc.get("salesOrders", by_hand))["Your_Reference"] == ""
    assert [c.bc_id for c in env.couplings(MAPPING)] == [created["id"]] and order_errors(env) == {}
    [result] = env.services.create_sales_orders([order])
    assert result.status == "exists" and len(env.bc.rows("salesOrders")) == 2


def test_the_bill_to_address_of_an_order_is_written_through_page_42(env, cli):
    setup(env)
    order = submitted_order(env, [product_line(env, "1000", 1, 100)], billto_line1="PO Box 12",
                            billto_city="Atlanta", billto_postalcode="30301", billto_stateorprovince="GA",
                            shipto_line1="1 Harbour Road", shipto_city="Seattle")
    code, out, _ = cli("orders", "create", order)
    assert code == 0 and out.startswith("created"), out
    [created] = env.bc.rows("salesOrders")
    assert (created["billToAddressLine1"], created["billToAddressLine2"], created["billToCity"],
            created["billToPostCode"], created["billToState"]) == ("PO Box 12", "", "Atlanta", "30301", "GA")
    assert (created["shipToAddressLine1"], created["shipToCity"]) == ("1 Harbour Road", "Seattle")
    assert created["billToCustomerNumber"] == created["customerNumber"] == "10000"   # still the customer's bill
    customer = next(c for c in env.bc.rows("customers") if c["number"] == "10000")
    assert created["sellToAddressLine1"] == customer["addressLine1"]


def test_an_order_whose_answer_was_lost_and_that_was_posted_meanwhile_is_not_created_again(env, monkeypatch):
    setup(env)
    order = submitted_order(env, [product_line(env, "1000", 1, 100)])
    lose_first_order_answer(env, monkeypatch, requests.exceptions.ConnectionError("reset by peer"))
    assert env.services.create_sales_orders([order])[0].status == "failed"
    [created] = env.bc.rows("salesOrders")
    posted = env.bc.get("salesInvoices", env.bc.post_document("salesOrders", created["id"]))  # by a user, at once

    [result] = env.services.create_sales_orders([order])
    assert result.status == "failed" and posted["number"] in result.message, result.message
    assert order_errors(env)[order].code == "AlreadyPosted" and env.bc.rows("salesOrders") == []
