"""OData pieces both services share: literals, id filters, and following @odata.nextLink."""

from __future__ import annotations

import datetime as dt
import json
import re
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Iterator, Sequence, TypeVar

from sync.errors import ServiceUnavailableError, SyncError
from sync.ports import WORK_ROWS, Record, WriteResult

from .http import ApiClient
from .telemetry import map_in_context, submit_in_context

GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


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
    if GUID.match(text):
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


# a page's text is a third of its rows as Python objects: a page is kept as text and its rows parsed and handed on
# in parts of WORK_ROWS
NEXT_LINK = "@odata.nextLink"
_DECODE = json.JSONDecoder().raw_decode
_BLANKS = " \t\n\r"
_SPACE = re.compile(f"[{_BLANKS}]*")


class CollectionPage:
    """One page of a collection as the service answered it, in JSON text: its rows are parsed `WORK_ROWS` at a
    time (`parts`), so that the rows held as Python objects are one part's, not the page's.

    The next page's link is known before any row is parsed, so that the next page can be read meanwhile: from the
    members before the rows, or else from those after them: the last `"@odata.nextLink"` in the text from which
    members run to the object's end and the end of the text (a row's value or nested member of that name has at
    least the rows' `]` and the answer's `}` after it). The members after the rows are read once the rows are, and
    must agree. Rows share their field names (one string per name and page, as `json.loads` of a whole page
    would), which a row parsed on its own does not."""

    def __init__(self, service: str, text: str):
        self.service, self.text = service, text
        self.members: dict[str, Any] = {}
        try:
            at = self._member_start(0, "{")
            self.rows_at = self._members(at)
        except (ValueError, IndexError) as exc:
            raise self._unreadable(exc) from None
        self.next_link = self.members.get(NEXT_LINK)
        if self.rows_at is not None and NEXT_LINK not in self.members:
            self.next_link = self._link_after_rows()

    def _unreadable(self, why: Exception) -> ServiceUnavailableError:
        problem = "it ends too soon" if isinstance(why, IndexError) else str(why)
        return ServiceUnavailableError(f"{self.service} answered a page that is not readable JSON ({problem}).")

    def _skip(self, at: int) -> int:
        return _SPACE.match(self.text, at).end()

    def _member_start(self, at: int, expected: str) -> int:
        at = self._skip(at)
        if self.text[at] != expected:
            raise ValueError(f"{expected!r} expected at {at}")
        return at + 1

    def _members(self, at: int, into: dict[str, Any] | None = None) -> int | None:
        """Reads the members from `at` up to the rows (`value`), or to the object's end: where the rows start."""
        into = self.members if into is None else into
        at = self._skip(at)
        if self.text[at] == "}":
            return None
        while True:
            name, at = _DECODE(self.text, self._skip(at))
            at = self._skip(self._member_start(at, ":"))
            if name == "value":
                return self._member_start(at, "[")
            into[name], at = _DECODE(self.text, at)
            at = self._skip(at)
            if self.text[at] == "}":
                return None
            at = self._member_start(at, ",")

    def _link_after_rows(self) -> str | None:
        end = len(self.text)
        while (at := self.text.rfind(f'"{NEXT_LINK}"', self.rows_at, end)) >= 0:
            link = self._last_members(at).get(NEXT_LINK)
            if isinstance(link, str):
                return link
            end = at
        return None

    def _last_members(self, at: int) -> dict[str, Any]:
        """The members from `at` (a member's name) when they end the object and the text; else none."""
        members: dict[str, Any] = {}
        try:
            while True:
                name, at = _DECODE(self.text, at)
                members[name], at = _DECODE(self.text, self._skip(self._member_start(at, ":")))
                at = self._skip(at)
                if self.text[at] == "}":
                    return members if self._skip(at + 1) == len(self.text) else {}
                at = self._skip(self._member_start(at, ","))
        except (ValueError, IndexError, TypeError):  # TypeError: a name that is not a string, unhashable
            return {}

    def parts(self) -> Iterator[list[dict]]:
        """The rows, WORK_ROWS at a time (one empty part when there are none); the text goes once they are read."""
        text, part, size = self.text, [], WORK_ROWS
        names: dict[str, str] = {}
        try:
            at = None if self.rows_at is None else self._skip(self.rows_at)
            more = at is not None and text[at] != "]"
            if at is not None and not more:
                at = self._skip(at + 1)
            while more:
                row, at = _DECODE(text, at)
                part.append({names.setdefault(k, k): v for k, v in row.items()} if isinstance(row, dict) else row)
                if text[at] in _BLANKS:
                    at = self._skip(at)
                more = text[at] == ","
                if not more and text[at] != "]":
                    raise ValueError(f"',' or ']' expected at {at}")
                at += 1
                if text[at] in _BLANKS:
                    at = self._skip(at)
                if len(part) == size and more:
                    yield part
                    part = []
            yield part
            after: dict[str, Any] = {}
            if at is not None and text[at] == ",":
                after = self._last_members(self._skip(at + 1))
                if not after:
                    raise ValueError(f"members to the end of the answer expected at {at + 1}")
            elif at is not None and (text[at] != "}" or self._skip(at + 1) != len(text)):
                raise ValueError(f"the answer's end expected at {at}")
        except (ValueError, IndexError) as exc:
            raise self._unreadable(exc) from None
        finally:
            self.text = ""
        if after.get(NEXT_LINK, self.members.get(NEXT_LINK)) != self.next_link:
            raise self._unreadable(ValueError("the next link after the rows is not the one found before them"))


