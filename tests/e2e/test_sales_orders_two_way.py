"""Two-way order mode (BCSYNC_SALES_ORDER_MODE=two-way), end to end: released Business Central orders become
Submitted Sales orders with their lines, and follow their changes; submitted Sales orders become Business Central
orders whose number is written back; a posted order is archived and its Sales order Invoiced."""

from __future__ import annotations

from sync.errors import ConcurrencyError
from sync.model import Side
from sync.ports import WriteResult
from sync.runs import RunKind

from .conftest import job
from .test_dry_run import _dry
from .test_sales_orders import active_product, lcy, product, product_line, setup, submitted_order
from .test_team_ownership import team_model

MAPPING = "SALESORDER-ORDER"
PUSH, PULL = f"{MAPPING}:to-crm", f"{MAPPING}:from-crm"


def two_way(env):
    env.configure(BCSYNC_SALES_ORDER_MODE="two-way")
    setup(env)


def bc_order(env, lines, **header):
    """An order made and released in Business Central: (item number, quantity, unit price, description)."""
    [order] = env.bc.seed("salesOrders", [{"customerNumber": "10000", "externalDocumentNumber": "PHONE 12",
                                           "requestedDeliveryDate": "2026-12-10", **header}])
    for number, quantity, price, description in lines:
        [line] = env.bc.seed("salesOrderLines", [{"documentId": order, "lineType": "Item", "lineObjectNumber": number,
                                                  "quantity": quantity}])
        env.bc.update("salesOrderLines", line, {"unitPrice": price, **({"description": description}
                                                                         if description else {})})
    env.bc.act("salesOrders", order, "release")
    return env.bc.get("salesOrders", order)


def created_and_released(env, lines):
    """A submitted Sales order created in Business Central, whose order a user released, pushed back: (Sales order
    id, Business Central order)."""
    order = submitted_order(env, lines)
    env.sync([MAPPING])
    [created] = env.bc.rows("salesOrders")
    env.bc.act("salesOrders", created["id"], "release")
    env.sync([MAPPING])
    return order, created


def created_in_one_way_mode(env):
    """A Sales order of two lines created in Business Central in one-way mode: (Sales order id, its order)."""
    setup(env)
    env.configure(BCSYNC_AUTO_CREATE_SALES_ORDERS="true")
    order = submitted_order(env, [product_line(env, "1000", 2, 95), product_line(env, "R0010", 3, 80)])
    env.sync([MAPPING])
    [created] = env.bc.rows("salesOrders")
    return order, created


def sales_order_of(env, bc):
    [order] = [o for o in env.dv.rows("salesorder") if o.get("bcbi_businesscentralordernumber") == bc["number"]]
    return order


def pushed(env, lines):
    """A released Business Central order pushed to Sales: (Business Central order, Sales order)."""
    released = bc_order(env, lines)
    env.sync([MAPPING])
    return released, sales_order_of(env, released)


def details(env, order):
    rows = [d for d in env.dv.rows("salesorderdetail") if d["salesorderid"] == order["salesorderid"]]
    return sorted(((d.get("bcbi_businesscentrallinenumber"), d.get("productid"), d.get("productdescription"),
                    d["quantity"], d["priceperunit"], d.get("tax")) for d in rows), key=lambda t: t[0] or 0)


