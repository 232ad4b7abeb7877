"""Runs and jobs: how a synchronisation run is planned, queued, executed and reported.

A run (full or scheduled) holds one job per table mapping and direction. Jobs whose dependencies
are done are put on the job queue; a worker runs one job and then queues the dependants that became
ready. Queue delivery is at least once, so every step is idempotent: a finished job ignores a
duplicate message, a job is claimed with optimistic concurrency and a time-limited lease, and two
jobs of the same mapping never run at once (a mapping lease shared by all runs).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import secrets
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from enum import Enum
from typing import Iterable, Iterator, Protocol, Sequence

from .config import CatalogSource
from .dryrun import DryRun, carried, merged, shown_report
from .engine import Counts, JobMode, Progress, SyncEngine
from .errors import ConcurrencyError, ConfigurationError, LeaseLost, MessageError, SyncError, TransientError, shown
from .mappings import Catalog
from .model import Direction
from .planner import plan
from .ports import Clock, RecordFailure
from .review import Recommendation
from .notifications import Notification
from .schedule import ScheduleStore, after_run, due_mappings, iso
from .targeted import notified_rows

log = logging.getLogger("bcsync.runs")
# the shape of the run ids start_run gives out (when it started, then a random suffix)
RUN_ID = re.compile(r"[0-9]{8}-[0-9]{6}-[0-9a-f]{6}")
RUNS_STATE = "(runs)"  # the state store's partition for what belongs to no mapping
PROGRESS_SAVES_PER_LEASE = 20  # a running job saves its progress (and renews its lease) every 1/20 of a lease
RETRY_SECONDS = 15  # a job that failed transiently runs again after this, doubled for each attempt without progress
# notify reuses the catalogue it read for this long (a read fewer per notification in a burst); a mapping changed
# meanwhile is seen a few seconds late, as by a run started just before the change
NOTIFY_CATALOG_SECONDS = 5
# a waiting run's marker whose run does not exist this long after its window (its start failed, and so did the
# release of its marker) is stale: a notification starts a run of its own instead of joining one that never runs
ORPHAN_MARKER_SECONDS = 30


class RunKind(str, Enum):
    FULL = "full"            # BC's full synchronisation: per mapping as the review recommends
    SCHEDULED = "scheduled"  # rows changed since the watermark, as the timer runs it
    COUPLE = "couple"        # match-based coupling of the uncoupled rows of the chosen mappings
    NOTIFIED = "notified"    # targeted: the rows the services' notifications named (sync.targeted)


class JobStatus(str, Enum):
    PENDING = "pending"      # waiting for its dependencies
    QUEUED = "queued"        # on the job queue
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    BLOCKED = "blocked"      # not run because a dependency failed


TERMINAL = frozenset({JobStatus.DONE, JobStatus.FAILED, JobStatus.BLOCKED})


class RunStatus(str, Enum):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


@dataclass
class Job:
    run_id: str
    job_id: str
    mapping: str
    direction: Direction
    depends_on: tuple[str, ...]
    seq: int = 0                    # position in dependency order, for listing
    mode: JobMode = JobMode.INCREMENTAL
    recommendation: str = ""        # full runs: what the review recommended for the mapping
    reason: str = ""                # scheduled runs: why the mapping was due
    status: JobStatus = JobStatus.PENDING
    counts: Counts = field(default_factory=Counts)
    notes: list[str] = field(default_factory=list)
    message: str = ""
    attempts: int = 0
    # attempts since the job last made progress (its checkpoint moved on): the retry limit counts these, so a
    # long job that fails now and then but gets further each time is not given up on
    attempts_without_progress: int = 0
    queued_at: dt.datetime | None = None
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    checkpoint: dt.datetime | None = None
    lease_until: dt.datetime | None = None
    etag: str | None = None

    def fields(self) -> dict[str, str]:
        """Which job this is, as fields of its log records (custom dimensions in Application Insights)."""
        return {"run": self.run_id, "job": self.job_id, "mapping": self.mapping, "direction": self.direction.value}

    def to_dict(self) -> dict:
        return {
            "job": self.job_id, "mapping": self.mapping, "direction": self.direction.value,
            "mode": self.mode.value, "recommendation": self.recommendation, "reason": self.reason,
            "status": self.status.value, "depends_on": list(self.depends_on), "counts": self.counts.as_dict(),
            "notes": self.notes, "message": self.message, "attempts": self.attempts,
            "attempts_without_progress": self.attempts_without_progress,
            "started_at": iso(self.started_at), "finished_at": iso(self.finished_at),
            "seconds": (round((self.finished_at - self.started_at).total_seconds(), 1)
                        if self.started_at and self.finished_at else None),
            "checkpoint": iso(self.checkpoint),
        }


@dataclass
class Run:
    run_id: str
    kind: RunKind
    trigger: str
    status: RunStatus = RunStatus.RUNNING
    created_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    mappings: tuple[str, ...] = ()
    etag: str | None = None
    dry: bool = False  # a dry run: its jobs report what they would write, and write nothing
    company: str = ""  # the Business Central company it synchronises, by its configured name


# What a job message's ids may be: ours are far shorter (a run id is 22 characters, a job id a table mapping's name
# and a direction), and Table Storage refuses keys with these characters or over 1 KiB.
MAX_RUN_ID = 64
MAX_JOB_ID = 200
MAX_COMPANY = 64
KEY_CHARACTERS = "/\\#?"
JSON_TYPES = {dict: "an object", list: "an array", str: "a string", bool: "true or false", int: "a number",
              float: "a number", type(None): "null"}


@dataclass(frozen=True)
class JobMessage:
    """What travels on the queue: a pointer to the job, never its data (64 KB limit)."""

    run_id: str
    job_id: str
    company: str = ""  # whose run (several companies); a message without one is the only or the home company's

    def to_json(self) -> str:
        return json.dumps({"run": self.run_id, "job": self.job_id, **({"company": self.company} if self.company
                                                                        else {})})

    @classmethod
    def parse(cls, body: bytes | str) -> "JobMessage":
        """A message's body as the queue trigger hands it over, checked before anything is looked up: MessageError
        names what is wrong (not UTF-8, not JSON, not an object, a field missing, of another type, empty, too long
        or with characters no id has)."""
        if isinstance(body, bytes):
            try:
                body = body.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise MessageError(f"The job message is not UTF-8 text (byte {exc.object[exc.start]:#04x} at "
                                   f"position {exc.start}).") from None
        try:
            data = json.loads(body)
        except json.JSONDecodeError as exc:
            raise MessageError(f"The job message is not JSON ({exc.msg} at position {exc.pos}): "
                               f"{shown(body)}.") from None
        except RecursionError:
            raise MessageError("The job message is JSON nested too deeply to be a job message.") from None
        if not isinstance(data, dict):
            raise MessageError(f'The job message must be a JSON object {{"run": "<run id>", "job": "<job id>"}}, '
                               f"not {JSON_TYPES.get(type(data), 'a number')}.")
        company = cls._id(data, "company", MAX_COMPANY) if "company" in data else ""
        return cls(cls._id(data, "run", MAX_RUN_ID), cls._id(data, "job", MAX_JOB_ID), company)

    @staticmethod
    def _id(data: dict, field: str, limit: int) -> str:
        value = data.get(field)
        problem = None
        if field not in data:
            problem = "is missing"
        elif not isinstance(value, str):
            problem = f"must be a string, not {JSON_TYPES.get(type(value), 'a number')}"
        elif not value.strip():
            problem = "is empty"
        elif len(value) > limit:
            problem = f"is {len(value)} characters long; a {field} id has at most {limit}"
        elif not value.isprintable() or any(c in KEY_CHARACTERS for c in value):
            problem = f"has characters no {field} id has (control characters or / \\ # ?): {shown(value)}"
        if problem:
            raise MessageError(f'Field "{field}" of the job message {problem}.', field=field)
        return value


class RunStore(Protocol):
    def create(self, run: Run, jobs: Sequence[Job]) -> None: ...
    def get(self, run_id: str) -> Run | None: ...
    def list_runs(self, limit: int = 20, targeted: bool | None = None) -> list[Run]:
        """The newest runs, newest first; `targeted`: of targeted runs only (True) or of the others (False)."""
    def jobs(self, run_id: str) -> list[Job]: ...
    def get_job(self, run_id: str, job_id: str) -> Job | None: ...

    def save_job(self, job: Job) -> Job:
        """Save if nobody changed it since it was read (job.etag); raises ConcurrencyError otherwise."""

    def save_run(self, run: Run) -> Run: ...

    def older_than(self, when: dt.datetime) -> Iterator[Run]:
        """Runs created before `when`, newest first, streamed."""

    def delete(self, run: Run) -> None:
        """The run and its jobs."""

    def save_report(self, run_id: str, job_id: str, report: dict) -> None:
        """A dry job's report (sync.dryrun), replacing the one saved before."""

    def reports(self, run_id: str) -> dict[str, dict]:
        """The reports of a dry run's jobs, by job id."""


