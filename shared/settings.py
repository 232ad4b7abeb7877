"""Settings, from environment variables (app settings in Azure) or a local settings file.

Every setting is declared once, as a field of Settings with its variable name, default and meaning;
the README's configuration table is printed from the same declarations (`bcsync settings`). Environment variables win over the file, which has
the shape of the Functions host's local.settings.json ({"Values": {...}}).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

from sync.errors import ConfigurationError, SettingsError, shown
from sync.model import OwnershipModel

DEFAULT_SETTINGS_FILE = "local.settings.json"

# What is wrong with a setting's value and how to fix it, or None when the value is fine.
Check = Callable[[Any], "str | None"]

_GUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
_DOMAIN = re.compile(r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:\S+")
# Table Storage: table names are 3-63 letters and digits, starting with a letter
_TABLE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]{2,62}")
# Queue Storage: 3-63 lowercase letters, digits and single hyphens, starting and ending with a letter or digit
_QUEUE_NAME = re.compile(r"(?=.{3,63}$)[a-z0-9]+(?:-[a-z0-9]+)*")
_NCRONTAB_FIELD = re.compile(r"[0-9A-Za-z*/,?-]+")
_TIMESPAN = re.compile(r"\d{1,2}:\d{2}:\d{2}")
STORAGE_CONNECTION_KEYS = frozenset(k.lower() for k in (
    "DefaultEndpointsProtocol", "AccountName", "AccountKey", "SharedAccessSignature", "EndpointSuffix",
    "BlobEndpoint", "QueueEndpoint", "TableEndpoint", "FileEndpoint", "UseDevelopmentStorage",
    "DevelopmentStorageProxyUri"))
WEEK_SECONDS = 7 * 24 * 3600  # the longest a queue message can stay invisible, which a job's lease relies on


def _guid(what: str) -> Check:
    return lambda value: None if _GUID.fullmatch(value) else \
        f"is not a GUID; set the {what} (like 00000000-0000-0000-0000-000000000000)"


def _tenant(value: str) -> str | None:
    if _GUID.fullmatch(value) or _DOMAIN.fullmatch(value):
        return None
    return "is not a tenant; set the tenant id (a GUID) or one of its domains, such as contoso.onmicrosoft.com"


def _https(example: str, *, path: bool = True) -> Check:
    """An https URL of a host (a service, or where tokens come from): bearer tokens never travel in clear."""
    def check(value: str) -> str | None:
        fix = f"set the https URL, like {example}"
        try:
            url = urlsplit(value)
            url.port  # noqa: B018 - raises on a port that is not a number
        except ValueError:
            return f"is not a URL; {fix}"
        if not url.scheme or not url.hostname or any(c.isspace() for c in value):
            return f"is not a URL; {fix}"
        if url.scheme != "https":
            return f"is not https ({url.scheme}); {fix}"
        if url.query or url.fragment or (not path and url.path.strip("/")):
            return f"has more than the environment's address; {fix}"
        return None
    return check


def _webhook_url(value: str) -> str | None:
    """Where the services post notifications: https, except on this machine (the local stack)."""
    if urlsplit(value).scheme == "http" and urlsplit(value).hostname in ("localhost", "127.0.0.1"):
        value = "https" + value[4:]
    return _https("https://<app>.azurewebsites.net", path=False)(value)


def _in_range(low: float, unit: str, high: float | None = None) -> Check:
    """A number in range: outside it the sync stops (0 rows per page, no time to answer) or a date overflows."""
    def check(value: float) -> str | None:
        if not math.isfinite(value) or value < low or (high is not None and value > high):
            span = f"from {low:g} to {high:g}" if high is not None else f"of at least {low:g}"
            return f"is out of range; set a number {span} ({unit})"
        return None
    return check


def _one_of(*choices: str) -> Check:
    return lambda value: None if value.strip().lower() in choices else f"is not one of {', '.join(choices)}; set one"


def _existing_file(what: str, *, certificates: bool = False) -> Check:
    """A file that exists here (and, for `certificates`, holds a PEM certificate)."""
    def check(value: str) -> str | None:
        path = Path(value)
        if not path.is_file():
            return f"names no file here; set the path of the {what}"
        if certificates:
            try:
                text = path.read_text(errors="replace")
            except OSError as exc:
                return f"cannot be read ({exc.strerror}); make the {what} readable by this process"
            if "-----BEGIN CERTIFICATE-----" not in text:
                return f"holds no PEM certificate; set the path of a {what}"
        return None
    return check


def _base64(value: str) -> str | None:
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return "is not base64; set the certificate as base64 PKCS#12 (a Key Vault certificate reference)"
    return None


def _thumbprint(value: str) -> str | None:
    return None if re.fullmatch(r"[0-9a-fA-F]{40}", value) else \
        "is not a SHA-1 thumbprint; set its 40 hexadecimal digits, or leave it empty to read it from the certificate"


def _no_whitespace(what: str) -> Check:
    return lambda value: "starts or ends with a space; copy the " + what + " again" if value != value.strip() \
        else None


def _uri(value: str) -> str | None:
    return None if _URI.fullmatch(value) else "is not a URI; set the audience, like api://AzureADTokenExchange"


def _scope(value: str) -> str | None:
    if _URI.fullmatch(value) and value.endswith("/.default"):
        return None
    return ("is not a resource's /.default scope, which signing in as an application needs; set one, like "
            "https://api.businesscentral.dynamics.com/.default")


def _table_prefix(value: str) -> str | None:
    from .storage import TABLE_NAMES  # imported here: storage imports this module's users
    longest = max(TABLE_NAMES, key=len)
    if _TABLE_NAME.fullmatch(value + longest):
        return None
    return (f"makes table names Azure Storage refuses ({value + longest!r} is one); set letters and digits only, "
            f"starting with a letter, at most {63 - len(longest)} characters")


def _companies(value: str) -> str | None:
    from .companies import parse  # imported here: companies imports sync, as this module's users do
    try:
        parse(value)
    except ValueError as exc:
        return str(exc)
    return None


def _queue_name(value: str) -> str | None:
    return None if _QUEUE_NAME.fullmatch(value) else \
        ("is not a queue name Azure Storage accepts; set 3 to 63 lowercase letters, digits and single hyphens, "
         "starting and ending with a letter or digit")


def _schedule(value: str) -> str | None:
    parts = value.split()
    if (len(parts) == 6 and all(_NCRONTAB_FIELD.fullmatch(p) for p in parts)) or _TIMESPAN.fullmatch(value.strip()):
        return None
    return ("is not an NCRONTAB schedule; set six fields: second minute hour day month day-of-week, "
            "like 0 */5 * * * *")


def _role(value: str) -> str | None:
    return None if value and not any(c.isspace() for c in value) else \
        "is not an app role value (they have no spaces); set the value of an app role of the app registration"


def _key_values(value: str) -> dict[str, str] | None:
    """A connection string's KEY=VALUE parts by lowercase key, or None when a part is not one."""
    parts = {}
    for part in value.split(";"):
        key, sep, item = part.partition("=")
        if not part.strip():
            continue
        if not sep or not key.strip():
            return None
        parts[key.strip().lower()] = item.strip()
    return parts


