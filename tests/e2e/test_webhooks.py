"""Webhooks across the whole chain: the function app served over real HTTP with a worker taking its queue, its
webhooks registered at both simulators, which POST real notifications to its receivers; the targeted runs they start
carry each change to the other side in seconds, with no scheduled run. Every wait polls the destination."""

from __future__ import annotations

import datetime as dt
import json
import socket
import time
import types

import pytest
from azure.functions.timer import TimerRequest

import function_app
from bcsync import host
from sync.model import Side
from sync.notifications import BC_ROUTE, CRM_ROUTE
from sync.runs import RunKind, RunStatus
from tests.support import call, wait_for

from .test_dataverse_webhooks import context, post
from .test_incremental_cost import RequestCount
from .test_notified_jobs import pair_of, written


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Chain:
    def __init__(self, env, url: str):
        self.env, self.url = env, url
        self.bc_receiver, self.crm_receiver = f"{url}/api/{BC_ROUTE}", f"{url}/api/{CRM_ROUTE}"
        self.user = env.stack.ids.user_systemuser_id  # a Sales user, not bcsync's application user

    @property
    def services(self):
        return self.env.services

    def runs(self) -> list:
        return self.services.runs.list_runs(limit=200)

    def finished(self, run_id: str, seconds: float = 20.0):
        wait_for(lambda: self.services.report(run_id).run.status is not RunStatus.RUNNING, seconds, f"run {run_id}")
        return self.services.report(run_id)

    def ran(self, kind: RunKind, mappings=None):
        """A run started here and taken by the served worker, once it ended."""
        return self.finished(self.services.start_run(kind, trigger="test", mappings=mappings).run_id, 60)

    def quiet(self, seconds: float = 1.0, within: float = 15.0) -> list:
        """Waits until no run is going and none started for `seconds`; the runs then."""
        deadline = time.monotonic() + within
        last, since = None, time.monotonic()
        while True:
            runs = self.runs()
            shape = [(r.run_id, r.status) for r in runs]
            if shape != last:
                last, since = shape, time.monotonic()
            elif all(r.status is not RunStatus.RUNNING for r in runs) and time.monotonic() - since >= seconds:
                return runs
            assert time.monotonic() < deadline, f"runs kept starting or going: {shape[:5]}"
            time.sleep(0.1)

    def new_runs(self, before: list) -> list:
        known = {r.run_id for r in before}
        return [self.services.report(r.run_id) for r in self.runs() if r.run_id not in known]


@pytest.fixture
def window() -> int:
    """BCSYNC_WEBHOOK_WINDOW_SECONDS (a test parametrizes it to change it)."""
    return 0


@pytest.fixture
def chain(env, monkeypatch, window):
    """Customers coupled by a full sync, then webhooks registered at both simulators for the served app."""
    port = free_port()  # the served worker's services must hold the URL before serving starts
    url = f"http://127.0.0.1:{port}"
    # the services go by the BC simulator's time, which the renewal test moves on
    env.configure(BCSYNC_WEBHOOK_URL=url, BCSYNC_WEBHOOK_WINDOW_SECONDS=window,
                  clock=types.SimpleNamespace(now=env.bc.now))
    monkeypatch.setattr(function_app, "_services", env.services)
    env.bc.subscriptions.configure(delay=0.1)
    monkeypatch.setattr(env.dv.webhooks, "retry_seconds", 0.2)  # kept across a reset of the simulator
    with host.serving(function_app.app, worker=env.services, port=port):
        found = Chain(env, url)
        env.bc.seed("customers", [{"number": "10000", "displayName": "Adatum", "city": "Atlanta"},
                                  {"number": "20000", "displayName": "Fabrikam", "city": "Lyon"}])
        assert found.ran(RunKind.FULL, ["CUSTOMER"]).run.status is RunStatus.DONE
        report = found.services.register_webhooks()
        assert report["ok"], report
        yield found


def coupled(chain, name: str):
    customer = next(c["id"] for c in chain.env.bc.rows("customers") if c["displayName"] == name)
    return customer, pair_of(chain.env, customer).crm_id


