"""In-memory fakes of the domain's ports, for unit tests of sync/ only.

End-to-end tests use the real adapters against Azurite and the simulators instead.
"""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from contextlib import nullcontext
from dataclasses import replace
from typing import Sequence

from simulators.odata import compile_filter
from sync.errors import AlreadyExistsError, ConcurrencyError, NotFoundError
from sync.model import BcTable, Direction, OptionSet, Side
from sync.ports import (ChangeFeed, Coupling, FeedPage, JobState, NewRow, Record, RecordFailure, RowChange,
                        WriteResult)
from sync.runs import Job, JobMessage, Run, RunKind


class FakeClock:
    def __init__(self, start: dt.datetime | None = None):
        self.current = start or dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.timezone.utc)

    def now(self) -> dt.datetime:
        return self.current

    def tick(self, seconds: float = 1) -> dt.datetime:
        self.current += dt.timedelta(seconds=seconds)
        return self.current


class FakeEndpoint:
    """A side holding rows per table name; every write bumps a version and the modified time."""

    def __init__(self, side: Side, clock: FakeClock, user: str = "integration"):
        self.side = side
        self.clock = clock
        self.user = user
        self.tables: dict[str, dict[str, dict]] = {}
        self.options: dict[tuple[str, str], dict[int, str]] = {}
        self._version = itertools.count(1)
        self.writes = 0
        self.reject: dict[str, str] = {}   # id or field value -> error message, to inject row failures
        self.tombstones: list[tuple[str, str, int]] = []   # table, id, version of the deletion
        self.new_id = lambda: str(uuid.uuid4())   # the ids of new rows (a test may make them predictable)

    @staticmethod
    def _name(table) -> str:
        return table.entity_set

    def rows(self, table) -> dict[str, dict]:
        return self.tables.setdefault(self._name(table), {})

    def put(self, table, values: dict, *, id: str | None = None, by: str = "someone") -> str:
        row_id = id or self.new_id()
        self.rows(table)[row_id] = {"values": dict(values), "etag": f"v{next(self._version)}",
                                     "modified_on": self.clock.tick(), "modified_by": by}
        return row_id

    def edit(self, table, row_id: str, by: str = "someone", **values) -> None:
        row = self.rows(table)[row_id]
        row["values"].update(values)
        row["etag"] = f"v{next(self._version)}"
        row["modified_on"] = self.clock.tick()
        row["modified_by"] = by

    def _record(self, row_id: str, row: dict, fields: Sequence[str]) -> Record:
        return Record(row_id, {f: row["values"].get(f) for f in fields}, row["etag"], row["modified_on"], row["modified_by"])

    @staticmethod
    def _filter(table, where):
        enums = table.enum_fields if isinstance(table, BcTable) else frozenset()

        def resolve(row, name):  # filters name enum values the way the BC API spells them
            value = row["values"].get(name)
            return value.replace(" ", "_x0020_") if name in enums and isinstance(value, str) else value

        return compile_filter(where, resolver=resolve)

    def read_changed(self, table, fields, *, since, where="", page_size=500, not_modified_by=None, limit=None):
        match = self._filter(table, where)
        rows = sorted(((rid, r) for rid, r in self.rows(table).items()
                       if (since is None or r["modified_on"] >= since) and match(r)
                       and (not_modified_by is None or self.side is Side.BC or r["modified_by"] != not_modified_by)),
                      key=lambda item: (item[1]["modified_on"], item[0]))
        if limit is not None:
            rows, page_size = rows[:limit], max(limit, 1)
        for start in range(0, len(rows), page_size):
            yield [self._record(rid, r, fields) for rid, r in rows[start:start + page_size]]

    def read_ids(self, table, fields, ids):
        rows = self.rows(table)
        return [self._record(i, rows[i], fields) for i in ids if i in rows]

    def read_matching(self, table, fields, field, values, where=""):
        wanted = {str(v).casefold() for v in values}
        match = self._filter(table, where)
        return [self._record(rid, r, fields) for rid, r in self.rows(table).items()
                if str(r["values"].get(field) or "").casefold() in wanted and match(r)]

    def read_visible(self, table, fields, ids, where=""):
        rows, match = self.rows(table), self._filter(table, where)
        return [self._record(i, rows[i], fields) for i in ids if i in rows and match(rows[i])]

    def last_key(self, table, field, prefix):
        keys = sorted(r["values"].get(field) or "" for r in self.rows(table).values())
        keys = [k for k in keys if k.startswith(prefix)]
        return keys[-1] if keys else None

    def insert(self, table, rows: Sequence[NewRow], fields) -> list[WriteResult]:
        results, stored = [], self.rows(table)
        for new in rows:
            if new.id and new.id in stored:
                results.append(WriteResult(error=AlreadyExistsError("duplicate key", code="0x80040237")))
                continue
            problem = self.reject and next((msg for key, msg in self.reject.items() if key in new.values.values()),
                                           None)
            if problem:
                results.append(WriteResult(error=_record_error(problem)))
                continue
            self.writes += 1
            # what the services default on create: an active Dataverse row, an unblocked BC customer
            defaults = {"statecode": 0} if self.side is Side.CRM else {"blocked": " "}
            row_id = self.put(table, {**defaults, **new.values}, id=new.id, by=self.user)
            results.append(WriteResult(self._record(row_id, stored[row_id], fields)))
        return results

    def update(self, table, changes: Sequence[RowChange], fields) -> list[WriteResult]:
        results, stored = [], self.rows(table)
        for change in changes:
            row = stored.get(change.id)
            if row is None:
                results.append(WriteResult(error=NotFoundError("gone")))
            elif change.etag and change.etag != row["etag"]:
                results.append(WriteResult(error=ConcurrencyError("changed meanwhile")))
            else:
                self.writes += 1
                self.edit(table, change.id, by=self.user, **change.values)
                results.append(WriteResult(self._record(change.id, row, fields)))
        return results

    def delete_rows(self, table, ids: Sequence[str]) -> list:
        for row_id in ids:
            self.rows(table).pop(row_id, None)
        return [None] * len(ids)

    def delete(self, table, row_id: str) -> None:
        del self.rows(table)[row_id]
        self.tombstones.append((self._name(table), row_id, next(self._version)))

    # Dataverse only
    def changes(self, table, fields, cursor, *, where="", page_size=500, not_modified_by=None):
        """A change feed over row versions; the cursor is the last version seen ("expired" restarts)."""
        complete = cursor not in (None, "expired")
        since = int(cursor) if complete else 0
        version = lambda row: int(row["etag"][1:])
        match = self._filter(table, where)
        rows = sorted(((rid, r) for rid, r in self.rows(table).items() if version(r) > since),
                      key=lambda item: version(item[1]))
        changed = [self._record(rid, r, fields) for rid, r in rows
                   if match(r) and (not_modified_by is None or r["modified_by"] != not_modified_by)]
        deleted = [rid for name, rid, v in self.tombstones if complete and name == self._name(table) and v > since]
        newest = max([since] + [version(r) for r in self.rows(table).values()] + [v for _, _, v in self.tombstones])
        page = FeedPage(changed, deleted, str(newest), True, [] if complete else [rid for rid, _ in rows])
        return ChangeFeed(iter([page]), complete)

    def integration_user_id(self) -> str:
        return self.user

    def option_labels(self, option_set: OptionSet) -> dict[int, str]:
        return self.options.get((option_set.table.logical_name, option_set.attribute), {})

    def job_started(self) -> None:
        """One company: nothing is looked up."""

    def claim(self, table, ids) -> dict:
        """One company: rows belong to no company, and nothing is claimed."""
        return {}


