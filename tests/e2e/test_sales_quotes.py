"""SALESQUOTE-QUOTE end to end: Sales quotes processed into Business Central sales quotes, revisions replacing
them, and the order made from a won quote given its Quote No."""

from __future__ import annotations

import requests

from sync.model import Side
from sync.runs import RunKind, RunStatus
from sync.tables import BC_SALES_QUOTE

from .conftest import job, killed_after, taken_over
from .test_sales_order_rules import lose_first_order_answer
from .test_sales_orders import LONG, account, active_product, lcy, product_line, setup, submitted_order

QUOTES = "SALESQUOTE-QUOTE"


def quote(env, lines, customer=None, activate=True, **header):
    """A quote drafted in Sales with these lines, then activated."""
    user = env.stack.ids.user_systemuser_id
    [made] = env.dv.seed("quote", [{"name": "10 bikes for the fleet", "customerid": customer or account(env),
                                    "transactioncurrencyid": lcy(env), **header}], as_user=user)
    for line in lines:
        env.dv.seed("quotedetail", [{"quoteid": made, **line}], as_user=user)
    if activate:
        env.dv.update("quote", made, {"statecode": 1, "statuscode": 3}, as_user=user)
    return made


def quote_lines(env, bc_quote_id):
    lines = [line for line in env.bc.rows("salesQuoteLines") if line["documentId"] == bc_quote_id]
    return [(line["lineType"], line["lineObjectNumber"], line["description"], line["quantity"], line["unitPrice"])
            for line in sorted(lines, key=lambda line: line["sequence"])]


def processing_on(env):
    setup(env)
    env.configure(BCSYNC_AUTO_PROCESS_SALES_QUOTES="true")


