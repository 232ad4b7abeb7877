"""The receiver of Business Central's notifications (POST /api/webhooks/businesscentral), a blueprint that
function_app.py registers next to the HTTP API.

Business Central first validates the URL (`?validationToken=`: answered with the token, nothing else done), then
POSTs `{"value": [...]}`, one entry per changed record of a subscription (or one "collection" entry for a burst).
One POST may carry entries of several subscriptions, and Business Central takes the answer for all of them: 2xx
done; 408, 429 and 5xx retried for up to 36 hours; any other status deletes every subscription of the POST. So the
entries are checked one by one: one without bcsync's Business Central key as its clientState, or one bcsync cannot
read, is logged and left out, and the others are handed over as `Notification`s to the core (`Services.notify`),
which only reads what they name again. A 4xx is only for a request with nothing of Business Central's in it (no
entry with the key: 401; a body it would never send: 400). Trouble on bcsync's side (storage down, no key stored)
is a 503, for Business Central to try again; a subscription deleted after a 4xx is created again by the timer.
"""

from __future__ import annotations

import json
import logging
import re

import azure.functions as func

from sync.errors import shown
from sync.model import Side
from sync.notifications import BC_ROUTE, Change, Notification

from . import request
from .access import Access
from .bc_webhooks import RESOURCE, carries
from .http_api import problem_answer, route, take_notifications

bp = func.Blueprint()
log = logging.getLogger("bcsync.webhooks")

SERVICE = "Business Central"
_CHANGES = {change.value: change for change in Change}
TOKEN_LENGTH = 1024
VALIDATION_TOKEN = re.compile(rf"[ -~]{{1,{TOKEN_LENGTH}}}")


@route(BC_ROUTE, ["POST"], Access.SERVICE, blueprint=bp)
def business_central_notifications(req: func.HttpRequest) -> func.HttpResponse:
    token = req.params.get("validationToken")
    if token is not None:  # the handshake of a subscription being created or renewed
        if not VALIDATION_TOKEN.fullmatch(token):  # echoed as it came: nothing a browser could take for a page
            return problem_answer(400, f"The validationToken is not 1 to {TOKEN_LENGTH} printable characters.")
        return func.HttpResponse(token, status_code=200, mimetype="text/plain",
                                 headers={"X-Content-Type-Options": "nosniff"})
    entries = _entries(req.get_body())

    def keyed(key: str) -> list | None:
        return [(n, entry) for n, entry in enumerate(entries) if carries(entry, key)] or None

    def read(keyed: list) -> tuple[list[Notification], dict]:
        if len(keyed) < len(entries):
            log.warning("%d of %d Business Central notifications do not carry bcsync's key as their clientState: "
                        "left out", len(entries) - len(keyed), len(entries))
        notifications = []
        for n, entry in keyed:
            try:
                notifications.append(_notification(n, entry))
            except request.BadRequest as exc:  # Business Central's own (it carries the key): a 4xx would have it
                log.error("a Business Central notification bcsync cannot read is left out (polling catches its "
                          "change): %s", exc)  # delete the subscription, so it is answered 202 with the others
        left_out = len(entries) - len(notifications)
        said = {"left_out": left_out} if left_out else {}
        return notifications, said if notifications else {"notifications": 0, **said}
    return take_notifications(SERVICE, Side.BC, keyed, "No notification carries bcsync's key as its clientState.",
                              read)


def _entries(raw: bytes) -> list:
    try:
        body = json.loads(raw.decode("utf-8-sig")) if raw else None  # a byte order mark came before BC 19
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise request.BadRequest("The body is not JSON; Business Central sends {\"value\": [...]}.",
                                 field="body") from None
    value = body.get("value") if isinstance(body, dict) else None
    if not isinstance(value, list) or not value:
        raise request.BadRequest("The body has no entries in value; Business Central sends {\"value\": [...]}.",
                                 field="value")
    if not any(isinstance(entry, dict) for entry in value):
        raise request.BadRequest(f"value[0] is {request.kind(value[0])}, not an object.", field="value[0]")
    return value


def _notification(n: int, entry: dict) -> Notification:
    change = _CHANGES.get(entry.get("changeType"))  # type: ignore[arg-type]
    if change is None:
        raise request.BadRequest(f"value[{n}].changeType is {shown(entry.get('changeType'))}; it is one of "
                                 f"{', '.join(_CHANGES)}.", field=f"value[{n}].changeType")
    resource = entry.get("resource")
    match = RESOURCE.match(resource) if isinstance(resource, str) else None
    if match is None or (change is not Change.COLLECTION and match.group(3) is None):
        raise request.BadRequest(f"value[{n}].resource is {shown(resource)}; it is "
                                 f"api/v2.0/companies(<id>)/<entity set>(<id>) (a collection: without the row's id).",
                                 field=f"value[{n}].resource")
    company_id, entity_set, record_id = match.group(1), match.group(2), match.group(3)
    return Notification(Side.BC, entity_set, change, "" if change is Change.COLLECTION else record_id.lower(),
                        company_id.lower())
