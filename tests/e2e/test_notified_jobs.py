"""Targeted jobs: a notification from either service makes bcsync read the row it names again, by id, and
synchronise it as a scheduled job would had it found it changed; the watermark, the schedule and the rows nobody
notified are left to the scheduled runs, and a notification that tells nothing true writes nothing."""

from __future__ import annotations

import time

import pytest

from sync.model import Direction, Side
from sync.notifications import Change, Notification
from sync.runs import RunKind, RunStatus
from sync.targeted import NotifiedRow

from .conftest import job
from .test_incremental_cost import RequestCount


@pytest.fixture
def env(env):
    return env.configure(BCSYNC_WEBHOOK_WINDOW_SECONDS=0)


def bc(env, change, record_id="", table="customers"):
    return Notification(Side.BC, table, Change(change), record_id, env.settings.bc_company_id)


def crm(change, record_id="", table="account"):
    return Notification(Side.CRM, table, Change(change), record_id)


def notified(env, *notifications, timeout=60):
    """The targeted run the notifications started or joined, once it ended."""
    summary = env.services.notify(list(notifications))
    [run_id] = {m["run"] for found in summary["companies"].values() for m in found.values()}
    finished = lambda: env.services.report(run_id).run.status is not RunStatus.RUNNING
    assert env.worker.run_until(finished, timeout=timeout), "the targeted run did not end in time"
    report = env.services.report(run_id)
    assert report.run.kind is RunKind.NOTIFIED and report.run.trigger == "webhook"
    return report


def customer_pair(env, **values):
    [customer] = env.bc.seed("customers", [{"number": "10000", "displayName": "Adatum", "city": "Atlanta",
                                            **values}])
    env.full_sync(["CUSTOMER"])
    # new records are created by scheduled runs too (not under Synch. Only Coupled Records): so by targeted ones
    env.services.set_mapping("CUSTOMER", {"sync_only_coupled": False})
    [account] = env.dv.rows("account")
    return customer, account["accountid"]


def pair_of(env, customer):
    return next((c for c in env.couplings("CUSTOMER") if c.bc_id == customer), None)


def written(report) -> int:
    return sum(j.counts.inserted + j.counts.modified + j.counts.deleted + j.counts.uncoupled for j in report.jobs)


def test_customers_created_updated_and_deleted_in_business_central(env):
    customer, account = customer_pair(env)
    env.services.set_mapping("CUSTOMER", {"deletion_conflict": "remove-coupling"})

    [fabrikam] = env.bc.seed("customers", [{"number": "20000", "displayName": "Fabrikam", "city": "Lyon"}])
    report = notified(env, bc(env, "created", fabrikam))
    assert job(report, "CUSTOMER:to-crm").counts.inserted == 1
    assert job(report, "CUSTOMER:to-crm").mode.value == "notified"
    assert env.dv.get("account", pair_of(env, fabrikam).crm_id)["name"] == "Fabrikam"

    env.bc.update("customers", customer, {"city": "Savannah"})
    report = notified(env, bc(env, "updated", customer))
    assert job(report, "CUSTOMER:to-crm").counts.modified == 1 and written(report) == 1
    assert env.dv.get("account", account)["address1_city"] == "Savannah"

    env.bc.delete("customers", customer)
    report = notified(env, bc(env, "deleted", customer))   # in seconds, not at the next reconciliation
    assert job(report, "CUSTOMER:from-crm").counts.uncoupled == 1
    assert pair_of(env, customer) is None
    assert env.dv.get("account", account)["name"] == "Adatum"   # the resolution removes the coupling only
    assert env.errors() == []


