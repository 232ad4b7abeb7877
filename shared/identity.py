"""Who bcsync is: settings become credentials here and nowhere else.

The integration app registration signs in with MSAL's confidential client (shared/auth.py) and proves
itself with one of:
- **managedidentity**: a federated credential of the app registration trusts the function app's
  managed identity. MSAL's client assertion is that identity's token for the token-exchange audience,
  fetched from the platform's identity endpoint by MSAL's ManagedIdentityClient, so no secret exists;
- **certificate**: a PEM or PFX file, or base64 PKCS#12, which is what a Key Vault reference to a
  certificate resolves to;
- **secret**.

Storage is reached with a connection string (an account key), or with the managed identity's tokens,
from the same AzureWebJobsStorage__* settings the Functions host reads for its own triggers.
"""

from __future__ import annotations

import base64
import binascii
import os
import threading
import time
from pathlib import Path
from typing import Callable

import msal
import requests
from azure.core.credentials import AccessToken
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from sync.errors import AuthenticationError, ConfigurationError, ServiceUnavailableError

from .settings import Settings
from .storage import StorageAccount

MANAGED_IDENTITY = "managedidentity"
CERTIFICATE = "certificate"
SECRET = "secret"


class ManagedIdentity:
    """Tokens of one of the function app's managed identities, from the platform's endpoint
    (IDENTITY_ENDPOINT with IDENTITY_HEADER on App Service and Functions). MSAL caches them until
    five minutes before they expire."""

    def __init__(self, client_id: str | None, session: requests.Session):
        self.client_id = client_id or None
        self.settings: set[str] = set()  # the settings that name this identity, for messages that say what to fix
        which = msal.UserAssignedManagedIdentity(client_id=client_id) if client_id else \
            msal.SystemAssignedManagedIdentity()
        self.client = msal.ManagedIdentityClient(which, http_client=session)
        self.lock = threading.Lock()

    @property
    def setting(self) -> str:
        return " / ".join(sorted(self.settings)) or "its client id setting"

    def describe(self) -> str:
        return f"the managed identity {self.client_id} ({self.setting})" if self.client_id else \
            f"the system-assigned managed identity ({self.setting} empty)"

    def token(self, resource: str) -> tuple[str, int]:
        """An access token for `resource` and when it expires (epoch seconds)."""
        endpoint = os.environ.get("IDENTITY_ENDPOINT") or "the instance metadata service (IDENTITY_ENDPOINT is not set)"
        try:
            with self.lock:
                result = self.client.acquire_token_for_client(resource=resource)
        except requests.RequestException as exc:
            raise ServiceUnavailableError(
                f"The managed identity endpoint {endpoint} did not answer ({type(exc).__name__}). In Azure the "
                f"platform sets IDENTITY_ENDPOINT when an identity is assigned to the function app; check that "
                f"{self.describe()} is assigned to it.") from None
        except (ValueError, msal.ManagedIdentityError) as exc:
            raise AuthenticationError(f"No token for {resource} from {self.describe()}: {exc}",
                                      code="managed_identity") from None
        if "access_token" not in result:
            raise AuthenticationError(
                f"No token for {resource} from {self.describe()}: {result.get('error')}: "
                f"{result.get('error_description', '')}. Check that {self.setting} is the client id of an "
                "identity assigned to the function app.", code=str(result.get("error") or "managed_identity"))
        return result["access_token"], int(time.time()) + int(result.get("expires_in", 0))


class ManagedIdentityCredential:
    """azure-core's TokenCredential over a managed identity, for the Azure SDK clients (storage,
    Application Insights export)."""

    def __init__(self, identity: ManagedIdentity):
        self.identity = identity

    def get_token(self, *scopes: str, **kwargs) -> AccessToken:
        resource = scopes[0].removesuffix("/.default") if scopes else ""
        return AccessToken(*self.identity.token(resource))


def credential_kind(settings: Settings) -> str:
    """BCSYNC_CLIENT_CREDENTIAL, or the kind whose settings are given."""
    kind = (settings.client_credential or "").strip().lower()
    if kind:
        if kind not in (MANAGED_IDENTITY, CERTIFICATE, SECRET):
            raise ConfigurationError(f"BCSYNC_CLIENT_CREDENTIAL must be {MANAGED_IDENTITY}, {CERTIFICATE} or "
                                     f"{SECRET}, not {settings.client_credential!r}.")
        return kind
    if settings.client_secret:
        return SECRET
    if settings.certificate_path or settings.certificate:
        return CERTIFICATE
    if settings.managed_identity_client_id:
        return MANAGED_IDENTITY
    raise ConfigurationError(
        "The integration app has no credential: set BCSYNC_CLIENT_CREDENTIAL=managedidentity (a federated "
        "credential trusting the function app's managed identity, with BCSYNC_MANAGED_IDENTITY_CLIENT_ID), "
        "BCSYNC_CLIENT_CERTIFICATE_PATH or BCSYNC_CLIENT_CERTIFICATE, or BCSYNC_CLIENT_SECRET.")


