"""`make bench`: full and scheduled synchronisations at volume, measured in separate processes.

For each size, a fresh local stack (its own process) is seeded with that many rows per side, split over
the chosen mappings (CUSTOMER: customers and accounts; CONTACT: person contacts of those customers and
accounts; ITEM-PRODUCT: items and products), with latency injected on both services and their
protection limits on. A worker process runs a full synchronisation; then a first scheduled run, which
reads back what the full one wrote; then, after 10 changes per side among the coupled rows, a scheduled
run. Scheduled runs start past the watermark margin, as they would minutes apart. Results go to the console, benchmarks/results.json and the
Performance table of the README. Then, unless --no-webhooks, the webhook benchmark (benchmarks.webhooks, which runs
alone too) measures how long a change takes to reach the other side through the services' notifications.

    python -m benchmarks [--sizes 10000,100000] [--mappings CUSTOMER,CONTACT,ITEM-PRODUCT]
                         [--latency-ms 50] [--changes 10] [--quick] [--profile DIR] [--trace-memory DIR]
                         [--no-webhooks]

--profile and --trace-memory keep, per size and run, the worker's CPU profile (`<size>-<run>.prof`) and the
lines holding most memory near its peak (`<size>-<run>-memory.txt`); the figures of such runs are not
measurements (profiling and tracing slow the worker down).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from shared.settings import Settings

from . import webhooks
from .dataset import Dataset
from .report import full_sync_bound, refresh_readme, run_result, scheduled_bound, table
from .stack import BenchStack

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results.json"
MAPPINGS = ("CUSTOMER", "CONTACT", "ITEM-PRODUCT")
# the runs measured per size: (label, kind of run)
RUNS = (("full", "full"), ("first scheduled", "scheduled"), ("scheduled", "scheduled"))
# mappings the measured ones look values up in; they run too, with a handful of rows
SUPPORT = {"ITEM-PRODUCT": ("CURRENCY", "UNIT OF MEASURE")}

def measure(stack: BenchStack, kind: str, mappings: list[str], extra: list[str] = ()) \
        -> tuple[dict, int, dict[str, float], dict]:
    """Runs one synchronisation in a worker process (`extra`: more of its options): what it printed, its peak RSS
    (kB), the CPU seconds of each process, and the requests the simulators received, by service and kind."""
    requests_before, cpu_before = stack.request_counts(), stack.cpu()
    process = subprocess.Popen([sys.executable, "-m", "benchmarks.worker", str(stack.settings_file), kind,
                                ",".join(mappings), *extra], stdout=subprocess.PIPE, cwd=ROOT)
    try:
        output = process.stdout.read()
        _, status, usage = os.wait4(process.pid, 0)
    except BaseException:
        process.kill()  # interrupted: no worker left running against a stack that is about to stop
        process.wait()
        raise
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise SystemExit(f"the worker failed ({process.returncode}); see its output above")
    cpu_after, requests_after = stack.cpu(), stack.request_counts()
    cpu = {"worker": usage.ru_utime + usage.ru_stime,
           **{name: cpu_after[name] - cpu_before[name] for name in cpu_after}}
    requests = {service: {kind: counts - requests_before[service][kind] for kind, counts in by_kind.items()}
                for service, by_kind in requests_after.items()}
    return json.loads(output.decode().strip().splitlines()[-1]), usage.ru_maxrss, cpu, requests


def bench(size: int, mappings: list[str], latency_ms: int, changes: int, profile: Path | None = None,
          trace_memory: Path | None = None) -> list[dict]:
    stack = BenchStack()
    try:
        print(f"seeding {size:,} rows per side over {', '.join(mappings)}", file=sys.stderr, flush=True)
        data = Dataset(stack, mappings, size)
        stack.set_latency(latency_ms)
        run_mappings = [*dict.fromkeys(s for m in mappings for s in SUPPORT.get(m, ())), *mappings]
        margin_seconds = Settings.load(environ={}, file=str(stack.settings_file)).watermark_margin_seconds
        results = []
        for label, kind in RUNS:
            if kind == "scheduled":
                # rows stamped within the margin of a job's start are read again by the next run; scheduled
                # runs are minutes apart, so the rows the run before wrote are past it
                time.sleep(margin_seconds + 1)
            if label == "scheduled":
                data.change(changes)
            print(f"{label} run of {size:,} rows per side", file=sys.stderr, flush=True)
            stem = f"{size}-{label.replace(' ', '-')}"
            extra = [*(["--profile", str(profile / f"{stem}.prof")] if profile else []),
                     *(["--trace-memory", str(trace_memory / f"{stem}-memory.txt")] if trace_memory else [])]
            worker, peak_kb, cpu, requests = measure(stack, kind, run_mappings, extra)
            print("\n".join(f"  {line}" for line in worker["job_log"]), file=sys.stderr)
            print("  Table Storage requests by operation, table and partition:", file=sys.stderr)
            print("\n".join(f"  {line}" for line in worker["storage_by_purpose"]), file=sys.stderr)
            if worker["status"] != "done" or worker["failures"]:
                print(f"the {label} run ended {worker['status']}: {worker['failures']}", file=sys.stderr)
            bound = (sum(full_sync_bound([data.per_mapping] * len(mappings)).values()) if kind == "full"
                     else scheduled_bound(worker["jobs"]))
            results.append(run_result(size=size, mappings=mappings, run=label, records=worker["records"],
                                      wall_seconds=worker["seconds"], requests=requests, bound=bound,
                                      storage_requests=worker["storage_requests"], peak_rss_kb=peak_kb,
                                      cpu_seconds=cpu, job_seconds=worker["job_seconds"]))
        return results
    finally:
        stack.stop()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks")
    p.add_argument("--sizes", default="10000,100000", help="rows per side, comma separated")
    p.add_argument("--mappings", default=",".join(MAPPINGS), help=f"comma separated, among {', '.join(MAPPINGS)}")
    p.add_argument("--latency-ms", type=int, default=50, help="latency injected on both services")
    p.add_argument("--changes", type=int, default=10, help="rows changed per side before the scheduled run")
    p.add_argument("--quick", action="store_true", help="a smoke run of 1,000 rows per side")
    p.add_argument("--profile", type=Path, metavar="DIR", help="keep the worker's CPU profile of each run here")
    p.add_argument("--trace-memory", type=Path, metavar="DIR",
                   help="keep the largest holders of the worker's memory near its peak, per run, here")
    p.add_argument("--no-webhooks", action="store_true", help="leave out the webhook benchmark (benchmarks.webhooks)")
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped"))  # so that the stack and worker are stopped too
    mappings = [m.strip() for m in args.mappings.split(",") if m.strip()]
    if set(mappings) - set(MAPPINGS) or ("CONTACT" in mappings and "CUSTOMER" not in mappings):
        p.error(f"--mappings takes {', '.join(MAPPINGS)} (CONTACT with CUSTOMER, whose rows are its parents)")
    sizes = [1000] if args.quick else [int(s) for s in args.sizes.split(",") if s]
    for folder in (args.profile, args.trace_memory):
        if folder:
            folder.mkdir(parents=True, exist_ok=True)
    runs = []
    for size in sizes:
        runs += bench(size, mappings, args.latency_ms, args.changes, args.profile, args.trace_memory)
        print(table(runs[-len(RUNS):]), flush=True)
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}  # the webhook benchmark's entry stays
    results = {**previous, "generated_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
               "latency_ms": args.latency_ms, "cpus": os.cpu_count(), "runs": runs}
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\n{table(runs)}\n\nwritten to {RESULTS.relative_to(ROOT)}")
    readme = ROOT / "README.md"
    readme.write_text(refresh_readme(readme.read_text(), results))
    return 0 if args.no_webhooks else webhooks.main(["--latency-ms", str(args.latency_ms)])


if __name__ == "__main__":
    sys.exit(main())
