"""The receiver of Dataverse's webhooks (POST /api/webhooks/dataverse), a blueprint function_app.py registers next
to the HTTP API.

Dataverse posts the execution context of a step bcsync registered (shared.dataverse_webhooks) with the header
`x-bcsync-key`; a post without bcsync's Dataverse key is refused (401) before its body is read, a body that is no
execution context is a 400, and any trouble on bcsync's side (no key stored, storage down) a 503, which Dataverse's
asynchronous service retries. The context names a message (Create, Update, Delete), a table and a row: that becomes
a Notification, handed to the services, which read the row again in a targeted job. A change bcsync's own connection
user made is not synchronised back (as a scheduled run skips the rows it modified), so its notification is dropped
here; should WhoAmI fail, it is handed over all the same (the targeted job finds the row unchanged). The receiver
answers at once and writes nothing to either service.
"""

from __future__ import annotations

import hmac
import json
import logging
import re

import azure.functions as func

from sync.errors import SyncError
from sync.model import Side
from sync.notifications import CRM_ROUTE, Change, Notification

from .access import Access
from .dataverse_webhooks import KEY_HEADER
from .http_api import all_services, route, take_notifications
from .odata import GUID
from .request import BadRequest, kind
from .wiring import Services

bp = func.Blueprint()
log = logging.getLogger("bcsync.webhooks")

SERVICE = "Dataverse"
CHANGES = {"Create": Change.CREATED, "Update": Change.UPDATED, "Delete": Change.DELETED}
LOGICAL_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")

def _own_change(services: Services, context: dict) -> bool:
    """Whether bcsync's own connection user made the change; unknown (WhoAmI failed) counts as no: dropping our own
    changes only saves a read."""
    users = {str(context.get(name) or "").lower() for name in ("UserId", "InitiatingUserId")}
    try:
        return services.engine.crm.integration_user_id() in users  # asked once per process (WhoAmI)
    except Exception as exc:  # noqa: BLE001 - an optimisation failing must not lose the notification
        log.warning("Dataverse's WhoAmI failed (%s); the notification is handed over",
                    exc.message if isinstance(exc, SyncError) else repr(exc))
        return False


def _field(context: dict, name: str, pattern: re.Pattern, what: str) -> str:
    value = context.get(name)
    if not isinstance(value, str) or not pattern.match(value):
        got = repr(value[:80]) if isinstance(value, str) else kind(value)
        raise BadRequest(f"{name} of the execution context must be {what}; it is {got}.", field=name)
    return value


@route(CRM_ROUTE, ["POST"], Access.SERVICE, blueprint=bp)
def dataverse_notifications(req: func.HttpRequest) -> func.HttpResponse:
    """A step's execution context: 202 with what the services made of it; 401 without the key."""
    given = (req.headers.get(KEY_HEADER) or "").encode()
    return take_notifications(SERVICE, Side.CRM, lambda key: hmac.compare_digest(given, key.encode()) or None,
                              f"The {KEY_HEADER} header does not hold the key bcsync registered.",
                              lambda _: _notifications(req.get_body()))


def _notifications(body: bytes) -> tuple[list[Notification], dict]:
    """The notification of an execution context, or none with why it is ignored."""
    try:
        context = json.loads(body or b"null")
    except (ValueError, RecursionError):
        raise BadRequest("The body is not JSON: Dataverse posts the execution context as JSON.", field="body") from None
    if not isinstance(context, dict):
        raise BadRequest(f"The body is {kind(context)}, not an execution context (a JSON object).", field="body")
    message = context.get("MessageName")
    if not isinstance(message, str) or not message:
        raise BadRequest("MessageName of the execution context is missing.", field="MessageName")
    if message not in CHANGES:
        log.info("Dataverse posted a %s notification, which bcsync does not register: ignored", message[:40])
        return [], {"ignored": f"message {message[:40]}"}
    table = _field(context, "PrimaryEntityName", LOGICAL_NAME, "a table's logical name")
    row_id = _field(context, "PrimaryEntityId", GUID, "a row's id (a GUID)").lower()
    if _own_change(all_services(), context):
        return [], {"ignored": "a change bcsync made itself"}
    return [Notification(Side.CRM, table, CHANGES[message], row_id)], {}