class JobQueue(Protocol):
    def send(self, message: JobMessage, delay_seconds: int = 0) -> None: ...


class LeaseStore(Protocol):
    def acquire(self, name: str, owner: str, until: dt.datetime) -> bool:
        """Take or renew the lease `name` for `owner`, unless someone else holds an unexpired one."""

    def release(self, name: str, owner: str) -> None: ...


class JobObserver:
    """Hears what jobs do, for the edges' telemetry; the domain only reports. Does nothing by default."""

    def running(self, run: Run, job: Job) -> AbstractContextManager[None]:
        """Wraps one execution of `job`: an attempt, or a part continued after a time budget."""
        return nullcontext()

    def progress(self, job: Job) -> None:
        """Called after every page of `job` with its counts so far (saved to the job log only now and then)."""

    def ended(self, job: Job) -> None:
        """Called inside `running` when the execution ends: the job is done, failed, or queued again (a
        transient failure, or out of time), with its counts so far. Not called when the job's lease was
        lost, as another worker carries on with it."""


class Delivery:
    """What one delivery of a job message reads once, at the first job it runs, for the jobs it runs next (see
    advance): the catalogue in force (an override saved meanwhile applies from the next delivery on). The kept facts
    about the services' set-up are read by each job (side by side with its other first reads): a job of another
    worker may drop one meanwhile (sync.facts)."""

    def __init__(self, catalogs: CatalogSource):
        self.catalogs = catalogs
        self._catalog: Catalog | None = None

    def catalog(self) -> Catalog:
        if self._catalog is None:
            self._catalog = self.catalogs.current()
        return self._catalog


