"""Telemetry of a full synchronisation through the real stack, read back from in-memory exporters.

OpenTelemetry's global providers can be installed once per process: this module does it once, with
in-memory processors and readers where Application Insights would have the distro's exporters.
"""

from __future__ import annotations

from collections import Counter
from urllib.parse import urlsplit

import pytest
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from shared.settings import Settings
from shared.telemetry import configure_telemetry
from simulators import sample
from sync.config import MappingOverride
from sync.runs import JobStatus, RunKind, RunStatus


@pytest.fixture(scope="module")
def telemetry():
    spans, logs, metrics = InMemorySpanExporter(), InMemoryLogRecordExporter(), InMemoryMetricReader()
    assert configure_telemetry(Settings(), span_processors=[SimpleSpanProcessor(spans)], metric_readers=[metrics],
                               log_record_processors=[SimpleLogRecordProcessor(logs)]), \
        "OpenTelemetry was configured earlier in this process"
    yield spans, logs, metrics
    spans.shutdown()  # the instrumentation stays for later tests: keep nothing of theirs
    logs.shutdown()


def points(reader, name):
    """(attributes, value) of every point of the metric `name`."""
    return [(dict(p.attributes), p.value) for rm in reader.get_metrics_data().resource_metrics
            for sm in rm.scope_metrics for m in sm.metrics if m.name == name for p in m.data.data_points]


def test_a_full_synchronisation_is_traced_measured_and_logged(env, telemetry):
    spans, logs, metrics = telemetry
    sample.seed(env.dv, env.bc)
    report = env.full_sync()
    assert report.run.status is RunStatus.DONE, report.to_dict()
    finished = spans.get_finished_spans()
    by_id = {s.context.span_id: s for s in finished}

    def job_of(span):
        """The job span a span is under, if any."""
        while span is not None and span.name != "bcsync job":
            span = by_id.get(span.parent.span_id) if span.parent else None
        return span

    [run] = [s for s in finished if s.name == "bcsync run"]
    assert (run.attributes["run"], run.attributes["kind"], run.attributes["trigger"]) == (report.run.run_id, "full", "test")

    executed = [j for j in report.jobs if j.started_at is not None]  # the others had nothing to synchronise
    job_spans = {s.attributes["job"]: s for s in finished if s.name == "bcsync job"}
    assert set(job_spans) == {j.job_id for j in executed}
    for j in executed:
        attributes = job_spans[j.job_id].attributes
        assert (attributes["run"], attributes["mapping"], attributes["direction"], attributes["status"]) == \
            (report.run.run_id, j.mapping, j.direction.value, "done")
        assert {name: attributes[name] for name in j.counts.as_dict()} == j.counts.as_dict()
    assert job_spans["CUSTOMER:to-crm"].attributes["failed"] == 1 and job_spans["CUSTOMER:to-crm"].attributes["inserted"] > 0

    requests = [s for s in finished if s.instrumentation_scope.name == "opentelemetry.instrumentation.requests"]
    servers = {urlsplit(env.stack.dataverse_url).netloc: "Dataverse", urlsplit(env.stack.bc_server_url).netloc: "Business Central"}
    under = Counter((job_of(s).attributes["job"], servers.get(urlsplit(s.attributes["http.url"]).netloc))
                    for s in requests if job_of(s) is not None)
    for job_id in ("SALESPEOPLE:from-crm", "CUSTOMER:to-crm", "CUSTOMER:from-crm"):
        assert under[job_id, "Dataverse"] > 0 and under[job_id, "Business Central"] > 0
    inserts = [s for s in requests if s.attributes["http.method"] == "POST" and job_of(s) is not None]
    assert {job_of(s).attributes["job"] for s in inserts} >= {"CUSTOMER:to-crm", "CUSTOMER:from-crm"}, \
        "inserts made on the write pool's threads stay under their job"
    storage = [s for s in finished if s.instrumentation_scope.name == "azure.core.tracing.ext.opentelemetry_span"
               and s.kind is SpanKind.CLIENT]
    assert {job_of(s).attributes["job"] for s in storage if job_of(s)} == set(job_spans)

    for outcome, counted in (("synced", lambda c: c.inserted + c.modified + c.deleted),
                             ("failed", lambda c: c.failed), ("skipped", lambda c: c.skipped)):
        expected = Counter()
        for j in executed:
            expected[j.mapping, j.direction.value] += counted(j.counts)
        assert {(a["mapping"], a["direction"]): v for a, v in points(metrics, f"bcsync.records.{outcome}")} == expected
    assert {(a["mapping"], a["direction"]): v for a, v in points(metrics, "bcsync.records.failed")}["CUSTOMER", "to-crm"] == 1
    sent = {(a["service"], a["status"]): v for a, v in points(metrics, "bcsync.requests")}
    apis = {"Dataverse": env.services.dataverse.api, "Business Central": env.services.business_central.api}
    for service, api in apis.items():
        assert sum(v for (s, _), v in sent.items() if s == service) == api.requests_sent
        assert sent[service, "200"] > 0
    assert sent["Table Storage", "200"] > 0 and sent["Queue Storage", "201"] > 0

    # a job that fails is an error in the job span and an ERROR log record naming run, job and mapping
    env.services.mapping_config.save("CUSTOMER", MappingOverride(bc_filter="displayName eq"))  # never probed
    failed = env.run(RunKind.SCHEDULED, ["CUSTOMER"])
    assert failed.run.status is RunStatus.FAILED
    [failed_job] = [j for j in failed.jobs if j.status is JobStatus.FAILED]
    [span] = [s for s in spans.get_finished_spans() if s.name == "bcsync job" and s.attributes["run"] == failed.run.run_id
              and s.attributes["job"] == failed_job.job_id]
    assert span.status.status_code is StatusCode.ERROR and span.attributes["status"] == "failed"
    [record] = [r for r in logs.get_finished_logs() if r.log_record.severity_text == "ERROR"]
    assert {k: record.log_record.attributes.get(k) for k in ("run", "job", "mapping", "direction")} == \
        {"run": failed.run.run_id, "job": failed_job.job_id, "mapping": "CUSTOMER", "direction": "to-crm"}
