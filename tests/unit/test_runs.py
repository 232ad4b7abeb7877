"""Planning runs and coordinating their jobs, with in-memory ports."""

import pytest

from sync.config import StaticCatalog

from sync.errors import ConfigurationError, ThrottledError
from sync.mappings import Catalog, builtin_mappings
from sync.planner import plan
from sync.runs import JobMessage, JobStatus, RunCoordinator, RunKind, RunReport, RunStatus
from tests.unit.test_engine import World
from tests.fakes import FakeQueue, FakeRuns


def test_plan_orders_jobs_by_dependency_and_bc_to_sales_first():
    jobs = plan(Catalog(builtin_mappings()))
    order = [j.job_id for j in jobs]
    assert order.index("SALESPEOPLE:from-crm") < order.index("CUSTOMER:to-crm") < order.index("CUSTOMER:from-crm")
    by_id = {j.job_id: j for j in jobs}
    assert "SALESPEOPLE:from-crm" in by_id["CUSTOMER:to-crm"].depends_on
    assert "CUSTOMER:to-crm" in by_id["CUSTOMER:from-crm"].depends_on


def test_plan_refuses_cycles_and_unknown_mappings():
    looped = [m.with_overrides(dependencies=("CUSTOMER",)) if m.name == "SALESPEOPLE" else m for m in builtin_mappings()]
    with pytest.raises(ConfigurationError, match="cycle"):
        plan(Catalog(looped))
    with pytest.raises(ConfigurationError, match="NOPE"):
        plan(Catalog(builtin_mappings()), only=["NOPE"])


def test_plan_drops_dependencies_on_disabled_mappings():
    catalog = Catalog([m.with_overrides(enabled=False) if m.name == "SALESPEOPLE" else m for m in builtin_mappings()])
    by_id = {j.job_id: j for j in plan(catalog)}
    assert "SALESPEOPLE:from-crm" not in by_id
    assert not any(d.startswith("SALESPEOPLE") for d in by_id["CUSTOMER:to-crm"].depends_on)


class Harness:
    def __init__(self):
        self.w = World()
        self.runs, self.queue = FakeRuns(), FakeQueue()
        self.coordinator = RunCoordinator(StaticCatalog(self.w.catalog), self.w.engine, self.runs, self.queue, self.w.state, self.w.clock)

    def report(self, run_id):
        return RunReport(self.runs.get(run_id), self.runs.jobs(run_id))

    def drain(self, limit=100):
        handled = []
        for _ in range(limit):
            messages = self.queue.drain()
            if not messages:
                return handled
            for message in messages:
                self.w.clock.tick(120)
                self.coordinator.handle(message)
                handled.append(message.job_id)
        raise AssertionError("the queue never emptied")


def test_a_full_run_queues_jobs_in_dependency_order_and_finishes():
    h = Harness()
    h.w.user("Alicia", "alicia@contoso.com")
    h.w.customer("C00010", "Adatum")
    run = h.coordinator.start_run(RunKind.FULL, trigger="test")
    first_wave = {m.job_id for m, _ in h.queue.messages}
    assert "SALESPEOPLE:from-crm" in first_wave and "CUSTOMER:to-crm" not in first_wave
    handled = h.drain()
    assert handled.index("SALESPEOPLE:from-crm") < handled.index("CUSTOMER:to-crm") < handled.index("CUSTOMER:from-crm")
    report = h.report(run.run_id)
    assert report.run.status is RunStatus.DONE
    assert all(j.status is JobStatus.DONE for j in report.jobs)
    assert report.to_dict()["totals"]["inserted"] == 2


def test_a_duplicate_message_for_a_finished_job_changes_nothing():
    h = Harness()
    h.w.customer("C00010", "Adatum")
    run = h.coordinator.start_run(RunKind.FULL, trigger="test")
    h.drain()
    writes = (h.w.bc.writes, h.w.crm.writes)
    before = [j.to_dict() for j in h.runs.jobs(run.run_id)]
    h.coordinator.handle(JobMessage(run.run_id, "CUSTOMER:to-crm"))
    assert h.queue.messages == []
    assert (h.w.bc.writes, h.w.crm.writes) == writes
    assert [j.to_dict() for j in h.runs.jobs(run.run_id)] == before


def test_a_job_whose_mapping_is_busy_in_another_run_waits():
    h = Harness()
    run = h.coordinator.start_run(RunKind.SCHEDULED, trigger="test")
    h.w.state.acquire("mapping:SALESPEOPLE", "another-run/SALESPEOPLE:from-crm", h.w.clock.now() + __import__("datetime").timedelta(minutes=5))
    msg = next(m for m, _ in h.queue.messages if m.job_id == "SALESPEOPLE:from-crm")
    h.queue.messages.clear()
    h.coordinator.handle(msg)
    assert h.queue.messages == [(msg, 30)]
    assert h.runs.get_job(run.run_id, msg.job_id).status is JobStatus.QUEUED


def test_transient_failure_is_retried_later_then_failed_job_blocks_dependants():
    h = Harness()
    h.w.user("Alicia", "alicia@contoso.com")

    def throttled(*a, **k):
        raise ThrottledError("429 Too Many Requests", retry_after=42)

    h.w.crm.read_changed = throttled
    run = h.coordinator.start_run(RunKind.FULL, trigger="test")
    msg = next(m for m, _ in h.queue.messages if m.job_id == "SALESPEOPLE:from-crm")

    def deliver():
        h.queue.messages = [(m, d) for m, d in h.queue.messages if m != msg]
        h.coordinator.handle(msg)

    deliver()
    job = h.runs.get_job(run.run_id, msg.job_id)
    assert job.status is JobStatus.QUEUED and "429" in job.message
    assert (msg, 42) in h.queue.messages
    for _ in range(4):
        deliver()
    job = h.runs.get_job(run.run_id, msg.job_id)
    assert job.status is JobStatus.FAILED and job.attempts == 5
    h.drain()
    report = h.report(run.run_id)
    statuses = {j.job_id: j.status for j in report.jobs}
    assert statuses["CUSTOMER:to-crm"] is JobStatus.BLOCKED and statuses["CUSTOMER:from-crm"] is JobStatus.BLOCKED
    assert report.run.status is RunStatus.FAILED


def test_message_round_trip_and_garbage_is_refused():
    msg = JobMessage("r1", "CUSTOMER:to-crm")
    assert JobMessage.from_json(msg.to_json()) == msg
    with pytest.raises(ValueError):
        JobMessage.from_json("not json")
