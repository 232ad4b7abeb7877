"""The benchmark's arithmetic on canned numbers (nothing is timed here): the request-count bound, one run's
result, the printed table, the README refresh and the schema of results.json."""

from __future__ import annotations

import json
import pstats
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from benchmarks import report
from benchmarks.__main__ import RESULTS, ROOT
from benchmarks.worker import PeakMemory, ThreadProfiles

README = ROOT / "README.md"


def canned_run(**changes) -> dict:
    requests = {"Dataverse": {"read": 4, "write": 10, "batch": 0, "throttled": 1},
                "Business Central": {"read": 3, "write": 0, "batch": 100, "throttled": 0}}
    values = dict(size=10000, mappings=["CUSTOMER"], run="full", records=20000, wall_seconds=16.0, requests=requests,
                  bound=112, storage_requests=300, peak_rss_kb=153600,
                  cpu_seconds={"worker": 12.345, "simulators": 30.0, "azurite": 2.5})
    return report.run_result(**{**values, **changes})


def test_the_bound_is_pages_plus_bulk_requests_per_table_and_service():
    # 10,000 rows: Dataverse 2 pages of 5,000 + 20 chunks of 500; Business Central 1 page + 100 batches of 100
    assert report.full_sync_bound([10000]) == {"Dataverse": 22, "Business Central": 101}
    # tables are paged separately, and a part page or chunk is still a request
    assert report.full_sync_bound([3334, 3333, 3333]) == {"Dataverse": 3 * (1 + 7), "Business Central": 3 * (1 + 34)}
    assert report.full_sync_bound([0]) == {"Dataverse": 0, "Business Central": 0}
    assert report.scheduled_bound(6) == 24


def test_a_run_result_derives_rates_ratios_and_units():
    run = canned_run()
    assert run["requests_total"] == 117                      # throttled answers are in the kinds, not added again
    assert run["records_per_second"] == 1250.0
    assert run["requests_per_record"] == pytest.approx(117 / 20000, abs=1e-4)
    assert run["bound_ratio"] == pytest.approx(117 / 112, abs=0.01)
    assert run["storage_requests_per_record"] == 0.015
    assert run["peak_rss_mb"] == 150.0
    assert run["cpu_seconds"] == {"worker": 12.35, "simulators": 30.0, "azurite": 2.5}
    empty = canned_run(records=0, wall_seconds=0.0)          # a scheduled run with nothing to do
    assert empty["records_per_second"] == 0.0 and empty["requests_per_record"] == 117.0
    assert "| 117 in all |" in report.table([empty])


def test_the_table_has_a_row_per_run_with_every_column():
    text = report.table([canned_run(), canned_run(run="scheduled", records=20, bound=24)])
    lines = text.splitlines()
    assert len(lines) == 4 and all(line.count("|") == lines[0].count("|") for line in lines)
    assert "| 10,000 | CUSTOMER | full | 20,000 | 16.0 | 1,250 | 4/10/0 | 3/0/100 | 1 |" in lines[2]
    assert lines[3].endswith("| 150 | 12.3/30.0/2.5 |") or lines[3].endswith("| 150 | 12.4/30.0/2.5 |")


def test_results_are_checked_against_the_schema():
    results = {"generated_at": "2026-12-03T01:00:00+00:00", "latency_ms": 50, "cpus": 2, "runs": [canned_run()]}
    assert report.check_results(json.loads(json.dumps(results))) == []
    broken = json.loads(json.dumps(results))
    del broken["runs"][0]["requests"]["Dataverse"]["batch"]
    broken["runs"][0]["records"] = "many"
    del broken["latency_ms"]
    assert report.check_results(broken) == ["missing latency_ms", "runs[0].records is not int",
                                            "runs[0].requests[Dataverse] has no batch"]


def test_the_committed_results_follow_the_schema_and_are_the_readmes_table():
    results = json.loads(RESULTS.read_text())
    assert report.check_results(results) == []
    assert report.table(results["runs"]) in README.read_text()


def test_the_readme_table_is_replaced_between_its_markers_only():
    results = {"generated_at": "2026-12-03T01:00:00+00:00", "latency_ms": 50, "cpus": 2, "runs": [canned_run()]}
    text = f"# bcsync\n\n## Performance\n{report.README_START}\nold table\n{report.README_END}\n\n## Next\n"
    refreshed = report.refresh_readme(text, results)
    assert "old table" not in refreshed and report.table(results["runs"]) in refreshed
    assert refreshed.startswith("# bcsync\n\n## Performance\n")
    assert refreshed.endswith(f"{report.README_END}\n\n## Next\n")
    assert "Measured 2026-12-03 on 2 cores, 50 ms latency" in refreshed
    assert report.refresh_readme(refreshed, results) == refreshed


def test_the_worker_profile_holds_the_cpu_of_pool_threads_and_the_memory_trace_its_holders(tmp_path):
    def busy_in_a_pool_thread() -> int:
        return sum(i * i for i in range(200_000))

    memory = PeakMemory(every=0.01)
    profiles = ThreadProfiles()
    with ThreadPoolExecutor(max_workers=1) as pool:  # started after the profiler, as the worker's pools are
        pool.submit(busy_in_a_pool_thread).result()
    held = [bytearray(1000) for _ in range(20_000)]  # about 20 MB, held across a sample
    time.sleep(0.1)
    profiles.dump(tmp_path / "run.prof")
    memory.write(tmp_path / "memory.txt")
    del held
    functions = {name for _, _, name in pstats.Stats(str(tmp_path / "run.prof")).stats}
    assert "busy_in_a_pool_thread" in functions
    trace = (tmp_path / "memory.txt").read_text()
    assert trace.startswith("traced peak") and "test_bench.py" in trace


