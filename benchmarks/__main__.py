"""`make bench`: throughput, request counts and memory of full and scheduled runs.

The local stack runs in its own process (so its in-memory data does not count against ours); this
process runs bcsync exactly as the CLI does and measures it. Sizes are customers and accounts per
side; the scheduled run changes 1% of the rows on each side. The sales order benchmark submits
orders of several lines in Sales and has the SALESORDER-ORDER job create them.

    python -m benchmarks [--sizes 1000,4000] [--page-size 500] [--orders 200] [--lines 5]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import requests

from bcsync.worker import LocalWorker
from shared.settings import Settings
from shared.wiring import build_services
from sync.runs import RunKind, RunStatus


class Stack:
    def __init__(self):
        self.folder = Path(tempfile.mkdtemp(prefix="bcsync-bench-"))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "simulators", "serve", "--ephemeral", "--folder", str(self.folder),
             "--settings-file", str(self.folder / "settings.json")],
            stdout=subprocess.DEVNULL, stderr=open(self.folder / "stack.log", "wb"))
        for _ in range(240):
            if (self.folder / "ready").exists():
                break
            time.sleep(0.25)
        else:
            raise SystemExit(f"the stack did not start; see {self.folder / 'stack.log'}")
        self.info = json.loads((self.folder / "stack.json").read_text())
        self.ca = self.info["ca_file"]

    def admin(self, service: str, path: str, body: dict) -> dict:
        base = self.info["dataverse"] if service == "dv" else self.info["business_central"].split("/v2.0/")[0]
        response = requests.post(f"{base}/_sim/{path}", json=body, verify=self.ca, timeout=300)
        response.raise_for_status()
        return response.json()

    def rows(self, service: str, entity: str) -> list[dict]:
        base = self.info["dataverse"] if service == "dv" else self.info["business_central"].split("/v2.0/")[0]
        return requests.get(f"{base}/_sim/rows/{entity}", verify=self.ca, timeout=300).json()["value"]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(20)


def seed(stack: Stack, size: int) -> None:
    for start in range(0, size, 1000):
        n = min(1000, size - start)
        stack.admin("bc", "seed", {"entity": "customers", "rows": [
            {"number": f"B{start + i:06d}", "displayName": f"BC customer {start + i}", "city": "Lyon",
             "phoneNumber": f"+33 4 {start + i:06d}"} for i in range(n)]})
        stack.admin("dv", "seed", {"entity": "account", "rows": [
            {"name": f"Sales account {start + i}", "customertypecode": 3, "address1_city": "Paris"}
            for i in range(n)]})


def measure(services, kind: RunKind, mappings=("CUSTOMER",)) -> dict:
    apis = [services.dataverse.api, services.business_central.api]
    sent_before = sum(a.requests_sent for a in apis)
    storage_before = services.storage.requests_sent
    tracemalloc.start()
    started = time.perf_counter()
    run = services.start_run(kind, trigger="bench", mappings=list(mappings))
    LocalWorker(services, poll_seconds=0.05).run_until(
        lambda: services.report(run.run_id).run.status is not RunStatus.RUNNING)
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    report = services.report(run.run_id)
    assert report.run.status is RunStatus.DONE, report.to_dict()
    totals = report.to_dict()["totals"]
    written = totals["inserted"] + totals["modified"]
    return {"seconds": seconds, "written": written, "per_second": written / seconds if seconds else 0,
            "requests": sum(a.requests_sent for a in apis) - sent_before, "peak_mb": peak / 2 ** 20,
            "storage": services.storage.requests_sent - storage_before,
            "totals": totals}


def bench(size: int, page_size: int) -> list[tuple]:
    stack = Stack()
    try:
        seed(stack, size)
        settings = Settings.load(environ={**json.loads((stack.folder / "settings.json").read_text())["Values"],
                                          "BCSYNC_PAGE_SIZE": str(page_size)})
        services = build_services(settings)
        full = measure(services, RunKind.FULL)
        changed = max(1, size // 100)
        customers = random.sample(stack.rows("bc", "customers"), changed)
        accounts = random.sample([a for a in stack.rows("dv", "account") if a["name"].startswith("Sales")], changed)
        for c in customers:
            stack.admin("bc", "update", {"entity": "customers", "id": c["id"], "values": {"city": "Marseille"}})
        for a in accounts:
            stack.admin("dv", "update", {"entity": "account", "id": a["accountid"], "values": {"telephone1": "+33 1"}})
        scheduled = measure(services, RunKind.SCHEDULED)
        assert scheduled["totals"]["modified"] == 2 * changed, scheduled
        return [(size, "full", full), (size, f"scheduled, {changed}+{changed} changed", scheduled)]
    finally:
        stack.stop()


def bench_orders(count: int, lines: int, page_size: int) -> list[tuple]:
    stack = Stack()
    try:
        stack.admin("bc", "seed", {"entity": "unitsOfMeasure", "rows": [{"code": "PCS", "displayName": "Piece"}]})
        stack.admin("bc", "seed", {"entity": "items", "rows": [
            {"number": f"I{i:03d}", "displayName": f"Item {i}", "baseUnitOfMeasureCode": "PCS", "unitPrice": 10 + i}
            for i in range(lines)]})
        stack.admin("bc", "seed", {"entity": "customers", "rows": [{"number": "C1", "displayName": "Buyer"}]})
        values = {**json.loads((stack.folder / "settings.json").read_text())["Values"],
                  "BCSYNC_PAGE_SIZE": str(page_size), "BCSYNC_AUTO_CREATE_SALES_ORDERS": "true"}
        services = build_services(Settings.load(environ=values))
        measure(services, RunKind.FULL, ("CURRENCY", "UNIT OF MEASURE", "ITEM-PRODUCT", "CUSTOMER"))
        account = next(a["accountid"] for a in stack.rows("dv", "account") if a["name"] == "Buyer")
        products = [p for p in stack.rows("dv", "product")]
        currency = stack.rows("dv", "transactioncurrency")[0]["transactioncurrencyid"]
        orders = stack.admin("dv", "seed", {"entity": "salesorder", "rows": [
            {"name": f"PO {i}", "customerid": account, "transactioncurrencyid": currency} for i in range(count)]})["ids"]
        stack.admin("dv", "seed", {"entity": "salesorderdetail", "rows": [
            {"salesorderid": o, "productid": p["productid"], "uomid": p["defaultuomid"], "quantity": 2,
             "priceperunit": 10, "ispriceoverridden": True, "description": "x" * 150}
            for o in orders for p in products]})
        for o in orders:
            stack.admin("dv", "update", {"entity": "salesorder", "id": o, "values": {"statecode": 1, "statuscode": 3}})
        created = measure(services, RunKind.SCHEDULED, ("SALESORDER-ORDER",))
        assert created["totals"]["inserted"] == count, created
        return [(count, f"sales orders of {len(products)} lines (+ comment lines)", created)]
    finally:
        stack.stop()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks")
    p.add_argument("--sizes", default="1000,4000", help="rows per side, comma separated")
    p.add_argument("--page-size", type=int, default=500)
    p.add_argument("--orders", type=int, default=200, help="sales orders to create (0: none)")
    p.add_argument("--lines", type=int, default=5, help="product lines per sales order")
    args = p.parse_args(argv)
    print("| rows per side | run | seconds | rows written | rows/s | service requests | storage requests "
          "| peak Python memory (MB) |")
    print("|---|---|---|---|---|---|---|---|")
    runs = [lambda size=int(s): bench(size, args.page_size) for s in args.sizes.split(",") if s]
    if args.orders:
        runs.append(lambda: bench_orders(args.orders, args.lines, args.page_size))
    for measured in runs:
        for rows, run, m in measured():
            print(f"| {rows} | {run} | {m['seconds']:.1f} | {m['written']} | {m['per_second']:.0f} | "
                  f"{m['requests']} | {m['storage']} | {m['peak_mb']:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
