"""UNIT OF MEASURE: a Business Central unit of measure is a Sales unit group
named "NAV <code>" holding exactly one unit, named <code>, its base unit, quantity 1. Dataverse
creates that unit with the group; a group that breaks the rule is an error naming it."""

from __future__ import annotations

from typing import Sequence

from ..errors import RecordError
from ..tables import BC_UNIT_OF_MEASURE, CRM_UNIT
from . import MappingRules, RuleContext, Written

GROUP_NAME = "NAV {}"


def units_of_groups(ctx: RuleContext, group_ids: Sequence[str]) -> dict[str, list]:
    """The units of each group, one query for all (cached for the job)."""
    cache = ctx.cache.setdefault("units_of_group", {})
    wanted = [g for g in dict.fromkeys(group_ids) if g and g not in cache]
    if wanted:
        for g in wanted:
            cache[g] = []
        for unit in ctx.crm.read_matching(CRM_UNIT, ["name", "quantity", "isschedulebaseuom", "uomscheduleid"],
                                          "uomscheduleid", wanted):
            cache.setdefault(unit.values.get("uomscheduleid"), []).append(unit)
    return {g: cache.get(g, []) for g in group_ids if g}


def single_unit(ctx: RuleContext, group_id: str, code: str) -> str:
    """The one unit of the group coupled to unit of measure `code`, checked as Business Central does."""
    units = units_of_groups(ctx, [group_id]).get(group_id, [])
    group = GROUP_NAME.format(code)
    if len(units) != 1:
        names = ", ".join(sorted(str(u.values.get("name")) for u in units)) or "none"
        raise RecordError(f"Unit group {group} must contain exactly one unit, {code}; it has {len(units)} ({names}).",
                          field="Base Unit of Measure", code="UnitGroupNotSingle")
    unit = units[0]
    problems = []
    if (unit.values.get("name") or "") != code:
        problems.append(f"it is named {unit.values.get('name')!r} instead of {code!r}")
    if not unit.values.get("isschedulebaseuom"):
        problems.append("it is not the group's base unit")
    if float(unit.values.get("quantity") or 0) != 1:
        problems.append(f"its quantity is {unit.values.get('quantity')} instead of 1")
    if problems:
        raise RecordError(f"The unit of unit group {group} is not usable: {'; '.join(problems)}.",
                          field="Base Unit of Measure", code="UnitGroupInvalid")
    return unit.id


class UnitGroupRules(MappingRules):
    """Every group the job wrote or coupled is checked, a new pair too: a group found by its name may
    hold other units than the one Business Central needs, and that is an error on the unit of measure
    (not found later on an item). A group the job created holds its one unit and passes."""

    reads = (CRM_UNIT, BC_UNIT_OF_MEASURE)

    def after_write(self, ctx: RuleContext, written: Sequence[Written]) -> dict[str, RecordError]:
        ctx.cache.pop("units_of_group", None)
        units_of_groups(ctx, [w.target.id for w in written])
        failures = {}
        for w in written:
            try:
                single_unit(ctx, w.target.id, w.source.values.get("code") or "")
            except RecordError as exc:
                failures[w.source.id] = exc
        return failures


def coupled_groups(ctx: RuleContext, unit_codes: Sequence[str]) -> dict[str, str]:
    """Business Central unit codes -> the ids of their coupled unit groups (resolved once per job, with the
    job's lookups of the same codes)."""
    return ctx.resolver.coupled("UNIT OF MEASURE", "code", unit_codes)
