"""One measured run in a process of its own, so that its peak memory and CPU time are bcsync's alone:
`python -m benchmarks.worker SETTINGS_FILE full|scheduled MAPPING,... [--profile FILE] [--trace-memory FILE]` starts
the run, works its jobs off the queue as the Functions host would, and prints one JSON line with what only this
process knows.

--profile writes the run's CPU profile (cProfile, for pstats or snakeviz); --trace-memory traces what Python
allocates and writes the lines that held most near the peak. Both slow the run down (tracing memory several
times), so a run with either is not a measurement."""

from __future__ import annotations

import argparse
import contextvars
import datetime as dt
import cProfile
import json
import pstats
import sys
import threading
import time
import tracemalloc
from collections import Counter
from pathlib import Path

from bcsync.worker import LocalWorker
from shared.settings import Settings
from shared.wiring import build_services
from sync.runs import Job, RunKind, RunStatus

CONCURRENCY = 4  # messages handled at once, as host.json's queues.batchSize lets the Functions host


class ThreadProfiles:
    """cProfile of every thread (storage transactions and the next page's read run in pools), in CPU time of
    each thread, so that waiting on locks and sockets does not count."""

    def __init__(self):
        self.profiles = [cProfile.Profile(time.thread_time)]
        threading.setprofile(self._start)  # threads started from now on profile themselves
        self.profiles[0].enable()

    def _start(self, *_) -> None:
        sys.setprofile(None)
        profile = cProfile.Profile(time.thread_time)
        self.profiles.append(profile)
        profile.enable()

    def dump(self, path: Path) -> None:
        threading.setprofile(None)
        for profile in self.profiles:
            profile.disable()
        stats = pstats.Stats(self.profiles[0])
        for profile in self.profiles[1:]:
            stats.add(profile)
        stats.dump_stats(path)


class PeakMemory:
    """Traces Python's allocations and keeps a snapshot taken near their peak: sampled every `every` seconds,
    a new snapshot whenever the memory held has grown by a tenth since the last one."""

    def __init__(self, every: float = 2.0):
        self.every, self.peak, self.snapshot = every, 0, None
        self.stopped = threading.Event()
        tracemalloc.start(8)
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        while not self.stopped.wait(self.every):
            held, _ = tracemalloc.get_traced_memory()
            if held > self.peak * 1.1:
                self.peak, self.snapshot = held, tracemalloc.take_snapshot()

    def write(self, path: Path) -> None:
        self.stopped.set()
        self.thread.join()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        lines = [f"traced peak {peak / 2**20:.1f} MiB; snapshot at {self.peak / 2**20:.1f} MiB, largest holders:"]
        if self.snapshot is not None:
            for stat in self.snapshot.statistics("traceback")[:25]:
                lines.append(f"{stat.size / 2**20:8.1f} MiB {stat.count:>9,} blocks")
                lines += [f"    {frame}" for frame in stat.traceback.format(most_recent_first=True)[:8]]
        path.write_text("\n".join(lines) + "\n")


