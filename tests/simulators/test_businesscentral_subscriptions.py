"""Webhook subscriptions of the Business Central simulator: the handshake, renewal, expiry and the notifications it
POSTs over real HTTP to a subscriber."""

from __future__ import annotations

import datetime as dt
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
import test_businesscentral_simulator as base
from test_businesscentral_simulator import error_of, when

env = base.env
bc = base.bc


class Subscriber:
    """A notification URL: echoes the validation handshake (unless told not to) and answers notifications with
    `status`, keeping what it got."""

    def __init__(self):
        self.status = 202
        self.echo = True
        self.posts: list[dict] = []
        self.handshakes = 0
        subscriber = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                token = parse_qs(urlsplit(self.path).query).get("validationToken")
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if token:
                    subscriber.handshakes += 1
                    answer = token[0].encode() if subscriber.echo else b"no"
                    self._answer(200, answer)
                else:
                    subscriber.posts.append(json.loads(body))
                    self._answer(subscriber.status, b"")

            def _answer(self, status, data):
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        self.url = "http://127.0.0.1:%d/hook" % self.server.server_address[1]

    def entries(self) -> list[dict]:
        return [entry for post in self.posts for entry in post["value"]]


@pytest.fixture
def subscriber():
    found = Subscriber()
    yield found
    found.server.shutdown()


def subscribe(env, bc, subscriber, entity_set="customers", **extra):
    body = {"notificationUrl": subscriber.url, "resource": f"/api/v2.0/companies({env.sim.company_id})/{entity_set}",
            "clientState": "secret", **extra}
    return bc.post(f"{env.api}/subscriptions", json=body)


def test_create_does_the_handshake_and_answers_201_with_the_subscription(env, bc, subscriber):
    before = env.sim.now()
    response = subscribe(env, bc, subscriber)
    assert response.status_code == 201, response.text
    created = response.json()
    assert subscriber.handshakes == 1
    assert created["notificationUrl"] == subscriber.url and created["clientState"] == "secret"
    assert created["resource"] == f"/api/v2.0/companies({env.sim.company_id})/customers"
    assert created["userId"] == env.sim.user_id_for(env.client.client_id)
    expires = when(created["expirationDateTime"]) - before
    assert dt.timedelta(days=3) <= expires < dt.timedelta(days=3, minutes=1)
    assert isinstance(created["timestamp"], int) and created["@odata.etag"].startswith('W/"')

    listed = bc.get(f"{env.api}/subscriptions").json()["value"]
    assert [s["subscriptionId"] for s in listed] == [created["subscriptionId"]]
    one = bc.get(f"{env.api}/subscriptions('{created['subscriptionId']}')").json()
    assert one["subscriptionId"] == created["subscriptionId"]
    # a client-supplied id is kept
    assert subscribe(env, bc, subscriber, "items", subscriptionId="mine").json()["subscriptionId"] == "mine"


def test_a_refused_handshake_creates_nothing(env, bc, subscriber):
    subscriber.echo = False
    status, code, message = error_of(subscribe(env, bc, subscriber))
    assert (status, code) == (400, "BadRequest") and "validationToken" in message
    assert bc.get(f"{env.api}/subscriptions").json()["value"] == []


def test_unsupported_or_unknown_resources_are_refused(env, bc, subscriber):
    assert error_of(subscribe(env, bc, subscriber, "contacts"))[0] == 400
    assert error_of(subscribe(env, bc, subscriber, "nosuch"))[0] == 400
    wrong = {"notificationUrl": subscriber.url, "resource": "/api/v2.0/companies(%s)/customers" % ("1" * 8 + "-1111-1111-1111-" + "1" * 12)}
    assert bc.post(f"{env.api}/subscriptions", json=wrong).status_code in (400, 404)
    assert subscriber.handshakes == 0


