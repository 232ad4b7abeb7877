"""The webhook benchmark of `make bench`: how long a change takes to reach the other side when the services notify
bcsync, and what each notified change costs.

A fresh local stack (its own process) is seeded with `--rows` customers and as many accounts, coupled by a full
synchronisation, with latency injected on both services and their protection limits on. The app is served by
`bcsync serve` in a process of its own (its HTTP routes and a worker taking the job queue), at a local URL set as
BCSYNC_WEBHOOK_URL, and `bcsync webhooks register` subscribes. The simulators' notification delays are set short
(Business Central's own coalescing window is about 30 s). Then `--changes` changes, half per side, are made at
`--per-second`, each timestamped, while the other side is polled in bulk (the simulators' admin rows routes) until
each has arrived. Results go to the console, the "webhooks" key of benchmarks/results.json and the webhook table of
the README.

    python -m benchmarks.webhooks [--rows 1000] [--changes 200] [--per-second 4] [--latency-ms 50]
                                  [--window 1] [--bc-delay 1] [--dataverse-delay 1] [--timeout 60]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import requests

from simulators.stack import free_port

from .dataset import Dataset
from .report import SERVICES, refresh_webhooks_readme, webhook_result, webhook_table
from .stack import BenchStack

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results.json"
# where each side's change is made, and where it is looked for on the other side (CUSTOMER's Name field mapping)
SIDES = {"Business Central": ("customers", "displayName", "Dataverse", "account", "name"),
         "Dataverse": ("account", "name", "Business Central", "customers", "displayName")}
POLL_SECONDS = 0.2
QUIET_SECONDS = 5.0  # the simulators saw no request for this long: what the changes set off is over


class Served:
    """`bcsync serve` (with its worker) in a process of its own (benchmarks.served), at a free local port."""

    def __init__(self, stack: BenchStack, environ: dict[str, str]):
        self.counts = stack.folder / "served-counts.json"
        self.log = open(stack.folder / "served.log", "wb")
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.served", str(self.counts), "--settings", str(stack.settings_file),
             "serve", "--port", str(port)], cwd=ROOT, env={**os.environ, **environ}, stdout=self.log,
            stderr=subprocess.STDOUT)
        for _ in range(120):
            try:
                requests.get(self.url, timeout=1)
                return
            except requests.ConnectionError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.25)
        self.stop()
        raise SystemExit(f"bcsync serve did not start; see {stack.folder / 'served.log'}")

    def storage_requests(self) -> tuple[int, Counter]:
        """The Table Storage requests the served app has sent so far, in all and by operation, table and partition."""
        self.counts.unlink(missing_ok=True)
        self.process.send_signal(signal.SIGUSR1)
        for _ in range(100):
            if self.counts.exists():
                counts = json.loads(self.counts.read_text())
                return counts["storage_requests"], Counter({tuple(k): n for *k, n in counts["by_purpose"]})
            time.sleep(0.05)
        raise SystemExit("bcsync serve did not tell its Table Storage requests")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


def bcsync(stack: BenchStack, environ: dict[str, str], *args: str) -> dict:
    """A bcsync command against the stack, its --json answer."""
    done = subprocess.run([sys.executable, "-m", "bcsync", "--json", "--settings", str(stack.settings_file), *args],
                          cwd=ROOT, env={**os.environ, **environ}, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"bcsync {' '.join(args)} failed ({done.returncode}): {done.stderr or done.stdout}")
    return json.loads(done.stdout)


def full_sync(stack: BenchStack) -> None:
    done = subprocess.run([sys.executable, "-m", "benchmarks.worker", str(stack.settings_file), "full", "CUSTOMER"],
                          cwd=ROOT, capture_output=True, text=True)
    worker = json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else {}
    if worker.get("status") != "done" or worker.get("failures"):
        raise SystemExit(f"the full synchronisation failed: {worker or done.stderr}")


def quiet(stack: BenchStack, seconds: float, limit: float = 120.0) -> dict:
    """Waits until the simulators have received no request for `seconds` (at most `limit`); their counts then."""
    counts, since, started = stack.request_counts(), time.monotonic(), time.monotonic()
    while time.monotonic() - since < seconds and time.monotonic() - started < limit:
        time.sleep(0.5)
        now = stack.request_counts()
        if now != counts:
            counts, since = now, time.monotonic()
    return counts


def change_and_watch(stack: BenchStack, targets: dict[str, list[str]], changes: int, per_second: float,
                     timeout: float) -> tuple[list[dict], float]:
    """Makes the changes at `per_second`, alternating the sides, and polls the other side until each has arrived
    (or `timeout` seconds after the last change). Each change: its side, and the seconds it took (None: not
    arrived). Also returns the seconds from the first change to the last arrival."""
    planned = []
    for i in range(changes):
        side = SERVICES[i % 2]
        planned.append({"side": side, "row": targets[side][i // 2], "value": f"Webhook change {i:03d}",
                        "due": i / per_second, "made": None, "arrived": None})
    started, waiting = time.monotonic(), []
    while True:
        now = time.monotonic() - started
        for change in planned:
            if change["made"] is None and change["due"] <= now:
                entity, field = SIDES[change["side"]][:2]
                change["made"] = time.monotonic()  # before the write: its commit is no earlier
                stack.admin(change["side"], "update", {"entity": entity, "id": change["row"],
                                                       "values": {field: change["value"]}})
                waiting.append(change)
        for source in {c["side"] for c in waiting}:
            _, _, target, entity, field = SIDES[source]
            seen = {row.get(field) for row in stack.rows(target, entity)}
            arrived_at = time.monotonic()  # the values were there by the time the answer came
            for change in [c for c in waiting if c["side"] == source and c["value"] in seen]:
                change["arrived"] = arrived_at
                waiting.remove(change)
        all_made = all(c["made"] is not None for c in planned)
        if all_made and (not waiting or time.monotonic() - max(c["made"] for c in planned) > timeout):
            break
        time.sleep(POLL_SECONDS)
    last = max((c["arrived"] for c in planned if c["arrived"]), default=time.monotonic())
    return ([{"side": c["side"], "seconds": None if c["arrived"] is None else c["arrived"] - c["made"]}
             for c in planned], last - started)


def bench(rows: int, changes: int, per_second: float, latency_ms: int, window: int, bc_delay: float,
          dataverse_delay: float, timeout: float) -> dict:
    stack = BenchStack()
    served = None
    try:
        print(f"seeding {rows:,} customers and accounts", file=sys.stderr, flush=True)
        data = Dataset(stack, ["CUSTOMER"], rows)
        stack.set_latency(latency_ms)
        print("coupling them by a full synchronisation", file=sys.stderr, flush=True)
        full_sync(stack)
        environ = {"BCSYNC_WEBHOOK_WINDOW_SECONDS": str(window)}
        served = Served(stack, environ)
        environ["BCSYNC_WEBHOOK_URL"] = served.url
        registered = bcsync(stack, environ, "webhooks", "register")
        if not registered["ok"]:
            raise SystemExit(f"registering the webhooks failed: {registered}")
        stack.admin("Business Central", "subscriptions", {"delay": bc_delay})
        stack.admin("Dataverse", "webhooks", {"delay_seconds": dataverse_delay})
        before = quiet(stack, 2.0)
        storage_before, purposes_before = served.storage_requests()
        # each side's changes go to rows of their own (seeded on that side, coupled by the full run), one change a row
        targets = {side: random.sample(data.seeded[(side, SIDES[side][0])], (changes + 1) // 2) for side in SERVICES}
        print(f"{changes} changes, {per_second:g} a second, half on each side", file=sys.stderr, flush=True)
        arrivals, seconds = change_and_watch(stack, targets, changes, per_second, timeout)
        after = quiet(stack, QUIET_SECONDS + window + max(bc_delay, dataverse_delay))
        storage, purposes = served.storage_requests()
        storage -= storage_before
        print("  Table Storage requests of bcsync serve by operation, table and partition:", file=sys.stderr)
        print("\n".join(f"  {n:6} {' '.join(k)}" for k, n in (purposes - purposes_before).most_common()),
              file=sys.stderr, flush=True)
        requests_made = {service: {kind: after[service][kind] - before[service][kind] for kind in after[service]}
                         for service in SERVICES}
        return webhook_result(
            arrivals=arrivals, requests=requests_made, storage_requests=storage, rows=rows, per_second=per_second,
            latency_ms=latency_ms, window_seconds=window, bc_delay_seconds=bc_delay,
            dataverse_delay_seconds=dataverse_delay, timeout_seconds=timeout, wall_seconds=round(seconds, 2),
            generated_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), cpus=os.cpu_count(),
            load_average=round(os.getloadavg()[0], 2))
    finally:
        if served is not None:
            served.stop()
        stack.stop()


def save(result: dict, results_file: Path = RESULTS, readme: Path = ROOT / "README.md") -> None:
    """Into results.json under "webhooks" (the sizes' runs kept), and the README's webhook table."""
    results = json.loads(results_file.read_text()) if results_file.exists() else {}
    results["webhooks"] = result
    results_file.write_text(json.dumps(results, indent=2) + "\n")
    readme.write_text(refresh_webhooks_readme(readme.read_text(), result))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rows", type=int, default=1000, help="customers and accounts per side (default 1,000)")
    p.add_argument("--changes", type=int, default=200, help="changes in all, half per side (default 200)")
    p.add_argument("--per-second", type=float, default=4.0, help="changes made per second (default 4)")
    p.add_argument("--window", type=int, default=1, help="BCSYNC_WEBHOOK_WINDOW_SECONDS (default 1)")
    p.add_argument("--bc-delay", type=float, default=1.0,
                   help="seconds Business Central waits before notifying (default 1; the service waits about 30)")
    p.add_argument("--dataverse-delay", type=float, default=1.0,
                   help="seconds Dataverse's asynchronous service waits before posting (default 1)")
    p.add_argument("--timeout", type=float, default=60.0,
                   help="seconds after the last change that a change may still arrive (default 60)")


def run(args: argparse.Namespace) -> dict:
    result = bench(args.rows, args.changes, args.per_second, args.latency_ms, args.window, args.bc_delay,
                   args.dataverse_delay, args.timeout)
    save(result)
    print(f"\n{webhook_table(result)}\n\nwritten to {RESULTS.relative_to(ROOT)} (webhooks)", flush=True)
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.webhooks")
    add_arguments(p)
    p.add_argument("--latency-ms", type=int, default=50, help="latency injected on both services")
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped"))  # so that the stack and bcsync serve stop too
    result = run(args)
    return 0 if result["not_arrived"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