def test_a_change_on_either_side_arrives_by_notification_and_the_system_quiets_down(chain):
    env = chain.env
    customer, account = coupled(chain, "Adatum")
    before = chain.quiet()

    env.bc.update("customers", customer, {"city": "Savannah"})
    wait_for(lambda: env.dv.get("account", account)["address1_city"] == "Savannah")
    env.dv.update("account", account, {"telephone1": "555-0100"}, as_user=chain.user)
    wait_for(lambda: env.bc.get("customers", customer)["phoneNumber"] == "555-0100")

    chain.quiet(seconds=3)   # no run going, and none started for three seconds
    runs = chain.new_runs(before)
    assert runs and {r.run.kind for r in runs} == {RunKind.NOTIFIED}   # no scheduled run started
    assert all(r.run.status is RunStatus.DONE for r in runs)
    # one write each way; bcsync's write into Business Central was notified back and its run wrote nothing, and
    # its write into Sales was dropped by the receiver (else a third run, or more, would have started)
    assert sum(map(written, runs)) == 2
    assert len(runs) <= 3, [(r.run.run_id, [(j.job_id, j.counts) for j in r.jobs]) for r in runs]
    delivered = [d for d in env.bc.subscriptions.delivered if d["url"] == chain.bc_receiver]
    assert {d["status"] for d in delivered} == {202} and len(delivered) >= 2
    assert {job.status for job in env.dv.webhooks.jobs} == {"succeeded"}
    assert env.errors() == []
    # the next scheduled run finds both changes synchronised (the versions the targeted runs left agree)
    assert written(chain.ran(RunKind.SCHEDULED, ["CUSTOMER"])) == 0


@pytest.mark.parametrize("window", [1])
def test_notifications_within_the_window_from_both_services_make_one_run(chain):
    env = chain.env
    adatum, adatum_account = coupled(chain, "Adatum")
    fabrikam, fabrikam_account = coupled(chain, "Fabrikam")
    before = chain.quiet()
    env.dv.update("account", adatum_account, {"telephone1": "555-0101"}, as_user=chain.user)
    env.dv.update("account", fabrikam_account, {"telephone1": "555-0102"}, as_user=chain.user)
    env.bc.update("customers", fabrikam, {"city": "Oslo"})
    wait_for(lambda: (env.bc.get("customers", adatum)["phoneNumber"], env.bc.get("customers", fabrikam)["phoneNumber"],
                      env.dv.get("account", fabrikam_account)["address1_city"]) == ("555-0101", "555-0102", "Oslo"))
    chain.quiet()
    runs = sorted(chain.new_runs(before), key=lambda r: r.run.created_at)
    first = {j.job_id: j.counts for j in runs[0].jobs}
    assert (first["CUSTOMER:from-crm"].modified, first["CUSTOMER:to-crm"].modified) == (2, 1)
    assert sum(map(written, runs[1:])) == 0   # what bcsync's writes were notified of


def test_created_and_deleted_on_each_side(chain):
    env = chain.env
    env.services.set_mapping("CUSTOMER", {"sync_only_coupled": False})   # new rows cross over (as scheduled)

    contoso = env.bc.create("customers", {"number": "30000", "displayName": "Contoso", "city": "Paris"})
    account = wait_for(lambda: pair_of(env, contoso)).crm_id
    assert env.dv.get("account", account)["name"] == "Contoso"

    litware = env.dv.create("account", {"name": "Litware", "customertypecode": 3})  # owned by no unmapped user
    found = wait_for(lambda: next((c for c in env.couplings("CUSTOMER") if c.crm_id == litware), None))
    assert env.bc.get("customers", found.bc_id)["displayName"] == "Litware"

    # a Business Central deletion in seconds, through the deletion-conflict resolution (remove the coupling)
    env.services.set_mapping("CUSTOMER", {"deletion_conflict": "remove-coupling"})
    env.bc.delete("customers", contoso)
    wait_for(lambda: pair_of(env, contoso) is None)
    assert env.dv.get("account", account)["name"] == "Contoso"   # the resolution removes the coupling only

    # a Sales deletion, under the default resolution: reported, nothing deleted in Business Central
    env.services.set_mapping("CUSTOMER", {"deletion_conflict": "none"})
    adatum, adatum_account = coupled(chain, "Adatum")
    env.dv.delete("account", adatum_account)
    [error] = wait_for(lambda: env.errors())
    assert error.code == "DeletionConflict" and error.source_id == adatum
    assert env.bc.get("customers", adatum)["displayName"] == "Adatum"
    assert {r.run.kind for r in chain.new_runs([])} == {RunKind.FULL, RunKind.NOTIFIED}
    assert written(chain.ran(RunKind.SCHEDULED, ["CUSTOMER"])) == 0


