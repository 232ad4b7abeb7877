"""Dry runs: a job planned for real (reads, couplings, matching, conflict detection) that writes nothing.

The engine is handed ports that record instead of writing: the endpoints answer an insert or an update as if
it had been stored (a derived id, a version), the coupling, error and state stores keep what the job saves in
memory, over what is stored, for the job's own later reads. What the job would have done is then told per
record: inserted, modified (field by field, old and new value), coupled, deleted, restored, a conflict, failed
or skipped (with the reason).

Each job is planned against what is stored before the run, with one exception: the rows an earlier job of the
same mapping would have written or coupled are left out of a later job's changed rows, as a real run's later job
finds its own writes unchanged (up to CARRIED_IDS of them; the report says when there were more).
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import uuid
from collections import Counter, defaultdict
from contextlib import AbstractContextManager
from typing import Any, Callable, Iterator, Sequence

from .engine import RecordOutcome, SyncEngine
from .errors import shown
from .model import BcTable, Direction, Side
from .ports import (
    ChangeFeed,
    Coupling,
    CouplingStore,
    CrmEndpoint,
    Endpoint,
    ErrorStore,
    Fact,
    FollowUp,
    JobState,
    NewRow,
    Record,
    RecordFailure,
    RowChange,
    StateStore,
    WriteResult,
)
from .tables import BC_SALES_ORDER_LINE, BC_SALES_QUOTE_LINE, CRM_SALES_ORDER_DETAIL
from .values import same

# per job and kind, the records a report lists; the counts are always complete
LISTED_RECORDS = 50
CARRIED_IDS = 5_000  # ids of rows written or coupled that a dry job hands to the later jobs of its mapping
KINDS = ("insert", "modify", "couple", "delete", "restore", "conflict", "fail", "skip", "action")
# why a job deletes rows of a table (by its entity set or logical name): only lines go, with their document
DELETED_BECAUSE = {
    BC_SALES_QUOTE_LINE.entity_set: "replaced by a new revision's lines",
    BC_SALES_ORDER_LINE.entity_set: "its Sales order line is gone or now sells something else",
    CRM_SALES_ORDER_DETAIL.logical_name: "its Business Central order line is gone",
}
DRY_VERSION = 'W/"dry-run"'  # the version of a row a dry run "wrote"
DRY_IDS = uuid.UUID("0b7e4a8c-21d3-4f5e-8c1a-9d2e3f4a5b6c")


def _table(table) -> str:
    return table.caption if isinstance(table, BcTable) else table.logical_name


def _value(value: Any) -> Any:
    """A value as a report shows it: JSON's own types as they are, anything else as text, long texts cut."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= 200 else shown(text)


class PlannedWrites:
    """What the endpoints were asked to write, by row id (lower case; both services' ids are GUIDs): the table
    and the new row's values, or the table and each changed field's old and new value; the rows deleted (lines),
    with their table and why; and the actions run on Business Central rows (an order reopened, released)."""

    def __init__(self) -> None:
        self.inserts: dict[str, tuple[str, dict[str, Any]]] = {}
        self.updates: dict[str, tuple[str, dict[str, tuple[Any, Any]]]] = {}
        self.deletes: dict[str, tuple[str, str]] = {}  # with the reason
        self.actions: list[tuple[str, Record, str]] = []  # a Business Central page's actions: (table, row, action)

    def take_insert(self, row_id: str) -> dict[str, Any] | None:
        return self.inserts.pop(row_id.lower(), ("", None))[1]

    def take_update(self, row_id: str) -> dict[str, tuple[Any, Any]] | None:
        return self.updates.pop(row_id.lower(), ("", None))[1]