def test_an_active_quote_becomes_a_coupled_business_central_quote_and_a_revision_replaces_it(env):
    processing_on(env)
    first = quote(env, [product_line(env, "1000", 2, 95, description="Gift wrap, please"),
                        {"isproductoverridden": True, "productdescription": LONG, "quantity": 1, "priceperunit": 250}],
                  effectiveto="2026-12-31", paymenttermscode=1, shipto_line1="1 Harbour Road", shipto_city="Seattle",
                  discountamount=20, shippingmethodcode=4, requestdeliveryby="2026-11-15",
                  description="Assembled, on site", billto_line1="PO Box 7", billto_city="Tacoma")
    draft = quote(env, [product_line(env, "1000", 1, 100)], activate=False, name="Still a draft")

    report = env.sync([QUOTES])
    assert job(report, f"{QUOTES}:from-crm").counts.inserted == 1
    [made] = env.bc.rows("salesQuotes")
    terms = {t["code"]: t["id"] for t in env.bc.rows("paymentTerms")}
    assert (made["customerNumber"], made["externalDocumentNumber"], made["currencyCode"]) == (
        "10000", "10 BIKES FOR THE FLEET", "USD")
    assert str(made["validUntilDate"]) == "2026-12-31" and made["paymentTermsId"] == terms["NET 30"]
    assert (made["shipToAddressLine1"], made["shipToCity"], made["discountAmount"]) == ("1 Harbour Road", "Seattle", 20)
    [page] = [p for p in env.bc.rows("SalesQuote") if p["No"] == made["number"]]  # page 41 "Sales Quote"
    assert page["Your_Reference"] == env.dv.get("quote", first)["quotenumber"]
    assert (str(page["Requested_Delivery_Date"]), page["Shipping_Agent_Code"], page["WorkDescription"]) == (
        "2026-11-15", "UPS", "Assembled, on site")
    assert (page["Bill_to_Address"], page["Bill_to_City"]) == ("PO Box 7", "Tacoma")
    assert quote_lines(env, made["id"]) == [
        ("Item", "1000", "Bicycle", 2, 95),
        ("Comment", "", "Gift wrap, please", 0, 0),
        ("Item", "WRITE-IN", LONG[:100], 1, 250),
        ("Comment", "", LONG[100:200], 0, 0),
        ("Comment", "", LONG[200:], 0, 0),
    ]
    assert [c.crm_id for c in env.couplings(QUOTES)] == [first]
    assert draft not in [c.crm_id for c in env.couplings(QUOTES)]
    again = env.sync([QUOTES])                      # an active quote does not change: nothing made twice
    assert job(again, f"{QUOTES}:from-crm").counts.inserted == 0 and len(env.bc.rows("salesQuotes")) == 1

    # revised in Sales: the new revision, once active, replaces the quote's header and lines
    second = env.dv.revise_quote(first, as_user=env.stack.ids.user_systemuser_id)
    assert env.sync([QUOTES]).run.status.name == "DONE"
    assert len(env.bc.rows("salesQuotes")) == 1     # the draft revision is not processed yet
    user = env.stack.ids.user_systemuser_id
    for line in [d for d in env.dv.rows("quotedetail") if d["quoteid"] == second]:
        env.dv.delete("quotedetail", line["quotedetailid"])
    env.dv.seed("quotedetail", [{"quoteid": second, **product_line(env, "R0010", 4, 80)}], as_user=user)
    # the new revision clears what the first had: its Business Central quote loses it too, as a new quote would
    env.dv.update("quote", second, {"name": "Fleet service", "discountamount": 0, "effectiveto": None,
                                    "requestdeliveryby": None, "shipto_line1": None, "shipto_city": None,
                                    "shippingmethodcode": None, "description": None, "billto_line1": None,
                                    "billto_city": None}, as_user=user)
    env.dv.update("quote", second, {"statecode": 1, "statuscode": 3}, as_user=user)
    # planned by a dry run first: the lines it would delete are told, and nothing is written
    before = (env.bc.rows("salesQuotes"), env.bc.rows("salesQuoteLines"), env.couplings(QUOTES))
    run = env.services.start_run(RunKind.SCHEDULED, trigger="test", mappings=[QUOTES], dry=True)
    assert env.worker.run_until(lambda: env.services.report(run.run_id).run.status is not RunStatus.RUNNING, 60)
    planned = env.services.report(run.run_id).to_dict()["dry_run_report"][f"{QUOTES}:from-crm"]["records"]
    assert sorted((r["kind"], r.get("table")) for r in planned if r.get("table") == "Sales Line") == [
        ("delete", "Sales Line")] * 5 + [("insert", "Sales Line")]
    assert (env.bc.rows("salesQuotes"), env.bc.rows("salesQuoteLines"), env.couplings(QUOTES)) == before
    report = env.sync([QUOTES])
    assert job(report, f"{QUOTES}:from-crm").counts.modified == 1
    [replaced] = env.bc.rows("salesQuotes")
    assert (replaced["id"], replaced["number"]) == (made["id"], made["number"])
    assert (replaced["externalDocumentNumber"], replaced["discountAmount"]) == ("FLEET SERVICE", 0)
    assert replaced["validUntilDate"] is None                          # the blank date 0001-01-01
    assert (replaced["shipToAddressLine1"], replaced["shipToCity"]) == (
        made["sellToAddressLine1"], made["sellToCity"])                  # the customer's, as in a new quote
    page = page_41(env, replaced)
    assert (page["Requested_Delivery_Date"], page["Shipping_Agent_Code"], page["WorkDescription"]) == (None, "", "")
    assert (page["Bill_to_Address"], page["Bill_to_City"]) == (made["sellToAddressLine1"], made["sellToCity"])
    assert quote_lines(env, made["id"]) == [("Resource", "R0010", "Installation", 4, 80)]
    assert [c.crm_id for c in env.couplings(QUOTES)] == [second]


