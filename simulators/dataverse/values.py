"""Column values: checking what a client writes, and rendering what the service answers.

Stored (internal) form: strings, ints, floats, bools, aware UTC datetimes truncated to the second
(`datetime.date` for date-only columns), lower-case GUID strings for ids and lookups.
Wire form: the same, with datetimes as `2024-05-01T10:11:12Z` and date-only as `2024-05-01`.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import uuid

from . import errors
from .schema import Attr, Entity

GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

EDM_TYPES = {
    "string": "Edm.String", "memo": "Edm.String", "integer": "Edm.Int32", "bigint": "Edm.Int64",
    "decimal": "Edm.Decimal", "money": "Edm.Decimal", "boolean": "Edm.Boolean", "datetime": "Edm.DateTimeOffset",
    "picklist": "Edm.Int32", "state": "Edm.Int32", "status": "Edm.Int32", "uniqueidentifier": "Edm.Guid",
    "lookup": "Edm.Guid", "owner": "Edm.Guid", "customer": "Edm.Guid",
}


def edm_type(attr: Attr) -> str:
    if attr.kind == "datetime" and attr.date_only:
        return "Edm.Date"
    return EDM_TYPES[attr.kind]


def normalize_guid(value) -> str | None:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, str):
        text = value.strip().strip("{}")
        if GUID_RE.match(text):
            return text.lower()
    return None


def utc_seconds(value: dt.datetime) -> dt.datetime:
    """Aware UTC, second precision: Dataverse keeps no fractions of a second."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc).replace(microsecond=0)


def parse_datetime(text: str) -> dt.datetime | dt.date | None:
    text = text.strip()
    try:
        if len(text) == 10:
            return dt.date.fromisoformat(text)
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None


def check_value(entity: Entity, attr: Attr, value, *, lenient: bool = False):
    """Validate and convert one written value to its stored form, or raise a DataverseError.

    `lenient` is the in-process API: it also takes datetime/date objects and numeric strings.
    """
    if value is None:
        return None
    kind = attr.kind
    name = entity.logical_name
    if kind in ("string", "memo"):
        if not isinstance(value, str):
            raise errors.wrong_type(name, attr.name, value, "Edm.String")
        if attr.max_length is not None and len(value) > attr.max_length:
            raise errors.too_long(name, attr.name, attr.max_length)
        return value
    if kind in ("integer", "bigint", "picklist", "state", "status"):
        if lenient and isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
            value = int(value)
        if isinstance(value, float) and value.is_integer() and kind in ("integer", "bigint"):
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise errors.wrong_type(name, attr.name, value, edm_type(attr))
        if kind in ("picklist", "state", "status"):
            if value not in attr.options:
                raise errors.out_of_range(name, attr.name, value, ",".join(str(v) for v in attr.options))
            return value
        if (attr.min_value is not None and value < attr.min_value) or (
                attr.max_value is not None and value > attr.max_value):
            raise errors.out_of_range(name, attr.name, value, f"{attr.min_value:g} to {attr.max_value:g}")
        return value
    if kind in ("decimal", "money"):
        if lenient and not isinstance(value, bool):
            try:
                value = float(value)
            except (TypeError, ValueError):
                pass
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise errors.wrong_type(name, attr.name, value, "Edm.Decimal")
        if (attr.min_value is not None and value < attr.min_value) or (
                attr.max_value is not None and value > attr.max_value):
            raise errors.out_of_range(name, attr.name, value, f"{attr.min_value:g} to {attr.max_value:g}")
        return round(float(value), attr.precision if attr.precision is not None else 2)
    if kind == "boolean":
        if not isinstance(value, bool):
            raise errors.wrong_type(name, attr.name, value, "Edm.Boolean")
        return value
    if kind == "datetime":
        parsed = value
        if isinstance(value, str):
            parsed = parse_datetime(value)
        if not isinstance(parsed, (dt.date, dt.datetime)) or (isinstance(value, (dt.date, dt.datetime)) and not lenient):
            raise errors.wrong_type(name, attr.name, value, edm_type(attr))
        if attr.date_only:
            return parsed.date() if isinstance(parsed, dt.datetime) else parsed
        if not isinstance(parsed, dt.datetime):
            parsed = dt.datetime(parsed.year, parsed.month, parsed.day, tzinfo=dt.timezone.utc)
        return utc_seconds(parsed)
    if kind in ("uniqueidentifier", "lookup", "owner", "customer"):
        guid = normalize_guid(value)
        if guid is None:
            raise errors.wrong_type(name, attr.name, value, "Edm.Guid")
        return guid
    raise errors.wrong_type(name, attr.name, value, edm_type(attr))


def to_wire(attr: Attr, value):
    """A stored value as the Web API serialises it."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def to_json(value):
    """A stored value for the admin endpoints (plain JSON, datetimes as ISO strings)."""
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def format_number(value, places: int) -> str:
    return f"{value:,.{places}f}"


def format_datetime(value) -> str:
    """en-US display format, as the service renders FormattedValue for a UTC user."""
    if isinstance(value, dt.datetime):
        hour = value.hour % 12 or 12
        return f"{value.month}/{value.day}/{value.year} {hour}:{value.minute:02d} {'AM' if value.hour < 12 else 'PM'}"
    return f"{value.month}/{value.day}/{value.year}"