class RecordingEndpoint:
    """An endpoint that reads from the service and records its writes. The destination rows the job read by id
    are kept until its next write to that table: they hold the old values of a modified row (read once more,
    a page's rows at a time, for rows the job found otherwise)."""

    def __init__(self, real: Endpoint | CrmEndpoint, writes: PlannedWrites, earlier: set[str]):
        self.real = real
        self.side = real.side
        self.writes = writes
        self.earlier = earlier  # ids (lower case) an earlier job of the run would have written or coupled
        self.seen: dict[str, dict[str, Record]] = defaultdict(dict)

    def __getattr__(self, name: str) -> Any:  # the reads a Sales endpoint has besides the Endpoint ones
        return getattr(self.real, name)

    def _changed(self, rows: list[Record]) -> list[Record]:
        return [r for r in rows if r.id.lower() not in self.earlier] if self.earlier else rows

    def changes(self, table, fields: Sequence[str], cursor: str | None, **options) -> ChangeFeed | None:
        feed = self.real.changes(table, fields, cursor, **options)
        if feed is None or not self.earlier:
            return feed
        pages = (dataclasses.replace(page, changed=self._changed(page.changed)) for page in feed.pages)
        return dataclasses.replace(feed, pages=pages)

    def _kept(self, table, rows: list[Record]) -> list[Record]:
        self.seen[_table(table)].update((r.id.lower(), r) for r in rows)
        return rows

    def read_changed(self, table, fields: Sequence[str], **options) -> Iterator[list[Record]]:
        return (self._changed(page) for page in self.real.read_changed(table, fields, **options))

    def read_ids(self, table, fields: Sequence[str], ids: Sequence[str]) -> list[Record]:
        return self._kept(table, self.real.read_ids(table, fields, ids))

    def read_matching(self, table, fields: Sequence[str], field: str, values: Sequence[Any],
                      where: str = "") -> list[Record]:
        return self._kept(table, self.real.read_matching(table, fields, field, values, where=where))

    def read_visible(self, table, fields: Sequence[str], ids: Sequence[str], where: str = "") -> list[Record]:
        return self._kept(table, self.real.read_visible(table, fields, ids, where=where))

    def claim(self, table, ids: Sequence[str]) -> dict:
        """A dry job claims no row for its company: that is a write."""
        return {}

    def insert(self, table, rows: Sequence[NewRow], fields: Sequence[str]) -> list[WriteResult]:
        results = []
        for row in rows:
            # Sales takes the id bcsync proposes; Business Central's is made up, the same for the same values
            row_id = row.id or str(uuid.uuid5(DRY_IDS, f"{_table(table)}/{sorted(map(str, row.values.items()))}"))
            self.writes.inserts[row_id.lower()] = (_table(table), {k: _value(v) for k, v in row.values.items()})
            results.append(WriteResult(Record(row_id, dict(row.values), DRY_VERSION)))
        return results

    def delete_rows(self, table, ids: Sequence[str]) -> list[None]:
        for row_id in ids:  # recorded and reported, never sent
            self.writes.deletes[row_id.lower()] = (_table(table), DELETED_BECAUSE.get(
                getattr(table, "entity_set", None) or table.logical_name, ""))
        return [None] * len(ids)

    def run_action(self, table, rows: Sequence[Record], action: str) -> list:
        # nor releases or reopens anything: recorded and reported
        self.writes.actions += [(_table(table), r, action) for r in rows]
        return [None for _ in rows]

    def update(self, table, changes: Sequence[RowChange], fields: Sequence[str]) -> list[WriteResult]:
        seen = self.seen.pop(_table(table), {})
        unseen = [c.id for c in changes if c.id.lower() not in seen]
        if unseen:
            wanted = list(dict.fromkeys(f for c in changes for f in c.values))
            seen.update((r.id.lower(), r) for r in self.real.read_ids(table, wanted, unseen))
        results = []
        for change in changes:
            before = seen.get(change.id.lower())
            old = before.values if before is not None else {}
            fields_changed = self.writes.updates.setdefault(change.id.lower(), (_table(table), {}))[1]
            for name, new in change.values.items():
                first_old = fields_changed[name][0] if name in fields_changed else _value(old.get(name))
                fields_changed[name] = (first_old, _value(new))
            results.append(WriteResult(Record(change.id, {**old, **change.values}, DRY_VERSION)))
        return results


