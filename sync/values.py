"""Value conversion and comparison between the two sides."""

from __future__ import annotations

import math
import re
from typing import Any, Callable

from .model import EMPTY_GUID, Convert, FieldMapping, Side

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_GUID_LENGTHS = (36, 37)  # `$` also matches before a final newline


def as_guid(value: str) -> str | None:
    """A GUID as users type it (any case, braces or not) as services spell it; None when it is none."""
    plain = value.strip().strip("{}")
    return plain.lower() if _GUID.match(plain) else None


BC_BLANK_DATE = "0001-01-01"  # Business Central's blank date


def is_blank(value: Any) -> bool:
    return value is None or value == "" or value == EMPTY_GUID


def normalize(value: Any) -> Any:
    """The form two values are compared in: blanks are one value, GUIDs ignore case, numbers are floats."""
    kind = type(value)
    if kind is str:  # the common case first: only a string of a GUID's length can be one
        if value == "" or value == EMPTY_GUID:
            return None
        return value.lower() if len(value) in _GUID_LENGTHS and _GUID.match(value) else value
    if value is None or kind is bool:
        return value
    if kind is int or kind is float:
        return float(value)
    if is_blank(value):
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        return value.lower() if _GUID.match(value) else value
    return value


_SIMPLE = frozenset({str, int, float, bool})


def same(left: Any, right: Any) -> bool:
    # equal plain values are the same whatever normalising would do to them (the usual case, checked cheaply)
    kind = type(left)
    if kind is type(right) and kind in _SIMPLE and left == right:
        return True
    a, b = normalize(left), normalize(right)
    if type(a) is float and type(b) is float:
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return a == b


def plain_converter(fm: FieldMapping, target: Side) -> Callable[[Any, Any], Any]:
    """Text, number and boolean conversion of `fm` towards `target` (lookups are resolved elsewhere),
    with its choices made once, as a job converts many values of each field mapping. The converter
    takes the value, and the row it is from, which no plain conversion needs."""
    to_bc = target is Side.BC
    if fm.convert is Convert.TEXT:
        empty = "" if to_bc else None
        template = None if to_bc else fm.template
        max_length = fm.max_length if to_bc else None
        if not template and not max_length:  # most fields: the text as it is
            return lambda value, row=None: empty if value is None or value == "" else str(value)

        def text(value: Any, row: Any = None) -> Any:
            if value is None or value == "":
                return empty
            text = str(value)
            if template:
                text = template.format(text)
            if max_length:
                text = text[:max_length]
            return text
        return text
    if fm.convert is Convert.NUMBER:
        empty = 0 if to_bc else None
        not_negative = fm.not_negative

        def number(value: Any, row: Any = None) -> Any:
            if value is None or value == "":
                return empty
            if not_negative and value < 0:
                return 0
            return value
        return number
    if fm.convert is Convert.BOOLEAN:
        return lambda value, row=None: bool(value)
    if fm.convert is Convert.DATE:
        return (lambda value, row=None: BC_BLANK_DATE if is_blank(value) else str(value)[:10]) if to_bc else \
            (lambda value, row=None: None if is_blank(value) or str(value)[:10] == BC_BLANK_DATE else str(value)[:10])
    raise ValueError(f"not a plain conversion: {fm.convert}")


def blank_for(fm: FieldMapping, target: Side) -> Any:
    """The empty value of a lookup on the target side."""
    if target is Side.CRM:
        return None
    return "" if fm.bc_key else EMPTY_GUID
