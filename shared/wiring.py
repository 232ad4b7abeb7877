"""Composition root: builds the services from settings, once per process (Functions workers are
reused, so clients, token caches and table clients live at module level)."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import secrets
from dataclasses import dataclass, field, replace
from functools import cached_property

from azure.core.exceptions import ResourceNotFoundError

from sync import availability, config, coupling, failures, orders
from sync.availability import ItemAvailabilityProcess
from sync.check import CheckReport, run_checks
from sync.engine import RecordOutcome, SyncEngine
from sync.errors import ConcurrencyError, ConfigurationError, SyncError, TerminalError, cut, shown
from sync.mappings import Catalog, builtin_mappings
from sync.model import ConnectionSetup, Direction, OwnershipModel, Side
from sync.orders import OrderResult
from sync.ports import Clock, Coupling, RecordFailure, SystemClock
from sync.runs import JobMessage, Run, RunCoordinator, RunKind, RunReport
from sync.schedule import schedule_status

from . import businesscentral, dataverse
from .auth import SignIn
from .check import ServiceProbe
from .http import ApiClient, ConcurrencyLimit, VerifyingSession
from .identity import ManagedIdentity, ManagedIdentityCredential, storage_account
from .memory import keep_memory_compact
from .queue import StorageJobQueue
from .settings import Settings
from .storage import (
    CouplingTable,
    ErrorTable,
    MappingConfigTable,
    RunTable,
    StateTable,
    StorageAccount,
    TableStorage,
)
from .telemetry import JobTelemetry, configure_telemetry, run_started


log = logging.getLogger("bcsync.queue")


class StoredCatalog:
    """The built-in mappings with the overrides in Table Storage, read afresh for every run and job
    (one small query), so a change made through any worker applies to the next job everywhere."""

    def __init__(self, store: MappingConfigTable, unit_groups: bool = False,
                 ownership: OwnershipModel = OwnershipModel.PERSON, two_way_orders: bool = False):
        self.store = store
        self.unit_groups = unit_groups        # BCSYNC_UNIT_MODE
        self.ownership = ownership            # BCSYNC_OWNERSHIP_MODEL
        self.two_way_orders = two_way_orders  # BCSYNC_SALES_ORDER_MODE

    def current(self) -> Catalog:
        return config.build_catalog(builtin_mappings(self.unit_groups, self.ownership, self.two_way_orders),
                                    self.store.load())


# Requests in flight at once per service and user: Business Central serves 5 at a time; Dataverse allows 52
# and recommends its own parallelism per organisation in a response header, which is followed when lower.
BC_CONCURRENCY = 5
DATAVERSE_CONCURRENCY = 52
DATAVERSE_DOP_HINT = "x-ms-dop-hint"

# The connection check's longest wait for an answer or a Retry-After, so that it answers in seconds.
CHECK_TIMEOUT = 10.0

# A scheduled run older than this that never finished is treated as dead and no longer blocks new ones.
MAX_REPORTED_FAILURES = 200
# records one per-record action takes (create, synchronise now); a filter that finds more is refused
MAX_RECORDS_PER_ACTION = 1000


@dataclass
class Services:
    settings: Settings
    clock: Clock
    _identities: dict[str | None, ManagedIdentity] = field(default_factory=dict, init=False, repr=False)

    @cached_property
    def session(self) -> VerifyingSession:
        return VerifyingSession(self.settings.ca_bundle)

    def managed_identity(self, client_id: str | None, setting: str) -> ManagedIdentity:
        """One MSAL managed-identity client per identity, shared by storage, sign-in and telemetry."""
        key = client_id or None
        if key not in self._identities:
            self._identities[key] = ManagedIdentity(key, self.session)
        self._identities[key].settings.add(setting)
        return self._identities[key]

    @cached_property
    def storage_account(self) -> StorageAccount:
        return storage_account(self.settings, self.managed_identity)

    @cached_property
    def storage(self) -> TableStorage:
        return TableStorage(self.storage_account, self.settings.table_prefix)

    @cached_property
    def couplings(self) -> CouplingTable:
        return CouplingTable(self.storage)

    @cached_property
    def errors(self) -> ErrorTable:
        return ErrorTable(self.storage)

    @cached_property
    def state(self) -> StateTable:
        return StateTable(self.storage, self.clock)

    @cached_property
    def runs(self) -> RunTable:
        return RunTable(self.storage)

    @cached_property
    def queue(self) -> StorageJobQueue:
        return StorageJobQueue(self.storage_account, self.settings.queue_name)

    @cached_property
    def mapping_config(self) -> MappingConfigTable:
        return MappingConfigTable(self.storage)

    @cached_property
    def catalogs(self) -> "StoredCatalog":
        return StoredCatalog(self.mapping_config, self.settings.unit_groups, self.ownership,
                             self.settings.two_way_orders)

    @property
    def ownership(self) -> OwnershipModel:
        return OwnershipModel(self.settings.ownership_model.strip().lower())

    @cached_property
    def sign_in(self) -> SignIn:
        return SignIn(self.settings, self.session, self.managed_identity)

    def _api(self, service: str, base_url: str, setting: str, scope: str, parse_error,
             limit: ConcurrencyLimit) -> ApiClient:
        s = self.settings
        return ApiClient(service, base_url, self.sign_in.tokens_for(scope), session=self.session,
                         parse_error=parse_error, limit=limit, timeout=s.http_timeout, max_retries=s.max_retries,
                         max_retry_wait=s.max_retry_wait, setting=setting)

    @cached_property
    def dataverse(self) -> dataverse.DataverseClient:
        self.settings.check_services()
        url = self.settings.dataverse_url.rstrip("/")
        return dataverse.DataverseClient(self._api(
            "Dataverse", url, "BCSYNC_DATAVERSE_URL", f"{url}/.default", dataverse.parse_error,
            ConcurrencyLimit(DATAVERSE_CONCURRENCY, hint_header=DATAVERSE_DOP_HINT)))

    @cached_property
    def business_central(self) -> businesscentral.BusinessCentralClient:
        self.settings.check_services()
        api = self._api("Business Central", self.settings.bc_url, "BCSYNC_BC_URL", self.settings.bc_scope,
                        businesscentral.parse_error, ConcurrencyLimit(BC_CONCURRENCY))
        return businesscentral.BusinessCentralClient(api, self.settings.bc_company_id)

    @cached_property
    def engine(self) -> SyncEngine:
        s = self.settings
        return SyncEngine(self.catalogs,
                          businesscentral.BusinessCentralEndpoint(self.business_central, s.write_concurrency),
                          dataverse.DataverseEndpoint(self.dataverse, s.write_concurrency), self.couplings, self.errors, self.state,
                          self.clock, page_size=s.page_size,
                          watermark_margin=dt.timedelta(seconds=s.watermark_margin_seconds),
                          reconcile_every=dt.timedelta(minutes=s.reconcile_minutes),
                          setup=ConnectionSetup(auto_create_sales_orders=s.auto_create_sales_orders,
                                                two_way_orders=s.two_way_orders,
                                                ownership_model=self.ownership),
                          facts_ttl=dt.timedelta(seconds=s.facts_ttl_seconds))

    @cached_property
    def coordinator(self) -> RunCoordinator:
        return RunCoordinator(self.catalogs, self.engine, self.runs, self.queue, self.state, self.state, self.clock,
                              lease_seconds=self.settings.job_lease_seconds,
                              time_budget_seconds=self.settings.job_time_budget_seconds,
                              log_retention_days=self.settings.log_retention_days, observer=JobTelemetry())

    # -- mappings -------------------------------------------------------------------------------

    def _builtins(self) -> list:
        return builtin_mappings(self.settings.unit_groups, self.ownership, self.settings.two_way_orders)

    def mappings(self) -> list[dict]:
        """Every mapping as configured; one whose stored override no longer validates is shown as built in,
        with the problem and its fix."""
        overrides, problems = self.mapping_config.load_checked()
        catalog, unusable = config.checked_catalog(self._builtins(), overrides)
        problems.update(unusable)
        schedules = self.state.schedules()
        return [{**config.describe(m, None if m.name in problems else overrides.get(m.name)),
                 "schedule": schedule_status(m, schedules.get(m.name)),
                 **({"override_problem": problems[m.name]} if m.name in problems else {})} for m in catalog]

    def set_mapping(self, name: str, changes: dict) -> dict:
        """Change a mapping's settings; validated against the mapping and, for filters, by the service."""
        builtin = {m.name: m for m in self._builtins()}
        if name not in builtin:
            raise ConfigurationError(f"There is no table mapping named {cut(name)}; known: {', '.join(builtin)}.")
        overrides = self.mapping_config.load()
        override = config.parse_changes(overrides.get(name, config.MappingOverride()), changes, builtin[name])
        mapping = config.apply(builtin[name], override)
        config.build_catalog(self._builtins(), {**overrides, name: override})  # the whole catalogue stays valid
        for side, key in ((Side.BC, "bc_filter"), (Side.CRM, "crm_filter")):
            if changes.get(key):
                self._probe_filter(mapping, side)
        if override.is_empty():
            self.mapping_config.delete(name)
        else:
            self.mapping_config.save(name, override)
        return config.describe(mapping, override)

    def reset_mapping(self, name: str) -> dict:
        builtin = {m.name: m for m in self._builtins()}
        if name not in builtin:
            raise ConfigurationError(f"There is no table mapping named {cut(name)}.")
        self.mapping_config.delete(name)
        return config.describe(builtin[name])

    def _probe_filter(self, mapping, side: Side) -> None:
        """Ask the service for one row with the new filter, so a typo is refused now, not at the next run."""
        endpoint = self.engine.endpoint(side)
        table = mapping.table_on(side)
        if table is None:
            raise ConfigurationError(f"{mapping.name} has no Dataverse table to filter.")
        where = mapping.filter_on(side)
        try:
            next(iter(endpoint.read_changed(table, [], since=None, where=where, page_size=1)), None)
        except SyncError as exc:
            name = "Business Central" if side is Side.BC else "Dataverse"
            raise ConfigurationError(f"The {name} filter of {mapping.name} ({shown(where)}) was refused: "
                                     f"{exc.message}") from None

    # -- couplings -----------------------------------------------------------------------------------

    def couple(self, mapping: str, bc_id: str, crm_id: str) -> Coupling:
        return coupling.couple(self.catalogs.current(), mapping, bc_id, crm_id, bc=self.engine.bc,
                               crm=self.engine.crm, couplings=self.couplings, state=self.state)

    def uncouple(self, mapping: str, side: Side, record_id: str) -> Coupling:
        return coupling.uncouple(self.catalogs.current(), mapping, side, record_id, couplings=self.couplings,
                                 errors=self.errors)

    def uncouple_all(self, mapping: str) -> int:
        return coupling.uncouple_all(mapping, couplings=self.couplings, errors=self.errors)

    def list_couplings(self, mapping: str, search: str | None = None, limit: int = 100) -> list[Coupling]:
        self.catalogs.current()[mapping]
        return self.couplings.list(mapping, limit, (lambda c: coupling.matches(c, search)) if search else None)

    # -- failed records -----------------------------------------------------------------------------

    def failures(self, mapping: str | None = None, direction: str | None = None,
                 skipped: bool | None = None) -> list[RecordFailure]:
        found = failures.select(self.errors.list_all(), mapping=mapping,
                                direction=Direction(direction) if direction else None, skipped=skipped)
        return sorted(found, key=lambda f: (f.mapping, f.direction.value, f.record))

    def retry_failures(self, *, mapping: str | None = None, direction: str | None = None,
                       source_id: str | None = None, skipped: bool | None = None) -> list[RecordFailure]:
        """Have the next run try these failed records again; skipped ones are restored."""
        chosen = failures.select(self.errors.list_all(), mapping=mapping,
                                 direction=Direction(direction) if direction else None,
                                 source_id=source_id, skipped=skipped)
        return failures.retry(self.errors, chosen)

    # -- lead to cash ----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _on_demand(self, mapping: str):
        """Work on a mapping's records now, holding its lease so that no job of it runs at the same time;
        yields the job id to record the work under."""
        lease, owner = f"mapping:{mapping}", f"on-demand-{secrets.token_hex(4)}"
        if not self.state.acquire(lease, owner, self.clock.now() + dt.timedelta(seconds=self.settings.job_lease_seconds)):
            raise ConcurrencyError(f"A {mapping} job is running right now; try again in a minute.")
        try:
            yield f"on-demand/{owner}"
        finally:
            self.state.release(lease, owner)

    def create_sales_orders(self, order_ids: list[str]) -> list[OrderResult]:
        """Create these Sales orders in Business Central now, holding the SALESORDER-ORDER lease so that
        the scheduled job never works on the same orders at the same time."""
        with self._on_demand(orders.MAPPING) as job_id:
            return orders.SalesOrderProcess().create(self.engine.job(orders.MAPPING, job_id), order_ids)

    # -- per-record actions -------------------------------------------------------------------------

    def create_records(self, mapping: str, target: Side, ids: list[str] | None = None,
                       where: str | None = None) -> list[RecordOutcome]:
        """Create records that are not coupled in `target` (Sales or Business Central) now, and couple them:
        by their ids on the other side, or those that an OData filter on that side's table finds."""
        direction = Direction.TO_CRM if target is Side.CRM else Direction.FROM_CRM
        return self._records(mapping, direction, ids, where, coupled=False)

    def synchronise_records(self, mapping: str, direction: str | None = None, ids: list[str] | None = None,
                            where: str | None = None) -> list[RecordOutcome]:
        """Synchronise coupled records now, changed or not, from their source side (the mapping's first
        direction unless given): by their source ids, or those an OData filter on the source table finds."""
        chosen = Direction(direction) if direction else self.catalogs.current()[mapping].direction.job_directions()[0]
        return self._records(mapping, chosen, ids, where, coupled=True)

    def _records(self, mapping: str, direction: Direction, ids: list[str] | None, where: str | None,
                 coupled: bool) -> list[RecordOutcome]:
        if bool(ids) == bool(where):
            raise ConfigurationError("Give the records' ids or a filter (one of the two).")
        found = self.catalogs.current()[mapping]
        if not found.direction.includes(direction) or direction is Direction.BIDIRECTIONAL:
            raise ConfigurationError(f"Table mapping {mapping} does not synchronise {direction.value}.")
        for record_id in ids or ():
            coupling.check_id(found, direction.source, record_id)
        if where:
            source, table = self.engine.endpoint(direction.source), found.table_on(direction.source)
            try:
                pages = source.read_changed(table, [], since=None, where=where, limit=MAX_RECORDS_PER_ACTION + 1)
                ids = [r.id for page in pages for r in page]
            except SyncError as exc:
                if exc.transient:
                    raise
                raise ConfigurationError(f"The filter {shown(where)} on {mapping} was refused: {exc.message}") from None
            if len(ids) > MAX_RECORDS_PER_ACTION:
                raise ConfigurationError(f"The filter finds more than {MAX_RECORDS_PER_ACTION} records; narrow it, or "
                                         f"let a full synchronisation do that many.")
        with self._on_demand(mapping) as job_id:
            return self.engine.sync_records(mapping, direction, list(ids or []), job_id=job_id, coupled=coupled,
                                            restore_skipped=True)

    def item_availability(self, product: str) -> dict:
        """Business Central inventory of one Sales product (its id or product number)."""
        return ItemAvailabilityProcess.lookup(self.engine.job(availability.MAPPING, "availability"), product)

    def check(self) -> CheckReport:
        """The connection check (sync.check): every service and storage object bcsync depends on, read only. The
        mapping overrides are read without creating their table; where unreadable or invalid, the built-in
        mappings are checked."""
        try:
            overrides = MappingConfigTable(TableStorage(self.storage_account, self.settings.table_prefix,
                                                        read_only=True)).load_checked()[0]
        except (SyncError, ResourceNotFoundError):
            overrides = {}  # storage's own finding says why
        quick = self._checking
        probe = ServiceProbe(quick.settings, quick.sign_in, lambda: quick.dataverse, lambda: quick.business_central,
                             lambda: self.storage_account)
        return run_checks(config.checked_catalog(self._builtins(), overrides)[0], probe)

    @cached_property
    def _checking(self) -> "Services":
        """Clients for the connection check, which answers in seconds: a request is retried once at most and
        waits at most CHECK_TIMEOUT; kept, with their token cache, for the next check."""
        s = self.settings
        return Services(replace(s, max_retries=1, max_retry_wait=min(s.max_retry_wait, CHECK_TIMEOUT),
                                http_timeout=min(s.http_timeout, CHECK_TIMEOUT)), self.clock)

    def handle_message(self, body: bytes) -> None:
        """What the queue trigger and the local worker do with one message's body. A message that can never work
        (terminal: not a job message, no such job, a request storage refuses) is reported, copied to the poison
        queue and then counts as handled: delivering it again would give the same answer. A transient error is
        raised, for the message to be delivered again."""
        try:
            self.coordinator.handle(JobMessage.parse(body))
        except TerminalError as exc:
            poison = f"{self.queue.name}-poison"
            log.error("queue message moved to %s: %s Job messages come from bcsync only: whatever else writes to "
                      "the queue %s must stop.", poison, exc.message, self.queue.name,
                      extra={"code": exc.code, "field": getattr(exc, "field", "")})
            self.queue.poison(body)

    def start_run(self, kind: RunKind, trigger: str, mappings: list[str] | None = None, dry: bool = False) -> Run:
        """A run; `dry`: a dry run, which reports what it would write and writes nothing (sync.dryrun)."""
        return run_started(lambda: self.coordinator.start_run(kind, trigger, mappings, dry=dry))

    def start_scheduled_run(self, trigger: str, dry: bool = False) -> Run | None:
        """What the timer does: the due mappings, after re-queueing what a crash stranded (None: nothing due)."""
        return run_started(lambda: self.coordinator.start_scheduled_run(trigger, dry=dry))

    def job_log(self, limit: int = 20, mapping: str | None = None) -> list[RunReport]:
        """The latest runs with their jobs' counts and timings (only the jobs of `mapping` when given)."""
        reports = []
        for run in self.runs.list_runs(limit=limit):
            jobs = [j for j in self.runs.jobs(run.run_id) if mapping is None or j.mapping == mapping]
            if jobs or mapping is None:
                reports.append(RunReport(run, jobs))
        return reports

    def purge_runs(self, days: int | None = None) -> int:
        """Apply the job log's retention now (BCSYNC_LOG_RETENTION_DAYS unless `days` is given)."""
        days = self.settings.log_retention_days if days is None else days
        return self.coordinator.purge(dt.timedelta(days=days))

    def report(self, run_id: str | None = None) -> RunReport | None:
        """A run with its jobs (the latest when no id is given); needs storage only."""
        if run_id is None:
            latest = self.runs.list_runs(limit=1)
            if not latest:
                return None
            run_id = latest[0].run_id
        run = self.runs.get(run_id)
        if run is None:
            return None
        failures = [f for f in self.errors.list_all() if f.job_id.startswith(f"{run_id}/")]
        return RunReport(run, self.runs.jobs(run_id), failures[:MAX_REPORTED_FAILURES],
                         self.runs.reports(run_id) if run.dry else None)


def build_services(settings: Settings | None = None, clock: Clock | None = None) -> Services:
    keep_memory_compact()  # before any job allocates pages in threads of its own
    return Services(settings or Settings.load(), clock or SystemClock())


def start_telemetry(settings: Settings | None = None) -> bool:
    """Export telemetry when Application Insights is configured: once per process, by the function app
    when a worker loads it and by the CLI. A telemetry setting in error is logged, not raised: the
    synchronisation runs on without it."""
    def credential(client_id: str | None) -> ManagedIdentityCredential:
        identity = ManagedIdentity(client_id, VerifyingSession(settings.ca_bundle))
        identity.settings.add("APPLICATIONINSIGHTS_AUTHENTICATION_STRING")
        return ManagedIdentityCredential(identity)

    try:
        settings = settings or Settings.load()
        return configure_telemetry(settings, credential_factory=credential)
    except ConfigurationError as exc:
        logging.getLogger("bcsync").error("telemetry is not exported: %s", exc.message)
        return False
