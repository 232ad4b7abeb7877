"""What notifications become: notified rows per mapping and direction, and one waiting targeted run per mapping
that later notifications join (sync.targeted, RunCoordinator.notify), with in-memory ports."""

import datetime as dt
from dataclasses import replace

import pytest

from sync.errors import ServiceUnavailableError, TerminalError, ThrottledError
from sync.config import StaticCatalog
from sync.mappings import Catalog, builtin_mappings
from sync.engine import JobMode
from sync.model import DeletionConflictResolution, Direction, Side
from sync.notifications import Change, Notification
from sync.runs import NOTIFY_CATALOG_SECONDS, ORPHAN_MARKER_SECONDS, JobStatus, RunKind, RunStatus
from sync.tables import BC_CUSTOMER, CRM_ACCOUNT
from sync.targeted import COLLECTION_ID, notified_rows
from shared.wiring import StoredCatalog
from tests.unit.test_runs import Harness

ID1, ID2 = "0a1b2c3d-0000-0000-0000-000000000001", "0a1b2c3d-0000-0000-0000-000000000002"


def bc(change, record_id="", table="customers"):
    return Notification(Side.BC, table, Change(change), record_id, "company")


def crm(change, record_id="", table="account"):
    return Notification(Side.CRM, table, Change(change), record_id)


def test_a_notification_names_the_directions_that_read_its_table():
    catalog = Catalog(builtin_mappings())
    assert list(notified_rows(catalog, [bc("updated", ID1)])) == [("CUSTOMER", Direction.TO_CRM)]
    assert ("CUSTOMER", Direction.FROM_CRM) in notified_rows(catalog, [crm("deleted", ID1)])
    # Sales logical names are compared without case, as Dataverse spells them
    assert ("CUSTOMER", Direction.FROM_CRM) in notified_rows(catalog, [crm("created", ID1, "Account")])
    # a table no enabled mapping reads from (CURRENCY goes to Sales only), or a row without an id: nothing
    assert notified_rows(catalog, [crm("updated", ID1, "transactioncurrency"), crm("updated", ID1, "task"),
                                   bc("updated", "")]) == {}
    disabled = Catalog([replace(m, enabled=False) if m.name == "CUSTOMER" else m for m in builtin_mappings()])
    assert notified_rows(disabled, [bc("updated", ID1)]) == {}


def test_repeated_notifications_of_a_row_coalesce_and_a_collection_is_one_row():
    catalog = Catalog(builtin_mappings())
    found = notified_rows(catalog, [bc("created", ID1), bc("updated", ID1), bc("updated", ID2),
                                    bc("deleted", ID1), bc("collection"), bc("collection")])
    rows = found[("CUSTOMER", Direction.TO_CRM)]
    assert [(r.record_id, r.change) for r in rows] == [(ID2, Change.UPDATED), (ID1, Change.DELETED),
                                                        (COLLECTION_ID, Change.COLLECTION)]


def test_notifications_before_the_job_starts_join_its_run_and_later_ones_start_another():
    h = Harness()
    first = h.coordinator.notify([bc("updated", ID1)], window_seconds=5)
    run_id = first["CUSTOMER"]["run"]
    run = h.runs.get(run_id)
    assert run.kind is RunKind.NOTIFIED and run.trigger == "webhook" and not first["CUSTOMER"]["joined"]
    assert [(m.job_id, delay) for m, delay in h.queue.messages] == [("CUSTOMER:to-crm", 5)]  # the window
    assert all(j.mode is JobMode.NOTIFIED for j in h.runs.jobs(run_id))

    second = h.coordinator.notify([bc("updated", ID2), crm("updated", ID1)], window_seconds=5)
    assert second["CUSTOMER"] == {"run": run_id, "joined": True, "rows": {"to-crm": 1, "from-crm": 1}}
    # VENDOR reads accounts too (of another relationship type): it had no run waiting, so it starts one
    assert not second["VENDOR"]["joined"] and second["VENDOR"]["run"] != run_id
    assert [m.job_id for m, _ in h.queue.messages].count("CUSTOMER:to-crm") == 1
    assert {r.record_id for r in h.w.state.notified("CUSTOMER", Direction.TO_CRM)} == {ID1, ID2}

    h.drain()
    assert all(j.status is JobStatus.DONE for j in h.runs.jobs(run_id))
    assert h.w.state.notified("CUSTOMER", Direction.TO_CRM) == []  # taken (the rows do not exist: nothing to do)
    third = h.coordinator.notify([bc("updated", ID1)], window_seconds=5)
    assert third["CUSTOMER"]["run"] != run_id and not third["CUSTOMER"]["joined"]