def test_a_deletion_restored_on_each_side_settles(chain):
    """bcsync's restoring inserts are notified back like any of its writes, and lead to nothing more."""
    env = chain.env
    env.services.set_mapping("CUSTOMER", {"deletion_conflict": "restore"})
    adatum, adatum_account = coupled(chain, "Adatum")
    fabrikam, fabrikam_account = coupled(chain, "Fabrikam")
    before = chain.quiet()
    env.bc.delete("customers", adatum)
    wait_for(lambda: [c for c in env.bc.rows("customers") if c["displayName"] == "Adatum"])
    env.dv.delete("account", fabrikam_account)
    wait_for(lambda: [a for a in env.dv.rows("account") if a["name"] == "Fabrikam"])
    chain.quiet()
    runs = chain.new_runs(before)
    assert {r.run.kind for r in runs} == {RunKind.NOTIFIED}
    assert sum(j.counts.inserted for r in runs for j in r.jobs) == 2   # one restore each, no more
    assert sum(j.counts.modified + j.counts.deleted for r in runs for j in r.jobs) == 0
    assert env.errors() == [] and written(chain.ran(RunKind.SCHEDULED, ["CUSTOMER"])) == 0


def test_an_item_and_a_contact_arrive_by_notification(chain):
    env = chain.env
    env.bc.seed("unitsOfMeasure", [{"code": "PCS", "displayName": "Piece"}])
    [bolt] = env.bc.seed("items", [{"number": "1000", "displayName": "Bolt", "baseUnitOfMeasureCode": "PCS",
                                    "unitPrice": 1}])
    company = next(c for c in env.bc.rows("contacts") if c["displayName"] == "Adatum")["number"]
    [ann] = env.bc.seed("contacts", [{"type": "Person", "displayName": "Ann Lee", "companyNumber": company}])
    assert chain.ran(RunKind.FULL).run.status is RunStatus.DONE
    product = next(c.crm_id for c in env.couplings("ITEM-PRODUCT") if c.bc_id == bolt)
    contact = next(c.crm_id for c in env.couplings("CONTACT") if c.bc_id == ann)
    before = chain.quiet()

    env.bc.update("items", bolt, {"displayName": "Hex bolt"})
    wait_for(lambda: env.dv.get("product", product)["name"] == "Hex bolt")
    # Business Central takes no subscription to contacts; a Sales contact is notified all the same
    env.dv.update("contact", contact, {"lastname": "Leigh"}, as_user=chain.user)
    number = env.bc.get("contacts", ann)["number"]
    wait_for(lambda: next(c for c in env.bc.rows("ContactCard") if c["No"] == number)["Surname"] == "Leigh")
    chain.quiet()
    assert {r.run.kind for r in chain.new_runs(before)} == {RunKind.NOTIFIED}


def test_a_collection_notification_reads_the_changes(chain):
    env = chain.env
    env.bc.subscriptions.configure(collection_after=1, delay=0.5)
    adatum, adatum_account = coupled(chain, "Adatum")
    fabrikam, fabrikam_account = coupled(chain, "Fabrikam")
    env.bc.update("customers", adatum, {"city": "Boston"})
    env.bc.update("customers", fabrikam, {"city": "Oslo"})
    wait_for(lambda: (env.dv.get("account", adatum_account)["address1_city"],
                      env.dv.get("account", fabrikam_account)["address1_city"]) == ("Boston", "Oslo"))
    [posted] = [d for d in env.bc.subscriptions.delivered if d["url"] == chain.bc_receiver]
    assert [e["changeType"] for e in posted["body"]["value"]] == ["collection"]


def test_a_lost_notification_is_caught_by_the_next_scheduled_run(chain, monkeypatch):
    env = chain.env
    adatum, adatum_account = coupled(chain, "Adatum")
    fabrikam, fabrikam_account = coupled(chain, "Fabrikam")
    # Business Central cannot reach the receiver and gives up at once; Dataverse's post fails its only attempt
    env.bc.subscriptions.configure(retry_period=dt.timedelta(0))
    for subscription in env.bc.subscriptions.live():
        subscription.notification_url = "http://127.0.0.1:9/api/webhooks/businesscentral"
    [endpoint] = env.dv.rows("serviceendpoint")
    env.dv.update("serviceendpoint", endpoint["serviceendpointid"],
                  {"url": "http://127.0.0.1:9/api/webhooks/dataverse"})
    monkeypatch.setattr(env.dv.webhooks, "max_attempts", 1)
    before = chain.quiet()

    env.bc.update("customers", adatum, {"city": "Lost"})
    env.dv.update("account", fabrikam_account, {"telephone1": "555-0199"}, as_user=chain.user)
    wait_for(lambda: env.bc.subscriptions.delivered and {j.status for j in env.dv.webhooks.jobs} == {"failed"},
             what="the failed deliveries")
    assert env.bc.subscriptions.delivered[-1]["status"] == 0 and not env.bc.subscriptions.pending
    assert chain.new_runs(chain.quiet(seconds=0.5)) == [] and chain.runs() == before

    scheduled = chain.ran(RunKind.SCHEDULED, ["CUSTOMER"])
    assert scheduled.run.status is RunStatus.DONE
    assert env.dv.get("account", adatum_account)["address1_city"] == "Lost"
    assert env.bc.get("customers", fabrikam)["phoneNumber"] == "555-0199"