def test_a_released_business_central_order_becomes_a_submitted_sales_order_with_its_lines(env):
    two_way(env)
    released = bc_order(env, [("1000", 2, 100, None), ("WRITE-IN", 1, 40, "Custom bell")])
    report = env.sync([MAPPING])
    assert job(report, PUSH).counts.inserted == 1, job(report, PUSH)
    order = sales_order_of(env, released)
    assert (order["statecode"], order["name"], order["customerid"].lower()) == (
        1, "Adatum", next(a["accountid"] for a in env.dv.rows("account") if a["name"] == "Adatum").lower())
    assert order["transactioncurrencyid"] == lcy(env) and order["pricelevelid"]
    assert str(order["requestdeliveryby"])[:10] == "2026-12-10"
    alicia = next(u["systemuserid"] for u in env.dv.rows("systemuser") if u["fullname"] == "Alicia Thornber")
    assert released["salesperson"] == "AT" and order["ownerid"].lower() == alicia.lower()  # the salesperson's user
    bike = product(env, "1000")["productid"]
    lines = details(env, order)
    assert [line[:5] for line in lines] == [(10000, bike, None, 2, 100), (20000, None, "Custom bell", 1, 40)]
    bc_lines = sorted((x for x in env.bc.rows("salesOrderLines") if x["documentId"] == released["id"]),
                      key=lambda x: x["sequence"])
    assert [line[5] for line in lines] == [round(x["netAmountIncludingTax"] - x["netAmount"], 2) for x in bc_lines]

    # nothing changed: nothing written again
    report = env.sync([MAPPING])
    assert job(report, PUSH).counts.inserted == 0 and job(report, PUSH).counts.modified == 0

    # a change in Business Central (reopened, a quantity raised, the write-in deleted, a line added, released): the
    # new line takes the deleted one's Line No., which pairs it with that Sales line
    env.bc.act("salesOrders", released["id"], "reopen")
    env.bc.update("salesOrderLines", bc_lines[0]["id"], {"quantity": 5})
    env.bc.delete("salesOrderLines", bc_lines[1]["id"])
    env.bc.seed("salesOrderLines", [{"documentId": released["id"], "lineType": "Item", "lineObjectNumber": "1000",
                                     "quantity": 1}])
    env.bc.act("salesOrders", released["id"], "release")
    report = env.sync([MAPPING])
    assert job(report, PUSH).counts.modified == 1
    order = env.dv.get("salesorder", order["salesorderid"])
    assert order["statecode"] == 1
    assert [line[:4] for line in details(env, order)] == [(10000, bike, None, 5), (20000, bike, None, 1)]


def test_a_submitted_sales_order_becomes_a_business_central_order_and_gets_its_number(env):
    two_way(env)
    order = submitted_order(env, [product_line(env, "1000", 2, 95), product_line(env, "R0010", 3, 80)])
    report = env.sync([MAPPING])
    assert job(report, PULL).counts.inserted == 1, job(report, PULL)
    [created] = env.bc.rows("salesOrders")
    row = env.dv.get("salesorder", order)
    assert row["bcbi_businesscentralordernumber"] == created["number"] and row["statecode"] == 1
    numbers = sorted(d["bcbi_businesscentrallinenumber"] for d in env.dv.rows("salesorderdetail")
                     if d["salesorderid"] == order)
    assert numbers == sorted(x["sequence"] for x in env.bc.rows("salesOrderLines") if x["documentId"] == created["id"])

    # not sent again, and what bcsync wrote to it is not taken for a user's change
    report = env.sync([MAPPING])
    assert len(env.bc.rows("salesOrders")) == 1 and job(report, PULL).counts.inserted == 0

    # released in Business Central: pushed to the Sales order, whose lines are the same ones (paired by number)
    env.bc.act("salesOrders", created["id"], "release")
    report = env.sync([MAPPING])
    assert job(report, PUSH).counts.modified == 1, job(report, PUSH)
    assert len([d for d in env.dv.rows("salesorderdetail") if d["salesorderid"] == order]) == 2


