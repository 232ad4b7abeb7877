"""Settings, from environment variables (app settings in Azure) or a local settings file.

Every setting is declared once, as a field of Settings with its variable name, default and meaning;
the README's configuration table is printed from the same declarations (`bcsync settings`). Environment variables win over the file, which has
the shape of the Functions host's local.settings.json ({"Values": {...}}).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from sync.errors import ConfigurationError

DEFAULT_SETTINGS_FILE = "local.settings.json"


def _setting(env: str, default: Any, help: str, *, secret: bool = False, required: bool = True):
    """`required`: a deployment must set it (a default counts as set); secrets are never printed."""
    return field(default=default, metadata={"env": env, "help": help, "secret": secret,
                                            "required": required and default is None})


@dataclass(frozen=True)
class Settings:
    """Every setting, with the environment variable that sets it and what it means."""

    storage_connection: str | None = _setting(
        "AzureWebJobsStorage", None,
        "Storage connection string for couplings, runs, errors and the job queue (UseDevelopmentStorage=true or "
        "an Azurite string locally). In Azure use the identity-based settings below instead: no key.",
        secret=True, required=False)
    storage_account_name: str | None = _setting(
        "AzureWebJobsStorage__accountName", None,
        "Storage account reached with a token, not a key: its table and queue endpoints are "
        "https://<name>.table.core.windows.net and https://<name>.queue.core.windows.net. The Functions host "
        "reads the same setting for its own triggers.", required=False)
    storage_table_uri: str | None = _setting(
        "AzureWebJobsStorage__tableServiceUri", None,
        "Table endpoint for identity-based storage, when not derived from the account name (another cloud, Azurite).",
        required=False)
    storage_queue_uri: str | None = _setting(
        "AzureWebJobsStorage__queueServiceUri", None,
        "Queue endpoint for identity-based storage, when not derived from the account name.", required=False)
    storage_credential: str | None = _setting(
        "AzureWebJobsStorage__credential", None,
        "managedidentity: storage tokens come from the function app's managed identity (the only kind bcsync "
        "supports for identity-based storage).", required=False)
    storage_client_id: str | None = _setting(
        "AzureWebJobsStorage__clientId", None,
        "Client id of the user-assigned managed identity used for storage (empty: the system-assigned one).",
        required=False)
    tenant_id: str | None = _setting("BCSYNC_TENANT_ID", None, "Microsoft Entra tenant id of the app registration.")
    authority_host: str = _setting("BCSYNC_AUTHORITY_HOST", "https://login.microsoftonline.com",
                                   "Entra ID authority host; the local stack points it at the token simulator.")
    client_id: str | None = _setting("BCSYNC_CLIENT_ID", None,
                                     "Application (client) id of the integration app registration.")
    client_credential: str | None = _setting(
        "BCSYNC_CLIENT_CREDENTIAL", None,
        "How the integration app proves who it is: managedidentity (a federated credential of the app registration "
        "trusts the function app's managed identity; no secret exists), certificate or secret. Empty: the one "
        "whose settings are given.", required=False)
    managed_identity_client_id: str | None = _setting(
        "BCSYNC_MANAGED_IDENTITY_CLIENT_ID", None,
        "Client id of the user-assigned managed identity that signs in to the app registration (empty: the "
        "system-assigned one).", required=False)
    federated_token_audience: str = _setting(
        "BCSYNC_FEDERATED_TOKEN_AUDIENCE", "api://AzureADTokenExchange",
        "Audience of the managed identity's token that the app's federated credential expects "
        "(api://AzureADTokenExchangeUSGov and so on in national clouds).")
    client_secret: str | None = _setting("BCSYNC_CLIENT_SECRET", None,
                                         "Client secret of the app registration, when signing in with a secret.",
                                         secret=True, required=False)
    certificate_path: str | None = _setting(
        "BCSYNC_CLIENT_CERTIFICATE_PATH", None,
        "Certificate of the app registration with its private key: a PEM file, or a PFX / PKCS#12 file.",
        required=False)
    certificate: str | None = _setting(
        "BCSYNC_CLIENT_CERTIFICATE", None,
        "The certificate as base64 PKCS#12, which is what a Key Vault reference to a certificate "
        "(@Microsoft.KeyVault(SecretUri=https://<vault>.vault.azure.net/secrets/<certificate>)) resolves to.",
        secret=True, required=False)
    certificate_password: str | None = _setting(
        "BCSYNC_CLIENT_CERTIFICATE_PASSWORD", None, "Password of the PFX file or of an encrypted PEM key.",
        secret=True, required=False)
    certificate_thumbprint: str | None = _setting(
        "BCSYNC_CLIENT_CERTIFICATE_THUMBPRINT", None,
        "SHA-1 thumbprint (hex) of the certificate; read from the certificate when empty.", required=False)
    dataverse_url: str | None = _setting("BCSYNC_DATAVERSE_URL", None,
                                         "Dataverse environment URL, e.g. https://contoso.crm4.dynamics.com.")
    bc_url: str | None = _setting(
        "BCSYNC_BC_URL", None,
        "Business Central environment URL: https://api.businesscentral.dynamics.com/v2.0/<tenant>/<environment>.")
    bc_company_id: str | None = _setting("BCSYNC_BC_COMPANY_ID", None,
                                         "Id (GUID) of the Business Central company to synchronise.")
    bc_scope: str = _setting("BCSYNC_BC_SCOPE", "https://api.businesscentral.dynamics.com/.default",
                             "OAuth scope for Business Central.")
    ca_bundle: str | None = _setting(
        "BCSYNC_CA_BUNDLE", None,
        "Extra CA bundle (PEM) to trust for the services, the token endpoint and storage; the local stack uses "
        "its test CA.", required=False)
    queue_name: str = _setting("BCSYNC_QUEUE_NAME", "bcsync-jobs",
                               "Storage queue of sync jobs; the queue trigger listens on it (set it in the function app).")
    table_prefix: str = _setting("BCSYNC_TABLE_PREFIX", "bcsync", "Prefix of the Table Storage tables.")
    page_size: int = _setting(
        "BCSYNC_PAGE_SIZE", 20000,
        "Rows read and written per page; each service is asked for at most its largest page (Dataverse 5,000).")
    write_concurrency: int = _setting(
        "BCSYNC_WRITE_CONCURRENCY", 4,
        "Writes in flight at once per job and service (Business Central serves 5 per user at a time).")
    http_timeout: float = _setting("BCSYNC_HTTP_TIMEOUT", 60.0, "Seconds before an HTTP request to a service times out.")
    max_retries: int = _setting("BCSYNC_HTTP_MAX_RETRIES", 5, "Retries of a throttled or failed request before giving up.")
    max_retry_wait: float = _setting("BCSYNC_MAX_RETRY_WAIT", 60.0,
                                     "Longest Retry-After (seconds) waited in place; longer waits re-queue the job.")
    watermark_margin_seconds: int = _setting("BCSYNC_WATERMARK_MARGIN_SECONDS", 60,
                                             "Watermarks never pass job start minus this margin (clock skew, late commits).")
    job_lease_seconds: int = _setting("BCSYNC_JOB_LEASE_SECONDS", 600,
                                      "How long a running job holds its lease without reporting progress.")
    job_time_budget_seconds: int = _setting(
        "BCSYNC_JOB_TIME_BUDGET_SECONDS", 480,
        "A job stops after this long and continues from its checkpoint in a new invocation "
        "(below the Functions timeout: 10 minutes on the Consumption plan).")
    log_retention_days: int = _setting(
        "BCSYNC_LOG_RETENTION_DAYS", 30,
        "Runs and their job log older than this many days are deleted (0 keeps them); a run that a failed "
        "record still refers to is kept, and failed records are only removed when they are resolved.")
    reconcile_minutes: int = _setting(
        "BCSYNC_RECONCILE_MINUTES", 360,
        "How often a mapping checks that its coupled Business Central records still exist (its API reports no "
        "deletions); Dataverse deletions come from change tracking at every run.")
    facts_ttl_seconds: int = _setting(
        "BCSYNC_FACTS_TTL_SECONDS", 3600,
        "How long facts about the services' set-up (the integration user, the Business Central company's name, its "
        "local currency, the default price list) are used, kept in Table Storage, before they are read again; 0 "
        "reads them in every job.")
    auto_create_sales_orders: bool = _setting(
        "BCSYNC_AUTO_CREATE_SALES_ORDERS", False,
        "Business Central's \"Automatically Create Sales Orders\": the SALESORDER-ORDER job creates every order "
        "submitted in Sales (else orders are created on demand, with bcsync orders create or the HTTP API).")
    schedule: str = _setting("BCSYNC_SCHEDULE", "0 */5 * * * *",
                             "NCRONTAB schedule of the timer that starts scheduled runs (read by the Functions host).")

    http_auth: str = _setting(
        "BCSYNC_HTTP_AUTH", "keys",
        "Who may call the HTTP API. keys: reading needs a function key, changing needs the admin (master) key. "
        "entra: App Service Authentication signs callers in and app roles decide (see BCSYNC_READER_ROLE and "
        "BCSYNC_ADMIN_ROLE); read when the function app starts.")
    reader_role: str = _setting("BCSYNC_READER_ROLE", "bcsync.Reader",
                                "App role that may read runs, mappings, errors, couplings and availability (entra).")
    admin_role: str = _setting("BCSYNC_ADMIN_ROLE", "bcsync.Admin",
                               "App role that may also change: full sync, mappings, couplings, retries, orders (entra).")
    appinsights_connection: str | None = _setting(
        "APPLICATIONINSIGHTS_CONNECTION_STRING", None,
        "Application Insights resource: traces, metrics and logs are exported there with OpenTelemetry.",
        required=False)
    appinsights_authentication: str | None = _setting(
        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING", None,
        "Authorization=AAD;ClientId=<managed identity client id>: export with Entra ID when the resource has local "
        "authentication disabled (the Functions host reads the same setting).", required=False)
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
        kwargs = {}
        for f in fields(cls):
            raw = values.get(f.metadata["env"])
            if raw is None:
                continue
            kind = type(f.default) if isinstance(f.default, (int, float)) else str
            try:
                kwargs[f.name] = _boolean(raw) if kind is bool else kind(raw)
            except ValueError:
                raise ConfigurationError(f"Setting {f.metadata['env']} must be a {kind.__name__}, got {raw!r}.") from None
        return cls(**kwargs)

    def require(self, *attrs: str) -> None:
        missing = [f.metadata["env"] for f in fields(self) if f.name in attrs and not getattr(self, f.name)]
        if missing:
            raise ConfigurationError("Missing setting(s): " + ", ".join(missing) + ". See the README's configuration table.")

    def check_services(self) -> None:
        """What reaching Dataverse and Business Central needs (the credential is checked on sign-in)."""
        self.require("tenant_id", "client_id", "dataverse_url", "bc_url", "bc_company_id")


def _boolean(raw: str) -> bool:
    value = {"true": True, "1": True, "yes": True, "on": True,
             "false": False, "0": False, "no": False, "off": False}.get(raw.strip().lower())
    if value is None:
        raise ValueError(raw)
    return value


def read_settings_file(path: str | Path, required: bool = False) -> dict[str, str]:
    path = Path(path)
    if not path.is_file():
        if required:
            raise ConfigurationError(f"Settings file {path} does not exist.")
        return {}
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise ConfigurationError(f"Settings file {path} is not valid JSON: {exc}") from None
    values = data.get("Values", data) if isinstance(data, dict) else {}
    return {str(k): str(v) for k, v in values.items()}


def settings_table() -> str:
    """The configuration table of the README, in Markdown."""
    rows = ["| Setting | Default | Required | Meaning |", "|---|---|---|---|"]
    for f in fields(Settings):
        default = "" if f.default is None else f"`{f.default}`"
        required = "yes" if f.metadata["required"] else ""
        rows.append(f"| `{f.metadata['env']}` | {default} | {required} | {f.metadata['help']} |")
    return "\n".join(rows)