def _storage_connection(value: str) -> str | None:
    parts = _key_values(value)
    fix = ("set the storage account's connection string (Access keys in the portal), or UseDevelopmentStorage=true "
           "for Azurite")
    if parts is None:
        return f"is not KEY=VALUE;KEY=VALUE...; {fix}"
    unknown = sorted(set(parts) - STORAGE_CONNECTION_KEYS)
    if unknown:
        return f"has unknown part(s) {', '.join(unknown)}; {fix}"
    empty = sorted(key for key, item in parts.items() if not item)  # the storage SDKs refuse a part without a value
    if empty:
        return f"has empty part(s) {', '.join(empty)}; {fix}"
    if "developmentstorageproxyuri" in parts:
        return f"has a DevelopmentStorageProxyUri, which the Table Storage SDK does not support; {fix}"
    if parts.get("usedevelopmentstorage", "").lower() == "true":
        return None
    if not parts.get("accountname"):
        return f"names no AccountName; {fix}"
    if not (parts.get("accountkey") or parts.get("sharedaccesssignature")):
        return f"has neither AccountKey nor SharedAccessSignature; {fix}"
    if parts.get("accountkey") and _base64(parts["accountkey"]):
        return f"has an AccountKey that is not base64; {fix}"
    for key in ("tableendpoint", "queueendpoint"):
        url = urlsplit(parts.get(key, "https://host"))
        if url.scheme not in ("http", "https") or not url.hostname:
            return f"has a {key} that is not a URL; {fix}"
    return None


