"""Value conversion and comparison between the two sides."""

from __future__ import annotations

import math
import re
from typing import Any

from .model import EMPTY_GUID, Convert, FieldMapping, Side

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def as_guid(value: str) -> str | None:
    """A GUID as users type it (any case, braces or not) as services spell it; None when it is none."""
    plain = value.strip().strip("{}")
    return plain.lower() if _GUID.match(plain) else None


def is_blank(value: Any) -> bool:
    return value is None or value == "" or value == EMPTY_GUID


def normalize(value: Any) -> Any:
    """The form two values are compared in: blanks are one value, GUIDs ignore case, numbers are floats."""
    if is_blank(value):
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        if _GUID.match(value):
            return value.lower()
        return value
    return value


def same(left: Any, right: Any) -> bool:
    a, b = normalize(left), normalize(right)
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return a == b


def convert_plain(fm: FieldMapping, value: Any, target: Side) -> Any:
    """Text, number and boolean conversion towards `target`; lookups are resolved elsewhere."""
    if fm.convert is Convert.TEXT:
        if value is None or value == "":
            return "" if target is Side.BC else None
        text = str(value)
        if target is Side.CRM and fm.template:
            text = fm.template.format(text)
        if target is Side.BC and fm.max_length:
            text = text[: fm.max_length]
        return text
    if fm.convert is Convert.NUMBER:
        if value is None or value == "":
            return 0 if target is Side.BC else None
        if fm.not_negative and value < 0:
            return 0
        return value
    if fm.convert is Convert.BOOLEAN:
        return bool(value)
    raise ValueError(f"not a plain conversion: {fm.convert}")


def blank_for(fm: FieldMapping, target: Side) -> Any:
    """The empty value of a lookup on the target side."""
    if target is Side.CRM:
        return None
    return "" if fm.bc_key else EMPTY_GUID