class RecordedCouplings:
    """The coupling store as the job sees it: what is stored, with what the job saved or deleted over it."""

    def __init__(self, real: CouplingStore):
        self.real = real
        self.saved: dict[tuple[str, str, str], Coupling] = {}    # (mapping, bc id, crm id), lower case
        self.deleted: dict[tuple[str, str, str], Coupling] = {}
        self.removals: list[Coupling] = []  # every coupling the job removed, restored since or not

    @staticmethod
    def _key(c: Coupling) -> tuple[str, str, str]:
        return c.mapping, c.bc_id.lower(), c.crm_id.lower()

    def get_many(self, mapping: str, side: Side, ids: Sequence[str]) -> dict[str, Coupling]:
        # copies: the job changes the couplings it reads, which must not show in what later reads return
        found = {k: copy.deepcopy(c) for k, c in self.real.get_many(mapping, side, ids).items()
                 if self._key(c) not in self.deleted}
        wanted, spelt = {i.lower() for i in ids}, {k.lower(): k for k in found}
        for coupling in self.saved.values():
            own = coupling.id_on(side)
            if coupling.mapping == mapping and own.lower() in wanted:
                found.pop(spelt.pop(own.lower(), None), None)
                found[own] = copy.deepcopy(coupling)
        return found

    def save_many(self, couplings: Sequence[Coupling], follow_up: FollowUp | None = None) -> None:
        for coupling in couplings:
            self.deleted.pop(self._key(coupling), None)
            self.saved[self._key(coupling)] = copy.deepcopy(coupling)

    def followed_up(self, follow_up: FollowUp) -> None:
        pass  # a dry save notes no follow-up: its follow-up writes are only recorded

    def held(self, mapping: str, side: Side, complete: bool = True) -> AbstractContextManager[None]:
        return self.real.held(mapping, side, complete)  # the stored couplings, read once; the dry saves stay here

    def delete_many(self, couplings: Sequence[Coupling]) -> None:
        for coupling in couplings:
            self.saved.pop(self._key(coupling), None)
            self.deleted[self._key(coupling)] = coupling
            self.removals.append(coupling)

    def coupled_ids(self, mapping: str, side: Side, page_size: int = 1000) -> Iterator[list[str]]:
        gone = {c.id_on(side).lower() for c in self.deleted.values() if c.mapping == mapping}
        for ids in self.real.coupled_ids(mapping, side, page_size):
            kept = [i for i in ids if i.lower() not in gone]
            if kept:
                yield kept

    def recover(self, mapping: str) -> list[FollowUp]:
        return []  # completing a stopped job's writes is a write: the next real job does it


class RecordedErrors:
    """The failed records as the job sees them: those stored, with what the job saved or cleared over them."""

    def __init__(self, real: ErrorStore):
        self.real = real
        self.saved: dict[tuple[str, str, str], RecordFailure] = {}
        self.cleared: set[tuple[str, str, str]] = set()

    def list(self, mapping: str, direction: Direction) -> list[RecordFailure]:
        stored = {f.key: f for f in self.real.list(mapping, direction) if f.key not in self.cleared}
        stored.update((k, f) for k, f in self.saved.items() if k[:2] == (mapping, direction.value))
        return list(stored.values())

    def list_all(self) -> list[RecordFailure]:
        return self.real.list_all()

    def save_many(self, failures: Sequence[RecordFailure]) -> None:
        for failure in failures:
            self.cleared.discard(failure.key)
            self.saved[failure.key] = failure

    def clear_many(self, mapping: str, direction: Direction, source_ids: Sequence[str]) -> None:
        for source_id in source_ids:
            key = (mapping, direction.value, source_id)
            self.saved.pop(key, None)
            self.cleared.add(key)


class _KeptPerMapping:
    """Entries the state store keeps per mapping under one of their attributes (write-backs, pending inserts):
    read once, then kept in memory with the job's changes."""

    def __init__(self, read: Callable[[str], list], key: str):
        self.read, self.key = read, key
        self.kept: dict[str, dict[str, Any]] = {}

    def _of(self, mapping: str) -> dict[str, Any]:
        if mapping not in self.kept:
            self.kept[mapping] = {getattr(entry, self.key): entry for entry in self.read(mapping)}
        return self.kept[mapping]

    def list(self, mapping: str) -> list:
        return list(self._of(mapping).values())

    def save(self, mapping: str, entries: Sequence) -> None:
        self._of(mapping).update((getattr(entry, self.key), entry) for entry in entries)

    def clear(self, mapping: str, keys: Sequence[str]) -> None:
        kept = self._of(mapping)
        for key in keys:
            kept.pop(key, None)

    def ports(self) -> tuple[Callable, Callable, Callable]:
        """The state store's list, save and clear of these entries."""
        return self.list, self.save, self.clear


