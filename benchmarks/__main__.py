"""`make bench`: full and scheduled synchronisations at volume, measured in separate processes.

For each size, a fresh local stack (its own process) is seeded with that many rows per side, split over
the chosen mappings (CUSTOMER: customers and accounts; CONTACT: person contacts of those customers and
accounts; ITEM-PRODUCT: items and products), with latency injected on both services and their
protection limits on. A worker process runs a full synchronisation; then a first scheduled run, which
reads back what the full one wrote; then, after 10 changes per side among the coupled rows, a scheduled
run. Scheduled runs start past the watermark margin, as they would minutes apart. Results go to the console, benchmarks/results.json and the
Performance table of the README.

    python -m benchmarks [--sizes 10000,100000] [--mappings CUSTOMER,CONTACT,ITEM-PRODUCT]
                         [--latency-ms 50] [--changes 10] [--quick]
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
from pathlib import Path

from shared.settings import Settings

from .report import full_sync_bound, refresh_readme, run_result, scheduled_bound, table
from .stack import BenchStack

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results.json"
MAPPINGS = ("CUSTOMER", "CONTACT", "ITEM-PRODUCT")
# the runs measured per size: (label, kind of run)
RUNS = (("full", "full"), ("first scheduled", "scheduled"), ("scheduled", "scheduled"))
# mappings the measured ones look values up in; they run too, with a handful of rows
SUPPORT = {"ITEM-PRODUCT": ("CURRENCY", "UNIT OF MEASURE")}

FIRST = ("Ada", "Bruno", "Chloé", "Dmitri", "Esther", "Farid", "Greta", "Hiro", "Ines", "Jonas", "Kemal", "Lena")
LAST = ("Achterberg", "Baptiste", "Castellano", "Dubois", "Eriksen", "Fontaine", "Gallo", "Haddad", "Ivanova")
TRADE = ("Trading", "Logistics", "Foods", "Engineering", "Textiles", "Optics", "Marine", "Timber", "Pharma")
CITIES = ("Lyon", "Porto", "Ghent", "Turin", "Bergen", "Kraków", "Seville", "Aarhus", "Graz", "Nantes")
GOODS = ("bolt", "valve", "bracket", "gasket", "hinge", "spring", "washer", "bearing", "sprocket", "flange")


def person(i: int) -> tuple[str, str]:
    return FIRST[i % len(FIRST)], f"{LAST[(i // len(FIRST)) % len(LAST)]}-{i}"


class Dataset:
    """Distinct rows on each side (no name on one side matches one on the other, so nothing is coupled by
    matching: every row is created on the other side), and the ids of the seeded rows per table."""

    def __init__(self, stack: BenchStack, mappings: list[str], size: int):
        self.stack = stack
        self.per_mapping = size // len(mappings)
        self.seeded: dict[tuple[str, str], list[str]] = {}
        if "CUSTOMER" in mappings:
            self.customers()
        if "CONTACT" in mappings:
            self.contacts()
        if "ITEM-PRODUCT" in mappings:
            self.items()

    def add(self, service: str, entity: str, rows: list[dict]) -> list[str]:
        self.seeded[(service, entity)] = ids = self.stack.seed(service, entity, rows)
        return ids

    def customers(self) -> None:
        n = self.per_mapping
        self.add("Business Central", "customers", [
            {"number": f"C{i:06d}", "displayName": f"{LAST[i % len(LAST)]} {TRADE[i % len(TRADE)]} {i}",
             "city": CITIES[i % len(CITIES)], "phoneNumber": f"+33 4 {i:08d}", "email": f"orders{i}@bc.example"}
            for i in range(n)])
        self.add("Dataverse", "account", [
            {"name": f"{TRADE[i % len(TRADE)]} {FIRST[i % len(FIRST)]} Holdings {i}", "customertypecode": 3,
             "address1_city": CITIES[(i + 3) % len(CITIES)], "telephone1": f"+49 30 {i:08d}",
             "emailaddress1": f"buying{i}@sales.example"} for i in range(n)])

    def contacts(self) -> None:
        n = self.per_mapping
        companies = [c["number"] for c in self.stack.rows("Business Central", "contacts") if c["type"] == "Company"]
        accounts = self.seeded[("Dataverse", "account")]
        rows = []
        for i in range(n):
            first, last = person(i)
            rows.append({"type": "Person", "displayName": f"{first} {last}",
                         "companyNumber": companies[i % len(companies)],
                         "email": f"{first.lower()}.{i}@bc.example", "phoneNumber": f"+33 6 {i:08d}"})
        self.add("Business Central", "contacts", rows)
        rows = []
        for i in range(n):
            first, last = person(i + n)
            rows.append({"firstname": first, "lastname": last, "parentcustomerid": accounts[i % len(accounts)],
                         "emailaddress1": f"{first.lower()}.{i}@sales.example", "telephone1": f"+49 171 {i:08d}"})
        self.add("Dataverse", "contact", rows)

    def items(self) -> None:
        n = self.per_mapping
        self.stack.seed("Business Central", "unitsOfMeasure", [{"code": "PCS", "displayName": "Piece"}])
        [group] = self.stack.seed("Dataverse", "uomschedule", [{"name": "NAV PCS", "baseuomname": "PCS"}])
        unit = next(u for u in self.stack.rows("Dataverse", "uom") if u["uomscheduleid"] == group)["uomid"]
        self.add("Business Central", "items", [
            {"number": f"I{i:06d}", "displayName": f"{GOODS[i % len(GOODS)]} M{i % 40} type {i}",
             "baseUnitOfMeasureCode": "PCS", "unitPrice": 1 + i % 500, "unitCost": 0.5 + i % 300}
            for i in range(n)])
        self.add("Dataverse", "product", [
            {"productnumber": f"P{i:06d}", "name": f"{GOODS[(i + 5) % len(GOODS)]} kit {i}", "producttypecode": 1,
             "defaultuomscheduleid": group, "defaultuomid": unit, "statecode": 0, "statuscode": 1}
            for i in range(n)])

    def change(self, count: int) -> None:
        """Change `count` seeded rows per side (all coupled after the full synchronisation), spread over the
        tables."""
        changes = {"customers": {"city": "Marseille"}, "account": {"telephone1": "+33 1 99 99 99 99"},
                   "contacts": {"phoneNumber": "+33 6 99 99 99 99"}, "contact": {"mobilephone": "+49 170 9999"},
                   "items": {"displayName": "renamed item"}, "product": {"name": "renamed product"}}
        for service in ("Business Central", "Dataverse"):
            tables = [(entity, ids) for (s, entity), ids in self.seeded.items() if s == service]
            for i, (entity, ids) in enumerate(tables):
                for row in random.sample(ids, count // len(tables) + (i < count % len(tables))):
                    self.stack.admin(service, "update", {"entity": entity, "id": row, "values": changes[entity]})


def measure(stack: BenchStack, kind: str, mappings: list[str]) -> tuple[dict, int, dict[str, float], dict]:
    """Runs one synchronisation in a worker process: what it printed, its peak RSS (kB), the CPU seconds of
    each process, and the requests the simulators received, by service and kind."""
    requests_before, cpu_before = stack.request_counts(), stack.cpu()
    process = subprocess.Popen([sys.executable, "-m", "benchmarks.worker", str(stack.settings_file), kind,
                                ",".join(mappings)], stdout=subprocess.PIPE, cwd=ROOT)
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


def bench(size: int, mappings: list[str], latency_ms: int, changes: int) -> list[dict]:
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
            worker, peak_kb, cpu, requests = measure(stack, kind, run_mappings)
            print("\n".join(f"  {line}" for line in worker["job_log"]), file=sys.stderr)
            if worker["status"] != "done" or worker["failures"]:
                print(f"the {label} run ended {worker['status']}: {worker['failures']}", file=sys.stderr)
            bound = (sum(full_sync_bound([data.per_mapping] * len(mappings)).values()) if kind == "full"
                     else scheduled_bound(worker["jobs"]))
            results.append(run_result(size=size, mappings=mappings, run=label, records=worker["records"],
                                      wall_seconds=worker["seconds"], requests=requests, bound=bound,
                                      storage_requests=worker["storage_requests"], peak_rss_kb=peak_kb,
                                      cpu_seconds=cpu))
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
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped"))  # so that the stack and worker are stopped too
    mappings = [m.strip() for m in args.mappings.split(",") if m.strip()]
    if set(mappings) - set(MAPPINGS) or ("CONTACT" in mappings and "CUSTOMER" not in mappings):
        p.error(f"--mappings takes {', '.join(MAPPINGS)} (CONTACT with CUSTOMER, whose rows are its parents)")
    sizes = [1000] if args.quick else [int(s) for s in args.sizes.split(",") if s]
    runs = []
    for size in sizes:
        runs += bench(size, mappings, args.latency_ms, args.changes)
        print(table(runs[-len(RUNS):]), flush=True)
    results = {"generated_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
               "latency_ms": args.latency_ms, "cpus": os.cpu_count(), "runs": runs}
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\n{table(runs)}\n\nwritten to {RESULTS.relative_to(ROOT)}")
    readme = ROOT / "README.md"
    readme.write_text(refresh_readme(readme.read_text(), results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