def test_accounts_created_updated_and_deleted_in_sales(env):
    customer, account = customer_pair(env)
    user = env.stack.ids.user_systemuser_id

    [contoso] = env.dv.seed("account", [{"name": "Contoso", "customertypecode": 3, "address1_city": "Paris"}])
    report = notified(env, crm("created", contoso))
    assert job(report, "CUSTOMER:from-crm").counts.inserted == 1
    assert env.bc.get("customers", next(c.bc_id for c in env.couplings("CUSTOMER")
                                        if c.crm_id == contoso))["displayName"] == "Contoso"

    env.dv.update("account", account, {"telephone1": "555-0100"}, as_user=user)
    report = notified(env, crm("updated", account))
    assert job(report, "CUSTOMER:from-crm").counts.modified == 1 and written(report) == 1
    assert env.bc.get("customers", customer)["phoneNumber"] == "555-0100"

    env.dv.delete("account", account)
    report = notified(env, crm("deleted", account))
    # the deletion goes through the BC -> Sales pass's deletion-conflict resolution, which reports it by default
    assert job(report, "CUSTOMER:from-crm").counts.failed == 1
    [error] = env.errors()
    assert error.code == "DeletionConflict" and error.source_id == customer and error.target_id == account
    assert pair_of(env, customer).crm_id == account


def test_items_and_products_by_notification(env):
    env.bc.seed("unitsOfMeasure", [{"code": "PCS", "displayName": "Piece"}])
    [bolt] = env.bc.seed("items", [{"number": "1000", "displayName": "Bolt", "baseUnitOfMeasureCode": "PCS",
                                    "unitPrice": 1}])
    env.full_sync()
    env.services.set_mapping("ITEM-PRODUCT", {"sync_only_coupled": False})
    product = next(c.crm_id for c in env.couplings("ITEM-PRODUCT") if c.bc_id == bolt)

    env.bc.update("items", bolt, {"displayName": "Hex bolt"})
    [nut] = env.bc.seed("items", [{"number": "2000", "displayName": "Nut", "baseUnitOfMeasureCode": "PCS",
                                   "unitPrice": 2}])
    report = notified(env, bc(env, "updated", bolt, "items"), bc(env, "created", nut, "items"))
    counts = job(report, "ITEM-PRODUCT:to-crm").counts
    assert (counts.modified, counts.inserted, counts.failed) == (1, 1, 0)
    assert env.dv.get("product", product)["name"] == "Hex bolt"
    assert {j.mapping for j in report.jobs} == {"ITEM-PRODUCT"}   # customers were not notified

    env.bc.delete("items", nut)
    nut_product = next(c.crm_id for c in env.couplings("ITEM-PRODUCT") if c.bc_id == nut)
    env.services.set_mapping("ITEM-PRODUCT", {"deletion_conflict": "remove-coupling"})
    report = notified(env, bc(env, "deleted", nut, "items"))
    assert sum(j.counts.uncoupled for j in report.jobs) == 1
    assert env.dv.get("product", nut_product)["name"] == "Nut"


def test_a_collection_runs_the_incremental_job_which_moves_the_watermark(env):
    customer, account = customer_pair(env)
    [fabrikam] = env.bc.seed("customers", [{"number": "20000", "displayName": "Fabrikam"}])
    env.bc.update("customers", customer, {"city": "Boston"})
    mark = env.services.state.watermark("CUSTOMER", Direction.TO_CRM)
    report = notified(env, bc(env, "collection"), bc(env, "updated", customer))
    to_crm = job(report, "CUSTOMER:to-crm")
    assert (to_crm.counts.inserted, to_crm.counts.modified) == (1, 1)
    assert env.dv.get("account", account)["address1_city"] == "Boston"
    assert pair_of(env, fabrikam) is not None
    assert env.services.state.watermark("CUSTOMER", Direction.TO_CRM) > mark  # as a scheduled job's
    assert env.services.state.notified("CUSTOMER", Direction.TO_CRM) == []  # the row notified too is taken


