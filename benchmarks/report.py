"""What `make bench` computes from its measurements: the request-count bound, one result per run, the
printed table and the schema of benchmarks/results.json. Pure functions, so a unit test checks them."""

from __future__ import annotations

import math
from typing import Iterable

from shared import businesscentral, dataverse

SERVICES = ("Dataverse", "Business Central")
KINDS = ("read", "write", "batch")

# The largest page each service serves and the most rows one bulk request of bcsync carries, as the
# adapters use them: Dataverse pages and CreateMultiple / UpdateMultiple chunks, Business Central pages
# and $batch requests.
PAGE_SIZE = {"Dataverse": dataverse.MAX_PAGE_SIZE, "Business Central": businesscentral.MAX_PAGE_SIZE}
BATCH_SIZE = {"Dataverse": dataverse.BULK_CHUNK, "Business Central": businesscentral.BATCH_SIZE}

# What the issue allows a scheduled run with a few changes: this many requests per job (mapping direction).
SCHEDULED_REQUESTS_PER_JOB = 4

RUN_FIELDS = {
    "size": int, "mappings": list, "run": str, "records": int, "wall_seconds": float, "records_per_second": float,
    "requests": dict, "requests_total": int, "requests_per_record": float, "bound": int, "bound_ratio": float,
    "storage_requests": int, "storage_requests_per_record": float, "peak_rss_mb": float, "cpu_seconds": dict,
}
PROCESSES = ("worker", "simulators", "azurite")


def full_sync_bound(rows_per_table: Iterable[int]) -> dict[str, int]:
    """Fewest requests a full synchronisation needs per service: every table read in the largest pages, and
    the other side's rows written in the largest bulk requests (each table's rows per side given)."""
    rows = list(rows_per_table)
    return {service: sum(math.ceil(n / PAGE_SIZE[service]) + math.ceil(n / BATCH_SIZE[service]) for n in rows if n)
            for service in SERVICES}


def scheduled_bound(jobs: int) -> int:
    return SCHEDULED_REQUESTS_PER_JOB * jobs


def run_result(*, size: int, mappings: list[str], run: str, records: int, wall_seconds: float,
               requests: dict[str, dict[str, int]], bound: int, storage_requests: int, peak_rss_kb: int,
               cpu_seconds: dict[str, float], job_seconds: dict[str, float] | None = None) -> dict:
    """One entry of results.json. `requests` holds per service the counts by kind (and "throttled"); `job_seconds`
    the seconds each job's deliveries took, by job id."""
    total = sum(requests[service][kind] for service in SERVICES for kind in KINDS)
    return {
        "size": size, "mappings": mappings, "run": run, "records": records,
        "wall_seconds": round(wall_seconds, 2),
        "records_per_second": round(records / wall_seconds, 1) if wall_seconds else 0.0,
        "requests": requests, "requests_total": total,
        "requests_per_record": round(total / records, 4) if records else float(total),
        "bound": bound, "bound_ratio": round(total / bound, 2) if bound else 0.0,
        "storage_requests": storage_requests,
        "storage_requests_per_record": round(storage_requests / records, 4) if records else float(storage_requests),
        "peak_rss_mb": round(peak_rss_kb / 1024, 1),
        "cpu_seconds": {process: round(cpu_seconds.get(process, 0.0), 2) for process in PROCESSES},
        "job_seconds": job_seconds or {},
    }


def check_results(results: dict) -> list[str]:
    """What is wrong with a results.json document (empty: nothing)."""
    problems = [f"missing {key}" for key in ("generated_at", "latency_ms", "cpus", "runs") if key not in results]
    for i, run in enumerate(results.get("runs", [])):
        for key, kind in RUN_FIELDS.items():
            if not isinstance(run.get(key), kind) and not (kind is float and isinstance(run.get(key), int)):
                problems.append(f"runs[{i}].{key} is not {kind.__name__}")
        for service in SERVICES:
            counts = run.get("requests", {}).get(service, {})
            problems += [f"runs[{i}].requests[{service}] has no {k}" for k in (*KINDS, "throttled") if k not in counts]
        problems += [f"runs[{i}].cpu_seconds has no {p}" for p in PROCESSES if p not in run.get("cpu_seconds", {})]
    return problems


HEADER = ("| rows per side | mappings | run | records | seconds | records/s | Dataverse r/w/b | Business Central r/w/b "
          "| throttled | requests per record | bound | × bound | storage per record | peak RSS MB "
          "| CPU s worker/simulators/Azurite |")


def rate(per_second: float) -> str:
    return f"{per_second:,.0f}" if per_second >= 10 else f"{per_second:.1f}"


def table(runs: list[dict]) -> str:
    lines = [HEADER, "|" + "---|" * HEADER.count(" | ") + "---|"]
    for r in runs:
        per_service = ["/".join(str(r["requests"][s][k]) for k in KINDS) for s in SERVICES]
        throttled = sum(r["requests"][s]["throttled"] for s in SERVICES)
        cpu = "/".join(f"{r['cpu_seconds'][p]:.1f}" for p in PROCESSES)
        # a run that synced nothing shows what it cost in all, not a per-record figure
        api, storage = ((f"{r['requests_per_record']:.3f}", f"{r['storage_requests_per_record']:.3f}") if r["records"]
                        else (f"{r['requests_total']} in all", f"{r['storage_requests']} in all"))
        lines.append(f"| {r['size']:,} | {', '.join(r['mappings'])} | {r['run']} | {r['records']:,} | "
                     f"{r['wall_seconds']:.1f} | {rate(r['records_per_second'])} | "
                     f"{per_service[0]} | {per_service[1]} | "
                     f"{throttled} | {api} | {r['bound']} | {r['bound_ratio']:.1f} | "
                     f"{storage} | {r['peak_rss_mb']:.0f} | {cpu} |")
    return "\n".join(lines)


README_START, README_END = "<!-- bench:start -->", "<!-- bench:end -->"


def refresh_readme(text: str, results: dict) -> str:
    """The README with the table between the bench markers replaced by these results."""
    start, end = text.index(README_START) + len(README_START), text.index(README_END)
    note = (f"\n{table(results['runs'])}\n\nMeasured {results['generated_at'][:10]} on {results['cpus']} cores, "
            f"{results['latency_ms']} ms latency on both services.\n")
    return text[:start] + note + text[end:]