def test_a_sales_order_changed_and_submitted_again_updates_its_business_central_order(env):
    two_way(env)
    order, created = created_and_released(env, [product_line(env, "1000", 2, 95), product_line(env, "R0010", 3, 80)])

    # a salesperson re-opens the order, raises the bicycles, drops the installation, adds a write-in, submits
    user = env.stack.ids.user_systemuser_id
    env.dv.update("salesorder", order, {"statecode": 0, "statuscode": 1}, as_user=user)
    lines = {d["bcbi_businesscentrallinenumber"]: d["salesorderdetailid"] for d in env.dv.rows("salesorderdetail")
             if d["salesorderid"] == order}
    env.dv.update("salesorderdetail", lines[10000], {"quantity": 4}, as_user=user)
    env.dv.delete("salesorderdetail", lines[20000])
    env.dv.seed("salesorderdetail", [{"salesorderid": order, "isproductoverridden": True,
                                      "productdescription": "Bell", "quantity": 1, "priceperunit": 12}], as_user=user)
    env.dv.update("salesorder", order, {"statecode": 1, "statuscode": 3}, as_user=user)

    report = env.sync([MAPPING])
    assert job(report, PULL).counts.modified == 1, (job(report, PULL), env.errors())
    bc = env.bc.get("salesOrders", created["id"])
    assert bc["status"] == "Open"  # released again (API v2.0's name for Released)
    bc_lines = sorted((x for x in env.bc.rows("salesOrderLines") if x["documentId"] == created["id"]),
                      key=lambda x: x["sequence"])
    assert [(x["sequence"], x["lineObjectNumber"], x["quantity"]) for x in bc_lines] == [
        (10000, "1000", 4), (30000, "WRITE-IN", 1)]
    numbers = sorted(d["bcbi_businesscentrallinenumber"] for d in env.dv.rows("salesorderdetail")
                     if d["salesorderid"] == order)
    assert numbers == [10000, 30000] and env.dv.get("salesorder", order)["statecode"] == 1

    # what bcsync wrote to Business Central does not come back to Sales, nor the other way
    report = env.sync([MAPPING])
    assert job(report, PUSH).counts.modified == 0 and job(report, PULL).counts.modified == 0


def test_a_posted_order_is_archived_and_its_sales_order_invoiced(env):
    two_way(env)
    released, order = pushed(env, [("1000", 1, 100, None)])
    env.bc.post_document("salesOrders", released["id"])
    assert env.bc.rows("salesOrders") == []
    report = env.sync([MAPPING])
    row = env.dv.get("salesorder", order["salesorderid"])
    assert (row["statecode"], row["statuscode"]) == (4, 100003)
    [coupling] = env.couplings(MAPPING)
    assert coupling.bc_values.get("~archived") is True
    # archived: not read, not pushed, not pulled again
    report = env.sync([MAPPING])
    assert job(report, PUSH).counts.modified == 0 and job(report, PULL).counts.inserted == 0
    assert len(env.dv.rows("salesorder")) == 1


def test_an_order_whose_item_has_no_product_fails_naming_the_line(env):
    two_way(env)
    [item] = env.bc.seed("items", [{"number": "2000", "displayName": "Blocked bike", "baseUnitOfMeasureCode": "PCS"}])
    released = bc_order(env, [("2000", 1, 100, None)])
    env.bc.update("items", item, {"blocked": True})  # so ITEM-PRODUCT leaves it out: it has no Sales product
    report = env.sync([MAPPING])
    assert job(report, PUSH).counts.failed == 1
    [error] = [e for e in env.errors() if e.mapping == MAPPING]
    assert f"Business Central sales order {released['number']}: item 2000 on line 10000 is not coupled" in error.message
    assert error.field == "No." and not [o for o in env.dv.rows("salesorder")]



def test_an_order_created_in_one_way_mode_keeps_its_coupling_and_its_lines_after_the_switch(env):
    order, created = created_in_one_way_mode(env)
    assert all(d.get("bcbi_businesscentrallinenumber") is None for d in env.dv.rows("salesorderdetail"))

    env.configure(BCSYNC_SALES_ORDER_MODE="two-way")
    env.bc.act("salesOrders", created["id"], "release")
    report = env.sync([MAPPING])
    assert job(report, PUSH).counts.modified == 1 and job(report, PUSH).counts.inserted == 0
    # the same Sales lines, now paired with their Business Central lines by number
    assert sorted((d["bcbi_businesscentrallinenumber"], d["quantity"]) for d in env.dv.rows("salesorderdetail")
                  if d["salesorderid"] == order) == [(10000, 2), (20000, 3)]
    row = env.dv.get("salesorder", order)
    assert row["bcbi_businesscentralordernumber"] == created["number"] and len(env.dv.rows("salesorder")) == 1