def test_a_replayed_notification_never_brings_back_a_counterpart_deleted_after_uncoupling(env):
    env.configure(BCSYNC_WATERMARK_MARGIN_SECONDS=0)
    customer, account = customer_pair(env)
    [contoso] = env.bc.seed("customers", [{"number": "20000", "displayName": "Contoso"}])
    env.sync(["CUSTOMER"])
    contoso_account = pair_of(env, contoso).crm_id
    env.dv.update("account", contoso_account, {"telephone1": "555-0100"})  # last changed by a user, not bcsync
    env.sync(["CUSTOMER"])
    # the user uncouples both pairs, deletes Adatum's account and Contoso's customer; scheduled runs go by, after
    # later changes on both sides (a second on: Sales keeps whole seconds)
    env.services.uncouple("CUSTOMER", Side.BC, customer)
    env.services.uncouple("CUSTOMER", Side.BC, contoso)
    env.dv.delete("account", account)
    env.bc.delete("customers", contoso)
    time.sleep(1.1)
    env.bc.seed("customers", [{"number": "30000", "displayName": "Litware"}])
    env.dv.seed("account", [{"name": "Northwind", "customertypecode": 3}])
    env.sync(["CUSTOMER"])
    customers, accounts = len(env.bc.rows("customers")), len(env.dv.rows("account"))
    # both services send their old notifications again (Business Central retries for 36 hours)
    report = notified(env, bc(env, "updated", customer), crm("updated", contoso_account))
    assert written(report) == 0 and sum(j.counts.failed for j in report.jobs) == 0
    assert (len(env.bc.rows("customers")), len(env.dv.rows("account"))) == (customers, accounts)
    assert pair_of(env, customer) is None
    # a change made since is synchronised as a scheduled run would: the uncoupled customer gets an account again
    env.bc.update("customers", customer, {"city": "Tulsa"})
    report = notified(env, bc(env, "updated", customer))
    assert job(report, "CUSTOMER:to-crm").counts.inserted == 1


def test_the_same_notification_twice_writes_once(env):
    customer, account = customer_pair(env)
    env.bc.update("customers", customer, {"city": "Denver"})
    assert written(notified(env, bc(env, "updated", customer))) == 1
    count = RequestCount(env)
    again = count.measure("the same notification again", lambda: notified(env, bc(env, "updated", customer)))
    assert written(again) == 0 and job(again, "CUSTOMER:to-crm").counts.unchanged == 1
    assert sum(count.writes.values()) == 0, count.sent


def test_a_forged_notification_only_reads(env):
    customer, account = customer_pair(env)
    accounts = {a["accountid"]: a["versionnumber"] for a in env.dv.rows("account")}
    customers = {c["id"]: c["lastModifiedDateTime"] for c in env.bc.rows("customers")}
    count = RequestCount(env)
    forged = [bc(env, "deleted", customer), bc(env, "updated", customer), crm("deleted", account),
              crm("updated", account), bc(env, "updated", "00000000-0000-0000-0000-00000000beef"),
              crm("created", "00000000-0000-0000-0000-00000000beef")]
    report = count.measure("forged notifications", lambda: notified(env, *forged))
    assert written(report) == 0 and sum(j.counts.failed for j in report.jobs) == 0
    assert sum(count.writes.values()) == 0, count.sent
    assert {a["accountid"]: a["versionnumber"] for a in env.dv.rows("account")} == accounts
    assert {c["id"]: c["lastModifiedDateTime"] for c in env.bc.rows("customers")} == customers
    assert pair_of(env, customer).crm_id == account and env.errors() == []

    # a table no mapping reads, or a company bcsync does not synchronise, records and starts nothing
    runs = len(env.services.runs.list_runs(limit=100))
    summary = env.services.notify([crm("updated", account, "task"), Notification(
        Side.BC, "customers", Change.UPDATED, customer, "11111111-2222-3333-4444-555555555555")])
    assert summary["ignored"] == 1 and all(not found for found in summary["companies"].values())
    assert len(env.services.runs.list_runs(limit=100)) == runs


