"""Attempts count failures without progress, not claims: a job that gets further at every attempt finishes however
many attempts it takes; one that fails where it started every time stops at the limit with its last error."""

from __future__ import annotations

import datetime as dt

import pytest

from sync.model import Side
from sync.runs import JobStatus, RunStatus

from .conftest import job


@pytest.fixture
def quick_retries(env, monkeypatch):
    """Every failed request fails its job at once, and a failed job is taken again at once (not 15 s later)."""
    monkeypatch.setattr("sync.runs.RETRY_SECONDS", 0)
    env.configure(BCSYNC_HTTP_MAX_RETRIES=0, BCSYNC_PAGE_SIZE=5)
    return env


def test_a_job_failing_after_every_page_finishes_as_each_attempt_gets_further(quick_retries):
    env = quick_retries
    start = dt.datetime(2026, 11, 2, 8, 0, tzinfo=dt.timezone.utc)
    env.bc.seed("customers", [{"number": f"C{i:03d}", "displayName": f"Customer {i}",
                               "lastModifiedDateTime": (start + dt.timedelta(seconds=i)).isoformat()}
                              for i in range(60)])
    bc = env.services.engine.endpoint(Side.BC)
    real = bc.read_changed

    def read_changed(table, fields, **kwargs):
        """Business Central answers the next page of this read with a 503, once the first has been processed."""
        for number, page in enumerate(real(table, fields, **kwargs)):
            yield page
            if number == 0 and table.entity_set == "customers" and kwargs.get("limit") is None:
                env.bc.faults.fail(503, path_contains="customers", methods=("GET",))
        env.bc.faults.clear()   # a read that had no next page leaves no fault behind

    bc.read_changed = read_changed
    report = env.full_sync(["CUSTOMER"])
    to_crm = job(report, "CUSTOMER:to-crm")
    assert report.run.status is RunStatus.DONE, to_crm.message
    # each attempt gets a few rows further (the next page is read ahead, a resumed read repeats the last row)
    assert to_crm.attempts > env.services.coordinator.max_attempts and to_crm.attempts_without_progress == 0
    assert sorted(a["name"] for a in env.dv.rows("account")) == sorted(f"Customer {i}" for i in range(60))
    assert to_crm.counts.inserted == 60 and env.errors() == []


def test_a_job_failing_on_its_first_page_every_time_stops_at_the_limit_with_its_error(quick_retries):
    env = quick_retries
    env.bc.seed("customers", [{"number": "C001", "displayName": "Adatum"}])
    env.bc.faults.fail(503, times=100, path_contains="customers", methods=("GET",))
    report = env.sync(["CUSTOMER"])
    to_crm = job(report, "CUSTOMER:to-crm")
    assert to_crm.status is JobStatus.FAILED and to_crm.attempts == to_crm.attempts_without_progress == 5
    assert to_crm.message.startswith("gave up after 5 attempts without progress: Business Central: The service is "
                                     "temporarily unavailable.")
    assert job(report, "CUSTOMER:from-crm").status is JobStatus.BLOCKED and env.dv.rows("account") == []
