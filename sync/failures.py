"""Working with failed records: list them, retry one or all, restore the skipped ones.

A failed record is retried at the start of every run. When it fails twice in a row with the same
error it is skipped, as Business Central does, so that a permanent problem does not cost a request
every run: it stays skipped until its source row changes (then it is tried again by itself) or a
user asks for a retry (which restores it). A record that succeeds loses its error.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any, Iterable, Sequence

from .errors import SyncError
from .model import Direction
from .ports import ErrorStore, Record, RecordFailure


def select(failures: Iterable[RecordFailure], *, mapping: str | None = None, direction: Direction | None = None,
           source_id: str | None = None, skipped: bool | None = None) -> list[RecordFailure]:
    return [f for f in failures
            if (mapping is None or f.mapping == mapping) and (direction is None or f.direction is direction)
            and (source_id is None or f.source_id.lower() == source_id.lower())
            and (skipped is None or f.skipped is skipped)]


def failed_again(previous: RecordFailure | None, error: SyncError, *, mapping: str, direction: Direction,
                 source_id: str, record: str, message: str, now: dt.datetime, job_id: str, target_id: str = "",
                 source_etag: str | None = None, skippable: bool = True) -> RecordFailure:
    """The failure of a record that failed now, counted on from its previous failure. The same error
    twice in a row skips it when `skippable` (documents that wait on other records never are)."""
    skipped = skippable and previous is not None and (previous.skipped or previous.message == message)
    return RecordFailure(
        mapping=mapping, direction=direction, source_id=source_id, record=record, message=message,
        field=getattr(error, "field", ""), code=error.code or type(error).__name__, target_id=target_id,
        transient=error.transient, count=(previous.count + 1) if previous else 1,
        first_seen=previous.first_seen if previous else now, last_seen=now, job_id=job_id, skipped=skipped,
        source_etag=source_etag)


def clear_gone(job: Any, direction: Direction, retried: Sequence[str], found: Iterable[Record]) -> None:
    """Clear the errors of the retried records that a read by id did not return: they are gone (deleted, or
    posted), so there is nothing left to retry or to report. `job`: the job (sync.process.JobContext)."""
    present = {r.id.lower() for r in found}
    gone = [i for i in retried if i.lower() not in present]
    for i in gone:
        del job.failures[i]
    if gone:
        job.errors.clear_many(job.mapping.name, direction, gone)


def retry(errors: ErrorStore, failures: Iterable[RecordFailure]) -> list[RecordFailure]:
    """Make the next run try these records again (restoring the skipped ones)."""
    restored = [dataclasses.replace(f, skipped=False) for f in failures]
    if restored:
        errors.save_many(restored)
    return restored


def to_dict(f: RecordFailure) -> dict:
    return {"mapping": f.mapping, "direction": f.direction.value, "source_id": f.source_id, "target_id": f.target_id,
            "record": f.record, "field": f.field, "code": f.code, "message": f.message, "count": f.count,
            "skipped": f.skipped, "transient": f.transient, "job": f.job_id,
            "first_seen": f.first_seen.isoformat() if f.first_seen else None,
            "last_seen": f.last_seen.isoformat() if f.last_seen else None}