def _appinsights_connection(value: str) -> str | None:
    parts = _key_values(value)
    if parts is None or not _GUID.fullmatch(parts.get("instrumentationkey", "")):
        return ("is not an Application Insights connection string (InstrumentationKey=<GUID>;IngestionEndpoint=...); "
                "copy it from the resource's Overview page")
    return None


def _appinsights_authentication(value: str) -> str | None:
    from .telemetry import export_identity  # imported here: telemetry reads Settings
    try:
        _, client_id = export_identity(value)
    except ConfigurationError:
        client_id = "not a GUID"
    if client_id is None or _GUID.fullmatch(client_id):
        return None
    return ("is not Authorization=AAD or Authorization=AAD;ClientId=<GUID of a user-assigned managed identity>; "
            "set one of them")


def _storage_account_name(value: str) -> str | None:
    return None if re.fullmatch(r"[a-z0-9]{3,24}", value) else \
        "is not a storage account name; set the account's name (3 to 24 lowercase letters and digits)"


def _setting(env: str, default: Any, help: str, *, secret: bool = False, required: bool = True,
             check: Check | None = None):
    """`required`: a deployment must set it (a default counts as set); secrets are never printed. `check`: what
    is wrong with a value and how to fix it (None: nothing), run once when the settings are loaded; a true/false
    setting is checked by reading it."""
    return field(default=default, metadata={"env": env, "help": help, "secret": secret,
                                            "required": required and default is None, "check": check})


