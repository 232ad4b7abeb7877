"""Targeted jobs: what the services' notifications (sync.notifications) become.

A notification names a row (or, for a collection, a table) to look at again; it is recorded as a notified row of
every enabled table mapping and direction that reads that table, in the state store, where a row notified twice is
recorded once. The first notification of a mapping starts a targeted run whose first jobs wait a short window; those
that arrive before its job starts join it (one run waits per mapping, named by a marker row). The targeted job reads
its notified rows again, by id, from their service, and treats them as a scheduled job treats changed rows: their
versions tell what changed, and an uncoupled row changed at or before the watermark (one the scheduled job has seen)
is left alone, so a repeated, replayed or forged notification writes nothing a scheduled run would not. A collection
makes the job, after the rows notified one by one, the direction's incremental job (sync.engine,
_Job._run_targeted). Rows no targeted job took are taken by the direction's next scheduled job (_Job._take_notified).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

from .mappings import Catalog
from .model import Direction, Side, TableMapping
from .notifications import Change, Notification, hooked_table

COLLECTION_ID = "*"  # the notified row of a collection: "read this direction's changes" (no row id has it)


@dataclass(frozen=True)
class NotifiedRow:
    """A row a notification named for one mapping and direction, as the state store keeps it until a targeted job
    took it. `etag`: the stored row's version as read, so that the job removes only what it took."""

    record_id: str  # COLLECTION_ID for a collection
    change: Change
    etag: str = ""

    @property
    def collection(self) -> bool:
        return self.change is Change.COLLECTION


def directions(catalog: Catalog, notification: Notification) -> Iterator[tuple[TableMapping, Direction]]:
    """The enabled mappings and directions that read the notified table: where it is the source. Sales logical
    names are compared without case, as Dataverse spells them."""
    side, table = notification.side, notification.table
    for mapping in catalog:
        name = hooked_table(mapping, side)
        if name and (name.lower() == table.lower() if side is Side.CRM else name == table):
            for direction in mapping.direction.job_directions():
                if direction.source is side:
                    yield mapping, direction


def notified_rows(catalog: Catalog, notifications: Sequence[Notification]) \
        -> dict[tuple[str, Direction], list[NotifiedRow]]:
    """The notified rows by mapping and direction, each id once (the last change told wins); a notification of a
    row without an id, or of a table no mapping reads, records nothing."""
    found: dict[tuple[str, Direction], dict[str, NotifiedRow]] = {}
    for notification in notifications:
        collection = notification.change is Change.COLLECTION
        if not collection and not notification.record_id:
            continue
        record_id = COLLECTION_ID if collection else notification.record_id
        for mapping, direction in directions(catalog, notification):
            rows = found.setdefault((mapping.name, direction), {})
            rows.pop(record_id.lower(), None)
            rows[record_id.lower()] = NotifiedRow(record_id, notification.change)
    return {key: list(rows.values()) for key, rows in found.items()}