def test_the_order_made_from_a_won_quote_gets_its_quote_no(env):
    processing_on(env)
    env.configure(BCSYNC_AUTO_CREATE_SALES_ORDERS="true")
    user = env.stack.ids.user_systemuser_id
    won = quote(env, [product_line(env, "1000", 1, 100)])
    env.sync([QUOTES])
    [bc_quote] = env.bc.rows("salesQuotes")

    # won with an order made from it, submitted later: SALESORDER-ORDER writes Quote No. when it creates the order
    env.dv.update("quote", won, {"statecode": 2, "statuscode": 4}, as_user=user)
    [order] = env.dv.seed("salesorder", [{"name": "PO 4711", "customerid": account(env), "quoteid": won,
                                          "transactioncurrencyid": lcy(env)}], as_user=user)
    env.dv.seed("salesorderdetail", [{"salesorderid": order, **product_line(env, "1000", 1, 100)}], as_user=user)
    report = env.sync([QUOTES])
    assert any("not submitted" in n for n in job(report, f"{QUOTES}:from-crm").notes)
    env.dv.update("salesorder", order, {"statecode": 1, "statuscode": 3}, as_user=user)
    env.sync(["SALESORDER-ORDER"])
    [bc_order] = env.bc.rows("salesOrders")
    [page] = [p for p in env.bc.rows("SalesOrder") if p["No"] == bc_order["number"]]
    assert page["Quote_No"] == bc_quote["number"]

    # a quote made a Business Central quote before its order is submitted: the order gets Quote No. as it is
    # created, and winning the quote afterwards changes nothing more
    second = quote(env, [product_line(env, "1000", 3, 100)], name="3 bikes")
    env.sync([QUOTES])
    [other] = env.dv.seed("salesorder", [{"name": "PO 4712", "customerid": account(env), "quoteid": second,
                                          "transactioncurrencyid": lcy(env)}], as_user=user)
    env.dv.seed("salesorderdetail", [{"salesorderid": other, **product_line(env, "1000", 3, 100)}], as_user=user)
    env.sync(["SALESORDER-ORDER"])
    assert len(env.bc.rows("salesOrders")) == 1   # not submitted yet
    env.dv.update("salesorder", other, {"statecode": 1, "statuscode": 3}, as_user=user)
    env.sync(["SALESORDER-ORDER"])
    [created] = [o for o in env.bc.rows("salesOrders") if o["id"] != bc_order["id"]]
    second_bc = next(q for q in env.bc.rows("salesQuotes") if q["id"] != bc_quote["id"])
    [page] = [p for p in env.bc.rows("SalesOrder") if p["No"] == created["number"]]
    assert page["Quote_No"] == second_bc["number"]  # the quote is coupled already: set when the order is made
    env.dv.update("quote", second, {"statecode": 2, "statuscode": 4}, as_user=user)
    report = env.sync([QUOTES])
    counts = job(report, f"{QUOTES}:from-crm").counts
    assert (counts.inserted, counts.modified, counts.failed) == (0, 0, 0)


def test_quote_no_is_set_on_an_order_created_before_its_quote_was_won(env):
    processing_on(env)
    user = env.stack.ids.user_systemuser_id
    won = quote(env, [product_line(env, "1000", 1, 100)])
    [order] = env.dv.seed("salesorder", [{"name": "PO 4713", "customerid": account(env),
                                          "transactioncurrencyid": lcy(env)}], as_user=user)
    env.dv.seed("salesorderdetail", [{"salesorderid": order, **product_line(env, "1000", 1, 100)}], as_user=user)
    env.dv.update("salesorder", order, {"statecode": 1, "statuscode": 3}, as_user=user)
    [result] = env.services.create_sales_orders([order])
    assert result.status == "created", result.message
    # the quote is won and named as the order's quote only now, before the quote job ever ran
    env.dv.update("salesorder", order, {"quoteid": won}, as_user=user)
    env.dv.update("quote", won, {"statecode": 2, "statuscode": 4}, as_user=user)
    report = env.sync([QUOTES])
    counts = job(report, f"{QUOTES}:from-crm").counts
    assert (counts.inserted, counts.modified, counts.failed) == (1, 1, 0)  # made, then named on the order
    [bc_quote], [bc_order] = env.bc.rows("salesQuotes"), env.bc.rows("salesOrders")
    [page] = [p for p in env.bc.rows("SalesOrder") if p["No"] == bc_order["number"]]
    assert page["Quote_No"] == bc_quote["number"]


