"""What a coupled order's progress in Business Central posts on its Sales order (sync.order_progress)."""

from __future__ import annotations

from sync.order_progress import Post, bc_date, order_posts
from sync.ports import Coupling, Record

ORDER = "5f1d2c3b-0000-4000-8000-000000000001"


def coupling(**seen) -> Coupling:
    return Coupling("SALESORDER-ORDER", "bc-1", ORDER, bc_etag="W/\"1\"", bc_values=seen)


def row(etag="W/\"2\"") -> Record:
    return Record("bc-1", {}, etag)


def texts(posts: list[Post]) -> list[str]:
    return [p.text for p in posts]


def test_a_release_a_shipment_and_an_invoice_each_post_once():
    now = {"status": "Open", "lastShippingNumber": "108001", "lastPostingNumber": "103001"}
    assert texts(order_posts(coupling(status="Draft"), row(), now)) == [
        "The order was released in Business Central.",
        "Business Central posted shipment 108001 for the order.",
        "Business Central posted invoice 103001 for the order."]
    assert order_posts(coupling(**now), row(), now) == []          # seen already: nothing new


def test_an_order_not_seen_yet_posts_only_what_happened_to_it():
    assert order_posts(coupling(), row(), {"status": "Draft", "lastShippingNumber": "", "lastPostingNumber": None}) \
        == []
    assert texts(order_posts(coupling(), row(), {"status": "Open"})) == ["The order was released in Business Central."]


def test_the_same_event_gives_the_same_post_id_and_another_event_another():
    first = order_posts(coupling(status="Draft"), row(), {"status": "Open"})[0].new_row()
    again = order_posts(coupling(status="Draft"), row(), {"status": "Open"})[0].new_row()
    later = order_posts(coupling(status="Draft"), row("W/\"9\""), {"status": "Open"})[0].new_row()
    assert first.id == again.id != later.id
    assert first.values == {"text": "The order was released in Business Central.", "source": 1, "type": 7,
                            "regardingobjectid_salesorder": ORDER}


def test_business_centrals_blank_date_is_no_date():
    assert bc_date("0001-01-01") is None and bc_date(None) is None and bc_date("") is None
    assert bc_date("2026-12-03") == "2026-12-03"
