"""Units of measure in Sales, in either of Business Central's two modes ("Unit Group Mapping Enabled").

Legacy (UNIT OF MEASURE): a Business Central unit of measure is a Sales unit group named "NAV <code>"
holding exactly one unit, named <code>, its base unit, quantity 1. Dataverse creates that unit with the
group; a group that breaks the rule is an error naming it.

Unit groups (UNIT GROUP, ITEM UOM, RESOURCE UOM): each item and resource has a Sales unit group named
"ITEM <No.> UOM GR" / "RESOURCE <No.> UOM GR" whose units are its units of measure, each holding its quantity
of base units. Couplings of one mode in the other are refused (refuse_mixed_modes): products, prices and
orders would point at units of both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from ..errors import ConfigurationError, RecordError
from ..facts import PRICING, UNIT_MODE
from ..model import Side
from ..ports import Record
from ..tables import BC_ITEM_UNIT, BC_RESOURCE_UNIT, BC_UNIT_OF_MEASURE, CRM_UNIT
from . import MappingRules, RuleContext, Written

GROUP_NAME = "NAV {}"
LEGACY, UNIT_GROUPS = "legacy", "unit-groups"
UNIT_GROUP, ITEM_UOM, RESOURCE_UOM = "UNIT GROUP", "ITEM UOM", "RESOURCE UOM"
MODE_MAPPINGS = {LEGACY: ("UNIT OF MEASURE",), UNIT_GROUPS: (UNIT_GROUP, ITEM_UOM, RESOURCE_UOM)}
EXTENDED, EXTENDED_PRICE_LIST = "extended", "PLHEADER-PRICE"
# the price mappings of each pricing experience (BCSYNC_PRICING)
PRICING_MAPPINGS = {LEGACY: ("CUSTPRCGRP-PRICE", "SALESPRC-PRODPRICE"), EXTENDED: (EXTENDED_PRICE_LIST, "PLLINE-PRODPRICE")}


def unit_groups(ctx: RuleContext) -> bool:
    """Whether the job runs in unit-group mode (its catalogue holds the unit group mappings)."""
    return UNIT_GROUP in ctx.catalog


def refuse_mixed_modes(ctx: RuleContext) -> None:
    """A job of a unit mapping, or of one that depends on one (products, prices, orders, invoices), stops when
    couplings of the other unit mode exist; a price job, when couplings of the other pricing experience exist.
    Checked once per mode switch: the facts keep the modes found clean."""
    mode, other = (UNIT_GROUPS, LEGACY) if unit_groups(ctx) else (LEGACY, UNIT_GROUPS)
    if _depends_on_units(ctx, ctx.mapping.name, MODE_MAPPINGS[mode]):
        _refuse_couplings_of(ctx, UNIT_MODE, "BCSYNC_UNIT_MODE", "unit mode", mode, other, MODE_MAPPINGS[other],
                             "Switching the unit mode")
    pricing, other = (EXTENDED, LEGACY) if EXTENDED_PRICE_LIST in ctx.catalog else (LEGACY, EXTENDED)
    if ctx.mapping.name in PRICING_MAPPINGS[pricing]:
        _refuse_couplings_of(ctx, PRICING, "BCSYNC_PRICING", "pricing experience", pricing, other,
                             PRICING_MAPPINGS[other], "Switching the pricing experience")


def _refuse_couplings_of(ctx: RuleContext, fact: str, setting: str, what: str, mode: str, other: str,
                         mappings: tuple[str, ...], section: str) -> None:
    def check() -> str:
        found = [name for name in mappings if next(ctx.couplings.coupled_ids(name, Side.BC, 1), None)]
        if found:
            names = ", ".join(found)
            raise ConfigurationError(
                f"Table mapping {ctx.mapping.name} does not run: bcsync is in the {mode} {what} ({setting}), but "
                f"couplings of the {other} one exist (table mapping {names}). Either set {setting}={other} again, "
                f"or remove those couplings (bcsync uncouple MAPPING --all for {names}) as README's {section} "
                f"describes.")
        return mode
    ctx.facts.get(fact, check, fits=lambda kept: kept == mode)


def _depends_on_units(ctx: RuleContext, name: str, units: tuple[str, ...], seen: frozenset = frozenset()) -> bool:
    if name in units:
        return True
    mapping = ctx.catalog[name]
    return any(_depends_on_units(ctx, d, units, seen | {name}) for d in mapping.dependencies if d not in seen)


@dataclass(frozen=True)
class UnitOwner:
    """Items or resources, as owners of units of measure in unit-group mode."""

    mapping: str        # the units' table mapping: ITEM UOM
    table: Any          # their Business Central page: ItemUnitsOfMeasure
    number: str         # the field naming the owner on a unit: Item_No
    system_id: str      # the owner's SystemId on a unit (its unit group's Source_Id): Item_System_Id
    caption: str        # Item


ITEM_UNITS = UnitOwner(ITEM_UOM, BC_ITEM_UNIT, "Item_No", "Item_System_Id", "Item")
RESOURCE_UNITS = UnitOwner(RESOURCE_UOM, BC_RESOURCE_UNIT, "Resource_No", "Resource_System_Id", "Resource")
UNIT_FIELDS = ["Code", "Qty_per_Unit_of_Measure"]


def coupled_units(ctx: RuleContext, owner: UnitOwner, numbers: Sequence[str | None], rows: Sequence[Record]) \
        -> dict[tuple[str, str], tuple[str, float]]:
    """(owner number, unit code) -> (the coupled Sales unit, its quantity of base units) for every unit of measure of
    these items or resources; units not coupled yet are synchronised first (read once per job and number)."""
    cache = ctx.cache.setdefault(f"units:{owner.mapping}", {})
    wanted = [n for n in dict.fromkeys(numbers) if n and n not in cache]
    if wanted:
        units = ctx.bc.read_matching(owner.table, [owner.number, *UNIT_FIELDS], owner.number, wanted)
        coupled, _ = ctx.coupled_first(owner.mapping, [u.id for u in units], rows)
        for n in wanted:
            cache[n] = {}
        for u in units:
            if u.id in coupled:
                cache.setdefault(u.values.get(owner.number), {})[u.values.get("Code")] = (
                    coupled[u.id].crm_id, float(u.values.get("Qty_per_Unit_of_Measure") or 0))
    return {(n, code): unit for n in numbers if n for code, unit in cache.get(n, {}).items()}


def unit_of(ctx: RuleContext, owner: UnitOwner, number: str, code: str, rows: Sequence[Record], field: str) -> str:
    """The Sales unit coupled to unit of measure `code` of this item or resource, or an error naming both."""
    unit = coupled_units(ctx, owner, [number], rows).get((number, code))
    if unit is None:
        raise RecordError(f"{owner.caption} {number}: its unit of measure {code!r} is not coupled to a unit of its "
                          f"Sales unit group; couple it first (table mapping {owner.mapping}).", field=field,
                          code="NotCoupled")
    return unit[0]


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