@dataclass(frozen=True)
class Settings:
    """Every setting, with the environment variable that sets it and what it means."""

    storage_connection: str | None = _setting(
        "AzureWebJobsStorage", None,
        "Storage connection string for couplings, runs, errors and the job queue (UseDevelopmentStorage=true or "
        "an Azurite string locally). In Azure use the identity-based settings below instead: no key.",
        secret=True, required=False, check=_storage_connection)
    storage_account_name: str | None = _setting(
        "AzureWebJobsStorage__accountName", None,
        "Storage account reached with a token, not a key: its table and queue endpoints are "
        "https://<name>.table.core.windows.net and https://<name>.queue.core.windows.net. The Functions host "
        "reads the same setting for its own triggers.", required=False, check=_storage_account_name)
    storage_table_uri: str | None = _setting(
        "AzureWebJobsStorage__tableServiceUri", None,
        "Table endpoint for identity-based storage, when not derived from the account name (another cloud, Azurite).",
        required=False, check=_https("https://<account>.table.core.windows.net"))
    storage_queue_uri: str | None = _setting(
        "AzureWebJobsStorage__queueServiceUri", None,
        "Queue endpoint for identity-based storage, when not derived from the account name.", required=False,
        check=_https("https://<account>.queue.core.windows.net"))
    storage_credential: str | None = _setting(
        "AzureWebJobsStorage__credential", None,
        "managedidentity: storage tokens come from the function app's managed identity (the only kind bcsync "
        "supports for identity-based storage).", required=False, check=_one_of("managedidentity"))
    storage_client_id: str | None = _setting(
        "AzureWebJobsStorage__clientId", None,
        "Client id of the user-assigned managed identity used for storage (empty: the system-assigned one).",
        required=False, check=_guid("client id of the managed identity"))
    tenant_id: str | None = _setting("BCSYNC_TENANT_ID", None, "Microsoft Entra tenant id of the app registration.",
                                     check=_tenant)
    authority_host: str = _setting("BCSYNC_AUTHORITY_HOST", "https://login.microsoftonline.com",
                                   "Entra ID authority host; the local stack points it at the token simulator.",
                                   check=_https("https://login.microsoftonline.com", path=False))
    client_id: str | None = _setting("BCSYNC_CLIENT_ID", None,
                                     "Application (client) id of the integration app registration.",
                                     check=_guid("application (client) id of the app registration"))
    client_credential: str | None = _setting(
        "BCSYNC_CLIENT_CREDENTIAL", None,
        "How the integration app proves who it is: managedidentity (a federated credential of the app registration "
        "trusts the function app's managed identity; no secret exists), certificate or secret. Empty: the one "
        "whose settings are given.", required=False, check=_one_of("managedidentity", "certificate", "secret"))
    managed_identity_client_id: str | None = _setting(
        "BCSYNC_MANAGED_IDENTITY_CLIENT_ID", None,
        "Client id of the user-assigned managed identity that signs in to the app registration (empty: the "
        "system-assigned one).", required=False, check=_guid("client id of the managed identity"))
    federated_token_audience: str = _setting(
        "BCSYNC_FEDERATED_TOKEN_AUDIENCE", "api://AzureADTokenExchange",
        "Audience of the managed identity's token that the app's federated credential expects "
        "(api://AzureADTokenExchangeUSGov and so on in national clouds).", check=_uri)
    client_secret: str | None = _setting("BCSYNC_CLIENT_SECRET", None,
                                         "Client secret of the app registration, when signing in with a secret.",
                                         secret=True, required=False, check=_no_whitespace("secret"))
    certificate_path: str | None = _setting(
        "BCSYNC_CLIENT_CERTIFICATE_PATH", None,
        "Certificate of the app registration with its private key: a PEM file, or a PFX / PKCS#12 file.",
        required=False, check=_existing_file("certificate file (PEM or PFX)"))
    certificate: str | None = _setting(
        "BCSYNC_CLIENT_CERTIFICATE", None,
        "The certificate as base64 PKCS#12, which is what a Key Vault reference to a certificate "
        "(@Microsoft.KeyVault(SecretUri=https://<vault>.vault.azure.net/secrets/<certificate>)) resolves to.",
        secret=True, required=False, check=_base64)
    certificate_password: str | None = _setting(
        "BCSYNC_CLIENT_CERTIFICATE_PASSWORD", None, "Password of the PFX file or of an encrypted PEM key.",
        secret=True, required=False)
    certificate_thumbprint: str | None = _setting(
        "BCSYNC_CLIENT_CERTIFICATE_THUMBPRINT", None,
        "SHA-1 thumbprint (hex) of the certificate; read from the certificate when empty.", required=False,
        check=_thumbprint)
    dataverse_url: str | None = _setting("BCSYNC_DATAVERSE_URL", None,
                                         "Dataverse environment URL, e.g. https://contoso.crm4.dynamics.com.",
                                         check=_https("https://contoso.crm4.dynamics.com", path=False))
    bc_url: str | None = _setting(
        "BCSYNC_BC_URL", None,
        "Business Central environment URL: https://api.businesscentral.dynamics.com/v2.0/<tenant>/<environment>.",
        check=_https("https://api.businesscentral.dynamics.com/v2.0/<tenant>/<environment>"))
    bc_company_id: str | None = _setting(
        "BCSYNC_BC_COMPANY_ID", None,
        "Id (GUID) of the Business Central company to synchronise (required unless BCSYNC_COMPANIES lists the "
        "companies; with both, this company keeps the tables of BCSYNC_TABLE_PREFIX).", required=False,
        check=_guid("id of the Business Central company (bcsync check lists them)"))
    companies: str | None = _setting(
        "BCSYNC_COMPANIES", None,
        "Several Business Central companies in one Dataverse environment: NAME=ID entries separated by ;, each "
        "optionally with :MINUTES, the least time between two of its scheduled runs (e.g. CRONUS=<id>; "
        "FABRIKAM=<id>:60). Each company has tables of its own (BCSYNC_TABLE_PREFIX + NAME), and its Dataverse rows "
        "carry its bcbi_companyid.", required=False, check=_companies)
    bc_scope: str = _setting("BCSYNC_BC_SCOPE", "https://api.businesscentral.dynamics.com/.default",
                             "OAuth scope for Business Central.", check=_scope)
    ca_bundle: str | None = _setting(
        "BCSYNC_CA_BUNDLE", None,
        "Extra CA bundle (PEM) to trust for the services, the token endpoint and storage; the local stack uses "
        "its test CA.", required=False, check=_existing_file("PEM file of CA certificates", certificates=True))
    queue_name: str = _setting(
        "BCSYNC_QUEUE_NAME", "bcsync-jobs",
        "Storage queue of sync jobs; the queue trigger listens on it (set it in the function app).",
        check=_queue_name)
    table_prefix: str = _setting("BCSYNC_TABLE_PREFIX", "bcsync", "Prefix of the Table Storage tables.",
                                 check=_table_prefix)
    page_size: int = _setting(
        "BCSYNC_PAGE_SIZE", 20000,
        "Rows read and written per page; each service is asked for at most its largest page (Dataverse 5,000).",
        check=_in_range(1, "rows"))
    write_concurrency: int = _setting(
        "BCSYNC_WRITE_CONCURRENCY", 4,
        "Writes in flight at once per job and service (Business Central serves 5 per user at a time).",
        check=_in_range(1, "writes; Dataverse serves at most 52 at once per user", 52))
    http_timeout: float = _setting("BCSYNC_HTTP_TIMEOUT", 60.0,
                                   "Seconds before an HTTP request to a service times out.",
                                   check=_in_range(0.1, "seconds", 3600))
    max_retries: int = _setting("BCSYNC_HTTP_MAX_RETRIES", 5,
                                "Retries of a throttled or failed request before giving up.",
                                check=_in_range(0, "retries", 20))
    max_retry_wait: float = _setting("BCSYNC_MAX_RETRY_WAIT", 60.0,
                                     "Longest Retry-After (seconds) waited in place; longer waits re-queue the job.",
                                     check=_in_range(0, "seconds", 3600))
    watermark_margin_seconds: int = _setting(
        "BCSYNC_WATERMARK_MARGIN_SECONDS", 60,
        "Watermarks never pass job start minus this margin (clock skew, late commits).",
        check=_in_range(0, "seconds", 24 * 3600))
    job_lease_seconds: int = _setting("BCSYNC_JOB_LEASE_SECONDS", 600,
                                      "How long a running job holds its lease without reporting progress.",
                                      check=_in_range(1, "seconds; a queue message hides a week at most", WEEK_SECONDS))
    job_time_budget_seconds: int = _setting(
        "BCSYNC_JOB_TIME_BUDGET_SECONDS", 480,
        "A job stops after this long and continues from its checkpoint in a new invocation "
        "(below the Functions timeout: 10 minutes on the Consumption plan).",
        check=_in_range(1, "seconds", WEEK_SECONDS))
    log_retention_days: int = _setting(
        "BCSYNC_LOG_RETENTION_DAYS", 30,
        "Runs and their job log older than this many days are deleted (0 keeps them); a run that a failed "
        "record still refers to is kept, and failed records are only removed when they are resolved.",
        check=_in_range(0, "days", 36500))
    reconcile_minutes: int = _setting(
        "BCSYNC_RECONCILE_MINUTES", 360,
        "How often a mapping checks that its coupled Business Central records still exist (its API reports no "
        "deletions); Dataverse deletions come from change tracking at every run.",
        check=_in_range(0, "minutes", 366 * 24 * 60))
    facts_ttl_seconds: int = _setting(
        "BCSYNC_FACTS_TTL_SECONDS", 3600,
        "How long facts about the services' set-up (the integration user, the Business Central company's name, its "
        "local currency, the default price list) are used, kept in Table Storage, before they are read again; 0 "
        "reads them in every job.", check=_in_range(0, "seconds", 366 * 24 * 3600))
    auto_create_sales_orders: bool = _setting(
        "BCSYNC_AUTO_CREATE_SALES_ORDERS", False,
        "Business Central's \"Automatically Create Sales Orders\": the SALESORDER-ORDER job creates every order "
        "submitted in Sales (else orders are created on demand, with bcsync orders create or the HTTP API).")
    auto_process_sales_quotes: bool = _setting(
        "BCSYNC_AUTO_PROCESS_SALES_QUOTES", False,
        "Business Central's \"Automatically Process Sales Quotes\": the SALESQUOTE-QUOTE job makes a Business Central "
        "sales quote of every quote activated in Sales (a new revision replaces the earlier one's) and gives the "
        "order made from a won quote its Quote No.; off, no quote is processed.")
    sales_order_mode: str = _setting(
        "BCSYNC_SALES_ORDER_MODE", "one-way",
        "Business Central's \"Bidirectional Sales Order Int.\". one-way: submitted Sales orders become Business "
        "Central orders, which then report their progress back (SALESORDER-ORDER). two-way: released Business Central "
        "orders become Submitted Sales orders with their lines too, submitted Sales orders are created in Business "
        "Central whatever BCSYNC_AUTO_CREATE_SALES_ORDERS says, and posted orders are archived (see Two-way order "
        "mode). Existing order couplings stay valid in both modes.", check=_one_of("one-way", "two-way"))
    unit_mode: str = _setting(
        "BCSYNC_UNIT_MODE", "legacy",
        "Business Central's \"Unit Group Mapping Enabled\". legacy: each unit of measure is a Sales unit group "
        "NAV <code> of one unit (table mapping UNIT OF MEASURE). unit-groups: each item and resource has its own "
        "unit group holding all its units of measure with their quantities (UNIT GROUP, ITEM UOM, RESOURCE UOM). "
        "Couplings of the other mode stop the unit, product, price and order jobs until they are removed (see "
        "Switching the unit mode).", check=_one_of("legacy", "unit-groups"))
    ownership_model: str = _setting(
        "BCSYNC_OWNERSHIP_MODEL", "person",
        "Business Central's ownership model. person: a Sales row's owner is the user coupled to its salesperson "
        "(or purchaser), both ways, and SALESPEOPLE synchronises users. team: rows bcsync creates in Sales belong to "
        "the default team of the business unit of bcsync's application user, owners never change a Salesperson "
        "Code nor the other way round, and there is no SALESPEOPLE mapping.", check=_one_of("person", "team"))
    pricing: str = _setting(
        "BCSYNC_PRICING", "legacy",
        "Business Central's pricing experience (its feature \"New sales pricing experience\"). legacy: customer price "
        "groups and their sales prices become Sales price lists and their items (CUSTPRCGRP-PRICE, "
        "SALESPRC-PRODPRICE). extended: sales price lists and their lines do, with their currency, dates and state "
        "(PLHEADER-PRICE, PLLINE-PRODPRICE). Couplings of the other experience stop the price jobs until they are "
        "removed (see Switching the pricing experience).", check=_one_of("legacy", "extended"))
    schedule: str = _setting("BCSYNC_SCHEDULE", "0 */5 * * * *",
                             "NCRONTAB schedule of the timer that starts scheduled runs (read by the Functions host).",
                             check=_schedule)

    webhook_url: str | None = _setting(
        "BCSYNC_WEBHOOK_URL", None,
        "Public base URL of the function app (https://<app>.azurewebsites.net) to which Business Central and "
        "Dataverse post their notifications (webhooks), once `bcsync webhooks register` has run. Unset, the app's own "
        "host name in Azure (WEBSITE_HOSTNAME); set it for a custom domain or gateway. Plain http is accepted for "
        "localhost only (the local stack).",
        required=False, check=_webhook_url)
    webhook_window_seconds: int = _setting(
        "BCSYNC_WEBHOOK_WINDOW_SECONDS", 5,
        "How long the first notification of a table mapping waits before its targeted job starts, so that the "
        "notifications arriving meanwhile (a burst of changes) join that one job; 0 starts it at once.",
        check=_in_range(0, "seconds", 300))
    http_auth: str = _setting(
        "BCSYNC_HTTP_AUTH", "keys",
        "Who may call the HTTP API. keys: reading needs a function key, changing needs the admin (master) key. "
        "entra: App Service Authentication signs callers in and app roles decide (see BCSYNC_READER_ROLE and "
        "BCSYNC_ADMIN_ROLE); read when the function app starts.", check=_one_of("keys", "entra"))
    reader_role: str = _setting("BCSYNC_READER_ROLE", "bcsync.Reader",
                                "App role that may read runs, mappings, errors, couplings and availability (entra).",
                                check=_role)
    admin_role: str = _setting(
        "BCSYNC_ADMIN_ROLE", "bcsync.Admin",
        "App role that may also change: full sync, mappings, couplings, retries, orders (entra).",
        check=_role)
    appinsights_connection: str | None = _setting(
        "APPLICATIONINSIGHTS_CONNECTION_STRING", None,
        "Application Insights resource: traces, metrics and logs are exported there with OpenTelemetry.",
        required=False, check=_appinsights_connection)
    appinsights_authentication: str | None = _setting(
        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING", None,
        "Authorization=AAD;ClientId=<managed identity client id>: export with Entra ID when the resource has local "
        "authentication disabled (the Functions host reads the same setting).", required=False,
        check=_appinsights_authentication)
    python_enable_opentelemetry: bool = _setting(
        "PYTHON_ENABLE_OPENTELEMETRY", False,
        "true in Azure (read by the Functions Python worker): the worker hands each invocation's trace context to "
        "bcsync, which exports its own telemetry, and the host leaves the worker's logs to it. Leave "
        "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY unset: with it the worker would configure the exporter itself, "
        "without bcsync's managed identity credential.")

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, file: str | Path | None = None) -> "Settings":
        """Environment first, then the settings file.

        The file is `file`, else (for the real process environment only) $BCSYNC_SETTINGS or
        ./local.settings.json when present. An explicit `environ` without a file reads no file.
        """
        if environ is None:
            environ = os.environ
            file = file or environ.get("BCSYNC_SETTINGS") or None
            values = dict(read_settings_file(file or DEFAULT_SETTINGS_FILE, required=bool(file)))
        else:
            values = dict(read_settings_file(file, required=True)) if file else {}
        values.update({k: v for k, v in environ.items() if v != ""})
        kwargs, problems = {}, {}
        for f in fields(cls):
            raw = values.get(f.metadata["env"])
            if raw is None:
                continue
            try:
                kwargs[f.name] = value = _typed(f, raw)
                wrong = f.metadata["check"](value) if f.metadata["check"] else None
            except ValueError as exc:
                wrong = str(exc)
            if wrong:
                problems[f.metadata["env"]] = _problem(f, raw, wrong)
        problems.update(_company_problems(kwargs, problems))
        if problems:
            raise SettingsError(problems)
        return cls(**kwargs)

    def require(self, *attrs: str) -> None:
        missing = [f.metadata["env"] for f in fields(self) if f.name in attrs and not getattr(self, f.name)]
        if missing:
            raise ConfigurationError("Missing setting(s): " + ", ".join(missing) + ". See the README's configuration table.")

    # What the settings that choose among the built-in mappings mean, read here only (see Services.builtins).

    @property
    def unit_groups(self) -> bool:
        """Unit-group mode (BCSYNC_UNIT_MODE), else legacy."""
        return (self.unit_mode or "").strip().lower() == "unit-groups"

    @property
    def ownership(self) -> OwnershipModel:
        """The ownership model (BCSYNC_OWNERSHIP_MODEL)."""
        return OwnershipModel(self.ownership_model.strip().lower())

    @property
    def extended_pricing(self) -> bool:
        """Extended pricing (BCSYNC_PRICING), else legacy."""
        return (self.pricing or "").strip().lower() == "extended"

    @property
    def two_way_orders(self) -> bool:
        """Two-way order mode (BCSYNC_SALES_ORDER_MODE), else one-way."""
        return (self.sales_order_mode or "").strip().lower() == "two-way"

    def check_services(self) -> None:
        """What reaching Dataverse and Business Central needs (the credential is checked on sign-in)."""
        self.require("tenant_id", "client_id", "dataverse_url", "bc_url", "companies" if self.companies else
                     "bc_company_id")