def test_a_row_notified_again_while_its_job_runs_is_kept_for_the_next_one():
    h = Harness()
    h.coordinator.notify([bc("updated", ID1)], window_seconds=0)
    taken = h.w.state.notified("CUSTOMER", Direction.TO_CRM)
    h.w.state.notify("CUSTOMER", Direction.TO_CRM, [replace(taken[0], change=Change.UPDATED)])  # arrives meanwhile
    h.w.state.clear_notified("CUSTOMER", Direction.TO_CRM, taken)
    assert [r.record_id for r in h.w.state.notified("CUSTOMER", Direction.TO_CRM)] == [ID1]


def test_a_waiting_run_that_never_started_is_replaced_once_its_window_has_passed():
    h = Harness()
    orphan = f"{h.w.clock.now():%Y%m%d-%H%M%S}-dead00"  # its start failed after the marker, and so did the release
    h.w.state.join_waiting_run("CUSTOMER", orphan, h.w.clock.now())
    joined = h.coordinator.notify([bc("updated", ID1)], window_seconds=5)
    assert joined["CUSTOMER"]["run"] == orphan  # its start may still be under way
    h.w.clock.tick(5 + ORPHAN_MARKER_SECONDS + 1)  # long before the lease would make the marker stale
    started = h.coordinator.notify([bc("updated", ID1)], window_seconds=5)
    assert not started["CUSTOMER"]["joined"] and h.runs.get(started["CUSTOMER"]["run"]) is not None


def test_the_services_retry_after_a_failed_start_and_release_starts_a_run():
    h = uncoupled_rows_synchronised()
    customer = h.w.customer("C00010", "Adatum")
    real_start, real_release = h.coordinator.start_run, h.w.state.release_waiting_run

    def down(*args, **kwargs):
        raise ServiceUnavailableError("503 storage")

    h.coordinator.start_run = h.w.state.release_waiting_run = down
    with pytest.raises(ServiceUnavailableError):
        h.coordinator.notify([bc("updated", customer)], window_seconds=5)
    h.coordinator.start_run, h.w.state.release_waiting_run = real_start, real_release
    h.w.clock.tick(60)  # storage is back; the service sends again
    again = h.coordinator.notify([bc("updated", customer)], window_seconds=5)
    assert not again["CUSTOMER"]["joined"]
    h.drain()
    assert [r["values"]["name"] for r in h.w.crm.rows(CRM_ACCOUNT).values()] == ["Adatum"]
    assert h.w.state.notified("CUSTOMER", Direction.TO_CRM) == []


def test_a_targeted_job_given_up_releases_its_waiting_run():
    h = Harness()
    # CURRENCY goes to Sales only: one job, whose start is where its marker would be released
    found = h.coordinator.notify([bc("updated", ID1, "currencies"), bc("updated", ID2, "unitsOfMeasure")],
                                 window_seconds=0)
    run_id = found["CURRENCY"]["run"]
    job = h.runs.get_job(run_id, "CURRENCY:to-crm")
    job.attempts_without_progress = h.coordinator.max_attempts  # the attempts before all died midway
    h.runs.save_job(job)
    [message] = [m for m, _ in h.queue.messages if m.job_id == "CURRENCY:to-crm"]
    h.coordinator.handle(message)
    assert h.runs.get_job(run_id, "CURRENCY:to-crm").status is JobStatus.FAILED
    assert h.runs.get(run_id).status is RunStatus.RUNNING  # UNIT OF MEASURE's job is still to run
    later = h.coordinator.notify([bc("updated", ID2, "currencies")], window_seconds=0)
    assert not later["CURRENCY"]["joined"] and later["CURRENCY"]["run"] != run_id


