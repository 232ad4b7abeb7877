"""Mappings are data: a user's overrides of the built-in table mappings, validated and applied.

What can be changed without code, as on Business Central's Integration Table Mappings page: a
mapping's enabled state, direction, the filter on each side, Synch. Only Coupled Records, the
update- and deletion-conflict resolutions, the configuration template applied to the Business Central
records it creates, the direction of each field mapping, and what text too long for its Business Central
field does (truncation). Overrides are
stored per mapping; removing them restores the built-in definition.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Protocol

from .errors import ConfigurationError, cut, shown
from .mappings import Catalog, builtin_names
from .model import (
    DeletionConflictResolution,
    Direction,
    FieldMapping,
    TableMapping,
    Truncation,
    UpdateConflictResolution,
)


@dataclass
class MappingOverride:
    enabled: bool | None = None
    direction: Direction | None = None
    bc_filter: str | None = None
    crm_filter: str | None = None
    sync_only_coupled: bool | None = None
    update_conflict: UpdateConflictResolution | None = None
    deletion_conflict: DeletionConflictResolution | None = None
    create_new_if_no_match: bool | None = None
    sync_after_coupling: bool | None = None
    interval_minutes: int | None = None
    inactivity_timeout_minutes: int | None = None
    template_code: str | None = None
    truncation: Truncation | None = None
    fields: dict[str, Direction] = field(default_factory=dict)  # field mapping key -> direction
    # field mapping key -> {"priority": n, "case_sensitive": b}; when set, exactly these are the criteria
    match: dict[str, dict] | None = None

    def is_empty(self) -> bool:
        return all(not getattr(self, f.name) and getattr(self, f.name) is not False for f in dataclasses.fields(self))

    def to_dict(self) -> dict:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("fields", "match")}
        data = {k: (v.value if hasattr(v, "value") else v) for k, v in data.items() if v is not None}
        if self.fields:
            data["fields"] = {k: v.value for k, v in self.fields.items()}
        if self.match is not None:
            data["match"] = self.match
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "MappingOverride":
        return parse_changes(cls(), data, mapping=None)


class MappingConfigStore(Protocol):
    def load(self) -> dict[str, MappingOverride]: ...
    def save(self, name: str, override: MappingOverride) -> None: ...
    def delete(self, name: str) -> None: ...


class CatalogSource(Protocol):
    def current(self, max_age: float = 0) -> Catalog:
        """The catalogue in force now (built-ins with the stored overrides); `max_age`: one read up to that many
        seconds ago will do."""


class StaticCatalog:
    def __init__(self, catalog: Catalog):
        self.catalog = catalog

    def current(self, max_age: float = 0) -> Catalog:
        return self.catalog


SETTABLE = ("enabled", "direction", "bc_filter", "crm_filter", "sync_only_coupled", "update_conflict",
            "deletion_conflict", "create_new_if_no_match", "sync_after_coupling", "interval_minutes",
            "inactivity_timeout_minutes", "template_code", "truncation", "fields", "match")
BOOLEANS = ("enabled", "sync_only_coupled", "create_new_if_no_match", "sync_after_coupling")
NUMBERS = ("interval_minutes", "inactivity_timeout_minutes")
TEXTS = ("bc_filter", "crm_filter", "template_code")
# a schedule longer than a year is a typo; the bound also keeps every date computed from it in range
MAX_MINUTES = 525_600
# an OData filter travels in the request URL, which both services cap at a few thousand characters
MAX_FILTER_LENGTH = 2_000
MATCH_OPTIONS = ("priority", "case_sensitive")


def _choice(enum, value: Any, what: str):
    try:
        return enum(str(value).lower())
    except ValueError:
        allowed = ", ".join(e.value for e in enum)
        raise ConfigurationError(f"{what} must be one of {allowed}; got {shown(value)}.") from None


def _boolean(value: Any, what: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "1", "on"):
        return True
    if text in ("false", "no", "0", "off"):
        return False
    raise ConfigurationError(f"{what} must be true or false; got {shown(value)}.")


def whole_number(value: Any, what: str, low: int, high: int, unit: str = "") -> int:
    """A whole number from low to high: a JSON number or, from the command line, its text. Booleans,
    fractions, NaN and infinities are refused rather than rounded."""
    number = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and re.fullmatch(r"\s*[+-]?[0-9]{1,18}\s*", value):
        number = int(value)
    if number is None or not low <= number <= high:
        raise ConfigurationError(f"{what} must be a whole number{unit} from {low} to {high:,}; got {shown(value)}.")
    return number


def find_field(mapping: TableMapping, name: str) -> FieldMapping:
    """A field mapping by its Business Central field, its Dataverse attribute, or its key."""
    for fm in mapping.fields:
        if name in (fm.key, fm.bc, fm.crm) or name.casefold() == fm.label.casefold():
            return fm
    known = ", ".join(f"{fm.bc or '(constant)'} <-> {fm.crm or '(constant)'}" for fm in mapping.fields)
    raise ConfigurationError(f"Table mapping {mapping.name} has no field {shown(name)}. Its fields: {known}.")


def parse_changes(base: MappingOverride, changes: Mapping[str, Any], mapping: TableMapping | None) -> MappingOverride:
    """Apply requested changes (JSON or CLI values) to an override; unknown keys are refused."""
    unknown = set(changes) - set(SETTABLE)
    if unknown:
        raise ConfigurationError(f"Unknown setting(s) {cut(', '.join(sorted(map(str, unknown))))}; "
                                 f"settable: {', '.join(SETTABLE)}.")
    result = dataclasses.replace(base, fields=dict(base.fields))
    for key, value in changes.items():
        if key == "match":
            result.match = None if value is None else _match(mapping, value)
        elif key == "fields":
            if not isinstance(value, Mapping):
                raise ConfigurationError("fields must map a field name to a direction.")
            for name, direction in value.items():
                fkey = find_field(mapping, name).key if mapping is not None else name
                result.fields[fkey] = _choice(Direction, direction, f"The direction of field {name}")
        elif value is None:
            setattr(result, key, None)
        elif key in BOOLEANS:
            setattr(result, key, _boolean(value, key))
        elif key in NUMBERS:
            setattr(result, key, whole_number(value, key, 1, MAX_MINUTES, " of minutes"))
        elif key == "direction":
            result.direction = _choice(Direction, value, "direction")
        elif key == "update_conflict":
            result.update_conflict = _choice(UpdateConflictResolution, value, "update_conflict")
        elif key == "deletion_conflict":
            result.deletion_conflict = _choice(DeletionConflictResolution, value, "deletion_conflict")
        elif key == "truncation":
            result.truncation = _choice(Truncation, value, "truncation")
        else:
            setattr(result, key, _text(value, key))
    return result


def _text(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise ConfigurationError(f"{key} must be text; got {shown(value)}.")
    if key != "template_code" and len(value) > MAX_FILTER_LENGTH:
        raise ConfigurationError(f"{key} has {len(value):,} characters; a filter has at most {MAX_FILTER_LENGTH:,}.")
    return value


def _match(mapping: TableMapping | None, value: Any) -> dict[str, dict]:
    """Match criteria: a list of fields, or fields with {"priority": n, "case_sensitive": b}."""
    example = 'e.g. ["email"] or {"email": {"priority": 0, "case_sensitive": false}}'
    if isinstance(value, Mapping):
        items = list(value.items())
    elif isinstance(value, (list, tuple)):
        items = [(name, {}) for name in value]
    else:
        raise ConfigurationError(f"match must be a list of fields or an object of fields, {example}; "
                                 f"got {shown(value)}.")
    criteria = {}
    for name, options in items:
        if not isinstance(name, str):
            raise ConfigurationError(f"match names fields by their name, {example}; got {shown(name)}.")
        options = {} if options is None else options
        if not isinstance(options, Mapping) or set(options) - set(MATCH_OPTIONS):
            raise ConfigurationError(f"The match options of {cut(name)} are an object with "
                                     f"{' and/or '.join(MATCH_OPTIONS)}, {example}; got {shown(options)}.")
        key = find_field(mapping, name).key if mapping is not None else name
        if mapping is not None and find_field(mapping, name).is_constant:
            raise ConfigurationError(f"Field {name} is a constant; it cannot be a match criterion.")
        criteria[key] = {"priority": whole_number(options.get("priority", 0), f"The match priority of {cut(name)}",
                                                  0, 1_000),
                         "case_sensitive": _boolean(options.get("case_sensitive", False), "case_sensitive")}
    if not criteria:
        raise ConfigurationError("Choose at least one field to match on.")
    return criteria


def apply(mapping: TableMapping, override: MappingOverride) -> TableMapping:
    """The mapping as the override makes it; refuses what Business Central refuses."""
    changes = {k: getattr(override, k) for k in SETTABLE
               if k not in ("fields", "match") and getattr(override, k) is not None}
    direction = changes.get("direction", mapping.direction)
    if mapping.is_option_mapping and direction is Direction.BIDIRECTIONAL:
        raise ConfigurationError(f"{mapping.name} is an option mapping; option mappings must be one-way.")
    if changes.get("template_code"):
        if not direction.includes(Direction.FROM_CRM) or not mapping.bc.template_fields:
            raise ConfigurationError(f"{mapping.name} does not create Business Central records that take a "
                                     f"configuration template; it cannot have a template code.")
        if len(changes["template_code"]) > 10:
            raise ConfigurationError(f"A template code has at most 10 characters; "
                                     f"got {shown(changes['template_code'])}.")
        changes["template_code"] = changes["template_code"].upper()
    if mapping.process is not None and direction is not mapping.direction:
        raise ConfigurationError(f"{mapping.name} only runs {mapping.direction.value}; its direction cannot change.")
    fields = []
    for fm in mapping.fields:
        wanted = override.fields.get(fm.key)
        if wanted is None or wanted is fm.direction:
            fields.append(fm)  # a built-in bidirectional field in a one-way mapping simply flows one way
            continue
        if fm.is_constant:
            raise ConfigurationError(f"Field {fm.label} of {mapping.name} is a constant; its direction cannot change.")
        if not direction.includes(wanted) and not (direction is Direction.BIDIRECTIONAL):
            raise ConfigurationError(f"Field {fm.label} cannot be {wanted.value} while {mapping.name} is {direction.value}.")
        fields.append(dataclasses.replace(fm, direction=wanted))
    if override.match is not None:
        unknown = set(override.match) - {fm.key for fm in mapping.fields}
        if unknown:
            raise ConfigurationError(f"Table mapping {mapping.name} has no field {sorted(unknown)[0]!r} to match on.")
        fields = [dataclasses.replace(fm, use_for_matching=fm.key in override.match,
                                      match_priority=override.match.get(fm.key, {}).get("priority", 0),
                                      case_sensitive=override.match.get(fm.key, {}).get("case_sensitive", False))
                  for fm in fields]
    for key in override.fields:
        if not any(fm.key == key for fm in mapping.fields):
            raise ConfigurationError(f"Table mapping {mapping.name} has no field {key!r}.")
    if mapping.is_option_mapping and override.fields:
        raise ConfigurationError(f"{mapping.name} is an option mapping; its field cannot be changed.")
    return dataclasses.replace(mapping, fields=tuple(fields), **changes)


def build_catalog(builtins: Iterable[TableMapping], overrides: Mapping[str, MappingOverride]) -> Catalog:
    by_name = {m.name: m for m in builtins}
    known = {*by_name, *builtin_names()}  # the other unit mode's mappings keep their overrides
    for name in overrides:
        if name not in known:
            raise ConfigurationError(f"Stored overrides name unknown table mapping {name}.")
    catalog, problems = checked_catalog(by_name.values(), overrides)
    if problems:
        raise ConfigurationError(next(iter(problems.values())))
    return catalog


def checked_catalog(builtins: Iterable[TableMapping], overrides: Mapping[str, MappingOverride]
                    ) -> tuple[Catalog, dict[str, str]]:
    """The catalogue with the overrides that still apply, and what is wrong with each of the others (by
    mapping), so that the mappings can be listed and a bad override reset; overrides of mappings that
    no longer exist are left out."""
    applied, problems = {}, {}
    for mapping in builtins:
        try:
            applied[mapping.name] = apply(mapping, overrides[mapping.name]) if mapping.name in overrides else mapping
        except ConfigurationError as exc:
            applied[mapping.name], problems[mapping.name] = mapping, stored_problem(mapping.name, exc.message)
    return Catalog(applied.values()), problems


def stored_problem(name: str, problem: str) -> str:
    """What is said of a stored override that no longer validates (stored by hand or by an older version)."""
    return (f"The stored overrides of table mapping {name} are invalid ({problem}); reset them "
            f"(DELETE /api/mappings/{name}/overrides or bcsync mappings reset {name}) and set them again.")


def describe(mapping: TableMapping, override: MappingOverride | None = None) -> dict:
    """A mapping as `bcsync mappings` and GET /api/mappings show it."""
    return {
        "name": mapping.name,
        "description": mapping.description,
        "enabled": mapping.enabled,
        "direction": mapping.direction.value,
        "business_central": mapping.bc.entity_set,
        "dataverse": (f"{mapping.option_set.table.logical_name}.{mapping.option_set.attribute} (options)"
                      if mapping.is_option_mapping else mapping.crm.logical_name),
        "bc_filter": mapping.bc_filter,
        "crm_filter": mapping.crm_filter,
        "sync_only_coupled": mapping.sync_only_coupled,
        "update_conflict": mapping.update_conflict.value,
        "deletion_conflict": mapping.deletion_conflict.value,
        "create_new_if_no_match": mapping.create_new_if_no_match,
        "sync_after_coupling": mapping.sync_after_coupling,
        "interval_minutes": mapping.interval_minutes,
        "inactivity_timeout_minutes": mapping.inactivity_timeout_minutes,
        "template_code": mapping.template_code,
        "truncation": mapping.truncation.value,
        "dependencies": list(mapping.dependencies),
        "overridden": (override.to_dict() if override and not override.is_empty() else {}),
        "fields": [{"bc": fm.bc, "crm": fm.crm, "caption": fm.label, "direction": fm.direction.value,
                    "constant": fm.constant, "lookup": fm.lookup_mapping,
                    "match": ({"priority": fm.match_priority, "case_sensitive": fm.case_sensitive}
                              if fm.use_for_matching else None)} for fm in mapping.fields],
    }
