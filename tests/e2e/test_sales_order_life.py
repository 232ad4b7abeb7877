"""The sales order after creation, end to end: what becomes of a coupled order in Business Central (released,
shipped, invoiced) shows on its Sales order at the scheduled runs: date fulfilled, totals, status posts on the
order's wall and, once it is posted in full, on the account's."""

from __future__ import annotations

import dataclasses

from .conftest import job
from .test_sales_orders import account, product_line, setup, submitted_order

MAPPING = "SALESORDER-ORDER"


def created_order(env):
    """A Sales order for two bicycles, created in Business Central by a scheduled run."""
    env.configure(BCSYNC_AUTO_CREATE_SALES_ORDERS="true")
    order = submitted_order(env, [product_line(env, "1000", 2, 100)])
    env.sync([MAPPING])
    [created] = env.bc.rows("salesOrders")
    return order, created


def posts(env, table, row_id):
    return [p["text"] for p in sorted(env.dv.rows("post"), key=lambda p: p["createdon"])
            if str(p.get("regardingobjectid")).lower() == row_id.lower() and p.get("regardingobjectidtype", table)
            == table]


def state(env, order):
    row = env.dv.get("salesorder", order)
    return row["statecode"], row["statuscode"]


def ship(env, bc_order, quantity):
    """Ship `quantity` of the order's line without invoicing it, as a warehouse user does (the order is reopened
    to set what to ship, released again and posted)."""
    [line] = [x for x in env.bc.rows("salesOrderLines") if x["documentId"] == bc_order["id"]]
    env.bc.act("salesOrders", bc_order["id"], "reopen")
    env.bc.update("salesOrderLines", line["id"], {"shipQuantity": quantity, "invoiceQuantity": 0})
    env.bc.act("salesOrders", bc_order["id"], "release")
    env.bc.post_document("salesOrders", bc_order["id"])


def test_a_released_shipped_and_invoiced_order_shows_its_progress_in_sales(env):
    setup(env)
    order, created = created_order(env)
    before = env.dv.get("salesorder", order)

    # still open in Business Central: its mapping pushes released orders only, and nothing happened to post
    report = env.sync([MAPPING])
    assert job(report, f"{MAPPING}:from-crm").counts.modified == 0 and posts(env, "salesorder", order) == []

    env.bc.act("salesOrders", created["id"], "release")
    report = env.sync([MAPPING])
    assert job(report, f"{MAPPING}:from-crm").counts.modified == 1
    sales_order = env.dv.get("salesorder", order)
    bc_order = env.bc.get("salesOrders", created["id"])
    assert sales_order["totalamountlessfreight"] == bc_order["totalAmountExcludingTax"] == 200
    assert sales_order["totalamount"] == bc_order["totalAmountIncludingTax"]
    assert sales_order["datefulfilled"] is None and state(env, order) == (1, 3)    # Submitted again
    assert sales_order["lastbackofficesubmit"] == before["lastbackofficesubmit"]
    assert posts(env, "salesorder", order) == ["The order was released in Business Central."]

    # nothing changed since: nothing is written, nothing posted again
    report = env.sync([MAPPING])
    assert job(report, f"{MAPPING}:from-crm").counts.modified == 0 and len(posts(env, "salesorder", order)) == 1

    ship(env, created, 1)
    [page] = [p for p in env.bc.rows("SalesOrder") if p["No"] == created["number"]]
    report = env.sync([MAPPING])
    assert job(report, f"{MAPPING}:from-crm").counts.modified == 1
    sales_order = env.dv.get("salesorder", order)
    assert page["Last_Shipment_Date"] and str(sales_order["datefulfilled"])[:10] == str(page["Last_Shipment_Date"])
    assert state(env, order) == (1, 3)
    assert posts(env, "salesorder", order)[1:] == [f"Business Central posted shipment {page['Last_Shipping_No']} for "
                                                   f"the order."]

    # the rest shipped and invoiced: the order is gone from Business Central, the Sales order is Invoiced
    invoice_id = env.bc.post_document("salesOrders", created["id"])
    invoice = env.bc.get("salesInvoices", invoice_id)
    report = env.sync([MAPPING])
    assert state(env, order) == (4, 100003)
    assert posts(env, "salesorder", order)[2:] == [
        f"Business Central posted the last shipment of the order with invoice {invoice['number']}.",
        f"Business Central posted invoice {invoice['number']} for the order."]
    ordernumber = env.dv.get("salesorder", order)["ordernumber"]
    assert posts(env, "account", account(env)) == [
        f"Order {ordernumber} was posted in Business Central: invoice {invoice['number']}."]
    again = env.sync([MAPPING])
    assert len(env.dv.rows("post")) == 5 and job(again, f"{MAPPING}:from-crm").counts.modified == 0


def test_a_post_repeated_by_a_run_that_lost_track_is_not_posted_twice(env):
    setup(env)
    order, created = created_order(env)
    env.bc.act("salesOrders", created["id"], "release")
    env.sync([MAPPING])
    # the coupling forgets what it saw (as when a run stops after posting, before saving it)
    [coupling] = env.couplings(MAPPING)
    env.services.couplings.save_many([dataclasses.replace(coupling, bc_etag=None, bc_values={})])
    env.sync([MAPPING])
    assert posts(env, "salesorder", order) == ["The order was released in Business Central."]


