"""`POST $batch`: multipart/mixed requests, changesets, Content-ID references (apis.md A.8).

Inner request lines may carry raw spaces inside the URL (the SDK does not encode `$filter` in batch
parts), so a request line is read as METHOD, then everything up to a trailing ` HTTP/1.1`.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlsplit

from werkzeug.datastructures import Headers, MultiDict

from . import errors
from .app import Ctx, Reply, error_reply
from .errors import DataverseError
from .query import parse_prefer

if TYPE_CHECKING:
    from .app import WebApi

MAX_REQUESTS = 1000
BOUNDARY_RE = re.compile(r'boundary="?([^";,\s]+)"?', re.IGNORECASE)
ENTITY_URL_RE = re.compile(r"/(?P<set>[A-Za-z_][A-Za-z0-9_]*)\((?P<id>[0-9a-fA-F-]{36})\)$")


@dataclass
class InnerRequest:
    method: str
    url: str
    headers: Headers
    body: bytes
    content_id: str | None = None


@dataclass
class Part:
    request: InnerRequest | None = None
    changeset: list[InnerRequest] = field(default_factory=list)
    is_changeset: bool = False


class _Abort(Exception):
    def __init__(self, reply: Reply, content_id: str | None):
        super().__init__("changeset failed")
        self.reply = reply
        self.content_id = content_id


def _boundary(content_type: str | None) -> str | None:
    match = BOUNDARY_RE.search(content_type or "")
    return match.group(1) if match else None


def _split(body: str, boundary: str) -> list[str]:
    """The parts between `--boundary` lines, up to `--boundary--`."""
    parts, current, inside = [], [], False
    for line in body.split("\n"):
        marker = line.rstrip()
        if marker == f"--{boundary}" or marker == f"--{boundary}--":
            if inside:
                parts.append("\n".join(current))
            current, inside = [], True
            if marker.endswith("--") and marker != f"--{boundary}":
                break
            continue
        if inside:
            current.append(line)
    return parts


def _headers_and_rest(text: str) -> tuple[Headers, str]:
    lines = text.split("\n")
    headers = Headers()
    i = 0
    while i < len(lines) and lines[i].strip() != "":
        name, _, value = lines[i].partition(":")
        headers.add(name.strip(), value.strip())
        i += 1
    return headers, "\n".join(lines[i + 1:])


def _inner_request(mime_headers: Headers, text: str) -> InnerRequest:
    lines = text.lstrip("\n").split("\n")
    request_line = lines[0].strip()
    words = request_line.split(" ")
    if len(words) < 2:
        raise errors.bad_query(f"The request line '{request_line}' in the batch is not valid.")
    method = words[0].upper()
    if words[-1].upper().startswith("HTTP/") and len(words) > 2:
        url = " ".join(words[1:-1])
    else:
        url = " ".join(words[1:])
    headers, body = _headers_and_rest("\n".join(lines[1:]))
    return InnerRequest(method, url, headers, body.strip().encode("utf-8"),
                        mime_headers.get("Content-ID") or headers.get("Content-ID"))


def parse_batch(content_type: str | None, raw: bytes) -> list[Part]:
    boundary = _boundary(content_type)
    if not content_type or "multipart/mixed" not in content_type.lower() or not boundary:
        raise errors.bad_query("The batch request must have a 'Content-Type' of 'multipart/mixed' with a boundary.")
    body = raw.decode("utf-8").replace("\r\n", "\n")
    parts = []
    for chunk in _split(body, boundary):
        mime, rest = _headers_and_rest(chunk)
        part_type = (mime.get("Content-Type") or "").lower()
        if part_type.startswith("multipart/mixed"):
            inner_boundary = _boundary(mime.get("Content-Type"))
            if not inner_boundary:
                raise errors.bad_query("A changeset must declare its boundary.")
            requests = []
            for sub in _split(rest, inner_boundary):
                sub_mime, sub_rest = _headers_and_rest(sub)
                requests.append(_inner_request(sub_mime, sub_rest))
            parts.append(Part(changeset=requests, is_changeset=True))
        elif part_type.startswith("application/http"):
            parts.append(Part(request=_inner_request(mime, rest)))
        else:
            raise errors.bad_query(f"The batch part has an unsupported Content-Type '{mime.get('Content-Type')}'.")
    return parts


def _render(reply: Reply, content_id: str | None = None) -> str:
    lines = ["Content-Type: application/http", "Content-Transfer-Encoding: binary"]
    if content_id is not None:
        lines.append(f"Content-ID: {content_id}")
    lines.append("")
    try:
        reason = HTTPStatus(reply.status).phrase
    except ValueError:
        reason = ""
    lines.append(f"HTTP/1.1 {reply.status} {reason}".rstrip())
    payload = reply.payload().decode("utf-8")
    if reply.body is not None:
        lines.append(f"Content-Type: {reply.content_type or 'application/json; odata.metadata=minimal'}")
    lines.append("OData-Version: 4.0")
    lines.append(f"REQ_ID: {uuid.uuid4()}")
    for key, value in reply.headers.items():
        lines.append(f"{key}: {value}")
    lines.append("")
    lines.append(payload)
    return "\r\n".join(lines)


def run_batch(api: "WebApi", ctx: Ctx) -> Reply:
    parts = parse_batch(ctx.headers.get("Content-Type"), ctx.body)
    total = sum(len(p.changeset) if p.is_changeset else 1 for p in parts)
    if total > MAX_REQUESTS:
        raise errors.bad_query(f"The number of requests in the batch ({total}) exceeds the limit of {MAX_REQUESTS}.")
    continue_on_error = ctx.prefs.continue_on_error
    boundary = f"batchresponse_{uuid.uuid4()}"
    rendered: list[str] = []
    failed = False
    for part in parts:
        if part.is_changeset:
            text, ok = _run_changeset(api, ctx, part.changeset)
        else:
            reply = _run_one(api, ctx, part.request, None)
            text, ok = _render(reply), reply.status < 400
        if not ok and not continue_on_error:
            rendered = [text]
            failed = True
            break
        rendered.append(text)
    body = "".join(f"--{boundary}\r\n{text}\r\n" for text in rendered) + f"--{boundary}--\r\n"
    return Reply(400 if failed else 200, body, content_type=f"multipart/mixed; boundary={boundary}")


def _run_changeset(api: "WebApi", ctx: Ctx, requests: list[InnerRequest]) -> tuple[str, bool]:
    boundary = f"changesetresponse_{uuid.uuid4()}"
    refs: dict = {}
    replies: list[tuple[Reply, str | None]] = []
    try:
        with api.sim.store.transaction():
            for request in requests:
                if request.method == "GET":
                    raise _Abort(error_reply(errors.bad_query(
                        "GET requests are not allowed inside a changeset.")), request.content_id)
                reply = _run_one(api, ctx, request, refs)
                if reply.status >= 400:
                    raise _Abort(reply, request.content_id)
                replies.append((reply, request.content_id))
                if request.content_id:
                    ref = _entity_ref(api, reply)
                    if ref is not None:
                        refs[request.content_id.strip()] = ref
    except _Abort as abort:
        return _render(abort.reply, abort.content_id), False
    inner = "".join(f"--{boundary}\r\n{_render(reply, cid)}\r\n" for reply, cid in replies) + f"--{boundary}--"
    text = f"Content-Type: multipart/mixed; boundary={boundary}\r\n\r\n{inner}"
    return text, True


def _entity_ref(api: "WebApi", reply: Reply) -> tuple[str, str] | None:
    url = reply.headers.get("OData-EntityId") or reply.headers.get("Location")
    if not url:
        return None
    match = ENTITY_URL_RE.search(url)
    if not match:
        return None
    entity = api.sim.schema.by_set.get(match["set"])
    return (entity.logical_name, match["id"].lower()) if entity else None


def _run_one(api: "WebApi", ctx: Ctx, request: InnerRequest, refs: dict | None) -> Reply:
    try:
        path, query = _resolve_url(api, ctx, request.url, refs)
        inner = Ctx(request.method, path, MultiDict(parse_qsl(query, keep_blank_values=True)), request.headers,
                    request.body, ctx.root, ctx.caller, parse_prefer(request.headers.getlist("Prefer")), refs)
        if inner.path.strip("/") == "$batch":
            raise errors.bad_query("A batch cannot contain another batch.")
        # a scripted fault may hit one request of a batch, which answers for itself in its part
        fault = api.sim.faults.take(request.method, urlsplit(ctx.root).path + "/" + path, inner=True)
        if fault is not None:
            retry = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            return Reply(fault.status, fault.body or errors.error_body(fault.status), retry,
                         "application/json; odata.metadata=minimal")
        return api.dispatch(inner)
    except DataverseError as exc:
        return error_reply(exc)


def _resolve_url(api: "WebApi", ctx: Ctx, url: str, refs: dict | None) -> tuple[str, str]:
    url = url.strip()
    if url.startswith("$"):
        ident, _, tail = url[1:].partition("/")
        if refs is None or ident not in refs:
            raise errors.bad_query(f"Content-ID Reference: '${ident}' does not exist in the batch context.")
        logical_name, row_id = refs[ident]
        entity = api.sim.schema[logical_name]
        path = f"{entity.entity_set}({row_id})" + (f"/{tail}" if tail else "")
        return path, ""
    split = urlsplit(url)
    path = split.path
    marker = re.search(r"/api/data/v9\.\d/?", path)
    if marker:
        path = path[marker.end():]
    elif split.scheme:
        raise errors.bad_query(f"The URL '{url}' in the batch is not under the service root.")
    return path.lstrip("/"), split.query