def accepted_runs(summary: dict) -> set[str]:
    return {m["run"] for found in summary["companies"].values() for m in found.values()}


def test_a_forged_notification_with_the_key_writes_nothing_and_one_without_it_is_refused(chain):
    env = chain.env
    adatum, account = coupled(chain, "Adatum")
    key, crm_key = env.services.webhook_key(Side.BC), env.services.webhook_key(Side.CRM)
    chain.quiet()
    accounts = {a["accountid"]: a["versionnumber"] for a in env.dv.rows("account")}
    customers = {c["id"]: c["lastModifiedDateTime"] for c in env.bc.rows("customers")}
    count = RequestCount(env)

    deleted = {"subscriptionId": "forged", "clientState": key, "expirationDateTime": "2030-01-01T00:00:00Z",
               "resource": f"api/v2.0/companies({env.bc.company_id})/customers({adatum})", "changeType": "deleted",
               "lastModifiedDateTime": "2030-01-01T00:00:00Z"}
    status, _, body = call("POST", chain.bc_receiver, {"value": [deleted]})
    assert status == 202
    runs = accepted_runs(json.loads(body))
    delete = context(MessageName="Delete", PrimaryEntityId=account)
    status, summary = post(chain.crm_receiver, delete, crm_key)
    assert status == 202
    runs |= accepted_runs(summary)
    reports = [chain.finished(run_id) for run_id in runs]
    assert sum(map(written, reports)) == 0 and all(j.counts.failed == 0 for r in reports for j in r.jobs)
    assert sum(count.writes.values()) == 0, count.sent
    assert {a["accountid"]: a["versionnumber"] for a in env.dv.rows("account")} == accounts
    assert {c["id"]: c["lastModifiedDateTime"] for c in env.bc.rows("customers")} == customers
    assert pair_of(env, adatum).crm_id == account and env.errors() == []

    before = chain.runs()
    assert call("POST", chain.bc_receiver, {"value": [{**deleted, "clientState": key[:-1]}]})[0] == 401
    assert post(chain.crm_receiver, delete, crm_key[:-1])[0] == 401
    assert post(chain.crm_receiver, delete, key)[0] == 401  # each service has its own key
    assert post(chain.crm_receiver, delete, None)[0] == 401
    assert chain.runs() == before


def test_renewal_by_the_timer_keeps_notifications_coming(chain):
    env = chain.env
    adatum, account = coupled(chain, "Adatum")
    first = {s.entity_set: s.expires for s in env.bc.subscriptions.live()}
    env.bc.advance(dt.timedelta(days=2, hours=1))   # less than a day left
    function_app.scheduled_sync(TimerRequest(past_due=False))
    renewed = {s.entity_set: s.expires for s in env.bc.subscriptions.live()}
    assert set(renewed) == set(first) and all(renewed[t] > first[t] for t in first)
    chain.quiet()

    env.bc.advance(dt.timedelta(days=1, hours=1))   # past the first expiry: only the renewal keeps them
    assert {s.entity_set for s in env.bc.subscriptions.live()} == set(first)
    env.bc.update("customers", adatum, {"city": "Renewed"})
    wait_for(lambda: env.dv.get("account", account)["address1_city"] == "Renewed")


def test_one_notified_change_costs_a_few_requests(chain):
    env = chain.env
    adatum, account = coupled(chain, "Adatum")
    count = RequestCount(env)
    for city in ("Warm", "Counted"):   # the first also asks WhoAmI once for this worker's Dataverse receiver
        chain.quiet()
        start, sent = count.total(), len(count.sent)
        env.bc.update("customers", adatum, {"city": city})
        wait_for(lambda: env.dv.get("account", account)["address1_city"] == city)
        chain.quiet()
    # the customer by id, its page fields, the account, the account's write; the Sales post of that write is
    # dropped without a request
    assert count.total() - start <= 4, count.sent[sent:]

    # the other way: CUSTOMER's read and write, VENDOR's reads of the account, and the echo from Business Central
    start, sent = count.total(), len(count.sent)
    env.dv.update("account", account, {"telephone1": "555-0142"}, as_user=chain.user)
    wait_for(lambda: env.bc.get("customers", adatum)["phoneNumber"] == "555-0142")
    chain.quiet()
    assert count.total() - start <= 8, count.sent[sent:]
    assert sum("WhoAmI" in line for line in count.sent) == 1
