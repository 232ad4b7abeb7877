"""Lookups through couplings: a Business Central code or id <-> the coupled Dataverse id or option value.

Resolution is done in bulk for a whole page (one query per side and page, never one per record)
and cached for the job, bounded in size.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, NamedTuple

from .mappings import Catalog
from .model import FieldMapping, Side
from .ports import CouplingStore, Endpoint
from .values import is_blank, normalize

_MISSING = object()


class _Reference(NamedTuple):
    """What a lookup refers to: a mapping's Business Central rows by a key (for rules that look up codes)."""

    lookup_mapping: str
    bc_key: str


class LookupResolver:
    def __init__(self, catalog: Catalog, bc: Endpoint, couplings: CouplingStore, max_cached: int = 20_000):
        self.catalog = catalog
        self.bc = bc
        self.couplings = couplings
        self.max_cached = max_cached
        self._cache: dict[tuple[str, str | None, Side], dict[Any, Any]] = {}
        self._names: dict[Any, str] = {}  # BC ids that could not be resolved -> their code, for messages

    def _bucket(self, fm: FieldMapping, target: Side) -> dict[Any, Any]:
        return self._cache.setdefault((fm.lookup_mapping, fm.bc_key, target), {})

    def prepare(self, fm: FieldMapping, target: Side, values: Iterable[Any]) -> None:
        """Resolve every value of a page that is not cached yet."""
        bucket = self._bucket(fm, target)
        page_values = {normalize(v) for v in values if not is_blank(v)}
        # not a copy of the bucket, which holds the job's values: rules ask for one at a time (a row's unit group)
        wanted = {v for v in page_values if v not in bucket}
        if not wanted:
            return
        if len(bucket) + len(wanted) > self.max_cached:
            bucket.clear()  # bounded memory; this page's values are resolved again below
            wanted = page_values
        found = self._to_crm(fm, wanted) if target is Side.CRM else self._to_bc(fm, wanted)
        for value in wanted:
            bucket[value] = found.get(value, _MISSING)
        missing = [v for v in wanted if v not in found]
        if target is Side.CRM and not fm.bc_key and missing:
            ref = self.catalog[fm.lookup_mapping]
            for row in self.bc.read_ids(ref.bc, [ref.bc.key_field], missing):
                self._names[normalize(row.id)] = str(row.values.get(ref.bc.key_field) or row.id)

    def coupled(self, mapping: str, bc_key: str, values: Iterable[Any]) -> dict[Any, Any]:
        """Business Central values of `bc_key` in `mapping` -> the coupled Dataverse ids, for those coupled; one read
        for the values not resolved yet, shared with the job's lookups of the same rows (a unit code)."""
        reference, values = _Reference(mapping, bc_key), [v for v in values if not is_blank(v)]
        self.prepare(reference, Side.CRM, values)  # type: ignore[arg-type]  (a lookup needs only these two)
        resolve = self.resolver(reference, Side.CRM)  # type: ignore[arg-type]
        return {v: found for v in values for ok, found in [resolve(v)] if ok}

    def forget(self, fm: FieldMapping, target: Side, values: Iterable[Any]) -> None:
        """Values that may have been coupled since they were resolved (synchronised first): resolved again."""
        bucket = self._bucket(fm, target)
        for value in values:
            bucket.pop(normalize(value), None)

    def display(self, value: Any) -> str:
        """How to show a looked-up value in a message: a BC id as its code, anything else as is."""
        return self._names.get(normalize(value), str(value))

    def resolver(self, fm: FieldMapping, target: Side) -> Callable[[Any], tuple[bool, Any]]:
        """Resolves a value of `fm` towards `target` (prepared beforehand): (True, converted) when coupled,
        (False, None) when the referenced record is not coupled."""
        bucket = self._bucket(fm, target)  # cleared in place when full, never replaced

        def resolve(value: Any) -> tuple[bool, Any]:
            result = bucket.get(normalize(value), _MISSING)
            return (False, None) if result is _MISSING else (True, result)
        return resolve

    def _to_crm(self, fm: FieldMapping, values: set) -> dict[Any, Any]:
        ref = self.catalog[fm.lookup_mapping]
        if fm.bc_key:
            rows = self.bc.read_matching(ref.bc, [fm.bc_key], fm.bc_key, sorted(values))
            bc_id_of = {normalize(r.values.get(fm.bc_key)): r.id for r in rows}
        else:
            bc_id_of = {v: v for v in values}
        coupled = self.couplings.get_many(ref.name, Side.BC, list(bc_id_of.values()))
        as_option = ref.is_option_mapping
        result = {}
        for value, bc_id in bc_id_of.items():
            coupling = coupled.get(bc_id)
            if coupling is not None:
                result[value] = int(coupling.crm_id) if as_option else coupling.crm_id
        return result

    def _to_bc(self, fm: FieldMapping, values: set) -> dict[Any, Any]:
        ref = self.catalog[fm.lookup_mapping]
        crm_ids = [str(int(v)) if ref.is_option_mapping else v for v in values]
        coupled = self.couplings.get_many(ref.name, Side.CRM, crm_ids)
        if fm.bc_key:
            rows = self.bc.read_ids(ref.bc, [fm.bc_key], [c.bc_id for c in coupled.values()])
            key_of = {r.id: r.values.get(fm.bc_key) for r in rows}
        else:
            key_of = {c.bc_id: c.bc_id for c in coupled.values()}
        result = {}
        for value in values:
            crm_id = str(int(value)) if ref.is_option_mapping else value
            coupling = coupled.get(crm_id)
            if coupling is not None and coupling.bc_id in key_of:
                result[value] = key_of[coupling.bc_id]
        return result