def test_notifications_within_the_window_make_one_run_with_one_job_per_direction(env):
    env.configure(BCSYNC_WEBHOOK_WINDOW_SECONDS=2)
    ids = env.bc.seed("customers", [{"number": f"{n:05d}", "displayName": f"Customer {n}"} for n in range(10)])
    env.full_sync(["CUSTOMER"])
    for customer in ids:
        env.bc.update("customers", customer, {"city": "Oslo"})
    summaries = [env.services.notify([bc(env, "updated", customer)]) for customer in ids]
    runs = {found["CUSTOMER"]["run"] for s in summaries for found in s["companies"].values()}
    assert len(runs) == 1
    assert [found["CUSTOMER"]["joined"] for s in summaries for found in s["companies"].values()] == [False] + [True] * 9
    [run_id] = runs
    assert env.worker.run_until(lambda: env.services.report(run_id).run.status is not RunStatus.RUNNING, timeout=60)
    report = env.services.report(run_id)
    assert sorted(j.job_id for j in report.jobs) == ["CUSTOMER:from-crm", "CUSTOMER:to-crm"]
    assert job(report, "CUSTOMER:to-crm").counts.modified == 10
    assert {a["address1_city"] for a in env.dv.rows("account")} == {"Oslo"}
    # the job log lists it with the others
    assert env.services.job_log(limit=1)[0].to_dict()["kind"] == "notified"


def test_a_notified_record_that_fails_is_recorded_and_retried_by_the_next_run(env):
    customer_pair(env)
    env.bc.seed("salespeoplePurchasers", [{"code": "JR", "displayName": "Jim", "email": "jim@contoso.com"}])
    [orphan] = env.bc.seed("customers", [{"number": "30000", "displayName": "Orphan Inc.", "salespersonCode": "JR"}])
    report = notified(env, bc(env, "created", orphan))
    assert job(report, "CUSTOMER:to-crm").counts.failed == 1
    [failure] = env.errors()
    assert failure.source_id == orphan and failure.job_id.startswith(report.run.run_id)
    again = env.sync(["CUSTOMER"])   # retried by the next run, changed or not
    assert job(again, "CUSTOMER:to-crm").counts.failed == 1
    assert [(f.source_id, f.count) for f in env.errors()] == [(orphan, 2)]


def test_a_targeted_job_leaves_other_rows_to_the_scheduled_run(env):
    env.configure(BCSYNC_WATERMARK_MARGIN_SECONDS=0)
    adatum, fabrikam = env.bc.seed("customers", [{"number": "10000", "displayName": "Adatum"},
                                                 {"number": "20000", "displayName": "Fabrikam"}])
    env.full_sync(["CUSTOMER"])
    env.sync(["CUSTOMER"])
    mark = env.services.state.watermark("CUSTOMER", Direction.TO_CRM)
    env.bc.update("customers", adatum, {"city": "Madrid"})     # changed first, never notified
    env.bc.update("customers", fabrikam, {"city": "Lisbon"})
    report = notified(env, bc(env, "updated", fabrikam))
    assert job(report, "CUSTOMER:to-crm").counts.modified == 1
    assert env.services.state.watermark("CUSTOMER", Direction.TO_CRM) == mark
    scheduled = env.sync(["CUSTOMER"])
    to_crm = job(scheduled, "CUSTOMER:to-crm")
    assert to_crm.counts.modified == 1 and to_crm.counts.unchanged == 1   # Fabrikam is found unchanged
    assert env.dv.get("account", pair_of(env, adatum).crm_id)["address1_city"] == "Madrid"


