"""`make soak`: a full synchronisation at volume while things go wrong, then a check that nothing was lost.

A fresh local stack (benchmarks/stack.py) is seeded through the simulators' admin routes with customers and
accounts, person contacts, items and products (benchmarks/dataset.py) and invoices posted in Business Central
with their lines. Then, while both simulators fail a share of the calls at random (429 with Retry-After, 503,
stalls longer than the client's timeout, the connection cut before or after the request is served), two worker
processes work the jobs off the Azurite queue, every job message is sent twice, and a worker running a job is
killed with SIGKILL at random points, in each direction by turns; a new worker takes its place and the jobs
over once their leases run out. Full runs follow one another until all the kills are done. Then the faults are
turned off and a quiet scheduled run follows, after which both sides are compared with the expected state:
every seeded row once on each side, coupled one to one. The figures go to the console and
benchmarks/soak.json; the exit code is 1 when a record was lost or duplicated or a coupling is not one to one.

    python -m benchmarks.soak [--rows 10000] [--kills 20] [--fault-rate 0.1] [--kill-every 30] [--seed 1]
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from bcsync.worker import LocalWorker
from shared.queue import StorageJobQueue
from shared.settings import Settings
from shared.wiring import Services, build_services
from sync.model import Direction, Side
from sync.runs import JobMessage, RunKind, RunStatus

from .dataset import Dataset
from .stack import BenchStack

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "soak.json"
MAPPINGS = ("CUSTOMER", "CONTACT", "ITEM-PRODUCT")
INVOICES = "POSTEDSALESINV-INV"
RUN_MAPPINGS = ["CURRENCY", "UNIT OF MEASURE", *MAPPINGS, INVOICES]  # with the ones the measured ones look up
LINES_PER_INVOICE = 2
WORKERS = 2
# shorter than production, so that a killed worker's job is taken over within a minute and a stalled call is
# given up soon; pages small enough that progress (which renews the lease) is saved well within it
SETTINGS = {"BCSYNC_HTTP_TIMEOUT": "5", "BCSYNC_JOB_LEASE_SECONDS": "60", "BCSYNC_PAGE_SIZE": "500"}
STALL_SECONDS = 7  # longer than BCSYNC_HTTP_TIMEOUT
# per mapping: the table on each side and the key a row is known by on both (names never match across sides)
TABLES = {
    "CUSTOMER": (("customers", lambda r: r["displayName"]), ("account", lambda r: r["name"])),
    "CONTACT": (("contacts", lambda r: r["displayName"] if r["type"] == "Person" else None),
                ("contact", lambda r: f"{r['firstname']} {r['lastname']}")),
    "ITEM-PRODUCT": (("items", lambda r: r["displayName"]), ("product", lambda r: r["name"])),
    INVOICES: (("salesInvoices", lambda r: r["number"]), ("invoice", lambda r: r["invoicenumber"])),
}


class TwiceDeliveredQueue(StorageJobQueue):
    """Sends every job message meant for now twice, so that each is delivered twice. A re-send a worker defers
    (the job runs elsewhere, or waits before its next attempt) goes once: doubled too, the copies of a message
    would multiply for as long as its job runs."""

    def send(self, message: JobMessage, delay_seconds: int = 0) -> None:
        super().send(message, delay_seconds)
        if not delay_seconds:
            super().send(message)


def soak_services(settings_file: Path) -> Services:
    services = build_services(Settings.load(environ={}, file=settings_file))
    services.queue = TwiceDeliveredQueue(services.storage_account, services.settings.queue_name)
    return services


def work(settings_file: Path) -> None:
    """One worker process: works the queue for ever, saying on stdout which job it runs (for the killer); its log
    (jobs, retries, take-overs) goes to stderr, worker-<n>.log in the stack's folder."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    services = soak_services(settings_file)
    run_job = services.engine.run

    def announced(mapping, direction, **kwargs):
        print(f"start {mapping} {direction.value}", flush=True)
        try:
            return run_job(mapping, direction, **kwargs)
        finally:
            print("end", flush=True)
    services.engine.run = announced
    LocalWorker(services, poll_seconds=0.2).run_until(lambda: False, recover_every=10)