def _record_error(message: str):
    from sync.errors import RecordError
    return RecordError(message, code="Rejected")


def _copy(coupling: Coupling) -> Coupling:
    """What the store keeps or hands out is its own, as a stored entity is: snapshots included."""
    return Coupling(**{**coupling.__dict__, "bc_values": dict(coupling.bc_values),
                       "crm_values": dict(coupling.crm_values)})


class FakeCouplings:
    def __init__(self):
        self.by_side: dict[tuple[str, Side, str], Coupling] = {}
        self.queries = 0
        self.follow_ups: list = []  # notes of follow-ups not done (see CouplingStore.save_many)

    def get_many(self, mapping, side, ids):
        self.queries += 1
        found = {}
        for i in ids:
            c = self.by_side.get((mapping, side, i))
            if c is not None:
                found[i] = _copy(c)
        return found

    def save_many(self, couplings, follow_up=None):
        if follow_up is not None:
            follow_up.note = couplings[0].mapping
            self.follow_ups.append(follow_up)
        for c in couplings:
            copy = _copy(c)
            self.by_side[(c.mapping, Side.BC, c.bc_id)] = copy
            self.by_side[(c.mapping, Side.CRM, c.crm_id)] = copy

    def delete_many(self, couplings):
        for c in couplings:
            self.by_side.pop((c.mapping, Side.BC, c.bc_id), None)
            self.by_side.pop((c.mapping, Side.CRM, c.crm_id), None)

    def all(self, mapping):
        return {c.bc_id: c for (m, side, _), c in self.by_side.items() if m == mapping and side is Side.BC}

    def coupled_ids(self, mapping, side, page_size=1000):
        ids = [i for (m, s, i) in self.by_side if m == mapping and s is side]
        for start in range(0, len(ids), page_size):
            yield ids[start:start + page_size]

    def held(self, mapping, side, complete=True):
        return nullcontext()  # every lookup is in memory here

    def followed_up(self, follow_up):
        self.follow_ups = [f for f in self.follow_ups if f is not follow_up]

    def recover(self, mapping):
        # both sides are written at once here: only follow-ups are ever left undone
        return [f for f in self.follow_ups if f.note == mapping]


