"""Signing in as the integration user: an MSAL confidential client, one per worker.

Client credentials with a secret or a certificate; one token per resource (Dataverse and Business
Central have different scopes). MSAL keeps app tokens in its in-memory cache and only calls the
token endpoint on a miss, so `token()` is cheap on every request.
"""

from __future__ import annotations

import threading
from pathlib import Path

import msal
import requests

from sync.errors import AuthenticationError, ConfigurationError, ServiceUnavailableError

from .settings import Settings


def confidential_client(settings: Settings, session: requests.Session) -> msal.ConfidentialClientApplication:
    settings.require("tenant_id", "client_id")
    if settings.client_secret:
        credential: str | dict = settings.client_secret
    elif settings.certificate_path and settings.certificate_thumbprint:
        path = Path(settings.certificate_path)
        if not path.is_file():
            raise ConfigurationError(f"Certificate file {path} (BCSYNC_CLIENT_CERTIFICATE_PATH) does not exist.")
        credential = {"private_key": path.read_text(), "thumbprint": settings.certificate_thumbprint}
    else:
        raise ConfigurationError("Set BCSYNC_CLIENT_SECRET, or BCSYNC_CLIENT_CERTIFICATE_PATH and "
                                 "BCSYNC_CLIENT_CERTIFICATE_THUMBPRINT.")
    authority = f"{settings.authority_host.rstrip('/')}/{settings.tenant_id}"
    is_public_cloud = settings.authority_host.rstrip("/") == "https://login.microsoftonline.com"
    try:
        return msal.ConfidentialClientApplication(
            settings.client_id, client_credential=credential, authority=authority, http_client=session,
            # instance discovery only knows Microsoft's clouds; a private authority skips it
            instance_discovery=None if is_public_cloud else False)
    except ValueError as exc:
        raise ConfigurationError(f"The token authority {authority} is not usable: {exc}") from None
    except requests.RequestException as exc:
        raise ServiceUnavailableError(f"Token authority {authority} unreachable: {exc}") from None


class SignIn:
    """The integration user's confidential client, created on first use (MSAL contacts the
    authority when it is built) and shared by every resource."""

    def __init__(self, settings: Settings, session: requests.Session):
        self.settings = settings
        self.session = session
        self._app: msal.ConfidentialClientApplication | None = None
        self.lock = threading.Lock()

    @property
    def app(self) -> msal.ConfidentialClientApplication:
        with self.lock:
            if self._app is None:
                self._app = confidential_client(self.settings, self.session)
            return self._app

    def tokens_for(self, scope: str) -> "TokenProvider":
        return TokenProvider(self, scope)


class TokenProvider:
    """Access tokens for one resource scope; callable, as ApiClient expects."""

    def __init__(self, sign_in: SignIn, scope: str):
        self.sign_in = sign_in
        self.scope = scope

    def __call__(self, force: bool = False) -> str:
        app = self.sign_in.app
        with self.sign_in.lock:
            if force:
                app.remove_tokens_for_client()
            try:
                result = app.acquire_token_for_client(scopes=[self.scope])
            except requests.RequestException as exc:
                raise ServiceUnavailableError(f"Token endpoint unreachable: {exc}") from None
        if "access_token" in result:
            return result["access_token"]
        error = result.get("error", "unknown_error")
        description = result.get("error_description", "")
        if error in ("temporarily_unavailable", "server_error"):
            raise ServiceUnavailableError(f"Token endpoint: {error}: {description}")
        raise AuthenticationError(f"Could not sign in for {self.scope}: {error}: {description}", code=error)