def _company_problems(values: dict, found: dict) -> dict[str, str]:
    """What is wrong between BCSYNC_COMPANIES, BCSYNC_BC_COMPANY_ID and BCSYNC_TABLE_PREFIX (each fine alone)."""
    from .companies import companies, table_prefix_problem
    from .storage import TABLE_NAMES
    listed = values.get("companies")
    if not listed or {"BCSYNC_COMPANIES", "BCSYNC_BC_COMPANY_ID", "BCSYNC_TABLE_PREFIX"} & set(found):
        return {}
    prefix = values.get("table_prefix", "bcsync")
    try:
        companies(listed, values.get("bc_company_id"), prefix)
    except ConfigurationError as exc:
        return {"BCSYNC_BC_COMPANY_ID": exc.message}
    wrong = table_prefix_problem(listed, prefix, max(TABLE_NAMES, key=len))
    return {"BCSYNC_COMPANIES": wrong} if wrong else {}


def _typed(f, raw: str) -> Any:
    """The setting's value as its field's type; ValueError says what it should be."""
    if isinstance(f.default, bool):
        return _boolean(raw)
    try:
        return type(f.default)(raw) if isinstance(f.default, (int, float)) else raw
    except ValueError:
        raise ValueError("is not a whole number; set one" if isinstance(f.default, int) else
                         "is not a number; set one") from None