def test_in_the_team_model_an_order_made_in_business_central_belongs_to_the_default_team(env):
    team = team_model(env)
    env.configure(BCSYNC_SALES_ORDER_MODE="two-way")
    env.bc.seed("unitsOfMeasure", [{"code": "PCS", "displayName": "Piece"}])
    env.bc.seed("items", [{"number": "1000", "displayName": "Bicycle", "baseUnitOfMeasureCode": "PCS"}])
    env.bc.seed("customers", [{"number": "10000", "displayName": "Adatum"}])
    env.full_sync()
    released = bc_order(env, [("1000", 1, 100, None)])
    report = env.sync([MAPPING])
    assert job(report, PUSH).counts.inserted == 1, env.errors()
    order = sales_order_of(env, released)
    assert order["ownerid"] == team and order["owningteam"] == team


def test_an_update_from_sales_that_cannot_be_made_is_an_error_naming_the_order_and_field_and_leaves_bc_as_it_was(env):
    two_way(env)
    order, created = created_and_released(env, [product_line(env, "1000", 2, 95)])
    before = env.bc.get("salesOrders", created["id"])

    user = env.stack.ids.user_systemuser_id
    env.dv.update("salesorder", order, {"statecode": 0, "statuscode": 1}, as_user=user)
    kit = active_product(env, "Gift kit", "KIT-1", 2)  # neither Sales Inventory nor Services
    env.dv.seed("salesorderdetail", [{"salesorderid": order, "productid": kit, "quantity": 1, "priceperunit": 9,
                                      "uomid": product(env, "1000")["defaultuomid"]}], as_user=user)
    env.dv.update("salesorder", order, {"statecode": 1, "statuscode": 3}, as_user=user)
    report = env.sync([MAPPING])
    assert job(report, PULL).counts.failed == 1
    [error] = [e for e in env.errors() if e.mapping == MAPPING]
    assert error.message.startswith("Sales order ") and "Product KIT-1 on line 2" in error.message
    assert error.field == "producttypecode"
    after = env.bc.get("salesOrders", created["id"])
    assert (after["status"], after["lastModifiedDateTime"]) == ("Open", before["lastModifiedDateTime"])


def test_an_order_bcsync_reopened_is_released_again_once_its_update_passes(env):
    two_way(env)
    env.bc.seed("customers", [{"number": "20000", "displayName": "Fabrikam"}])
    env.full_sync(["CUSTOMER"])
    order, created = created_and_released(env, [product_line(env, "1000", 2, 95)])
    [fabrikam] = [c for c in env.bc.rows("customers") if c["number"] == "20000"]
    env.bc.update("customers", fabrikam["id"], {"blocked": "All"})

    # the order moves to the blocked customer: Business Central refuses the header after the order was reopened
    user = env.stack.ids.user_systemuser_id
    env.dv.update("salesorder", order, {"statecode": 0, "statuscode": 1}, as_user=user)
    account = next(a["accountid"] for a in env.dv.rows("account") if a["name"] == "Fabrikam")
    env.dv.update("salesorder", order, {"customerid": account}, as_user=user)
    env.dv.update("salesorder", order, {"statecode": 1, "statuscode": 3}, as_user=user)
    report = env.sync([MAPPING])
    assert job(report, PULL).counts.failed == 1
    [error] = [e for e in env.errors() if e.mapping == MAPPING]
    assert f"Business Central sales order {created['number']} could not be updated (header)" in error.message
    assert env.bc.get("salesOrders", created["id"])["status"] == "Draft"

    # unblocked: the retry writes it and releases the order bcsync reopened
    env.bc.update("customers", fabrikam["id"], {"blocked": " "})
    report = env.sync([MAPPING])
    assert job(report, PULL).counts.modified == 1 and [e for e in env.errors() if e.mapping == MAPPING] == []
    after = env.bc.get("salesOrders", created["id"])
    assert (after["status"], after["customerNumber"]) == ("Open", "20000")


