"""How the CLI writes: results on stdout, errors on stderr.

A result is a table sized to the terminal, or with `--json` one JSON document. An error is one line,
`bcsync: ...`, or with `--json` one JSON object `{"error", "code"?, "field"?}`. While `--wait` works through
a run, a terminal shows its jobs live (`RunView`); output that is piped or JSON gets the final report only.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sys
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator, Sequence

from rich import box
from rich.console import Console, Group
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from sync.engine import Counts
from sync.runs import Job, JobObserver, JobStatus, Run, RunReport

COUNTS = tuple(f.name for f in dataclasses.fields(Counts))
# Piped output is never wrapped: each row stays on one line for grep, cut and the like.
PIPED_WIDTH = 10_000


class Output:
    """Where one command writes, and how (`json`: machine-readable; `live`: a terminal that can show progress)."""

    def __init__(self, json_mode: bool):
        self.json = json_mode
        self.console = terminal()
        self.live = self.console.is_terminal and not json_mode

    def result(self, data, *shown) -> None:
        """`data` as JSON under --json, else the renderables or lines in `shown`."""
        if self.json:
            self.console.file.write(json.dumps(data, indent=2, default=str) + "\n")
        elif self.console.is_terminal:
            for item in shown:
                self.console.print(item, overflow="fold")
        else:  # piped: the same text without the padding that fills a table's last column
            with self.console.capture() as captured:
                for item in shown:
                    self.console.print(item)
            self.console.file.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))
        self.console.file.flush()


def terminal() -> Console:
    """A console on stdout: the terminal's width when it is one, rows never wrapped when piped. Markup is off,
    since names, filters and messages may hold square brackets."""
    width = None if Console().is_terminal else PIPED_WIDTH
    return Console(width=width, markup=False, highlight=False, emoji=False)


def error(message: str, json_mode: bool, *, code: str = "", field: str = "") -> None:
    """One line on stderr."""
    if json_mode:
        line = json.dumps({"error": message, **({"code": code} if code else {}), **({"field": field} if field else {})})
    else:
        line = f"bcsync: {code}: {message}" if code else f"bcsync: {message}"
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def table(console: Console, columns: Sequence[str], rows: Iterable[Sequence[str] | None], *,
          numeric: Iterable[str] = (), whole: Iterable[str] = (), optional: Iterable[str] = ()) -> Table:
    """A table of `rows` (None: a rule between sections) that fits the terminal while every row keeps its columns:
    numeric columns and those in `whole` (ids, times) are never wrapped, the other text columns fold. Should that
    be too wide, the `optional` columns that are zero (or empty) in every row are left out, then columns are one
    space apart instead of two."""
    rows = list(rows)
    numeric, whole, optional = set(numeric), set(whole), set(optional)

    def build(names: list[str], narrow: bool = False) -> Table:
        t = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, header_style="bold", collapse_padding=narrow)
        for name in names:
            if name in numeric:
                t.add_column(name, justify="right", no_wrap=True)
            elif name in whole:
                t.add_column(name, no_wrap=True)
            else:
                t.add_column(name, overflow="fold", min_width=min(len(name), 8))
        kept = [columns.index(name) for name in names]
        for row in rows:
            if row is None:
                t.add_section()
            else:
                t.add_row(*(row[i] for i in kept))
        return t

    def too_wide(t: Table) -> bool:
        unbounded = console.options.update(max_width=PIPED_WIDTH)  # a table's own measure stops at the width
        return Measurement.get(console, unbounded, t).maximum > console.width

    t = build(list(columns))
    if too_wide(t):
        cells = [row for row in rows if row is not None]
        names = [name for i, name in enumerate(columns)
                 if name not in optional or any(row[i] not in ("0", "-", "") for row in cells)]
        t = build(names)
        if too_wide(t):
            t = build(names, narrow=True)
    return t


def when(moment: dt.datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S}" if moment else ""


def seconds(job: Job, now: dt.datetime | None = None) -> str:
    """How long the job ran (so far, while it runs)."""
    if job.started_at is None:
        return ""
    end = job.finished_at or now
    return "" if end is None else f"{max((end - job.started_at).total_seconds(), 0):.1f}"


def count_cells(counts: Counts) -> list[str]:
    return [str(getattr(counts, c)) for c in COUNTS]


def report_table(console: Console, report: RunReport) -> Table:
    total = Counts()
    rows: list[list[str] | None] = []
    for job in report.jobs:
        total.add(job.counts)
        rows.append([job.job_id, job.status.value, *count_cells(job.counts), seconds(job)])
    rows += [None, ["total", "", *count_cells(total), ""]]
    return table(console, ("job", "status", *COUNTS, "seconds"), rows, numeric=(*COUNTS, "seconds"),
                 whole=("status",), optional=COUNTS)


def show_report(out: Output, report: RunReport) -> None:
    """The run's heading, its jobs' counts, then why each job ran, its notes and message, and the failed records."""
    run = report.run
    lines = []
    for job in report.jobs:
        why = ([f"review: {job.recommendation}"] if job.recommendation else []) + \
              ([f"due: {job.reason}"] if job.reason else [])
        lines += [f"  {job.job_id}: {text}" for text in why + ([job.message] if job.message else []) + job.notes]
    if report.failures:
        lines.append(f"Failed records ({len(report.failures)}), retried at the next run:")
        lines += [f"  {f.mapping} {f.direction.value}: {f.message}" for f in report.failures]
    if run.dry:
        lines += dry_run_lines(report)
    whose = f" of company {run.company}" if run.company else ""
    out.result(report.to_dict(), f"Run {run.run_id}{whose} ({run.kind.value}, {run.trigger}): {run.status.value}",
               report_table(out.console, report), *lines)


def dry_run_lines(report: RunReport) -> list[str]:
    """What a dry run's jobs would do: per job, counts by kind, then the records with the fields that would change."""
    lines = ["Dry run: nothing was written."]
    for job_id, found in report.to_dict().get("dry_run_report", {}).items():
        counts = ", ".join(f"{n} {kind}" for kind, n in found["counts"].items() if n) or "nothing to write"
        lines.append(f"{job_id} would: {counts}")
        for record in found["records"]:
            where = record.get("direction") or record.get("table")
            why = f": {record['reason']}" if record.get("reason") else ""
            lines.append(f"  {record['kind']:<8} {where} {record['record'] or record.get('target_id', '')}{why}")
            for name, change in record.get("fields", {}).items():
                lines.append(f"             {name}: {change['old']!r} -> {change['new']!r}")
            lines += [f"             {name} = {value!r}" for name, value in (record.get("values") or {}).items()]
        if found["truncated"]:
            lines.append(f"  (the first {found['listed']} records of each kind are listed; the counts are complete)")
    return lines


