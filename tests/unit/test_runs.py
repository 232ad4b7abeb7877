"""Planning runs and coordinating their jobs, with in-memory ports."""

import contextlib
import dataclasses
import json
import logging

import pytest

from sync.config import StaticCatalog

from sync.engine import FEED_CURSOR
from sync.errors import ConcurrencyError, ConfigurationError, MessageError, ServiceUnavailableError, ThrottledError
from sync.mappings import Catalog, builtin_mappings
from sync.facts import INTEGRATION_USER
from sync.model import Direction
from sync.planner import plan
from sync.ports import Fact, FeedPage
from sync.runs import JobMessage, JobObserver, JobStatus, RunCoordinator, RunKind, RunReport, RunStatus
from tests.unit.test_engine import CRM_ACCOUNT, World
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
        self.coordinator = RunCoordinator(StaticCatalog(self.w.catalog), self.w.engine, self.runs, self.queue, self.w.state, self.w.state,
                                          self.w.clock)

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


def test_a_message_that_arrives_before_its_job_is_marked_queued_is_not_lost(monkeypatch):
    """advance() sends before it marks: a worker may read the job still pending, and its claim then
    meets the newer version. The message is looked at again, so the job still runs."""
    h = Harness()
    run = h.coordinator.start_run(RunKind.SCHEDULED, trigger="test")
    msg = next(m for m, _ in h.queue.messages if m.job_id == "SALESPEOPLE:from-crm")
    h.queue.messages.remove((msg, 0))
    others = list(h.queue.messages)
    read = h.runs.get_job

    def read_then_marked_by_another_worker(run_id, job_id):
        job = read(run_id, job_id)
        newer = read(run_id, job_id)
        newer.message = "marked queued meanwhile"
        h.runs.save_job(newer)
        monkeypatch.setattr(h.runs, "get_job", read)
        return job

    monkeypatch.setattr(h.runs, "get_job", read_then_marked_by_another_worker)
    h.coordinator.handle(msg)
    assert h.queue.messages == [*others, (msg, 0)]
    h.drain()
    assert h.report(run.run_id).run.status is RunStatus.DONE


def test_transient_failure_is_retried_later_then_failed_job_blocks_dependants():
    h = Harness()
    h.w.user("Alicia", "alicia@contoso.com")
    h.w.customer("C00010", "Adatum")

    def throttled(*a, **k):
        raise ThrottledError("429 Too Many Requests", retry_after=42)

    run = h.coordinator.start_run(RunKind.FULL, trigger="test")
    h.w.crm.read_changed = throttled
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
    assert job.status is JobStatus.FAILED and job.attempts == job.attempts_without_progress == 5
    assert job.message == "gave up after 5 attempts without progress: 429 Too Many Requests"
    h.drain()
    report = h.report(run.run_id)
    statuses = {j.job_id: j.status for j in report.jobs}
    assert statuses["CUSTOMER:to-crm"] is JobStatus.BLOCKED and statuses["CUSTOMER:from-crm"] is JobStatus.BLOCKED
    assert report.run.status is RunStatus.FAILED


def test_message_round_trip_and_garbage_is_refused():
    msg = JobMessage("r1", "CUSTOMER:to-crm")
    assert JobMessage.parse(msg.to_json().encode()) == msg == JobMessage.parse(msg.to_json())
    assert json.loads(msg.to_json()) == {"run": "r1", "job": "CUSTOMER:to-crm"}   # one company: as it always was
    theirs = JobMessage("r1", "CUSTOMER:to-crm", "FABRIKAM")
    assert JobMessage.parse(theirs.to_json()) == theirs and json.loads(theirs.to_json())["company"] == "FABRIKAM"


