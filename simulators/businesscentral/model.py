"""Tables as Business Central defines them: typed columns (Code[20], Text[100], Option, ...), a primary
key, table relations and number series. Rows are plain dicts keyed by the column names ("No.",
"Name", "Shipping Agent Code") plus the system fields every BC table has (SystemId, SystemCreatedAt,
SystemCreatedBy, SystemModifiedAt, SystemModifiedBy).

Values are held in one canonical form per type: Code upper-cased and trimmed, Option as its plain
caption (" ", "Ship"), Date as `datetime.date` (None = the empty date 0001-01-01), DateTime as an
aware UTC `datetime`, GUID as a lower-case string, Decimal as float.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from . import errors

EMPTY_GUID = "00000000-0000-0000-0000-000000000000"
EMPTY_DATE_TEXT = "0001-01-01"
EMPTY_DATETIME_TEXT = "0001-01-01T00:00:00Z"
UTC = dt.timezone.utc

SYSTEM_FIELDS = ("SystemId", "SystemCreatedAt", "SystemCreatedBy", "SystemModifiedAt", "SystemModifiedBy")

# The EDM type each column type is exposed as.
EDM_TYPES = {
    "code": "Edm.String",
    "text": "Edm.String",
    "dateformula": "Edm.String",
    "option": "Edm.String",  # an EnumType in $metadata; the literal is the escaped member name
    "bool": "Edm.Boolean",
    "decimal": "Edm.Decimal",
    "integer": "Edm.Int32",
    "bigint": "Edm.Int64",
    "guid": "Edm.Guid",
    "date": "Edm.Date",
    "datetime": "Edm.DateTimeOffset",
}


# -- enum member names ---------------------------------------------------------------------------

@functools.lru_cache(maxsize=4096)
def escape_enum(text: str) -> str:
    """Option caption -> OData member name, XML-escaped the way BC does: ' ' -> _x0020_, '-' -> _x002D_."""
    out = []
    for i, ch in enumerate(text):
        if ch == "_" or ch.isalpha() or (i > 0 and ch.isdigit()):
            out.append(ch)
        else:
            out.append(f"_x{ord(ch):04X}_")
    return "".join(out)


_ESCAPE = re.compile(r"_x([0-9A-Fa-f]{4})_")


def unescape_enum(text: str) -> str:
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)


# -- wire formats ------------------------------------------------------------------------------------

def format_datetime(value: dt.datetime | None) -> str:
    """`2020-08-21T07:38:44.293Z`; trailing zeros of the fraction dropped, as OData's serializer does."""
    if value is None:
        return EMPTY_DATETIME_TEXT
    if value.utcoffset():
        value = value.astimezone(UTC)
    text = value.isoformat(timespec="microseconds")[:26]
    return text.rstrip("0").rstrip(".") + "Z"