class FakeErrors:
    def __init__(self):
        self.entries: dict[tuple[str, Direction, str], RecordFailure] = {}

    def list(self, mapping, direction):
        return [e for (m, d, _), e in self.entries.items() if m == mapping and d is direction]

    def save_many(self, failures):
        for f in failures:
            self.entries[(f.mapping, f.direction, f.source_id)] = f

    def clear_many(self, mapping, direction, source_ids):
        for sid in source_ids:
            self.entries.pop((mapping, direction, sid), None)

    def list_all(self):
        return list(self.entries.values())


class _PerMapping:
    """Entries of the state store kept per mapping under one of their attributes (write-backs, pending inserts)."""

    def __init__(self, key: str):
        self.key = key
        self.rows: dict[tuple[str, str], object] = {}

    def list(self, mapping):
        return [entry for (m, _), entry in self.rows.items() if m == mapping]

    def save(self, mapping, entries):
        self.rows.update({(mapping, getattr(entry, self.key)): entry for entry in entries})

    def clear(self, mapping, keys):
        for key in keys:
            self.rows.pop((mapping, key), None)

    def ports(self):
        """The state store's list, save and clear of these entries."""
        return self.list, self.save, self.clear


class _KnownVersions(dict):
    """Known versions as FakeState.known_versions read them, with the keys of the added batches among them."""

    batches: list[str] = []


