"""The synchronisation engine: runs one job, i.e. one table mapping in one direction.

Per job:
1. Records that failed before (and are not skipped) are retried first, whatever their modified-on,
   with the rows a merge in the opposite direction left pending for this one.
2. Then the source rows changed since the last run: from Sales, the change feed (rows changed and
   deleted, its cursor moving on after each page); elsewhere the rows changed since the watermark,
   oldest first, page by page. After each page the job's watermark advances (never past the job's start minus
   a safety margin), so a row changed while the job ran is read again next time. Both are saved, with the known
   versions, when the job ends or stops (failed, out of time), so that what it passed is not read again, and with
   its progress (every twentieth of a lease), so that a worker killed midway leaves them at most one progress
   save behind; a short job saves them once. A job whose lease another worker took saves nothing more.
3. Per page: couplings are looked up in bulk, coupled destination rows are read in bulk, lookups
   are resolved in bulk, then every row becomes an insert, an update, unchanged, skipped or failed;
   the writes go to the destination a page at a time, and couplings and errors are saved in bulk.

Echo suppression and conflicts rest on the coupling's snapshot of the values both sides had at the
last synchronisation: a field changed on one side only is carried over; a field changed on both
sides to different values is a conflict; a row whose version is the one we wrote is unchanged.
"""

from __future__ import annotations

import contextvars
import dataclasses
import datetime as dt
import hashlib
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable, Iterable, Iterator

from .config import CatalogSource
from .errors import (
    AlreadyExistsError,
    ConfigurationError,
    ConflictError,
    LeaseLost,
    RecordError,
    SettingsError,
    SyncError,
    stops_job,
)
from .facts import INTEGRATION_USER, OWNING_TEAM, Facts, KeptFacts
from .failures import failed_again
from .lookups import LookupResolver
from .mappings import Catalog
from .model import (
    EMPTY_GUID,
    BcTable,
    ConnectionSetup,
    Convert,
    CrmTable,
    DeletionConflictResolution,
    Direction,
    FieldMapping,
    OwnershipModel,
    Side,
    TableMapping,
    Truncation,
    UpdateConflictResolution,
    WhenUncoupled,
)
from .ports import (
    CLAIM_TAKEN,
    WORK_ROWS,
    ChangeFeed,
    Clock,
    Coupling,
    CouplingStore,
    CrmEndpoint,
    Endpoint,
    ErrorStore,
    FollowUp,
    JobState,
    NewRow,
    PendingInsert,
    Record,
    RecordFailure,
    RowChange,
    StateStore,
)
from .review import Recommendation, recommend
from .rules import IGNORE, MappingRules, SkipRow, Written
from .rules.units import refuse_mixed_modes
from .targeted import NotifiedRow
from .templates import template_values, without_template
from .values import blank_for, is_blank, normalize, plain_converter, same

# Ids of Dataverse rows we create are derived from the Business Central record, so an insert that
# is repeated (a retry after a lost answer, a re-delivered job) finds its row instead of duplicating it.
CRM_ID_NAMESPACE = uuid.UUID("6f1d4c1e-3a51-4b9e-9f5c-0c2b8e7d5a10")
COUNT_NAMES = ("inserted", "modified", "deleted", "unchanged", "skipped", "failed", "coupled", "uncoupled")
WRITES = ("inserted", "modified", "deleted", "coupled", "uncoupled")  # counts of a job that changed rows or pairs
# failures of match-based coupling: their cause is usually on the other side (a duplicate, a missing
# row), so they are never skipped, and they clear once the row is coupled by any means
NO_MATCH, SEVERAL_MATCHES = "NoMatch", "SeveralMatches"
MATCH_FAILURES = (NO_MATCH, SEVERAL_MATCHES)
FEED_CURSOR = "feed:crm"         # the state store's name for a mapping's Dataverse delta link
PEEK_ROWS = 100                  # rows a schedule check looks through before it just runs the job
LISTED = 10                      # records a job-log note about many records names (the rest are counted)
SERVICE = {Side.BC: "Business Central", Side.CRM: "Sales"}


@dataclass
class Counts:
    inserted: int = 0
    modified: int = 0
    deleted: int = 0
    unchanged: int = 0
    skipped: int = 0
    failed: int = 0
    coupled: int = 0
    uncoupled: int = 0

    def add(self, other: "Counts") -> None:
        for name in COUNT_NAMES:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict | None) -> "Counts":
        return cls(**{k: int(v) for k, v in (data or {}).items() if k in COUNT_NAMES})


@dataclass
class JobOutcome:
    counts: Counts
    notes: list[str]
    checkpoint: dt.datetime | None
    complete: bool = True  # False: stopped at its deadline; continue from the checkpoint


@dataclass
class Progress:
    """Reported after every page, so the job runner can persist it and renew its lease."""

    counts: Counts
    checkpoint: dt.datetime | None
    moved: bool = False  # got further where no checkpoint tells it (a targeted job's notified rows taken)


@dataclass
class RecordOutcome:
    """What a job did with one record it was asked to synchronise: created, coupled (matched to an existing
    row), updated, unchanged, skipped, filtered (its mapping's filter or rules leave it out), failed or
    missing (no such record); `error` says why when it was not synchronised."""

    source_id: str
    status: str
    record: str = ""
    target_id: str = ""
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status in ("created", "coupled", "updated", "unchanged")

    def to_dict(self) -> dict[str, str]:
        return dataclasses.asdict(self)


def _table_name(table) -> str:
    return table.caption if isinstance(table, BcTable) else table.logical_name


def record_label(table, record: Record) -> str:
    """How a user recognises a record: 'Customer C00010' or "account 'Adatum' (id)"."""
    if isinstance(table, BcTable):
        return f"{table.caption} {record.values.get(table.key_field) or record.id}"
    return f"{table.logical_name} '{record.values.get(table.primary_name) or ''}' ({record.id})"


class _Keep:
    """Marker: leave the destination field as it is."""


KEEP = _Keep()


@dataclass
class RowPlan:
    action: str                      # insert | update | unchanged | skip | fail
    values: dict[str, Any] = field(default_factory=dict)
    error: SyncError | None = None
    src_snapshot: dict[str, Any] = field(default_factory=dict)
    dst_snapshot: dict[str, Any] = field(default_factory=dict)
    dst_has_unsynced_changes: bool = False


Converter = Callable[[Any, Record], Any]  # a source value (of a row) -> the value for the destination


class FieldPlan:
    """The field mappings of one table mapping in one job direction, resolved once per job: which fields
    apply, their names on both sides, their converters and snapshot keys. `plan` decides per row.

    Bidirectional fields are merged three ways against the coupling's snapshot: changed on the
    source only -> written; changed on the destination only -> left for the opposite pass; changed
    on both to different values -> an update conflict, resolved per the mapping's setting.
    Unidirectional fields always follow their source. A bidirectional lookup that neither side changed
    since then writes nothing whatever it resolves to, so it is not resolved (a scheduled run reads no
    referenced rows for it).
    """

    def __init__(self, mapping: TableMapping, direction: Direction,
                 converter: Callable[[FieldMapping], Converter]):
        self.mapping, self.direction = mapping, direction
        self.src_side, self.dst_side = direction.source, direction.target
        # per field: (field mapping, snapshot key, source field, destination field, constant, insert only,
        # bidirectional, a lookup that may be left unresolved, converter); plain tuples, as this runs for every
        # field of every row
        self.steps = tuple(
            (fm, fm.key, fm.field_on(self.src_side), fm.field_on(self.dst_side), fm.constant, fm.insert_only,
             fm.direction is Direction.BIDIRECTIONAL, self._may_settle(fm),
             converter(fm) if fm.field_on(self.src_side) else None)
            for fm in mapping.fields_for(direction) if fm.field_on(self.dst_side) is not None)
        resolution = mapping.update_conflict
        self.source_wins = (resolution is not UpdateConflictResolution.NONE and
                            (resolution is UpdateConflictResolution.SEND_TO_CRM) == (direction is Direction.TO_CRM))

    @staticmethod
    def _may_settle(fm: FieldMapping) -> bool:
        return fm.convert is Convert.LOOKUP and fm.direction is Direction.BIDIRECTIONAL

    @staticmethod
    def _settled(key: str, raw: Any, current: Any, src_snap: dict[str, Any], dst_snap: dict[str, Any]) -> bool:
        """Neither side changed the field since the pair was last synchronised."""
        return key in src_snap and key in dst_snap and same(raw, src_snap[key]) and same(current, dst_snap[key])

    def to_look_up(self, fm: FieldMapping, rows: list[tuple[Record, Coupling | None, Record | None]]) -> list[Record]:
        """The rows (source row, coupling, destination row) whose value of lookup `fm` `plan` resolves."""
        if not self._may_settle(fm):
            return [row for row, _, _ in rows]
        key, src_field, dst_field = fm.key, fm.field_on(self.src_side), fm.field_on(self.dst_side)
        return [row for row, coupling, dst in rows if coupling is None or dst is None or not self._settled(
            key, row.values.get(src_field), dst.values.get(dst_field), coupling.values_on(self.src_side),
            coupling.values_on(self.dst_side))]

    def plan(self, src: Record, dst: Record | None, coupling: Coupling | None) -> RowPlan:
        if coupling is not None:
            src_snap, dst_snap = coupling.values_on(self.src_side), coupling.values_on(self.dst_side)
        else:
            src_snap, dst_snap = {}, {}
        source, current_values = src.values, dst.values if dst is not None else None
        writes: dict[str, Any] = {}
        new_src, new_dst = {}, dict(dst_snap)
        conflicts: list[tuple[FieldMapping, Any, Any]] = []
        dst_pending = False
        for fm, key, src_field, dst_field, constant, insert_only, both_ways, may_settle, convert in self.steps:
            if insert_only and dst is not None:
                continue
            if src_field is None:
                raw, target_value = None, constant
            else:
                raw = source.get(src_field)
                new_src[key] = raw
                if may_settle and current_values is not None and self._settled(
                        key, raw, current_values.get(dst_field), src_snap, dst_snap):
                    continue
                target_value = convert(raw, src)
            if target_value is KEEP:
                continue
            if current_values is None:
                if target_value is not None and target_value != "" and target_value != EMPTY_GUID:  # not blank
                    writes[dst_field] = target_value
                if src_field is not None:
                    new_dst[key] = target_value
                continue
            current = current_values.get(dst_field)
            if same(target_value, current):
                if src_field is not None:
                    new_dst[key] = current
                continue
            if both_ways:
                if key not in src_snap:
                    if is_blank(target_value):
                        # first synchronisation of a matched pair: a blank never wipes out the other side's
                        # value; the opposite pass carries that value over instead
                        dst_pending = True
                        continue
                else:
                    src_changed = not same(raw, src_snap.get(key))
                    dst_changed = not same(current, dst_snap.get(key))
                    if dst_changed and not src_changed:
                        dst_pending = True
                        continue
                    if dst_changed and src_changed:
                        conflicts.append((fm, target_value, current))
                        continue
                    if not dst_changed and not src_changed:
                        continue  # values that cannot round-trip (cut to a shorter field): nobody changed them
            writes[dst_field] = target_value
            if src_field is not None:
                new_dst[key] = target_value

        skip_for_conflict = False
        if conflicts:
            if self.mapping.update_conflict is UpdateConflictResolution.NONE:
                return RowPlan("fail", error=self._conflict(conflicts))
            if self.source_wins:
                for fm, value, _ in conflicts:
                    writes[fm.field_on(self.dst_side)] = value
                    new_dst[fm.key] = value
            else:
                # the losing side's pass writes nothing; the winner's pass must still run for this row
                skip_for_conflict = dst_pending = True

        if dst is None:
            action = "insert"
        elif writes:
            action = "update"
        else:
            action = "skip" if skip_for_conflict else "unchanged"
        return RowPlan(action, writes, src_snapshot=new_src, dst_snapshot=new_dst,
                       dst_has_unsynced_changes=dst_pending)

    def _conflict(self, conflicts: list[tuple[FieldMapping, Any, Any]]) -> ConflictError:
        names = ", ".join(f"{fm.label} ({fm.bc} <-> {fm.crm})" for fm, _, _ in conflicts)
        detail = "; ".join(f"{fm.label}: source {normalize(v)!r}, destination {normalize(c)!r}"
                           for fm, v, c in conflicts)
        return ConflictError(
            f"Both sides changed {names} since the last synchronisation ({detail}). "
            f"Set an update-conflict resolution on {self.mapping.name} or make the values agree.",
            fields=tuple(fm.label for fm, _, _ in conflicts))


def plan_row(mapping: TableMapping, direction: Direction, src: Record, dst: Record | None,
             coupling: Coupling | None, convert: Callable[[FieldMapping, Any], Any]) -> RowPlan:
    """Decide what to write for one source row (pure; `convert` resolves values for the target side).
    A job builds its FieldPlan once instead; this is the same decision for a single row."""
    return FieldPlan(mapping, direction, lambda fm: lambda value, row: convert(fm, value)).plan(src, dst, coupling)


class JobMode(str, Enum):
    INCREMENTAL = "incremental"  # rows changed since the watermark (scheduled runs)
    FULL = "full"                # every row, creating counterparts of uncoupled ones (full synchronisation)
    COUPLE = "couple"            # match-based coupling of the uncoupled rows only
    NOTIFIED = "notified"        # the rows notifications named, read by id (sync.targeted); moves no watermark


