"""One measured run in a process of its own, so that its peak memory and CPU time are bcsync's alone:
`python -m benchmarks.worker SETTINGS_FILE full|scheduled MAPPING,...` starts the run, works its jobs off
the queue as the Functions host would, and prints one JSON line with what only this process knows."""

from __future__ import annotations

import contextvars
import json
import sys
import threading
import time
from collections import Counter

from bcsync.worker import LocalWorker
from shared.settings import Settings
from shared.wiring import build_services
from sync.runs import RunKind, RunStatus

CONCURRENCY = 4  # messages handled at once, as host.json's queues.batchSize lets the Functions host


def main(argv: list[str]) -> int:
    settings_file, kind, mappings = argv
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

    # API requests per job: jobs run side by side, so each request is counted for the job whose context sent it
    per_job: dict[str, int] = {}
    current, lock, run_job = contextvars.ContextVar("job", default=""), threading.Lock(), services.engine.run
    limits = {id(api.limit): api.limit for api in (services.dataverse.api, services.business_central.api)}
    for limit in limits.values():
        def acquire(admit=limit.acquire):
            admit()
            with lock:
                per_job[current.get()] = per_job.get(current.get(), 0) + 1
        limit.acquire = acquire

    def counted(mapping, direction, **kwargs):
        current.set(f"{mapping}:{direction.value}")
        return run_job(mapping, direction, **kwargs)
    services.engine.run = counted

    started = time.perf_counter()
    run = services.start_run(RunKind(kind), trigger="bench", mappings=mappings.split(","))
    LocalWorker(services, poll_seconds=0.05, concurrency=CONCURRENCY).run_until(over)
    seconds = time.perf_counter() - started
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
        "job_log": [f"{j.job_id}: {j.status.value}, attempt {j.attempts}, {d['seconds']} s, "
                    f"{per_job.get(j.job_id, 0)} API requests, {d['mode']} {j.message}"
                    for j, d in ((j, j.to_dict()) for j in report.jobs)],
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
