"""Coupling by hand: couple two records, uncouple, list and search the couplings of a mapping."""

from __future__ import annotations

import json

from .errors import ConfigurationError, NotFoundError, shown
from .mappings import Catalog, builtin_names
from .model import Direction, Side, TableMapping
from .ports import (
    Coupling,
    CouplingStore,
    CrmEndpoint,
    Endpoint,
    ErrorStore,
    StateStore,
)
from .values import as_guid


def check_id(mapping: TableMapping, side: Side, record_id: object) -> str:
    """A record id as the user gave it, refused unless it has the shape of one: a GUID, or the number
    of an option on the Sales side of an option mapping. Checked before any service or table is asked."""
    option = side is Side.CRM and mapping.is_option_mapping
    number = isinstance(record_id, str) and record_id.isascii() and record_id.isdigit() and len(record_id) < 10
    if isinstance(record_id, str) and (number if option else as_guid(record_id)):
        return record_id
    service, shape = ("Sales", "an option number") if option else \
        ("Sales" if side is Side.CRM else "Business Central", "a GUID such as 00000000-0000-0000-0000-000000000000")
    raise ConfigurationError(f"A {service} record id in {mapping.name} is {shape}; got {shown(record_id)}.")


def _exists(mapping: TableMapping, side: Side, endpoint: Endpoint, record_id: str,
            crm: CrmEndpoint) -> tuple[str, str]:
    """A label for the record and its id as the service spells it, or a ConfigurationError when it
    does not exist (a GUID typed in upper case must not become a coupling the service never answers to)."""
    if side is Side.CRM and mapping.is_option_mapping:
        labels = crm.option_labels(mapping.option_set)
        if not record_id.isdigit() or int(record_id) not in labels:
            raise ConfigurationError(f"{mapping.option_set.attribute} has no option {record_id}.")
        return f"option {record_id} {labels[int(record_id)]!r}", record_id
    table = mapping.table_on(side)
    key = table.key_field if side is Side.BC else table.primary_name
    found = endpoint.read_ids(table, [key], [record_id])
    if not found:
        what = table.caption if side is Side.BC else f"Dataverse {table.logical_name}"
        raise ConfigurationError(f"There is no {what} with id {record_id}.")
    name = found[0].values.get(key)
    return (f"{table.caption} {name}" if side is Side.BC else f"{table.logical_name} '{name}'"), found[0].id


def couple(catalog: Catalog, name: str, bc_id: str, crm_id: str, *, bc: Endpoint, crm: CrmEndpoint,
           couplings: CouplingStore, state: StateStore) -> Coupling:
    """Couple two existing, uncoupled records; the next run synchronises them (BC to Sales first)."""
    mapping = catalog[name]
    bc_id, crm_id = check_id(mapping, Side.BC, bc_id), check_id(mapping, Side.CRM, crm_id)
    (bc_label, bc_id), (crm_label, crm_id) = (_exists(mapping, Side.BC, bc, bc_id, crm),
                                              _exists(mapping, Side.CRM, crm, crm_id, crm))
    labels = {Side.BC: bc_label, Side.CRM: crm_label}
    for side, record_id in ((Side.BC, bc_id), (Side.CRM, crm_id)):
        existing = couplings.get_many(name, side, [record_id]).get(record_id)
        if existing is not None:
            raise ConfigurationError(f"{labels[side]} is already coupled to {existing.id_on(side.other)}; "
                                     f"uncouple it first.")
    coupling = Coupling(name, bc_id, crm_id)
    couplings.save_many([coupling])
    first = mapping.direction.job_directions()[0]
    state.mark_pending(name, first, [coupling.id_on(first.source)])
    return coupling


def uncouple(catalog: Catalog, name: str, side: Side, record_id: str, *, couplings: CouplingStore,
             errors: ErrorStore) -> Coupling:
    check_id(catalog[name], side, record_id)
    coupling = couplings.get_many(name, side, [record_id]).get(record_id)
    if coupling is None:
        raise NotFoundError(f"{record_id} is not coupled in table mapping {name}.")
    _remove(name, [coupling], couplings, errors)
    return coupling


def uncouple_all(name: str, *, couplings: CouplingStore, errors: ErrorStore) -> int:
    """Remove every coupling of a built-in mapping of either unit mode (switching modes leaves the other mode's
    couplings, which stop the unit, product, price and order jobs); its failed records go too. Returns how many."""
    known = builtin_names()
    if name not in known:
        raise NotFoundError(f"There is no table mapping named {name}; known: {', '.join(known)}.")
    removed = couplings.list(name)
    _remove(name, removed, couplings, errors)
    return len(removed)


def _remove(name: str, removed: list[Coupling], couplings: CouplingStore, errors: ErrorStore) -> None:
    """Delete couplings with the failed records of their rows, in both directions."""
    couplings.delete_many(removed)
    for direction in (Direction.TO_CRM, Direction.FROM_CRM):
        errors.clear_many(name, direction, [c.id_on(direction.source) for c in removed])


def matches(coupling: Coupling, search: str) -> bool:
    """A coupling matches a search text found in either id or in the values last synchronised."""
    text = search.casefold()
    haystack = " ".join([coupling.bc_id, coupling.crm_id, json.dumps(coupling.bc_values, default=str),
                         json.dumps(coupling.crm_values, default=str)]).casefold()
    return text in haystack


def to_dict(coupling: Coupling) -> dict:
    return {"mapping": coupling.mapping, "bc_id": coupling.bc_id, "crm_id": coupling.crm_id,
            "synced_at": coupling.synced_at.isoformat() if coupling.synced_at else None, "job": coupling.job_id,
            "bc_values": coupling.bc_values, "crm_values": coupling.crm_values}
