"""OData pieces both services share: literals, id filters, and following @odata.nextLink."""

from __future__ import annotations

import datetime as dt
import re
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Iterator, Sequence, TypeVar

from sync.errors import ServiceUnavailableError, SyncError
from sync.ports import Record, WriteResult

from .http import ApiClient
from .telemetry import map_in_context, submit_in_context

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def literal(value: Any) -> str:
    """An OData $filter literal: strings quoted (quotes doubled), GUIDs and numbers bare."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, dt.datetime):
        return odata_datetime(value)
    text = str(value)
    if _GUID.match(text):
        return text
    return "'" + text.replace("'", "''") + "'"


def odata_datetime(value: dt.datetime, millis: bool = False) -> str:
    value = value.astimezone(dt.timezone.utc)
    if millis:
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_datetime(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def any_of(field: str, values: Sequence[Any]) -> str:
    """`field eq a or field eq b ...`: one field only, which both services accept."""
    return " or ".join(f"{field} eq {literal(v)}" for v in values)


def both(*filters: str) -> str:
    parts = [f"({f})" for f in filters if f]
    return " and ".join(parts)


def chunked(values: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


def follow_pages(api: ApiClient, path: str, params: dict | None, headers: dict[str, str]) -> Iterator[list[dict]]:
    """GET a collection and follow @odata.nextLink verbatim, resending the same headers.

    The next page is requested in the background while the caller works on the current one, so reading
    overlaps writing; never more than one page ahead, so memory holds two pages at most. A failed read
    raises when the caller asks for that page. A caller that stops early (closes the iterator, or drops
    it) waits here for a request in flight to be answered, so no thread or half-read answer is left behind.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="next-page") as pool:
        pending: Future | None = submit_in_context(pool, api.get_json, path, params=params, headers=headers)
        seen: set[str] = set()
        try:
            while pending is not None:
                body = pending.result()
                url, pending = body.get("@odata.nextLink"), None
                if url and url not in seen:
                    seen.add(url)
                    pending = submit_in_context(pool, api.get_json, url, headers=headers)
                yield body.get("value", [])
                if url and pending is None:
                    raise ServiceUnavailableError(f"{api.service} returned the same next page link twice: {url}")
        finally:
            if pending is not None:
                pending.cancel()  # not started yet: never sent; started: the pool's exit waits for its answer


T = TypeVar("T")


class PartialWrite(Exception):
    """The row was written, but not all of it (a second request failed): keep the row, report the rest."""

    def __init__(self, record: Record, error: SyncError):
        super().__init__(error.message)
        self.record, self.error = record, error


def write_each(items: Sequence[T], write: Callable[[T], Record], concurrency: int = 1) -> list[WriteResult]:
    """Write rows one request each, up to `concurrency` at a time, answering per row in order.

    Every error is the row's result, transient ones included: the engine records what was written
    before it stops the job on a service in trouble (throttled beyond patience, down), so nothing
    that succeeded is forgotten when the job is retried.
    """
    def one(item: T) -> WriteResult:
        try:
            return WriteResult(write(item))
        except PartialWrite as partial:
            return WriteResult(partial.record, partial.error)
        except SyncError as exc:
            return WriteResult(error=exc)

    return run_concurrently(items, one, concurrency)


R = TypeVar("R")


def run_concurrently(items: Sequence[T], work: Callable[[T], R], concurrency: int = 1) -> list[R]:
    """`work` on every item, up to `concurrency` at a time, the answers in the items' order."""
    if concurrency <= 1 or len(items) <= 1:
        return [work(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(concurrency, len(items)), thread_name_prefix="write") as pool:
        return map_in_context(pool, work, items)