def test_several_mappings_notified_together_share_a_run_in_dependency_order():
    h = Harness()
    found = h.coordinator.notify([crm("updated", ID1, "contact"), crm("updated", ID2, "account")], window_seconds=0)
    assert found["CONTACT"]["run"] == found["CUSTOMER"]["run"]
    jobs = {j.job_id: j for j in h.runs.jobs(found["CUSTOMER"]["run"])}
    assert "CUSTOMER:from-crm" in jobs["CONTACT:to-crm"].depends_on


def test_a_job_mapping_runs_its_normal_job_and_records_no_rows():
    h = Harness()
    found = h.coordinator.notify([crm("updated", ID1, "salesorder")], window_seconds=0)
    [order_job] = [j for j in h.runs.jobs(found["SALESORDER-ORDER"]["run"]) if j.mapping == "SALESORDER-ORDER"]
    assert order_job.mode is JobMode.INCREMENTAL
    assert h.w.state.notified("SALESORDER-ORDER", Direction.FROM_CRM) == []


def test_targeted_runs_never_keep_the_scheduled_run_from_a_mapping_and_leave_its_schedule():
    h = Harness()
    h.coordinator.notify([bc("updated", ID1)], window_seconds=60)
    assert "CUSTOMER" not in h.coordinator.busy_mappings()
    h.drain()
    assert "CUSTOMER" not in h.w.state.schedules()


def test_a_notified_row_unchanged_since_its_coupling_writes_nothing():
    h = Harness()
    h.w.customer("C00010", "Adatum")
    h.coordinator.start_run(RunKind.FULL, trigger="test", mappings=["CUSTOMER"])
    h.drain()
    [coupling] = h.w.couplings.all("CUSTOMER").values()
    mark = h.w.state.watermark("CUSTOMER", Direction.TO_CRM)
    h.w.clock.tick(600)
    found = h.coordinator.notify([bc("deleted", coupling.bc_id), crm("updated", coupling.crm_id)], window_seconds=0)
    h.drain()
    report = h.report(found["CUSTOMER"]["run"]).to_dict()
    assert report["totals"]["unchanged"] == 2
    assert sum(report["totals"][k] for k in ("inserted", "modified", "deleted", "failed", "uncoupled")) == 0
    assert h.w.state.watermark("CUSTOMER", Direction.TO_CRM) == mark
    assert list(h.w.couplings.all("CUSTOMER").values()) == [coupling]
    assert isinstance(mark, dt.datetime)


def uncoupled_rows_synchronised():
    """A harness whose CUSTOMER mapping synchronises uncoupled rows too (not only coupled ones)."""
    h = Harness()
    catalog = Catalog([replace(m, sync_only_coupled=False) if m.name == "CUSTOMER" else m for m in h.w.catalog])
    h.w.engine.catalogs = h.coordinator.catalogs = StaticCatalog(catalog)
    return h


def test_a_replayed_notification_of_a_row_uncoupled_before_the_watermark_creates_no_counterpart():
    h = uncoupled_rows_synchronised()
    old = h.w.customer("C00010", "Adatum")
    h.coordinator.start_run(RunKind.FULL, trigger="test", mappings=["CUSTOMER"])
    h.drain()
    [coupling] = h.w.couplings.all("CUSTOMER").values()
    # the user uncouples it and deletes the account; a later scheduled run moves the watermark past the customer
    h.w.couplings.delete_many([coupling])
    h.w.crm.delete(CRM_ACCOUNT, coupling.crm_id)
    h.w.clock.tick(600)
    h.w.state.advance_watermark("CUSTOMER", Direction.TO_CRM, h.w.clock.now() - dt.timedelta(seconds=60))
    new = h.w.customer("C00020", "Fabrikam")  # an uncoupled customer changed since: a scheduled run creates it
    found = h.coordinator.notify([bc("updated", old), bc("created", new)], window_seconds=0)
    h.drain()
    assert [r["values"]["name"] for r in h.w.crm.rows(CRM_ACCOUNT).values()] == ["Fabrikam"]
    assert h.report(found["CUSTOMER"]["run"]).to_dict()["totals"]["inserted"] == 1