@pytest.mark.parametrize("body, field, says", [
    (b"\xff\xfe{}", "", "not UTF-8 text (byte 0xff at position 0)"),
    (b"not json", "", "not JSON (Expecting value at position 0)"),
    (b"[1, null]", "", "must be a JSON object"),
    (b'"CUSTOMER"', "", "not a string"),
    (b'{"job": "CUSTOMER:to-crm"}', "run", 'Field "run" of the job message is missing'),
    (b'{"run": 5, "job": "CUSTOMER:to-crm"}', "run", '"run" of the job message must be a string, not a number'),
    (b'{"run": "r1", "job": null}', "job", '"job" of the job message must be a string, not null'),
    (b'{"run": " ", "job": "CUSTOMER:to-crm"}', "run", '"run" of the job message is empty'),
    (b'{"run": "' + b"9" * 61440 + b'", "job": "x"}', "run", "is 61440 characters long; a run id has at most 64"),
    (b'{"run": "r1", "job": "a\\u0000b"}', "job", "has characters no job id has"),
    (b'{"run": "r1", "job": "\\ud800"}', "job", "has characters no job id has"),
    (b'{"run": "r/1", "job": "x"}', "run", "has characters no run id has"),
    (b'{"run": "r1", "job": "x", "company": 7}', "company", '"company" of the job message must be a string'),
    (b'{"run": "r1", "job": "x", "company": ""}', "company", '"company" of the job message is empty'),
    (b"[" * 100_000, "", "nested too deeply"),
])
def test_a_message_that_is_no_job_message_is_refused_naming_the_field_and_problem(body, field, says):
    with pytest.raises(MessageError) as refused:
        JobMessage.parse(body)
    assert says in refused.value.message and refused.value.field == field and not refused.value.transient
    assert len(refused.value.message) < 300          # a 60 kB value is not echoed whole


def test_a_message_for_no_run_or_no_job_is_refused():
    h = Harness()
    run = h.coordinator.start_run(RunKind.SCHEDULED, trigger="test", mappings=["CUSTOMER"])
    with pytest.raises(MessageError, match="no run 20990101"):
        h.coordinator.handle(JobMessage("20990101-000000-abcdef", "CUSTOMER:to-crm"))
    with pytest.raises(MessageError, match="has no job 'NOPE:to-crm'") as refused:
        h.coordinator.handle(JobMessage(run.run_id, "NOPE:to-crm"))
    assert refused.value.field == "job"


def test_a_job_whose_worker_died_is_taken_over_when_its_lease_runs_out():
    import datetime as dt
    h = Harness()
    h.w.customer("C00010", "Adatum")
    run = h.coordinator.start_run(RunKind.FULL, trigger="test", mappings=["CUSTOMER"])
    [(msg, _)] = [(m, d) for m, d in h.queue.messages if m.job_id == "CUSTOMER:to-crm"]
    h.queue.messages.clear()
    # a worker claimed it and died: the job says running, its lease has ten minutes left
    job = h.runs.get_job(run.run_id, msg.job_id)
    job.status, job.lease_until = JobStatus.RUNNING, h.w.clock.now() + dt.timedelta(minutes=10)
    h.runs.save_job(job)
    h.coordinator.handle(msg)                       # the host shows the message again
    [(again, delay)] = h.queue.messages
    assert again == msg and 600 <= delay <= 610     # looked at again when the lease has run out
    h.queue.messages.clear()
    h.w.clock.tick(700)
    assert h.coordinator.recover() == 1             # the timer's sweep finds it stranded too
    h.drain()
    assert h.report(run.run_id).run.status is RunStatus.DONE
    assert len(h.w.crm.rows(__import__("sync.tables", fromlist=["x"]).CRM_ACCOUNT)) == 1


def test_a_second_delivery_cannot_run_a_job_of_a_mapping_that_is_running():
    h = Harness()
    run = h.coordinator.start_run(RunKind.FULL, trigger="test", mappings=["SALESPEOPLE"])
    [(msg, _)] = h.queue.messages
    h.queue.messages.clear()
    seen = []

    def nested(progress):  # while the first delivery runs, the same message arrives again
        if not seen:
            seen.append(True)
            h.coordinator.handle(msg)

    h.w.user("Alicia", "alicia@contoso.com")
    real_run = h.w.engine.run
    h.w.engine.run = lambda *a, **k: real_run(*a, **{**k, "on_progress": lambda p: (nested(p), k["on_progress"](p))})
    h.coordinator.handle(msg)
    assert h.report(run.run_id).jobs[0].status is JobStatus.DONE
    assert h.w.bc.writes == 1                        # the nested delivery did not run it a second time
    [(again, delay)] = h.queue.messages              # it looks again when the running job's lease ends
    assert again == msg and delay > 600
    h.queue.messages.clear()
    h.coordinator.handle(again)                      # by then the job is done: nothing happens
    assert h.w.bc.writes == 1 and h.queue.messages == []


