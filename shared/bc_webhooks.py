"""Business Central webhook subscriptions of one company, kept as bcsync wants them (sync.notifications.Registrar).

A subscription names one entity set of one company (`/api/v2.0/companies(<id>)/<set>`) and the receiver's URL, and
carries the receivers' key as its clientState, which Business Central sends back with every notification. It lives
three days: `register` renews the ones that expire within a day (and the ones that carry another key, or post to an
earlier URL of the receiver), creates the ones missing (expired, or deleted by Business Central after an answer it
took as final), and removes this URL's subscriptions of entity sets no longer wanted. Subscriptions of other
companies, and other subscribers', are left alone.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Sequence

from sync.errors import ConfigurationError, NotFoundError, SyncError
from sync.model import Side
from sync.notifications import BC_ROUTE, Hook, HookState
from sync.ports import Clock

from .businesscentral import BusinessCentralClient
from .odata import parse_datetime

RENEW_WITHIN = dt.timedelta(days=1)  # the timer ticks far more often; a day leaves room for a service outage
_RESOURCE = re.compile(r"companies\(\{?([0-9A-Fa-f-]{36})\}?\)/([A-Za-z]+)")


class BcSubscriptions:
    side = Side.BC

    def __init__(self, client: BusinessCentralClient, clock: Clock):
        self.client = client
        self.clock = clock

    def register(self, tables: Sequence[str], url: str, key: str) -> list[Hook]:
        """Every entity set in `tables` subscribed with `url` and `key`, expiring no sooner than a day from now."""
        ours = self._ours(lambda posted: posted.rstrip("/").endswith(f"/api/{BC_ROUTE}"))
        hooks = []
        for entity_set in tables:
            # one posting to this URL first; else one posting to an earlier URL of the receiver, moved here
            found = sorted(ours.pop(entity_set, []), key=lambda subscription: subscription["notificationUrl"] != url)
            hooks.append(self._kept(entity_set, found[0], url, key) if found else self._created(entity_set, url, key))
            ours[entity_set] = found[1:]  # a duplicate goes with the entity sets no longer wanted
        for entity_set, extra in ours.items():  # this URL's only: another URL may be another deployment's
            hooks += [self._removed(entity_set, s) for s in extra if s["notificationUrl"] == url]
        return hooks

    def hooks(self, url: str) -> list[Hook]:
        return [_hook(entity_set, subscription, HookState.ACTIVE)
                for entity_set, found in self._ours(lambda posted: posted == url).items() for subscription in found]

    def remove(self, url: str) -> list[Hook]:
        return [self._removed(entity_set, subscription)
                for entity_set, found in self._ours(lambda posted: posted == url).items() for subscription in found]

    def _ours(self, posts_to) -> dict[str, list[dict]]:
        """This company's subscriptions whose notification URL `posts_to` accepts, by entity set."""
        found: dict[str, list[dict]] = {}
        for subscription in self.client.subscriptions():
            match = _RESOURCE.search(str(subscription.get("resource", "")))
            if match and match.group(1).lower() == self.client.company_id.lower() and \
                    posts_to(str(subscription.get("notificationUrl", ""))):
                found.setdefault(match.group(2), []).append(subscription)
        return found

    def _kept(self, entity_set: str, subscription: dict, url: str, key: str) -> Hook:
        expires = parse_datetime(subscription.get("expirationDateTime"))
        current = subscription.get("notificationUrl") == url and subscription.get("clientState") == key
        if current and expires is not None and expires - self.clock.now() > RENEW_WITHIN:
            return _hook(entity_set, subscription, HookState.ACTIVE)
        try:
            return self._answer(entity_set, HookState.RENEWED, url,
                                lambda: self.client.renew_subscription(subscription, url, key))
        except NotFoundError:  # expired or deleted since it was listed
            return self._created(entity_set, url, key)

    def _created(self, entity_set: str, url: str, key: str) -> Hook:
        return self._answer(entity_set, HookState.CREATED, url, lambda: self.client.subscribe(entity_set, url, key))

    def _answer(self, entity_set: str, state: HookState, url: str, send) -> Hook:
        """What Business Central made of a create or renewal: a refused handshake stops the registration (no other
        entity set can fare better), any other refusal is this entity set's failure; transient errors are raised."""
        try:
            return _hook(entity_set, send(), state)
        except SyncError as exc:
            if exc.transient or exc.status not in (400, 422):
                raise
            if _handshake_refused(exc.message):
                raise ConfigurationError(
                    f"Business Central could not validate the notification URL {url}: {exc.message} Business "
                    f"Central POSTs a validationToken to it before it subscribes, so the function app must be "
                    f"reachable there from the internet (BCSYNC_WEBHOOK_URL is its public base URL) and answer "
                    f"the route /api/{BC_ROUTE} anonymously.", code=exc.code) from None
            return Hook(Side.BC, entity_set, "", HookState.FAILED, detail=exc.message)

    def _removed(self, entity_set: str, subscription: dict) -> Hook:
        try:
            self.client.unsubscribe(subscription)
        except NotFoundError:
            pass  # gone already
        return _hook(entity_set, subscription, HookState.REMOVED)


def _handshake_refused(message: str) -> bool:
    text = message.lower()
    return "validat" in text or "notification url" in text or "notificationurl" in text


def _hook(entity_set: str, subscription: dict, state: HookState) -> Hook:
    return Hook(Side.BC, entity_set, str(subscription.get("subscriptionId", "")), state,
                parse_datetime(subscription.get("expirationDateTime")))