class Workers:
    """The worker processes, what each runs now, and the kills."""

    def __init__(self, settings_file: Path, log_folder: Path, rng: random.Random):
        self.settings_file, self.log_folder, self.rng = settings_file, log_folder, rng
        self.running: dict[subprocess.Popen, tuple[str, str] | None] = {}
        self.kills: list[dict] = []
        self.started = 0
        for _ in range(WORKERS):
            self.start()

    def start(self) -> None:
        self.started += 1
        log = open(self.log_folder / f"worker-{self.started}.log", "wb")
        process = subprocess.Popen([sys.executable, "-m", "benchmarks.soak", "--work", str(self.settings_file)],
                                   stdout=subprocess.PIPE, stderr=log, cwd=ROOT, text=True)
        self.running[process] = None
        threading.Thread(target=self._follow, args=(process,), daemon=True).start()

    def _follow(self, process: subprocess.Popen) -> None:
        for line in process.stdout:
            words = line.split()
            if process in self.running:
                self.running[process] = (" ".join(words[1:-1]), words[-1]) if words[0] == "start" else None

    def kill(self, direction: str) -> bool:
        """SIGKILL a worker in the middle of a job of `direction` and start another; False when none runs one."""
        busy = [p for p, job in list(self.running.items()) if job and job[1] == direction]
        if not busy:
            return False
        victim = self.rng.choice(busy)
        mapping, _ = self.running.pop(victim) or (None, None)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        self.kills.append({"at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "mapping": mapping,
                           "direction": direction})
        self.start()
        return True

    def stop(self) -> None:
        for process in list(self.running):
            process.kill()
            process.wait()
        self.running.clear()


def set_faults(stack: BenchStack, rate: float, seed: int) -> None:
    for i, service in enumerate(("Dataverse", "Business Central")):
        spec = {"rate": rate, "stall_seconds": STALL_SECONDS, "seed": seed + i} if rate else None
        stack.admin(service, "faults", {"random": spec})


def run_to_end(services: Services, kind: RunKind, timeout: float, workers: Workers | None = None,
               kills: int = 0, kill_every: float = 30.0) -> tuple[str, bool]:
    """Starts a run and waits for its end, killing workers on the way while `workers.kills` is short of `kills`.
    Returns the run's id and whether it ended in time."""
    run = services.start_run(kind, trigger="soak", mappings=RUN_MAPPINGS)
    deadline = time.monotonic() + timeout
    rng = workers.rng if workers else random
    next_kill = time.monotonic() + rng.uniform(0.2, 1.8) * kill_every
    turn = len(workers.kills) if workers else 0  # directions by turns
    while services.runs.get(run.run_id).status is RunStatus.RUNNING:
        if time.monotonic() > deadline:
            return run.run_id, False
        if workers and len(workers.kills) < kills and time.monotonic() > next_kill:
            direction = (Direction.TO_CRM, Direction.FROM_CRM)[turn % 2].value
            if workers.kill(direction):
                print(f"  kill {len(workers.kills)}: {workers.kills[-1]['mapping']} {direction}", file=sys.stderr,
                      flush=True)
                turn += 1
                next_kill = time.monotonic() + rng.uniform(0.2, 1.8) * kill_every
            elif time.monotonic() > next_kill + kill_every:
                turn += 1  # no job that way for a while: the other direction's turn
        time.sleep(0.5)
    return run.run_id, True


def job_log(services: Services, run_id: str) -> dict:
    report = services.report(run_id)
    return {"run": run_id, "status": report.run.status.value,
            "jobs": [f"{j.job_id}: {j.status.value}, attempt {j.attempts} {j.message}".rstrip() for j in report.jobs]}


def rows_by_key(stack: BenchStack, service: str, table: str, key) -> dict[str, list[dict]]:
    found = collections.defaultdict(list)
    for row in stack.rows(service, table):
        name = key(row)
        if name is not None:
            found[name].append(row)
    return found