class RecordedState:
    """The state store with the job's changes kept in memory: watermarks, change-feed cursors, pending marks,
    known versions, write-backs, pending inserts and facts stay as stored, so the next real run is unchanged."""

    def __init__(self, real: StateStore):
        self.real = real
        self.watermarks: dict[tuple[str, Direction], dt.datetime] = {}
        self.pendings: dict[tuple[str, Direction], set[str]] = {}
        self.known: dict[tuple[str, Direction], dict[str, str]] = {}
        write_backs, inserts = _KeptPerMapping(real.write_backs, "row_id"), _KeptPerMapping(real.pending_inserts,
                                                                                            "source_id")
        self.write_backs, self.save_write_backs, self.clear_write_backs = write_backs.ports()
        self.pending_inserts, self.save_pending_inserts, self.clear_pending_inserts = inserts.ports()
        self.cursors: dict[tuple[str, str], str] = {}
        self.kept_facts: dict[str, Fact] | None = None

    def watermark(self, mapping: str, direction: Direction) -> dt.datetime | None:
        return self.watermarks.get((mapping, direction)) or self.real.watermark(mapping, direction)

    def job_state(self, mapping: str, direction: Direction, versions: bool = False) -> JobState:
        stored = self.real.job_state(mapping, direction, versions)
        self.pendings.setdefault((mapping, direction), set(stored.pending))
        known = self.known.get((mapping, direction), stored.known_versions)
        return JobState(self.watermarks.get((mapping, direction)) or stored.watermark,
                        {**stored.cursors, **{name: value for (m, name), value in self.cursors.items() if m == mapping}},
                        self.pending(mapping, direction), dict(known) if versions and known is not None else None)

    def save_job_state(self, mapping: str, direction: Direction, *, watermark: dt.datetime | None = None,
                       cursors: dict[str, str] | None = None, versions: dict[str, str] | None = None,
                       replacing: dict[str, str] | None = None) -> None:
        if watermark is not None:
            self.save_watermark(mapping, direction, watermark)
        for name, value in (cursors or {}).items():
            self.save_cursor(mapping, name, value)
        if versions is not None:
            self.save_known_versions(mapping, direction, versions)

    def advance_watermark(self, mapping: str, direction: Direction, value: dt.datetime) -> None:
        current = self.watermark(mapping, direction)
        if current is None or value > current:
            self.save_watermark(mapping, direction, value)

    def save_watermark(self, mapping: str, direction: Direction, value: dt.datetime) -> None:
        self.watermarks[(mapping, direction)] = value

    def _pending(self, mapping: str, direction: Direction) -> set[str]:
        if (mapping, direction) not in self.pendings:
            self.pendings[(mapping, direction)] = set(self.real.pending(mapping, direction))
        return self.pendings[(mapping, direction)]

    def pending(self, mapping: str, direction: Direction) -> list[str]:
        return sorted(self._pending(mapping, direction))

    def mark_pending(self, mapping: str, direction: Direction, ids: Sequence[str]) -> None:
        self._pending(mapping, direction).update(ids)

    def clear_pending(self, mapping: str, direction: Direction, ids: Sequence[str]) -> None:
        self._pending(mapping, direction).difference_update(ids)

    def known_versions(self, mapping: str, direction: Direction) -> dict[str, str]:
        key = (mapping, direction)
        return dict(self.known[key]) if key in self.known else self.real.known_versions(mapping, direction)

    def save_known_versions(self, mapping: str, direction: Direction, versions: dict[str, str],
                            replacing: dict[str, str] | None = None) -> None:
        self.known[(mapping, direction)] = dict(versions)

    def add_known_versions(self, mapping: str, direction: Direction, versions: dict[str, str]) -> None:
        self.known[(mapping, direction)] = {**self.known_versions(mapping, direction), **versions}

    def cursor(self, mapping: str, name: str) -> str | None:
        return self.cursors.get((mapping, name)) or self.real.cursor(mapping, name)

    def save_cursor(self, mapping: str, name: str, value: str) -> None:
        self.cursors[(mapping, name)] = value

    def facts(self) -> dict[str, Fact]:
        if self.kept_facts is None:
            self.kept_facts = dict(self.real.facts())
        return dict(self.kept_facts)

    def save_fact(self, name: str, fact: Fact) -> None:
        self.facts()
        self.kept_facts[name] = fact

    def drop_facts(self, names: Sequence[str]) -> None:
        self.facts()
        for name in names:
            self.kept_facts.pop(name, None)