def test_bad_quotes_are_errors_naming_the_quote_and_field_retried_without_duplicates(env):
    processing_on(env)
    user = env.stack.ids.user_systemuser_id
    [prospect] = env.dv.seed("account", [{"name": "Fabrikam", "customertypecode": 3}], as_user=user)
    [vendor] = env.dv.seed("account", [{"name": "Litware", "customertypecode": 10}], as_user=user)
    active_product(env, "Handling fee", "FEE", 2)   # neither Sales Inventory nor Services: no item or resource
    not_a_customer = quote(env, [product_line(env, "1000", 1, 100)], customer=vendor, name="Q vendor")
    misc = quote(env, [product_line(env, "FEE", 1, 10)], name="Q fee")
    won_alone = quote(env, [product_line(env, "1000", 1, 100)], name="Q won")
    env.dv.update("quote", won_alone, {"statecode": 2, "statuscode": 4}, as_user=user)
    good = quote(env, [product_line(env, "1000", 1, 100)], customer=prospect, name="Q good")

    report = env.sync([QUOTES])
    counts = job(report, f"{QUOTES}:from-crm").counts
    assert (counts.inserted, counts.failed) == (2, 3)  # the won quote's BC quote is made; its order is missing
    failures = {f.source_id: f for f in env.errors() if f.mapping == QUOTES}
    assert set(failures) == {not_a_customer, misc, won_alone}
    numbers = {q["quoteid"]: q["quotenumber"] for q in env.dv.rows("quote")}
    assert failures[not_a_customer].field == "customerid" and "Litware" in failures[not_a_customer].message
    assert failures[misc].field == "producttypecode" and "FEE" in failures[misc].message
    assert failures[won_alone].field == "quoteid" and failures[won_alone].code == "NoOrder"
    for quote_id, failure in failures.items():
        assert failure.message.startswith(f"Sales quote {numbers[quote_id]} revision 0 ")
    assert good in [c.crm_id for c in env.couplings(QUOTES)]  # the prospect was synchronised first

    # tried again at the next run, never made twice
    env.dv.update("account", vendor, {"customertypecode": 3}, as_user=user)
    report = env.sync([QUOTES])
    counts = job(report, f"{QUOTES}:from-crm").counts
    assert (counts.inserted, counts.failed) == (1, 2)
    assert {f.source_id for f in env.errors() if f.mapping == QUOTES} == {misc, won_alone}
    assert len(env.bc.rows("salesQuotes")) == 3
    report = env.sync([QUOTES])
    assert job(report, f"{QUOTES}:from-crm").counts.inserted == 0 and len(env.bc.rows("salesQuotes")) == 3


def test_with_automatic_processing_off_no_quote_is_processed(env):
    setup(env)
    quote(env, [product_line(env, "1000", 1, 100)])
    report = env.sync([QUOTES])
    assert env.bc.rows("salesQuotes") == [] and env.couplings(QUOTES) == []
    assert job(report, f"{QUOTES}:from-crm").counts.inserted == 0


def quote_errors(env):
    return {f.source_id: f for f in env.errors() if f.mapping == QUOTES}


def page_41(env, bc_quote):
    """The quote as page 41 "Sales Quote" (published as SalesQuote) shows it."""
    return next(p for p in env.bc.rows("SalesQuote") if p["No"] == bc_quote["number"])


def test_a_quote_whose_answer_was_lost_is_found_again_by_name_customer_and_lines_never_made_twice(env, monkeypatch):
    processing_on(env)
    made = quote(env, [product_line(env, "1000", 2, 95)], requestdeliveryby="2026-11-15")
    # a quote a user made by hand with the same name and customer, but other lines, is not this quote
    [by_hand] = env.bc.seed("salesQuotes", [{"customerNumber": "10000",
                                             "externalDocumentNumber": "10 bikes for the fleet"}])
    env.bc.seed("salesQuoteLines", [{"documentId": by_hand, "lineType": "Item", "lineObjectNumber": "1000",
                                     "quantity": 1}])
    # Business Central makes the quote, but its answer never arrives (so Your Reference was never written); the
    # job stops and is tried again at once
    monkeypatch.setattr("sync.runs.RETRY_SECONDS", 0)
    lose_first_order_answer(env, monkeypatch, requests.exceptions.ReadTimeout("the connection dropped"),
                            entity_set="salesQuotes")
    report = env.sync([QUOTES])
    counts = job(report, f"{QUOTES}:from-crm").counts
    assert (counts.inserted, counts.modified, counts.failed) == (0, 1, 0)  # found again, written over
    [first] = [q for q in env.bc.rows("salesQuotes") if q["id"] != by_hand]
    page = page_41(env, first)
    assert (page["Your_Reference"], str(page["Requested_Delivery_Date"])) == (
        env.dv.get("quote", made)["quotenumber"], "2026-11-15")
    assert page_41(env, env.bc.get("salesQuotes", by_hand))["Your_Reference"] == ""
    assert [(c.bc_id, c.crm_id) for c in env.couplings(QUOTES)] == [(first["id"], made)]
    assert quote_errors(env) == {} and len(quote_lines(env, first["id"])) == 1


