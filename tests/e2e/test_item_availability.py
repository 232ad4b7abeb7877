"""Item availability and prices in Sales, end to end: inventory of Business Central items reaches the
products on the ITEM-AVAILABILITY schedule and on request (CLI and HTTP); prices follow items."""

from __future__ import annotations

import json

import azure.functions as func

import function_app

from .conftest import job


def seed(env):
    env.bc.seed("unitsOfMeasure", [{"code": "PCS", "displayName": "Piece"}])
    env.bc.seed("items", [
        {"number": "1000", "displayName": "Bicycle", "baseUnitOfMeasureCode": "PCS", "unitPrice": 400, "inventory": 12},
        {"number": "1100", "displayName": "Front Wheel", "baseUnitOfMeasureCode": "PCS", "unitPrice": 60,
         "inventory": -3}])
    env.full_sync()
    return {p["productnumber"]: p for p in env.dv.rows("product")}


def on_hand(env, number):
    return next(p["quantityonhand"] for p in env.dv.rows("product") if p["productnumber"] == number)


def test_inventory_posted_in_business_central_reaches_sales_on_the_item_availability_schedule(env):
    seed(env)
    assert (on_hand(env, "1000"), on_hand(env, "1100")) == (12, 0)       # Sales keeps no negative stock

    # posting adds item ledger entries and leaves the item itself unchanged, so ITEM-PRODUCT sees nothing
    env.bc.post_item_ledger("1000", -5)
    assert job(env.sync(["ITEM-PRODUCT"]), "ITEM-PRODUCT:to-crm").counts.modified == 0
    assert on_hand(env, "1000") == 12

    first = job(env.sync(["ITEM-AVAILABILITY"]), "ITEM-AVAILABILITY:to-crm")
    assert (first.counts.modified, first.counts.unchanged) == (1, 1)     # its first run looks at every coupled item
    assert on_hand(env, "1000") == 7

    env.bc.post_item_ledger("1100", 10)
    later = job(env.sync(["ITEM-AVAILABILITY"]), "ITEM-AVAILABILITY:to-crm")
    assert later.counts.modified == 1 and on_hand(env, "1100") == 7


def test_an_inventory_sales_refused_is_an_error_written_again_at_the_next_run(env):
    seed(env)
    env.sync(["ITEM-AVAILABILITY"])
    env.bc.post_item_ledger("1000", 8)
    # one product's update, inside the $batch that carries a small update
    env.stack.dataverse.faults.fail(400, times=1, methods=("PATCH",), path_contains="/products(",
                                    body={"error": {"code": "0x80040265", "message": "A plug-in refused it."}})
    first = job(env.sync(["ITEM-AVAILABILITY"]), "ITEM-AVAILABILITY:to-crm")
    assert first.counts.failed == 1 and on_hand(env, "1000") == 12
    [failure] = [f for f in env.errors() if f.mapping == "ITEM-AVAILABILITY"]
    assert failure.record == "Item 1000" and "plug-in refused" in failure.message

    again = job(env.sync(["ITEM-AVAILABILITY"]), "ITEM-AVAILABILITY:to-crm")   # no new entries: the error is the work
    assert again.counts.modified == 1 and on_hand(env, "1000") == 20
    assert [f for f in env.errors() if f.mapping == "ITEM-AVAILABILITY"] == []


def test_a_sales_user_asks_for_the_inventory_of_a_product_by_id_or_number(env, cli, monkeypatch):
    products = seed(env)
    env.bc.post_item_ledger("1000", 3)
    code, out, _ = cli("availability", "1000", "--json")
    assert code == 0
    assert json.loads(out) == {"product_id": products["1000"]["productid"], "product_number": "1000",
                               "item_no": "1000", "unit": "PCS", "inventory": 15}

    monkeypatch.setattr(function_app, "_services", env.services)
    call = function_app.item_availability.build().get_user_function()

    def ask(product):
        return call(func.HttpRequest("GET", "http://localhost/api/items/availability", params={"product": product},
                                     body=b""))

    answer = ask(products["1100"]["productid"])
    assert answer.status_code == 200 and json.loads(answer.get_body())["inventory"] == 0  # -3 in BC; Sales keeps none below 0
    missing = ask("NO-SUCH")
    assert missing.status_code == 404 and "NO-SUCH" in json.loads(missing.get_body())["error"]
    [loose] = env.dv.seed("product", [{"name": "Bell", "productnumber": "BELL", "producttypecode": 1}],
                          as_user=env.stack.ids.user_systemuser_id)
    not_coupled = ask("BELL")
    assert not_coupled.status_code == 404 and "not coupled" in json.loads(not_coupled.get_body())["error"]
    assert ask("").status_code == 400


def test_a_price_changed_in_business_central_reaches_the_default_price_list_on_the_next_run(env):
    products = seed(env)
    [bike] = [i for i in env.bc.rows("items") if i["number"] == "1000"]
    env.bc.update("items", bike["id"], {"unitPrice": 425})
    env.sync()
    price_items = [p for p in env.dv.rows("productpricelevel") if p["productid"] == products["1000"]["productid"]]
    assert [p["amount"] for p in price_items] == [425]
    assert next(p for p in env.dv.rows("product") if p["productnumber"] == "1000")["price"] == 425