def test_several_companies_a_bc_notification_goes_to_its_company_and_a_sales_one_to_each(env):
    cronus, fabrikam = env.bc.company_id, env.bc.add_company("FABRIKAM Inc.")
    env.configure(BCSYNC_COMPANIES=f"CRONUS={cronus}; FABRIKAM={fabrikam}")
    fabrikam_row = env.dv.create("bcbi_company", {"bcbi_externalid": fabrikam, "bcbi_name": "FABRIKAM"})
    [customer] = env.bc.seed("customers", [{"number": "10000", "displayName": "Adatum (FABRIKAM)"}],
                             company_id=fabrikam)
    [own] = env.dv.seed("account", [{"name": "FABRIKAM's own", "customertypecode": 3,
                                     "bcbi_companyid": fabrikam_row}])
    for name in ("CRONUS", "FABRIKAM"):
        services = env.services.for_company(name)
        started = services.start_run(RunKind.FULL, trigger="test", mappings=["CUSTOMER"])
        assert env.worker.run_until(lambda: services.report(started.run_id).run.status is not RunStatus.RUNNING,
                                    timeout=60)
    # CRONUS would create customers from new accounts: of its own, or of no company, never of FABRIKAM
    env.services.for_company("CRONUS").set_mapping("CUSTOMER", {"sync_only_coupled": False})
    env.bc.update("customers", customer, {"city": "Oslo"}, company_id=fabrikam)
    env.dv.update("account", own, {"telephone1": "555-0199"}, as_user=env.stack.ids.user_systemuser_id)

    summary = env.services.notify([Notification(Side.BC, "customers", Change.UPDATED, customer, fabrikam),
                                   crm("updated", own)])
    assert set(summary["companies"]) == {"CRONUS", "FABRIKAM"}
    assert summary["companies"]["CRONUS"]["CUSTOMER"]["rows"] == {"from-crm": 1}   # the Sales one only
    reports = {}
    for name, found in summary["companies"].items():
        services, run_id = env.services.for_company(name), found["CUSTOMER"]["run"]
        assert env.worker.run_until(lambda: services.report(run_id).run.status is not RunStatus.RUNNING, timeout=60)
        reports[name] = services.report(run_id)
    assert job(reports["FABRIKAM"], "CUSTOMER:to-crm").counts.modified == 1
    assert job(reports["FABRIKAM"], "CUSTOMER:from-crm").counts.modified == 1
    assert written(reports["CRONUS"]) == 0   # FABRIKAM's account is not CRONUS's to read
    assert env.bc.get("customers", customer, company_id=fabrikam)["city"] == "Oslo"
    [fabrikams] = [c for c in env.bc.rows("customers", company_id=fabrikam) if c["displayName"] == "FABRIKAM's own"]
    assert fabrikams["phoneNumber"] == "555-0199"
    assert all(c.get("phoneNumber") != "555-0199" for c in env.bc.rows("customers"))


def test_a_row_notified_again_while_its_job_works_stays_for_the_next_job(env):
    state = env.services.state
    first, second = "00000000-0000-0000-0000-0000000000a1", "00000000-0000-0000-0000-0000000000a2"
    state.notify("CUSTOMER", Direction.TO_CRM, [NotifiedRow(first, Change.UPDATED), NotifiedRow(second, Change.UPDATED)])
    taken = state.notified("CUSTOMER", Direction.TO_CRM)
    state.notify("CUSTOMER", Direction.TO_CRM, [NotifiedRow(second, Change.DELETED)])  # while the job works
    state.clear_notified("CUSTOMER", Direction.TO_CRM, taken)  # in one transaction, by ETag
    assert [(r.record_id, r.change) for r in state.notified("CUSTOMER", Direction.TO_CRM)] == [(second, Change.DELETED)]
    state.clear_notified("CUSTOMER", Direction.TO_CRM, taken)  # the first gone: a row at a time, by ETag still
    assert [(r.record_id, r.change) for r in state.notified("CUSTOMER", Direction.TO_CRM)] == [(second, Change.DELETED)]


def test_the_run_list_tells_targeted_runs_from_the_others(env):
    customer, account = customer_pair(env)   # a full run
    targeted = notified(env, bc(env, "updated", customer)).run.run_id
    scheduled = env.sync(["CUSTOMER"]).run.run_id
    runs = env.services.runs
    assert [r.run_id for r in runs.list_runs(limit=1, targeted=True)] == [targeted]
    assert [r.run_id for r in runs.list_runs(limit=2, targeted=False)][0] == scheduled
    assert targeted not in {r.run_id for r in runs.list_runs(limit=10, targeted=False)}
    assert {targeted, scheduled} <= {r.run_id for r in runs.list_runs(limit=10)}