def test_a_job_line_tells_the_wait_after_its_dependencies_and_where_its_time_went():
    import datetime as dt
    from collections import Counter

    from benchmarks.worker import job_line
    from sync.model import Direction
    from sync.runs import Job, JobStatus

    start = dt.datetime(2026, 12, 3, 18, 0, tzinfo=dt.timezone.utc)
    first = Job("r", "CUSTOMER:to-crm", "CUSTOMER", Direction.TO_CRM, (), status=JobStatus.DONE, attempts=1,
                started_at=start + dt.timedelta(seconds=0.5), finished_at=start + dt.timedelta(seconds=2))
    second = Job("r", "CUSTOMER:from-crm", "CUSTOMER", Direction.FROM_CRM, ("CUSTOMER:to-crm",), status=JobStatus.DONE,
                 attempts=1, started_at=start + dt.timedelta(seconds=2.25))
    counts = Counter(handled=1.5, engine=1.2, api=4, storage=20)
    assert job_line(first, [first, second], start, counts).startswith(
        "CUSTOMER:to-crm: done, attempt 1, waited 0.50 s, handled 1.50 s (engine 1.20 s), 4 API requests, "
        "20 storage requests")
    assert "waited 0.25 s" in job_line(second, [first, second], start, Counter())


def arrivals(bc: list, dataverse: list) -> list[dict]:
    return [{"side": "Business Central", "seconds": s} for s in bc] + [{"side": "Dataverse", "seconds": s}
                                                                       for s in dataverse]


def canned_webhooks(**changes) -> dict:
    requests = {"Dataverse": {"read": 6, "write": 0, "batch": 2, "throttled": 0},
                "Business Central": {"read": 5, "write": 1, "batch": 2, "throttled": 0}}
    values = dict(arrivals=arrivals([1.0, 2.0, 3.0, None], [4.0, 1.5, 2.5, 9.0]), requests=requests,
                  storage_requests=100, rows=1000, per_second=4.0, latency_ms=50, window_seconds=1,
                  bc_delay_seconds=1.0, dataverse_delay_seconds=1.0, generated_at="2026-12-04T22:00:00+00:00",
                  cpus=2, load_average=1.23)
    return report.webhook_result(**{**values, **changes})


def test_percentiles_are_nearest_rank():
    values = [float(v) for v in range(100, 0, -1)]         # 1 .. 100, in any order
    assert report.percentile(values, 50) == 50.0 and report.percentile(values, 95) == 95.0
    assert report.percentile(values, 100) == 100.0 and report.percentile(values, 0) == 1.0
    assert report.percentile([3.0, 1.0, 2.0], 50) == 2.0 and report.percentile([7.5], 95) == 7.5
    assert report.percentile([1.0, 2.0], 50) == 1.0       # the smallest value with half at or below it
    with pytest.raises(ValueError):
        report.percentile([], 50)


def test_a_webhook_result_summarises_each_direction_and_counts_what_did_not_arrive():
    result = canned_webhooks()
    assert (result["changes"], result["arrived"], result["not_arrived"]) == (8, 7, 1)
    # the 7 that arrived: 1.0 1.5 2.0 2.5 3.0 4.0 9.0
    assert (result["p50"], result["p95"], result["max"]) == (2.5, 9.0, 9.0)
    assert result["by_direction"]["Business Central -> Sales"] == {
        "changes": 4, "arrived": 3, "not_arrived": 1, "p50": 2.0, "p95": 3.0, "max": 3.0}
    assert result["by_direction"]["Sales -> Business Central"]["p50"] == 2.5
    # requests of every kind (throttled ones are in their kinds) over the changes made
    assert result["requests_per_change"] == {"Dataverse": 1.0, "Business Central": 1.0, "total": 2.0}
    assert result["storage_requests_per_change"] == 12.5
    nothing = report.webhook_result(arrivals=arrivals([None], []), requests=result["requests"], storage_requests=0)
    assert nothing["not_arrived"] == 1 and "p95" not in nothing
    assert "| Business Central -> Sales | 1 | - | - | - | 1 |" in report.webhook_table(nothing)


def test_the_webhook_table_and_its_readme_block():
    result = canned_webhooks()
    lines = report.webhook_table(result).splitlines()
    assert lines[2] == "| Sales -> Business Central | 4 | 2.5 | 9.0 | 9.0 | 0 |"
    assert lines[3] == "| Business Central -> Sales | 4 | 2.0 | 3.0 | 3.0 | 1 |"
    assert lines[4] == "| both | 8 | 2.5 | 9.0 | 9.0 | 1 |"
    assert lines[-1] == "| 8 changes | 6/0/2 (1.00) | 5/1/2 (1.00) | 2.00 | 12.50 |"
    text = (f"# bcsync\n{report.README_START}\nsizes\n{report.README_END}\n"
            f"{report.WEBHOOKS_START}\nold\n{report.WEBHOOKS_END}\n## Next\n")
    refreshed = report.refresh_webhooks_readme(text, result)
    assert "old" not in refreshed and f"{report.README_START}\nsizes\n{report.README_END}" in refreshed
    assert report.webhook_table(result) in refreshed and refreshed.endswith(f"{report.WEBHOOKS_END}\n## Next\n")
    assert "on 2 cores (load average 1.2): 1,000 customers" in refreshed
    assert report.refresh_webhooks_readme(refreshed, result) == refreshed


def test_the_committed_webhook_results_all_arrived_and_are_the_readmes_table():
    result = json.loads(RESULTS.read_text())["webhooks"]
    assert result["not_arrived"] == 0 and result["changes"] == 200
    assert report.refresh_webhooks_readme(README.read_text(), result) == README.read_text()