def job_line(job: Job, jobs: list[Job], run_started: dt.datetime, counts: Counter) -> str:
    """One job of the job log with where its time went: waiting (from the last of its dependencies finishing, or the
    run's start, to its claim), the seconds of its deliveries, of them in the engine, and its requests."""
    ready = max((j.finished_at for j in jobs if j.job_id in job.depends_on and j.finished_at), default=run_started)
    waited = (job.started_at - ready).total_seconds() if ready and job.started_at else None
    return (f"{job.job_id}: {job.status.value}, attempt {job.attempts}, "
            f"waited {'-' if waited is None else f'{waited:.2f}'} s, handled {counts['handled']:.2f} s "
            f"(engine {counts['engine']:.2f} s), {counts['api']:.0f} API requests, "
            f"{counts['storage']:.0f} storage requests, {job.mode.value} {job.message}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.worker")
    parser.add_argument("settings_file")
    parser.add_argument("kind", choices=("full", "scheduled"))
    parser.add_argument("mappings")
    parser.add_argument("--profile", type=Path, help="file for the run's CPU profile")
    parser.add_argument("--trace-memory", type=Path, help="file for the largest holders of memory near the peak")
    args = parser.parse_args(argv)
    settings_file, kind, mappings = args.settings_file, args.kind, args.mappings
    services = build_services(Settings.load(environ={}, file=settings_file))
    watching = 0  # storage requests of this harness asking whether the run is over, not of bcsync's work
    watched: Counter = Counter()  # the same by purpose

    def over() -> bool:
        nonlocal watching
        before, by_purpose = services.storage.requests_sent, Counter(services.storage.requests_by_purpose)
        status = services.runs.get(run.run_id).status
        watching += services.storage.requests_sent - before
        watched.update(services.storage.requests_by_purpose - by_purpose)
        return status is not RunStatus.RUNNING

    # Per job: API and Table Storage requests, counted for the job whose context sent them (jobs run side by side),
    # the seconds its handling took in all and the part of them inside the engine (the rest is the coordinator's
    # bookkeeping: the lease, the claim, finishing, the schedule, queueing the next jobs).
    per_job: dict[str, Counter] = {}
    current, lock = contextvars.ContextVar("job", default=""), threading.Lock()
    run_job, handle, take = services.engine.run, services.coordinator.handle, services.coordinator._take

    def add(what: str, amount: float = 1) -> None:
        with lock:
            per_job.setdefault(current.get(), Counter())[what] += amount

    limits = {id(api.limit): api.limit for api in (services.dataverse.api, services.business_central.api)}
    for limit in limits.values():
        def acquire(admit=limit.acquire):
            admit()
            add("api")
        limit.acquire = acquire
    counter = services.storage._counter
    count_storage = counter.on_request

    def on_request(request):
        count_storage(request)
        add("storage")
    counter.on_request = on_request

    def timed(what: str, call, *args, **kwargs):
        started = time.perf_counter()
        try:
            return call(*args, **kwargs)
        finally:
            add(what, time.perf_counter() - started)

    def handled(message):
        current.set(message.job_id)
        return handle(message)

    def taken(run, job, *args):  # a delivery may run the jobs that become ready after its own (chained)
        current.set(job.job_id)
        return timed("handled", take, run, job, *args)

    services.coordinator.handle, services.coordinator._take = handled, taken
    services.engine.run = lambda *args, **kwargs: timed("engine", run_job, *args, **kwargs)

    memory = PeakMemory() if args.trace_memory else None
    profile = ThreadProfiles() if args.profile else None
    started = time.perf_counter()
    run = services.start_run(RunKind(kind), trigger="bench", mappings=mappings.split(","))
    LocalWorker(services, poll_seconds=0.05, concurrency=CONCURRENCY).run_until(over)
    seconds = time.perf_counter() - started
    if profile:
        profile.dump(args.profile)
    if memory:
        memory.write(args.trace_memory)
    storage_requests = services.storage.requests_sent - watching
    report = services.report(run.run_id)
    totals = report.to_dict()["totals"]
    print(json.dumps({
        "status": report.run.status.value, "seconds": seconds, "jobs": len(report.jobs), "totals": totals,
        "records": totals["inserted"] + totals["modified"] + totals["deleted"],
        "storage_requests": storage_requests,
        "storage_by_purpose": [f"{n:6} {' '.join(k)}"
                               for k, n in (services.storage.requests_by_purpose - watched).most_common()],
        "api_requests": {"Dataverse": services.dataverse.api.requests_sent,
                         "Business Central": services.business_central.api.requests_sent},
        "failures": [f"{f.mapping} {f.record}: {f.message}" for f in report.failures[:5]],
        "job_log": [job_line(j, report.jobs, report.run.created_at, per_job.get(j.job_id, Counter())) for j in report.jobs],
        "job_seconds": {j.job_id: round(per_job.get(j.job_id, Counter())["handled"], 3) for j in report.jobs},
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
