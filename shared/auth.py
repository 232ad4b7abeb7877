"""Signing in as the integration user: an MSAL confidential client, one per worker.

Client credentials proven by a federated managed identity, a certificate or a secret (shared/identity.py
turns the settings into MSAL's client credential); one token per resource (Dataverse and Business
Central have different scopes). MSAL keeps app tokens in its in-memory cache and only calls the
token endpoint on a miss, so `token()` is cheap on every request.
"""

from __future__ import annotations

import threading
from typing import Callable

import msal
import requests

from sync.errors import AuthenticationError, ConfigurationError, ServiceUnavailableError, SettingsError

from .http import failing_fast, misconfigured
from .identity import MANAGED_IDENTITY, ManagedIdentity, client_credential, credential_kind
from .settings import Settings

# What to fix when the token endpoint refuses the integration app, by Entra's AADSTS code.
_REMEDIES = {
    "AADSTS700016": "BCSYNC_CLIENT_ID is not an application of tenant BCSYNC_TENANT_ID",
    "AADSTS90002": "BCSYNC_TENANT_ID names no tenant",
    "AADSTS7000215": "BCSYNC_CLIENT_SECRET is wrong or has expired",
    "AADSTS700027": "the app registration does not know the certificate in BCSYNC_CLIENT_CERTIFICATE(_PATH): "
                    "upload its public part to the app registration",
    "AADSTS700211": "the app registration has no federated credential whose issuer is this tenant's "
                    "(https://login.microsoftonline.com/<BCSYNC_TENANT_ID>/v2.0)",
    "AADSTS700213": "the app registration's federated credential must name, as subject, the principal (object) id "
                    "of the managed identity in BCSYNC_MANAGED_IDENTITY_CLIENT_ID",
    "AADSTS700212": "BCSYNC_FEDERATED_TOKEN_AUDIENCE must be the audience of the app registration's federated "
                    "credential (api://AzureADTokenExchange unless changed)",
    "AADSTS700024": "the managed identity's token had expired when it reached Entra ID: check the clock and the "
                    "identity endpoint (BCSYNC_MANAGED_IDENTITY_CLIENT_ID)",
}
# Answers that say the configured tenant or client does not exist: the setting to fix, not a service to wait for.
_UNKNOWN = {"AADSTS700016": "BCSYNC_CLIENT_ID", "AADSTS90002": "BCSYNC_TENANT_ID"}
AUTHORITY_SETTING = "BCSYNC_AUTHORITY_HOST"


def confidential_client(settings: Settings, session: requests.Session,
                        managed_identity: Callable[[str | None, str], ManagedIdentity]) -> msal.ConfidentialClientApplication:
    settings.require("tenant_id", "client_id")
    credential = client_credential(settings, managed_identity)
    authority = f"{settings.authority_host.rstrip('/')}/{settings.tenant_id}"
    is_public_cloud = settings.authority_host.rstrip("/") == "https://login.microsoftonline.com"
    try:
        return msal.ConfidentialClientApplication(
            settings.client_id, client_credential=credential, authority=authority, http_client=session,
            # instance discovery only knows Microsoft's clouds; a private authority skips it
            instance_discovery=None if is_public_cloud else False)
    except ValueError as exc:
        if "authority configuration" in str(exc):  # its OpenID configuration answered 4xx: Entra's unknown tenant
            raise SettingsError({"BCSYNC_TENANT_ID": f"{settings.tenant_id!r} is a tenant that the authority "
                                                     f"{settings.authority_host} does not know (its OpenID "
                                                     f"configuration is refused); set the tenant id, or correct "
                                                     f"{AUTHORITY_SETTING}"}) from None
        raise ConfigurationError(f"The token authority {authority} is not usable: {exc}") from None
    except requests.RequestException as exc:
        raise misconfigured(exc, authority, AUTHORITY_SETTING) or \
            ServiceUnavailableError(f"Token authority {authority} unreachable: {exc}") from None


class SignIn:
    """The integration user's confidential client, created on first use (MSAL contacts the
    authority when it is built) and shared by every resource."""

    def __init__(self, settings: Settings, session: requests.Session,
                 managed_identity: Callable[[str | None, str], ManagedIdentity]):
        self.settings = settings
        self.session = session
        self.managed_identity = managed_identity
        self._app: msal.ConfidentialClientApplication | None = None
        self.lock = threading.Lock()

    @property
    def app(self) -> msal.ConfidentialClientApplication:
        with self.lock:
            if self._app is None:
                self._app = confidential_client(self.settings, self.session, self.managed_identity)
            return self._app

    def tokens_for(self, scope: str) -> "TokenProvider":
        return TokenProvider(self, scope)


class TokenProvider:
    """Access tokens for one resource scope; callable, as ApiClient expects."""

    def __init__(self, sign_in: SignIn, scope: str):
        self.sign_in = sign_in
        self.scope = scope

    def __call__(self, force: bool = False) -> str:
        return failing_fast(lambda: self._token(force))  # building the client (on first use) included

    def _token(self, force: bool) -> str:
        app = self.sign_in.app
        with self.sign_in.lock:
            if force:
                app.remove_tokens_for_client()
            try:
                result = app.acquire_token_for_client(scopes=[self.scope])
            except requests.RequestException as exc:
                raise misconfigured(exc, self.sign_in.settings.authority_host, AUTHORITY_SETTING) or \
                    ServiceUnavailableError(f"Token endpoint unreachable: {exc}") from None
        if "access_token" in result:
            return result["access_token"]
        error = result.get("error", "unknown_error")
        description = result.get("error_description", "")
        if error in ("temporarily_unavailable", "server_error"):
            raise ServiceUnavailableError(f"Token endpoint: {error}: {description}")
        remedy = next((text for code, text in _REMEDIES.items() if description.startswith(code)), None)
        unknown = next((setting for code, setting in _UNKNOWN.items() if description.startswith(code)), None)
        if unknown:
            raise SettingsError({unknown: f"Entra ID answered {error}: {description} Fix: {remedy}"})
        how = credential_kind(self.sign_in.settings)
        raise AuthenticationError(f"Could not sign in for {self.scope} (credential: {how}"
                                  + (", a federated credential trusting the managed identity" if how == MANAGED_IDENTITY else "")
                                  + f"): {error}: {description}" + (f" Fix: {remedy}." if remedy else ""), code=error)