def links(env, bc_order):
    return [(link["Description"], link["NoteText"]) for link in sorted(env.bc.rows("RecordLinks"),
                                                                       key=lambda link: link["Link_ID"])
            if link["RecordSystemId"] == bc_order["id"] and link["RecordTableNo"] == 36]


def notes(env, order):
    return sorted((n["subject"], n["notetext"]) for n in env.dv.rows("annotation")
                  if str(n.get("objectid")).lower() == order.lower())


def test_notes_go_both_ways_between_the_sales_order_and_its_business_central_order(env):
    setup(env)
    user = env.stack.ids.user_systemuser_id
    env.configure(BCSYNC_AUTO_CREATE_SALES_ORDERS="true")
    order = submitted_order(env, [product_line(env, "1000", 2, 100)])
    env.dv.seed("annotation", [{"subject": "Gate code", "notetext": "Ring twice, gate code 4711.",
                                "objectid": order, "objecttypecode": "salesorder"}], as_user=user)
    env.dv.seed("annotation", [{"subject": "Drawing", "filename": "plan.pdf", "documentbody": "JVBERi0=",
                                "objectid": order, "objecttypecode": "salesorder"}], as_user=user)   # an attachment
    env.sync([MAPPING])
    [created] = env.bc.rows("salesOrders")
    env.sync([MAPPING])      # the order's notes follow at the next run, as in Business Central
    assert links(env, created) == [("Gate code", "Ring twice, gate code 4711.")]

    # a note changed in Sales is written to its record link; one made in Business Central becomes a Sales note
    [note] = [n for n in env.dv.rows("annotation") if n["subject"] == "Gate code"]
    env.dv.update("annotation", note["annotationid"], {"notetext": "Gate code is now 0815."}, as_user=user)
    env.bc.create("RecordLinks", {"Description": "Carrier", "NoteText": "Pick-up by DHL on Friday.",
                                  "RecordTableNo": 36, "RecordSystemId": created["id"]})
    report = env.sync([MAPPING])
    counts = job(report, f"{MAPPING}:from-crm").counts
    assert (counts.inserted, counts.modified) == (1, 1)
    assert links(env, created) == [("Gate code", "Gate code is now 0815."), ("Carrier", "Pick-up by DHL on Friday.")]
    assert notes(env, order) == [("Carrier", "Pick-up by DHL on Friday."), ("Drawing", None),
                                 ("Gate code", "Gate code is now 0815.")]

    # nothing comes back or twice
    report = env.sync([MAPPING])
    counts = job(report, f"{MAPPING}:from-crm").counts
    assert (counts.inserted, counts.modified) == (0, 0) and len(env.bc.rows("RecordLinks")) == 2
    assert len(notes(env, order)) == 3


def test_an_items_price_that_includes_vat_reaches_business_central_without_vat(env):
    setup(env)
    env.bc.seed("VATPostingSetup", [{"VAT_Bus_Posting_Group": "DOMESTIC", "VAT_Prod_Posting_Group": "VAT25",
                                     "VAT_Percent": 25}])
    item = next(i for i in env.bc.rows("items") if i["number"] == "1000")
    env.bc.update("items", item["id"], {"priceIncludesTax": True})
    env.bc.update("ItemCard", item["id"], {"VAT_Prod_Posting_Group": "VAT25", "VAT_Bus_Posting_Gr_Price": "DOMESTIC"})
    customer = next(c for c in env.bc.rows("customers") if c["number"] == "10000")
    env.bc.update("CustomerCard", customer["id"], {"VAT_Bus_Posting_Group": "DOMESTIC"})
    env.configure(BCSYNC_AUTO_CREATE_SALES_ORDERS="true")
    submitted_order(env, [product_line(env, "1000", 2, 118.75), product_line(env, "R0010", 1, 80)])
    env.sync([MAPPING])
    [created] = env.bc.rows("salesOrders")
    prices = [(line["lineObjectNumber"], line["unitPrice"]) for line in sorted(
        env.bc.rows("salesOrderLines"), key=lambda line: line["sequence"]) if line["documentId"] == created["id"]]
    assert prices == [("1000", 95), ("R0010", 80)]   # 118.75 / 1.25; a resource's price is not converted

    # a customer of another VAT business posting group buys at the item's price as it is
    env.bc.update("CustomerCard", customer["id"], {"VAT_Bus_Posting_Group": "EXPORT"})
    submitted_order(env, [product_line(env, "1000", 1, 118.75)])
    env.sync([MAPPING])
    [second] = [o for o in env.bc.rows("salesOrders") if o["id"] != created["id"]]
    assert [line["unitPrice"] for line in env.bc.rows("salesOrderLines") if line["documentId"] == second["id"]] \
        == [118.75]

    # no VAT posting setup for the two groups: the order fails, naming them, and nothing is created
    env.bc.update("CustomerCard", customer["id"], {"VAT_Bus_Posting_Group": "DOMESTIC"})
    env.bc.update("ItemCard", item["id"], {"VAT_Prod_Posting_Group": "VAT10"})
    third = submitted_order(env, [product_line(env, "1000", 1, 110)])
    env.sync([MAPPING])
    assert len(env.bc.rows("salesOrders")) == 2
    [error] = [e for e in env.errors() if e.source_id == third]
    assert error.field == "priceperunit" and "no VAT Posting Setup for DOMESTIC and VAT10" in error.message