def client_credential(settings: Settings, managed_identity: Callable[[str | None, str], ManagedIdentity]) -> str | dict:
    """The `client_credential` MSAL's confidential client takes, for the configured kind."""
    kind = credential_kind(settings)
    if kind == SECRET:
        if not settings.client_secret:
            raise ConfigurationError("BCSYNC_CLIENT_CREDENTIAL is secret but BCSYNC_CLIENT_SECRET is empty.")
        return settings.client_secret
    if kind == CERTIFICATE:
        return load_certificate(settings)
    identity = managed_identity(settings.managed_identity_client_id, "BCSYNC_MANAGED_IDENTITY_CLIENT_ID")
    audience = settings.federated_token_audience
    # MSAL calls this once per request to the token endpoint; the identity's own token is cached
    return {"client_assertion": lambda: identity.token(audience)[0]}


def load_certificate(settings: Settings) -> dict:
    """The private key (PEM) and SHA-1 thumbprint MSAL signs its client assertion with, from a PEM file,
    a PFX file, or base64 PKCS#12 (a Key Vault reference)."""
    password = settings.certificate_password.encode() if settings.certificate_password else None
    if settings.certificate:
        setting = "BCSYNC_CLIENT_CERTIFICATE"
        try:
            data = base64.b64decode(settings.certificate, validate=True)
        except (binascii.Error, ValueError):
            raise ConfigurationError(f"{setting} is not base64 PKCS#12 (what a Key Vault reference to a certificate "
                                     "gives); for a file use BCSYNC_CLIENT_CERTIFICATE_PATH.") from None
        key, cert = _open_pkcs12(data, password, setting)
    elif settings.certificate_path:
        setting = "BCSYNC_CLIENT_CERTIFICATE_PATH"
        path = Path(settings.certificate_path)
        if not path.is_file():
            raise ConfigurationError(f"Certificate file {path} ({setting}) does not exist.")
        data = path.read_bytes()
        if b"-----BEGIN" in data:
            key, cert = _open_pem(data, password, setting)
        else:
            key, cert = _open_pkcs12(data, password, setting)
    else:
        raise ConfigurationError("BCSYNC_CLIENT_CREDENTIAL is certificate but neither BCSYNC_CLIENT_CERTIFICATE_PATH "
                                 "nor BCSYNC_CLIENT_CERTIFICATE is set.")
    if cert is None and not settings.certificate_thumbprint:
        raise ConfigurationError(f"{setting} holds a private key but no certificate: add the certificate or set "
                                 "BCSYNC_CLIENT_CERTIFICATE_THUMBPRINT.")
    thumbprint = settings.certificate_thumbprint or cert.fingerprint(hashes.SHA1()).hex()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return {"private_key": pem, "thumbprint": thumbprint}


def _open_pkcs12(data: bytes, password: bytes | None, setting: str):
    try:
        key, cert, _ = pkcs12.load_key_and_certificates(data, password)
    except ValueError:
        raise ConfigurationError(f"The certificate in {setting} cannot be opened: not PKCS#12, or "
                                 "BCSYNC_CLIENT_CERTIFICATE_PASSWORD is wrong.") from None
    if key is None:
        raise ConfigurationError(f"The certificate in {setting} has no private key; export it with its key.")
    return key, cert


def _open_pem(data: bytes, password: bytes | None, setting: str):
    try:
        key = serialization.load_pem_private_key(data, password)
    except (ValueError, TypeError):
        raise ConfigurationError(f"The PEM file in {setting} has no readable private key (encrypted keys need "
                                 "BCSYNC_CLIENT_CERTIFICATE_PASSWORD).") from None
    try:
        cert = x509.load_pem_x509_certificate(data)
    except ValueError:
        cert = None
    return key, cert


def storage_account(settings: Settings, managed_identity: Callable[[str | None, str], ManagedIdentity]) -> StorageAccount:
    """A connection string wins, as for the Functions host; else identity-based endpoints and a token
    credential."""
    if settings.storage_connection:
        return StorageAccount(connection_string=settings.storage_connection, ca_bundle=settings.ca_bundle,
                              hint="the key in AzureWebJobsStorage was refused (or the account allows no shared "
                                   "keys: use the identity-based AzureWebJobsStorage__* settings instead)")
    name = settings.storage_account_name
    table_url = settings.storage_table_uri or (name and f"https://{name}.table.core.windows.net")
    queue_url = settings.storage_queue_uri or (name and f"https://{name}.queue.core.windows.net")
    if not (table_url or queue_url):
        raise ConfigurationError("No storage: set AzureWebJobsStorage__accountName with "
                                 "AzureWebJobsStorage__credential=managedidentity (and __clientId for a user-assigned "
                                 "identity), or AzureWebJobsStorage to a connection string.")
    if not (table_url and queue_url):
        missing = "AzureWebJobsStorage__tableServiceUri" if not table_url else "AzureWebJobsStorage__queueServiceUri"
        raise ConfigurationError(f"Identity-based storage needs both endpoints: set {missing}, or "
                                 "AzureWebJobsStorage__accountName.")
    if (settings.storage_credential or "").strip().lower() != MANAGED_IDENTITY:
        raise ConfigurationError("Identity-based storage needs AzureWebJobsStorage__credential=managedidentity "
                                 f"(got {settings.storage_credential or 'nothing'}); it is the one token source "
                                 "bcsync supports for storage.")
    identity = managed_identity(settings.storage_client_id, "AzureWebJobsStorage__clientId")
    return StorageAccount(table_url=table_url, queue_url=queue_url, credential=ManagedIdentityCredential(identity),
                          ca_bundle=settings.ca_bundle,
                          hint=f"check that {identity.describe()} holds the Storage Table Data Contributor and "
                               "Storage Queue Data Contributor roles on the account, and that its tokens are for "
                               "https://storage.azure.com and not expired")
