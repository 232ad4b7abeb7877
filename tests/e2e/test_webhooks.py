"""Webhooks across the whole chain: the function app served over real HTTP with a worker taking its queue, its
webhooks registered at both simulators, which POST real notifications to its receivers; the targeted runs they start
carry each change to the other side in seconds, with no scheduled run.

Most tests turn both simulators' automatic delivery off and post what is queued themselves (`Chain.settle`), so that
"nothing more happens" is a fact, not a quiet period; the first and the collection test keep the services' own
timing."""

from __future__ import annotations

import datetime as dt
import json
import time
import types

import pytest
from azure.functions.timer import TimerRequest

import function_app
from bcsync import host
from simulators.stack import free_port
from sync.model import Side
from sync.notifications import BC_ROUTE, CRM_ROUTE
from sync.runs import RunKind, RunStatus
from tests.support import call, execution_context, post, wait_for

from .test_incremental_cost import RequestCount
from .test_notified_jobs import pair_of, written


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

    def by_hand(self) -> None:
        """Both simulators post only when `settle` (or the test) asks, at once."""
        self.env.bc.subscriptions.configure(automatic=False, delay=0)
        self.env.dv.webhooks.auto = False

    def settle(self, within: float = 30.0) -> list:
        """Posts every queued notification, waits for the runs they start, and again for what those runs' writes
        queued, until nothing is queued and no run is going; the runs then. Both simulators queue a notification
        when the write commits, so once this returns nothing more is on its way (automatic delivery is turned off
        first, and a post the background thread still has in hand is waited for)."""
        self.by_hand()
        deadline = time.monotonic() + within
        while True:
            posted = self.env.dv.webhooks.deliver() + self.env.bc.subscriptions.deliver_due(everything=True)
            runs = self.runs()
            busy = [r.run_id for r in runs if r.status is RunStatus.RUNNING]
            busy += [job.url for job in self.env.dv.webhooks.jobs if job.status == "in progress"]
            busy += ["a Business Central post"] * self.env.bc.subscriptions.in_flight
            if not posted and not busy:
                return runs
            assert time.monotonic() < deadline, f"still going: {busy[:5]}"
            if not posted:
                time.sleep(0.05)

    def new_runs(self, before: list, now: list | None = None) -> list:
        """Reports of the runs in `now` (by default, the runs now) that are not in `before`."""
        known = {r.run_id for r in before}
        return [self.services.report(r.run_id) for r in (self.runs() if now is None else now)
                if r.run_id not in known]


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
    env.dv.webhooks.retry_seconds = 0.2  # the next test's reset restores Dataverse's second
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
    """On the services' own timing (automatic delivery)."""
    env = chain.env
    customer, account = coupled(chain, "Adatum")
    before = chain.runs()

    env.bc.update("customers", customer, {"city": "Savannah"})
    wait_for(lambda: env.dv.get("account", account)["address1_city"] == "Savannah")
    env.dv.update("account", account, {"telephone1": "555-0100"}, as_user=chain.user)
    wait_for(lambda: env.bc.get("customers", customer)["phoneNumber"] == "555-0100")

    runs = chain.new_runs(before, chain.settle())   # what is still queued posted, no run going
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


@pytest.mark.parametrize("window", [2])
def test_notifications_within_the_window_from_both_services_make_one_run(chain):
    env = chain.env
    adatum, adatum_account = coupled(chain, "Adatum")
    fabrikam, fabrikam_account = coupled(chain, "Fabrikam")
    before = chain.settle()
    env.dv.update("account", adatum_account, {"telephone1": "555-0101"}, as_user=chain.user)
    env.dv.update("account", fabrikam_account, {"telephone1": "555-0102"}, as_user=chain.user)
    env.bc.update("customers", fabrikam, {"city": "Oslo"})
    # the three posts one after the other, well within the window
    assert env.dv.webhooks.deliver() == 2 and env.bc.subscriptions.deliver_due() == 1
    runs = sorted(chain.new_runs(before, chain.settle()), key=lambda r: r.run.created_at)
    assert (env.bc.get("customers", adatum)["phoneNumber"], env.bc.get("customers", fabrikam)["phoneNumber"],
            env.dv.get("account", fabrikam_account)["address1_city"]) == ("555-0101", "555-0102", "Oslo")
    first = {j.job_id: j.counts for j in runs[0].jobs}
    assert (first["CUSTOMER:from-crm"].modified, first["CUSTOMER:to-crm"].modified) == (2, 1)
    assert sum(map(written, runs[1:])) == 0   # what bcsync's writes were notified of