def test_a_job_out_of_time_continues_in_a_new_invocation():
    h = Harness()
    for i in range(5):
        h.w.customer(f"C{i:05d}", f"Customer {i}")
    h.coordinator.time_budget = __import__("datetime").timedelta(seconds=-1)   # every page exhausts it
    run = h.coordinator.start_run(RunKind.FULL, trigger="test", mappings=["CUSTOMER"])
    h.drain()
    report = h.report(run.run_id)
    assert report.run.status is RunStatus.DONE
    assert report.jobs[0].counts.inserted == 5 and len(h.w.crm.rows(__import__("sync.tables", fromlist=["x"]).CRM_ACCOUNT)) == 5


def test_a_job_that_becomes_ready_runs_in_the_same_delivery_and_its_late_message_changes_nothing():
    h = Harness()
    h.w.customer("C00010", "Adatum")
    run = h.coordinator.start_run(RunKind.SCHEDULED, trigger="test", mappings=["CUSTOMER"])
    assert [(m.job_id, delay) for m, delay in h.queue.messages] == [("CUSTOMER:to-crm", 0)]
    first = h.queue.drain()[0]
    h.coordinator.handle(first)
    report = h.report(run.run_id)
    assert [j.status for j in report.jobs] == [JobStatus.DONE, JobStatus.DONE]
    assert report.run.status is RunStatus.DONE
    # the dependant's message was sent before it ran, as always, but to arrive only if this delivery had stopped
    assert h.queue.messages == [(JobMessage(run.run_id, "CUSTOMER:from-crm"), h.coordinator.busy_retry_seconds)]
    before = ((h.w.bc.writes, h.w.crm.writes), [j.to_dict() for j in report.jobs])
    h.drain()
    assert ((h.w.bc.writes, h.w.crm.writes), [j.to_dict() for j in h.runs.jobs(run.run_id)]) == before


def test_a_delivery_runs_no_next_job_once_half_of_its_time_budget_is_gone(monkeypatch):
    h = Harness()
    h.w.customer("C00010", "Adatum")
    run_job = h.w.engine.run

    def slow(*args, **kwargs):
        h.w.clock.tick(h.coordinator.time_budget.total_seconds() / 2 + 1)
        return run_job(*args, **kwargs)

    monkeypatch.setattr(h.w.engine, "run", slow)
    run = h.coordinator.start_run(RunKind.SCHEDULED, trigger="test", mappings=["CUSTOMER"])
    h.coordinator.handle(h.queue.drain()[0])
    assert [j.status for j in h.runs.jobs(run.run_id)] == [JobStatus.DONE, JobStatus.QUEUED]
    assert h.queue.messages == [(JobMessage(run.run_id, "CUSTOMER:from-crm"), 0)]   # for any worker, at once
    h.drain()
    assert h.report(run.run_id).run.status is RunStatus.DONE


class Recorder(JobObserver):
    def __init__(self):
        self.events = []

    @contextlib.contextmanager
    def running(self, run, job):
        self.events.append(("running", job.job_id, job.attempts))
        yield
        self.events.append(("left", job.job_id))

    def ended(self, job):
        self.events.append(("ended", job.job_id, job.status, job.counts.inserted))


def test_job_ends_are_logged_with_their_fields_and_told_to_the_observer(caplog):
    h = Harness()
    h.coordinator.observer = observer = Recorder()
    h.w.customer("C00010", "Adatum")
    run = h.coordinator.start_run(RunKind.FULL, trigger="test", mappings=["CUSTOMER"])
    real_read = h.w.bc.read_changed
    h.w.bc.read_changed = lambda *a, **k: (_ for _ in ()).throw(ThrottledError("429 Too Many Requests"))
    caplog.set_level(logging.INFO, logger="bcsync")
    first = next(m for m, _ in h.queue.messages if m.job_id == "CUSTOMER:to-crm")
    h.queue.messages.clear()
    h.coordinator.handle(first)
    [retry] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "retrying" in retry.getMessage()
    assert (retry.run, retry.job, retry.mapping, retry.direction) == (run.run_id, "CUSTOMER:to-crm", "CUSTOMER", "to-crm")
    assert observer.events == [("running", "CUSTOMER:to-crm", 1), ("ended", "CUSTOMER:to-crm", JobStatus.QUEUED, 0),
                               ("left", "CUSTOMER:to-crm")]

    h.w.bc.read_changed = real_read
    h.drain()
    assert ("ended", "CUSTOMER:to-crm", JobStatus.DONE, 1) in observer.events
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]

    h.w.crm.changes = lambda *a, **k: (_ for _ in ()).throw(ConfigurationError("the filter is refused"))
    second = h.coordinator.start_run(RunKind.SCHEDULED, trigger="test", mappings=["CUSTOMER"])
    h.drain()
    [failed] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "failed" in failed.getMessage() and "the filter is refused" in failed.getMessage()
    assert (failed.run, failed.job, failed.mapping) == (second.run_id, "CUSTOMER:from-crm", "CUSTOMER")
    assert observer.events[-2:] == [("ended", "CUSTOMER:from-crm", JobStatus.FAILED, 0), ("left", "CUSTOMER:from-crm")]


