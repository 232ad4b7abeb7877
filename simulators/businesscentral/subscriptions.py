"""Webhook subscriptions (`{root}/api/v2.0/subscriptions`, not company-scoped) and the notifications they send.

- Create (POST) and renew (PATCH with If-Match) first POST the validation handshake to
  `notificationUrl?validationToken=<token>` over real HTTP; anything but 200 with the token as the body refuses
  the request (400 `BadRequest`, the subscription is neither created nor renewed). A subscription lives three days.
- Every create, update and delete of a row of a subscribed entity set in the subscription's company is queued for
  it, one entry per row: a row changed again within the window keeps one entry (created stays created until it is
  deleted; otherwise the latest change). Once the coalescing delay after its first queued change has passed, what
  is due is POSTed to each notification URL as `{"value": [...]}` (with what the other subscriptions of that URL
  have queued); more than 1,000 rows of one subscription become one `collection` entry naming the entity set
  filtered on lastModifiedDateTime.
- Delivery: 2xx done; 408, 429, 5xx or no answer retried every `retry_interval` until `retry_period` (BC's 36 hours)
  has passed since the first failure, then dropped; any other status deletes the subscriptions of that POST.
- A subscription past its expirationDateTime gets no notifications and is gone from the list.

The time is the simulator's (`BusinessCentralSimulator.now`, which tests move on with `advance`); a background
thread delivers what is due, and `deliver_due()` does it at once for tests.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import re
import secrets
import threading
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import quote

import requests

from . import errors
from .model import format_datetime

if TYPE_CHECKING:
    from .service import Call, Reply
    from .simulator import BusinessCentralSimulator

log = logging.getLogger(__name__)

# the API v2.0 entity sets Microsoft documents as taking subscriptions (contacts and opportunities do not)
SUPPORTED = frozenset({
    "accounts", "companyInformation", "countriesRegions", "currencies", "customerPaymentJournals", "customers",
    "dimensions", "employees", "generalLedgerEntries", "itemCategories", "items", "journals", "paymentMethods",
    "paymentTerms", "purchaseInvoices", "salesCreditMemos", "salesInvoices", "salesOrders", "salesQuotes",
    "shipmentMethods", "unitsOfMeasure", "vendors",
})
MAX_SUBSCRIPTIONS = 200
LIFETIME = dt.timedelta(days=3)
COLLECTION_AFTER = 1000  # rows changed for one subscription in one window; more become one collection entry
DELAY = 30.0  # seconds from a subscription's first queued change to its notification
RETRY_INTERVAL = 300.0  # seconds between attempts at a notification the subscriber answered 408, 429 or 5xx
RETRY_PERIOD = dt.timedelta(hours=36)
HANDSHAKE_TIMEOUT = 10.0
_RESOURCE = re.compile(r"^/?api/v2\.0/companies\(\{?([0-9A-Fa-f-]{36})\}?\)/([A-Za-z]+)$")


@dataclass
class Subscription:
    subscription_id: str
    notification_url: str
    resource: str
    client_state: str
    company_id: str
    entity_set: str
    table: str  # the table behind the entity set, whose writes it is told of
    user_id: str
    created: dt.datetime
    modified: dt.datetime
    expires: dt.datetime
    timestamp: int

    def etag(self) -> str:
        inner = f"'{self.timestamp};{self.subscription_id};'"
        return 'W/"' + base64.b64encode(inner.encode()).decode() + '"'

    def wire(self) -> dict:
        return {"@odata.etag": self.etag(), "subscriptionId": self.subscription_id,
                "notificationUrl": self.notification_url, "resource": self.resource, "userId": self.user_id,
                "lastModifiedDateTime": format_datetime(self.modified), "clientState": self.client_state,
                "expirationDateTime": format_datetime(self.expires), "timestamp": self.timestamp,
                "systemCreatedAt": format_datetime(self.created), "systemCreatedBy": self.user_id,
                "systemModifiedAt": format_datetime(self.modified), "systemModifiedBy": self.user_id}


@dataclass
class Pending:
    """The changes queued for one subscription: row id -> (changeType, lastModifiedDateTime), oldest row first."""

    due: dt.datetime
    changes: dict[str, tuple[str, dt.datetime]] = field(default_factory=dict)
    failing_since: dt.datetime | None = None

    def add(self, change: str, row_id: str, modified: dt.datetime) -> None:
        """One entry per row: a row created within the window is told as created (unless deleted since)."""
        earlier = self.changes.get(row_id)
        if earlier is not None and earlier[0] == "created" and change == "updated":
            change = "created"
        self.changes[row_id] = (change, modified)


class Subscriptions:
    def __init__(self, sim: "BusinessCentralSimulator"):
        self.sim = sim
        self.lock = threading.RLock()
        self.wake = threading.Condition(self.lock)
        self.items: dict[str, Subscription] = {}
        self.pending: dict[str, Pending] = {}
        self.delivered: list[dict] = []  # every notification POSTed: {"url", "status", "body"} (for tests)
        self.in_flight = 0  # POSTs taken from the queue and not answered yet (kept across clear(): they still end)
        self.http = requests.Session()
        self.http.trust_env = False  # straight to the subscriber, as BC does, whatever proxy this machine has
        self._thread: threading.Thread | None = None
        self.clear()
        sim.store.listeners.append(self._changed)

    def clear(self) -> None:
        """No subscriptions, nothing queued, the documented timings."""
        with self.lock:
            self.items.clear()
            self.pending.clear()
            self.delivered.clear()
            self.delay, self.retry_interval, self.retry_period = DELAY, RETRY_INTERVAL, RETRY_PERIOD
            self.collection_after = COLLECTION_AFTER
            self.automatic = True  # False: only deliver_due() delivers (a test that steps through retries)

    def configure(self, *, delay: float | None = None, retry_interval: float | None = None,
                  retry_period: dt.timedelta | None = None, automatic: bool | None = None,
                  collection_after: int | None = None) -> None:
        """`collection_after`: rows changed for one subscription in one window beyond which they become one collection
        entry (Business Central's is 1,000; tests lower it rather than write a thousand rows)."""
        with self.lock:
            self.collection_after = self.collection_after if collection_after is None else int(collection_after)
            self.automatic = self.automatic if automatic is None else automatic
            self.delay = self.delay if delay is None else float(delay)
            self.retry_interval = self.retry_interval if retry_interval is None else float(retry_interval)
            self.retry_period = self.retry_period if retry_period is None else retry_period
            self.wake.notify_all()

    # -- the wire ---------------------------------------------------------------------------------------

    def handle(self, call: "Call", key: str | None, rest: list[str], root: str) -> "Reply":
        from .service import Reply

        if rest:
            raise errors.resource_not_found(rest[0])
        context = f"{root}/$metadata#subscriptions"
        if key is None:
            if call.method == "GET":
                return Reply(200, {"@odata.context": context, "value": [s.wire() for s in self.live()]})
            if call.method == "POST":
                created = self.create(call.json(), call.user)
                return Reply(201, {"@odata.context": context + "/$entity", **created.wire()},
                             {"Location": f"{root}/subscriptions('{created.subscription_id}')"})
            raise errors.method_not_allowed(call.method, "subscriptions", "EntitySet")
        subscription_id = key.strip().strip("'")
        found = self._live(subscription_id)
        if call.method == "GET":
            return Reply(200, {"@odata.context": context + "/$entity", **found.wire()})
        if call.method not in ("PATCH", "DELETE"):
            raise errors.method_not_allowed(call.method, "subscriptions", "Entity")
        self._check_if_match(call, found)
        if call.method == "DELETE":
            with self.lock:
                self.items.pop(subscription_id, None)
                self.pending.pop(subscription_id, None)
            return Reply(204, None, content_type="")
        renewed = self.renew(found, call.json(), call.user)
        return Reply(200, {"@odata.context": context + "/$entity", **renewed.wire()})

    @staticmethod
    def _check_if_match(call: "Call", found: Subscription) -> None:
        header = (call.headers.get("If-Match") or "").strip()
        if not header:
            raise errors.missing_concurrency_token()
        if header != "*" and found.etag() not in [part.strip() for part in header.split(",")]:
            raise errors.entity_changed()

    def create(self, body: dict, user: str) -> Subscription:
        url = _text(body, "notificationUrl", required=True)
        resource = _text(body, "resource", required=True)
        client_state = _text(body, "clientState")
        if len(client_state) > 2048:
            raise errors.bad_request("The length of the string is %d, but it must be less than or equal to 2048 "
                                     "characters. Value: clientState" % len(client_state),
                                     "Application_StringExceededLength")
        company_id, entity_set, table = self._resource(resource)
        subscription_id = _text(body, "subscriptionId") or uuid.uuid4().hex
        with self.lock:
            self._expire()
            if subscription_id in self.items:
                raise errors.BCError(400, "Internal_EntityWithSameKeyExists",
                                     f"The record in table API Webhook Subscription already exists. Identification "
                                     f"fields and values: Subscription Id='{subscription_id}'")
            if len(self.items) >= MAX_SUBSCRIPTIONS:
                raise errors.bad_request(f"You cannot have more than {MAX_SUBSCRIPTIONS} subscriptions.",
                                         "Application_DialogException")
        self._handshake(url)
        now = self.sim.now()
        created = Subscription(subscription_id, url, resource, client_state, company_id, entity_set, table, user, now,
                               now, now + LIFETIME, 1)
        with self.lock:
            self.items[subscription_id] = created
        return created

    def renew(self, found: Subscription, body: dict, user: str) -> Subscription:
        url = _text(body, "notificationUrl") or found.notification_url
        if _text(body, "resource") and self._resource(_text(body, "resource"))[:2] != (found.company_id,
                                                                                      found.entity_set):
            raise errors.bad_request("The resource of a subscription cannot be changed.")
        self._handshake(url)
        now = self.sim.now()
        with self.lock:
            found.notification_url = url
            if "clientState" in body:
                found.client_state = _text(body, "clientState")
            found.user_id, found.modified, found.expires = user, now, now + LIFETIME
            found.timestamp += 1
        return found

    def _resource(self, resource: str) -> tuple[str, str, str]:
        match = _RESOURCE.match(resource.strip())
        if match is None:
            raise errors.bad_request(f"The resource '{resource}' is not valid: give "
                                     f"/api/v2.0/companies(<company id>)/<entity set>.")
        company_id, entity_set = match.group(1).lower(), match.group(2)
        if company_id not in self.sim.store.companies:
            raise errors.company_not_found(company_id)
        view = self.sim.catalog.apis["v2.0"].get(entity_set)
        if entity_set not in SUPPORTED or view is None:
            raise errors.bad_request(f"The entity set '{entity_set}' does not support webhook subscriptions.")
        return company_id, entity_set, view.table.name

    def _handshake(self, url: str) -> None:
        """BC's validation request: the subscriber must answer 200 with the token as the body."""
        token = secrets.token_urlsafe(24)
        target = f"{url}{'&' if '?' in url else '?'}validationToken={quote(token)}"
        try:
            answer = self.http.post(target, timeout=HANDSHAKE_TIMEOUT)
            status, text = answer.status_code, answer.text
        except requests.RequestException as exc:
            raise errors.bad_request(f"The subscription could not be validated: the notification URL '{url}' did "
                                     f"not answer the validation request ({type(exc).__name__}).") from None
        if status != 200 or text.strip() != token:
            what = f"answered {status}" if status != 200 else "did not echo the validationToken"
            raise errors.bad_request(f"The subscription could not be validated: the notification URL '{url}' {what}; "
                                     f"it must answer 200 with the validationToken as the body.")

    def live(self) -> list[Subscription]:
        with self.lock:
            self._expire()
            return list(self.items.values())

    def _live(self, subscription_id: str) -> Subscription:
        with self.lock:
            self._expire()
            found = self.items.get(subscription_id)
        if found is None:
            raise errors.BCError(404, "Internal_RecordNotFound", f"The API Webhook Subscription does not exist. "
                                 f"Identification fields and values: Subscription Id='{subscription_id}'")
        return found

    def _expire(self) -> None:
        now = self.sim.now()
        for gone in [s for s in self.items.values() if s.expires <= now]:
            del self.items[gone.subscription_id]
            self.pending.pop(gone.subscription_id, None)

    # -- notifications ------------------------------------------------------------------------------------

    def _changed(self, change: str, company, table, old: dict | None, new: dict | None) -> None:
        """A store write (under the store's lock): queue it for the live subscriptions of its table and company."""
        if company is None or not self.items:
            return
        row = new or old
        with self.lock:
            now = self.sim.now()
            for subscription in self.items.values():
                if subscription.table != table.name or subscription.company_id != company.id or \
                        subscription.expires <= now:
                    continue
                pending = self.pending.get(subscription.subscription_id)
                if pending is None:
                    pending = self.pending[subscription.subscription_id] = Pending(
                        now + dt.timedelta(seconds=self.delay))
                modified = (new or {}).get("SystemModifiedAt") or now
                pending.add(change, row["SystemId"], modified)
            if self.pending:
                self._start()
                self.wake.notify_all()

    def _start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._deliver_forever, name="bc-webhooks", daemon=True)
            self._thread.start()

    def _deliver_forever(self) -> None:
        while True:
            with self.lock:
                due = [p.due for p in self.pending.values()]
                wait = min(due) - self.sim.now() if due else dt.timedelta(seconds=1)
                if wait > dt.timedelta(0) or not self.automatic:
                    self.wake.wait(min(wait.total_seconds(), 1.0) if self.automatic else 1.0)
                    continue
            try:
                self.deliver_due()
            except Exception:  # the delivery thread must outlive a simulator bug
                log.exception("Business Central simulator failed to deliver notifications")

    def deliver_due(self, everything: bool = False) -> int:
        """POST the notifications that are due (`everything`: all that are queued, due or not) to their URLs;
        returns how many POSTs were made."""
        with self.lock:
            self._expire()
            now = self.sim.now()
            due_urls = {self.items[i].notification_url for i, p in self.pending.items() if everything or p.due <= now}
            batches: dict[str, list[tuple[Subscription, Pending]]] = {}
            for subscription_id, pending in list(self.pending.items()):
                subscription = self.items[subscription_id]
                # what else is queued for a URL that is due goes along, unless it waits for a retry
                if subscription.notification_url in due_urls and (everything or pending.due <= now or
                                                                  pending.failing_since is None):
                    del self.pending[subscription_id]
                    batches.setdefault(subscription.notification_url, []).append((subscription, pending))
            self.in_flight += len(batches)
        for url, due in batches.items():
            body = {"value": [entry for subscription, pending in due for entry in _entries(subscription, pending,
                                                                                       self.collection_after)]}
            self._post(url, body, due)
        return len(batches)

    def _post(self, url: str, body: dict, due: list[tuple[Subscription, Pending]]) -> None:
        try:
            status = self.http.post(url, json=body, timeout=HANDSHAKE_TIMEOUT).status_code
        except requests.RequestException:
            status = 0
        with self.lock:
            self.in_flight -= 1
            self.delivered.append({"url": url, "status": status, "body": body})
            now = self.sim.now()
            if 200 <= status < 300:
                return
            if status in (0, 408, 429) or status >= 500:
                for subscription, pending in due:
                    pending.failing_since = pending.failing_since or now
                    if now - pending.failing_since >= self.retry_period:
                        continue  # BC gives up on it: the changes are never told
                    later = self.pending.pop(subscription.subscription_id, None)
                    for row_id, (change, modified) in (later.changes if later else {}).items():
                        pending.add(change, row_id, modified)
                    pending.due = now + dt.timedelta(seconds=self.retry_interval)
                    if subscription.subscription_id in self.items:
                        self.pending[subscription.subscription_id] = pending
                return
            for subscription, _ in due:  # any other answer: BC deletes the subscription
                self.items.pop(subscription.subscription_id, None)
                self.pending.pop(subscription.subscription_id, None)