class DryRun:
    """One dry job: the engine to run it with, and afterwards what it would have done (`report`)."""

    def __init__(self, engine: SyncEngine, earlier: Sequence[str] = ()):
        self.writes = PlannedWrites()
        self.couplings = RecordedCouplings(engine.couplings)
        self.errors = RecordedErrors(engine.errors)
        self.outcomes: dict[tuple[str, str, str], RecordOutcome] = {}  # (mapping, direction, source id)
        self.engine = copy.copy(engine)
        earlier_ids = {i.lower() for i in earlier}
        self.engine.bc = RecordingEndpoint(engine.bc, self.writes, earlier_ids)
        self.engine.crm = RecordingEndpoint(engine.crm, self.writes, earlier_ids)
        self.engine.couplings, self.engine.errors = self.couplings, self.errors
        self.engine.state = RecordedState(engine.state)
        self.engine.on_record = self._heard

    def _heard(self, mapping: str, direction: Direction, outcome: RecordOutcome) -> None:
        self.outcomes[(mapping, direction.value, outcome.source_id.lower())] = outcome

    def touched(self) -> list[str]:
        """The ids of the rows this job would have written or coupled, on both sides, for the later jobs."""
        ids = [*self.writes.inserts, *self.writes.updates]
        ids += [i for c in self.couplings.saved.values() for i in (c.bc_id, c.crm_id)]
        return list(dict.fromkeys(i.lower() for i in ids))

    def report(self) -> dict:
        """What the job would have done: counts by kind (complete) and the records, LISTED_RECORDS per kind; with
        the ids later jobs leave out (`carried`, not shown) unless there are more than CARRIED_IDS."""
        touched = self.touched()
        carried = {"carried": touched} if len(touched) <= CARRIED_IDS else {"not_carried": len(touched)}
        entries: list[dict] = []
        removed = {}
        for coupling in self.couplings.removals:
            removed[(coupling.mapping, coupling.bc_id.lower())] = removed[(coupling.mapping, coupling.crm_id.lower())] \
                = coupling
        codes = {k: f.code for k, f in self.errors.saved.items()}
        for (mapping, direction, source_id), outcome in self.outcomes.items():
            entry = {"mapping": mapping, "direction": direction, "record": outcome.record,
                     "source_id": outcome.source_id, "target_id": outcome.target_id}
            gone = removed.pop((mapping, source_id), None)
            if gone is not None:  # known by both its ids: told once
                for row_id in (gone.bc_id, gone.crm_id):
                    removed.pop((mapping, row_id.lower()), None)
            if outcome.status == "created":
                entry.update(kind="restore" if gone else "insert", values=self.writes.take_insert(outcome.target_id))
            elif outcome.status in ("updated", "coupled"):
                changed = self.writes.take_update(outcome.target_id) or {}
                entry.update(kind="modify" if outcome.status == "updated" else "couple",
                             fields={name: {"old": old, "new": new} for name, (old, new) in changed.items()
                                     if not same(old, new)})
            elif outcome.status == "failed":
                code = codes.get((mapping, direction, outcome.source_id), "")
                entry.update(kind="conflict" if "Conflict" in code else "fail", reason=outcome.error, code=code)
            elif outcome.status in ("skipped", "filtered"):
                entry.update(kind="delete" if gone else "skip", reason=outcome.error or (
                    "the other side wins the update conflict" if outcome.status == "skipped" else "left out"))
            else:
                continue  # unchanged
            entries.append(entry)
        for coupling in {id(c): c for c in removed.values()}.values():  # removed with no record told (deleted)
            entries.append({"kind": "delete", "mapping": coupling.mapping, "record": f"coupling {coupling.bc_id} <-> "
                            f"{coupling.crm_id}", "source_id": coupling.bc_id,
                            "target_id": coupling.crm_id, "reason": "a coupled record was deleted: the coupling "
                                                                    "is removed"})
        for row_id, (table, values) in self.writes.inserts.items():  # follow-up writes (lines, companions)
            entries.append({"kind": "insert", "table": table, "record": f"{table} {row_id}", "target_id": row_id,
                            "values": values})
        for row_id, (table, changed) in self.writes.updates.items():
            fields = {name: {"old": old, "new": new} for name, (old, new) in changed.items() if not same(old, new)}
            if fields:
                entries.append({"kind": "modify", "table": table, "record": f"{table} {row_id}",
                                "target_id": row_id, "fields": fields})
        for row_id, (table, reason) in self.writes.deletes.items():
            entries.append({"kind": "delete", "table": table, "record": f"{table} {row_id}", "target_id": row_id,
                            **({"reason": reason} if reason else {})})
        for table, row, action in self.writes.actions:  # in their order: an order reopened, then released
            entries.append({"kind": "action", "table": table, "record": f"{table} {row.values.get('number') or row.id}",
                            "target_id": row.id, "reason": action})
        return {**listed(entries), **carried}


