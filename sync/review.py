"""The full synchronisation review: what a full synchronisation should do per mapping.

- FULL: read every row and create the counterparts of uncoupled ones;
- COUPLE: both sides already hold data, so couple matching rows first (match-based coupling),
  creating the unmatched ones only where the mapping says so (bcsync's default: it does, since
  matching first is what prevents duplicates);
- NONE: nothing to synchronise now.
"""

from __future__ import annotations

from enum import Enum

from .model import Side, TableMapping
from .ports import CrmEndpoint, Endpoint


class Recommendation(str, Enum):
    FULL = "full synchronization"
    COUPLE = "couple records"
    NONE = "no records to synchronize now"


def _sample(endpoint: Endpoint, mapping: TableMapping, side: Side, fields: list[str], n: int) -> list:
    table = mapping.table_on(side)
    return next(iter(endpoint.read_changed(table, fields, since=None, where=mapping.filter_on(side), limit=n)), [])


def recommend(mapping: TableMapping, bc: Endpoint, crm: CrmEndpoint) -> Recommendation:
    """As Business Central's CRM Full Synch. Review decides, per mapping."""
    if mapping.process is not None:
        return Recommendation.FULL  # its job works out itself what there is to do
    in_bc = bool(_sample(bc, mapping, Side.BC, [], 1))
    if mapping.is_option_mapping:
        return Recommendation.COUPLE if in_bc else Recommendation.NONE
    if mapping.name == "SALESPEOPLE":
        return Recommendation.FULL
    in_crm = _sample(crm, mapping, Side.CRM, ["exchangerate"] if mapping.name == "CURRENCY" else [], 2)
    if mapping.name == "CURRENCY":
        only_base = len(in_crm) == 1 and float(in_crm[0].values.get("exchangerate") or 0) == 1.0
        return Recommendation.FULL if only_base else Recommendation.COUPLE
    if mapping.name in ("UNIT OF MEASURE", "UNIT GROUP", "ITEM UOM", "RESOURCE UOM"):
        if not in_bc and len(in_crm) <= 1:
            return Recommendation.NONE
        return Recommendation.COUPLE if in_bc and len(in_crm) > 1 else Recommendation.FULL
    if not in_bc and not in_crm:
        return Recommendation.NONE
    return Recommendation.COUPLE if in_bc and in_crm else Recommendation.FULL