class FakeState:
    def __init__(self, clock: FakeClock):
        self.clock = clock
        self.marks: dict[tuple[str, Direction], dt.datetime] = {}
        self.pending_ids: dict[tuple[str, Direction], set[str]] = {}
        self.leases: dict[str, tuple[str, dt.datetime]] = {}
        self.kept_facts: dict = {}
        self.fact_reads = 0
        self.job_state_reads = self.job_state_saves = 0
        self.version_reads = 0  # reads of known versions, with the job's state or alone
        self.cursors: dict[tuple[str, str], str] = {}
        # known versions as the adapter keeps them: those the mapping's job saved, and batches other jobs added (by a
        # key of their own), which its next save replaces only where it read them
        self.versions: dict[tuple[str, Direction], dict[str, str]] = {}
        self.added_versions: dict[tuple[str, Direction], dict[str, dict[str, str]]] = {}
        self.schedule_rows: dict = {}
        self.notified_rows: dict = {}  # (mapping, direction) -> {record id: NotifiedRow}
        self.waiting_runs: dict = {}   # mapping -> (run id, since)
        self.etags = itertools.count(1)
        write_backs, inserting = _PerMapping("row_id"), _PerMapping("source_id")
        self.write_backs, self.save_write_backs, self.clear_write_backs = write_backs.ports()
        self.pending_inserts, self.save_pending_inserts, self.clear_pending_inserts = inserting.ports()

    def watermark(self, mapping, direction):
        return self.marks.get((mapping, direction))

    def job_state(self, mapping, direction, versions=False):
        self.job_state_reads += 1
        return JobState(self.marks.get((mapping, direction)),
                        {name: value for (m, name), value in self.cursors.items() if m == mapping},
                        self.pending(mapping, direction), self.known_versions(mapping, direction) if versions else None,
                        self.notified(mapping, direction))

    def save_job_state(self, mapping, direction, *, watermark=None, cursors=None, versions=None, replacing=None):
        self.job_state_saves += 1
        if watermark is not None:
            self.marks[(mapping, direction)] = watermark
        for name, value in (cursors or {}).items():
            self.cursors[(mapping, name)] = value
        if versions is not None:
            self._replace_versions(mapping, direction, versions, replacing)

    def _replace_versions(self, mapping, direction, versions, replacing):
        """As the adapter: the versions saved replace the job's own and the batches added that `replacing` (what
        known_versions gave the job) holds; without it, every batch (the adapter reads the rows there now)."""
        self.versions[(mapping, direction)] = dict(versions)
        added = self.added_versions.get((mapping, direction), {})
        for key in getattr(replacing, "batches", list(added)):
            added.pop(key, None)

    def advance_watermark(self, mapping, direction, value):
        old = self.marks.get((mapping, direction))
        if old is None or value > old:
            self.marks[(mapping, direction)] = value

    def save_watermark(self, mapping, direction, value):
        self.marks[(mapping, direction)] = value

    def pending(self, mapping, direction):
        return list(self.pending_ids.get((mapping, direction), []))

    def mark_pending(self, mapping, direction, ids):
        self.pending_ids.setdefault((mapping, direction), set()).update(ids)

    def clear_pending(self, mapping, direction, ids):
        self.pending_ids.get((mapping, direction), set()).difference_update(ids)

    def schedules(self):
        return dict(self.schedule_rows)

    def save_schedule(self, mapping, schedule):
        self.schedule_rows[mapping] = schedule

    def cursor(self, mapping, name):
        return self.cursors.get((mapping, name))

    def known_versions(self, mapping, direction):
        self.version_reads += 1
        added = self.added_versions.get((mapping, direction), {})
        known = _KnownVersions(self.versions.get((mapping, direction), {}))
        for batch in added.values():  # sorted after the job's own, which they outdate
            known.update(batch)
        known.batches = list(added)
        return known

    def save_known_versions(self, mapping, direction, versions, replacing=None):
        self._replace_versions(mapping, direction, versions, replacing)

    def add_known_versions(self, mapping, direction, versions):
        self.added_versions.setdefault((mapping, direction), {})[uuid.uuid4().hex] = dict(versions)

    def save_cursor(self, mapping, name, value):
        self.cursors[(mapping, name)] = value

    def notify(self, mapping, direction, rows):
        for row in rows:
            self.notified_rows.setdefault((mapping, direction), {})[row.record_id] = replace(
                row, etag=str(next(self.etags)))

    def notified(self, mapping, direction):
        return list(self.notified_rows.get((mapping, direction), {}).values())

    def clear_notified(self, mapping, direction, rows):
        kept = self.notified_rows.get((mapping, direction), {})
        for row in rows:
            if row.record_id in kept and kept[row.record_id].etag == row.etag:
                del kept[row.record_id]

    def join_waiting_run(self, mapping, run_id, stale_before):
        waiting = self.waiting_runs.get(mapping)
        if waiting is None or waiting[1] < stale_before:
            waiting = self.waiting_runs[mapping] = (run_id, self.clock.now())
        return waiting

    def release_waiting_run(self, mapping, run_id):
        if self.waiting_runs.get(mapping, (None,))[0] == run_id:
            del self.waiting_runs[mapping]

    def facts(self):
        self.fact_reads += 1
        return dict(self.kept_facts)

    def save_fact(self, name, fact):
        self.kept_facts[name] = fact

    def drop_facts(self, names):
        for name in names:
            self.kept_facts.pop(name, None)

    def acquire(self, name, owner, until):
        held = self.leases.get(name)
        if held and held[0] != owner and held[1] > self.clock.now():
            return False
        self.leases[name] = (owner, until)
        return True

    def release(self, name, owner):
        if self.leases.get(name, (None,))[0] == owner:
            del self.leases[name]