class SyncEngine:
    def __init__(self, catalogs: CatalogSource, bc: Endpoint, crm: CrmEndpoint, couplings: CouplingStore,
                 errors: ErrorStore, state: StateStore, clock: Clock, *, page_size: int = 20_000,
                 watermark_margin: dt.timedelta = dt.timedelta(seconds=60),
                 reconcile_every: dt.timedelta = dt.timedelta(hours=6), setup: ConnectionSetup = ConnectionSetup(),
                 facts_ttl: dt.timedelta = dt.timedelta(hours=1)):
        self.catalogs = catalogs
        self.bc = bc
        self.crm = crm
        self.couplings = couplings
        self.errors = errors
        self.state = state
        self.clock = clock
        self.page_size = page_size
        self.watermark_margin = watermark_margin
        self.reconcile_every = reconcile_every  # how often coupled ids are checked where no change feed tells deletions
        self.setup = setup
        self.facts_ttl = facts_ttl  # how long a fact about the services' set-up is used without reading it again
        # hears what became of each record a job worked on (a dry run's report): (mapping, direction, outcome)
        self.on_record: Callable[[str, Direction, RecordOutcome], None] | None = None

    def endpoint(self, side: Side) -> Endpoint:
        return self.bc if side is Side.BC else self.crm

    def has_work(self, mapping_name: str) -> bool:
        """Whether a scheduled job of the mapping would find anything to do now (see _Job.has_work)."""
        catalog = self.catalogs.current()
        mapping = catalog[mapping_name]
        jobs = [_Job(self, catalog, mapping, direction, "schedule check", JobMode.INCREMENTAL, Counts(), None)
                for direction in mapping.direction.job_directions()]
        with jobs[0].facts.in_use():
            if mapping.process is not None:
                return mapping.process.has_work(jobs[0])
            return any(job.has_work() for job in jobs)

    def recommend(self, mapping: TableMapping) -> "Recommendation":
        """What a full synchronisation of the mapping (of the catalogue in force) should do (sync.review)."""
        return recommend(mapping, self.bc, self.crm)

    def run(self, mapping_name: str, direction: Direction, *, job_id: str, mode: JobMode = JobMode.INCREMENTAL,
            resume_from: dt.datetime | None = None, on_progress: Callable[[Progress], bool | None] | None = None,
            counts: Counts | None = None, deadline: dt.datetime | None = None,
            catalog: Catalog | None = None) -> JobOutcome:
        """`catalog`: as the caller read it for the jobs it runs one after another; else read now (overrides saved
        since the last read apply from now on). `on_progress` returns True when it saved the job's progress (and
        renewed its lease): the job then saves what it moved too (_Job.progress)."""
        catalog = catalog or self.catalogs.current()
        mapping = catalog[mapping_name]
        if not mapping.direction.includes(direction) or direction is Direction.BIDIRECTIONAL:
            raise SyncError(f"Table mapping {mapping.name} does not synchronise {direction.value}.")
        kept_facts = KeptFacts()
        left, failures, states = self._read_start(mapping, direction, mode, kept_facts)
        self._retry_follow_ups(mapping, left)
        # failures are read again where the follow-ups just added some
        job = self._new_job(catalog, mapping, direction, job_id, mode, counts, on_progress, kept_facts,
                            None if left else failures, states)
        with job.facts.in_use():
            try:
                try:
                    if mapping.process is not None:
                        outcome = mapping.process.run(job, deadline)
                    elif mapping.is_option_mapping:
                        outcome = job.run_option_mapping()
                    else:
                        outcome = job.run(resume_from, deadline)
                except LeaseLost:
                    raise  # another worker carries on: what this one holds may be behind what that one saved
                except Exception:  # (not an interpreter's exit: nothing is written then)
                    job.save_state(stopping=True)
                    raise
                job.save_state()
            except SyncError as exc:
                job.facts.drop(job.rules.stales)  # it may have written some rows
                dropped = [] if exc.transient else job.facts.refused(exc.message)
                if dropped:  # the job log shows the error only
                    exc.message = f"{exc.message} ({'; '.join(dropped)})"
                raise
            # reference rows kept as facts that this job may have changed are read afresh from now on
            if any(getattr(outcome.counts, name) for name in WRITES):
                job.facts.drop(job.rules.stales)
            return outcome

    def _read_start(self, mapping: TableMapping, direction: Direction, mode: JobMode, kept_facts: KeptFacts) \
            -> tuple[list[FollowUp], list[RecordFailure], dict[Direction, JobState]]:
        """What a job reads before its first row, side by side rather than one after another: the couplings a stopped
        job left half written (completed now) and its follow-ups, the job's failed records, the mapping's state (a
        job mapping keeps its own) and the kept facts: read afresh for each job, as another worker's job may have
        dropped one (a job that changed the reference rows a fact holds drops it, sync.facts)."""
        reads: dict[str, Callable[[], Any]] = {"left": lambda: self.couplings.recover(mapping.name),
                                                "failures": lambda: self.errors.list(mapping.name, direction)}
        if mapping.process is None:
            reads["state"] = lambda: self.state.job_state(mapping.name, direction,
                                                          versions=keeps_versions(mapping, direction, mode))
        if self.facts_ttl > dt.timedelta(0):
            reads["facts"] = self.state.facts
        with ThreadPoolExecutor(max_workers=len(reads), thread_name_prefix="job-start") as pool:
            # each in a copy of this context: the adapters' telemetry counts the requests for this job
            started = {name: pool.submit(contextvars.copy_context().run, read) for name, read in reads.items()}
            read = {name: future.result() for name, future in started.items()}
        if "facts" in read:
            kept_facts.facts = read["facts"]
        return read["left"], read["failures"], {direction: read["state"]} if "state" in read else {}

    def _retry_follow_ups(self, mapping: TableMapping, left: list[FollowUp]) -> None:
        """New rows whose follow-up writes a stopped job may not have done (see _Page.write) are logged as failed
        records, so the next pass retries them (the follow-up is written idempotently); then their note goes."""
        now = self.clock.now()
        for follow_up in left:
            failed = {f.source_id for f in self.errors.list(mapping.name, follow_up.direction)}
            table = mapping.table_on(follow_up.direction.source)
            self.errors.save_many([RecordFailure(
                mapping.name, follow_up.direction, sid, record_label(table, Record(sid, {})),
                f"{record_label(table, Record(sid, {}))}: written, but what goes with it may not be (a job stopped "
                f"in between); retried at the next run", transient=True, first_seen=now, last_seen=now)
                for sid in follow_up.source_ids if sid not in failed])
            self.couplings.followed_up(follow_up)

    def job(self, mapping_name: str, job_id: str) -> "_Job":
        """A job context outside a run, for what a user starts on one record (create one sales order)."""
        catalog = self.catalogs.current()
        mapping = catalog[mapping_name]
        return self._new_job(catalog, mapping, mapping.direction.job_directions()[0], job_id)

    def _new_job(self, catalog: Catalog, mapping: TableMapping, direction: Direction, job_id: str,
             mode: JobMode = JobMode.INCREMENTAL, counts: Counts | None = None, on_progress=None,
             kept_facts: KeptFacts | None = None, failures: list[RecordFailure] | None = None,
             states: dict[Direction, JobState] | None = None) -> "_Job":
        """A job that works on records (a run's, or one started on some records); refused while couplings of the
        other unit mode exist (see refuse_mixed_modes). `failures` and `states`: as read already (_read_start)."""
        self.crm.job_started()
        job = _Job(self, catalog, mapping, direction, job_id, mode, counts or Counts(), on_progress, states,
                   kept_facts, failures)
        refuse_mixed_modes(job)
        return job

    def sync_records(self, mapping_name: str, direction: Direction, ids: list[str], *, job_id: str,
                     coupled: bool | None = None, restore_skipped: bool = False,
                     visiting: frozenset[tuple[str, str]] = frozenset()) -> list[RecordOutcome]:
        """Synchronise these source records of a mapping now, whatever their modified-on, creating their
        counterparts where they are not coupled (Synch. Only Coupled Records notwithstanding), when they
        pass the mapping's filter. `coupled`: True takes coupled records only, False uncoupled ones only
        (the others fail); `restore_skipped` works on records skipped after failing twice. What a job
        records with them (failures, couplings) is as a scheduled job would record it. `visiting`: the
        records the jobs that asked for these are working on, which are not synchronised again."""
        catalog = self.catalogs.current()
        mapping = catalog[mapping_name]
        if (not mapping.enabled or not mapping.direction.includes(direction) or direction is Direction.BIDIRECTIONAL
                or mapping.is_option_mapping or mapping.process is not None):
            raise ConfigurationError(f"Table mapping {mapping.name} does not synchronise single records "
                                     f"{direction.value}{'' if mapping.enabled else ' (it is disabled)'}.")
        job = self._new_job(catalog, mapping, direction, job_id)
        job.outcomes, job.restore_skipped = {}, restore_skipped
        ids = [i for i in dict.fromkeys(ids) if (mapping.name, i.lower()) not in visiting]
        job.visiting = visiting | {(mapping.name, i.lower()) for i in ids}
        with job.facts.in_use():
            job._process_ids(job.selected(ids, coupled))
        job.moved_nothing()
        return [job.outcomes.get(i.lower()) or RecordOutcome(i, "missing", error=(
            f"There is no {job._src_name()} with id {i} in {SERVICE[job.src_side]}."
        )) for i in ids]


def _absent(ids: Iterable[str], rows: Iterable[Record]) -> list[str]:
    """The ids of no row among `rows`, compared without case (both services' ids are GUIDs)."""
    found = {r.id.lower() for r in rows}
    return [i for i in ids if i.lower() not in found]


def keeps_versions(mapping: TableMapping, direction: Direction, mode: JobMode) -> bool:
    """Whether a job keeps known versions (see _Job.keeps_versions): a scheduled BC -> Sales pass of a two-way
    mapping."""
    return (mode is JobMode.INCREMENTAL and direction is Direction.TO_CRM
            and mapping.direction is Direction.BIDIRECTIONAL and not mapping.reread_all)


