"""Composition root: builds the services from settings, once per process (Functions workers are
reused, so clients, token caches and table clients live at module level)."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import logging
import os
import secrets
import time
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Sequence

from azure.core.exceptions import ResourceNotFoundError

from sync import availability, config, coupling, failures, orders
from sync.availability import ItemAvailabilityProcess
from sync.check import CheckReport, run_checks
from sync.engine import RecordOutcome, SyncEngine
from sync.errors import ConcurrencyError, ConfigurationError, MessageError, SyncError, TerminalError, cut, shown
from sync.mappings import Catalog, builtin_mappings
from sync.model import ConnectionSetup, CrmTable, Direction, Side, TableMapping
from sync.notifications import BC_ROUTE, CRM_ROUTE, Hook, HookState, Notification, Registrar, hookable_tables
from sync.orders import OrderResult
from sync.ports import Clock, Coupling, RecordFailure, SystemClock
from sync.runs import RUNS_STATE, JobMessage, Run, RunCoordinator, RunKind, RunReport
from sync.schedule import schedule_status

from . import businesscentral, dataverse
from .auth import SignIn
from .bc_webhooks import BcSubscriptions, check_handshake
from .check import ServiceProbe
from .companies import Company, chosen, companies
from .dataverse_webhooks import DataverseWebhooks, update_columns
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


@dataclass(frozen=True)
class StoredConfiguration:
    """The mapping configuration as one query of Table Storage found it, for a page or request that uses it in
    more than one way."""

    builtins: Sequence[TableMapping]
    overrides: dict[str, config.MappingOverride]  # the stored overrides that can be read
    unreadable: dict[str, str]                    # what is wrong with the others, by mapping

    def catalog(self) -> Catalog:
        """The catalogue in force, as jobs use it: refused while a stored override is wrong."""
        if self.unreadable:
            raise ConfigurationError(next(iter(self.unreadable.values())))
        return config.build_catalog(self.builtins, self.overrides)

    def listed(self) -> tuple[Catalog, dict[str, str]]:
        """Every mapping, with the overrides that still apply, and what is wrong with the others (by mapping),
        so that the mappings can be listed and a bad override reset."""
        catalog, unusable = config.checked_catalog(self.builtins, self.overrides)
        return catalog, {**self.unreadable, **unusable}


class StoredCatalog:
    """The built-in mappings with the overrides in Table Storage, read afresh for every run and every delivery of a
    job message (one small query), so a change made through any worker applies to the next delivery everywhere."""

    def __init__(self, store: MappingConfigTable, builtins: Sequence[TableMapping], clock: Clock):
        self.store = store
        self.builtins = builtins  # as the settings select them (Services.builtins)
        self.clock = clock
        self._last: tuple[dt.datetime, Catalog] | None = None  # the catalogue current() read last, and when

    def read(self) -> StoredConfiguration:
        return StoredConfiguration(self.builtins, *self.store.load_checked())

    def current(self, max_age: float = 0) -> Catalog:
        """`max_age`: the catalogue read up to that many seconds ago will do (a notification in a burst)."""
        now, last = self.clock.now(), self._last
        if last is None or not dt.timedelta(0) <= now - last[0] < dt.timedelta(seconds=max_age):
            last = self._last = (now, self.read().catalog())
        return last[1]


# Requests in flight at once per service and user: Business Central serves 5 at a time; Dataverse allows 52
# and recommends its own parallelism per organisation in a response header, which is followed when lower.
BC_CONCURRENCY = 5
DATAVERSE_CONCURRENCY = 52
DATAVERSE_DOP_HINT = "x-ms-dop-hint"

# The connection check's longest wait for an answer or a Retry-After, so that it answers in seconds.
CHECK_TIMEOUT = 10.0

# a company's scheduled runs start at the first tick at least its interval after the last, give or take this much
# (the timer's ticks are not exact)
TICK_SLACK = dt.timedelta(seconds=30)
COMPANY_TICK = "company tick"  # the state store's cursor: when the timer last started a company's scheduled run
# ... the secrets the receivers of notifications check (webhook_key)
WEBHOOK_KEYS = {Side.BC: "webhook key (Business Central)", Side.CRM: "webhook key (Sales)"}
# ... and the base URL webhooks were last registered for, which the timer renews and status shows ("" once removed):
# not each process's own webhook_base_url, or a staging slot sharing the state table, or a CLI run with another
# BCSYNC_WEBHOOK_URL, would make the timer move the services' subscriptions to itself
WEBHOOK_URL = "webhook url (registered)"
# ... and when the timer last renewed them: at most every RENEW_EVERY, as a subscription lives three days and is renewed
# within its last day, while a renewal costs a listing, storage reads and queries of both services
WEBHOOKS_RENEWED = "webhooks renewed"
RENEW_EVERY = dt.timedelta(hours=1)
HOME_CLAIMED = "home rows claimed"  # ... when the home company's rows from its one-company days were claimed

# A scheduled run older than this that never finished is treated as dead and no longer blocks new ones.
MAX_REPORTED_FAILURES = 200
# records one per-record action takes (create, synchronise now); a filter that finds more is refused
MAX_RECORDS_PER_ACTION = 1000


@dataclass(frozen=True)
class Hooked:
    """A registrar with the tables it hooks, and the company they are of ("" when they are no one company's)."""

    registrar: Registrar
    tables: list[str]
    company: str = ""


@dataclass
class Services:
    """Everything bcsync does, for one Business Central company. With several companies (BCSYNC_COMPANIES) the
    services built from the settings act for none until one is named (`for_company`), and hand the clients that
    are no company's (sessions, sign-in, storage account, queue, Dataverse) to each company's services."""

    settings: Settings
    clock: Clock
    company: Company | None = None  # None: the only company, or none chosen yet among several
    _root: "Services | None" = field(default=None, repr=False)
    _identities: dict[str | None, ManagedIdentity] = field(default_factory=dict, init=False, repr=False)
    _children: dict[str, "Services"] = field(default_factory=dict, init=False, repr=False)
    _home_claimed: bool = field(default=False, init=False, repr=False)  # known done in this process
    # the webhook keys as last read, with when (time.monotonic()): the receivers' cache (webhook_key's max_age)
    _webhook_keys: dict[Side, tuple[float, str | None]] = field(default_factory=dict, init=False, repr=False)
    # Business Central's refusals to subscribe, which the timer does not ask again at every renewal (BcSubscriptions)
    _refused_subscriptions: dict[tuple[str, str], dt.datetime] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if self._root is not None:
            self._identities = self._root._identities
        elif self.company is None and len(self.companies) == 1:
            self.company = self.companies[0]

    # -- companies ------------------------------------------------------------------------------

    @cached_property
    def companies(self) -> list[Company]:
        if self._root:
            return self._root.companies
        s = self.settings
        return companies(s.companies, s.bc_company_id, s.table_prefix)

    def for_company(self, asked: str | None) -> "Services":
        """The services of the company named (its name or id), or of the only one; several and none named is a
        ConfigurationError that names them."""
        root = self._root or self
        if not root.companies:
            return self
        company = chosen(root.companies, asked)
        if company == root.company:
            return root
        if company.name not in root._children:
            settings = replace(root.settings, bc_company_id=company.bc_company_id, table_prefix=company.table_prefix)
            root._children[company.name] = Services(settings, root.clock, company, root)
        return root._children[company.name]

    def each_company(self) -> list["Services"]:
        root = self._root or self
        return [root.for_company(c.name) for c in root.companies] or [root]

    def _for_message(self, message: JobMessage) -> "Services":
        """The services of the company a job message names; a message without one (queued before companies were
        listed) is the company's that keeps the tables of BCSYNC_TABLE_PREFIX."""
        root = self._root or self
        if not message.company and len(root.companies) > 1:
            keeper = root._keeper_of_unprefixed_tables()
            if keeper is None:
                raise MessageError("The job message names no company, and several are configured.", field="company")
            return root.for_company(keeper.name)
        try:
            return root.for_company(message.company or None)
        except ConfigurationError:
            raise MessageError(f"The job message names the company {shown(message.company)}, which BCSYNC_COMPANIES "
                               f"does not list.", field="company") from None

    def _keeper_of_unprefixed_tables(self) -> "Company | None":
        """The company whose tables are BCSYNC_TABLE_PREFIX's own (BCSYNC_BC_COMPANY_ID's), if one is listed."""
        return next((c for c in self.companies if c.table_prefix == self.settings.table_prefix), None)

    def _claim_home_rows(self) -> None:
        """With several companies, once, before any company's run starts: the Sales rows the company of
        BCSYNC_BC_COMPANY_ID coupled in its one-company days carry no company (one company stamps nothing), and its
        scheduled runs would never read most of them again; they become its rows now, in bulk, so that no other
        company sees, couples or claims them. Remembered in its state; a row that cannot be claimed is logged."""
        root = self._root or self
        home = root._keeper_of_unprefixed_tables()
        if root._home_claimed or home is None or not home.stamped:
            return
        services = root.for_company(home.name)
        if services.state.cursor(RUNS_STATE, HOME_CLAIMED) is None:
            for mapping in services.catalogs.current():
                table = mapping.table_on(Side.CRM)
                if isinstance(table, CrmTable):
                    services._claim_coupled(mapping.name, table)
            services.state.save_cursor(RUNS_STATE, HOME_CLAIMED, self.clock.now().isoformat())
        root._home_claimed = True

    def _claim_coupled(self, mapping: str, table: CrmTable) -> None:
        for ids in self.couplings.coupled_ids(mapping, Side.CRM):
            for row_id, error in self.engine.crm.claim_coupled(table, ids).items():
                if error.transient:
                    raise error
                log.warning("the %s %s coupled by %s stays of no company: %s", table.logical_name, row_id, mapping,
                            error.message)

    def webhook_key(self, side: Side, create: bool = False, max_age: float = 0.0) -> str | None:
        """The secret a service sends with every notification (Business Central's clientState, a header of
        Dataverse's service endpoint), which its receiver compares: one per service, as Business Central shows its
        clientState to whoever may read its subscriptions. No setting holds them: the first registration (`create`)
        makes them and keeps them in the state table of BCSYNC_TABLE_PREFIX (whatever BCSYNC_COMPANIES lists, so
        that a change of companies never loses them), where every worker reads the same ones. `max_age`: the key
        read within that many seconds will do (the receivers' cache: a notification costs no storage read)."""
        root = self._root or self
        cached = root._webhook_keys.get(side)
        if max_age and not create and cached is not None and time.monotonic() - cached[0] < max_age:
            return cached[1]
        name = WEBHOOK_KEYS[side]
        key = root.prefix_state.cursor(RUNS_STATE, name)
        if key is None and create:  # inserted, never replaced: of two first registrations racing, one key is kept
            key = root.prefix_state.first_cursor(RUNS_STATE, name, secrets.token_urlsafe(32))
        root._webhook_keys[side] = (time.monotonic(), key)
        return key

    def notify(self, notifications: Sequence[Notification]) -> dict:
        """What the receivers hand over (sync.notifications): each Business Central notification goes to the company
        whose id it names (an unknown one is logged and left out), each Sales one to every company; there its rows
        are recorded and a targeted run started or joined (sync.targeted). Reads and writes Table Storage only; a
        transient storage error is raised (the receiver answers 503, and the service sends again)."""
        root = self._root or self
        by_company: dict[str, list[Notification]] = {}
        ignored = 0
        for notification in notifications:
            if notification.side is Side.CRM:
                targets = [c.name for c in root.companies]
            else:
                targets = [c.name for c in root.companies if c.bc_company_id == notification.company_id.lower()]
                if not targets:
                    log.warning("a Business Central notification of %s names the company %s, which bcsync does not "
                                "synchronise; ignored", notification.table, shown(notification.company_id))
                    ignored += 1
            for name in targets:
                by_company.setdefault(name, []).append(notification)
        window = self.settings.webhook_window_seconds
        companies = {name: root.for_company(name).coordinator.notify(found, window)
                     for name, found in by_company.items()}
        return {"notifications": len(notifications), "ignored": ignored, "companies": companies}

    # -- webhooks -------------------------------------------------------------------------------

    def webhook_registrars(self) -> list["Hooked"]:
        """Who keeps webhooks registered, with the tables each hooks: a Business Central registrar per company (its
        subscriptions name the company; the environment's subscriptions are listed once for all of them), and one for
        Dataverse, whose steps serve every company and post only the updates of columns some company's mappings
        read."""
        root = self._root or self
        companies = root.each_company()
        catalogs = [s.catalogs.current() for s in companies]
        crm_tables = list(dict.fromkeys(t for catalog in catalogs for t in hookable_tables(catalog, Side.CRM)))
        listed: list[list[dict] | SyncError] = []
        # the handshake once per URL: functools.cache keeps no exception, so a failed one is tried again when asked
        reachable = functools.cache(functools.partial(check_handshake, ca_bundle=root.settings.ca_bundle))

        def subscriptions() -> list[dict]:
            if not listed:
                try:
                    listed.append(companies[0].business_central.subscriptions())
                except SyncError as exc:  # each company's registrar fails with it: Business Central is asked once
                    listed.append(exc)
            if isinstance(listed[0], SyncError):
                raise listed[0]
            return listed[0]
        return [*(Hooked(BcSubscriptions(s.business_central, self.clock, subscriptions, reachable,
                                         root._refused_subscriptions),
                         hookable_tables(catalog, Side.BC), s.company.name if s.company and s.company.stamped else "")
                  for s, catalog in zip(companies, catalogs)),
                Hooked(DataverseWebhooks(root.dataverse, update_columns([m for c in catalogs for m in c])), crm_tables)]

    @property
    def webhook_base_url(self) -> str:
        """Where the services post notifications: BCSYNC_WEBHOOK_URL, else, in Azure, the function app's own default
        host name, which the platform sets as WEBSITE_HOSTNAME ("" when neither is known)."""
        root = self._root or self
        if root.settings.webhook_url:
            return root.settings.webhook_url.rstrip("/")
        host = os.environ.get("WEBSITE_HOSTNAME", "").strip()
        return f"https://{host}" if host else ""

    def register_webhooks(self) -> dict:
        """Register (or bring up to date) every webhook bcsync wants for this process's webhook_base_url, making the
        receivers' keys on the first call, and keep that URL as the one the timer renews."""
        root = self._root or self
        base = root._base_url(root.webhook_base_url)
        report = self._webhooks(base, lambda hooked, url, key: hooked.registrar.register(hooked.tables, url, key),
                                root._keys(create=True))
        root.prefix_state.save_cursor(RUNS_STATE, WEBHOOK_URL, base)
        return report

    def renew_webhooks(self) -> dict | None:
        """What the timer does, once webhooks were registered (None before, and after `remove`), at most every
        RENEW_EVERY (None in between: one storage read): for the URL they were registered with, renew what expires
        within a day and recreate what is gone, and nothing else (no subscription of another URL replaced, none
        removed); a renewal a service was unavailable for is tried again at the next tick. Registered without keys
        (the state table lost them) is logged as an error: the services' notifications are refused until `bcsync
        webhooks register`."""
        root = self._root or self
        now, last = self.clock.now(), root.prefix_state.cursor(RUNS_STATE, WEBHOOKS_RENEWED)
        if last is not None and dt.timedelta(0) <= now - dt.datetime.fromisoformat(last) < RENEW_EVERY - TICK_SLACK:
            return None
        base = root.registered_webhook_url
        if not base:
            return None
        keys = root._keys()
        if any(key is None for key in keys.values()):
            log.error("Webhooks were registered for %s, but no webhook key is stored (the state table of "
                      "BCSYNC_TABLE_PREFIX lost them): the services' notifications are refused and only scheduled "
                      "runs synchronise. Run `bcsync webhooks register`.", base)
            return None
        report = self._webhooks(base, lambda hooked, url, key: hooked.registrar.register(hooked.tables, url, key,
                                                                                         renewing=True), keys)
        if not report["unavailable"]:
            root.prefix_state.save_cursor(RUNS_STATE, WEBHOOKS_RENEWED, now.isoformat())
        return report

    def webhook_status(self) -> dict:
        """What is registered for the receivers (of the URL registered last, else of webhook_base_url) now, and each
        hook wanted but not registered (missing: a Business Central entity set, a Dataverse message of a table);
        reads only."""
        root = self._root or self
        return self._webhooks(root._base_url(root.registered_webhook_url or root.webhook_base_url),
                              lambda hooked, url, key: hooked.registrar.hooks(url, key, hooked.tables), root._keys())

    def remove_webhooks(self) -> dict:
        """Remove every webhook registered for the receivers (of the URL registered last, else of webhook_base_url)
        or with the keys (which are kept); the timer renews nothing until the next registration."""
        root = self._root or self
        base = root._base_url(root.registered_webhook_url or root.webhook_base_url)
        report = self._webhooks(base, lambda hooked, url, key: hooked.registrar.remove(url, key), root._keys())
        if report["ok"]:
            root.prefix_state.save_cursor(RUNS_STATE, WEBHOOK_URL, "")
        return report

    @property
    def registered_webhook_url(self) -> str:
        """The base URL webhooks were last registered for ("" when never, or removed since)."""
        root = self._root or self
        return root.prefix_state.cursor(RUNS_STATE, WEBHOOK_URL) or ""

    @staticmethod
    def _base_url(base: str) -> str:
        if not base:
            raise ConfigurationError("BCSYNC_WEBHOOK_URL is not set: set it to the function app's public base URL "
                                     "(https://<app>.azurewebsites.net), to which the services post notifications.")
        return base

    def _keys(self, create: bool = False) -> dict[Side, str | None]:
        return {side: self.webhook_key(side, create=create) for side in WEBHOOK_KEYS}

    def _webhooks(self, base: str, act, keys: dict[Side, str | None]) -> dict:
        """`act` for each registrar, with the receivers' URLs under `base` and `keys` (_keys); one that fails (a
        service refuses, or is down) is reported as a failed hook with the reason, and the others go on."""
        root = self._root or self
        hooks, unavailable = [], False
        for hooked in root.webhook_registrars():
            side = hooked.registrar.side
            url = f"{base}/api/{BC_ROUTE if side is Side.BC else CRM_ROUTE}"
            try:
                found = act(hooked, url, keys[side])
            except SyncError as exc:
                found = [Hook(side, "", "", HookState.FAILED, detail=exc.message)]
                unavailable = unavailable or exc.transient
            hooks += [{**({"company": hooked.company} if hooked.company else {}), **hook.to_dict()} for hook in found]
        # unavailable: a service was down or throttling (try again later), rather than something refused
        return {"url": base, "registered": all(key is not None for key in keys.values()), "hooks": hooks,
                "ok": all(hook["state"] != HookState.FAILED.value for hook in hooks), "unavailable": unavailable}

    def _named(self, run: Run) -> Run:
        """A run as reported: with several companies, with its company, also a run of the company of
        BCSYNC_BC_COMPANY_ID from before they were listed (which does not store it); with one company, as it is."""
        stamped = self.company is not None and self.company.stamped
        return run if run.company or not stamped else replace(run, company=self.company.name)

    # -- clients --------------------------------------------------------------------------------

    @cached_property
    def session(self) -> VerifyingSession:
        return self._root.session if self._root else VerifyingSession(self.settings.ca_bundle)

    def managed_identity(self, client_id: str | None, setting: str) -> ManagedIdentity:
        """One MSAL managed-identity client per identity, shared by storage, sign-in and telemetry."""
        key = client_id or None
        if key not in self._identities:
            self._identities[key] = ManagedIdentity(key, self.session)
        self._identities[key].settings.add(setting)
        return self._identities[key]

    @cached_property
    def storage_account(self) -> StorageAccount:
        return self._root.storage_account if self._root else storage_account(self.settings, self.managed_identity)

    @cached_property
    def storage(self) -> TableStorage:
        """The company's tables; among several companies, one must be named first."""
        if self.company is None and len(self.companies) > 1:
            chosen(self.companies, None)  # raises, naming them
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
    def prefix_state(self) -> StateTable:
        """The state table of BCSYNC_TABLE_PREFIX itself, whichever companies BCSYNC_COMPANIES lists (with one, or
        when a company keeps that prefix's tables, it is that company's state table)."""
        root = self._root or self
        return StateTable(TableStorage(root.storage_account, root.settings.table_prefix), root.clock)

    @cached_property
    def runs(self) -> RunTable:
        return RunTable(self.storage)

    @cached_property
    def queue(self) -> StorageJobQueue:
        return self._root.queue if self._root else StorageJobQueue(self.storage_account, self.settings.queue_name)

    @cached_property
    def mapping_config(self) -> MappingConfigTable:
        return MappingConfigTable(self.storage)

    @cached_property
    def builtins(self) -> tuple[TableMapping, ...]:
        """The built-in mappings in use: the one place where settings choose among them."""
        s = self.settings
        return tuple(builtin_mappings(unit_groups=s.unit_groups, ownership=s.ownership,
                                      extended_pricing=s.extended_pricing,
                                      two_way_orders=s.two_way_orders))

    @cached_property
    def catalogs(self) -> "StoredCatalog":
        return StoredCatalog(self.mapping_config, self.builtins, self.clock)

    @cached_property
    def sign_in(self) -> SignIn:
        return self._root.sign_in if self._root else SignIn(self.settings, self.session, self.managed_identity)

    def _api(self, service: str, base_url: str, setting: str, scope: str, parse_error,
             limit: ConcurrencyLimit) -> ApiClient:
        s = self.settings
        return ApiClient(service, base_url, self.sign_in.tokens_for(scope), session=self.session,
                         parse_error=parse_error, limit=limit, timeout=s.http_timeout, max_retries=s.max_retries,
                         max_retry_wait=s.max_retry_wait, setting=setting)

    @cached_property
    def dataverse(self) -> dataverse.DataverseClient:
        if self._root:
            return self._root.dataverse
        self.settings.check_services()
        url = self.settings.dataverse_url.rstrip("/")
        return dataverse.DataverseClient(self._api(
            "Dataverse", url, "BCSYNC_DATAVERSE_URL", f"{url}/.default", dataverse.parse_error,
            ConcurrencyLimit(DATAVERSE_CONCURRENCY, hint_header=DATAVERSE_DOP_HINT)))

    @cached_property
    def _bc_limit(self) -> ConcurrencyLimit:
        """Business Central's requests in flight: one limit for all companies, as it counts them per user."""
        return self._root._bc_limit if self._root else ConcurrencyLimit(BC_CONCURRENCY)

    @cached_property
    def business_central(self) -> businesscentral.BusinessCentralClient:
        self.settings.check_services()
        api = self._api("Business Central", self.settings.bc_url, "BCSYNC_BC_URL", self.settings.bc_scope,
                        businesscentral.parse_error, self._bc_limit)
        return businesscentral.BusinessCentralClient(api, self.settings.bc_company_id)

    @cached_property
    def engine(self) -> SyncEngine:
        s = self.settings
        return SyncEngine(self.catalogs,
                          businesscentral.BusinessCentralEndpoint(self.business_central, s.write_concurrency),
                          dataverse.DataverseEndpoint(self.dataverse, s.write_concurrency, self._company_row()),
                          self.couplings, self.errors, self.state,
                          self.clock, page_size=s.page_size,
                          watermark_margin=dt.timedelta(seconds=s.watermark_margin_seconds),
                          reconcile_every=dt.timedelta(minutes=s.reconcile_minutes),
                          setup=ConnectionSetup(auto_create_sales_orders=s.auto_create_sales_orders,
                                                auto_process_sales_quotes=s.auto_process_sales_quotes,
                                                two_way_orders=s.two_way_orders,
                                                ownership_model=s.ownership),
                          facts_ttl=dt.timedelta(seconds=s.facts_ttl_seconds))

    def _company_row(self) -> dataverse.CompanyRow | None:
        """With several companies, the company whose Dataverse rows this engine filters on and stamps."""
        if self.company is None or not self.company.stamped:
            return None
        return dataverse.CompanyRow(self.company.bc_company_id, lambda: self.business_central.company_name(),
                                    self.company.home)

    @cached_property
    def coordinator(self) -> RunCoordinator:
        return RunCoordinator(self.catalogs, self.engine, self.runs, self.queue, self.state, self.state, self.clock,
                              lease_seconds=self.settings.job_lease_seconds,
                              time_budget_seconds=self.settings.job_time_budget_seconds,
                              log_retention_days=self.settings.log_retention_days, observer=JobTelemetry(),
                              company=self.company.name if self.company and self.company.stamped else "")

    # -- mappings -------------------------------------------------------------------------------

    def mappings(self, configuration: StoredConfiguration | None = None) -> list[dict]:
        """Every mapping as configured (read now unless given); one whose stored override no longer validates is
        shown as built in, with the problem and its fix."""
        configuration = configuration or self.catalogs.read()
        catalog, problems = configuration.listed()
        overrides = configuration.overrides
        schedules = self.state.schedules()
        return [{**config.describe(m, None if m.name in problems else overrides.get(m.name)),
                 "schedule": schedule_status(m, schedules.get(m.name)),
                 **({"override_problem": problems[m.name]} if m.name in problems else {})} for m in catalog]

    def set_mapping(self, name: str, changes: dict) -> dict:
        """Change a mapping's settings; validated against the mapping and, for filters, by the service."""
        builtin = {m.name: m for m in self.builtins}
        if name not in builtin:
            raise ConfigurationError(f"There is no table mapping named {cut(name)}; known: {', '.join(builtin)}.")
        overrides = self.mapping_config.load()
        override = config.parse_changes(overrides.get(name, config.MappingOverride()), changes, builtin[name])
        mapping = config.apply(builtin[name], override)
        config.build_catalog(self.builtins, {**overrides, name: override})  # the whole catalogue stays valid
        for side, key in ((Side.BC, "bc_filter"), (Side.CRM, "crm_filter")):
            if changes.get(key):
                self._probe_filter(mapping, side)
        if override.is_empty():
            self.mapping_config.delete(name)
        else:
            self.mapping_config.save(name, override)
        return config.describe(mapping, override)

    def reset_mapping(self, name: str) -> dict:
        builtin = {m.name: m for m in self.builtins}
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
                                 errors=self.errors, crm=self._crm_of_company())

    def uncouple_all(self, mapping: str) -> int:
        crm = self._crm_of_company()
        return coupling.uncouple_all(mapping, couplings=self.couplings, errors=self.errors,
                                     catalog=self.catalogs.current() if crm else None, crm=crm)

    def _crm_of_company(self):
        """The Dataverse endpoint that resets an uncoupled row's company, with several companies (else None: rows
        carry no company, and uncoupling asks nothing of Dataverse)."""
        return self.engine.crm if self._company_row() is not None else None

    def list_couplings(self, mapping: str, search: str | None = None, limit: int = 100,
                       catalog: Catalog | None = None) -> list[Coupling]:
        """A mapping's couplings; `catalog`: the catalogue in force, as the caller read it (else read now)."""
        catalog = self.catalogs.current() if catalog is None else catalog
        _ = catalog[mapping]  # refuses a mapping the catalogue does not hold, naming it, rather than list nothing
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
        return run_checks(config.checked_catalog(self.builtins, overrides)[0], probe,
                          companies=self._company_row() is not None)

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
        raised, for the message to be delivered again. The home company's rows are claimed first, should no run of
        the timer or the HTTP API have claimed them yet (a targeted run starts in a receiver, which writes Table
        Storage only). A claim that can never work is logged, as a row that cannot be claimed is, and the message
        handled all the same: otherwise no job message of any company would ever be handled again."""
        try:
            self._claim_home_rows()
        except TerminalError as exc:
            (self._root or self)._home_claimed = True  # tried again when the worker starts again
            log.error("the home company's rows from its one-company days could not be claimed: %s", exc.message,
                      extra={"code": exc.code})
        try:
            message = JobMessage.parse(body)
            self._for_message(message).coordinator.handle(message)
        except TerminalError as exc:
            poison = f"{self.queue.name}-poison"
            log.error("queue message moved to %s: %s Job messages come from bcsync only: whatever else writes to "
                      "the queue %s must stop.", poison, exc.message, self.queue.name,
                      extra={"code": exc.code, "field": getattr(exc, "field", "")})
            self.queue.poison(body)

    def start_run(self, kind: RunKind, trigger: str, mappings: list[str] | None = None, dry: bool = False) -> Run:
        """A run; `dry`: a dry run, which reports what it would write and writes nothing (sync.dryrun)."""
        if not dry:
            self._claim_home_rows()
        return run_started(lambda: self.coordinator.start_run(kind, trigger, mappings, dry=dry))

    def start_scheduled_run(self, trigger: str, dry: bool = False) -> Run | None:
        """The due mappings, after re-queueing what a crash stranded (None: nothing due)."""
        if not dry:
            self._claim_home_rows()
        return run_started(lambda: self.coordinator.start_scheduled_run(trigger, dry=dry))

    def start_scheduled_runs(self, trigger: str) -> dict[str, Run | None | SyncError]:
        """What the timer does: for each company whose interval has passed, its scheduled run (None: nothing due),
        or what kept it from starting; one company's trouble never stops another's run. A company whose interval
        has not passed still has its stranded jobs re-queued, at every tick."""
        started: dict[str, Run | None | SyncError] = {}
        for services in self.each_company():
            name = services.company.name if services.company and services.company.stamped else ""
            try:
                if services._company_due():
                    started[name] = services.start_scheduled_run(trigger)
                    services._company_ticked()  # only once started: a failed start is tried at the next tick
                else:
                    services.coordinator.recover()
            except SyncError as exc:
                if len(self.each_company()) == 1:
                    raise
                started[name] = exc
        return started

    def _company_due(self) -> bool:
        """Whether the company's interval (BCSYNC_COMPANIES) has passed since the timer last started its run. A
        company without an interval runs at every tick."""
        minutes = self.company.interval_minutes if self.company else None
        if not minutes:
            return True
        now, last = self.clock.now(), self.state.cursor(RUNS_STATE, COMPANY_TICK)
        return last is None or now - dt.datetime.fromisoformat(last) >= dt.timedelta(minutes=minutes) - TICK_SLACK

    def _company_ticked(self) -> None:
        """Note in the company's state that the timer started its run now (companies with an interval only)."""
        if self.company and self.company.interval_minutes:
            self.state.save_cursor(RUNS_STATE, COMPANY_TICK, self.clock.now().isoformat())

    def recover(self) -> int:
        """Re-queue the jobs a crashed worker stranded, of every company."""
        return sum(services.coordinator.recover() for services in self.each_company())

    def job_log(self, limit: int = 20, mapping: str | None = None) -> list[RunReport]:
        """The latest runs with their jobs' counts and timings (only the jobs of `mapping` when given)."""
        reports = []
        for run in self.runs.list_runs(limit=limit):
            jobs = [j for j in self.runs.jobs(run.run_id) if mapping is None or j.mapping == mapping]
            if jobs or mapping is None:
                reports.append(RunReport(self._named(run), jobs))
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
        return RunReport(self._named(run), self.runs.jobs(run_id), failures[:MAX_REPORTED_FAILURES],
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
