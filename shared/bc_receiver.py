"""The receiver of Business Central's notifications (POST /api/webhooks/businesscentral), a blueprint that
function_app.py registers next to the HTTP API.

Business Central first validates the URL (`?validationToken=`: answered with the token, nothing else done), then
POSTs `{"value": [...]}`, one entry per changed record of a subscription (or one "collection" entry for a burst).
Every entry must carry the receivers' key as its clientState, else the whole POST is refused (401) and nothing is
handed over. Accepted entries become `Notification`s for the core (`Services.notify`), which only reads what they
name again. How Business Central takes the answers: 2xx done; 408, 429 and 5xx retried for up to 36 hours; any other
status deletes the subscription. So only a request that is not Business Central's own (a wrong key: 401; a body it
would never send: 400) gets a 4xx, and trouble on our side (storage down) is a 503 for it to try again; a
subscription deleted after a 4xx is created again by the timer.
"""

from __future__ import annotations

import hmac
import json
import logging
import re

import azure.functions as func

from sync.errors import SyncError, shown
from sync.model import Side
from sync.notifications import BC_ROUTE, Change, Notification

from . import request
from .access import Access
from .http_api import all_services, route

bp = func.Blueprint()
log = logging.getLogger("bcsync")

_GUID = r"\{?([0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})\}?"
# api/v2.0/companies(<company id>)/<entity set>(<id>), or the entity set with a $filter for a collection
_RESOURCE = re.compile(rf"^/?api/v2\.0/companies\({_GUID}\)/([A-Za-z]+)(?:\({_GUID}\))?(\?.*)?$")
_CHANGES = {change.value: change for change in Change}


@route(BC_ROUTE, ["POST"], Access.SERVICE, blueprint=bp)
def business_central_notifications(req: func.HttpRequest) -> func.HttpResponse:
    token = req.params.get("validationToken")
    if token is not None:  # the handshake of a subscription being created or renewed
        return func.HttpResponse(token, status_code=200, mimetype="text/plain")
    entries = _entries(req.get_body())
    try:
        key = all_services().webhook_key()
        for entry in entries:
            state = entry.get("clientState")
            if key is None or not isinstance(state, str) or not hmac.compare_digest(state.encode(), key.encode()):
                return func.HttpResponse(json.dumps({"error": "The notification does not carry bcsync's key as its "
                                                              "clientState."}), status_code=401,
                                         mimetype="application/json")
        summary = all_services().notify([_notification(n, entry) for n, entry in enumerate(entries)])
    except SyncError as exc:  # never a 4xx for our own trouble: Business Central would delete the subscription
        log.error("Business Central notifications not taken%s: %s", " (retried by Business Central)"
                  if exc.transient else "", exc.message)
        return func.HttpResponse(json.dumps({"error": exc.message}), status_code=503 if exc.transient else 500,
                                 mimetype="application/json")
    return func.HttpResponse(json.dumps(summary), status_code=202, mimetype="application/json")


def _entries(raw: bytes) -> list[dict]:
    try:
        body = json.loads(raw.decode("utf-8-sig")) if raw else None  # a byte order mark came before BC 19
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise request.BadRequest("The body is not JSON; Business Central sends {\"value\": [...]}.",
                                 field="body") from None
    value = body.get("value") if isinstance(body, dict) else None
    if not isinstance(value, list) or not value:
        raise request.BadRequest("The body has no entries in value; Business Central sends {\"value\": [...]}.",
                                 field="value")
    for n, entry in enumerate(value):
        if not isinstance(entry, dict):
            raise request.BadRequest(f"value[{n}] is {request.kind(entry)}, not an object.", field=f"value[{n}]")
    return value


def _notification(n: int, entry: dict) -> Notification:
    change = _CHANGES.get(entry.get("changeType"))  # type: ignore[arg-type]
    if change is None:
        raise request.BadRequest(f"value[{n}].changeType is {shown(entry.get('changeType'))}; it is one of "
                                 f"{', '.join(_CHANGES)}.", field=f"value[{n}].changeType")
    resource = entry.get("resource")
    match = _RESOURCE.match(resource) if isinstance(resource, str) else None
    if match is None or (change is not Change.COLLECTION and match.group(3) is None):
        raise request.BadRequest(f"value[{n}].resource is {shown(resource)}; it is "
                                 f"api/v2.0/companies(<id>)/<entity set>(<id>) (a collection: without the row's id).",
                                 field=f"value[{n}].resource")
    company_id, entity_set, record_id = match.group(1), match.group(2), match.group(3)
    return Notification(Side.BC, entity_set, change, "" if change is Change.COLLECTION else record_id.lower(),
                        company_id.lower())