class _Job:
    """The state of one running job; one instance per run of SyncEngine.run."""

    def __init__(self, engine: SyncEngine, catalog: Catalog, mapping: TableMapping, direction: Direction,
                 job_id: str, mode: JobMode, counts: Counts, on_progress,
                 states: dict[Direction, JobState] | None = None, kept_facts: KeptFacts | None = None,
                 failures: list[RecordFailure] | None = None):
        self.e = engine
        self.catalog = catalog
        self.mapping = mapping
        self.direction = direction
        self.job_id = job_id
        self._set_mode(mode)
        self.counts = counts
        self.on_progress = on_progress or (lambda progress: None)
        self.src_side, self.dst_side = direction.source, direction.target
        self.src, self.dst = engine.endpoint(self.src_side), engine.endpoint(self.dst_side)
        self.src_table, self.dst_table = mapping.table_on(self.src_side), mapping.table_on(self.dst_side)
        self.fields = mapping.fields_for(direction)
        self.started = engine.clock.now()
        self.cap = self.started - engine.watermark_margin
        self.notes: Counter[str] = Counter()
        self.resolver = LookupResolver(catalog, engine.bc, engine.couplings)
        self.failures = {f.source_id: f for f in (engine.errors.list(mapping.name, direction) if failures is None
                                                  else failures)}
        self.facts = Facts(engine.state, engine.clock, engine.facts_ttl, self.note, kept_facts)
        self.integration_user = self.integration_user_id() if self.src_side is Side.CRM else None
        self.rules: MappingRules = mapping.rules or MappingRules()
        self.src_fields = self._field_list(self.src_side, self.src_table)
        self.dst_fields = self._field_list(self.dst_side, self.dst_table)
        self._converters: dict[int, tuple[FieldMapping, Converter]] = {}
        # notes about many records: by text, the records in the order noted (one converted twice counts once)
        self._listings: dict[str, dict[str, None]] = {}
        self.field_plan = FieldPlan(mapping, direction, self.converter)
        self.match_index: MatchIndex | None = None  # built by the first page that matches in a full job
        self._crm_id_prefix = hashlib.sha1(CRM_ID_NAMESPACE.bytes + f"{mapping.name}/".encode())
        # what rules and processes see (sync.rules.RuleContext, sync.process.JobContext)
        self.bc, self.crm, self.couplings = engine.bc, engine.crm, engine.couplings
        self.errors, self.state, self.clock, self.setup = engine.errors, engine.state, engine.clock, engine.setup
        self.cache: dict[str, Any] = {}
        self.moves_watermark = mode is not JobMode.COUPLE
        self.starts_feed = False  # see _starts_feed
        self._pending_inserts: dict[str, PendingInsert] | None = None  # read when first needed
        # records asked for by id (sync_records): what became of each, by lower-case id
        self.outcomes: dict[str, RecordOutcome] | None = None
        self.restore_skipped = False
        self.visiting: frozenset[tuple[str, str]] = frozenset()  # (mapping, id) being synchronised up the chain
        self.reference_problems: dict[tuple[str, Any], str] = {}  # (mapping, looked-up value) -> why not synced first
        self.page_couplings: dict[str, Coupling] = {}  # the couplings of the rows the current page works on
        self.read_at: dict[str, dt.datetime | None] = {}  # a pass that keeps versions: the rows' modified-on, by id
        # the mapping's state by direction, each read in one go when first needed, shared with the passes this job
        # runs in the other direction (_pass); the job holds the mapping's lease, so nobody else moves it meanwhile
        self.states: dict[Direction, JobState] = {} if states is None else states
        # what this job moved and saves when it ends or stops (save_state): its watermark, cursors, known versions
        self.unsaved_watermark: dt.datetime | None = None
        self.unsaved_cursors: dict[str, str] = {}
        self.unsaved_versions: dict[str, str] | None = None

    def _set_mode(self, mode: JobMode) -> None:
        """The job's mode and what it decides; a targeted job that a collection notification makes the incremental
        job changes it (_run_targeted)."""
        self.mode = mode
        self.full = mode in (JobMode.FULL, JobMode.COUPLE)  # every row is read, uncoupled ones are worked on
        # a scheduled BC -> Sales pass of a two-way mapping finds rows of a version it knows unchanged without a
        # lookup, and keeps the versions of those its watermark stops short of (see _keep_known_versions)
        self.keeps_versions = keeps_versions(self.mapping, self.direction, mode)
        # rows named by notifications are being worked on (_passed)
        self.notified_pass = mode is JobMode.NOTIFIED
        # a full job into Business Central of a two-way mapping, or a pass that keeps versions: the version of each
        # BC row that the couplings it read or saved hold (with a snapshot), by lower-case id (see _pass_own_writes)
        self.bc_versions: dict[str, str] | None = (
            {} if self.keeps_versions or (self.full and self.direction.target is Side.BC and self.mapping.direction
                                          .includes(Direction.TO_CRM) and not self.mapping.reread_all) else None)
        self.known: dict[str, str] | None = None  # the versions that job left for this one: read when first needed

    def note(self, text: str) -> None:
        self.notes[text] += 1

    def note_record(self, text: str, record: str) -> None:
        """A note about one record, which the job log shows with the others of the same text, in one bounded note."""
        self._listings.setdefault(text, {})[record] = None

    def record(self, row: Record, status: str, target_id: str = "", error: str = "") -> None:
        """What became of a record, for a caller that asked for it (sync_records) and for a dry run's report;
        nothing when nobody listens."""
        if self.outcomes is None and self.e.on_record is None:
            return
        outcome = RecordOutcome(row.id, status, record_label(self.src_table, row), target_id, error)
        if self.outcomes is not None:
            self.outcomes[row.id.lower()] = outcome
        if self.e.on_record is not None:
            self.e.on_record(self.mapping.name, self.direction, outcome)

    def selected(self, ids: list[str], coupled: bool | None) -> list[str]:
        """The ids to synchronise: those that pass the mapping's filter and, when `coupled` is given, are
        coupled (True) or not (False); the others are recorded as filtered or failed."""
        where = self.mapping.filter_on(self.src_side)
        couplings = self.e.couplings.get_many(self.mapping.name, self.src_side, ids) if coupled is not None else {}
        passing = {i.lower() for i in ids}
        if where and ids:
            id_field = self.src_table.id_field if isinstance(self.src_table, BcTable) else self.src_table.primary_id
            passing = {r.id.lower() for r in self.src.read_matching(self.src_table, [], id_field, ids, where=where)}
        coupled_ids = {i.lower() for i in couplings}
        refused = [i for i in ids if i.lower() not in passing or (coupled is not None
                                                                  and (i.lower() in coupled_ids) != coupled)]
        key = self.src_table.key_field if isinstance(self.src_table, BcTable) else self.src_table.primary_name
        for row in self.src.read_ids(self.src_table, [key], refused) if refused else []:
            label = record_label(self.src_table, row)
            if row.id.lower() not in passing:
                self.record(row, "filtered", error=f"{label} does not pass the filter of table mapping "
                                                   f"{self.mapping.name} ({where}), so it is not synchronised.")
            elif coupled:
                self.record(row, "failed", error=f"{label} is not coupled in table mapping {self.mapping.name}; "
                                                 f"create it in {SERVICE[self.dst_side]} instead.")
            else:
                self.record(row, "failed", error=f"{label} is already coupled in table mapping {self.mapping.name}; "
                                                 f"synchronise it instead.")
        return [i for i in ids if i not in refused]

    def sync_first(self, mapping_name: str, ids: list[str], rows: list[Record]) -> dict[str, RecordOutcome]:
        """Records of another mapping that `rows` reference and that are not coupled, synchronised now in this
        job's direction (created and coupled when they pass that mapping's filter); by lower-case id."""
        if not self._synchronises_first(self.catalog[mapping_name]):
            return {}
        visiting = self.visiting | {(self.mapping.name, r.id.lower()) for r in rows}
        outcomes = self.e.sync_records(mapping_name, self.direction, ids, job_id=f"{self.job_id}/{mapping_name}",
                                       visiting=visiting)
        for outcome in outcomes:
            if outcome.ok:
                self.note(f"records referenced but not coupled yet were synchronised first (table mapping "
                          f"{mapping_name})")
        return {o.source_id.lower(): o for o in outcomes}

    def _synchronises_first(self, ref: TableMapping) -> bool:
        """Whether records of `ref` are synchronised first when referenced: it is enabled, transfers rows (no
        option mapping, no process) and runs in this job's direction."""
        return (ref.enabled and not ref.is_option_mapping and ref.process is None
                and ref.direction.includes(self.direction))

    def coupled_first(self, mapping_name: str, ids: list[str], rows: list[Record]) \
            -> tuple[dict[str, Coupling], dict[str, str]]:
        """The couplings of these records (on this job's source side) in another mapping, those not coupled yet
        synchronised first (sync_first); and, by lower-case id, why one could not be."""
        coupled = self.e.couplings.get_many(mapping_name, self.src_side, ids)
        missing = [i for i in ids if i not in coupled]
        if not missing:
            return coupled, {}
        outcomes = self.sync_first(mapping_name, missing, rows)
        coupled.update(self.e.couplings.get_many(mapping_name, self.src_side, missing))
        return coupled, {i: o.error or o.status for i, o in outcomes.items() if not o.ok}

    def remembered(self, row: Record, inputs: tuple[str, ...], names: tuple[str, ...]) -> dict[str, Any] | None:
        """The values the rules computed for `row` (`names`) when its pair was last synchronised, while the source
        fields they derive from (`inputs`, among the rules' `inputs`) still hold what they held then; None when
        they must be computed: a new pair, a changed input, a record that failed before, or a full synchronisation,
        which computes everything afresh."""
        coupling = self.page_couplings.get(row.id)
        if self.full or coupling is None or row.id in self.failures:
            return None
        snapshot = coupling.values_on(self.src_side)
        if any(f"^{name}" not in snapshot or not same(snapshot[f"^{name}"], row.values.get(name)) for name in inputs) \
                or any(f"~{name}" not in snapshot for name in names):
            return None
        return {name: snapshot[f"~{name}"] for name in names}

    def integration_user_id(self) -> str:
        return self.facts.get(INTEGRATION_USER, self.e.crm.integration_user_id)

    def team_owner(self) -> dict[str, Any]:
        """What a new Sales row is owned by in the team ownership model: the default team of the coupled business
        unit ({} in the person model, or for a table without owners)."""
        if self.setup.ownership_model is not OwnershipModel.TEAM or self.dst_side is not Side.CRM \
                or "ownerid" not in self.dst_table.lookups:
            return {}
        return {"ownerid": self.facts.get(OWNING_TEAM, self.e.crm.default_owning_team_id), "owneridtype": "team"}

    def endpoint(self, side: Side) -> Endpoint:
        return self.e.endpoint(side)

    def _field_list(self, side: Side, table) -> list[str]:
        if table is None:  # the option set side of an option mapping
            return []
        names = [fm.field_on(side) for fm in self.fields if fm.field_on(side)]
        if not isinstance(table, BcTable):  # which table a mapped lookup to several tables points at (owner)
            names += [table.lookups[n].type_field for n in names if n in table.lookups and table.lookups[n].type_field]
        names.append(table.key_field if isinstance(table, BcTable) else table.primary_name)
        names += self.rules.extra_fields.get(side, ())
        return list(dict.fromkeys(names))

    # -- the two phases ------------------------------------------------------------------------

    def run(self, resume_from: dt.datetime | None, deadline: dt.datetime | None) -> JobOutcome:
        if self.mode is JobMode.NOTIFIED:
            return self._run_targeted(resume_from, deadline)
        outcome = self._run_changes(resume_from, deadline)
        if outcome.complete and self.mode is JobMode.INCREMENTAL:  # it takes the notified rows left over
            self._take_notified(resume_from)
        return outcome

    def _take_notified(self, resume_from: dt.datetime | None) -> None:
        """A scheduled job takes its direction's notified rows that no targeted job took (their run never ran: a
        start that failed, a message lost), as the waiting targeted job would: the rows named one by one, by id (a
        Business Central deletion is found no other way), and collections, which its read of the changes covered
        when it read them before it (not a continuation's). Cleared by version, so a row notified again stays."""
        taken = [row for row in self._job_state().notified if resume_from is None or not row.collection]
        if not taken:
            return
        self.notified_pass = True
        self._work_notified([row for row in taken if not row.collection])
        self.notified_pass = False
        self.e.state.clear_notified(self.mapping.name, self.direction, [row for row in taken if row.collection])
        self.note(f"{len(taken)} notified row(s) no targeted job took looked at")

    def _run_changes(self, resume_from: dt.datetime | None, deadline: dt.datetime | None) -> JobOutcome:
        # A coupling job leaves coupled rows alone, so their changes must still be found by the next run:
        # its watermark stays, unless nothing was coupled before it and it synchronises what it couples
        # (then it reads every row as a full one does, and the first scheduled run need not read them again)
        self.moves_watermark = self.mode is not JobMode.COUPLE or (
            resume_from is None and self.mapping.sync_after_coupling and self._nothing_coupled(self.src_side))
        # a continuation (resume_from set) already did the forced rows before its first checkpoint
        if resume_from is None:
            self._detect_deletions()
            if self.mode is not JobMode.COUPLE:
                self._detect_unversioned_changes()
        retried = self._process_forced() if resume_from is None else set()
        # a coupling job leaves the feed to the next scheduled run: there, as for any new pair, the pairs
        # it coupled are synchronised from Business Central first (unless it starts the feed, _starts_feed)
        self.starts_feed = self._starts_feed(resume_from)
        if self.src_side is Side.CRM and (self.mode is not JobMode.COUPLE or self.starts_feed) and (
                resume_from is None or self.mode is JobMode.INCREMENTAL):
            done = self._read_feed(retried, deadline)
            if done is not None:
                return done
        if resume_from is not None:
            since = resume_from
        elif self.full or self.mapping.reread_all:
            since = None
        else:
            since = self._job_state().watermark
        resume = since  # where a continuation of this job starts: the newest row processed
        # every row is read: their couplings are read once, not looked up page by page
        with self._held() if since is None else nullcontext():
            for page in self.src.read_changed(self.src_table, self.src_fields, since=since,
                                              where=self.mapping.filter_on(self.src_side),
                                              page_size=self.e.page_size, not_modified_by=self._not_modified_by()):
                rows = [r for r in page if r.id not in retried]
                for start in range(0, len(rows), WORK_ROWS):
                    self._process(rows[start:start + WORK_ROWS], forced=set())
                resume = self._advance(page, resume)
                self.progress(resume)
                # Out of time: stop at this page, but only past where this invocation started, so that a
                # continuation always gets further (rows sharing one timestamp are read again, not stuck on)
                if (deadline is not None and resume is not None and (since is None or resume > since)
                        and self.e.clock.now() >= deadline):
                    return self.outcome(resume, complete=False)
        self._pass_own_writes()
        self._keep_known_versions()
        return self.outcome(resume)

    def _run_targeted(self, resume_from: dt.datetime | None, deadline: dt.datetime | None) -> JobOutcome:
        """A targeted job (sync.targeted): the rows notifications named, as a scheduled job would find them changed.
        Rows handed over for this direction go first, as in any job (a deletion's conflict found by the other
        direction's job of this run). Nothing it reads moves the watermark, the change feed's cursor, the
        reconciliation's or the known versions: the next scheduled job finds what it would have found without it,
        and versions tell it what is unchanged. The notified rows it took go once worked on, unless notified again
        meanwhile (their version moved).

        A collection notification (more changes than told one by one) makes it, once the rows notified one by one
        are done (deletions among them: reading changes finds no Business Central deletion), the direction's
        incremental job, as a scheduled run's: it reads the changes since the watermark and moves it, keeps and uses
        known versions, stops at its deadline and goes on from its checkpoint (`resume_from`)."""
        taken = self._job_state().notified
        collection = [row for row in taken if row.collection]
        if resume_from is None:  # a continuation of the incremental job goes on from its checkpoint
            rows = [row for row in taken if not row.collection]
            if not collection:
                self._process_forced(failed=False)  # else the incremental job does them
            self.moves_watermark = False
            if not self._work_notified(rows, deadline, then=bool(collection)):
                return self.outcome(complete=False)  # a continuation takes the rows left
            if rows:
                self.note(f"{len(rows)} notified row(s) looked at")
        if resume_from is None and not collection:
            return self.outcome()
        # the incremental job, as a scheduled run's: it keeps and uses known versions as that one does
        self._set_mode(JobMode.INCREMENTAL)  # (the rows notified one by one knew no versions: read them now)
        outcome = self._run_changes(resume_from, deadline)
        if outcome.complete:
            self.e.state.clear_notified(self.mapping.name, self.direction, collection)
        return outcome

    def _work_notified(self, rows: list[NotifiedRow], deadline: dt.datetime | None = None,
                       then: bool = False) -> bool:
        """Works on rows named one by one page by page, each page's cleared once done and reported as progress (a
        next attempt starts after it, and the mapping's lease is renewed). False: the deadline passed with rows left,
        or with work to do after them (`then`)."""
        for start in range(0, len(rows), self.e.page_size):
            page = rows[start:start + self.e.page_size]
            self._process_notified([row.record_id for row in page])
            self.e.state.clear_notified(self.mapping.name, self.direction, page)
            self.progress(moved=True)
            if deadline is not None and self.e.clock.now() >= deadline and (
                    then or start + self.e.page_size < len(rows)):
                return False
        return True

    def _process_notified(self, ids: list[str]) -> None:
        """Notified rows, read by id through the mapping's filter (and the company's), worked on where changed;
        those not found that the service no longer has go through the mapping's deletion handling, as a deletion
        found by a scheduled job does. A row outside the filter or of another company is left alone."""
        rows = self.src.read_visible(self.src_table, self.src_fields, ids, where=self.mapping.filter_on(self.src_side))
        missing = _absent(ids, rows)
        gone = _absent(missing, self.src.read_ids(self.src_table, [], missing)) if missing else []
        if gone:
            self._deleted(self.src_side, gone)
            self._let_go(gone)
        self._process(rows, forced=set())

    def _held(self) -> ExitStack:
        """The couplings a job that reads every row looks up: those of its source side, and, read at the first
        lookup of each side, those of the mappings it depends on, which its rules look up page by page (a
        contact's company); their own jobs may couple more meanwhile, so ids missing there are looked up."""
        stack = ExitStack()
        stack.enter_context(self.e.couplings.held(self.mapping.name, self.src_side))
        for name in self.mapping.dependencies:
            for side in (Side.BC, Side.CRM):
                stack.enter_context(self.e.couplings.held(name, side, complete=False))
        return stack

    def _known_versions(self) -> dict[str, str]:
        """The versions of BC rows a full job into Business Central left coupled (see _pass_own_writes), or that
        the job before found unchanged short of its watermark (see _keep_known_versions)."""
        if self.known is None:
            self.known = self._job_state(versions=True).known_versions if self.keeps_versions else {}
        return self.known

    def _keep_known_versions(self) -> None:
        """Keeps the versions of the rows this job read, found unchanged or synchronised, that its watermark has not
        passed: the next run reads them again (its read starts at the watermark, which stops a margin short of the
        job's start) and finds them unchanged without looking their couplings up. The versions of rows it passed
        are dropped, so the set holds only the newest rows. Written only when it changed, with the watermark
        (save_state); a job that read no rows leaves it as it is."""
        if self.known is None or not self.keeps_versions:
            return
        mark = self._job_state().watermark
        keep = {row_id: etag for row_id, etag in self.bc_versions.items() if row_id in self.read_at and (
            mark is None or self.read_at[row_id] is None or self.read_at[row_id] >= mark)}
        if keep != self.known:
            self.unsaved_versions = keep

    def _know_versions(self, couplings: Iterable[Coupling]) -> None:
        """Remembers the BC version these couplings hold, where the BC -> Sales pass would find a row of that
        version unchanged (the coupling has its snapshot)."""
        if self.bc_versions is not None:
            self.bc_versions.update((c.bc_id.lower(), c.bc_etag) for c in couplings if c.bc_etag and c.bc_values)

    def keep_synchronised(self, mapping_name: str, couplings: list[Coupling], bc_written: Iterable[str]) -> None:
        """Saves the couplings of another mapping whose rows a rule wrote while each pair stayed synchronised (they
        hold the new versions and values). Those whose Business Central rows it wrote (`bc_written`, their ids)
        are added to that mapping's known versions, so that its next BC -> Sales pass finds them unchanged without
        looking their couplings up. Added, not replaced: that pass, under its own mapping's lease, may be running."""
        self.e.couplings.save_many(couplings)
        if not keeps_versions(self.catalog[mapping_name], Direction.TO_CRM, JobMode.INCREMENTAL):
            return
        written = {i.lower() for i in bc_written}
        versions = {c.bc_id.lower(): c.bc_etag for c in couplings
                    if c.bc_id.lower() in written and c.bc_etag and c.bc_values}
        if versions:
            self.e.state.add_known_versions(mapping_name, Direction.TO_CRM, versions)

    def _pass_own_writes(self) -> None:
        """After a full job into Business Central, moves the BC -> Sales watermark past the rows this job wrote,
        so that the next scheduled run does not read them all back only to find each unchanged.

        The watermark may pass a row only when the BC -> Sales pass would do nothing with it, and never where
        a row it would work on may still appear:
        - Rows changed since the watermark are read oldest first, as that pass reads them. Each must hold the
          version its coupling holds (with a snapshot): then the pass finds it unchanged. This job knows the
          couplings it read or saved; the others are looked up. A row edited by a user during the synchronisation,
          even one this job wrote before or after the edit, has another version, so the watermark stops at its
          modified-on and the next run reads it (and whatever shares its time stamp).
        - The watermark stops short of this check's start minus the margin, as every watermark does: a row
          committed late, or stamped by a skewed clock, may carry an earlier time than rows already visible.
        Rows past where the watermark stops are read again by the next pass; those of a version their coupling
        holds are kept as known versions, so that it finds them unchanged without looking their couplings up.
        Failed and pending rows do not depend on the watermark: the next pass retries them anyway."""
        if not self.bc_versions or not self.full:
            return
        since = self.e.state.watermark(self.mapping.name, Direction.TO_CRM)
        if since is None:
            return  # that pass has not run: it reads every row anyway
        cap = self.e.clock.now() - self.e.watermark_margin
        # every page read before the couplings the job does not know are looked up, in one go: looked up page by
        # page, they would cost a range query over all of the side's couplings per page once the table is large
        rows = [(r.id.lower(), r.etag, r.modified_on) for page in self.dst.read_changed(
            self.dst_table, [], since=since, where=self.mapping.filter_on(Side.BC), page_size=self.e.page_size)
                for r in page]
        unknown = [row_id for row_id, _, _ in rows if row_id not in self.bc_versions]
        # many: the side is read once and held (compressed), then looked up a batch at a time, so that the couplings
        # parsed at once (their snapshots some kB each) are a batch's, not every row's
        with self.e.couplings.held(self.mapping.name, Side.BC) if len(unknown) > WORK_ROWS else nullcontext():
            for start in range(0, len(unknown), WORK_ROWS):
                self._know_versions(self.e.couplings.get_many(self.mapping.name, Side.BC,
                                                              unknown[start:start + WORK_ROWS]).values())
        passed: dt.datetime | None = None
        known: dict[str, str] = {}
        for row_id, etag, modified_on in rows:
            unchanged = self.bc_versions.get(row_id) == etag
            if passed is None and (modified_on is None or modified_on >= cap or not unchanged):
                passed = min(cap, modified_on or since)
            if passed is not None and unchanged:
                known[row_id] = etag
        passed = cap if passed is None else passed
        if passed > since:
            self.e.state.advance_watermark(self.mapping.name, Direction.TO_CRM, passed)
            self.note("the BC -> Sales watermark passed the rows this job wrote, unchanged since")
        self.e.state.save_known_versions(self.mapping.name, Direction.TO_CRM, known)
        self.bc_versions = None

    def _starts_feed(self, resume_from: dt.datetime | None) -> bool:
        """A coupling job from Sales that synchronises what it couples, in a mapping whose change feed nobody has
        read yet (its first synchronisation), reads the feed to its end before it reads every row, and leaves the
        feed's cursor and deletion baseline as a full job does: otherwise the first scheduled run would read the
        whole table again from the feed and look up every row's coupling. What changed in Sales before the cursor
        is then this job's to carry: coupled rows synchronised before whose version changed since (edited while
        the BC -> Sales pass ran) are synchronised, not left alone as a coupling job otherwise leaves them."""
        return (self.mode is JobMode.COUPLE and self.src_side is Side.CRM and resume_from is None
                and self.mapping.sync_after_coupling and self._job_state().cursors.get(FEED_CURSOR) is None)

    def _advance(self, page: list[Record], resume: dt.datetime | None) -> dt.datetime | None:
        """The newest modified-on seen so far. The mapping's watermark follows it, but never passes the
        job's start minus the margin, so rows committed late or stamped by a skewed clock are read again
        next run."""
        newest = max((r.modified_on for r in page if r.modified_on), default=None)
        if newest is None:
            return resume
        if self.moves_watermark:
            self._raise_watermark(min(newest, self.cap))
        return newest if resume is None else max(resume, newest)

    def _raise_watermark(self, value: dt.datetime) -> None:
        """Raises this job's watermark to `value`, saved with the job's progress and when it ends (save_state)."""
        state = self._job_state()
        if state.watermark is None or value > state.watermark:
            state.watermark = self.unsaved_watermark = value

    def _job_state(self, versions: bool = False) -> JobState:
        """The mapping's state in this job's direction, read in one request when first needed; with the known
        versions when the job reads them (`versions`), read then if the state was read without: a schedule check or
        a pass of forced rows reads none (up to a hundred rows of the state store for a large mapping)."""
        state = self.states.get(self.direction)
        if state is None:
            state = self.states[self.direction] = self.e.state.job_state(self.mapping.name, self.direction,
                                                                         versions=versions)
        elif versions and state.known_versions is None:
            state.known_versions = self.e.state.known_versions(self.mapping.name, self.direction)
        return state

    def _save_cursor(self, name: str, value: str) -> None:
        """Moves one of the mapping's cursors, saved with the watermark (save_state)."""
        self._job_state().cursors[name] = self.unsaved_cursors[name] = value

    def _mark_pending(self, direction: Direction, ids: list[str]) -> None:
        """Rows for a pass in `direction` whatever their version, saved at once (a crash must not lose them)."""
        self.e.state.mark_pending(self.mapping.name, direction, ids)
        if direction in self.states:
            state = self.states[direction]
            state.pending = list(dict.fromkeys([*state.pending, *ids]))

    def _clear_pending(self, direction: Direction, ids: list[str]) -> None:
        self.e.state.clear_pending(self.mapping.name, direction, ids)
        if direction in self.states:
            done = set(ids)
            self.states[direction].pending = [i for i in self.states[direction].pending if i not in done]

    def moved_nothing(self) -> None:
        """A job run within another (a pass in the other direction, records synchronised first) reads and works on
        rows by id only, so it moves no watermark, cursor or known versions: nothing would save them (the job that
        runs it saves its own)."""
        assert self.unsaved_watermark is None and not self.unsaved_cursors and self.unsaved_versions is None, (
            f"a job within another moved the state of {self.mapping.name} {self.direction.value}, which nothing saves")

    def save_state(self, stopping: bool = False) -> None:
        """Saves what this job moved since it last saved, in one write: its watermark, cursors and known versions.
        Called when the job ends, and with its progress (see progress). `stopping`: the job failed or ran into a bug;
        what it passed is saved all the same, so that the next run does not read it again, and a failure to save it
        is left at that (the job's own error is what it reports; the next run reads those rows again). A job whose
        lease another worker took never gets here: that worker's job moves the mapping's state now."""
        if self.unsaved_watermark is None and not self.unsaved_cursors and self.unsaved_versions is None:
            return
        try:
            self.e.state.save_job_state(self.mapping.name, self.direction, watermark=self.unsaved_watermark,
                                        cursors=self.unsaved_cursors or None, versions=self.unsaved_versions,
                                        replacing=self.known)
        except SyncError:
            if not stopping:
                raise
            return
        self.unsaved_watermark, self.unsaved_cursors, self.unsaved_versions = None, {}, None

    # -- the Sales change feed ---------------------------------------------------------------------
    # Where a Dataverse table tracks changes, one feed (a delta link) tells the rows changed and deleted
    # since the last run. Each mapping's feed has one reader, so that no job misses what another one read
    # past: the job reading from Sales, or in a BC -> Sales mapping its only job. Rows deleted in Sales
    # that a bidirectional mapping's BC -> Sales pass must decide on (its deletion-conflict resolution)
    # go through that pass at once (_hand_over).
    # Change tracking refuses $filter: the mapping's filter is applied to the feed in memory, and our own
    # changes (modified by the integration user) are left out there too. A filter that cannot be evaluated
    # in memory (functions, arithmetic) keeps the mapping on modified-on watermarks; the feed then only
    # tells deletions.

    def _reads_feed(self) -> bool:
        return self.src_side is Side.CRM or not self.mapping.direction.includes(Direction.FROM_CRM)

    def _feed(self, page_size: int) -> tuple[ChangeFeed | None, bool]:
        """The feed from where the mapping's last reader left it (None: the table tracks no changes),
        and whether this job takes its changed rows."""
        cursor = self._job_state().cursors.get(FEED_CURSOR)
        if self.src_side is Side.CRM:
            feed = self.e.crm.changes(self.src_table, self.src_fields, cursor, where=self.mapping.crm_filter,
                                      page_size=page_size, not_modified_by=self._not_modified_by())
        else:
            feed = self.e.crm.changes(self.dst_table, [], cursor, page_size=page_size)
        takes = (feed is not None and feed.filtered and self.src_side is Side.CRM and self.mode is JobMode.INCREMENTAL
                 and not self.mapping.reread_all)
        return feed, takes

    def _read_feed(self, retried: set[str], deadline: dt.datetime | None) -> JobOutcome | None:
        """Reads the feed: deletions are dealt with, changed rows processed (a full synchronisation reads
        every row anyway), and the feed's cursor moved on after each page it covers (saved with the job's
        progress, see progress). When the feed starts over, rows coupled before it that it does not list were
        deleted; its cursor moves only at its end, once those are known. Returns the job's outcome when the feed was its source of changes or
        it ran out of time; None when it goes on to read changes by watermark (or every row)."""
        feed, takes = self._feed(self.e.page_size)
        if feed is None:
            self._reconcile_when_due(Side.CRM)
            return None
        present: set[str] = set()
        resume = None
        for page in feed.pages:
            self._deleted(Side.CRM, page.deleted)
            present.update(i.lower() for i in page.present)
            if takes:
                self._process([r for r in page.changed if r.id not in retried], forced=set())
                resume = self._advance(page.changed, resume)
            if feed.complete or page.last:
                if not feed.complete:
                    for ids in self.e.couplings.coupled_ids(self.mapping.name, Side.CRM):
                        self._deleted(Side.CRM, [i for i in ids if i.lower() not in present])
                self._save_cursor(FEED_CURSOR, page.cursor)
            self.progress(resume)
            # out of time: a continuation goes on from the saved cursor (a full read is not cut short here:
            # its continuation would start from the checkpoint instead)
            source = takes and self.mode is JobMode.INCREMENTAL
            if source and feed.complete and not page.last and deadline is not None and self.e.clock.now() >= deadline:
                return self.outcome(resume or self.started, complete=False)
        return self.outcome(resume) if takes and self.mode is JobMode.INCREMENTAL else None

    def _not_modified_by(self) -> str | None:
        # Our own writes are not changes; where the service records who changed a row, ask it to
        # leave them out (Sales changes made with the connection user's account are ignored too).
        return self.integration_user if self.mapping.direction.includes(Direction.TO_CRM) else None

    def has_work(self) -> bool:
        """Would this job do anything now? A few cheap reads, so that a mapping held after a quiet run
        is woken by changes on either side instead of waiting for its inactivity timeout."""
        watermark = self._job_state().watermark
        if self.mapping.is_option_mapping:
            newest = next(iter(self.src.read_changed(self.src_table, [], since=watermark, limit=PEEK_ROWS)), [])
            return any(watermark is None or (r.modified_on and r.modified_on > watermark) for r in newest)
        if (self.mapping.reread_all or self._job_state().pending or self._job_state().notified
                or any(not f.skipped for f in self.failures.values())):
            return True
        peek = self._peek_feed() if self._reads_feed() else None
        if peek is not None and peek[0]:
            return True
        if peek is None or not peek[1]:  # the feed does not tell this job's changes: the watermark does
            # a companion page's fields tell nothing a version does not: not read for a look
            companion = getattr(self.src_table, "companion", None)
            fields = [f for f in self.src_fields if not (companion and f in companion.fields)]
            page = next(iter(self.src.read_changed(self.src_table, fields, since=watermark,
                                                   where=self.mapping.filter_on(self.src_side), limit=PEEK_ROWS,
                                                   not_modified_by=self._not_modified_by())), [])
            if len(page) == PEEK_ROWS or self._work_among(page):
                return True  # (more changes than worth looking through: just run)
        return self._deletions_waiting(peek is not None) or bool(self.rules.unversioned_changes(self))

    def _work_among(self, rows: list[Record]) -> bool:
        couplings = self.e.couplings.get_many(self.mapping.name, self.src_side, [r.id for r in rows]) if rows else {}
        return any(self._triage(row, couplings.get(row.id), False) == "work"
                   and self.rules.accept(self, row, couplings.get(row.id)) != IGNORE for row in rows)

    def _process_forced(self, failed: bool = True) -> set[str]:
        """Records that failed earlier are tried again first, changed or not, and so are
        rows a merge left pending for this direction. `failed`: False in a targeted job, which leaves the records
        that failed to the scheduled job."""
        pending, handed_over = self._pending_ids()
        ids = list(dict.fromkeys([sid for sid, f in self.failures.items() if failed and not f.skipped] + handed_over))
        self._process_ids(ids)
        if pending:
            self._clear_pending(self.direction, pending)
        if failed:
            self._let_go_deleted([sid for sid, f in self.failures.items() if f.skipped])
        return set(ids) | set(pending)

    def _pending_ids(self) -> tuple[list[str], list[str]]:
        """The rows marked pending for this direction, and those of them to work on."""
        pending = list(self._job_state().pending)
        # rows are marked pending while coupled; one uncoupled since (its coupling removed by a deletion-conflict
        # resolution in a job stopped before the mark was cleared) is not created here, unless it was being
        # restored (then matched first: it finds the row an earlier attempt created)
        coupled = self.e.couplings.get_many(self.mapping.name, self.src_side, pending) if pending else {}
        restoring = self.mapping.deletion_conflict is DeletionConflictResolution.RESTORE
        return pending, [i for i in pending if i in coupled or restoring]

    def _let_go_deleted(self, skipped: list[str]) -> None:
        """Skipped records are not retried, but one deleted at the source has nothing left to report: its
        failure goes (one read of ids a page, only while some record is skipped)."""
        for start in range(0, len(skipped), self.e.page_size):
            chunk = skipped[start:start + self.e.page_size]
            self._let_go(_absent(chunk, self.src.read_ids(self.src_table, [], chunk)))

    def _let_go(self, gone: list[str]) -> None:
        """Source rows deleted: the couplings of those deleted on both sides go (one whose destination is still
        there waits for the deletion to be found, and its deletion-conflict resolution), then their failures,
        so that a job stopped in between still finds them."""
        couplings = list(self.e.couplings.get_many(self.mapping.name, self.src_side, gone).values()) if gone else []
        if couplings:
            alive = {r.id.lower() for r in self.dst.read_ids(self.dst_table, [], [c.id_on(self.dst_side)
                                                                                for c in couplings])}
            orphans = [c for c in couplings if c.id_on(self.dst_side).lower() not in alive]
            if orphans:
                self.e.couplings.delete_many(orphans)
                self.counts.uncoupled += len(orphans)
        failed = [sid for sid in gone if sid in self.failures]
        if failed:  # deleted at the source: nothing left to retry
            self.e.errors.clear_many(self.mapping.name, self.direction, failed)
            for sid in failed:
                self.failures.pop(sid, None)

    def _process_ids(self, ids: list[str]) -> None:
        """These source rows, changed or not; those deleted meanwhile are let go."""
        for start in range(0, len(ids), self.e.page_size):
            chunk = ids[start:start + self.e.page_size]
            rows = self.src.read_ids(self.src_table, self.src_fields, chunk)
            self._let_go(_absent(chunk, rows))
            self._process(rows, forced={r.id for r in rows})
            self.progress()

    def _detect_unversioned_changes(self) -> None:
        """Rows whose change their version does not show (the rules find them, in bulk) are worked on
        with the forced rows; marked pending first, so that a crash before then does not lose them."""
        changed = self.rules.unversioned_changes(self)
        if changed:
            self._mark_pending(self.direction, changed)

    # -- deletions ------------------------------------------------------------------------------

    def _detect_deletions(self) -> None:
        """Deletions are looked for, not stumbled upon. Business Central's coupled ids are checked now and
        then by the mapping's first job (its API has no change feed); Sales deletions come with the change
        feed, which a job reading from Sales reads with its changes (_read_feed) and a BC -> Sales mapping's
        job reads here, before the rows they leave pending are processed."""
        if self.direction is self.mapping.direction.job_directions()[0]:
            self._reconcile_when_due(Side.BC)
        if self.src_side is Side.BC and self._reads_feed():
            self._read_feed(set(), None)

    def _reconcile_when_due(self, side: Side) -> None:
        """Where no change feed tells deletions, the coupled ids are checked every `reconcile_every`."""
        if not self._reconcile_due(side):
            return
        if self.mode is not JobMode.COUPLE:
            for gone in self._reconcile(side):
                self._deleted(side, gone)
                self.progress()  # a long reconciliation keeps its lease
        elif not self._nothing_coupled(side):
            return  # a coupling job leaves coupled rows alone: the next scheduled run checks them
        # (a full synchronisation's coupling with nothing coupled before it has nothing to check until the
        # next interval, so the first scheduled run after it is as cheap as any other)
        self._save_cursor(f"reconciled:{side.value}", self.started.isoformat())

    def _deleted(self, side: Side, gone: list[str]) -> None:
        """Coupled rows deleted on `side`: where the mapping writes to that side, the coupled source row goes
        through that direction's pass, whose deletion-conflict resolution decides (report it, restore the
        row, or remove the coupling); where a one-way mapping's source row was deleted, its copy stays and
        the coupling goes."""
        couplings = list(self.e.couplings.get_many(self.mapping.name, side, gone).values()) if gone else []
        if not couplings:
            return
        writer = next((d for d in self.mapping.direction.job_directions() if d.target is side), None)
        if writer is None:
            self.e.couplings.delete_many(couplings)
            self.counts.uncoupled += len(couplings)
            self.note(f"couplings removed because the {_table_name(self.mapping.table_on(side))} was deleted")
        else:
            self._hand_over(writer, [c.id_on(writer.source) for c in couplings])

    def _hand_over(self, direction: Direction, ids: list[str]) -> None:
        """Rows for `direction`'s pass, marked pending first so that a crash in between loses nothing. A
        later job of this run takes them with its forced rows; otherwise they are processed now."""
        self._mark_pending(direction, ids)
        order = self.mapping.direction.job_directions()
        if order.index(direction) > order.index(self.direction):
            return
        worker = self if direction is self.direction and self.mode is not JobMode.COUPLE else self._pass(direction)
        worker._process_ids(ids)
        if worker is not self:
            worker.moved_nothing()
        self._clear_pending(direction, ids)

    def _pass(self, direction: Direction) -> "_Job":
        """An incremental pass of this mapping in `direction` within this job, counted with it."""
        # its progress is this job's: saved, it saves what this job moved
        return _Job(self.e, self.catalog, self.mapping, direction, self.job_id, JobMode.INCREMENTAL, self.counts,
                    lambda progress: self.progress(progress.checkpoint, progress.moved), self.states, self.facts.kept)

    def _nothing_coupled(self, side: Side) -> bool:
        return next(iter(self.e.couplings.coupled_ids(self.mapping.name, side, page_size=1)), None) is None

    def _reconcile_due(self, side: Side) -> bool:
        last = self._job_state().cursors.get(f"reconciled:{side.value}")
        return last is None or self.started - dt.datetime.fromisoformat(last) >= self.e.reconcile_every

    def _deletions_waiting(self, feed_looked: bool) -> bool:
        """Whether `_detect_deletions` would find something, without consuming the change feed."""
        if self.direction is self.mapping.direction.job_directions()[0] and self._reconcile_due(Side.BC):
            if not self._nothing_coupled(Side.BC):
                return True
        if self._reads_feed() and not feed_looked:  # no feed yet, or none at all: reconciliation
            return self._reconcile_due(Side.CRM) and not self._nothing_coupled(Side.CRM)
        return False

    def _peek_feed(self) -> tuple[bool, bool] | None:
        """A look at the first page of the change feed, which is left where it is: whether it holds rows to
        process or coupled rows deleted, and whether it tells this job's changes. None: no feed yet."""
        if self._job_state().cursors.get(FEED_CURSOR) is None:
            return None
        feed, takes = self._feed(PEEK_ROWS)
        if feed is None:
            return None
        page = next(iter(feed.pages))
        if not feed.complete or not page.last or (
                page.deleted and self.e.couplings.get_many(self.mapping.name, Side.CRM, page.deleted)):
            return True, takes  # (started over, or more than worth looking through: just run)
        return takes and self._work_among(page.changed), takes

    def _reconcile(self, side: Side) -> Iterator[list[str]]:
        """Page by page, the coupled ids on `side` whose row no longer exists."""
        table = self.mapping.table_on(side)
        for ids in self.e.couplings.coupled_ids(self.mapping.name, side):
            found = {r.id.lower() for r in self.endpoint(side).read_ids(table, [], ids)}
            yield [i for i in ids if i.lower() not in found]  # GUIDs: the services may change their case

    # -- one page --------------------------------------------------------------------------------

    def _process(self, rows: list[Record], forced: set[str]) -> None:
        # forced rows are worked on whatever their version: known versions are read for the others only
        known = self._known_versions() if any(r.id not in forced for r in rows) else {}
        if self.keeps_versions:
            self.read_at.update((r.id.lower(), r.modified_on) for r in rows)
        if known:  # unchanged since a job wrote or saw them: their couplings need no look
            same = {r.id: r.etag for r in rows if r.id not in forced and r.id not in self.failures
                    and known.get(r.id.lower()) == r.etag}
            if same:
                rows = [r for r in rows if r.id not in same]
                self.counts.unchanged += len(same)
                self.bc_versions.update((i.lower(), v) for i, v in same.items())
        if not rows:
            return
        couplings = self.e.couplings.get_many(self.mapping.name, self.src_side, [r.id for r in rows])
        self._know_versions(couplings.values())
        matched = [r.id for r in rows if r.id in couplings and getattr(self.failures.get(r.id), "code", "")
                   in MATCH_FAILURES]
        if matched:  # coupled since (by hand, or matched from the other side)
            self.e.errors.clear_many(self.mapping.name, self.direction, matched)
            for sid in matched:
                self.failures.pop(sid)
        work: list[tuple[Record, Coupling | None]] = []
        for row in rows:
            coupling = couplings.get(row.id)
            verdict = self._triage(row, coupling, row.id in forced)
            if verdict == "work":
                work.append((row, coupling))
            elif verdict == "unchanged":
                self.counts.unchanged += 1
            elif verdict == "skipped":
                self.counts.skipped += 1
                self.record(row, "skipped", error=self.failures[row.id].message)
        if not work:
            return
        page = _Page(self)
        accepted: list[tuple[Record, Coupling | None]] = []
        for row, coupling in work:
            verdict = self.rules.accept(self, row, coupling)
            if isinstance(verdict, RecordError):
                page.fail(row, coupling, verdict)
            elif verdict != IGNORE:
                accepted.append((row, coupling))
            else:
                self.record(row, "filtered", error=f"{record_label(self.src_table, row)} is left out by the rules "
                                                   f"of table mapping {self.mapping.name}.")
        work = accepted
        dst_rows = self._read_destinations([c for _, c in work if c])
        self.page_couplings = {row.id: c for row, c in work if c is not None}
        pairs = [(row, c, dst_rows.get(c.id_on(self.dst_side)) if c else None) for row, c in work]
        self._sync_references(pairs)
        self._prepare_lookups(pairs)
        self.rules.prepare(self, [row for row, _ in work])
        # a coupled row whose counterpart is gone: its deletion-conflict resolution decides; one to restore is
        # uncoupled from here on and matched first like any other, so that a repeat (the job stopped after
        # the insert) finds the row an earlier attempt restored instead of creating another
        kept = []
        for row, coupling in work:
            if coupling is not None and coupling.id_on(self.dst_side) not in dst_rows:
                if self._deletion_conflict(page, row, coupling) is not None:
                    continue
                coupling = None
            kept.append((row, coupling))
        work = kept
        matches, ambiguous = self._match_uncoupled([row for row, c in work if c is None])
        for row, coupling in work:
            if row.id in ambiguous:
                page.fail(row, None, ambiguous[row.id])
                continue
            if coupling is None and row.id in matches:
                coupling, dst_row = matches[row.id]
                page.new_couplings.add(row.id)
                if self.mode is JobMode.COUPLE and not self.mapping.sync_after_coupling:
                    page.couple(coupling)
                    self.record(row, "coupled", coupling.id_on(self.dst_side))
                    continue
            elif coupling is None:
                if self._match_only(row):
                    page.fail(row, None, RecordError(
                        f"{record_label(self.src_table, row)}: no uncoupled {self._dst_name()} matches it, so it "
                        f"was not coupled; couple it by hand, or let match-based coupling create new rows.",
                        code=NO_MATCH))
                    continue
                dst_row = None
            else:
                dst_row = dst_rows[coupling.id_on(self.dst_side)]
            page.plan(row, coupling, dst_row)
        page.write()

    def _match_only(self, row: Record) -> bool:
        """An uncoupled row that may be coupled but not created: in a coupling job without create-new,
        and when a scheduled run under Synch. Only Coupled Records retries a row that failed matching
        (it couples it or reports it again, but never creates what match-based coupling did not)."""
        if self.mode is JobMode.COUPLE:
            return not self.mapping.create_new_if_no_match
        failure = self.failures.get(row.id)
        return (not self.full and self.mapping.sync_only_coupled and failure is not None
                and failure.code in MATCH_FAILURES)

    def _triage(self, row: Record, coupling: Coupling | None, forced: bool) -> str:
        failure = self.failures.get(row.id)
        if failure is not None and failure.skipped and failure.source_etag == row.etag and not self.restore_skipped:
            return "skipped"  # failed twice the same way and not changed since: left until restored
        if (self.integration_user and not forced and row.modified_by == self.integration_user
                and (coupling is None or coupling.crm_etag != row.etag)):
            # Changes made in Sales by the connection user are not synchronised (the seed's rule);
            # our own writes are recognised by their version instead and are simply unchanged.
            return "ignored"
        if coupling is None:
            if self.mapping.sync_only_coupled and not self.full and not forced and failure is None:
                return "ignored"  # BC: uncoupled rows are not counted under Synch. Only Coupled Records
            if self.notified_pass and not forced and failure is None and self._passed(row):
                # a targeted job creates no counterpart a scheduled job would not: a replayed notification of a
                # row uncoupled since (its counterpart deleted) must not bring the counterpart back
                return "ignored"
            return "work"
        if self.mode is JobMode.COUPLE and not forced and not (
                self.starts_feed and coupling.values_on(self.src_side) and coupling.etag_on(self.src_side) != row.etag):
            # match-based coupling leaves coupled rows alone, but not those a pass left pending for it (a
            # matched pair's blanks filled from this side) or that failed before: their marks are cleared;
            # nor, when it starts the change feed, rows synchronised before and changed since
            return "ignored"
        if (not forced and not self.mapping.reread_all and coupling.etag_on(self.src_side) == row.etag
                and coupling.values_on(self.src_side)):
            return "unchanged"
        return "work"

    def _passed(self, row: Record) -> bool:
        """Whether a scheduled job has already seen the row as it is: changed at or before the watermark, or of a
        version it knows unchanged (its known versions, read here only when an uncoupled row asks). The watermark
        never passes the start, less the margin, of the job that moved it, so a row stamped at or before it was
        committed when that job (or its continuation, or the change feed's later pages) read: a row at the
        watermark itself, the newest of a quiet table, counts as seen. Left to the scheduled job, never created."""
        mark = self._job_state().watermark
        if mark is not None and row.modified_on is not None and row.modified_on <= mark:
            return True
        if not keeps_versions(self.mapping, self.direction, JobMode.INCREMENTAL):
            return False
        return self._job_state(versions=True).known_versions.get(row.id.lower()) == row.etag

    def _read_destinations(self, couplings: list[Coupling]) -> dict[str, Record]:
        ids = [c.id_on(self.dst_side) for c in couplings]
        if not ids:
            return {}
        return {r.id: r for r in self.dst.read_ids(self.dst_table, self.dst_fields, ids)}

    def _match_uncoupled(self, rows: list[Record]) -> tuple[dict[str, tuple[Coupling, Record]], dict[str, RecordError]]:
        """Match-based coupling, also run before any insert: for each uncoupled row, the
        criteria groups are tried by priority; a group whose criteria (AND-ed, blank ones left out)
        find exactly one uncoupled row within the other side's filter couples it; none -> the next
        group; several -> the row fails rather than adding another.

        A job that reads every row (full, couple) reads the destination once and matches in memory;
        a scheduled run, with few uncoupled rows, asks the destination per page."""
        result: dict[str, tuple[Coupling, Record]] = {}
        ambiguous: dict[str, RecordError] = {}
        groups = self.mapping.match_groups(self.src_side)
        if not rows or not groups:
            return result, ambiguous
        index = self._match_index(groups) if self.full else None
        claimed: set[str] = set()
        remaining = list(rows)
        for group in groups:
            if not remaining:
                break
            criteria = self._criteria(group, remaining)
            if index is not None:
                hits = {row.id: index.find(criteria[row.id], self._same) for row in remaining}
            else:
                hits = self._query_matches(group, remaining, criteria, claimed)
            # one row matched by several of ours is as ambiguous as several matching one of ours:
            # coupling the first would leave the others to be created as duplicates
            rivals = Counter(c.id for found in hits.values() for c in found)
            unmatched = []
            for row in remaining:
                found, field_label = hits[row.id], criteria[row.id][0][0].label if criteria[row.id] else ""
                if len(found) == 1 and rivals[found[0].id] == 1:
                    claimed.add(found[0].id)
                    if index is not None:
                        index.discard([found[0].id])
                    bc_id, crm_id = (row.id, found[0].id) if self.src_side is Side.BC else (found[0].id, row.id)
                    result[row.id] = (Coupling(self.mapping.name, bc_id, crm_id), found[0])
                elif len(found) == 1:
                    ambiguous[row.id] = RecordError(
                        f"{record_label(self.src_table, row)} matches {record_label(self.dst_table, found[0])}, and "
                        f"so do {rivals[found[0].id] - 1} other uncoupled {self._src_name()} row(s); couple the "
                        f"right one by hand.", field=field_label, code=SEVERAL_MATCHES)
                elif found:
                    ambiguous[row.id] = RecordError(
                        f"{record_label(self.src_table, row)}: {len(found)} uncoupled {self._dst_name()} rows match it "
                        f"({', '.join(record_label(self.dst_table, h) for h in found[:5])}); couple it by hand "
                        f"instead of creating another one.", field=field_label, code=SEVERAL_MATCHES)
                else:
                    unmatched.append(row)
            remaining = unmatched
        if index is not None and result:
            # the index holds what matching needs; the pairs' destination rows are read whole for planning
            # (one that vanished since is no match: its source row is created instead)
            whole = {r.id: r for r in self.dst.read_ids(self.dst_table, self.dst_fields,
                                                        [dst.id for _, dst in result.values()])}
            result = {sid: (coupling, whole[dst.id]) for sid, (coupling, dst) in result.items() if dst.id in whole}
        return result, ambiguous

    def _query_matches(self, group: list[FieldMapping], rows: list[Record], criteria: dict[str, list[tuple]],
                       claimed: set[str]) -> dict[str, list[Record]]:
        """Per row, the uncoupled destination rows its criteria find, asked of the destination: per
        criterion that leads some row (its first with a value), one query for the page's values."""
        lead: dict[int, set] = {}
        for row in rows:
            if criteria[row.id]:
                fm, value = criteria[row.id][0]
                lead.setdefault(group.index(fm), set()).add(value)
        candidates: dict[str, Record] = {}
        for index, values in lead.items():
            for c in self.dst.read_matching(self.dst_table, self.dst_fields, group[index].field_on(self.dst_side),
                                            sorted(values, key=str), where=self.mapping.filter_on(self.dst_side)):
                candidates[c.id] = c
        taken = self.e.couplings.get_many(self.mapping.name, self.dst_side, list(candidates))
        free = [c for c in candidates.values() if c.id not in taken and c.id not in claimed]
        dst_side = self.dst_side
        return {row.id: [c for c in free if criteria[row.id] and all(
            self._same(fm, v, c.values.get(fm.field_on(dst_side))) for fm, v in criteria[row.id])] for row in rows}

    def _match_index(self, groups: list[list[FieldMapping]]) -> "MatchIndex":
        if self.match_index is None:
            fields = list(dict.fromkeys(fm.field_on(self.dst_side) for group in groups for fm in group))
            label = self.dst_table.key_field if self.dst_side is Side.BC else self.dst_table.primary_name
            coupled = {i for ids in self.e.couplings.coupled_ids(self.mapping.name, self.dst_side) for i in ids}
            pages = self.dst.read_changed(self.dst_table, list(dict.fromkeys([*fields, label])), since=None,
                                          where=self.mapping.filter_on(self.dst_side), page_size=self.e.page_size)
            uncoupled = (r for page in pages for r in page if r.id not in coupled)
            self.match_index = MatchIndex(self.dst_side, fields, label, uncoupled)
        return self.match_index

    def _criteria(self, group: list[FieldMapping], rows: list[Record]) -> dict[str, list[tuple[FieldMapping, Any]]]:
        """Per row, the criteria of the group that take part: (field mapping, value on the destination side)
        of those whose value converts to something not blank."""
        steps = [(fm, fm.field_on(self.src_side), self.converter(fm)) for fm in group]
        result = {}
        for row in rows:
            criteria = []
            for fm, name, convert in steps:
                try:
                    value = convert(row.values.get(name), row)
                except RecordError:
                    continue
                if value is not KEEP and not is_blank(value):
                    criteria.append((fm, value))
            result[row.id] = criteria
        return result

    def unmatchable(self, rows: list[Record]) -> set[str]:
        """Rows no match criterion could find again (none has a value): where the destination picks new
        rows' ids, a lost answer to their insert is guarded by a pending-insert record instead."""
        groups = self.mapping.match_groups(self.src_side)
        found = {sid for group in groups for sid, criteria in self._criteria(group, rows).items() if criteria}
        return {row.id for row in rows} - found

    def pending_inserts(self) -> dict[str, PendingInsert]:
        if self._pending_inserts is None:
            self._pending_inserts = {p.source_id: p for p in self.e.state.pending_inserts(self.mapping.name)}
        return self._pending_inserts

    def created_earlier(self, pending: list[PendingInsert]) -> dict[str, Record]:
        """The destination rows that earlier attempts of these inserts created, by source id: uncoupled rows
        changed since the first was sent (less the margin for clock skew) whose fields hold what was sent.
        Rows sent with the same values pair up one to one, in any order, as any pairing is as good."""
        since = min(p.sent_at for p in pending) - self.e.watermark_margin
        if not self.dst_table.modified_field:  # a page without a modification time: every row is looked at
            since = None
        fields = list(dict.fromkeys([*self.dst_fields, *(f for p in pending for f in p.values)]))
        rows = [r for page in self.dst.read_changed(self.dst_table, fields, since=since,
                                                    page_size=self.e.page_size) for r in page]
        coupled = self.e.couplings.get_many(self.mapping.name, self.dst_side, [r.id for r in rows]) if rows else {}
        free = [r for r in rows if r.id not in coupled]
        by_fields: dict[tuple[str, ...], dict[tuple, list[Record]]] = {}  # rows by the values of some fields
        found: dict[str, Record] = {}
        taken: set[str] = set()
        for entry in (p for p in pending if p.values):
            names = tuple(sorted(entry.values))
            index = by_fields.get(names)
            if index is None:
                index = by_fields[names] = {}
                for r in free:
                    index.setdefault(tuple(normalize(r.values.get(f)) for f in names), []).append(r)
            earliest = entry.sent_at - self.e.watermark_margin
            candidates = index.get(tuple(normalize(entry.values[f]) for f in names), [])
            hit = next((r for r in candidates
                        if r.id not in taken and (r.modified_on is None or r.modified_on >= earliest)), None)
            if hit is not None:
                found[entry.source_id] = hit
                taken.add(hit.id)
        return found

    @staticmethod
    def _same(fm: FieldMapping, value: Any, theirs: Any) -> bool:
        """Whether a criterion's value equals a destination row's: text ignores case unless the field
        mapping says otherwise."""
        mine, theirs = normalize(value), normalize(theirs)
        if isinstance(mine, str) and isinstance(theirs, str) and not fm.case_sensitive:
            return mine.casefold() == theirs.casefold()
        return same(mine, theirs)

    def _dst_name(self) -> str:
        return _table_name(self.dst_table)

    def _src_name(self) -> str:
        return _table_name(self.src_table)

    def _sync_references(self, pairs: list[tuple[Record, Coupling | None, Record | None]]) -> None:
        """Records the rows look up that are not coupled (a customer created after the full synchronisation,
        on its first invoice) are synchronised first by their own mapping, when it synchronises this way:
        created on the other side and coupled if they pass its filter, so that the lookup then finds them.
        Why one could not be is kept for the error of the record that references it."""
        for fm in self.fields:
            src_field = fm.field_on(self.src_side)
            # an owner (the Not Null lookup) is never synchronised first: a Sales user with no salesperson is an
            # error, as in Business Central, not a salesperson to create
            if fm.convert is not Convert.LOOKUP or fm.when_uncoupled is not WhenUncoupled.FAIL or not src_field \
                    or not fm.field_on(self.dst_side) or fm.not_null:
                continue
            ref = self.catalog[fm.lookup_mapping]
            rows = self.field_plan.to_look_up(fm, pairs)
            if not rows or not self._synchronises_first(ref):
                continue
            self.resolver.prepare(fm, self.dst_side, (r.values.get(src_field) for r in rows))
            resolve, ref_rules = self.resolver.resolver(fm, self.dst_side), ref.rules or MappingRules()
            missing = sorted({normalize(v) for r in rows if not is_blank(v := r.values.get(src_field))
                              and not resolve(v)[0] and not (self.src_side is Side.CRM
                                                             and ref_rules.is_blank_counterpart(self, v))}, key=str)
            if not missing:
                continue
            if fm.bc_key and self.src_side is Side.BC:  # a code: the referenced record's id is looked for
                found = self.e.bc.read_matching(ref.bc, [fm.bc_key], fm.bc_key, missing)
                id_of = {normalize(r.values.get(fm.bc_key)): r.id for r in found}
            else:
                id_of = {value: str(value) for value in missing}
            outcomes = self.sync_first(ref.name, list(id_of.values()), rows)
            for value, ref_id in id_of.items():
                outcome = outcomes.get(ref_id.lower())
                if outcome is not None and not outcome.ok:
                    self.reference_problems[(ref.name, value)] = outcome.error or outcome.status
            self.resolver.forget(fm, self.dst_side, missing)

    def _prepare_lookups(self, pairs: list[tuple[Record, Coupling | None, Record | None]]) -> None:
        for fm in self.fields:
            src_field = fm.field_on(self.src_side)
            if fm.convert is Convert.LOOKUP and src_field and fm.field_on(self.dst_side):
                rows = self.field_plan.to_look_up(fm, pairs)
                self.resolver.prepare(fm, self.dst_side, (r.values.get(src_field) for r in rows))

    def _deletion_conflict(self, page: "_Page", row: Record, coupling: Coupling) -> Coupling | None:
        """The coupled destination row is gone. Returns the coupling when the row was dealt with."""
        resolution = self.mapping.deletion_conflict
        if resolution is DeletionConflictResolution.NONE:
            page.fail(row, coupling, RecordError(
                f"{record_label(self.src_table, row)} cannot be updated because its coupled {self._dst_name()} "
                f"{coupling.id_on(self.dst_side)} was deleted. Restore it, remove the coupling, or set a "
                f"deletion-conflict resolution on {self.mapping.name}.", code="DeletionConflict"))
            return coupling
        page.removed.append(coupling)
        self.counts.uncoupled += 1
        if resolution is DeletionConflictResolution.REMOVE_COUPLING:
            self.note(f"couplings removed because the {self._dst_name()} was deleted")
            self.record(row, "skipped", error=f"its coupled {self._dst_name()} was deleted, so the coupling was "
                                              f"removed")
            return coupling
        return None  # RESTORE: continue as an uncoupled row, which is inserted again

    # -- values ---------------------------------------------------------------------------------

    def convert(self, fm: FieldMapping, value: Any, row: Record) -> Any:
        return self.converter(fm)(value, row)

    def converter(self, fm: FieldMapping) -> Converter:
        # by identity: the field mappings of the job's mapping live as long as the job, and hashing
        # one (all its attributes) would cost more than converting
        known = self._converters.get(id(fm))
        if known is None or known[0] is not fm:
            known = self._converters[id(fm)] = (fm, self._converter(fm))
        return known[1]

    def _converter(self, fm: FieldMapping) -> Converter:
        """How a source value of `fm` becomes the destination's, with what does not depend on the row
        looked up once per job."""
        dst_side = self.dst_side
        if fm.convert is not Convert.LOOKUP:
            if fm.convert is Convert.TEXT and fm.max_length and dst_side is Side.BC:
                return self._fitted(fm, plain_converter(fm, dst_side))
            return plain_converter(fm, dst_side)
        ref = self.catalog[fm.lookup_mapping]
        ref_rules = ref.rules or MappingRules()
        blank = blank_for(fm, dst_side)
        cleared = KEEP if fm.not_null else blank
        resolve = self.resolver.resolver(fm, dst_side)
        lookup_of = self.src_table.lookups.get(fm.crm) if self.src_side is Side.CRM else None
        type_field = lookup_of.type_field if lookup_of is not None and not ref.is_option_mapping else None

        def lookup(value: Any, row: Record) -> Any:
            if is_blank(value):
                special = ref_rules.blank_counterpart(self, dst_side)
                return cleared if special is None else special
            if dst_side is Side.BC and ref_rules.is_blank_counterpart(self, value):
                return blank
            if type_field:
                kind = row.values.get(type_field)
                if kind and kind != ref.crm.logical_name:
                    # a team owns the row: no salesperson stands for a team, so Business Central keeps its own
                    self.note_record(f"{fm.label} kept where the owner is a Dataverse {kind}: only "
                                     f"{ref.crm.logical_name} owners map to a {ref.bc.caption}",
                                     f"{record_label(self.src_table, row)}, {kind} {value}")
                    return KEEP
                if same(value, self.integration_user):
                    return KEEP  # Sales made bcsync's own user the owner of a row it created without a salesperson
            found, converted = resolve(value)
            if found:
                return converted
            if fm.when_uncoupled is WhenUncoupled.CLEAR:
                return cleared
            problem = self._uncoupled(fm, value, ref)
            if fm.when_uncoupled is WhenUncoupled.LEAVE_BLANK:
                if dst_side is Side.BC:
                    # Business Central keeps its value rather than lose it to an option it cannot name
                    self.notes[f"{problem}; the Business Central value was kept"] += 1
                    return KEEP
                self.notes[f"{problem}; left blank"] += 1
                return cleared
            why = self.reference_problems.get((ref.name, normalize(value)))
            advice = f"it could not be synchronised first: {why}" if why else \
                f"couple it first (table mapping {ref.name})."
            raise RecordError(f"{record_label(self.src_table, row)}: {problem}; {advice}", field=fm.label,
                              code="NotCoupled")
        return lookup

    def _uncoupled(self, fm: FieldMapping, value: Any, ref: TableMapping) -> str:
        """The reason a lookup failed, in the user's terms."""
        if self.dst_side is Side.CRM:
            shown = self.resolver.display(value)
            if ref.is_option_mapping:
                return f"{fm.label} '{shown}' has no Sales option in {ref.option_set.attribute}"
            return f"{fm.label} '{shown}' is not coupled to a Dataverse {ref.crm.logical_name}"
        if ref.is_option_mapping:
            return f"Sales option {normalize(value):g} of {ref.option_set.attribute} is not coupled to a {ref.bc.caption}"
        # named as users know it (read only for a record that fails: there are few)
        named = self.e.crm.read_ids(ref.crm, [ref.crm.primary_name], [value])
        shown = f"'{named[0].values.get(ref.crm.primary_name)}' ({value})" if named else str(value)
        return f"{fm.label}: Dataverse {ref.crm.logical_name} {shown} is not coupled to a {ref.bc.caption}"

    def _fitted(self, fm: FieldMapping, convert: Converter) -> Converter:
        """Text longer than its Business Central field is never cut silently: per the mapping's truncation, it is
        cut with a note naming the record, the field and the original length, or the record fails."""
        limit, fail = fm.max_length, self.mapping.truncation is Truncation.ERROR

        def fitted(value: Any, row: Record) -> Any:
            length = len(str(value)) if value is not None else 0
            if length > limit:
                if fail:
                    raise RecordError(
                        f"{record_label(self.src_table, row)}: {fm.label} ({fm.crm} -> {fm.bc}) is {length} characters "
                        f"long; the Business Central field holds {limit}. Shorten it, or set the truncation of "
                        f"{self.mapping.name} to cut.", field=fm.label, code="TextTooLong")
                self.note_record(f"{fm.label} ({fm.crm} -> {fm.bc}) cut to the {limit} characters the Business "
                                 f"Central field holds", f"{record_label(self.src_table, row)}: {length} characters")
            return convert(value, row)
        return fitted

    def progress(self, checkpoint: dt.datetime | None = None, moved: bool = False) -> bool:
        """Reports the job's counts and checkpoint (`moved`: it got further without one). When the runner saved them
        (now and then, renewing the mapping's lease), what the job moved is saved as well (save_state): a worker
        killed midway (out of memory, the host's time limit) leaves the watermark and the change feed's cursor at
        most one progress save behind, and its next attempt gets further. Returns whether it was saved."""
        if not self.on_progress(Progress(self.counts, checkpoint, moved)):
            return False
        self.save_state()
        return True

    def outcome(self, checkpoint: dt.datetime | None = None, complete: bool = True) -> JobOutcome:
        listed = [f"{text}, {len(records)} record(s): {'; '.join(list(records)[:LISTED])}"
                  + (f"; and {len(records) - LISTED} more" if len(records) > LISTED else "")
                  for text, records in self._listings.items()]
        notes = listed + [f"{text} ({n}x)" if n > 1 else text for text, n in self.notes.most_common(20)]
        return JobOutcome(self.counts, notes, checkpoint, complete)

    def crm_id_for(self, bc_id: str) -> str:
        """uuid5(CRM_ID_NAMESPACE, "<mapping>/<bc id>"), with the hash of the common prefix taken once."""
        digest = self._crm_id_prefix.copy()
        digest.update(bc_id.encode())
        raw = bytearray(digest.digest()[:16])
        raw[6] = (raw[6] & 0x0F) | 0x50  # version 5
        raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
        text = raw.hex()
        return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"

    # -- option mappings ------------------------------------------------------------------------

    def run_option_mapping(self) -> JobOutcome:
        """Couple each code of the Business Central table to the Sales option with the same label.

        A code without such an option is skipped and the option stays blank on accounts (the
        seed's rule); the job log says which codes.
        """
        option_set = self.mapping.option_set
        labels = self.e.crm.option_labels(option_set)
        value_of = {label.casefold(): value for value, label in labels.items()}
        taken_options = None
        key = self.src_table.key_field
        for page in self.src.read_changed(self.src_table, [key], since=None, page_size=self.e.page_size):
            coupled = self.e.couplings.get_many(self.mapping.name, Side.BC, [r.id for r in page])
            if taken_options is None:
                taken_options = self.e.couplings.get_many(self.mapping.name, Side.CRM, [str(v) for v in labels])
            new: list[Coupling] = []
            for row in page:
                code = row.values.get(key) or ""
                value = value_of.get(code.casefold())
                current = coupled.get(row.id)
                if current is not None and value is not None and current.crm_id == str(value):
                    self.counts.unchanged += 1
                elif value is None:
                    self.counts.skipped += 1
                    self.notes[f"{self.src_table.caption} {code} has no option in Sales "
                               f"({option_set.table.logical_name}.{option_set.attribute}); it is left blank"] += 1
                elif str(value) in taken_options and taken_options[str(value)].bc_id != row.id:
                    self.counts.skipped += 1
                    self.notes[f"Sales option {labels[value]!r} is already coupled to another "
                               f"{self.src_table.caption}; {code} was not coupled"] += 1
                else:
                    coupling = Coupling(self.mapping.name, row.id, str(value), bc_etag=row.etag,
                                        bc_values={self.fields[0].key: code},
                                        crm_values={self.fields[0].key: labels[value]},
                                        synced_at=self.e.clock.now(), job_id=self.job_id)
                    new.append(coupling)
                    taken_options[str(value)] = coupling
                    self.counts.coupled += 1
            if new:
                stale = [coupled[c.bc_id] for c in new if c.bc_id in coupled]
                if stale:
                    self.e.couplings.delete_many(stale)
                self.e.couplings.save_many(new)
            newest = max((r.modified_on for r in page if r.modified_on), default=None)
            if newest is not None:  # read whole every time; the watermark only tells the schedule of changes
                self._raise_watermark(min(newest, self.cap))
            self.progress()
        return self.outcome()


