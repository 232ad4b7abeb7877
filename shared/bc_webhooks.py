"""Business Central webhook subscriptions of one company, kept as bcsync wants them (sync.notifications.Registrar).

A subscription names one entity set of one company (`/api/v2.0/companies(<id>)/<set>`) and the receiver's URL, and
carries the Business Central key of the receiver as its clientState, which Business Central sends back with every
notification. Only a subscription that posts to the receiver's URL or carries that key is bcsync's (another deployment
of bcsync, staging say, posts to its own URL with its own key). It lives three days: `register` renews the ones that
expire within a day, creates the ones missing (expired, or deleted by Business Central after an answer it took as
final), and, unless the timer is `renewing`, replaces the ones at an earlier URL or with an earlier key (a new
subscription first, then the old one deleted: the documentation describes PATCH as a renewal) and removes bcsync's
subscriptions of entity sets no longer wanted. Before it asks Business Central for anything that needs the handshake, it does the handshake with its own
receiver, so that an unreachable BCSYNC_WEBHOOK_URL is one clear failure.
"""

from __future__ import annotations

import datetime as dt
import hmac
import re
import secrets
from typing import Callable, Sequence

import requests

from sync.errors import ConfigurationError, NotFoundError, SyncError
from sync.model import Side
from sync.notifications import BC_ROUTE, Hook, HookState
from sync.ports import Clock

from .businesscentral import BusinessCentralClient
from .http import VerifyingSession
from .odata import parse_datetime

RENEW_WITHIN = dt.timedelta(days=1)  # the timer renews hourly; a day leaves room for a service outage
HANDSHAKE_TIMEOUT = 10.0
# how long the timer leaves an entity set whose subscription Business Central refused (its 200-subscription limit,
# say) before it asks again: not a handshake, a POST and an error in the log at every renewal
REFUSED_RETRY = dt.timedelta(hours=6)
_GUID = r"\{?([0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})\}?"
# a subscription's or a notification's resource: api/v2.0/companies(<company id>)/<entity set>, with the row's id
# (a notification of one row) or a query (a collection notification)
RESOURCE = re.compile(rf"^/?api/v2\.0/companies\({_GUID}\)/([A-Za-z]+)(?:\({_GUID}\))?(?:\?.*)?$")


