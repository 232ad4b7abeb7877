"""Which table mappings a timer tick should run.

Each mapping runs every `interval_minutes`. After a run that inserted, modified, deleted, uncoupled
and failed nothing, it is held ("On Hold with Inactivity Timeout") until `inactivity_timeout_minutes`
have passed, unless a change wakes it sooner. Business Central only notices Dataverse changes when the
dispatcher asks and its own changes through events; here both sides are asked with one cheap read
each (`SyncEngine.has_work`), so a change on either side is picked up within one interval.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Callable, Iterable, Protocol

from .mappings import Catalog
from .model import TableMapping

# timer ticks never land exactly an interval apart; a tick this early still counts
TICK_TOLERANCE = dt.timedelta(seconds=60)


@dataclass
class MappingSchedule:
    """Where a mapping stands in its schedule (kept in the state store)."""

    last_run_at: dt.datetime | None = None     # when the last run of its jobs started
    held: bool = False                          # that run changed nothing: wait for the inactivity timeout
    last_activity_at: dt.datetime | None = None  # when a run last changed something

    def next_due(self, interval: dt.timedelta, inactivity: dt.timedelta) -> dt.datetime | None:
        """When it runs at the latest (held: the inactivity timeout); None: at the next tick."""
        if self.last_run_at is None:
            return None
        return self.last_run_at + (inactivity if self.held else interval)


class ScheduleStore(Protocol):
    def schedules(self) -> dict[str, MappingSchedule]: ...
    def save_schedule(self, mapping: str, schedule: MappingSchedule) -> None: ...


def due_mappings(catalog: Catalog, schedules: dict[str, MappingSchedule], now: dt.datetime, busy: Iterable[str],
                 has_work: Callable[[str], bool]) -> dict[str, str]:
    """The mappings to run now, each with the reason (for the log and the run's trigger)."""
    busy = set(busy)
    due: dict[str, str] = {}
    for mapping in catalog:
        if not mapping.enabled or mapping.name in busy:
            continue
        schedule = schedules.get(mapping.name) or MappingSchedule()
        if schedule.last_run_at is None:
            due[mapping.name] = "never run"
            continue
        elapsed = now - schedule.last_run_at + TICK_TOLERANCE
        interval = dt.timedelta(minutes=mapping.interval_minutes)
        if elapsed < interval:
            continue
        if not schedule.held:
            due[mapping.name] = f"every {mapping.interval_minutes} minutes"
        elif elapsed >= dt.timedelta(minutes=mapping.inactivity_timeout_minutes):
            due[mapping.name] = f"inactivity timeout of {mapping.inactivity_timeout_minutes} minutes"
        elif has_work(mapping.name):
            due[mapping.name] = "held, woken by changes"
    return due


def after_run(previous: MappingSchedule | None, started_at: dt.datetime, changed_something: bool) -> MappingSchedule:
    """The schedule once all of a mapping's jobs of a run have finished."""
    last_activity = started_at if changed_something else (previous.last_activity_at if previous else None)
    return MappingSchedule(last_run_at=started_at, held=not changed_something, last_activity_at=last_activity)


def schedule_status(mapping: TableMapping, schedule: MappingSchedule | None) -> dict:
    """How a user sees where a mapping stands: when it last ran and changed something, whether it
    is held, and when it runs at the latest."""
    schedule = schedule or MappingSchedule()
    latest = schedule.next_due(dt.timedelta(minutes=mapping.interval_minutes),
                               dt.timedelta(minutes=mapping.inactivity_timeout_minutes))
    return {"last_run_at": iso(schedule.last_run_at), "last_activity_at": iso(schedule.last_activity_at),
            "held": schedule.held, "runs_by": iso(latest)}


def iso(value: dt.datetime | None) -> str | None:
    """A time as the reports show it: ISO 8601 in UTC with a Z."""
    return value.isoformat().replace("+00:00", "Z") if value else None