def _match_key(value: Any) -> Any:
    """What the match index files a value under: coarser than any criterion's comparison (text folded to
    one case), so that every row a criterion could match is in the bucket of its value."""
    key = normalize(value)
    return key.casefold() if isinstance(key, str) else key


class MatchIndex:
    """The uncoupled destination rows of a job that reads every row, read once and filed by the value of
    each match criterion's field. Rows are kept as compact tuples of the matched fields (and the field
    users know a row by, for messages), as there may be many."""

    def __init__(self, side: Side, fields: list[str], label: str, rows: Iterable[Record]):
        self.side, self.fields, self.label = side, fields, label
        self.position = {f: i for i, f in enumerate(fields)}
        self.rows: dict[str, tuple] = {}
        self.buckets: dict[str, dict[Any, str | list[str]]] = {f: {} for f in fields}
        buckets = [self.buckets[f] for f in fields]
        for row in rows:
            values = [row.values.get(f) for f in fields]
            self.rows[row.id] = (*values, row.values.get(label))
            for bucket, value in zip(buckets, values):
                key = _match_key(value)
                if key is None:
                    continue
                held = bucket.get(key)  # one id, or a list of the ids sharing the value (rare: no list per row)
                if held is None:
                    bucket[key] = row.id
                elif isinstance(held, list):
                    held.append(row.id)
                else:
                    bucket[key] = [held, row.id]

    def find(self, criteria: list[tuple[FieldMapping, Any]], same: Callable[[FieldMapping, Any, Any], bool]) \
            -> list[Record]:
        """The rows still uncoupled that satisfy every criterion ((field mapping, value) pairs, the first
        one leading), as records of the matched fields."""
        if not criteria:
            return []
        lead_fm, lead_value = criteria[0]
        wanted = [(fm, v, self.position[fm.field_on(self.side)]) for fm, v in criteria]
        found = []
        held = self.buckets[lead_fm.field_on(self.side)].get(_match_key(lead_value), ())
        for row_id in (held,) if isinstance(held, str) else held:
            values = self.rows.get(row_id)
            if values is not None and all(same(fm, v, values[i]) for fm, v, i in wanted):
                found.append(Record(row_id, {**dict(zip(self.fields, values)), self.label: values[-1]}))
        return found

    def discard(self, ids: Iterable[str]) -> None:
        """Rows coupled meanwhile are no candidates any more."""
        for row_id in ids:
            self.rows.pop(row_id, None)