def test_a_collection_notification_runs_the_directions_incremental_job_moving_its_watermark_and_keeping_versions():
    h = uncoupled_rows_synchronised()
    h.w.customer("C00010", "Adatum")
    h.coordinator.notify([bc("collection"), bc("updated", ID1)], window_seconds=0)
    h.drain()
    assert [r["values"]["name"] for r in h.w.crm.rows(CRM_ACCOUNT).values()] == ["Adatum"]
    assert h.w.state.watermark("CUSTOMER", Direction.TO_CRM) is not None
    assert h.w.state.notified("CUSTOMER", Direction.TO_CRM) == []
    # as a scheduled run's: it keeps the versions of the rows its watermark stops short of
    assert h.w.state.known_versions("CUSTOMER", Direction.TO_CRM)


def customer_deleted_in_business_central(**engine):
    """A harness whose customer was coupled by a full run, then deleted in Business Central; and its coupling."""
    h = Harness()
    for name, value in engine.items():
        setattr(h.w.engine, name, value)
    h.w.customer("C00010", "Adatum")
    h.coordinator.start_run(RunKind.FULL, trigger="test", mappings=["CUSTOMER"])
    h.drain()
    [coupling] = h.w.couplings.all("CUSTOMER").values()
    h.w.clock.tick(600)
    h.w.bc.delete(BC_CUSTOMER, coupling.bc_id)
    return h, coupling


def test_a_notified_deletion_goes_through_its_resolution_with_a_collection_too():
    outcomes = []
    for notifications in ([], [bc("collection")]):
        h, coupling = customer_deleted_in_business_central()
        found = h.coordinator.notify([bc("deleted", coupling.bc_id), *notifications], window_seconds=0)
        h.drain()
        outcomes.append(h.report(found["CUSTOMER"]["run"]).to_dict()["totals"])
        assert h.w.state.notified("CUSTOMER", Direction.TO_CRM) == []
    assert outcomes[0] == outcomes[1] and outcomes[0]["failed"] == 1  # the deletion conflict, reported alike


def test_a_replayed_sales_notification_of_a_row_uncoupled_since_the_scheduled_run_creates_no_counterpart():
    h = Harness()
    catalog = Catalog([replace(m, sync_only_coupled=False, deletion_conflict=DeletionConflictResolution.REMOVE_COUPLING)
                       if m.name == "CUSTOMER" else m for m in h.w.catalog])
    h.w.engine.catalogs = h.coordinator.catalogs = StaticCatalog(catalog)
    account = h.w.account("Adatum", customertypecode=3)
    h.coordinator.start_run(RunKind.FULL, trigger="test", mappings=["CUSTOMER"])
    h.drain()
    [coupling] = h.w.couplings.all("CUSTOMER").values()
    h.w.clock.tick(3600)
    h.coordinator.start_run(RunKind.SCHEDULED, trigger="test", mappings=["CUSTOMER"])
    h.drain()
    # the account is the newest row the scheduled run read: the watermark sits at its modified-on
    assert h.w.state.watermark("CUSTOMER", Direction.FROM_CRM) == h.w.crm.rows(CRM_ACCOUNT)[account]["modified_on"]
    h.w.bc.delete(BC_CUSTOMER, coupling.bc_id)  # its resolution removes the coupling
    h.coordinator.notify([bc("deleted", coupling.bc_id)], window_seconds=0)
    h.drain()
    assert h.w.couplings.all("CUSTOMER") == {}
    h.w.clock.tick(3600)
    found = h.coordinator.notify([crm("created", account)], window_seconds=0)  # replayed
    h.drain()
    assert h.w.bc.rows(BC_CUSTOMER) == {} and h.report(found["CUSTOMER"]["run"]).to_dict()["totals"]["inserted"] == 0


