"""Runs that survive what happens to real workers: one dying in the middle of a full synchronisation,
and two racing for the same mapping."""

from __future__ import annotations

import threading

from bcsync.worker import LocalWorker
from simulators.http import Limits
from shared.wiring import build_services
from sync.model import Side
from sync.runs import JobMessage, JobStatus, RunKind, RunStatus

from .conftest import job, killed_after, taken_over


def _customers(env, n):
    return env.bc.seed("customers", [{"number": f"C{i:03d}", "displayName": f"Customer {i}"} for i in range(n)])


def test_a_full_sync_interrupted_halfway_resumes_without_duplicates(env, monkeypatch):
    env.configure(BCSYNC_PAGE_SIZE=5, BCSYNC_JOB_LEASE_SECONDS=2)
    # progress is saved after every page, not every 1/20 lease, so that the checkpoint the survivor
    # resumes from (and the counts saved with it) does not depend on how fast this machine is
    monkeypatch.setattr("sync.runs.PROGRESS_SAVES_PER_LEASE", 10**9)
    _customers(env, 23)
    calls = []

    def third_page(table, rows):   # the third page is written to Dataverse, but its couplings never saved
        calls.append(len(rows))
        return len(calls) == 3

    run = killed_after(env, Side.CRM, "insert", third_page, RunKind.FULL, ["CUSTOMER"])
    assert len(env.dv.rows("account")) == 15 and len(env.couplings("CUSTOMER")) == 10
    assert job(env.services.report(run.run_id), "CUSTOMER:to-crm").status is JobStatus.RUNNING

    # another worker (a new process) takes over once the dead one's lease runs out
    report = taken_over(env, run)
    assert report.run.status is RunStatus.DONE
    names = sorted(a["name"] for a in env.dv.rows("account"))
    assert names == sorted(f"Customer {i}" for i in range(23))          # every one, none twice
    assert len(env.couplings("CUSTOMER")) == 23 and env.errors() == []
    to_crm = job(report, "CUSTOMER:to-crm")
    assert to_crm.attempts >= 2 and to_crm.counts.inserted + to_crm.counts.coupled == 23
    again = env.sync(["CUSTOMER"])
    assert sum(j.counts.inserted + j.counts.modified for j in again.jobs) == 0


def test_two_workers_racing_on_one_mapping_never_run_it_twice_at_once(env):
    env.configure(BCSYNC_PAGE_SIZE=5)
    _customers(env, 20)
    env.dv.faults.latency_ms = 15          # long enough jobs for the workers to collide
    try:
        full = env.services.start_run(RunKind.FULL, trigger="test", mappings=["CUSTOMER"])
        scheduled = env.services.start_run(RunKind.SCHEDULED, trigger="test", mappings=["CUSTOMER"])
        # the same job message delivered twice, as at-least-once queues do
        env.services.queue.send(JobMessage(full.run_id, "CUSTOMER:to-crm"))
        runs = (full.run_id, scheduled.run_id)
        done = lambda: all(env.services.report(r).run.status is not RunStatus.RUNNING for r in runs)  # noqa: E731
        workers = [LocalWorker(build_services(env.settings), poll_seconds=0.02) for _ in range(2)]
        results = []
        threads = [threading.Thread(target=lambda w=w: results.append(w.run_until(done, timeout=120)))
                   for w in workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        env.dv.faults.latency_ms = 0
    assert results == [True, True]
    assert all(w.handled > 0 for w in workers)        # both took part
    jobs = [j for r in runs for j in env.services.report(r).jobs]
    assert all(j.status is JobStatus.DONE for j in jobs)
    spans = sorted((j.started_at, j.finished_at) for j in jobs)
    for (_, end), (start, _) in zip(spans, spans[1:]):
        assert start >= end, "two jobs of CUSTOMER ran at the same time"
    assert len(env.dv.rows("account")) == 20 and len(env.couplings("CUSTOMER")) == 20
    assert job(env.services.report(full.run_id), "CUSTOMER:to-crm").counts.inserted == 20


def test_a_full_sync_within_both_services_protection_limits_loses_and_repeats_nothing(env):
    """Both services throttling hard (their limits lowered): bcsync waits as told and every record arrives once."""
    # bulk writes leave a few requests on each side: the limits are low enough to throttle them all the same
    env.dv.faults.protection.reset(Limits(requests=2, window_seconds=2))
    env.bc.faults.protection.reset(Limits(requests=2, window_seconds=2, concurrent=2, queue=2))
    _customers(env, 30)
    report = env.full_sync(["CUSTOMER"])
    assert report.run.status is RunStatus.DONE, report.to_dict()
    assert sorted(a["name"] for a in env.dv.rows("account")) == sorted(f"Customer {i}" for i in range(30))
    assert env.dv.faults.protection.refused > 0 and env.bc.faults.protection.refused > 0
    assert env.errors() == []