def test_a_push_keeps_the_sales_orders_name_the_business_central_orders_external_document_no(env):
    two_way(env)
    order = submitted_order(env, [product_line(env, "1000", 2, 95)])
    env.sync([MAPPING])
    [created] = env.bc.rows("salesOrders")
    assert created["externalDocumentNumber"] == "PO 4711"
    env.bc.act("salesOrders", created["id"], "release")
    report = env.sync([MAPPING])
    assert job(report, PUSH).counts.modified == 1
    assert env.dv.get("salesorder", order)["name"] == "PO 4711"  # not the customer's name

    # the next edit in Sales writes the customer's reference back unchanged
    user = env.stack.ids.user_systemuser_id
    env.dv.update("salesorder", order, {"statecode": 0, "statuscode": 1}, as_user=user)
    env.dv.update("salesorder", order, {"requestdeliveryby": "2026-12-20"}, as_user=user)
    env.dv.update("salesorder", order, {"statecode": 1, "statuscode": 3}, as_user=user)
    report = env.sync([MAPPING])
    assert job(report, PULL).counts.modified == 1, env.errors()
    assert env.bc.get("salesOrders", created["id"])["externalDocumentNumber"] == "PO 4711"


def test_the_error_of_an_order_that_failed_and_was_deleted_in_business_central_is_cleared(env):
    two_way(env)
    [item] = env.bc.seed("items", [{"number": "2000", "displayName": "Blocked bike", "baseUnitOfMeasureCode": "PCS"}])
    released = bc_order(env, [("2000", 1, 100, None)])
    env.bc.update("items", item, {"blocked": True})
    report = env.sync([MAPPING])
    assert job(report, PUSH).counts.failed == 1 and [e for e in env.errors() if e.mapping == MAPPING]
    env.bc.act("salesOrders", released["id"], "reopen")
    env.bc.delete("salesOrders", released["id"])
    report = env.sync([MAPPING])
    assert job(report, PUSH).counts.failed == 0 and [e for e in env.errors() if e.mapping == MAPPING] == []


def test_a_pushed_order_whose_sales_order_was_deleted_is_a_deletion_conflict(env):
    two_way(env)
    released, order = pushed(env, [("1000", 1, 100, None)])
    env.dv.delete("salesorder", order["salesorderid"])
    env.bc.act("salesOrders", released["id"], "reopen")
    env.bc.update("salesOrders", released["id"], {"requestedDeliveryDate": "2026-12-24"})
    env.bc.act("salesOrders", released["id"], "release")
    report = env.sync([MAPPING])
    assert (job(report, PUSH).counts.failed, job(report, PUSH).counts.modified) == (1, 0)
    [error] = [e for e in env.errors() if e.mapping == MAPPING]
    assert error.code == "DeletionConflict" and error.field == "salesorderid"
    assert f"Business Central sales order {released['number']} cannot be pushed" in error.message

    # restore: the order is made again in Sales
    env.services.set_mapping(MAPPING, {"deletion_conflict": "restore"})
    report = env.sync([MAPPING])
    assert job(report, PUSH).counts.inserted == 1 and [e for e in env.errors() if e.mapping == MAPPING] == []
    assert str(sales_order_of(env, released)["requestdeliveryby"])[:10] == "2026-12-24"


def _changed_in_sales(env, order, quantity):
    """A salesperson re-opens the order, changes its first line's quantity and submits it again."""
    user = env.stack.ids.user_systemuser_id
    env.dv.update("salesorder", order, {"statecode": 0, "statuscode": 1}, as_user=user)
    [line] = [d["salesorderdetailid"] for d in env.dv.rows("salesorderdetail") if d["salesorderid"] == order]
    env.dv.update("salesorderdetail", line, {"quantity": quantity}, as_user=user)
    env.dv.update("salesorder", order, {"statecode": 1, "statuscode": 3}, as_user=user)


def _bc_quantity(env, bc_id):
    return [x["quantity"] for x in env.bc.rows("salesOrderLines") if x["documentId"] == bc_id
            and x["lineType"] == "Item"]


