"""Helpers for tests that drive real storage."""

from __future__ import annotations

import dataclasses
import datetime as dt


def rewind_schedules(services, minutes: float) -> None:
    """Make every mapping's last run look `minutes` older, as if that much time had passed."""
    for mapping, schedule in services.state.schedules().items():
        if schedule.last_run_at is not None:
            services.state.save_schedule(mapping, dataclasses.replace(
                schedule, last_run_at=schedule.last_run_at - dt.timedelta(minutes=minutes)))
