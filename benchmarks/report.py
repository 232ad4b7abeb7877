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
    note = (f"\n{table(results['runs'])}\n\nMeasured {results['generated_at'][:10]} on {results['cpus']} cores, "
            f"{results['latency_ms']} ms latency on both services.\n")
    return _between(text, README_START, README_END, note)


# -- the webhook benchmark (benchmarks.webhooks) ---------------------------------------------------------------

DIRECTIONS = {"Business Central": "Business Central -> Sales", "Dataverse": "Sales -> Business Central"}


def percentile(values: Iterable[float], q: float) -> float:
    """The nearest-rank percentile: the smallest value that at least q % of the values are at or below."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    return ordered[max(math.ceil(q / 100 * len(ordered)), 1) - 1]


def latency_summary(arrivals: list[dict]) -> dict:
    """p50, p95 and max seconds of the changes that arrived, and how many did not."""
    seconds = [a["seconds"] for a in arrivals if a["seconds"] is not None]
    summary = {"changes": len(arrivals), "arrived": len(seconds), "not_arrived": len(arrivals) - len(seconds)}
    if seconds:
        summary.update({f"p{q}": round(percentile(seconds, q), 2) for q in (50, 95)}, max=round(max(seconds), 2))
    return summary


def webhook_result(*, arrivals: list[dict], requests: dict[str, dict[str, int]], storage_requests: int,
                   **conditions) -> dict:
    """The "webhooks" entry of results.json: `arrivals` holds per change its side and the seconds it took to arrive
    (None: it did not); `requests` the simulators' counts by kind over the changes; `conditions` what was set."""
    changes = len(arrivals)
    total = {service: sum(requests[service][kind] for kind in KINDS) for service in SERVICES}
    overall = latency_summary(arrivals)
    return {
        **conditions, **overall,
        "by_direction": {DIRECTIONS[side]: latency_summary([a for a in arrivals if a["side"] == side])
                         for side in SERVICES if any(a["side"] == side for a in arrivals)},
        "requests": requests,
        "requests_per_change": {**{s: round(total[s] / changes, 2) for s in SERVICES},
                                "total": round(sum(total.values()) / changes, 2)},
        "storage_requests": storage_requests, "storage_requests_per_change": round(storage_requests / changes, 2),
    }


WEBHOOK_HEADER = "| changes | p50 s | p95 s | max s | not arrived |"


def webhook_table(result: dict) -> str:
    def row(name: str, s: dict) -> str:
        times = " | ".join(f"{s[k]:.1f}" if k in s else "-" for k in ("p50", "p95", "max"))
        return f"| {name} | {s['changes']} | {times} | {s['not_arrived']} |"

    lines = ["| direction " + WEBHOOK_HEADER, "|---" * 6 + "|",
             *(row(name, summary) for name, summary in result["by_direction"].items()), row("both", result)]
    per = result["requests_per_change"]
    lines += ["", "| per notified change | Dataverse r/w/b | Business Central r/w/b | API requests | "
              "Table Storage requests |", "|---|---|---|---|---|",
              f"| {result['changes']} changes | "
              + " | ".join("/".join(str(result["requests"][s][k]) for k in KINDS) + f" ({per[s]:.2f})"
                           for s in SERVICES)
              + f" | {per['total']:.2f} | {result['storage_requests_per_change']:.2f} |"]
    return "\n".join(lines)


WEBHOOKS_START, WEBHOOKS_END = "<!-- bench-webhooks:start -->", "<!-- bench-webhooks:end -->"


def refresh_webhooks_readme(text: str, result: dict) -> str:
    """The README with the webhook table between its markers replaced by this result."""
    note = (f"\n{webhook_table(result)}\n\nMeasured {result['generated_at'][:10]} on {result['cpus']} cores (load "
            f"average {result['load_average']:.1f}): {result['rows']:,} customers and accounts per side, "
            f"{result['changes']} changes at {result['per_second']:g} a second, {result['latency_ms']} ms latency, "
            f"Business Central notifying after {result['bc_delay_seconds']:g} s, Dataverse after "
            f"{result['dataverse_delay_seconds']:g} s, BCSYNC_WEBHOOK_WINDOW_SECONDS={result['window_seconds']}.\n")
    return _between(text, WEBHOOKS_START, WEBHOOKS_END, note)


def _between(text: str, start_marker: str, end_marker: str, content: str) -> str:
    start, end = text.index(start_marker) + len(start_marker), text.index(end_marker)
    return text[:start] + content + text[end:]