class _Page:
    """Plans and writes of one page; flushed with `write`."""

    def __init__(self, job: _Job):
        self.job = job
        self.inserts: list[tuple[Record, RowPlan, str | None]] = []
        self.updates: list[tuple[Record, Coupling, Record, RowPlan]] = []
        self.unchanged: list[tuple[Record, Coupling, Record, RowPlan]] = []
        self.failed: list[tuple[Record, Coupling | None, SyncError]] = []
        self.succeeded: list[str] = []
        self.saved: list[Coupling] = []
        self.removed: list[Coupling] = []
        self.new_couplings: set[str] = set()
        self.pending: list[str] = []  # destination ids with changes this pass left for the opposite one
        self.interrupted: SyncError | None = None  # a transient (or settings) failure of some write of this page
        self.guarded: set[str] = set()  # source ids with a pending-insert record (see _guard_inserts)
        self.refused: set[str] = set()  # ... whose insert was refused: nothing was created
        self.written: list[Written] = []

    def plan(self, row: Record, coupling: Coupling | None, dst_row: Record | None) -> None:
        job = self.job
        try:
            plan = job.field_plan.plan(row, dst_row, coupling)
            extra = job.rules.extra_values(job, row, dst_row) if plan.action != "fail" else {}
        except RecordError as exc:
            self.fail(row, coupling, exc)
            return
        except SkipRow as skip:
            job.note(skip.note)
            job.record(row, "skipped", error=skip.note)
            job.counts.skipped += 1
            if coupling is not None and skip.in_place:  # in sync as it stands: the next pass knows it
                for side in (Side.BC, Side.CRM):
                    coupling.values_on(side).update({f"~{name}": value for name, value in skip.in_place.items()})
                self.saved.append(coupling)
            return
        if extra:
            self._merge_computed(plan, extra, coupling, dst_row)
        self._remember_inputs(row, plan, extra)
        if plan.values and plan.action in ("unchanged", "skip"):
            plan.action = "update"
        elif not plan.values and plan.action == "update":
            plan.action = "unchanged"  # what the field mappings would change, the rules keep
        if plan.action == "fail":
            self.fail(row, coupling, plan.error)
        elif plan.action == "insert":
            if "ownerid" not in plan.values:  # an owner the rules chose (an order's, for its invoice) stays
                plan.values.update(job.team_owner())
            proposed = job.crm_id_for(row.id) if job.dst_side is Side.CRM else None
            self.inserts.append((row, plan, proposed))
        elif plan.action == "update":
            self.updates.append((row, coupling, dst_row, plan))
        else:
            self.unchanged.append((row, coupling, dst_row, plan))
            if plan.action == "skip":
                job.counts.skipped += 1
            else:
                job.counts.unchanged += 1
            if row.id in self.new_couplings:
                job.counts.coupled += 1

    def _remember_inputs(self, row: Record, plan: RowPlan, extra: dict[str, Any]) -> None:
        """The source fields the rules' computed values derive from, as they are now (MappingRules.inputs); where
        each direction computes the other's inputs, also what this pass wrote as the destination's."""
        rules, src_side, dst_side = self.job.rules, self.job.src_side, self.job.dst_side
        for name in rules.inputs.get(src_side, ()):
            plan.src_snapshot[f"^{name}"] = row.values.get(name)
        if rules.mirrored_inputs:
            for mine, theirs in zip(rules.inputs.get(src_side, ()), rules.inputs.get(dst_side, ())):
                if theirs in extra:
                    plan.dst_snapshot[f"^{theirs}"] = extra[theirs]
                    plan.src_snapshot[f"~{mine}"] = plan.dst_snapshot[f"~{mine}"] = row.values.get(mine)

    def _merge_computed(self, plan: RowPlan, extra: dict[str, Any], coupling: Coupling | None,
                        dst_row: Record | None) -> None:
        """Computed values (a state, a parent, a unit) are merged like bidirectional fields, against the
        snapshot under "~<name>": a destination changed since we last wrote the value, while the
        computed value did not change, is left alone for its own pass to carry back. A one-way mapping
        has no such pass: its computed values follow the source, as its fields do (and a state that a
        stopped job's reopening step left is not taken for a user's)."""
        job = self.job
        src_snap = coupling.values_on(job.src_side) if coupling else {}
        dst_snap = coupling.values_on(job.dst_side) if coupling else {}
        both_ways = job.mapping.direction is Direction.BIDIRECTIONAL
        for name, value in extra.items():
            key = f"~{name}"
            current = dst_row.values.get(name) if dst_row is not None else None
            if (both_ways and dst_row is not None and key in src_snap and not same(current, value)
                    and name not in job.rules.source_owned):
                source_changed = not same(value, src_snap[key])
                destination_changed = not same(current, dst_snap.get(key))
                if destination_changed and not source_changed:
                    plan.dst_has_unsynced_changes = True
                    plan.values.pop(name, None)
                    continue
            plan.src_snapshot[key] = value
            plan.dst_snapshot[key] = value
            if dst_row is None and name in job.rules.update_only:
                continue  # set by the follow-up (publishing a new product), remembered all the same
            if dst_row is None or not same(current, value):
                plan.values[name] = value
            else:
                plan.values.pop(name, None)  # a field mapping's value yields to the rule's

    def couple(self, coupling: Coupling) -> None:
        """Couple without synchronising (match-based coupling without Synch. After Coupling)."""
        coupling.synced_at, coupling.job_id = self.job.e.clock.now(), self.job.job_id
        self.saved.append(coupling)
        self.succeeded.append(coupling.id_on(self.job.src_side))
        self.job.counts.coupled += 1

    def fail(self, row: Record, coupling: Coupling | None, error: SyncError) -> None:
        if stops_job(error) or isinstance(error, SettingsError):
            # not the record's fault: no failure recorded; a setting that can never work fails the job
            self.interrupted = self.interrupted or error
            return
        self.failed.append((row, coupling, error))

    def write(self) -> None:
        job = self.job
        self._write_inserts()
        self._write_updates()
        for row, coupling, dst_row, plan in self.unchanged:
            self._remember(row, coupling, dst_row, plan)
            self.succeeded.append(row.id)
            job.record(row, "coupled" if row.id in self.new_couplings else
                       "skipped" if plan.action == "skip" else "unchanged", coupling.id_on(job.dst_side))
            if dst_row is not None and (row.id in self.new_couplings or row.id in job.failures):
                # newly coupled, or its follow-up failed last time: the rules' follow-up runs for it
                self.written.append(Written(row, dst_row, row.id in self.new_couplings, coupling,
                                            retried=row.id in job.failures))
        if self.pending:  # before the couplings: a crash in between must not lose the pending mark
            opposite = Direction.FROM_CRM if job.direction is Direction.TO_CRM else Direction.TO_CRM
            job._mark_pending(opposite, self.pending)
        if self.removed:
            job.e.couplings.delete_many(self.removed)
            for coupling in self.removed if job.bc_versions is not None else ():
                job.bc_versions.pop(coupling.bc_id.lower(), None)
        follow_up = self._follow_up_note()
        if self.saved:
            job.e.couplings.save_many(self.saved, follow_up)
            job._know_versions(self.saved)
            if job.match_index is not None:
                job.match_index.discard(c.id_on(job.dst_side) for c in self.saved)
        if self.guarded:  # coupled, or refused: nothing is left for a repeat to look for
            coupled = {c.id_on(job.src_side) for c in self.saved}
            settled = [sid for sid in self.guarded if sid in coupled or sid in self.refused]
            if settled:
                job.e.state.clear_pending_inserts(job.mapping.name, settled)
                for sid in settled:
                    job.pending_inserts().pop(sid, None)
        self._follow_up()
        self._claim()
        self._record_failures()
        if follow_up is not None and follow_up.note is not None:
            job.e.couplings.followed_up(follow_up)
        cleared = [sid for sid in self.succeeded if sid in job.failures]
        if cleared:
            job.e.errors.clear_many(job.mapping.name, job.direction, cleared)
            for sid in cleared:
                job.failures.pop(sid, None)
        if self.interrupted is not None:
            # the service is in trouble: what was written is recorded above; the job stops here and is
            # retried later from its checkpoint, which is before this page
            raise self.interrupted

    def _follow_up_note(self) -> FollowUp | None:
        """New rows whose rules write more after them (an invoice's lines) are noted with their couplings, in the
        same storage transactions, and the note goes once their follow-ups are done or their failures recorded:
        a worker that dies in between leaves the note, and the next job logs them as failed records to retry
        (the follow-up is idempotent), where they would otherwise look coupled and done for good."""
        job = self.job
        if type(job.rules).after_write is MappingRules.after_write:
            return None
        ids = [w.source.id for w in self.written if w.inserted and w.source.id not in job.failures]
        return FollowUp(job.direction, ids) if ids else None

    def _claim(self) -> None:
        """With several companies, the Sales rows of no company coupled now become the company's (sync.ports
        CrmEndpoint.claim); a row that cannot be claimed is a failed record of its source, tried again next run.
        After the couplings and follow-ups, so that a row's claim never keeps the others' work from being recorded."""
        job = self.job
        crm_table = job.mapping.table_on(Side.CRM)
        if not self.saved or not isinstance(crm_table, CrmTable):
            return
        problems = {i.lower(): e for i, e in job.e.crm.claim(crm_table, [c.crm_id for c in self.saved]).items()}
        if not problems:
            return
        rows = {entry[0].id: entry[0] for entry in (*self.inserts, *self.updates, *self.unchanged)}
        taken = []
        for coupling in self.saved:
            error = problems.pop(coupling.crm_id.lower(), None)
            if error is None:
                continue
            source_id = coupling.id_on(job.src_side)
            if source_id in self.succeeded:
                self.succeeded.remove(source_id)
            if error.code == CLAIM_TAKEN:  # another company's row now: this company's coupling goes
                taken.append(coupling)
            self.fail(rows.get(source_id) or Record(source_id, {}), None if error.code == CLAIM_TAKEN else coupling,
                      error)
        if taken:
            job.e.couplings.delete_many(taken)
            job.counts.uncoupled += len(taken)
            for coupling in taken if job.bc_versions is not None else ():
                job.bc_versions.pop(coupling.bc_id.lower(), None)

    def _follow_up(self) -> None:
        """The rules' follow-up writes, once the couplings are saved. A row whose follow-up fails is a
        failed record (retried next run); when a service is in trouble all of them are, and the job stops."""
        job = self.job
        if not self.written:
            return
        try:
            problems = job.rules.after_write(job, self.written) or {}
        except SyncError as exc:
            problems = {w.source.id: exc for w in self.written}
            self.interrupted = self.interrupted or (exc if exc.transient else None)
        for source_id, error in problems.items():
            done = next(w for w in self.written if w.source.id == source_id)
            if source_id in self.succeeded:
                self.succeeded.remove(source_id)
            self.failed.append((done.source, done.coupling, error))  # recorded even when transient

    def _write_inserts(self) -> None:
        job = self.job
        if job.dst_side is Side.BC and self.inserts:
            self._guard_inserts()
        template = self._template() if job.dst_side is Side.BC and self.inserts else {}
        if not self.inserts:
            return
        series = job.mapping.bc_number_series if job.dst_side is Side.BC else None
        if series is not None:
            last = series.parse(job.dst.last_key(job.dst_table, series.field, series.prefix))
            for offset, (_, plan, _) in enumerate(self.inserts, start=1):
                plan.values.setdefault(series.field, series.format(last + offset))
        if self.guarded:
            now = job.e.clock.now()
            sent = [PendingInsert(row.id, plan.values, now) for row, plan, _ in self.inserts if row.id in self.guarded]
            job.e.state.save_pending_inserts(job.mapping.name, sent)
            job.pending_inserts().update((p.source_id, p) for p in sent)
        # the template fills what the synchronisation leaves unset
        results = job.dst.insert(job.dst_table, [NewRow({**template, **plan.values}, proposed)
                                                 for _, plan, proposed in self.inserts], job.dst_fields)
        existing: list[tuple[Record, str]] = []
        lacking = without_template(job.mapping) if job.dst_side is Side.BC else None
        for (row, plan, proposed), result in zip(self.inserts, results):
            if result.error is not None and result.record is None:
                if isinstance(result.error, AlreadyExistsError) and proposed:
                    existing.append((row, proposed))  # written by an earlier attempt: couple and update
                else:
                    if not result.error.transient:
                        self.refused.add(row.id)
                    self.fail(row, None, result.error)
                continue
            coupling = self._new_coupling(row, result.record.id)
            job.counts.inserted += 1
            job.record(row, "created", result.record.id)
            if lacking:
                job.note_record(lacking, str(result.record.values.get(job.dst_table.key_field)))
            if result.error is not None:  # written in part: coupled, and the rest retried next run
                self.saved.append(coupling)  # no snapshot yet: the retry writes what is missing
                self.failed.append((row, coupling, result.error))
                continue
            self._remember(row, coupling, result.record, plan)
            self.succeeded.append(row.id)
            self.written.append(Written(row, result.record, True, coupling))
        if existing:
            found = {r.id: r for r in job.dst.read_ids(job.dst_table, job.dst_fields, [p for _, p in existing])}
            for row, proposed in existing:
                if proposed not in found:
                    self.fail(row, None, RecordError(f"{record_label(job.src_table, row)}: the {job._dst_name()} "
                                                     f"{proposed} exists but cannot be read."))
                    continue
                self.new_couplings.add(row.id)
                self.plan(row, self._new_coupling(row, proposed), found[proposed])
            self._write_updates()

    def _template(self) -> dict[str, Any]:
        """The values of the mapping's configuration template for the new rows; when it cannot be had, the
        rows are not created (failed, or left for the next run when the service is in trouble)."""
        try:
            return template_values(self.job, self.job.mapping)
        except SyncError as exc:
            for row, _, _ in self.inserts:
                self.refused.add(row.id)
                self.fail(row, None, exc)
            self.inserts = []
            return {}

    def _guard_inserts(self) -> None:
        """Business Central picks a new row's id, so a repeated insert cannot find its row by id, as one in
        Sales does. Rows that match-based coupling could not find again either (no criterion has a value)
        are recorded before they are sent, with the values sent; a row recorded by an earlier attempt whose
        outcome is unknown (a lost answer, a worker that died) is looked for first among the rows created
        since, by those values, and coupled and updated instead of inserted again."""
        job = self.job
        self.guarded = job.unmatchable([row for row, _, _ in self.inserts])
        if not self.guarded:
            return
        pending = job.pending_inserts()
        earlier = [pending[sid] for sid in self.guarded if sid in pending]
        found = job.created_earlier(earlier) if earlier else {}
        if not found:
            return
        inserts, self.inserts = self.inserts, []
        for row, plan, proposed in inserts:
            if row.id not in found:
                self.inserts.append((row, plan, proposed))
                continue
            self.new_couplings.add(row.id)
            self.plan(row, self._new_coupling(row, found[row.id].id), found[row.id])

    def _new_coupling(self, row: Record, dst_id: str) -> Coupling:
        bc_id, crm_id = (row.id, dst_id) if self.job.src_side is Side.BC else (dst_id, row.id)
        return Coupling(self.job.mapping.name, bc_id, crm_id)

    def _write_updates(self) -> None:
        job = self.job
        pending, self.updates = self._reopen(self.updates), []
        if not pending:
            return
        changes = [RowChange(dst_row.id, dst_row.etag, plan.values) for _, _, dst_row, plan in pending]
        results = job.dst.update(job.dst_table, changes, job.dst_fields)
        for (row, coupling, dst_row, plan), result in zip(pending, results):
            if result.error is not None and result.record is None:
                self.fail(row, coupling, result.error)
                continue
            if result.error is not None:  # written in part: the snapshot stays, and the retry writes the rest
                job.counts.modified += 1
                if row.id in self.new_couplings:
                    self.saved.append(coupling)
                self.failed.append((row, coupling, result.error))
                continue
            self._remember(row, coupling, result.record, plan)
            self.written.append(Written(row, result.record, row.id in self.new_couplings, coupling,
                                        retried=row.id in job.failures))
            job.record(row, "coupled" if row.id in self.new_couplings else "updated", result.record.id)
            job.counts.modified += 1
            if row.id in self.new_couplings:
                job.counts.coupled += 1
            self.succeeded.append(row.id)

    def _reopen(self, pending: list) -> list:
        """Destination rows read-only in their state are made writable first (the rules say how); the update
        then goes to the version this left, and sets back what reopening changed unless it sets it itself.
        Should the job stop in between, the row stays reopened and is written when its source row is read
        again (the job resumes before this page) or its failure retried."""
        job = self.job
        reopens = [job.rules.reopen(job, dst_row, plan.values) for _, _, dst_row, plan in pending]
        todo = [i for i, values in enumerate(reopens) if values]
        if not todo:
            return pending
        results = job.dst.update(job.dst_table, [RowChange(pending[i][2].id, pending[i][2].etag, reopens[i])
                                                 for i in todo], job.dst_fields)
        writable = list(pending)
        for i, result in zip(todo, results):
            row, coupling, closed, plan = pending[i]
            if result.record is None:
                self.fail(row, coupling, result.error)
                writable[i] = None
            else:
                plan.values = {**{k: closed.values.get(k) for k in reopens[i]}, **plan.values}
                writable[i] = (row, coupling, result.record, plan)
        return [item for item in writable if item is not None]

    def _remember(self, row: Record, coupling: Coupling, dst_row: Record, plan: RowPlan) -> None:
        """Store both sides' versions and values so the next pass knows what changed since now."""
        job = self.job
        coupling.values_on(job.src_side).update(plan.src_snapshot)
        coupling.values_on(job.dst_side).update(plan.dst_snapshot)
        if job.src_side is Side.BC:
            coupling.bc_etag = row.etag
        else:
            coupling.crm_etag = row.etag
        if dst_row is not None:
            if job.dst_side is Side.BC:
                coupling.bc_etag = dst_row.etag
            else:
                coupling.crm_etag = dst_row.etag
        if plan.dst_has_unsynced_changes:
            self.pending.append(dst_row.id if dst_row else coupling.id_on(job.dst_side))
        coupling.synced_at = job.e.clock.now()
        coupling.job_id = job.job_id
        self.saved.append(coupling)

    def _record_failures(self) -> None:
        job = self.job
        if not self.failed:
            return
        now = job.e.clock.now()
        entries = []
        for row, coupling, error in self.failed:
            job.counts.failed += 1
            if not error.transient:
                job.facts.refused(error.message)
            previous = job.failures.get(row.id)
            message = error.message if error.message.startswith(record_label(job.src_table, row)) else \
                f"{record_label(job.src_table, row)}: {error.message}"
            # the same error twice in a row: the record is skipped, as Business Central does, until
            # its source changes or a user restores it
            entry = failed_again(previous, error, mapping=job.mapping.name, direction=job.direction, source_id=row.id,
                                 record=record_label(job.src_table, row), message=message, now=now,
                                 job_id=job.job_id, target_id=coupling.id_on(job.dst_side) if coupling else "",
                                 source_etag=row.etag,
                                 skippable=error.code not in MATCH_FAILURES and error.skippable)
            job.failures[row.id] = entry
            job.record(row, "failed", entry.target_id, message)
            entries.append(entry)
        job.e.errors.save_many(entries)