def seeded_keys(stack: BenchStack, seeded: dict[tuple[str, str], list[str]], tables) -> set[str]:
    """The keys of a mapping's seeded rows, on either side: what both sides must hold once each."""
    keys = set()
    for service, (table_name, key) in zip(("Business Central", "Dataverse"), tables):
        ids = set(seeded.get((service, table_name), ()))
        id_field = "id" if service == "Business Central" else f"{table_name}id"
        keys |= {name for name, rows in rows_by_key(stack, service, table_name, key).items()
                 if any(r[id_field] in ids for r in rows)}
    return keys


def compare(stack: BenchStack, services: Services, expected: dict[str, set[str]]) -> dict:
    """Per mapping: expected rows missing on a side (lost), rows beyond one per expected key (duplicated), and
    expected pairs of rows not coupled to each other from both sides (couplings not one to one)."""
    found = {}
    for mapping, ((bc_table, bc_key), (crm_table, crm_key)) in TABLES.items():
        bc = rows_by_key(stack, "Business Central", bc_table, bc_key)
        crm = rows_by_key(stack, "Dataverse", crm_table, crm_key)
        keys = expected[mapping]
        lost = sum(not side.get(k) for k in keys for side in (bc, crm))
        duplicated = sum(max(0, len(side.get(k, [])) - 1) for k in keys for side in (bc, crm))
        couplings = services.couplings.list(mapping)
        to_crm = {c.bc_id: c.crm_id for c in couplings}
        back = services.couplings.get_many(mapping, Side.CRM, list(to_crm.values()))
        not_one_to_one = sum(
            1 for k in keys if bc.get(k) and crm.get(k) and (
                to_crm.get(bc[k][0]["id"]) != crm[k][0][f"{crm_table}id"]
                or getattr(back.get(crm[k][0][f"{crm_table}id"]), "bc_id", None) != bc[k][0]["id"]))
        found[mapping] = {"expected": len(keys), "lost": lost, "duplicated": duplicated,
                          "couplings_not_one_to_one": not_one_to_one}
    # the lines of each invoice: as many in Sales as were posted
    lines = collections.Counter(d["invoiceid"] for d in stack.rows("Dataverse", "invoicedetail"))
    written = {r["invoicenumber"]: r["invoiceid"] for r in stack.rows("Dataverse", "invoice")}
    counted = [lines[written[n]] for n in expected[INVOICES] if n in written]
    found[INVOICES]["lost"] += sum(max(0, LINES_PER_INVOICE - c) for c in counted)
    found[INVOICES]["duplicated"] += sum(max(0, c - LINES_PER_INVOICE) for c in counted)
    return found


def table(results: dict) -> str:
    head = f"{'mapping':<20} {'expected':>9} {'lost':>5} {'duplicated':>11} {'not 1:1':>8}"
    rows = [f"{m:<20} {r['expected']:>9,} {r['lost']:>5} {r['duplicated']:>11} {r['couplings_not_one_to_one']:>8}"
            for m, r in results["mappings"].items()]
    t = results["totals"]
    summary = (f"records lost {t['lost']}, duplicated {t['duplicated']}, couplings not one to one "
               f"{t['couplings_not_one_to_one']}, in the error log {t['error_log']}, full runs failed "
               f"{t['full_runs_failed']}, runs stuck {t['runs_stuck']}, wall time {t['wall_seconds']:,.0f} s")
    return "\n".join([head, *rows, summary])