@dataclass
class RunReport:
    run: Run
    jobs: list[Job]
    failures: list[RecordFailure] = field(default_factory=list)  # records that failed in this run
    # a dry run: what each job would do, by job id (None: not read, as in the job log's list of runs)
    dry_reports: dict[str, dict] | None = None

    def to_dict(self) -> dict:
        total = Counts()
        for job in self.jobs:
            total.add(job.counts)
        return {
            "run": self.run.run_id, **({"company": self.run.company} if self.run.company else {}),
            "kind": self.run.kind.value,
            "trigger": self.run.trigger, "dry_run": self.run.dry,
            **({"dry_run_report": {j.job_id: shown_report(self.dry_reports[j.job_id]) for j in self.jobs
                                   if j.job_id in self.dry_reports}} if self.dry_reports is not None else {}),
            "status": self.run.status.value, "created_at": iso(self.run.created_at),
            "finished_at": iso(self.run.finished_at), "totals": total.as_dict(),
            "jobs": [{**job.to_dict(), "dry_run": self.run.dry} for job in self.jobs],
            "failures": [{"mapping": f.mapping, "direction": f.direction.value, "record": f.record,
                          "field": f.field, "code": f.code, "message": f.message, "count": f.count,
                          "source_id": f.source_id, "target_id": f.target_id} for f in self.failures],
        }