def test_an_order_a_business_central_user_reopened_and_changed_is_an_update_conflict_for_a_sales_change(env):
    two_way(env)
    order, created = created_and_released(env, [product_line(env, "1000", 2, 95)])

    # a Business Central user reopens the order and adds a line (not released: nothing is pushed), a Sales user
    # changes the quantity
    env.bc.act("salesOrders", created["id"], "reopen")
    env.bc.seed("salesOrderLines", [{"documentId": created["id"], "lineType": "Item", "lineObjectNumber": "1000",
                                     "quantity": 7}])
    _changed_in_sales(env, order, 4)
    report = env.sync([MAPPING])
    assert job(report, PULL).counts.failed == 1 and job(report, PULL).counts.modified == 0
    [error] = [e for e in env.errors() if e.mapping == MAPPING]
    assert error.code == "UpdateConflict" and error.field == "salesorderid"
    assert f"Business Central sales order {created['number']} and its Sales order" in error.message
    assert sorted(_bc_quantity(env, created["id"])) == [2, 7]  # the Business Central user's line stays

    # Sales wins
    env.services.set_mapping(MAPPING, {"update_conflict": "get-from-crm"})
    report = env.sync([MAPPING])
    assert job(report, PULL).counts.modified == 1 and [e for e in env.errors() if e.mapping == MAPPING] == []
    assert _bc_quantity(env, created["id"]) == [4]


def test_orders_changed_on_both_sides_are_an_update_conflict_that_the_resolution_settles(env):
    two_way(env)
    order, created = created_and_released(env, [product_line(env, "1000", 2, 95)])

    # changed and released in Business Central, changed and submitted in Sales
    env.bc.act("salesOrders", created["id"], "reopen")
    [bc_line] = [x["id"] for x in env.bc.rows("salesOrderLines") if x["documentId"] == created["id"]]
    env.bc.update("salesOrderLines", bc_line, {"quantity": 9})
    env.bc.act("salesOrders", created["id"], "release")
    _changed_in_sales(env, order, 4)
    report = env.sync([MAPPING])
    assert (job(report, PUSH).counts.failed, job(report, PUSH).counts.modified) == (1, 0)
    assert {e.code for e in env.errors() if e.mapping == MAPPING} == {"UpdateConflict"}
    assert _bc_quantity(env, created["id"]) == [9]
    assert [d["quantity"] for d in env.dv.rows("salesorderdetail") if d["salesorderid"] == order] == [4]

    # Business Central wins: pushed over the Sales change, which is not written to Business Central
    env.services.set_mapping(MAPPING, {"update_conflict": "send-to-crm"})
    report = env.sync([MAPPING])
    assert job(report, PUSH).counts.modified == 1 and [e for e in env.errors() if e.mapping == MAPPING] == []
    assert [d["quantity"] for d in env.dv.rows("salesorderdetail") if d["salesorderid"] == order] == [9]
    assert _bc_quantity(env, created["id"]) == [9]
    report = env.sync([MAPPING])
    assert job(report, PUSH).counts.modified == 0 and job(report, PULL).counts.modified == 0


def test_a_sales_order_made_in_one_way_mode_and_changed_pairs_its_lines_by_product(env):
    order, created = created_in_one_way_mode(env)
    before = {x["lineObjectNumber"]: x["id"] for x in env.bc.rows("salesOrderLines")
              if x["documentId"] == created["id"]}

    # switched to two-way before the order was ever pushed: a Sales user raises the bicycles
    env.configure(BCSYNC_SALES_ORDER_MODE="two-way")
    user = env.stack.ids.user_systemuser_id
    env.dv.update("salesorder", order, {"statecode": 0, "statuscode": 1}, as_user=user)
    [bikes] = [d["salesorderdetailid"] for d in env.dv.rows("salesorderdetail")
               if d["salesorderid"] == order and d["quantity"] == 2]
    env.dv.update("salesorderdetail", bikes, {"quantity": 4}, as_user=user)
    env.dv.update("salesorder", order, {"statecode": 1, "statuscode": 3}, as_user=user)
    report = env.sync([MAPPING])
    assert job(report, PULL).counts.modified == 1, env.errors()
    after = {x["lineObjectNumber"]: (x["id"], x["sequence"], x["quantity"]) for x in env.bc.rows("salesOrderLines")
             if x["documentId"] == created["id"]}
    # the same Business Central lines, changed in place (a shipped line could not be deleted and added again)
    assert after == {"1000": (before["1000"], 10000, 4), "R0010": (before["R0010"], 20000, 3)}
    assert sorted((d["bcbi_businesscentrallinenumber"], d["quantity"]) for d in env.dv.rows("salesorderdetail")
                  if d["salesorderid"] == order) == [(10000, 4), (20000, 3)]