def _entries(subscription: Subscription, pending: Pending, collection_after: int) -> list[dict]:
    common = {"subscriptionId": subscription.subscription_id, "clientState": subscription.client_state,
              "expirationDateTime": format_datetime(subscription.expires)}
    collection = f"api/v2.0/companies({subscription.company_id})/{subscription.entity_set}"
    if len(pending.changes) > collection_after:
        since = min(modified for _, modified in pending.changes.values()) - dt.timedelta(milliseconds=10)
        latest = max(modified for _, modified in pending.changes.values())
        return [{**common, "resource": f"{collection}?$filter=lastModifiedDateTime gt {format_datetime(since)}",
                 "changeType": "collection", "lastModifiedDateTime": format_datetime(latest)}]
    return [{**common, "resource": f"{collection}({row_id})", "changeType": change,
             "lastModifiedDateTime": format_datetime(modified)} for row_id, (change, modified) in pending.changes.items()]


def _text(body: dict, name: str, required: bool = False) -> str:
    value = body.get(name)
    if value is None or value == "":
        if required:
            raise errors.bad_request(f"Field '{name}' must not be blank or empty.", "BadRequest_RequiredParamNotProvided")
        return ""
    if not isinstance(value, str):
        raise errors.bad_request(f"Cannot convert the literal '{value}' to the expected type 'Edm.String'.")
    return value
