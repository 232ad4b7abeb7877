"""Entity-group transactions of Table Storage, written and read here rather than by the SDK.

`TableClient.submit_transaction` builds each operation as a request of its own, runs header policies on each in
a thread pool, and writes and parses the multipart body with the `email` package: in a full synchronisation that
was about three quarters of the worker's CPU (couplings are two entities per record). Here the body is written
as text in one pass and the answer is read by its status lines; the request still goes through the table client's
pipeline (authentication, retries, request counting) and fails with the SDK's exceptions, so callers see no
difference.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any, Sequence
from urllib.parse import quote

from azure.core.exceptions import HttpResponseError
from azure.core.rest import HttpRequest
from azure.data.tables import RequestTooLargeError, TableClient, TableTransactionError, UpdateMode
from azure.data.tables._serialize import _add_entity_properties

_STATUS = re.compile(rb"^HTTP/1\.1 (\d{3})", re.MULTILINE)
_HEADERS = "x-ms-version: {version}\r\nDataServiceVersion: 3.0\r\nAccept: application/json;odata=minimalmetadata\r\n"


def _address(table: TableClient, entity: dict) -> str:
    """The entity's URL within the transaction: keys with quotes doubled, then percent-encoded, as the SDK does."""
    key = ",".join(f"{name}='{quote(str(entity[name]).replace(chr(39), chr(39) * 2), safe='')}'"
                   for name in ("PartitionKey", "RowKey"))
    return f"{table.scheme}://{table._primary_hostname}/{table.table_name}({key})"


def _operation(table: TableClient, number: int, operation: tuple) -> str:
    kind, entity = operation[0], operation[1]
    options: dict[str, Any] = operation[2] if len(operation) > 2 else {}
    headers = _HEADERS.format(version=table.api_version)
    body = ""
    if kind == "delete":
        method, headers = "DELETE", headers + f"If-Match: {options.get('etag', '*')}\r\n"
    elif kind == "upsert":
        method = "PUT" if options.get("mode", UpdateMode.MERGE) == UpdateMode.REPLACE else "MERGE"
        body = json.dumps(_add_entity_properties(entity), separators=(",", ":"))
        headers += "Content-Type: application/json\r\n"
    else:
        raise ValueError(f"operation {kind!r} is not sent by bcsync's transactions")
    return (f"Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: {number}\r\n\r\n"
            f"{method} {_address(table, entity)} HTTP/1.1\r\n{headers}"
            f"Content-Length: {len(body.encode())}\r\n\r\n{body}\r\n")


def submit_transaction(table: TableClient, operations: Sequence[tuple]) -> None:
    """One entity-group transaction (operations ("upsert", entity[, {"mode": ...}]) or ("delete", keys[, {"etag": ...}]), one
    partition); raises TableTransactionError when the service refused an operation (nothing was applied),
    RequestTooLargeError when the body was too large, HttpResponseError for other answers."""
    batch, changeset = f"batch_{uuid.uuid4()}", f"changeset_{uuid.uuid4()}"
    parts = "".join(f"--{changeset}\r\n{_operation(table, n, op)}" for n, op in enumerate(operations))
    body = (f"--{batch}\r\nContent-Type: multipart/mixed; boundary={changeset}\r\n\r\n{parts}--{changeset}--\r\n"
            f"\r\n--{batch}--\r\n").encode()
    request = HttpRequest("POST", f"{table.scheme}://{table._primary_hostname}/$batch", content=body, headers={
        "x-ms-version": table.api_version, "DataServiceVersion": "3.0", "MaxDataServiceVersion": "3.0;NetFx",
        "Accept": "application/json", "Content-Type": f"multipart/mixed; boundary={batch}"})
    response = table._client.send_request(request, stream=True)  # streamed: the pipeline leaves the body unparsed
    answer = response.read()
    if response.status_code == 413:
        raise RequestTooLargeError(message="The transaction request was too large", response=response)
    if response.status_code != 202:
        raise HttpResponseError(response=response)
    statuses = [int(code) for code in _STATUS.findall(answer)]
    if len(statuses) == len(operations) and all(200 <= code < 300 for code in statuses):
        return
    failed = next((code for code in statuses if not 200 <= code < 300), None)
    said = answer.decode(errors="replace")
    if failed == 413:
        raise RequestTooLargeError(message="The transaction request was too large", response=response)
    raise TableTransactionError(message=f"The transaction was refused (HTTP {failed}): {_message(said)}",
                                response=response)


def _message(answer: str) -> str:
    """The service's message in a refused transaction's answer (its JSON error), else the answer's start."""
    match = re.search(r'"message"\s*:\s*\{[^}]*"value"\s*:\s*"([^"]*)"|"message"\s*:\s*"([^"]*)"', answer)
    return next((group for group in match.groups() if group), "") if match else answer[:300]