def test_created_and_deleted_on_each_side(chain):
    env = chain.env
    chain.settle()
    env.services.set_mapping("CUSTOMER", {"sync_only_coupled": False})   # new rows cross over (as scheduled)

    contoso = env.bc.create("customers", {"number": "30000", "displayName": "Contoso", "city": "Paris"})
    chain.settle()
    account = pair_of(env, contoso).crm_id
    assert env.dv.get("account", account)["name"] == "Contoso"

    litware = env.dv.create("account", {"name": "Litware", "customertypecode": 3})  # owned by no unmapped user
    chain.settle()
    found = next(c for c in env.couplings("CUSTOMER") if c.crm_id == litware)
    assert env.bc.get("customers", found.bc_id)["displayName"] == "Litware"

    # a Business Central deletion, through the deletion-conflict resolution (remove the coupling)
    env.services.set_mapping("CUSTOMER", {"deletion_conflict": "remove-coupling"})
    env.bc.delete("customers", contoso)
    chain.settle()
    assert pair_of(env, contoso) is None
    assert env.dv.get("account", account)["name"] == "Contoso"   # the resolution removes the coupling only

    # a Sales deletion, under the default resolution: reported, nothing deleted in Business Central
    env.services.set_mapping("CUSTOMER", {"deletion_conflict": "none"})
    adatum, adatum_account = coupled(chain, "Adatum")
    env.dv.delete("account", adatum_account)
    chain.settle()
    [error] = env.errors()
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
    before = chain.settle()
    env.bc.delete("customers", adatum)
    env.dv.delete("account", fabrikam_account)
    runs = chain.new_runs(before, chain.settle())
    assert [c["displayName"] for c in env.bc.rows("customers") if c["displayName"] == "Adatum"] == ["Adatum"]
    assert [a["name"] for a in env.dv.rows("account") if a["name"] == "Fabrikam"] == ["Fabrikam"]
    assert {r.run.kind for r in runs} == {RunKind.NOTIFIED}
    assert sum(j.counts.inserted for r in runs for j in r.jobs) == 2   # one restore each, no more
    assert sum(j.counts.modified + j.counts.deleted for r in runs for j in r.jobs) == 0
    assert env.errors() == [] and written(chain.ran(RunKind.SCHEDULED, ["CUSTOMER"])) == 0


def test_a_duplicated_and_reordered_delivery_ends_right(chain):
    """Dataverse may post a context twice and in any order: Adatum's Delete arrives (twice) before its Update (twice),
    Fabrikam's Update twice; the deletion's resolution holds and the update is written once."""
    env = chain.env
    env.services.set_mapping("CUSTOMER", {"deletion_conflict": "remove-coupling"})
    adatum, adatum_account = coupled(chain, "Adatum")
    fabrikam, fabrikam_account = coupled(chain, "Fabrikam")
    before = chain.settle()
    env.dv.webhooks.duplicate = env.dv.webhooks.newest_first = True
    env.dv.update("account", fabrikam_account, {"telephone1": "555-0177"}, as_user=chain.user)
    env.dv.update("account", adatum_account, {"telephone1": "555-0178"}, as_user=chain.user)
    env.dv.delete("account", adatum_account)
    assert env.dv.webhooks.deliver(at_most=2) == 2   # the Delete, twice
    wait_for(lambda: pair_of(env, adatum) is None, what="the removed coupling")
    runs = chain.new_runs(before, chain.settle())   # then Adatum's Update twice, Fabrikam's twice
    assert [j.body["MessageName"] for j in env.dv.webhooks.jobs[-6:]] == ["Update"] * 4 + ["Delete"] * 2
    assert env.bc.get("customers", adatum)["phoneNumber"] != "555-0178"   # its row was gone when read
    assert env.bc.get("customers", fabrikam)["phoneNumber"] == "555-0177"
    counts = [j.counts for r in runs for j in r.jobs]
    # Adatum's coupling removed once, Fabrikam's phone written once; nothing inserted, deleted or failed
    assert (sum(c.uncoupled for c in counts), sum(c.modified for c in counts)) == (1, 1)
    assert sum(c.inserted + c.deleted + c.failed for c in counts) == 0 and env.errors() == []
    assert written(chain.ran(RunKind.SCHEDULED, ["CUSTOMER"])) == 0


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
    before = chain.settle()

    env.bc.update("items", bolt, {"displayName": "Hex bolt"})
    # Business Central takes no subscription to contacts; a Sales contact is notified all the same
    env.dv.update("contact", contact, {"lastname": "Leigh"}, as_user=chain.user)
    runs = chain.new_runs(before, chain.settle())
    assert env.dv.get("product", product)["name"] == "Hex bolt"
    number = env.bc.get("contacts", ann)["number"]
    assert next(c for c in env.bc.rows("ContactCard") if c["No"] == number)["Surname"] == "Leigh"
    assert runs and {r.run.kind for r in runs} == {RunKind.NOTIFIED}