def _capped(entries: list[dict]) -> list[dict]:
    shown_by_kind: Counter[str] = Counter()
    kept = []
    for entry in entries:
        if shown_by_kind[entry["kind"]] < LISTED_RECORDS:
            shown_by_kind[entry["kind"]] += 1
            kept.append(entry)
    return kept


def listed(entries: list[dict]) -> dict:
    """A job's report of these entries."""
    return _summary(Counter(e["kind"] for e in entries), entries)


def _summary(counts: Counter[str], records: list[dict], truncated: bool = False) -> dict:
    """A job's report: its counts by kind and its records, the first LISTED_RECORDS of each kind (`truncated`:
    some were left out before)."""
    kept = _capped(records)
    return {"counts": {kind: counts[kind] for kind in KINDS}, "records": kept, "listed": LISTED_RECORDS,
            "truncated": truncated or len(kept) < len(records)}


def _identity(entry: dict) -> tuple:
    return (entry["kind"], entry.get("mapping") or entry.get("table"), entry.get("source_id") or entry.get("target_id"),
            entry.get("reason") if entry["kind"] == "action" else None)  # a row's actions are several


def merged(earlier: dict | None, later: dict) -> dict:
    """Two parts of one job (a continuation after a time budget, a retry) as one report; a record both parts
    list (a page done again) is listed once."""
    if not earlier:
        return later
    seen = {_identity(r) for r in earlier["records"]}
    records = earlier["records"] + [r for r in later["records"] if _identity(r) not in seen]
    counts = Counter(earlier["counts"])
    counts.update(later["counts"])
    ids = list(dict.fromkeys(earlier.get("carried", []) + later.get("carried", [])))
    carried = ({"carried": ids} if "carried" in earlier and "carried" in later and len(ids) <= CARRIED_IDS
               else {"not_carried": len(ids) + earlier.get("not_carried", 0) + later.get("not_carried", 0)})
    return {**_summary(counts, records, earlier["truncated"] or later["truncated"]), **carried}


def carried(reports: dict[str, dict], job_ids: Sequence[str]) -> list[str]:
    """The ids the reports of these (earlier) jobs hand on."""
    return [i for job_id in job_ids for i in reports.get(job_id, {}).get("carried", [])]


def shown_report(report: dict) -> dict:
    """A report as the job log shows it: the handed-on ids left out, whether there were too many to hand on kept."""
    return {k: v for k, v in report.items() if k != "carried"}
