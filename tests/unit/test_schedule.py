"""Schedules: intervals, the inactivity hold and what wakes a held mapping."""

import datetime as dt

from sync.mappings import Catalog, builtin_mappings
from sync.runs import RunKind
from sync.tables import CRM_SYSTEMUSER
from sync.schedule import MappingSchedule, after_run, due_mappings
from tests.unit.test_runs import Harness

NOW = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.timezone.utc)
CATALOG = Catalog(builtin_mappings())
WATCHED = ("SALESPEOPLE", "CUSTOMER", "CURRENCY")


def recently_run(**schedules):
    """Every other mapping ran a minute ago, so only the named ones can be due."""
    return {**{m.name: MappingSchedule(ago(1)) for m in CATALOG if m.name not in WATCHED}, **schedules}


def ago(minutes):
    return NOW - dt.timedelta(minutes=minutes)


def test_interval_hold_and_wake_up():
    schedules = recently_run(
        SALESPEOPLE=MappingSchedule(ago(29.5), held=False),   # within a tick's tolerance of 30 minutes
        CUSTOMER=MappingSchedule(ago(45), held=True),         # held: only changes wake it before 720 minutes
        CURRENCY=MappingSchedule(ago(10), held=False),
    )
    asked = []

    def has_work(name):
        asked.append(name)
        return False

    assert due_mappings(CATALOG, schedules, NOW, busy=(), has_work=has_work) == {"SALESPEOPLE": "every 30 minutes"}
    assert asked == ["CUSTOMER"]          # only a held mapping past its interval is asked
    woken = due_mappings(CATALOG, schedules, NOW, busy=(), has_work=lambda name: True)
    assert woken["CUSTOMER"] == "held, woken by changes"
    schedules["CUSTOMER"] = MappingSchedule(ago(721), held=True)
    assert due_mappings(CATALOG, schedules, NOW, busy=(), has_work=has_work)["CUSTOMER"] == \
        "inactivity timeout of 720 minutes"
    # never run: due at once; busy in another run: not now
    fresh = {k: v for k, v in recently_run().items()}
    assert due_mappings(CATALOG, fresh, NOW, busy=("CUSTOMER",), has_work=has_work) == \
        {"SALESPEOPLE": "never run", "CURRENCY": "never run"}


def test_a_run_that_changed_nothing_holds_the_mapping_and_keeps_the_last_activity():
    active = after_run(None, ago(60), changed_something=True)
    assert not active.held and active.last_activity_at == ago(60)
    quiet = after_run(active, ago(30), changed_something=False)
    assert quiet.held and quiet.last_run_at == ago(30) and quiet.last_activity_at == ago(60)
    assert quiet.next_due(dt.timedelta(minutes=30), dt.timedelta(minutes=720)) == ago(30) + dt.timedelta(minutes=720)


def test_the_timer_runs_what_is_due_and_holds_quiet_mappings_until_a_change():
    h = Harness()
    alicia = h.w.user("Alicia", "at@example.com")
    h.coordinator.start_run(RunKind.FULL, "test")       # a full synchronisation counts as a run
    h.drain()
    schedules = h.w.state.schedules()
    assert not schedules["SALESPEOPLE"].held            # it inserted a salesperson
    assert schedules["CUSTOMER"].held                   # nothing to do for customers
    assert h.coordinator.start_scheduled_run("timer") is None   # nothing due a moment later

    h.w.clock.tick(31 * 60)
    second = h.coordinator.start_scheduled_run("timer")
    reasons = {j.mapping: j.reason for j in h.runs.jobs(second.run_id)}
    assert reasons.get("SALESPEOPLE") == "every 30 minutes" and "CUSTOMER" not in reasons
    h.drain()
    assert h.w.state.schedules()["SALESPEOPLE"].held    # the second run found nothing new

    h.w.clock.tick(31 * 60)
    h.w.account("Adatum")                                 # an uncoupled account: ignored by scheduled runs
    # currencies are re-read whole (their exchange rates live elsewhere), so they run at every interval
    assert {j.mapping for j in h.runs.jobs(h.coordinator.start_scheduled_run("timer").run_id)} == {"CURRENCY"}
    h.drain()
    h.w.crm.edit(CRM_SYSTEMUSER, alicia, fullname="Alicia Thornber")   # a coupled user changed
    third = h.coordinator.start_scheduled_run("timer")
    assert {j.mapping: j.reason for j in h.runs.jobs(third.run_id)} == {"SALESPEOPLE": "held, woken by changes"}
    h.drain()
    assert not h.w.state.schedules()["SALESPEOPLE"].held


def test_a_mapping_with_an_unfinished_job_is_not_started_again():
    h = Harness()
    run = h.coordinator.start_scheduled_run("timer")     # every mapping: none has run yet
    assert h.coordinator.busy_mappings() == set(run.mappings)
    h.w.clock.tick(31 * 60)
    assert h.coordinator.start_scheduled_run("timer") is None   # all still queued in the first run
    h.drain()
    assert h.coordinator.busy_mappings() == set()