def test_a_job_blocked_in_a_targeted_run_releases_its_waiting_run():
    h = Harness()
    h.w.crm.read_visible = lambda *a, **k: (_ for _ in ()).throw(TerminalError("refused"))
    first = h.coordinator.notify([crm("updated", ID1, "contact"), crm("updated", ID2, "account")], window_seconds=60)
    run_id = first["CONTACT"]["run"]
    while ready := [m for m, _ in h.queue.messages if not m.job_id.startswith("VENDOR")]:  # VENDOR's wait
        h.queue.messages = [(m, d) for m, d in h.queue.messages if m.job_id.startswith("VENDOR")]
        for message in ready:
            h.w.clock.tick(60)
            h.coordinator.handle(message)
    # CUSTOMER failed: CONTACT's jobs, waiting behind it, are blocked, while the run goes on (VENDOR's jobs)
    jobs = {j.job_id: j for j in h.runs.jobs(run_id)}
    assert jobs["CUSTOMER:from-crm"].status is JobStatus.FAILED
    assert jobs["CONTACT:to-crm"].status is jobs["CONTACT:from-crm"].status is JobStatus.BLOCKED
    assert h.runs.get(run_id).status is RunStatus.RUNNING
    later = h.coordinator.notify([crm("updated", ID1, "contact")], window_seconds=60)
    assert later["CONTACT"]["run"] != run_id and not later["CONTACT"]["joined"]


def test_a_waiting_run_found_finished_is_not_joined():
    h = Harness()
    first = h.coordinator.notify([bc("updated", ID1)], window_seconds=5)
    run = h.runs.get(first["CUSTOMER"]["run"])
    run.status = RunStatus.FAILED  # closed with its marker left (a release that failed)
    h.runs.save_run(run)
    later = h.coordinator.notify([bc("updated", ID2)], window_seconds=5)
    assert later["CUSTOMER"]["run"] != run.run_id and not later["CUSTOMER"]["joined"]


def test_rows_joined_to_a_run_whose_start_failed_are_taken_by_the_next_run():
    h = uncoupled_rows_synchronised()
    real = h.coordinator.start_run

    def joined_then_failed(*args, **kwargs):  # another receiver joins while this one starts the run, which fails
        h.coordinator.start_run = real
        assert h.coordinator.notify([bc("updated", ID2)], window_seconds=0)["CUSTOMER"]["joined"]
        raise ServiceUnavailableError("503 storage")

    customer = h.w.customer("C00010", "Adatum")
    h.coordinator.start_run = joined_then_failed
    with pytest.raises(ServiceUnavailableError):
        h.coordinator.notify([bc("updated", customer)], window_seconds=0)
    assert {r.record_id for r in h.w.state.notified("CUSTOMER", Direction.TO_CRM)} == {customer, ID2}
    again = h.coordinator.notify([bc("updated", customer)], window_seconds=0)  # the failed sender sends again
    assert not again["CUSTOMER"]["joined"]
    h.drain()
    assert h.w.state.notified("CUSTOMER", Direction.TO_CRM) == []
    assert [r["values"]["name"] for r in h.w.crm.rows(CRM_ACCOUNT).values()] == ["Adatum"]


def test_many_targeted_runs_keep_no_crashed_scheduled_run_from_the_safety_net():
    h = Harness()
    h.w.customer("C00010", "Adatum")
    run = h.coordinator.start_run(RunKind.SCHEDULED, trigger="timer", mappings=["CUSTOMER"])
    [message] = [m for m, _ in h.queue.messages if m.job_id == "CUSTOMER:to-crm"]
    h.queue.messages.clear()
    job = h.runs.get_job(run.run_id, message.job_id)  # its worker died: running, its lease run out
    job.status, job.lease_until = JobStatus.RUNNING, h.w.clock.now()
    h.runs.save_job(job)
    for i in range(60):  # targeted runs one after another, each newer than the crashed run
        h.coordinator.notify([bc("updated", f"0a1b2c3d-0000-0000-0001-{i:012d}", "vendors")], window_seconds=0)
        h.drain()
    assert len(h.runs.list_runs(limit=100)) == 61
    assert "CUSTOMER" in h.coordinator.busy_mappings()
    assert h.coordinator.recover() >= 1
    h.drain()
    assert h.runs.get(run.run_id).status is RunStatus.DONE


