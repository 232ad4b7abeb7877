"""Telemetry with OpenTelemetry, at the edges: the domain reports jobs through its JobObserver port and
knows nothing of spans or meters.

- Traces: a "bcsync run" span for every run started, a "bcsync job" span for every execution of a job
  (attributes run, job, mapping, direction, status and the job's counts), and under them a span for
  every request to Dataverse, Business Central and the token endpoint (the requests instrumentation)
  and for every storage call (azure-core's OpenTelemetry tracing).
- Metrics: bcsync.records.synced (inserted + modified + deleted), bcsync.records.failed and
  bcsync.records.skipped by mapping and direction, counted when a job ends; bcsync.requests by
  service and status.
- Logs: Python logging records with their fields (run, job, mapping, direction) as attributes.

Exported to Application Insights by the Azure Monitor distro when APPLICATIONINSIGHTS_CONNECTION_STRING
is set. Global providers can be installed once per process, so `configure_telemetry` does it once;
tests hand it their own in-memory processors and readers instead of a connection string.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from concurrent.futures import Executor, Future
from importlib.metadata import entry_points
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator, Sequence, TypeVar

from azure.core.credentials import TokenCredential
from azure.core.settings import settings as azure_settings
from azure.core.tracing.ext.opentelemetry_span import OpenTelemetrySpan
from opentelemetry import metrics, trace
from opentelemetry._logs import set_logger_provider
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.instrumentation.requests import RequestsInstrumentor
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import StatusCode

from sync.errors import ConfigurationError
from sync.runs import TERMINAL, Job, JobObserver, JobStatus, Run

from .settings import Settings

log = logging.getLogger("bcsync.telemetry")

# Proxies until configure_telemetry installs the providers (and no-ops when it never does).
tracer = trace.get_tracer("bcsync")
meter = metrics.get_meter("bcsync")

_records = {outcome: meter.create_counter(f"bcsync.records.{outcome}", unit="{record}", description=text)
            for outcome, text in (("synced", "Records inserted, modified or deleted by jobs that ended"),
                                  ("failed", "Records that failed in jobs that ended"),
                                  ("skipped", "Records skipped in jobs that ended"))}
_requests = meter.create_counter("bcsync.requests", unit="{request}",
                                 description="HTTP requests to Dataverse, Business Central and storage")

_configured = False
_lock = threading.Lock()

CredentialFactory = Callable[[str | None], TokenCredential]  # from a managed identity's client id (None: system-assigned)


def configure_telemetry(settings: Settings, *, credential_factory: CredentialFactory | None = None,
                        span_processors: Sequence = (), metric_readers: Sequence = (),
                        log_record_processors: Sequence = ()) -> bool:
    """Install OpenTelemetry for this process, at most once; True when it did so now.

    With a connection string the Azure Monitor distro exports traces, metrics and logs (and the given
    processors and readers get them too); without one, only the given processors and readers do
    (tests). `credential_factory` makes the TokenCredential for Entra ID export when
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING asks for it.
    """
    global _configured
    with _lock:
        if _configured:
            return False
        if isinstance(trace.get_tracer_provider(), TracerProvider):
            # the Functions worker configured the distro itself (PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY):
            # its providers stay, as global providers cannot be replaced
            log.warning("OpenTelemetry was configured before bcsync could; leave PYTHON_APPLICATIONINSIGHTS_ENABLE_"
                        "TELEMETRY unset and set PYTHON_ENABLE_OPENTELEMETRY instead")
            return False
        if settings.appinsights_connection:
            _export_to_azure_monitor(settings, credential_factory, span_processors, metric_readers,
                                     log_record_processors)
        elif span_processors or metric_readers or log_record_processors:
            _install_providers(span_processors, metric_readers, log_record_processors)
        else:
            return False
        _instrument()
        _configured = True
        return True


def export_identity(authentication: str | None) -> tuple[bool, str | None]:
    """APPLICATIONINSIGHTS_AUTHENTICATION_STRING as (export with Entra ID?, managed identity client id):
    "Authorization=AAD" is the system-assigned identity, "Authorization=AAD;ClientId=<id>" a user-assigned one."""
    if not authentication:
        return False, None
    parts = {}
    for part in authentication.split(";"):
        key, sep, value = part.partition("=")
        if part.strip() and not sep:
            raise ConfigurationError(f"APPLICATIONINSIGHTS_AUTHENTICATION_STRING: {part!r} is not KEY=VALUE.")
        parts[key.strip().lower()] = value.strip()
    if parts.get("authorization", "").upper() != "AAD":
        raise ConfigurationError("APPLICATIONINSIGHTS_AUTHENTICATION_STRING must say Authorization=AAD "
                                 "(and ClientId=<client id> for a user-assigned managed identity).")
    return True, parts.get("clientid") or None


def _export_to_azure_monitor(settings: Settings, credential_factory: CredentialFactory | None,
                             span_processors: Sequence, metric_readers: Sequence,
                             log_record_processors: Sequence) -> None:
    # imported here: the distro is heavy, and a process without a connection string never needs it
    from azure.monitor.opentelemetry import configure_azure_monitor

    entra, client_id = export_identity(settings.appinsights_authentication)
    if entra and credential_factory is None:
        raise ConfigurationError("APPLICATIONINSIGHTS_AUTHENTICATION_STRING asks for Entra ID, but no managed "
                                 "identity credential is wired for telemetry.")
    # _instrument() does the instrumenting, the same way with or without the distro: switch off the
    # distro's own (it would also instrument urllib and urllib3 underneath requests)
    not_by_distro = {name: {"enabled": False}
                     for name in {"azure_sdk", *(ep.name for ep in entry_points(group="opentelemetry_instrumentor"))}}
    configure_azure_monitor(connection_string=settings.appinsights_connection,
                            credential=credential_factory(client_id) if entra else None,
                            span_processors=list(span_processors), metric_readers=list(metric_readers),
                            log_record_processors=list(log_record_processors),
                            instrumentation_options=not_by_distro)


def _install_providers(span_processors: Sequence, metric_readers: Sequence, log_record_processors: Sequence) -> None:
    resource = Resource.create()
    tracer_provider = TracerProvider(resource=resource)
    for processor in span_processors:
        tracer_provider.add_span_processor(processor)
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=list(metric_readers), resource=resource))
    logger_provider = LoggerProvider(resource=resource)
    for processor in log_record_processors:
        logger_provider.add_log_record_processor(processor)
    set_logger_provider(logger_provider)
    logging.getLogger().addHandler(LoggingHandler(logger_provider=logger_provider))


def _instrument() -> None:
    RequestsInstrumentor().instrument()                    # Dataverse, Business Central, tokens
    azure_settings.tracing_implementation = OpenTelemetrySpan  # storage; it keeps requests' spans out of its own


def set_log_levels(verbosity: int = 0) -> None:
    """bcsync's own logs from INFO (DEBUG when verbosity > 1); the Azure SDK's and urllib3's request-level
    logging only from WARNING, unless verbosity > 1."""
    logging.getLogger("bcsync").setLevel(logging.DEBUG if verbosity > 1 else logging.INFO)
    for name in ("azure", "urllib3"):
        logging.getLogger(name).setLevel(logging.NOTSET if verbosity > 1 else logging.WARNING)


# -- runs, jobs and requests ----------------------------------------------------------------------

def run_started(start: Callable[[], Run | None]) -> Run | None:
    """Calls `start` in a "bcsync run" span named after the run it started (None: nothing was due)."""
    with tracer.start_as_current_span("bcsync run") as span:
        run = start()
        if run is not None:
            span.set_attributes({"run": run.run_id, "kind": run.kind.value, "trigger": run.trigger,
                                 "mappings": list(run.mappings), **({"company": run.company} if run.company else {})})
        return run


class JobTelemetry(JobObserver):
    """A span per execution of a job; the records counters when a job ends."""

    @contextmanager
    def running(self, run: Run, job: Job) -> Iterator[None]:
        with tracer.start_as_current_span("bcsync job", attributes={
                **job.fields(), "kind": run.kind.value, "mode": job.mode.value, "attempt": job.attempts,
                **({"company": run.company} if run.company else {})}):
            yield

    def ended(self, job: Job) -> None:
        counts = job.counts.as_dict()
        span = trace.get_current_span()
        span.set_attributes({"status": job.status.value, **counts})
        if job.status is JobStatus.FAILED:
            span.set_status(StatusCode.ERROR, job.message)
        if job.status in TERMINAL:  # once per job: a retried or continued job counts when it ends
            where = {"mapping": job.mapping, "direction": job.direction.value}
            _records["synced"].add(counts["inserted"] + counts["modified"] + counts["deleted"], where)
            _records["failed"].add(counts["failed"], where)
            _records["skipped"].add(counts["skipped"], where)


def count_request(service: str, status: int | None) -> None:
    """One HTTP request to `service` and the status it got (None: no answer)."""
    _requests.add(1, {"service": service, "status": "no answer" if status is None else str(status)})


T = TypeVar("T")
R = TypeVar("R")


def submit_in_context(pool: Executor, fn: Callable[..., R], *args, **kwargs) -> Future[R]:
    """`pool.submit` in a copy of the caller's context, so that the spans the call makes stay under the
    caller's span (a thread pool does not carry the context over by itself)."""
    return pool.submit(contextvars.copy_context().run, fn, *args, **kwargs)


def map_in_context(pool: Executor, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """`pool.map`, each call in a copy of the caller's context (see `submit_in_context`)."""
    futures = [submit_in_context(pool, fn, item) for item in items]
    return [future.result() for future in futures]