def test_a_running_job_saves_its_progress_now_and_then_renewing_its_lease_well_before_it_runs_out():
    h = Harness()
    h.w.engine.page_size = 1
    for i in range(12):
        h.w.customer(f"C{i:05d}", f"Customer {i}")
    pages = h.w.bc.read_changed

    def ten_seconds_a_page(*args, **kwargs):
        for page in pages(*args, **kwargs):
            h.w.clock.tick(10)
            yield page
    h.w.bc.read_changed = ten_seconds_a_page
    saves, save = [], h.runs.save_job
    h.runs.save_job = lambda job: (saves.append((job.job_id, job.status, h.w.clock.now(), job.lease_until)),
                                   save(job))[1]
    h.coordinator.start_run(RunKind.FULL, trigger="test", mappings=["CUSTOMER"])
    h.drain()
    running = [(at, until) for job_id, status, at, until in saves
               if job_id == "CUSTOMER:to-crm" and status is JobStatus.RUNNING]
    gaps = [(later - earlier).total_seconds() for (earlier, _), (later, _) in zip(running, running[1:])]
    assert len(gaps) >= 3                            # 120 s of pages: saved a few times, not after each page
    assert all(30 <= gap <= 40 for gap in gaps)      # every twentieth of the 600 s lease
    assert all((until - at).total_seconds() == 600 for at, until in running)


class WorkerDied(BaseException):
    """Stands for the worker's process being killed: nothing in bcsync catches it."""


def _worker_dies_reading(h, pages):
    """Every claim of a job reading Business Central dies once it has read `pages` pages (each a second later)."""
    real = h.w.bc.read_changed

    def read_changed(*args, **kwargs):
        for number, page in enumerate(real(*args, **kwargs)):
            if number == pages and kwargs.get("limit") is None:
                raise WorkerDied()
            h.w.clock.tick(1)
            yield page
    h.w.bc.read_changed = read_changed


def _killed_again_and_again(h, monkeypatch, pages):
    """A full synchronisation of CUSTOMER whose Business Central -> Sales job is killed after `pages` pages at every
    claim, taken over each time its lease has run out (the timer's recovery); returns the job as it ended."""
    monkeypatch.setattr("sync.runs.PROGRESS_SAVES_PER_LEASE", 10**9)  # progress saved after every page
    for i in range(8):
        h.w.clock.tick(1)
        h.w.customer(f"C{i:05d}", f"Customer {i}")
    _worker_dies_reading(h, pages)
    run = h.coordinator.start_run(RunKind.FULL, trigger="test", mappings=["CUSTOMER"])
    _taken_over_whenever_killed(h)
    return h.runs.get_job(run.run_id, "CUSTOMER:to-crm")


def _taken_over_whenever_killed(h):
    """Delivers the queued messages; each time the worker dies, its job is taken over once its lease has run out (the
    timer's recovery)."""
    for _ in range(20):
        try:
            h.drain()
            return
        except WorkerDied:
            h.w.clock.tick(700)              # its lease runs out
            h.coordinator.recover()


def test_a_job_killed_after_every_page_starts_its_attempts_again_and_finishes(monkeypatch):
    h = Harness()
    job = _killed_again_and_again(h, monkeypatch, pages=1)
    assert job.status is JobStatus.DONE and job.attempts == 7 > h.coordinator.max_attempts
    assert len(h.w.crm.rows(CRM_ACCOUNT)) == 8


def test_a_job_killed_before_any_progress_gives_up_after_the_limit(monkeypatch):
    h = Harness()
    job = _killed_again_and_again(h, monkeypatch, pages=0)
    assert job.status is JobStatus.FAILED and job.attempts == 6 and job.attempts_without_progress == 6
    assert job.message == "gave up after 5 attempts without progress, the last stopped midway"
    assert h.w.crm.rows(CRM_ACCOUNT) == {}