class RunCoordinator:
    """Starts runs, executes their jobs from queue messages, and reports on them."""

    def __init__(self, catalogs: CatalogSource, engine: SyncEngine, runs: RunStore, queue: JobQueue,
                 leases: LeaseStore, schedules: ScheduleStore, clock: Clock, *, lease_seconds: int = 600,
                 max_attempts: int = 5, busy_retry_seconds: int = 30, time_budget_seconds: int = 480,
                 log_retention_days: int = 0, observer: JobObserver | None = None, company: str = ""):
        self.catalogs = catalogs
        self.company = company  # the company whose runs these are (several companies), named in runs and messages
        self.engine = engine
        self.runs = runs
        self.queue = queue
        self.leases = leases
        self.schedules = schedules
        self.clock = clock
        self.lease = dt.timedelta(seconds=lease_seconds)
        self.max_attempts = max_attempts
        self.busy_retry_seconds = busy_retry_seconds
        self.time_budget = dt.timedelta(seconds=time_budget_seconds)
        self.log_retention = dt.timedelta(days=log_retention_days)  # zero: runs are kept for ever
        self.observer = observer or JobObserver()

    def _message(self, run_id: str, job_id: str) -> JobMessage:
        return JobMessage(run_id, job_id, self.company)

    def _once_a_day(self, what: str) -> bool:
        """True at most once a day per `what`, across workers (last time kept in the state store)."""
        state, now = self.engine.state, self.clock.now()
        last = state.cursor(RUNS_STATE, what)
        if last is not None and now - dt.datetime.fromisoformat(last) < dt.timedelta(days=1):
            return False
        state.save_cursor(RUNS_STATE, what, now.isoformat())
        return True

    # -- starting ---------------------------------------------------------------------------------

    def start_run(self, kind: RunKind, trigger: str, mappings: Iterable[str] | None = None,
                  reasons: dict[str, str] | None = None, dry: bool = False, run_id: str | None = None,
                  delay_seconds: int = 0, catalog: Catalog | None = None) -> Run:
        """`run_id`: the run's id, given out before (a targeted run's); `delay_seconds`: its first jobs wait that
        long on the queue; `catalog`: as the caller read it (else read now)."""
        catalog = catalog or self.catalogs.current()  # read once for the plan and the review (or coupling)
        planned = plan(catalog, mappings)
        now = self.clock.now()
        run = Run(run_id or self._new_run_id(), kind, trigger, created_at=now,
                  mappings=tuple(dict.fromkeys(p.mapping for p in planned)), dry=dry, company=self.company)
        jobs = [Job(run.run_id, p.job_id, p.mapping, p.direction, p.depends_on, seq=i,
                    reason=(reasons or {}).get(p.mapping, "")) for i, p in enumerate(planned)]
        if kind is RunKind.COUPLE:
            self._couple(catalog, jobs, mappings is not None, now)
        elif kind is RunKind.FULL:
            self._review(catalog, jobs, now)
        elif kind is RunKind.NOTIFIED:  # a job mapping (sales orders, availability) runs its job as scheduled
            for job in jobs:
                job.mode = JobMode.NOTIFIED if catalog[job.mapping].process is None else JobMode.INCREMENTAL
        self.runs.create(run, jobs)
        log.info("run %s (%s) started with %d jobs", run.run_id, kind.value, len(jobs), extra={"run": run.run_id})
        for mapping in {j.mapping: j for j in jobs if j.status is JobStatus.DONE and not dry}.values():
            self._record_schedule(mapping, run, jobs)  # nothing to synchronise: it counts as a quiet run
        self.advance(run.run_id, delay_seconds=delay_seconds)
        return self.runs.get(run.run_id) or run

    def _new_run_id(self) -> str:
        return f"{self.clock.now():%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"

    def notify(self, notifications: Sequence[Notification], window_seconds: int) -> dict:
        """Records what notifications named (sync.targeted) and starts or joins the targeted runs that take it up.
        A mapping notified while a targeted run of it waits (its jobs not started) joins that run; the others start
        one run together, planned in dependency order, whose first jobs wait `window_seconds` for more to join.
        Writes nothing to the services; returns what it did, by mapping."""
        catalog = self.catalogs.current(max_age=NOTIFY_CATALOG_SECONDS)
        notified = notified_rows(catalog, notifications)
        for (mapping, direction), rows in notified.items():
            if catalog[mapping].process is None:  # a job mapping's job reads its changes as a scheduled one does
                self.engine.state.notify(mapping, direction, rows)
        mappings = list(dict.fromkeys(mapping for mapping, _ in notified))
        run_id = self._new_run_id()
        # a waiting run older than this never started (its start failed): replaced, not joined
        stale = self.clock.now() - dt.timedelta(seconds=window_seconds) - self.lease
        waiting = {mapping: self._waiting_run(mapping, run_id, stale, window_seconds) for mapping in mappings}
        new = [mapping for mapping in mappings if waiting[mapping] == run_id]
        if new:
            try:
                self.start_run(RunKind.NOTIFIED, "webhook", new, run_id=run_id, delay_seconds=window_seconds,
                               catalog=catalog)
            except BaseException:
                # The rows stay recorded, those of notifications that joined meanwhile too; notifications from now
                # on start a run of their own, which takes them all: this one's sender, told of the failure,
                # sends again
                for mapping in new:
                    self.engine.state.release_waiting_run(mapping, run_id)
                raise
        return {mapping: {"run": waiting[mapping], "joined": mapping not in new,
                          "rows": {direction.value: len(rows) for (m, direction), rows in notified.items()
                                   if m == mapping}} for mapping in mappings}

    def _waiting_run(self, mapping: str, run_id: str, stale: dt.datetime, window_seconds: int) -> str:
        """The targeted run a notification of the mapping joins, else `run_id`, now recorded as the one waiting. One
        recorded that has finished (its job blocked before its marker was released) is released, not joined; one
        not created yet is joined (its start is under way; should it fail, the rows stay for the next run)."""
        waiting, since = self.engine.state.join_waiting_run(mapping, run_id, stale)
        if waiting != run_id:
            run = self.runs.get(waiting)
            if run is None and since < self.clock.now() - dt.timedelta(
                    seconds=window_seconds + ORPHAN_MARKER_SECONDS) or (
                    run is not None and run.status is not RunStatus.RUNNING):
                self.engine.state.release_waiting_run(mapping, waiting)
                waiting, _ = self.engine.state.join_waiting_run(mapping, run_id, stale)
        return waiting

    def _couple(self, catalog: Catalog, jobs: list[Job], asked: bool, now: dt.datetime) -> None:
        """Match-based coupling; a job mapping (sales orders, item availability) has no rows to match."""
        for job in jobs:
            job.mode = JobMode.COUPLE
            if catalog[job.mapping].process is not None:
                if asked:
                    raise ConfigurationError(f"Table mapping {job.mapping} is not coupled by matching records: its "
                                             f"job couples what it creates itself.")
                job.status, job.finished_at, job.message = JobStatus.DONE, now, "nothing to couple by matching"

    def _review(self, catalog: Catalog, jobs: list[Job], now: dt.datetime) -> None:
        """Full synchronisation as the review recommends, mapping by mapping."""
        recommendations: dict[str, Recommendation] = {}
        for job in jobs:
            if job.mapping not in recommendations:
                recommendations[job.mapping] = self.engine.recommend(catalog[job.mapping])
            found = recommendations[job.mapping]
            job.recommendation = found.value
            if found is Recommendation.NONE:
                job.status, job.finished_at, job.message = JobStatus.DONE, now, "no records to synchronize now"
            else:
                job.mode = JobMode.COUPLE if found is Recommendation.COUPLE else JobMode.FULL

    def start_scheduled_run(self, trigger: str, dry: bool = False) -> Run | None:
        """What the timer does: re-queue whatever a crash stranded, then start a run of the mappings
        that are due and not busy in another run (None when nothing is due)."""
        self.recover()
        if self.log_retention and self._once_a_day("purged"):
            try:
                self.purge(self.log_retention)
            except SyncError as exc:  # housekeeping must not cost the tick its run
                log.warning("purging the job log failed: %s", exc.message)
        due = due_mappings(self.catalogs.current(), self.schedules.schedules(), self.clock.now(),
                           self.busy_mappings(), self._has_work)
        if not due:
            log.info("no table mapping is due")
            return None
        log.info("due: %s", "; ".join(f"{m} ({why})" for m, why in due.items()))
        return self.start_run(RunKind.SCHEDULED, trigger, list(due), reasons=due, dry=dry)

    def _has_work(self, mapping: str) -> bool:
        """The schedule's look at a held mapping; when the look itself fails, the mapping just runs
        (its job has retries and reports), so one service in trouble does not stop the others."""
        try:
            return self.engine.has_work(mapping)
        except SyncError as exc:
            log.warning("could not tell whether %s has work (%s); running it", mapping, exc.message)
            return True

    def purge(self, keep: dt.timedelta) -> int:
        """The job log's retention: finished runs older than `keep` go, except those a failed record
        still points at (an unresolved error keeps the run that reported it). Returns how many went."""
        if keep <= dt.timedelta(0):
            return 0  # a retention of zero keeps everything
        referenced = {f.job_id.split("/", 1)[0] for f in self.engine.errors.list_all()}
        purged = 0
        for run in self.runs.older_than(self.clock.now() - keep):
            if run.status is not RunStatus.RUNNING and run.run_id not in referenced:
                self.runs.delete(run)
                purged += 1
        if purged:
            log.info("purged %d runs older than %s", purged, keep)
        return purged

    def busy_mappings(self, runs: int = 50) -> set[str]:
        """Mappings with an unfinished job in one of the recent unfinished runs, targeted runs aside: those come
        and go with notifications and must never keep the scheduled job, the safety net, from running (the
        mapping's lease keeps the two apart)."""
        return {job.mapping for run in self.runs.list_runs(limit=runs, targeted=False)
                if run.status is RunStatus.RUNNING
                for job in self.runs.jobs(run.run_id) if job.status not in TERMINAL}

    # -- executing --------------------------------------------------------------------------------

    def handle(self, message: JobMessage) -> None:
        """Run the job a queue message points at. Safe to call twice with the same message.

        A job that becomes ready when this one finishes is run next in this same delivery, without waiting
        for its message (see advance), while at least half of the time budget is left: the budget counts from
        the delivery's start, so that the delivery as a whole stays within it."""
        job = self.runs.get_job(message.run_id, message.job_id)
        run = self.runs.get(message.run_id)
        if run is None:
            raise MessageError(f"There is no run {message.run_id}: it never existed, or the job log's retention "
                               f"removed it.", field="run")
        if job is None:
            raise MessageError(f"Run {message.run_id} has no job {shown(message.job_id)}.", field="job")
        deadline = self.clock.now() + self.time_budget
        chained, held, delivery = False, None, Delivery(self.catalogs)
        while job is not None:
            job, held = self._take(run, job, deadline, chained, held, delivery)
            chained = True

    def _take(self, run: Run, job: Job, deadline: dt.datetime, chained: bool,
              held: tuple[str, str, dt.datetime] | None = None, delivery: Delivery | None = None) \
            -> tuple[Job | None, tuple[str, str, dt.datetime] | None]:
        """Run `job` if it is due and free; returns the job to run next in this delivery, if any, and the mapping
        lease it may keep. `chained`: the job was made ready by this delivery, whose message for it is only a
        safety net (so none is sent again here). `held`: the lease (name, owner, when taken) of this job's mapping that
        the job before kept for it, renewed instead of released and taken again (unless taken so recently that a
        progress save of this job renews it in time). `delivery`: what the jobs run so far read for it."""
        message = self._message(run.run_id, job.job_id)
        now = self.clock.now()
        owner = held[1] if held else f"{run.run_id}/{job.job_id}/{secrets.token_hex(4)}"  # this delivery
        lease_name = f"mapping:{job.mapping}"
        if job.status in TERMINAL:
            if run.status is RunStatus.RUNNING:  # a closed run has nothing left to queue
                self.advance(run.run_id)
            return None, None
        if job.status is JobStatus.RUNNING and job.lease_until and job.lease_until > now:
            # another worker runs it, or did until it died: look again when its lease runs out, so a
            # job whose worker vanished is taken over instead of staying "running" for ever
            wait = int((job.lease_until - now).total_seconds()) + 5
            self.queue.send(message, delay_seconds=min(wait, int(self.lease.total_seconds()) + 5))
            return None, None
        # a job this delivery made ready was seen with its dependencies done (advance); another is an early duplicate
        # when they are not, and advance() queues it when it is ready
        if job.status is JobStatus.PENDING and not chained and not self._dependencies_done(job):
            return None, None
        fresh = held is not None and now - held[2] < self.lease / PROGRESS_SAVES_PER_LEASE
        if not fresh and not self.leases.acquire(lease_name, owner, now + self.lease):
            if not chained:
                self.queue.send(message, delay_seconds=self.busy_retry_seconds)
            return None, None
        try:
            job = self._claim(job, now)
        except ConcurrencyError:
            # the job moved between our read and our claim (another worker claimed it, or the advance
            # that sent this message marked it queued only now): look again rather than drop the message
            self.leases.release(lease_name, owner)
            if not chained:
                self.queue.send(message)
            return None, None
        except BaseException:  # a transient storage error, say: the lease must not block the mapping until it ends
            self.leases.release(lease_name, owner)
            raise
        kept = None
        try:
            with self.observer.running(run, job):
                ended = self._execute(run, job, lease_name, owner, deadline, delivery or Delivery(self.catalogs))
                if ended is not None:
                    self.observer.ended(ended)
            jobs = self.runs.jobs(run.run_id)  # read once, for the schedule and for what is ready now
            if ended is not None:
                self._record_schedule(ended, run, jobs)
            following = self.advance(run.run_id, jobs, chain=self.clock.now() < deadline - self.time_budget / 2,
                                     run=run)
            # the next job of the same mapping keeps the lease (renewed when it claims, unless taken just now), and
            # nobody else gets in
            if ended is not None and following is not None and following.mapping == job.mapping:
                kept = (lease_name, owner, held[2] if fresh else now)
            return following, kept
        finally:
            if kept is None:
                self.leases.release(lease_name, owner)

    def _claim(self, job: Job, now: dt.datetime) -> Job:
        job.status = JobStatus.RUNNING
        job.attempts += 1
        job.attempts_without_progress += 1
        job.started_at = job.started_at or now
        job.lease_until = now + self.lease
        return self.runs.save_job(job)

    def _execute(self, run: Run, job: Job, lease_name: str, owner: str, deadline: dt.datetime,
                 delivery: Delivery) -> Job | None:
        """Run the job once, until `deadline` at most; returns it as it ended (None: it lost its lease to another
        worker)."""
        saved_at = self.clock.now()  # the claim saved the job and took its lease (or the job before, just now)
        claimed_from = job.checkpoint
        if job.attempts_without_progress > self.max_attempts:
            # the attempts before stopped midway (a worker killed, out of memory) or failed, none saving progress
            if run.kind is RunKind.NOTIFIED:  # notifications from now on start a run of their own
                self.engine.state.release_waiting_run(job.mapping, run.run_id)
            stopped = f"gave up after {self.max_attempts} attempts without progress, the last stopped midway"
            return self._finish(run, job, JobStatus.FAILED, f"{stopped} ({job.message})" if job.message else stopped)

        def progress(p: Progress) -> bool:
            """Saves the job's progress and renews its lease now and then; True when it did (the engine then saves
            what the job moved: its watermark, its cursors)."""
            nonlocal job, saved_at
            now = self.clock.now()
            job.counts = p.counts
            job.checkpoint = p.checkpoint or job.checkpoint
            self.observer.progress(job)
            if p.moved or job.checkpoint and (claimed_from is None or job.checkpoint > claimed_from):
                job.attempts_without_progress = 0  # a next attempt starts further on: it counts from one again
            # Saved now and then, not after every page: the lease is renewed long before it runs out, and
            # a continuation after a crash resumes from an older checkpoint, redoing pages harmlessly.
            if now - saved_at < self.lease / PROGRESS_SAVES_PER_LEASE:
                return False
            saved_at = now
            job.lease_until = now + self.lease
            try:
                job = self.runs.save_job(job)
            except ConcurrencyError:
                raise LeaseLost(f"job {job.job_id} was taken over by another worker") from None
            if not self.leases.acquire(lease_name, owner, now + self.lease):
                raise LeaseLost(f"the lease on {job.mapping} passed to another worker")
            return True

        dry, reports = None, {}
        if run.dry:
            reports = self.runs.reports(run.run_id)
            dry = DryRun(self.engine, carried(reports, [j.job_id for j in self.runs.jobs(run.run_id)
                                                         if j.mapping == job.mapping and j.seq < job.seq]))
        try:
            if run.kind is RunKind.NOTIFIED:  # its notified rows are taken up: notifications from now on start a run
                self.engine.state.release_waiting_run(job.mapping, run.run_id)
            try:
                outcome = (dry.engine if dry else self.engine).run(
                    job.mapping, job.direction, job_id=f"{run.run_id}/{job.job_id}", mode=job.mode,
                    resume_from=job.checkpoint, counts=job.counts, on_progress=progress,
                    deadline=deadline, catalog=delivery.catalog())
            finally:
                if dry is not None:  # what it planned up to a failure, too (the job log tells the failure)
                    self.runs.save_report(run.run_id, job.job_id, merged(reports.get(job.job_id), dry.report()))
        except LeaseLost:
            log.warning("job %s lost its lease; another worker continues it", owner, extra=job.fields())
            return None
        except TransientError as exc:
            return self._retry_later(run, job, exc)
        except SyncError as exc:
            return self._finish(run, job, JobStatus.FAILED, f"{type(exc).__name__}: {exc.message}")
        except Exception as exc:  # a bug must not leave the job running forever
            log.exception("job %s crashed", owner, extra=job.fields())
            return self._finish(run, job, JobStatus.FAILED, f"unexpected error: {exc!r}")
        job.counts = outcome.counts
        job.notes = outcome.notes
        job.checkpoint = outcome.checkpoint or job.checkpoint
        if not outcome.complete:
            # out of time for one invocation: continue from the checkpoint in a fresh one
            job.status = JobStatus.QUEUED
            job.attempts = job.attempts_without_progress = 0
            job.lease_until = None
            job.message = f"continuing after {int(self.time_budget.total_seconds())} s" + (
                f", from {job.checkpoint}" if job.checkpoint else "")  # (a targeted job's rows left tell where)
            job = self.runs.save_job(job)
            self.queue.send(self._message(job.run_id, job.job_id))
            log.info("job %s/%s %s", job.run_id, job.job_id, job.message, extra=job.fields())
            return job
        return self._finish(run, job, JobStatus.DONE, "")

    def _retry_later(self, run: Run, job: Job, exc: TransientError) -> Job:
        """A transient failure: the job goes back on the queue, later each time it fails without progress, until
        it has failed max_attempts times in a row without progress."""
        stalled = job.attempts_without_progress
        if stalled >= self.max_attempts:
            return self._finish(run, job, JobStatus.FAILED, f"gave up after {stalled} attempts without progress: "
                                                       f"{exc.message}")
        delay = int(max(exc.retry_after or 0, RETRY_SECONDS * 2 ** (max(stalled, 1) - 1)))
        job.status = JobStatus.QUEUED
        job.queued_at = self.clock.now() + dt.timedelta(seconds=delay)
        job.message = f"attempt {job.attempts} failed ({exc.message})" + (
            f" after getting to {iso(job.checkpoint)}" if not stalled
            else f"; {stalled} of {self.max_attempts} attempts without progress") + f"; retrying in {delay} s"
        job.lease_until = None
        job = self.runs.save_job(job)
        self.queue.send(self._message(job.run_id, job.job_id), delay_seconds=delay)
        log.warning("job %s/%s %s", job.run_id, job.job_id, job.message, extra=job.fields())
        return job

    def _finish(self, run: Run, job: Job, status: JobStatus, message: str) -> Job:
        job.status = status
        job.message = message
        job.finished_at = self.clock.now()
        job.lease_until = None
        job = self.runs.save_job(job)
        log.log(logging.ERROR if status is JobStatus.FAILED else logging.INFO, "job %s/%s %s %s %s",
                job.run_id, job.job_id, status.value, job.counts.as_dict(), message, extra=job.fields())
        return job

    def _record_schedule(self, finished: Job, run: Run, jobs: list[Job]) -> None:
        """Once every job of the mapping in this run has finished (`jobs`: the run's, as read after `finished`
        was saved), its schedule moves on: held when the run changed nothing (nothing inserted, modified, deleted
        or failed)."""
        if run.kind in (RunKind.COUPLE, RunKind.NOTIFIED) or run.dry:  # (the schedule is the safety net)
            return
        mine = [j for j in jobs if j.mapping == finished.mapping]
        if any(j.status not in TERMINAL for j in mine) or all(j.status is JobStatus.BLOCKED for j in mine):
            return  # still going, or never ran: due again at the next tick
        changed = any(j.status is JobStatus.FAILED or j.counts.inserted + j.counts.modified + j.counts.deleted
                      + j.counts.failed + j.counts.uncoupled > 0 for j in mine)
        # a run that changed something sets the schedule afresh; one that did not keeps the last activity
        previous = None if changed else self.schedules.schedules().get(finished.mapping)
        self.schedules.save_schedule(finished.mapping, after_run(previous, run.created_at, changed))

    def _dependencies_done(self, job: Job) -> bool:
        jobs = {j.job_id: j for j in self.runs.jobs(job.run_id)}
        return all(jobs[d].status is JobStatus.DONE for d in job.depends_on if d in jobs)

    def advance(self, run_id: str, jobs: list[Job] | None = None, chain: bool = False,
                run: Run | None = None, delay_seconds: int = 0) -> Job | None:
        """Queue the jobs whose dependencies are done, block those whose dependencies failed,
        and close the run when every job is finished. Idempotent. `jobs`: the run's jobs as just read.

        `chain`: the caller runs the first job ready now itself, right away, and this returns it. Its message
        is still sent, first as for any job, but to be delivered only after busy_retry_seconds: if the caller
        stops before claiming it, the message runs it; if the caller got to it, it finds the job running or done.
        That job is not saved as queued: the caller's claim saves it running (one write, not two), and until then
        it is pending with its dependencies done, which the message and recover() run as well. `delay_seconds`: the
        messages of the jobs queued now wait that long (a targeted run's window)."""
        changed, chained = True, None
        by_id: dict[str, Job] = {}
        blocked: set[str] = set()  # mappings of jobs blocked now
        while changed:
            changed = False
            by_id = {j.job_id: j for j in (jobs if jobs is not None else self.runs.jobs(run_id))}
            jobs = None  # read again in a next round
            for job in by_id.values():
                if job.status is not JobStatus.PENDING or (chained is not None and job.job_id == chained.job_id):
                    continue
                deps = [by_id[d] for d in job.depends_on if d in by_id]
                broken = [d for d in deps if d.status in (JobStatus.FAILED, JobStatus.BLOCKED)]
                ahead = chain and chained is None
                if broken:
                    job.status = JobStatus.BLOCKED
                    job.message = f"not run because {broken[0].job_id} {broken[0].status.value}"
                    job.finished_at = self.clock.now()
                elif all(d.status is JobStatus.DONE for d in deps):
                    # send first, then mark: a crash in between leaves a duplicate, never a lost job
                    self.queue.send(self._message(run_id, job.job_id), delay_seconds=self.busy_retry_seconds if ahead
                                    else delay_seconds)
                    job.queued_at = self.clock.now()
                    if ahead:
                        chained = job  # claimed by the caller next, from pending
                        continue
                    job.status = JobStatus.QUEUED
                else:
                    continue
                try:
                    self.runs.save_job(job)
                    # a blocked job may block its dependants: look again (a queued one unblocks nothing yet)
                    if job.status is JobStatus.BLOCKED:
                        changed = True
                        blocked.add(job.mapping)
                except ConcurrencyError:
                    changed = True  # someone else moved it; read again
        if blocked:
            run = run or self.runs.get(run_id)
            if run is not None and run.kind is RunKind.NOTIFIED:  # it takes up no more notified rows of them
                for mapping in blocked:
                    self.engine.state.release_waiting_run(mapping, run_id)
        if all(j.status in TERMINAL for j in by_id.values()):
            self._close(run_id, by_id.values(), run)
        return chained

    def recover(self, runs: int = 20) -> int:
        """Put back on the queue what a crash may have stranded in the recent unfinished runs: a job
        queued long ago without a message arriving, a running job whose lease ran out, dependants
        never queued. Safe to call at any time (the timer does); returns how many jobs were re-sent.
        The recent runs are counted apart for targeted runs, which may be many, and the others."""
        now = self.clock.now()
        resent = 0
        for run in self.runs.list_runs(limit=runs, targeted=False) + self.runs.list_runs(limit=runs, targeted=True):
            if run.status is not RunStatus.RUNNING:
                continue
            for job in self.runs.jobs(run.run_id):
                stranded = (job.status is JobStatus.RUNNING and (job.lease_until is None or job.lease_until < now)) or (
                    job.status is JobStatus.QUEUED and job.queued_at is not None and now - job.queued_at > self.lease)
                if stranded:
                    self.queue.send(self._message(run.run_id, job.job_id))
                    job.queued_at = now
                    try:
                        self.runs.save_job(job)
                    except ConcurrencyError:
                        pass
                    resent += 1
            self.advance(run.run_id)
        return resent

    def _close(self, run_id: str, jobs: Iterable[Job], run: Run | None = None) -> None:
        """`run`: as read before (its ETag keeps a concurrent close out), else it is read now."""
        run = run or self.runs.get(run_id)
        if run is None or run.status is not RunStatus.RUNNING:
            return
        ok = all(j.status is JobStatus.DONE for j in jobs)
        run.status = RunStatus.DONE if ok else RunStatus.FAILED
        run.finished_at = self.clock.now()
        try:
            self.runs.save_run(run)
        except ConcurrencyError:
            pass  # closed concurrently by another worker
        log.log(logging.INFO if ok else logging.WARNING, "run %s finished: %s", run_id, run.status.value,
                extra={"run": run_id})
