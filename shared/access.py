"""Who may call the HTTP API: reading (runs, mappings, errors, couplings, availability) or changing
(full sync, mapping changes, couple and uncouple, retries, order creation).

Two modes, chosen by BCSYNC_HTTP_AUTH when the function app starts:
- **keys**: the Functions host checks keys before our code runs. Reading routes are at the function
  level (any function or host key), changing routes at the admin level (only the master key).
- **entra**: App Service Authentication (Easy Auth) signs callers in; the host lets every request
  through and we check the caller's app roles from the principal the platform forwards in
  X-MS-CLIENT-PRINCIPAL. The platform strips that header from incoming requests only when Easy Auth
  is on (it then sets WEBSITE_AUTH_ENABLED), so without it every request is refused: a header sent by
  the caller would otherwise be believed.

A host's key level and an Easy Auth identity cannot be combined on one route (the host grants levels
only to keys), hence the two modes.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from enum import Enum
from typing import Mapping

from .settings import Settings

KEYS, ENTRA = "keys", "entra"
PRINCIPAL_HEADER = "x-ms-client-principal"


class Access(Enum):
    READ = "read"
    CHANGE = "change"
    # a service posting notifications (webhooks): no key level and no app role, as neither service can send one;
    # the route itself checks the secret the registration gave the service
    SERVICE = "service"


@dataclass(frozen=True)
class Refusal:
    status: int  # 401: who are you?  403: you may not.
    message: str


def auth_mode(settings: Settings) -> str:
    mode = (settings.http_auth or KEYS).strip().lower()
    return mode if mode in (KEYS, ENTRA) else KEYS  # an unknown mode falls back to the stricter host keys


def authorise(mode: str, access: Access, headers: Mapping[str, str], settings: Settings,
              environ: Mapping[str, str]) -> Refusal | None:
    """None when the caller may do this; else why not. In keys mode the host has already decided."""
    if mode != ENTRA or access is Access.SERVICE:
        return None
    if str(environ.get("WEBSITE_AUTH_ENABLED", "")).lower() != "true":
        return Refusal(401, "BCSYNC_HTTP_AUTH is entra but App Service Authentication is not enabled on this "
                            "function app, so no caller can be trusted; enable it or use BCSYNC_HTTP_AUTH=keys.")
    raw = next((v for k, v in headers.items() if k.lower() == PRINCIPAL_HEADER), None)
    if not raw:
        return Refusal(401, "Sign in with Microsoft Entra ID: this request carries no signed-in caller.")
    roles = _roles(raw)
    if roles is None:
        return Refusal(401, "The signed-in caller could not be read (X-MS-CLIENT-PRINCIPAL is malformed).")
    allowed = {settings.admin_role} if access is Access.CHANGE else {settings.admin_role, settings.reader_role}
    if roles & allowed:
        return None
    need = " or ".join(sorted(allowed))
    return Refusal(403, f"This needs the app role {need}; the caller has "
                        f"{', '.join(sorted(roles)) or 'no app role'}.")


def _roles(raw: str) -> set[str] | None:
    """App roles from Easy Auth's principal: base64 JSON with `claims` [{typ, val}] and the claim type
    of roles in `role_typ`."""
    try:
        principal = json.loads(base64.b64decode(raw, validate=False))
        role_type = principal.get("role_typ") or "roles"
        return {str(c["val"]) for c in principal.get("claims", [])
                if isinstance(c, dict) and c.get("typ") in (role_type, "roles") and "val" in c}
    except (binascii.Error, ValueError, TypeError, AttributeError, UnicodeDecodeError):
        return None