def test_a_job_reading_the_sales_feed_killed_after_every_page_gets_further_at_each_attempt(monkeypatch):
    """The feed's cursor is saved with the job's progress: a worker killed midway (out of memory, the host's time
    limit) leaves it at most one progress save behind, and the next attempt reads on from there. Kept until the job
    ended, every attempt read the feed from where the run before left it, and died at the same page."""
    h = Harness()
    monkeypatch.setattr("sync.runs.PROGRESS_SAVES_PER_LEASE", 10**9)  # progress saved after every page
    h.w.state.save_cursor("CUSTOMER", FEED_CURSOR, "0")
    accounts = [h.w.account(f"Account {i}") for i in range(4)]
    changes, cursors = h.w.crm.changes, []

    def dies_at_its_second_page(table, fields, cursor, **kwargs):
        feed = changes(table, fields, cursor, **kwargs)
        [page] = feed.pages
        cursors.append(cursor)

        def pages():
            for n, row in enumerate(page.changed):
                if n == 1:
                    raise WorkerDied()
                h.w.clock.tick(1)
                last = n == len(page.changed) - 1
                yield FeedPage([row], [], page.cursor if last else row.etag[1:], last=last)
        return dataclasses.replace(feed, pages=pages())
    h.w.crm.changes = dies_at_its_second_page
    run = h.coordinator.start_run(RunKind.SCHEDULED, trigger="test", mappings=["CUSTOMER"])
    _taken_over_whenever_killed(h)
    assert h.runs.get_job(run.run_id, "CUSTOMER:from-crm").status is JobStatus.DONE
    assert cursors == ["0"] + [h.w.crm.rows(CRM_ACCOUNT)[a]["etag"][1:] for a in accounts[:3]]


def test_each_job_of_a_delivery_reads_the_kept_facts_afresh():
    """Jobs chained in one delivery read the kept facts each: another worker's job may drop one meanwhile (a
    reference row it changed), and the next job must not go on using it."""
    h = Harness()
    h.w.state.save_fact(INTEGRATION_USER, Fact("a user bcsync acted as before", h.w.clock.now()))
    run = _customer_run(h)
    real_run, ran = h.w.engine.run, []

    def then_dropped_by_another_worker(*args, **kwargs):
        outcome = real_run(*args, **kwargs)
        if not ran:
            h.w.state.drop_facts([INTEGRATION_USER])
        ran.append(args[:2])
        return outcome
    h.w.engine.run = then_dropped_by_another_worker
    h.coordinator.handle(JobMessage(run.run_id, "CUSTOMER:to-crm"))
    assert ran == [("CUSTOMER", Direction.TO_CRM), ("CUSTOMER", Direction.FROM_CRM)]
    # the Sales -> BC job (run second, in the same delivery) read who bcsync acts as afresh, and kept it
    assert h.w.state.kept_facts[INTEGRATION_USER].value == "crm-integration"


def _first_job(h, run, job_id):
    """Takes a job as a delivery does, and stops there: the job to run next and the lease kept for it."""
    return h.coordinator._take(h.runs.get(run.run_id), h.runs.get_job(run.run_id, job_id),
                               h.w.clock.now() + h.coordinator.time_budget, chained=False)


def _failing_claim(error):
    def claim(job, now):
        raise error
    return claim


def _customer_run(h):
    h.w.customer("C00010", "Adatum")
    run = h.coordinator.start_run(RunKind.SCHEDULED, trigger="test", mappings=["CUSTOMER"])
    h.queue.messages.clear()
    return run


def test_a_worker_stopping_after_its_job_leaves_the_chained_job_to_its_delayed_message():
    h = Harness()
    run = _customer_run(h)
    following, kept = _first_job(h, run, "CUSTOMER:to-crm")
    assert following.job_id == "CUSTOMER:from-crm" and kept[0] == "mapping:CUSTOMER"
    assert h.w.state.leases["mapping:CUSTOMER"][0] == kept[1]           # kept for the job it returned
    # the worker stops here; the message sent before the chain still runs the job, once the kept lease runs out
    assert h.queue.messages == [(JobMessage(run.run_id, "CUSTOMER:from-crm"), h.coordinator.busy_retry_seconds)]
    h.drain()
    assert h.report(run.run_id).run.status is RunStatus.DONE