def test_renew_needs_if_match_repeats_the_handshake_and_moves_the_expiry(env, bc, subscriber):
    created = subscribe(env, bc, subscriber).json()
    item = f"{env.api}/subscriptions('{created['subscriptionId']}')"
    assert error_of(bc.patch(item, json={}))[1] == "BadRequest_InvalidToken"
    env.sim.advance(dt.timedelta(days=2))
    renewed = bc.patch(item, json={"clientState": "new"}, headers={"If-Match": created["@odata.etag"]})
    assert renewed.status_code == 200, renewed.text
    assert subscriber.handshakes == 2 and renewed.json()["clientState"] == "new"
    assert when(renewed.json()["expirationDateTime"]) > when(created["expirationDateTime"]) + dt.timedelta(days=1)
    # the etag moved on: the old one is stale
    assert bc.patch(item, json={}, headers={"If-Match": created["@odata.etag"]}).status_code == 409
    subscriber.echo = False
    assert bc.patch(item, json={}, headers={"If-Match": "*"}).status_code == 400
    assert error_of(bc.delete(item))[1] == "BadRequest_InvalidToken"  # a DELETE needs If-Match too
    assert bc.delete(item, headers={"If-Match": "*"}).status_code == 204
    assert bc.get(item).status_code == 404


def test_an_expired_subscription_is_gone_and_notifies_nothing(env, bc, subscriber):
    subscribe(env, bc, subscriber)
    env.sim.advance(dt.timedelta(days=3, seconds=1))
    assert bc.get(f"{env.api}/subscriptions").json()["value"] == []
    env.sim.create("customers", {"displayName": "Late"})
    env.sim.subscriptions.deliver_due(everything=True)
    assert subscriber.posts == []


def test_changes_are_coalesced_and_posted_per_row_with_the_documented_shape(env, bc, subscriber):
    env.sim.subscriptions.configure(delay=30, automatic=False)  # deliveries only when this test asks
    [kept] = env.sim.seed("customers", [{"displayName": "Fabrikam"}])  # before the subscription: not told
    customers = subscribe(env, bc, subscriber).json()
    items = subscribe(env, bc, subscriber, "items").json()
    created = bc.post(f"{env.company}/customers", json={"displayName": "Adatum"}).json()
    bc.patch(f"{env.company}/customers({created['id']})", json={"displayName": "Adatum Corp"},
             headers={"If-Match": "*"})
    for name in ("Fabrikam Inc.", "Fabrikam Ltd."):
        env.sim.update("customers", kept, {"displayName": name})
    gone = env.sim.create("customers", {"displayName": "Gone"})
    env.sim.delete("customers", gone)
    item = env.sim.create("items", {"displayName": "Bike"})
    env.sim.create("contacts", {"displayName": "Not subscribed"})
    env.sim.advance(dt.timedelta(seconds=29))
    assert env.sim.subscriptions.deliver_due() == 0 and subscriber.posts == []  # nothing before the coalescing delay
    env.sim.advance(dt.timedelta(seconds=1))
    assert env.sim.subscriptions.deliver_due() == 1
    assert len(subscriber.posts) == 1  # both subscriptions' entries in one POST to their shared URL
    entries = subscriber.entries()
    company = f"api/v2.0/companies({env.sim.company_id})"
    # one entry per row changed in the window: created then updated is created, created then deleted is deleted
    assert [(e["subscriptionId"], e["changeType"], e["resource"]) for e in entries] == [
        (customers["subscriptionId"], "created", f"{company}/customers({created['id']})"),
        (customers["subscriptionId"], "updated", f"{company}/customers({kept})"),
        (customers["subscriptionId"], "deleted", f"{company}/customers({gone})"),
        (items["subscriptionId"], "created", f"{company}/items({item})")]
    assert all(e["clientState"] == "secret" and when(e["expirationDateTime"]) and when(e["lastModifiedDateTime"])
               for e in entries)


