"""Business Central webhooks end to end: the function app served over HTTP registers subscriptions at the Business
Central simulator, which validates the receiver's URL with its handshake and POSTs its notifications there.

The notifications go to the real `Services.notify`: what it recorded (the notified rows of each mapping, a
targeted run) is what these tests check; tests/e2e/test_notified_jobs.py covers the targeted runs themselves."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import threading
import time
import types
from urllib.parse import parse_qs, urlsplit

import pytest
from azure.functions.timer import TimerRequest

import function_app
from bcsync import host
from shared import http_api
from shared.bc_webhooks import check_handshake
from shared.businesscentral import BusinessCentralClient
from shared.settings import Settings
from shared.wiring import WEBHOOK_KEYS, Services, build_services
from sync.errors import ConfigurationError, ServiceUnavailableError
from sync.model import Direction, Side
from sync.notifications import BC_ROUTE
from sync.runs import RUNS_STATE, RunKind
from tests.support import call, wait_for

HOOKED = {"currencies", "customers", "vendors", "unitsOfMeasure", "items", "salesInvoices"}  # the built-in mappings'


class Hooked:
    def __init__(self, url: str, sim, values: dict):
        self.url, self.sim, self.values = url, sim, values
        self.receiver = f"{url}/api/{BC_ROUTE}"
        self.services = self.rewire()

    def rewire(self, **values) -> Services:
        """The function app's services with these settings, on the simulator's time (which tests move on)."""
        self.values = {**self.values, **values}
        self.services = build_services(Settings.load(environ=self.values), types.SimpleNamespace(now=self.sim.now))
        function_app._services = self.services
        return self.services

    def subscriptions(self) -> list:
        return self.sim.subscriptions.live()


@pytest.fixture
def hooked(stack, isolated, monkeypatch):
    monkeypatch.setattr(function_app, "_services", None)
    monkeypatch.setattr(http_api, "_keyless_logged", {})
    with host.serving(function_app.app) as url:
        found = Hooked(url, stack.business_central, {**isolated, "BCSYNC_WEBHOOK_URL": url})
        stack.business_central.subscriptions.configure(delay=0.2)
        yield found


def notified(hooked, mapping: str = "CUSTOMER") -> dict[str, str]:
    """The rows notified to `mapping` (Business Central's side) and not yet taken up: change by id."""
    return {row.record_id: row.change.value for row in hooked.services.state.notified(mapping, Direction.TO_CRM)}


def targeted_runs(hooked) -> list:
    return [report.run for report in hooked.services.job_log() if report.run.kind is RunKind.NOTIFIED]


def states(report: dict) -> dict[str, str]:
    """Business Central's hooks (the same call also registers Dataverse's, which tests/e2e/test_dataverse_webhooks.py
    covers)."""
    return {hook["table"]: hook["state"] for hook in report["hooks"] if hook["side"] == "bc"}


def tick():
    function_app.scheduled_sync(TimerRequest(past_due=False))


def test_register_subscribes_each_hooked_entity_set_through_the_handshake_then_status_and_remove(hooked):
    report = hooked.services.register_webhooks()
    assert report["ok"] and report["url"] == hooked.url
    assert states(report) == dict.fromkeys(HOOKED, "created")
    found = hooked.subscriptions()
    assert {s.entity_set for s in found} == HOOKED  # created only after our receiver answered the handshake
    assert {s.notification_url for s in found} == {hooked.receiver}
    assert {s.client_state for s in found} == {hooked.services.webhook_key(Side.BC)}

    # idempotent: nothing new, nothing renewed
    assert states(hooked.services.register_webhooks()) == dict.fromkeys(HOOKED, "active")
    assert len(hooked.subscriptions()) == len(HOOKED)

    status = hooked.services.webhook_status()
    assert states(status) == dict.fromkeys(HOOKED, "active") and status["registered"]
    assert all(hook["expires"] and hook["id"] for hook in status["hooks"] if hook["side"] == "bc")

    removed = hooked.services.remove_webhooks()
    assert states(removed) == dict.fromkeys(HOOKED, "removed")
    assert hooked.subscriptions() == []
    assert states(hooked.services.webhook_status()) == dict.fromkeys(HOOKED, "missing")


def test_each_company_gets_its_own_subscriptions_under_one_key(hooked):
    cronus, fabrikam = hooked.sim.company_id, hooked.sim.add_company("FABRIKAM Inc.")
    services = hooked.rewire(BCSYNC_COMPANIES=f"CRONUS={cronus}; FABRIKAM={fabrikam}")
    report = services.register_webhooks()
    assert {(hook["company"], hook["table"], hook["state"]) for hook in report["hooks"] if hook["side"] == "bc"} == {
        (company, table, "created") for company in ("CRONUS", "FABRIKAM") for table in HOOKED}
    found = hooked.subscriptions()
    assert {(s.company_id, s.entity_set) for s in found} == {(c, t) for c in (cronus, fabrikam) for t in HOOKED}
    assert {s.client_state for s in found} == {services.webhook_key(Side.BC)}
    # a company's registrar leaves the other company's subscriptions alone
    assert {hook["state"] for hook in services.register_webhooks()["hooks"]} == {"active"}


def test_a_table_no_longer_mapped_loses_its_subscription(hooked):
    hooked.services.register_webhooks()
    hooked.services.set_mapping("VENDOR", {"enabled": False})
    report = hooked.services.register_webhooks()
    assert states(report)["vendors"] == "removed"
    assert "vendors" not in {s.entity_set for s in hooked.subscriptions()}


def test_the_timer_renews_what_expires_within_a_day_and_recreates_what_is_gone(hooked):
    tick()  # not registered yet: the timer registers nothing
    assert hooked.subscriptions() == []
    hooked.services.register_webhooks()
    first = {s.entity_set: s.expires for s in hooked.subscriptions()}

    hooked.sim.advance(dt.timedelta(hours=36))
    tick()  # more than a day left: left alone
    assert {s.entity_set: s.expires for s in hooked.subscriptions()} == first

    hooked.sim.advance(dt.timedelta(hours=20))
    gone = next(s for s in hooked.subscriptions() if s.entity_set == "customers")
    del hooked.sim.subscriptions.items[gone.subscription_id]  # deleted behind our back (as after a 4xx)
    tick()
    now = {s.entity_set: s for s in hooked.subscriptions()}
    assert set(now) == HOOKED
    assert now["customers"].subscription_id != gone.subscription_id
    assert all(s.expires > hooked.sim.now() + dt.timedelta(days=2) for s in now.values())
    assert now["items"].subscription_id == next(iter(
        s for s in hooked.services.webhook_status()["hooks"] if s["table"] == "items"))["id"]


def test_a_subscription_to_an_earlier_url_is_replaced_and_other_subscribers_are_left_alone(hooked):
    hooked.services.register_webhooks()
    found = {s.entity_set: s for s in hooked.subscriptions()}
    earlier = found["items"]
    earlier.notification_url = f"https://old.example/api/{BC_ROUTE}"  # an earlier BCSYNC_WEBHOOK_URL, our key
    other = found["customers"]  # another subscriber's
    other.notification_url, other.client_state = "https://elsewhere.example/hooks", "theirs"
    # another deployment of bcsync (staging): the same route at another host, with its own key
    staging = found["vendors"]
    staging.notification_url, staging.client_state = f"https://staging.example/api/{BC_ROUTE}", "staging's key"
    status = [(h["table"], h["state"]) for h in hooked.services.webhook_status()["hooks"] if h["side"] == "bc"]
    assert ("items", "stale") in status and ("items", "missing") in status and ("vendors", "missing") in status

    report = hooked.services.register_webhooks()
    changed = sorted((h["table"], h["state"], h["id"] == earlier.subscription_id) for h in report["hooks"]
                     if h["side"] == "bc" and h["state"] != "active")
    # a new subscription first, then the earlier one deleted (PATCH is documented as a renewal only)
    assert changed == [("customers", "created", False), ("items", "created", False), ("items", "removed", True),
                       ("vendors", "created", False)]
    urls = {(s.entity_set, s.notification_url, s.client_state == hooked.services.webhook_key(Side.BC))
                  for s in hooked.subscriptions() if s.entity_set in ("items", "customers", "vendors")}
    assert urls == {("customers", "https://elsewhere.example/hooks", False), ("customers", hooked.receiver, True),
                    ("items", hooked.receiver, True),
                    ("vendors", hooked.receiver, True), ("vendors", f"https://staging.example/api/{BC_ROUTE}", False)}
    # and staging's keeps posting to staging, however often either deployment's timer ticks
    tick()
    hooked.services.remove_webhooks()
    assert sorted((s.notification_url, s.client_state) for s in hooked.subscriptions()) == [
        ("https://elsewhere.example/hooks", "theirs"), (f"https://staging.example/api/{BC_ROUTE}", "staging's key")]


def test_the_timer_logs_a_failed_renewal_and_still_starts_the_scheduled_run(hooked, caplog, monkeypatch):
    hooked.services.register_webhooks()

    def down(self):
        raise ServiceUnavailableError("Business Central: down")
    monkeypatch.setattr(Services, "webhook_registrars", down)
    runs = hooked.services.job_log()
    tick()
    assert "webhooks not renewed (a service is unavailable): Business Central: down" in caplog.text
    assert len(hooked.services.job_log()) == len(runs) + 1

    def bug(self):
        raise RuntimeError("a bug")
    monkeypatch.setattr(Services, "webhook_registrars", bug)
    tick()  # does not raise: the host would report the timer's function failed
    assert "webhooks not renewed; the next tick tries again" in caplog.text and "RuntimeError: a bug" in caplog.text


def test_an_unreachable_receiver_fails_business_centrals_hooks_only_and_subscribes_nothing(hooked):
    dead = "http://127.0.0.1:9"  # nothing answers there
    report = hooked.rewire(BCSYNC_WEBHOOK_URL=dead).register_webhooks()
    bc = [hook for hook in report["hooks"] if hook["side"] == "bc"]
    assert not report["ok"] and [(h["table"], h["state"]) for h in bc] == [("", "failed")]
    assert f"{dead}/api/{BC_ROUTE} did not answer" in bc[0]["detail"] and "reachable" in bc[0]["detail"]
    assert hooked.subscriptions() == []
    # Dataverse's registrar went on all the same
    assert {h["state"] for h in report["hooks"] if h["side"] == "crm"} == {"created"}


def test_one_companys_failure_is_reported_and_the_others_are_registered(hooked, monkeypatch):
    cronus, fabrikam = hooked.sim.company_id, hooked.sim.add_company("FABRIKAM Inc.")
    services = hooked.rewire(BCSYNC_COMPANIES=f"CRONUS={cronus}; FABRIKAM={fabrikam}")

    def locked(*args):
        raise ServiceUnavailableError("Business Central: CRONUS is locked")
    monkeypatch.setattr(services.for_company("CRONUS").business_central, "subscribe", locked)
    report = services.register_webhooks()
    assert [(h["company"], h["table"], h["detail"]) for h in report["hooks"] if h["state"] == "failed"] == [
        ("CRONUS", "", "Business Central: CRONUS is locked")] and not report["ok"]
    assert {s.company_id for s in hooked.subscriptions()} == {fabrikam}
    assert {h["state"] for h in report["hooks"] if h["side"] == "crm"} == {"created"}


def test_the_keys_stay_where_they_are_when_the_companies_change(hooked):
    cronus, fabrikam = hooked.sim.company_id, hooked.sim.add_company("FABRIKAM Inc.")
    # no company keeps BCSYNC_TABLE_PREFIX's own tables (no BCSYNC_BC_COMPANY_ID)
    hooked.values = {k: v for k, v in hooked.values.items() if k != "BCSYNC_BC_COMPANY_ID"}
    services = hooked.rewire(BCSYNC_COMPANIES=f"FABRIKAM={fabrikam}; CRONUS={cronus}")
    services.register_webhooks()
    keys = {side: services.webhook_key(side) for side in Side}
    assert keys[Side.BC] != keys[Side.CRM]  # Business Central shows its clientState to whoever reads subscriptions
    for companies in (f"CRONUS={cronus}; FABRIKAM={fabrikam}", f"CRONUS={cronus}"):
        assert {side: hooked.rewire(BCSYNC_COMPANIES=companies).webhook_key(side) for side in Side} == keys


def test_the_timer_logs_an_error_when_webhooks_were_registered_and_the_keys_are_lost(hooked, caplog):
    tick()  # never registered: the timer does nothing and says nothing, whatever BCSYNC_WEBHOOK_URL says
    assert "no webhook key" not in caplog.text and hooked.subscriptions() == []
    hooked.services.register_webhooks()
    for name in WEBHOOK_KEYS.values():  # the state table lost them
        hooked.services.prefix_state.table.delete_entity(RUNS_STATE, f"cursor:{name}")
    tick()
    assert f"Webhooks were registered for {hooked.url}, but no webhook key is stored" in caplog.text


def test_the_timer_renews_for_the_url_registered_and_never_moves_or_removes_a_subscription(hooked):
    hooked.services.register_webhooks()
    first = {s.subscription_id: (s.entity_set, s.notification_url) for s in hooked.subscriptions()}
    # a process whose own URL differs (a staging slot on the same state table, a custom domain set for the CLI),
    # with a table no longer mapped: its timer leaves every subscription where it is
    services = hooked.rewire(BCSYNC_WEBHOOK_URL="https://staging.example")
    services.set_mapping("VENDOR", {"enabled": False})
    gone = next(s for s in hooked.subscriptions() if s.entity_set == "customers")
    del hooked.sim.subscriptions.items[gone.subscription_id]
    hooked.sim.advance(dt.timedelta(hours=56))
    tick()
    now = {s.entity_set: s for s in hooked.subscriptions()}
    assert set(now) == HOOKED and {s.notification_url for s in now.values()} == {hooked.receiver}
    assert now["customers"].subscription_id not in first  # recreated, at the URL registered
    # renewed there, but the one no longer wanted (left to expire, or to the next explicit registration)
    assert [t for t, s in now.items() if s.expires < hooked.sim.now() + dt.timedelta(days=2)] == ["vendors"]
    status = services.webhook_status()
    assert status["url"] == hooked.url and states(status)["vendors"] == "expiring"
    # an explicit registration moves them, and then the timer renews at the new URL
    assert services.register_webhooks()["url"] == "https://staging.example"
    assert services.registered_webhook_url == "https://staging.example"


def test_after_remove_the_timer_registers_nothing_again(hooked):
    hooked.services.register_webhooks()
    hooked.services.remove_webhooks()
    tick()
    assert hooked.subscriptions() == [] and hooked.services.renew_webhooks() is None


def test_two_first_registrations_keep_one_key(hooked, monkeypatch):
    """Both read no key before either stored one: the second keeps the first's, not its own."""
    first, second = hooked.services, hooked.rewire()
    read, raced = type(second.prefix_state).cursor, []

    def cursor(state, mapping, name):  # the second's first read comes before the first's write
        if state is second.prefix_state and name == WEBHOOK_KEYS[Side.BC] and not raced:
            raced.append(name)
            return None
        return read(state, mapping, name)
    monkeypatch.setattr(type(second.prefix_state), "cursor", cursor)
    key = first.webhook_key(Side.BC, create=True)
    assert second.webhook_key(Side.BC, create=True) == key == first.webhook_key(Side.BC) and raced


def test_the_timer_lists_the_environments_subscriptions_once_for_all_companies(hooked, monkeypatch):
    cronus, fabrikam = hooked.sim.company_id, hooked.sim.add_company("FABRIKAM Inc.")
    services = hooked.rewire(BCSYNC_COMPANIES=f"CRONUS={cronus}; FABRIKAM={fabrikam}")
    services.register_webhooks()
    listings = []
    listed = BusinessCentralClient.subscriptions
    monkeypatch.setattr(BusinessCentralClient, "subscriptions", lambda self: listings.append(1) or listed(self))
    tick()
    assert len(listings) == 1


def test_the_timer_renews_at_most_hourly_and_asks_neither_service_in_between(hooked, monkeypatch):
    hooked.services.register_webhooks()
    sent = []
    for api in (hooked.services.business_central.api, hooked.services.dataverse.api):
        request = api.session.request

        def logged(method, url, request=request, **kwargs):
            sent.append(f"{method} {url.split('?')[0]}")
            return request(method, url, **kwargs)
        monkeypatch.setattr(api.session, "request", logged)

    def webhook_requests() -> list[str]:
        return [line for line in sent if any(part in line for part in ("subscriptions", "serviceendpoints",
                                                                         "sdkmessage"))]
    tick()
    assert webhook_requests(), sent  # the first renewal lists both services' registrations
    sent.clear()
    hooked.sim.advance(dt.timedelta(minutes=50))
    tick()
    assert webhook_requests() == []
    hooked.sim.advance(dt.timedelta(minutes=10))
    tick()
    assert webhook_requests()


def test_status_tells_a_subscription_that_expires_within_a_day(hooked):
    hooked.services.register_webhooks()
    hooked.sim.advance(dt.timedelta(hours=49))
    assert set(states(hooked.services.webhook_status()).values()) == {"expiring"}
    tick()
    assert set(states(hooked.services.webhook_status()).values()) == {"active"}


def test_an_entity_set_business_central_refuses_is_that_tables_failure_only(hooked):
    registrar = hooked.services.webhook_registrars()[0].registrar
    hooks = registrar.register(["contacts", "customers"], hooked.receiver, "k")
    assert [(h.table, h.state.value) for h in hooks] == [("contacts", "failed"), ("customers", "created")]
    assert "does not support webhook subscriptions" in hooks[0].detail


def test_the_timer_asks_again_for_a_refused_subscription_only_after_some_hours(hooked):
    registrar = hooked.services.webhook_registrars()[0].registrar
    posts = lambda: sum(1 for method, path in hooked.sim.faults.requests
                        if method == "POST" and path.endswith("/subscriptions"))
    before = posts()
    assert registrar.register(["contacts"], hooked.receiver, "k", renewing=True)[0].state.value == "failed"
    assert posts() == before + 1
    registrar = hooked.services.webhook_registrars()[0].registrar  # the next tick's
    [hook] = registrar.register(["contacts"], hooked.receiver, "k", renewing=True)
    assert (hook.state.value, posts()) == ("missing", before + 1) and "refused at" in hook.detail
    # an explicit registration asks at once, and so does the timer some hours later
    assert registrar.register(["contacts"], hooked.receiver, "k")[0].state.value == "failed"
    hooked.sim.advance(dt.timedelta(hours=7))
    assert registrar.register(["contacts"], hooked.receiver, "k", renewing=True)[0].state.value == "failed"
    assert posts() == before + 3


def test_register_without_the_url_names_the_setting(hooked):
    values = {k: v for k, v in hooked.values.items() if k != "BCSYNC_WEBHOOK_URL"}
    services = build_services(Settings.load(environ=values))
    with pytest.raises(ConfigurationError, match="BCSYNC_WEBHOOK_URL"):
        services.register_webhooks()
    assert services.renew_webhooks() is None


def test_in_azure_the_url_defaults_to_the_apps_own_host_name(hooked, monkeypatch, caplog):
    """The platform sets WEBSITE_HOSTNAME; with BCSYNC_WEBHOOK_URL unset the receivers are under that host, and until
    webhooks are registered the timer does nothing and logs nothing."""
    monkeypatch.setenv("WEBSITE_HOSTNAME", "bcsync-x1.azurewebsites.net")
    values = {k: v for k, v in hooked.values.items() if k != "BCSYNC_WEBHOOK_URL"}
    services = build_services(Settings.load(environ=values))
    assert services.webhook_base_url == "https://bcsync-x1.azurewebsites.net"
    assert services.renew_webhooks() is None and "no webhook key" not in caplog.text
    assert hooked.services.webhook_base_url == hooked.url  # a URL set is used as it is


# -- the receiver -----------------------------------------------------------------------------------------------

def test_the_receiver_echoes_the_handshake_and_does_nothing_else(hooked):
    status, headers, body = call("POST", f"{hooked.receiver}?validationToken=abc%2Bdef", raw=b"")
    assert (status, body) == (200, b"abc+def") and headers["Content-Type"].startswith("text/plain")
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert hooked.services.webhook_key(Side.BC) is None and targeted_runs(hooked) == []
    # no page of anyone's making: a token too long, or with what is no printable character, is not echoed
    for token in ("x" * 1025, "%3Cscript%3E%0A", ""):
        status, _, body = call("POST", f"{hooked.receiver}?validationToken={token}", raw=b"")
        assert status == 400 and b"validationToken" in body, token


def test_notifications_from_the_simulator_are_recorded_and_start_a_targeted_run(hooked):
    hooked.services.register_webhooks()
    customer = hooked.sim.create("customers", {"displayName": "Adatum"})
    item = hooked.sim.create("items", {"displayName": "Bike"})
    hooked.sim.create("contacts", {"displayName": "Not hooked"})
    wait_for(lambda: notified(hooked) == {customer: "created"} and notified(hooked, "ITEM-PRODUCT") == {
        item: "created"}, what="the notifications of the created rows")
    hooked.sim.delete("customers", customer)
    wait_for(lambda: notified(hooked) == {customer: "deleted"}, what="the notification of the deletion")
    assert {d["status"] for d in hooked.sim.subscriptions.delivered} == {202}
    assert targeted_runs(hooked)


def test_a_collection_notification_is_recorded_without_an_id(hooked):
    hooked.services.register_webhooks()
    hooked.sim.subscriptions.configure(automatic=False)
    hooked.sim.seed("currencies", [{"code": f"C{n:04d}", "displayName": str(n)} for n in range(1001)])
    hooked.sim.subscriptions.deliver_due(everything=True)
    assert hooked.sim.subscriptions.delivered[-1]["status"] == 202
    assert [run.mappings for run in targeted_runs(hooked)] == [("CURRENCY",)]


def test_the_documented_collection_sample_is_taken(hooked):
    """Microsoft Learn's sample of a collection notification, as it stands: a 400 would have Business Central delete
    the subscription."""
    hooked.services.register_webhooks()
    cid = hooked.sim.company_id
    sample = {"value": [{"subscriptionId": "webhookItemsTest", "clientState": hooked.services.webhook_key(Side.BC),
                         "expirationDateTime": "2018-10-29T07:52:31Z",
                         "resource": f"/api/v2.0/companies({cid})/salesInvoices?$filter=lastDateTimeModified%20gt"
                                     "%202018-10-15T11:00:00Z",
                         "changeType": "collection", "lastModifiedDateTime": "2018-10-26T12:54:20.467Z"}]}
    status, _, body = call("POST", hooked.receiver, sample)
    assert status == 202 and json.loads(body)["notifications"] == 1, body
    assert [run.mappings for run in targeted_runs(hooked)] == [("POSTEDSALESINV-INV",)]


def entry(hooked, **changed) -> dict:
    return {"subscriptionId": "s1", "clientState": hooked.services.webhook_key(Side.BC), "expirationDateTime":
            "2030-01-01T00:00:00Z", "resource": f"api/v2.0/companies({hooked.sim.company_id})/customers"
            f"(11111111-2222-3333-4444-555555555555)", "changeType": "updated",
            "lastModifiedDateTime": "2030-01-01T00:00:00Z", **changed}


def test_without_a_stored_key_notifications_are_a_503_warned_of_at_most_every_few_minutes(hooked, caplog):
    for _ in range(3):
        status, _, body = call("POST", hooked.receiver, {"value": [entry(hooked, clientState="anything")]})
        assert status == 503 and "no webhook key" in json.loads(body)["error"]
    warned = [r for r in caplog.records if "no webhook key is stored" in r.getMessage()]
    assert [r.levelname for r in warned] == ["WARNING"]  # anyone may post here: no error, and not each time
    assert targeted_runs(hooked) == []


def test_the_receiver_reads_the_key_once_in_a_while_and_sees_a_new_registration(hooked, monkeypatch):
    assert call("POST", hooked.receiver, {"value": [entry(hooked, clientState="anything")]})[0] == 503
    hooked.services.register_webhooks()  # a registration in this process is seen at once
    good, forged = entry(hooked), entry(hooked, clientState="guess")
    reads = []
    read = type(hooked.services.prefix_state).cursor
    monkeypatch.setattr(type(hooked.services.prefix_state), "cursor",
                        lambda self, *args: reads.append(args) or read(self, *args))
    for _ in range(3):
        assert call("POST", hooked.receiver, {"value": [good]})[0] == 202
    for _ in range(3):  # a guess has the key read again, but not more often than every few seconds
        assert call("POST", hooked.receiver, {"value": [forged]})[0] == 401
    assert len([args for args in reads if args[1] == WEBHOOK_KEYS[Side.BC]]) <= 1


def test_entries_without_the_key_are_left_out_and_only_a_post_without_any_is_refused(hooked):
    hooked.services.register_webhooks()
    good = entry(hooked)
    for forged in (entry(hooked, clientState="guess"), {k: v for k, v in good.items() if k != "clientState"}):
        status, _, body = call("POST", hooked.receiver, {"value": [forged]})
        assert status == 401 and "clientState" in json.loads(body)["error"]
    # Dataverse's key is not Business Central's
    assert call("POST", hooked.receiver, {"value": [entry(hooked, clientState=hooked.services.webhook_key(
        Side.CRM))]})[0] == 401
    assert notified(hooked) == {}
    status, _, body = call("POST", hooked.receiver, {"value": [good, entry(hooked, clientState="guess"), 7]})
    assert status == 202 and (json.loads(body)["notifications"], json.loads(body)["left_out"]) == (1, 2)
    assert notified(hooked) == {"11111111-2222-3333-4444-555555555555": "updated"}


def test_a_body_not_of_business_centrals_shape_is_a_400_and_a_keyed_entry_never_is(hooked, caplog):
    hooked.services.register_webhooks()
    cases = [(b"not json", "body"), (b'{"items": []}', "value"), (b'{"value": []}', "value"), (b'{"value": [1]}', "value[0]")]
    for raw, field in cases:
        status, _, body = call("POST", hooked.receiver, raw=raw)
        assert (status, json.loads(body).get("field")) == (400, field), raw
    # entries carrying the key are Business Central's own: a 400 would have it delete their subscriptions
    for unreadable in (entry(hooked, changeType="moved"),
                       entry(hooked, resource=f"api/v2.0/companies({hooked.sim.company_id})/items")):
        status, _, body = call("POST", hooked.receiver, {"value": [unreadable]})
        assert (status, json.loads(body)["left_out"]) == (202, 1)
    assert [r.levelname for r in caplog.records if "cannot read" in r.getMessage()] == ["ERROR", "ERROR"]
    assert "value[0].changeType" in caplog.text and notified(hooked) == {}
    status, _, body = call("POST", hooked.receiver, {"value": [entry(hooked), entry(hooked, resource="api/v2.0/x")]})
    assert (status, json.loads(body)["notifications"], json.loads(body)["left_out"]) == (202, 1, 1)
    assert notified(hooked) == {"11111111-2222-3333-4444-555555555555": "updated"}


def test_any_failure_on_bcsyncs_side_is_a_503_for_business_central_to_retry(hooked, monkeypatch):
    hooked.services.register_webhooks()
    for failure in (ServiceUnavailableError("Table Storage: down"), ConfigurationError("Table Storage: refused"),
                    RuntimeError("a bug")):
        def notify(self, notifications, failure=failure):
            raise failure
        monkeypatch.setattr(Services, "notify", notify, raising=False)
        status, _, body = call("POST", hooked.receiver, {"value": [entry(hooked)]})
        assert status == 503, failure
        assert ("log" if isinstance(failure, RuntimeError) else failure.message) in json.loads(body)["error"]

    # and the simulator keeps the subscription and tries again later
    hooked.sim.subscriptions.configure(automatic=False, retry_interval=60)
    hooked.sim.create("customers", {"displayName": "Adatum"})
    hooked.sim.subscriptions.deliver_due(everything=True)
    assert hooked.sim.subscriptions.delivered[-1]["status"] == 503
    assert len(hooked.subscriptions()) == len(HOOKED) and hooked.sim.subscriptions.pending


# -- the HTTP API and the CLI ----------------------------------------------------------------------------------

def test_a_refused_registration_is_a_422_and_business_central_down_a_503_listed_once(hooked):
    dead = "http://127.0.0.1:9"  # nothing answers there: a refusal of bcsync's settings, the rest registered
    hooked.rewire(BCSYNC_WEBHOOK_URL=dead)
    status, _, body = call("POST", f"{hooked.url}/api/webhooks")
    assert status == 422 and not json.loads(body)["unavailable"]

    cronus, fabrikam = hooked.sim.company_id, hooked.sim.add_company("FABRIKAM Inc.")
    services = hooked.rewire(BCSYNC_WEBHOOK_URL=hooked.url, BCSYNC_COMPANIES=f"CRONUS={cronus}; FABRIKAM={fabrikam}")
    faults = hooked.sim.faults
    try:
        faults.fail(503, times=1000, retry_after=0, path_contains="subscriptions", methods=("GET",))
        listings = lambda: sum(1 for method, path in faults.requests if method == "GET" and "subscriptions" in path)
        with pytest.raises(ServiceUnavailableError):
            services.for_company("CRONUS").business_central.subscriptions()
        once = listings()
        status, _, body = call("POST", f"{hooked.url}/api/webhooks")
        assert status == 503 and json.loads(body)["unavailable"]
        assert listings() - once <= once  # one listing for both companies, not one each
    finally:
        faults.clear()


def test_the_http_routes_register_show_and_remove(hooked):
    status, _, body = call("POST", f"{hooked.url}/api/webhooks")
    assert status == 200 and states(json.loads(body)) == dict.fromkeys(HOOKED, "created")
    status, _, body = call("GET", f"{hooked.url}/api/webhooks")
    assert status == 200 and states(json.loads(body)) == dict.fromkeys(HOOKED, "active")
    status, _, body = call("DELETE", f"{hooked.url}/api/webhooks")
    assert status == 200 and states(json.loads(body)) == dict.fromkeys(HOOKED, "removed")
    assert hooked.subscriptions() == []


def test_the_cli_registers_shows_and_removes(hooked, tmp_path, capsys):
    from bcsync.cli import main
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"Values": hooked.values}))

    def run(*args):
        code = main(["--settings", str(settings), *args])
        return code, capsys.readouterr().out
    code, out = run("webhooks", "register", "--json")
    assert code == 0 and states(json.loads(out)) == dict.fromkeys(HOOKED, "created")
    code, out = run("webhooks", "status")
    assert code == 0 and "customers" in out and "active" in out
    code, out = run("webhooks", "remove", "--json")
    assert code == 0 and states(json.loads(out)) == dict.fromkeys(HOOKED, "removed")

    settings.write_text(json.dumps({"Values": {k: v for k, v in hooked.values.items() if k != "BCSYNC_WEBHOOK_URL"}}))
    assert main(["--settings", str(settings), "webhooks", "register", "--json"]) == 2
    error = json.loads(capsys.readouterr().err)
    assert error["code"] == "ConfigurationError" and "BCSYNC_WEBHOOK_URL" in error["error"]


def test_the_own_handshake_trusts_the_configured_ca(stack):
    """A receiver whose certificate a private CA signed (BCSYNC_CA_BUNDLE) answers bcsync's own handshake; without
    that CA it is refused, as any unverified certificate is."""
    class Echo(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            token = parse_qs(urlsplit(self.path).query)["validationToken"][0].encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(token)))
            self.end_headers()
            self.wfile.write(token)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    server.socket = stack.ca.server_context().wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"https://127.0.0.1:{server.server_address[1]}/api/{BC_ROUTE}"
        check_handshake(url, ca_bundle=str(stack.ca.ca_file))
        with pytest.raises(ConfigurationError, match="did not answer"):
            check_handshake(url)
    finally:
        server.shutdown()
        server.server_close()