def follow_pages(api: ApiClient, path: str, params: dict | None, headers: dict[str, str]) -> Iterator[list[dict]]:
    """GET a collection and follow @odata.nextLink verbatim, resending the same headers; the rows come in parts of
    at most WORK_ROWS (see CollectionPage).

    The next page is requested in the background while the caller works on the current one, so reading
    overlaps writing; never more than one page ahead, and that page held as text. A failed read
    raises when the caller asks for that page. A caller that stops early (closes the iterator, or drops
    it) waits here for a request in flight to be answered, so no thread or half-read answer is left behind.
    Only a next link is read ahead: a read of one page costs one request. A caller that wants only the first
    rows asks for them with `$top`, whose answer has no next link, so that no page is read for nothing.
    """
    def read(url: str, query: dict | None) -> CollectionPage:
        return CollectionPage(api.service, api.get_text(url, params=query, headers=headers))

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="next-page") as pool:
        pending: Future | None = submit_in_context(pool, read, path, params)
        seen: set[str] = set()
        try:
            while pending is not None:
                page = pending.result()
                url, pending = page.next_link, None
                if url and url not in seen:
                    seen.add(url)
                    pending = submit_in_context(pool, read, url, None)
                yield from page.parts()
                if url and pending is None:
                    raise ServiceUnavailableError(f"{api.service} returned the same next page link twice: {url}")
        finally:
            if pending is not None:
                pending.cancel()  # not started yet: never sent; started: the pool's exit waits for its answer


T = TypeVar("T")
R = TypeVar("R")


def consumed(rows: list[dict], convert: Callable[[dict], R]) -> list[R]:
    """`convert` of each row of a page as read, the page emptied as it goes: a page of parsed JSON is as large as
    its records, and whoever else holds the list (the page reader) then holds nothing while they are worked on."""
    converted = []
    for i, row in enumerate(rows):
        converted.append(convert(row))
        rows[i] = None
    rows.clear()
    return converted


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


def run_concurrently(items: Sequence[T], work: Callable[[T], R], concurrency: int = 1) -> list[R]:
    """`work` on every item, up to `concurrency` at a time, the answers in the items' order."""
    if concurrency <= 1 or len(items) <= 1:
        return [work(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(concurrency, len(items)), thread_name_prefix="write") as pool:
        return map_in_context(pool, work, items)


# -- filters evaluated in memory -------------------------------------------------------------------
# Dataverse change tracking refuses $filter, so a mapping's filter is applied to the rows of the feed
# here. Only comparisons of a column with a literal, joined by and/or/not and parentheses, are taken:
# anything else (functions, arithmetic, lambdas) makes `row_filter` answer None, and the caller keeps
# asking the service (watermark reads), which evaluates the filter itself.

_TOKEN = re.compile(r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<paren>[()])|(?P<guid>[0-9a-fA-F]{8}-[0-9a-fA-F-]{27}\b)"
                    r"|(?P<word>[A-Za-z_][\w.]*)|(?P<num>-?\d+(?:\.\d+)?))")