def test_a_dry_run_reports_the_lines_an_update_deletes_and_why_and_the_reopen_and_release(env):
    two_way(env)
    order, created = created_and_released(env, [product_line(env, "1000", 2, 95), product_line(env, "R0010", 3, 80)])
    user = env.stack.ids.user_systemuser_id
    env.dv.update("salesorder", order, {"statecode": 0, "statuscode": 1}, as_user=user)
    [install] = [d["salesorderdetailid"] for d in env.dv.rows("salesorderdetail")
                 if d["salesorderid"] == order and d["bcbi_businesscentrallinenumber"] == 20000]
    env.dv.delete("salesorderdetail", install)
    env.dv.update("salesorder", order, {"statecode": 1, "statuscode": 3}, as_user=user)
    [gone] = [x["id"] for x in env.bc.rows("salesOrderLines") if x["documentId"] == created["id"]
              and x["sequence"] == 20000]

    dry = _dry(env, RunKind.SCHEDULED, [MAPPING]).to_dict()["dry_run_report"][PULL]
    records = [(r["kind"], r["record"], r.get("reason")) for r in dry["records"] if r["kind"] in ("delete", "action")]
    assert records == [("delete", f"Sales Line {gone}", "its Sales order line is gone or now sells something else"),
                       ("action", f"Sales Order {created['number']}", "Reopen"),
                       ("action", f"Sales Order {created['number']}", "Release")]
    assert dry["counts"]["action"] == 2
    assert env.bc.get("salesOrders", created["id"])["status"] == "Open"  # nothing was done


def test_a_line_changed_in_business_central_meanwhile_fails_that_order_only_and_the_next_run_writes_it(env):
    two_way(env)
    order, created = created_and_released(env, [product_line(env, "1000", 2, 95)])
    user = env.stack.ids.user_systemuser_id
    env.dv.update("salesorder", order, {"statecode": 0, "statuscode": 1}, as_user=user)
    [line] = [d for d in env.dv.rows("salesorderdetail") if d["salesorderid"] == order]
    env.dv.update("salesorderdetail", line["salesorderdetailid"], {"quantity": 4}, as_user=user)
    env.dv.update("salesorder", order, {"statecode": 1, "statuscode": 3}, as_user=user)

    endpoint = env.services.engine.endpoint(Side.BC)
    real = endpoint.update

    def changed_meanwhile(table, changes, fields):
        if table.entity_set == "salesOrderLines":
            return [WriteResult(error=ConcurrencyError("The line changed since it was read.")) for _ in changes]
        return real(table, changes, fields)

    endpoint.update = changed_meanwhile
    try:
        report = env.sync([MAPPING])
    finally:
        endpoint.update = real
    # the order's error, not the job's: the job goes on and the next run writes the order
    assert job(report, PULL).status.value == "done" and job(report, PULL).counts.failed == 1
    [error] = [e for e in env.errors() if e.mapping == MAPPING]
    assert "could not be updated (lines changed)" in error.message
    report = env.sync([MAPPING])
    assert job(report, PULL).counts.modified == 1 and [e for e in env.errors() if e.mapping == MAPPING] == []
    [bc_line] = [x for x in env.bc.rows("salesOrderLines") if x["documentId"] == created["id"]]
    assert bc_line["quantity"] == 4 and env.bc.get("salesOrders", created["id"])["status"] == "Open"