def test_a_collection_notification_reads_the_changes(chain):
    """On Business Central's own timing: its coalescing delay gathers both rows in one post."""
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


def test_a_lost_notification_is_caught_by_the_next_scheduled_run(chain):
    env = chain.env
    adatum, adatum_account = coupled(chain, "Adatum")
    fabrikam, fabrikam_account = coupled(chain, "Fabrikam")
    before = chain.settle()
    # Business Central cannot reach the receiver and gives up at once; Dataverse's post fails its only attempt
    env.bc.subscriptions.configure(retry_period=dt.timedelta(0))
    for subscription in env.bc.subscriptions.live():
        subscription.notification_url = "http://127.0.0.1:9/api/webhooks/businesscentral"
    [endpoint] = env.dv.rows("serviceendpoint")
    env.dv.update("serviceendpoint", endpoint["serviceendpointid"],
                  {"url": "http://127.0.0.1:9/api/webhooks/dataverse"})
    env.dv.webhooks.max_attempts = 1   # the next test's reset restores Dataverse's three

    env.bc.update("customers", adatum, {"city": "Lost"})
    env.dv.update("account", fabrikam_account, {"telephone1": "555-0199"}, as_user=chain.user)
    assert chain.settle() == before   # both posts made and failed: no run started
    assert [d["status"] for d in env.bc.subscriptions.delivered] == [0] and not env.bc.subscriptions.pending
    assert [j.status for j in env.dv.webhooks.jobs] == ["failed"]

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
    chain.settle()
    accounts = {a["accountid"]: a["versionnumber"] for a in env.dv.rows("account")}
    customers = {c["id"]: c["lastModifiedDateTime"] for c in env.bc.rows("customers")}
    count = RequestCount(env)

    deleted = {"subscriptionId": "forged", "clientState": key, "expirationDateTime": "2030-01-01T00:00:00Z",
               "resource": f"api/v2.0/companies({env.bc.company_id})/customers({adatum})", "changeType": "deleted",
               "lastModifiedDateTime": "2030-01-01T00:00:00Z"}
    status, _, body = call("POST", chain.bc_receiver, {"value": [deleted]})
    assert status == 202
    runs = accepted_runs(json.loads(body))
    delete = execution_context(MessageName="Delete", PrimaryEntityId=account)
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
    chain.settle()

    env.bc.advance(dt.timedelta(days=1, hours=1))   # past the first expiry: only the renewal keeps them
    assert {s.entity_set for s in env.bc.subscriptions.live()} == set(first)
    env.bc.update("customers", adatum, {"city": "Renewed"})
    chain.settle()
    assert env.dv.get("account", account)["address1_city"] == "Renewed"


def test_one_notified_change_costs_a_few_requests(chain):
    env = chain.env
    adatum, account = coupled(chain, "Adatum")
    count = RequestCount(env)
    for city in ("Warm", "Counted"):
        chain.settle()
        start, sent = count.total(), len(count.sent)
        env.bc.update("customers", adatum, {"city": city})
        chain.settle()
        assert env.dv.get("account", account)["address1_city"] == city
    # the customer by id, its page fields, the account, the account's write; the Sales post of that write is
    # dropped without a request
    assert count.total() - start <= 4, count.sent[sent:]

    # the other way: CUSTOMER's read and write, VENDOR's reads of the account, and the echo from Business Central
    start, sent = count.total(), len(count.sent)
    env.dv.update("account", account, {"telephone1": "555-0142"}, as_user=chain.user)
    chain.settle()
    assert env.bc.get("customers", adatum)["phoneNumber"] == "555-0142"
    assert count.total() - start <= 8, count.sent[sent:]
    # the Dataverse receiver asks the engine's WhoAmI, which the synchronisation asked already in this worker
    assert sum("WhoAmI" in line for line in count.sent) == 0