def test_a_quote_whose_page_41_write_or_discount_failed_stays_an_error_until_the_next_run_writes_it(env):
    processing_on(env)
    faults = env.stack.business_central.faults
    locked = {"error": {"code": "Internal_Error", "message": "Locked."}}
    paged = quote(env, [product_line(env, "1000", 2, 95)], name="Q page", requestdeliveryby="2026-11-15",
                  description="Assembled, on site")
    # the page write after the POST fails, and so does the one more try at once: made and coupled, but incomplete
    faults.fail(400, times=2, methods=("PATCH",), path_contains="SalesQuote(", body=locked)
    report = env.sync([QUOTES])
    assert job(report, f"{QUOTES}:from-crm").counts.inserted == 1
    [made] = env.bc.rows("salesQuotes")
    failure = quote_errors(env)[paged]
    assert failure.code == "QuoteIncomplete" and made["number"] in failure.message
    assert set(failure.field.split(",")) == {"quotenumber", "requestdeliveryby", "description"}
    assert "Your Reference and requested delivery date and work description could not be written" in failure.message
    assert page_41(env, made)["Your_Reference"] == ""

    # a second quote whose discount cannot be set once
    discounted = quote(env, [product_line(env, "1000", 5, 100)], name="Q discount", discountamount=50)
    faults.fail(400, times=1, methods=("PATCH",), path_contains="salesQuotes(", body=locked)
    report = env.sync([QUOTES])
    [other] = [q for q in env.bc.rows("salesQuotes") if q["id"] != made["id"]]
    assert other["discountAmount"] == 0
    failure = quote_errors(env)[discounted]
    assert (failure.code, failure.field) == ("QuoteIncomplete", "discountamount")
    assert "quote discount could not be written" in failure.message
    assert paged not in quote_errors(env)  # written at this run: done

    page = page_41(env, made)
    assert (page["Your_Reference"], str(page["Requested_Delivery_Date"]), page["WorkDescription"]) == (
        env.dv.get("quote", paged)["quotenumber"], "2026-11-15", "Assembled, on site")
    report = env.sync([QUOTES])
    assert job(report, f"{QUOTES}:from-crm").counts.modified == 1 and quote_errors(env) == {}
    assert env.bc.get("salesQuotes", other["id"])["discountAmount"] == 50 and len(env.bc.rows("salesQuotes")) == 2


def test_quote_no_written_on_a_released_two_way_order_is_not_pushed_back_to_sales(env):
    processing_on(env)
    env.configure(BCSYNC_SALES_ORDER_MODE="two-way")
    user = env.stack.ids.user_systemuser_id
    won = quote(env, [product_line(env, "1000", 1, 100)])
    env.dv.update("quote", won, {"statecode": 2, "statuscode": 4}, as_user=user)
    submitted_order(env, [product_line(env, "1000", 1, 100)], quoteid=won)
    env.sync(["SALESORDER-ORDER"])                # made in Business Central before its quote is one
    [bc_order] = env.bc.rows("salesOrders")
    env.bc.act("salesOrders", bc_order["id"], "release")
    env.sync(["SALESORDER-ORDER"])                # the released order is pushed to Sales once
    report = env.sync(["SALESORDER-ORDER"])
    assert job(report, "SALESORDER-ORDER:to-crm").counts.modified == 0

    report = env.sync([QUOTES])                   # Quote No. is written on the released order
    assert job(report, f"{QUOTES}:from-crm").counts.modified == 1
    [page] = [p for p in env.bc.rows("SalesOrder") if p["No"] == bc_order["number"]]
    assert page["Quote_No"] == env.bc.rows("salesQuotes")[0]["number"]
    report = env.sync(["SALESORDER-ORDER"])       # bcsync's own write: nothing to push to Sales again
    counts = job(report, "SALESORDER-ORDER:to-crm").counts
    assert (counts.modified, counts.failed) == (0, 0)


def test_a_quote_made_by_a_worker_killed_before_it_saved_the_coupling_is_found_by_your_reference(env):
    processing_on(env)
    env.configure(BCSYNC_JOB_LEASE_SECONDS=2)
    made = quote(env, [product_line(env, "1000", 2, 95)])
    run = killed_after(env, Side.BC, "insert", lambda table, rows: table == BC_SALES_QUOTE, mappings=[QUOTES])
    [first] = env.bc.rows("salesQuotes")
    assert env.couplings(QUOTES) == [] and page_41(env, first)["Your_Reference"]
    report = taken_over(env, run)
    counts = job(report, f"{QUOTES}:from-crm").counts
    assert (counts.inserted, counts.modified) == (0, 1) and [q["id"] for q in env.bc.rows("salesQuotes")] == [
        first["id"]]
    assert [c.crm_id for c in env.couplings(QUOTES)] == [made] and len(quote_lines(env, first["id"])) == 1