def read_written(counts: Counts) -> tuple[int, int]:
    """Rows a job has read (those it inserted, modified, deleted, left unchanged, skipped or failed; a row it only
    coupled is counted as coupled) and rows it wrote to the other side."""
    written = counts.inserted + counts.modified + counts.deleted
    return written + counts.unchanged + counts.skipped + counts.failed, written


class RunView:
    """A run's jobs while they run: status, rows read and written, coupled, failed, seconds. It hears of jobs
    twice: from the job log, polled (counts saved there now and then, by whichever worker runs the job), and
    page by page from the worker in this process (`Watching`), which is what makes the counts live."""

    def __init__(self, console: Console, run: Run, jobs: Iterable[Job]):
        self.console = console
        self.run = run
        self.started = time.monotonic()
        self._lock = threading.Lock()  # the display refreshes from its own thread
        self._jobs: dict[str, Job] = {}
        self.stored(jobs)

    def stored(self, jobs: Iterable[Job]) -> None:
        """The jobs as the job log has them; a job running here keeps the newer counts heard from its pages."""
        with self._lock:
            for job in jobs:
                mine = self._jobs.get(job.job_id)
                if mine is None or job.status is not JobStatus.RUNNING or mine.status is not JobStatus.RUNNING:
                    self._jobs[job.job_id] = job

    def heard(self, job: Job) -> None:
        """The job as the worker in this process has it now (a copy: the worker goes on changing its own)."""
        if job.run_id != self.run.run_id:
            return  # the worker also takes what other runs left on the queue
        with self._lock:
            self._jobs[job.job_id] = dataclasses.replace(job, counts=Counts(**job.counts.as_dict()))

    def __rich__(self) -> Group:
        with self._lock:
            jobs = sorted(self._jobs.values(), key=lambda j: j.seq)
        now = dt.datetime.now(dt.timezone.utc)
        rows = []
        for job in jobs:
            read, written = read_written(job.counts)
            rows.append([job.job_id, job.status.value, str(read), str(written), str(job.counts.coupled),
                         str(job.counts.failed), seconds(job, now)])
        t = table(self.console, ("job", "status", "read", "written", "coupled", "failed", "seconds"), rows,
                  numeric=("read", "written", "coupled", "failed", "seconds"), whole=("status",))
        for row, job in zip(t.rows, jobs):
            row.style = "bold" if job.status is JobStatus.RUNNING else ""
        done = sum(j.status in (JobStatus.DONE, JobStatus.FAILED, JobStatus.BLOCKED) for j in jobs)
        running = ", ".join(j.job_id for j in jobs if j.status is JobStatus.RUNNING) or "waiting for a job"
        elapsed = int(time.monotonic() - self.started)
        heading = Text(f"Run {self.run.run_id} ({self.run.kind.value}): {done} of {len(jobs)} jobs finished, "
                       f"now {running}, {elapsed // 60}:{elapsed % 60:02d} elapsed")
        return Group(heading, t)


class Watching(JobObserver):
    """Passes what the worker in this process does to a `RunView`, and on to the observer it stands in for."""

    def __init__(self, inner: JobObserver, view: RunView, on_start: Callable[[], None]):
        self.inner = inner
        self.view = view
        self.on_start = on_start  # between two jobs: when the view polls the job log for the others

    @contextmanager
    def running(self, run: Run, job: Job) -> Iterator[None]:
        self.on_start()
        self.view.heard(job)
        with self.inner.running(run, job):
            yield

    def progress(self, job: Job) -> None:
        self.inner.progress(job)
        self.view.heard(job)

    def ended(self, job: Job) -> None:
        self.inner.ended(job)
        self.view.heard(job)