_COMPARE = {"eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "gt": lambda a, b: a > b,
            "ge": lambda a, b: a >= b, "lt": lambda a, b: a < b, "le": lambda a, b: a <= b}
_CONSTANTS = {"null": None, "true": True, "false": False}


class _Unsupported(Exception):
    pass


def _tokens(text: str) -> list[tuple[str, str]]:
    found, position = [], 0
    text = text.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise _Unsupported(text[position:])
        kind = next(k for k, v in match.groupdict().items() if v is not None)
        found.append((kind, match.group(kind)))
        position = match.end()
    return found


def _comparable(value: Any) -> Any:
    """Text compares without regard to case, as Dataverse does."""
    return value.casefold() if isinstance(value, str) else value


class _Parser:
    """or-expression := and-expression ('or' and-expression)*; and := unary ('and' unary)*;
    unary := 'not' unary | '(' or ')' | column op literal."""

    def __init__(self, tokens: list[tuple[str, str]]):
        self.tokens, self.at, self.columns = tokens, 0, set()

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.at] if self.at < len(self.tokens) else ("end", "")

    def take(self) -> tuple[str, str]:
        token = self.peek()
        self.at += 1
        return token

    def expression(self) -> Callable[[dict], bool]:
        return self.joined("or", self.conjunction, any)

    def conjunction(self) -> Callable[[dict], bool]:
        return self.joined("and", self.unary, all)

    def joined(self, word: str, part: Callable[[], Callable[[dict], bool]], combine) -> Callable[[dict], bool]:
        parts = [part()]
        while self.peek() == ("word", word):
            self.take()
            parts.append(part())
        return parts[0] if len(parts) == 1 else (lambda row: combine(p(row) for p in parts))

    def unary(self) -> Callable[[dict], bool]:
        kind, text = self.take()
        if (kind, text) == ("word", "not"):
            inner = self.unary()
            return lambda row: not inner(row)
        if (kind, text) == ("paren", "("):
            inner = self.expression()
            if self.take() != ("paren", ")"):
                raise _Unsupported("(")
            return inner
        if kind != "word" or text in _CONSTANTS:
            raise _Unsupported(text)
        column = text
        op_kind, op = self.take()
        if op_kind != "word" or op not in _COMPARE:
            raise _Unsupported(op)
        value = self.literal()
        self.columns.add(column)
        compare = _COMPARE[op]

        def test(row: dict) -> bool:
            mine = _comparable(row.get(column))
            if mine is None or value is None:
                return compare(mine is None, value is None) if op in ("eq", "ne") else False
            try:
                return compare(mine, value)
            except TypeError:
                return False
        return test

    def literal(self) -> Any:
        kind, text = self.take()
        if kind == "str":
            return text[1:-1].replace("''", "'").casefold()
        if kind == "num":
            return float(text) if "." in text else int(text)
        if kind == "guid":
            return text.casefold()
        if kind == "word" and text in _CONSTANTS:
            return _CONSTANTS[text]
        raise _Unsupported(text)


def row_filter(text: str) -> tuple[Callable[[dict], bool], frozenset[str]] | None:
    """A `$filter` as a predicate on a row as the service sends it, with the columns it reads; None when
    the filter uses more than comparisons with literals."""
    if not text.strip():
        return (lambda row: True), frozenset()
    try:
        parser = _Parser(_tokens(text))
        test = parser.expression()
        if parser.peek()[0] != "end":
            return None
    except _Unsupported:
        return None
    return test, frozenset(parser.columns)
