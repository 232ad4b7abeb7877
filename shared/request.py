"""What an HTTP request brings in: its JSON body and its query and route parameters, read and checked
here, once for every route, before anything is read or written. A value that cannot be served raises
BadRequest, whose message names the field, what is wrong with the value and what to send instead."""

from __future__ import annotations

import json
import re
from typing import Any, Collection, Iterable, Mapping

from sync.errors import cut, shown
from sync.mappings import builtin_names

# a text longer than this is no name, id, search or filter of ours (and would not fit in a service's URL)
MAX_TEXT = 2_000
# ids one request may name: as many as a per-record action takes
MAX_IDS = 1_000

_KINDS = {dict: "an object", list: "an array", str: "text", bool: "true or false", int: "a number",
          float: "a number", type(None): "null"}


class BadRequest(Exception):
    """The request cannot be served as it is: 400, fix the input; 404, there is no such thing."""

    def __init__(self, message: str, *, field: str = "", status: int = 400):
        super().__init__(message)
        self.message, self.field, self.status = message, field, status


def kind(value: Any) -> str:
    return _KINDS.get(type(value), type(value).__name__)


def body(raw: bytes, example: str, allowed: Iterable[str], *, required: bool = True) -> dict:
    """The body: a JSON object with only the `allowed` keys (no body at all is {} unless `required`)."""
    if not raw:
        if required:
            raise BadRequest(f"The body is empty; send a JSON object such as {example}.", field="body")
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested too deep to read
        raise BadRequest(f"The body is not JSON; send a JSON object such as {example}.", field="body") from None
    if not isinstance(data, dict):
        raise BadRequest(f"The body is {kind(data)}, not a JSON object; send one such as {example}.", field="body")
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise BadRequest(f"The body has an unknown key {shown(unknown[0])}; its keys are {', '.join(allowed)}.",
                         field=cut(unknown[0]))
    return data


def text(data: Mapping[str, Any], key: str, *, required: bool = False, hint: str = "",
         limit: int = MAX_TEXT) -> str | None:
    """A text value (body key or query parameter); missing or empty is None unless `required`."""
    value = data.get(key)
    if value is None or value == "":
        if required:
            raise BadRequest(f"{key} is missing; {hint or 'give it'}.", field=key)
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{key} must be text, not {kind(value)} ({shown(value)}){'; ' + hint if hint else ''}.",
                         field=key)
    if len(value) > limit:
        raise BadRequest(f"{key} has {len(value):,} characters, more than the {limit:,} it may have.", field=key)
    return value


def texts(data: Mapping[str, Any], key: str, *, hint: str, limit: int = MAX_TEXT) -> list[str] | None:
    """A list of one or more non-empty texts; missing or null is None."""
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not value or len(value) > MAX_IDS:
        raise BadRequest(f"{key} must be a list of 1 to {MAX_IDS:,} texts, not {kind(value)} ({shown(value)}); "
                         f"{hint}.", field=key)
    for item in value:
        text({key: item}, key, required=True, hint=hint, limit=limit)
    return value


def choice(data: Mapping[str, Any], key: str, allowed: Collection[str], *, required: bool = False) -> str | None:
    """One of the `allowed` texts; missing or empty is None unless `required`."""
    value = text(data, key, required=required, hint=f"it is {' or '.join(allowed)}", limit=100)
    if value is not None and value not in allowed:
        raise BadRequest(f"{key} is {' or '.join(allowed)}, not {shown(value)}.", field=key)
    return value


def flag(data: Mapping[str, Any], key: str) -> bool | None:
    """true or false: a JSON boolean, or the text true/false of a query parameter; missing is None."""
    value = data.get(key)
    if isinstance(value, str):
        value = {"true": True, "false": False, "": None}.get(value.strip().lower(), value)
    if value is None or isinstance(value, bool):
        return value
    raise BadRequest(f"{key} is true or false, not {shown(value)}.", field=key)


def number(params: Mapping[str, str], key: str, default: int, low: int, high: int) -> int:
    """A whole number query parameter, brought into [low, high]."""
    value = params.get(key)
    if value is None or value == "":
        return default
    if not re.fullmatch(r"\s*-?[0-9]{1,9}\s*", value):
        raise BadRequest(f"{key} must be a whole number from {low} to {high}, not {shown(value)}.", field=key)
    return max(low, min(high, int(value)))


def mapping(name: Any, *, field: str = "mapping", status: int = 404) -> str:
    """The name of a table mapping (404 for a route's, 400 for one named in the body or query)."""
    known = builtin_names()
    if name not in known:
        shown_name = cut(name) if isinstance(name, str) else shown(name)
        raise BadRequest(f"There is no table mapping named {shown_name}; the table mappings are {', '.join(known)}.",
                         field=field, status=status)
    return name


def named_mapping(data: Mapping[str, Any], key: str = "mapping") -> str | None:
    """An optional table mapping name in the body or query; missing or empty is None."""
    name = text(data, key, limit=100)
    return None if name is None else mapping(name, field=key, status=400)


def mappings(data: Mapping[str, Any], key: str) -> list[str] | None:
    """A list of table mapping names; missing or null is None (every mapping)."""
    names = texts(data, key, hint=f'name table mappings, e.g. {{"{key}": ["CUSTOMER"]}}, or leave {key} out for all',
                  limit=100)
    return [mapping(name, field=key, status=400) for name in names] if names is not None else None