@pytest.mark.parametrize("error", [ConcurrencyError("moved"), ServiceUnavailableError("Table Storage: 503")])
def test_a_chained_claim_that_fails_releases_the_kept_lease(monkeypatch, error):
    h = Harness()
    run = _customer_run(h)
    following, kept = _first_job(h, run, "CUSTOMER:to-crm")
    monkeypatch.setattr(h.coordinator, "_claim", _failing_claim(error))
    deadline = h.w.clock.now() + h.coordinator.time_budget
    if isinstance(error, ConcurrencyError):
        assert h.coordinator._take(h.runs.get(run.run_id), following, deadline, True, kept) == (None, None)
    else:
        with pytest.raises(ServiceUnavailableError):
            h.coordinator._take(h.runs.get(run.run_id), following, deadline, True, kept)
    assert "mapping:CUSTOMER" not in h.w.state.leases
    monkeypatch.undo()
    h.drain()                                                           # its delayed message runs it
    assert h.report(run.run_id).run.status is RunStatus.DONE


def test_a_claim_that_fails_releases_the_lease_it_took():
    h = Harness()
    run = _customer_run(h)
    h.coordinator._claim = _failing_claim(ServiceUnavailableError("Table Storage: 503"))
    with pytest.raises(ServiceUnavailableError):
        _first_job(h, run, "CUSTOMER:to-crm")
    assert "mapping:CUSTOMER" not in h.w.state.leases


def test_a_kept_lease_taken_over_by_another_owner_leaves_the_job_to_its_message():
    import datetime as dt
    h = Harness()
    run = _customer_run(h)
    following, kept = _first_job(h, run, "CUSTOMER:to-crm")
    h.w.clock.tick(h.coordinator.lease.total_seconds() + 1)              # the kept lease ran out: another takes it
    assert h.w.state.acquire("mapping:CUSTOMER", "another", h.w.clock.now() + dt.timedelta(minutes=5))
    deadline = h.w.clock.now() + h.coordinator.time_budget
    assert h.coordinator._take(h.runs.get(run.run_id), following, deadline, True, kept) == (None, None)
    assert h.w.state.leases["mapping:CUSTOMER"][0] == "another"         # not released: it is not ours
    assert h.runs.get_job(run.run_id, "CUSTOMER:from-crm").status is not JobStatus.DONE
    h.w.state.release("mapping:CUSTOMER", "another")
    h.drain()
    assert h.report(run.run_id).run.status is RunStatus.DONE


def test_a_chained_job_of_another_mapping_does_not_keep_the_lease():
    h = Harness()
    h.w.user("Alicia", "alicia@contoso.com")
    h.w.customer("C00010", "Adatum")
    run = h.coordinator.start_run(RunKind.SCHEDULED, trigger="test", mappings=["SALESPEOPLE", "CUSTOMER"])
    h.queue.messages.clear()
    following, kept = _first_job(h, run, "SALESPEOPLE:from-crm")
    assert following.job_id == "CUSTOMER:to-crm" and kept is None
    assert "mapping:SALESPEOPLE" not in h.w.state.leases


def test_a_kept_lease_taken_just_now_is_not_renewed_by_the_next_job_and_one_taken_a_while_ago_is():
    h = Harness()
    run = _customer_run(h)
    following, kept = _first_job(h, run, "CUSTOMER:to-crm")
    acquired = []
    acquire = h.w.state.acquire
    h.w.state.acquire = lambda *args: acquired.append(args) or acquire(*args)
    deadline = h.w.clock.now() + h.coordinator.time_budget
    assert h.coordinator._take(h.runs.get(run.run_id), following, deadline, True, kept) == (None, None)
    assert acquired == [] and h.runs.get_job(run.run_id, "CUSTOMER:from-crm").status is JobStatus.DONE
    assert "mapping:CUSTOMER" not in h.w.state.leases                   # released at the end all the same

    again = h.coordinator.start_run(RunKind.SCHEDULED, trigger="test", mappings=["CUSTOMER"])
    following, kept = _first_job(h, again, "CUSTOMER:to-crm")
    acquired.clear()
    h.w.clock.tick(h.coordinator.lease.total_seconds() / 20)            # as long as a progress save waits
    deadline = h.w.clock.now() + h.coordinator.time_budget
    assert h.coordinator._take(h.runs.get(again.run_id), following, deadline, True, kept) == (None, None)
    assert [name for name, *_ in acquired] == ["mapping:CUSTOMER"]       # renewed before the job ran