def test_more_than_a_thousand_rows_become_one_collection_entry_not_a_thousand_changes_of_one(env, bc, subscriber):
    subscribe(env, bc, subscriber, "currencies")
    [code] = env.sim.seed("currencies", [{"code": "ONE", "displayName": "0"}])
    for n in range(1, 1002):
        env.sim.update("currencies", code, {"displayName": str(n)})
    env.sim.subscriptions.deliver_due(everything=True)
    assert [(e["changeType"], e["resource"].endswith(f"currencies({code})")) for e in subscriber.entries()] == [
        ("created", True)]

    env.sim.seed("currencies", [{"code": f"C{n:04d}", "displayName": str(n)} for n in range(1001)])
    env.sim.subscriptions.deliver_due(everything=True)
    entry = subscriber.entries()[-1]
    assert entry["changeType"] == "collection"
    url, query = entry["resource"].split("?")
    assert url == f"api/v2.0/companies({env.sim.company_id})/currencies"
    since = query.removeprefix("$filter=lastModifiedDateTime gt ")
    changed = bc.get(f"{env.company}/currencies", params={"$filter": f"lastModifiedDateTime gt {since}"}).json()
    assert {row["code"] for row in changed["value"]} >= {f"C{n:04d}" for n in range(1001)}


def test_a_lowered_collection_threshold_turns_a_few_changes_into_a_collection(env, bc, subscriber):
    subscribe(env, bc, subscriber, "currencies")
    env.sim.subscriptions.configure(collection_after=2)
    env.sim.seed("currencies", [{"code": f"C{n}", "displayName": str(n)} for n in range(2)])
    env.sim.subscriptions.deliver_due(everything=True)
    assert [e["changeType"] for e in subscriber.entries()] == ["created", "created"]  # not beyond the threshold
    env.sim.seed("currencies", [{"code": f"D{n}", "displayName": str(n)} for n in range(3)])
    env.sim.subscriptions.deliver_due(everything=True)
    assert [e["changeType"] for e in subscriber.entries()][2:] == ["collection"]


def test_failed_deliveries_are_retried_or_delete_the_subscription(env, bc, subscriber):
    env.sim.subscriptions.configure(delay=0, retry_interval=60, retry_period=dt.timedelta(hours=36),
                                    automatic=False)  # deliveries only when this test asks
    subscribe(env, bc, subscriber)
    subscriber.status = 503
    env.sim.create("customers", {"displayName": "One"})
    env.sim.subscriptions.deliver_due()
    assert len(subscriber.posts) == 1
    env.sim.create("customers", {"displayName": "Two"})
    assert env.sim.subscriptions.deliver_due() == 0  # not before the retry interval
    env.sim.advance(dt.timedelta(seconds=61))
    subscriber.status = 200
    env.sim.subscriptions.deliver_due()
    assert [len(p["value"]) for p in subscriber.posts] == [1, 2]  # the retry carries what came since

    subscriber.status = 400  # any other failure: BC deletes the subscription
    env.sim.create("customers", {"displayName": "Three"})
    env.sim.subscriptions.deliver_due()
    assert bc.get(f"{env.api}/subscriptions").json()["value"] == []


def test_a_subscriber_down_for_longer_than_the_retry_period_loses_the_notification(env, bc, subscriber):
    env.sim.subscriptions.configure(delay=0, retry_interval=3600, retry_period=dt.timedelta(hours=36),
                                    automatic=False)
    subscribe(env, bc, subscriber)
    subscriber.status = 500
    env.sim.create("customers", {"displayName": "One"})
    for _ in range(38):
        env.sim.subscriptions.deliver_due()
        env.sim.advance(dt.timedelta(hours=1))
    posts = len(subscriber.posts)
    # hourly from the first failure: attempts at 0 h, 1 h, ... 36 h; the one at 36 h reaches the retry period and
    # is the last
    assert posts == 37
    env.sim.subscriptions.deliver_due(everything=True)
    assert len(subscriber.posts) == posts  # given up
    assert len(bc.get(f"{env.api}/subscriptions").json()["value"]) == 1  # only the notification is lost