def test_a_storage_error_releasing_the_waiting_run_at_a_jobs_start_retries_the_job():
    h = Harness()
    found = h.coordinator.notify([bc("updated", ID1)], window_seconds=0)
    real = h.w.state.release_waiting_run

    def unavailable(mapping, run_id):
        h.w.state.release_waiting_run = real
        raise ServiceUnavailableError("503 storage")

    h.w.state.release_waiting_run = unavailable
    [(message, _)] = h.queue.messages
    h.queue.messages.clear()
    h.coordinator.handle(message)
    job = h.runs.get_job(found["CUSTOMER"]["run"], message.job_id)
    assert job.status is JobStatus.QUEUED and "503 storage" in job.message  # not left running until its lease ends
    h.drain()
    assert h.runs.get(found["CUSTOMER"]["run"]).status is RunStatus.DONE


def test_a_targeted_job_that_fails_after_taking_some_rows_each_time_is_not_given_up():
    h = Harness()
    h.w.engine.page_size = 1  # a page of notified rows at a time
    real, calls = h.w.bc.read_visible, []

    def every_second_read_throttled(*args, **kwargs):  # each attempt takes one page, then fails
        calls.append(1)
        if len(calls) % 2 == 0:
            raise ThrottledError("429 Too Many Requests")
        return real(*args, **kwargs)

    h.w.bc.read_visible = every_second_read_throttled
    ids = [f"0a1b2c3d-0000-0000-0002-{i:012d}" for i in range(h.coordinator.max_attempts + 3)]
    found = h.coordinator.notify([bc("updated", i) for i in ids], window_seconds=0)
    h.drain()
    [job] = [j for j in h.runs.jobs(found["CUSTOMER"]["run"]) if j.job_id == "CUSTOMER:to-crm"]
    assert job.status is JobStatus.DONE and job.attempts > h.coordinator.max_attempts
    assert h.w.state.notified("CUSTOMER", Direction.TO_CRM) == []


def test_notifications_in_a_burst_read_the_catalogue_once_every_few_seconds():
    h = Harness()
    reads = []

    class CountedStore:  # the stored overrides (none), as StoredCatalog reads them
        def load_checked(self):
            reads.append(1)
            return {}, {}

    h.coordinator.catalogs = StoredCatalog(CountedStore(), tuple(h.coordinator.catalogs.current()), h.w.clock)
    for _ in range(3):
        h.coordinator.notify([bc("updated", ID1)], window_seconds=5)
        h.w.clock.tick(1)
    assert len(reads) == 1
    h.w.clock.tick(NOTIFY_CATALOG_SECONDS)
    h.coordinator.notify([bc("updated", ID1)], window_seconds=5)
    assert len(reads) == 2


def test_a_scheduled_job_takes_the_notified_rows_no_targeted_job_took():
    h, coupling = customer_deleted_in_business_central(reconcile_every=dt.timedelta(days=1))
    real = h.coordinator.start_run

    def down(*args, **kwargs):
        raise ServiceUnavailableError("503 storage")

    h.coordinator.start_run = down  # the run that would take the deletion never starts, and nobody sends again
    with pytest.raises(ServiceUnavailableError):
        h.coordinator.notify([bc("deleted", coupling.bc_id), bc("collection")], window_seconds=0)
    h.coordinator.start_run = real
    run = h.coordinator.start_run(RunKind.SCHEDULED, trigger="test", mappings=["CUSTOMER"])
    h.drain()
    assert h.w.state.notified("CUSTOMER", Direction.TO_CRM) == []
    # the deletion went through its resolution (the default reports the conflict), found by no reconciliation
    assert h.report(run.run_id).to_dict()["totals"]["failed"] == 1