class BcSubscriptions:
    side = Side.BC

    def __init__(self, client: BusinessCentralClient, clock: Clock, listed: Callable[[], list[dict]],
                 reachable: Callable[[str], None], refused: dict[tuple[str, str], dt.datetime]):
        self.client = client
        self.clock = clock
        # when Business Central last refused to subscribe (company id, entity set): kept by the process's services
        self.refused = refused
        # the environment's subscriptions (every company's): the facade lists them once for all companies
        self.listed = listed
        # the handshake with the receiver (check_handshake), which the facade does once per URL
        self.reachable = reachable

    def register(self, tables: Sequence[str], url: str, key: str, renewing: bool = False) -> list[Hook]:
        """Every entity set in `tables` subscribed with `url` and `key`, expiring no sooner than a day from now.
        The timer's `renewing` only renews or recreates these: it replaces no subscription of another URL or key and
        removes none, which only an explicit registration does."""
        ours = self._ours(url, key)
        hooks = []
        for entity_set in tables:
            found = sorted(ours.pop(entity_set, []), key=lambda s: not _current(s, url, key))
            if found and _current(found[0], url, key):
                hooks.append(self._kept(entity_set, found.pop(0), url, key, renewing))
            else:
                hooks.append(self._created(entity_set, url, key, renewing))
            if hooks[-1].state is not HookState.FAILED and not renewing:  # an earlier URL's or key's goes once its
                hooks += [self._removed(entity_set, s) for s in found]  # successor is there
        if not renewing:
            for entity_set, extra in ours.items():
                hooks += [self._removed(entity_set, s) for s in extra]
        return hooks

    def hooks(self, url: str, key: str | None, tables: Sequence[str] = ()) -> list[Hook]:
        found = [_hook(entity_set, s, self._state(s, url, key))
                 for entity_set, listed in self._ours(url, key).items() for s in listed]
        there = {hook.table for hook in found if hook.state is not HookState.STALE}
        return found + [Hook(Side.BC, table, "", HookState.MISSING) for table in tables if table not in there]

    def remove(self, url: str, key: str | None) -> list[Hook]:
        return [self._removed(entity_set, s) for entity_set, found in self._ours(url, key).items() for s in found]

    def _state(self, subscription: dict, url: str, key: str | None) -> HookState:
        if not _current(subscription, url, key):
            return HookState.STALE
        return HookState.EXPIRING if self._expiring(subscription) else HookState.ACTIVE

    def _expiring(self, subscription: dict) -> bool:
        expires = parse_datetime(subscription.get("expirationDateTime"))
        return expires is None or expires - self.clock.now() <= RENEW_WITHIN

    def _ours(self, url: str, key: str | None) -> dict[str, list[dict]]:
        """This company's subscriptions that post to `url` or carry `key`, by entity set."""
        found: dict[str, list[dict]] = {}
        for subscription in self.listed():
            match = RESOURCE.match(str(subscription.get("resource", "")))
            if match and match.group(1).lower() == self.client.company_id.lower() and \
                    (subscription.get("notificationUrl") == url or carries(subscription, key)):
                found.setdefault(match.group(2), []).append(subscription)
        return found

    def _kept(self, entity_set: str, subscription: dict, url: str, key: str, renewing: bool) -> Hook:
        if not self._expiring(subscription):
            return _hook(entity_set, subscription, HookState.ACTIVE)
        try:
            return self._answer(entity_set, HookState.RENEWED, url,
                                lambda: self.client.renew_subscription(subscription, url, key))
        except NotFoundError:  # expired or deleted since it was listed
            return self._created(entity_set, url, key, renewing)

    def _created(self, entity_set: str, url: str, key: str, renewing: bool) -> Hook:
        """A new subscription; the timer asks again for one Business Central refused only after REFUSED_RETRY."""
        which, now = (self.client.company_id.lower(), entity_set), self.clock.now()
        refused = self.refused.get(which)
        if renewing and refused is not None and now - refused < REFUSED_RETRY:
            return Hook(Side.BC, entity_set, "", HookState.MISSING,
                        detail=f"refused at {refused:%Y-%m-%d %H:%M}; asked again from {refused + REFUSED_RETRY:%H:%M}")
        hook = self._answer(entity_set, HookState.CREATED, url, lambda: self.client.subscribe(entity_set, url, key))
        if hook.state is HookState.FAILED:
            self.refused[which] = now
        else:
            self.refused.pop(which, None)
        return hook

    def _answer(self, entity_set: str, state: HookState, url: str, send) -> Hook:
        """What Business Central made of a create or renewal, once the receiver was found to answer the handshake
        (else a ConfigurationError: no entity set can fare better); a refusal is this entity set's failure,
        transient errors are raised."""
        self.reachable(url)
        try:
            return _hook(entity_set, send(), state)
        except SyncError as exc:
            if exc.transient or exc.status not in (400, 422):
                raise
            return Hook(Side.BC, entity_set, "", HookState.FAILED, detail=exc.message)

    def _removed(self, entity_set: str, subscription: dict) -> Hook:
        try:
            self.client.unsubscribe(subscription)
        except NotFoundError:
            pass  # gone already
        return _hook(entity_set, subscription, HookState.REMOVED)


def check_handshake(url: str, ca_bundle: str | None = None) -> None:
    """Business Central's validation request, sent to our own receiver: a ConfigurationError unless it answers 200
    with the token. `ca_bundle`: BCSYNC_CA_BUNDLE, for a receiver whose certificate a private CA signed."""
    token = secrets.token_urlsafe(16)
    try:
        with VerifyingSession(ca_bundle) as session:
            session.trust_env = False  # as Business Central would reach it: directly
            answer = session.post(url, params={"validationToken": token}, timeout=HANDSHAKE_TIMEOUT)
        if answer.status_code == 200 and answer.text == token:
            return
        what = f"answered {answer.status_code} without the validation token"
    except requests.RequestException as exc:
        what = f"did not answer ({type(exc).__name__})"
    raise ConfigurationError(
        f"The receiver of Business Central's notifications at {url} {what}. Business Central POSTs a validationToken "
        f"to it before it subscribes or renews, so the function app must be reachable there from the internet "
        f"(BCSYNC_WEBHOOK_URL is its public base URL) and answer the route /api/{BC_ROUTE} anonymously.")


def carries(found, key: str | None) -> bool:
    """Whether a subscription or a notification (`found`, as Business Central gave it) holds `key` as its
    clientState."""
    state = found.get("clientState") if isinstance(found, dict) else None
    return bool(key) and isinstance(state, str) and hmac.compare_digest(state.encode(), key.encode())


def _current(subscription: dict, url: str, key: str | None) -> bool:
    return subscription.get("notificationUrl") == url and carries(subscription, key)


def _hook(entity_set: str, subscription: dict, state: HookState) -> Hook:
    return Hook(Side.BC, entity_set, str(subscription.get("subscriptionId", "")), state,
                parse_datetime(subscription.get("expirationDateTime")))