def parse_datetime(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def format_decimal(value: float | int | None) -> float | int:
    value = value or 0
    return int(value) if float(value).is_integer() else float(value)


def is_guid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except (ValueError, AttributeError, TypeError):
        return False
    return len(text.strip("{}")) == 36


_DATE_FORMULA = re.compile(r"^(?:[+-]?(?:\d+[DWMQY]|C[DWMQY]|[DWMQY]\d+))+$")
_EMAIL = re.compile(r"^[^@\s;,]+@[^@\s;,]+$")


@dataclass(frozen=True)
class Column:
    """A table field: BC name, type, length for Code/Text, captions for Option, a related table."""

    name: str
    type: str
    length: int | None = None
    options: tuple[str, ...] = ()
    relation: str | None = None  # table whose (single-field) primary key this column refers to
    init: Any = None  # InitValue; None means the type's blank value
    check: Callable[[Any], None] | None = None  # the field's own OnValidate (e.g. an e-mail address)

    def blank(self) -> Any:
        if self.init is not None:
            return self.init
        return {
            "code": "", "text": "", "dateformula": "", "bool": False, "decimal": 0.0, "integer": 0, "bigint": 0,
            "guid": EMPTY_GUID, "date": None, "datetime": None,
            "option": self.options[0] if self.options else "",
        }[self.type]

    @property
    def edm(self) -> str:
        return EDM_TYPES[self.type]

    # The value BC stores for an assignment (Code upper-cases, Text checks its length, ...).
    def normalize(self, value: Any) -> Any:
        if self.type in ("code", "text", "dateformula"):
            value = "" if value is None else str(value)
            if self.type == "code":
                value = value.strip().upper()
            if self.type == "dateformula":
                value = value.strip().upper().replace("<", "").replace(">", "")
                if value and not _DATE_FORMULA.match(value):
                    raise errors.cannot_evaluate(value, "DateFormula")
            if self.length is not None and len(value) > self.length:
                raise errors.string_too_long(value, self.length)
            return value
        if self.type == "option":
            return self.option(value)
        if self.type == "bool":
            return bool(value)
        if self.type == "decimal":
            return float(value or 0)
        if self.type in ("integer", "bigint"):
            return int(value or 0)
        if self.type == "guid":
            text = str(value or EMPTY_GUID).strip("{}").lower()
            if not is_guid(text):
                raise errors.BCError(400, "Application_InvalidGUID", f"The value '{value}' is not a valid GUID.")
            return text
        if self.type == "date":
            if value in (None, "", EMPTY_DATE_TEXT):
                return None
            if isinstance(value, dt.datetime):
                return value.date()
            if isinstance(value, dt.date):
                return value
            return dt.date.fromisoformat(str(value))
        if self.type == "datetime":
            if value in (None, "", EMPTY_DATETIME_TEXT):
                return None
            if isinstance(value, dt.datetime):
                return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
            return parse_datetime(str(value))
        raise ValueError(self.type)

    def option(self, value: Any) -> str:
        """Caption for an option value given as caption or escaped member name (case-insensitive)."""
        text = "" if value is None else str(value)
        for candidate in (text, unescape_enum(text)):
            for option in self.options:
                if option.casefold() == candidate.casefold():
                    return option
        raise errors.cannot_evaluate(text)


def email_check(value: str) -> None:
    """MailManagement.ValidateEmailAddressField: each ';'-separated address must look like one."""
    for address in filter(None, (part.strip() for part in value.split(";"))):
        if not _EMAIL.match(address):
            raise errors.dialog(f'The email address "{address}" is not valid.')


@dataclass(frozen=True)
class NumberSeries:
    """A No. Series line: `C00010`, `C00020`, ... (increment-by 10)."""

    first: str
    step: int = 1

    def after(self, last: str | None) -> str:
        if last is None:
            return self.first
        match = re.search(r"(\d+)(?!.*\d)", last)
        if not match:
            raise ValueError(f"number {last!r} has no digits to increment")
        digits = match.group(1)
        number = str(int(digits) + self.step).zfill(len(digits))
        return last[: match.start()] + number + last[match.end():]


@dataclass
class Table:
    """A BC table: number, name, columns, primary key, optional number series for its key."""

    number: int
    name: str
    columns: list[Column]
    key: tuple[str, ...]
    series: NumberSeries | None = None  # assigns the (single) key field on insert when blank
    company_scoped: bool = True
    indexes: tuple[tuple[str, ...], ...] = ()  # secondary keys the store indexes (lines by document, ...)
    blank_key: tuple[str, ...] = ()  # key fields that may stay blank (a setup table's empty Primary Key)
    by_name: dict[str, Column] = field(init=False, repr=False)

    def __post_init__(self):
        self.by_name = {column.name: column for column in self.columns}
        self._blank = {column.name: column.blank() for column in self.columns}
        self._blank.update({"SystemId": EMPTY_GUID, "SystemCreatedAt": None, "SystemCreatedBy": EMPTY_GUID,
                            "SystemModifiedAt": None, "SystemModifiedBy": EMPTY_GUID})

    def column(self, name: str) -> Column:
        return self.by_name[name]

    def new_record(self) -> dict:
        return dict(self._blank)  # blank values are immutable, so a shallow copy is a new record

    def key_of(self, record: dict) -> tuple:
        return tuple(record[name] for name in self.key)

    def key_fields(self, key: tuple) -> list[tuple[str, object]]:
        return list(zip(self.key, key))

    def check_key(self, record: dict) -> None:
        """TestField on each primary-key field that must not stay blank."""
        for name in self.key:
            if name not in self.blank_key and record[name] in ("", None):
                raise errors.must_have_value(name, self.name, [(name, "")])


# -- date formulas (CalcDate) ------------------------------------------------------------------------------

_FORMULA_TERM = re.compile(r"([+-]?)(?:(\d+)([DWMQY])|C([DWMQY])|([DWMQY])(\d+))")


def _add_months(value: dt.date, months: int) -> dt.date:
    total = value.year * 12 + value.month - 1 + months
    year, month = divmod(total, 12)
    month += 1
    last = (dt.date(year + month // 12, month % 12 + 1, 1) - dt.timedelta(days=1)).day
    return dt.date(year, month, min(value.day, last))


def _period_end(value: dt.date, unit: str, start: bool) -> dt.date:
    if unit == "D":
        return value
    if unit == "W":
        monday = value - dt.timedelta(days=value.weekday())
        return monday if start else monday + dt.timedelta(days=6)
    months = {"M": 1, "Q": 3, "Y": 12}[unit]
    first_month = ((value.month - 1) // months) * months + 1 if unit != "Y" else 1
    first = dt.date(value.year, first_month, 1)
    return first if start else _add_months(first, months) - dt.timedelta(days=1)


def calc_date(formula: str, value: dt.date) -> dt.date:
    """CalcDate for the formulas a Date Formula field accepts: `30D`, `1M+CM`, `CM`, `-CM`, `D10`, `W1`."""
    text = (formula or "").strip().upper()
    for sign, number, unit, current, fixed_unit, fixed in _FORMULA_TERM.findall(text):
        negative = sign == "-"
        if unit:
            n = int(number) * (-1 if negative else 1)
            if unit == "D":
                value += dt.timedelta(days=n)
            elif unit == "W":
                value += dt.timedelta(weeks=n)
            else:
                value = _add_months(value, n * {"M": 1, "Q": 3, "Y": 12}[unit])
        elif current:
            value = _period_end(value, current, negative)
        else:  # the next (or, with '-', previous) day n of the month / weekday n / month n
            n = int(fixed)
            step = -1 if negative else 1
            for _ in range(400):
                if ((fixed_unit == "D" and value.day == n) or (fixed_unit == "W" and value.isoweekday() == n)
                        or (fixed_unit in "MQY" and value.month == n and value.day == 1)):
                    break
                value += dt.timedelta(days=step)
    return value