def soak(rows: int, kills: int, fault_rate: float, kill_every: float, seed: int) -> dict:
    rng = random.Random(seed)
    started = time.perf_counter()
    stack = BenchStack()
    workers = None
    try:
        settings = json.loads(stack.settings_file.read_text())
        settings["Values"].update(SETTINGS)
        stack.settings_file.write_text(json.dumps(settings, indent=2))
        # a quarter of the rows are invoices with their lines, the rest split over the mappings and sides
        invoice_count = rows // (4 * (1 + LINES_PER_INVOICE))
        per_side = (rows - invoice_count * (1 + LINES_PER_INVOICE)) // 2
        print(f"seeding {per_side:,} rows per side over {', '.join(MAPPINGS)} and {invoice_count:,} posted invoices "
              f"with {LINES_PER_INVOICE} lines each", file=sys.stderr, flush=True)
        data = Dataset(stack, list(MAPPINGS), per_side)
        posted = data.posted_invoices(invoice_count, LINES_PER_INVOICE)
        data.seeded[("Business Central", "salesInvoices")] = posted
        expected = {mapping: seeded_keys(stack, data.seeded, tables) for mapping, tables in TABLES.items()}
        services = soak_services(stack.settings_file)
        workers = Workers(stack.settings_file, stack.folder, rng)
        set_faults(stack, fault_rate, seed)
        stuck, full_runs = 0, []
        print(f"full runs with {fault_rate:.0%} of calls faulted until {kills} workers are killed",
              file=sys.stderr, flush=True)
        while True:
            run_id, ended = run_to_end(services, RunKind.FULL, timeout=3 * 3600, workers=workers, kills=kills,
                                       kill_every=kill_every)
            stuck += not ended
            full_runs.append(job_log(services, run_id))
            print(f"  run {run_id}: {full_runs[-1]['status']}", file=sys.stderr, flush=True)
            if len(workers.kills) >= kills or not ended:
                break
        injected = {service: stack.admin(service, "faulted") for service in ("Dataverse", "Business Central")}
        calls = stack.request_counts()
        set_faults(stack, 0, seed)
        print("faults off: a quiet scheduled run", file=sys.stderr, flush=True)
        quiet_id, ended = run_to_end(services, RunKind.SCHEDULED, timeout=3600)
        stuck += not ended
        mappings = compare(stack, services, expected)
        totals = {k: sum(m[k] for m in mappings.values()) for k in ("lost", "duplicated", "couplings_not_one_to_one")}
        totals.update(error_log=len(services.errors.list_all()), full_runs_failed=sum(
            r["status"] == "failed" for r in full_runs), runs_stuck=stuck + sum(
            r.status is RunStatus.RUNNING for r in services.runs.list_runs(limit=50) if r.run_id != quiet_id),
                      wall_seconds=round(time.perf_counter() - started, 1))
        return {"generated_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "rows": rows,
                "rows_per_side": per_side, "posted_invoices": invoice_count, "lines_per_invoice": LINES_PER_INVOICE,
                "fault_rate": fault_rate, "calls_under_faults": calls, "faults_injected": injected,
                "full_runs": full_runs, "workers": WORKERS,
                "kills": workers.kills, "quiet_run": job_log(services, quiet_id),
                "cpus": os.cpu_count(), "load_average": os.getloadavg(), "settings": SETTINGS,
                "mappings": mappings, "totals": totals}
    finally:
        if workers:
            workers.stop()
        stack.stop()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.soak")
    p.add_argument("--rows", type=int, default=10000, help="rows seeded in all, both sides, invoice lines included")
    p.add_argument("--kills", type=int, default=20, help="workers killed (SIGKILL) in the middle of a job")
    p.add_argument("--fault-rate", type=float, default=0.1, help="share of the calls to each service that fail")
    p.add_argument("--kill-every", type=float, default=30.0, help="mean seconds between kills")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--work", metavar="SETTINGS_FILE", help=argparse.SUPPRESS)  # a worker process of the soak
    args = p.parse_args(argv)
    if args.work:
        work(Path(args.work))
        return 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped"))  # so that the stack and workers are stopped too
    results = soak(args.rows, args.kills, args.fault_rate, args.kill_every, args.seed)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\n{table(results)}\n\nwritten to {RESULTS.relative_to(ROOT)}")
    t = results["totals"]
    return 1 if t["lost"] or t["duplicated"] or t["couplings_not_one_to_one"] else 0


if __name__ == "__main__":
    sys.exit(main())