def _problem(f, raw: str, wrong: str) -> str:
    """What is wrong with a setting, its value shown (never a secret's, nor more than a line of it)."""
    value = "the value (a secret, not shown)" if f.metadata["secret"] else shown(raw, 80)
    default = "" if f.default is None else f", or remove the setting for the default {f.default}"
    return f"{value} {wrong}{default}"


def _boolean(raw: str) -> bool:
    value = {"true": True, "1": True, "yes": True, "on": True,
             "false": False, "0": False, "no": False, "off": False}.get(raw.strip().lower())
    if value is None:
        raise ValueError("is not true or false; set one of them")
    return value


def read_settings_file(path: str | Path, required: bool = False) -> dict[str, str]:
    """The Values of a local.settings.json (or a bare object of settings); each value text, a number or true/false."""
    path = Path(path)
    if not path.is_file():
        if required:
            raise SettingsError({f"settings file {path}": "does not exist; give the path of a local.settings.json"})
        return {}
    try:
        data = json.loads(path.read_text())
    except (ValueError, OSError) as exc:
        raise SettingsError({f"settings file {path}": f"is not readable JSON ({exc})"}) from None
    values = data.get("Values", data) if isinstance(data, dict) else data
    if not isinstance(values, dict):
        raise SettingsError({f"settings file {path}": 'must hold a JSON object {"Values": {"SETTING": "value", ...}}; '
                                                      f"its Values are {_json_kind(values)}"})
    wrong = {f"{name} in {path}": f"is {_json_kind(value)}; make it a string"
             for name, value in values.items() if value is None or isinstance(value, (dict, list))}
    if wrong:
        raise SettingsError(wrong)
    return {str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in values.items()}


def _json_kind(value: Any) -> str:
    return "null" if value is None else "an array" if isinstance(value, list) else "an object" \
        if isinstance(value, dict) else "a string" if isinstance(value, str) else "a number or true/false"


def settings_rows() -> list[dict]:
    """Every setting: its name, default, whether it is required, and what it means."""
    return [{"setting": f.metadata["env"], "default": f.default, "required": f.metadata["required"],
             "meaning": f.metadata["help"]} for f in fields(Settings)]


def settings_table() -> str:
    """The configuration table of the README, in Markdown."""
    rows = ["| Setting | Default | Required | Meaning |", "|---|---|---|---|"]
    for row in settings_rows():
        default = "" if row["default"] is None else f"`{row['default']}`"
        rows.append(f"| `{row['setting']}` | {default} | {'yes' if row['required'] else ''} | {row['meaning']} |")
    return "\n".join(rows)