class FakeRuns:
    def __init__(self):
        self.runs: dict[str, Run] = {}
        self.job_rows: dict[str, dict[str, Job]] = {}
        self.dry_reports: dict[str, dict[str, dict]] = {}
        self._version = itertools.count(1)

    def _stamp(self, obj):
        obj.etag = str(next(self._version))
        return obj

    def create(self, run, jobs):
        self.runs[run.run_id] = self._stamp(run)
        self.job_rows[run.run_id] = {j.job_id: self._stamp(j) for j in jobs}

    def get(self, run_id):
        run = self.runs.get(run_id)
        return None if run is None else Run(**run.__dict__)

    def list_runs(self, limit=20, targeted=None):
        runs = [r for r in self.runs.values() if targeted is None or (r.kind is RunKind.NOTIFIED) is targeted]
        return [Run(**r.__dict__) for r in sorted(runs, key=lambda r: r.created_at, reverse=True)[:limit]]

    def older_than(self, when):
        return [r for r in self.list_runs(limit=len(self.runs)) if r.created_at < when]

    def delete(self, run):
        self.runs.pop(run.run_id, None)
        self.job_rows.pop(run.run_id, None)

    def jobs(self, run_id):
        return [Job(**j.__dict__) for j in sorted(self.job_rows.get(run_id, {}).values(), key=lambda j: j.seq)]

    def get_job(self, run_id, job_id):
        job = self.job_rows.get(run_id, {}).get(job_id)
        return None if job is None else Job(**job.__dict__)

    def save_job(self, job):
        current = self.job_rows[job.run_id][job.job_id]
        if current.etag != job.etag:
            raise ConcurrencyError("job changed")
        saved = self._stamp(Job(**job.__dict__))
        self.job_rows[job.run_id][job.job_id] = saved
        return Job(**saved.__dict__)

    def save_run(self, run):
        if self.runs[run.run_id].etag != run.etag:
            raise ConcurrencyError("run changed")
        self.runs[run.run_id] = self._stamp(Run(**run.__dict__))
        return Run(**self.runs[run.run_id].__dict__)

    def save_report(self, run_id, job_id, report):
        self.dry_reports.setdefault(run_id, {})[job_id] = report

    def reports(self, run_id):
        return dict(self.dry_reports.get(run_id, {}))


class FakeQueue:
    def __init__(self):
        self.messages: list[tuple[JobMessage, int]] = []

    def send(self, message, delay_seconds=0):
        self.messages.append((message, delay_seconds))

    def drain(self):
        pending, self.messages = self.messages, []
        return [m for m, _ in pending]
