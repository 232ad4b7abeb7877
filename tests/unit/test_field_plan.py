"""A job's field plan, built once, decides every row as the per-row planning it replaced did: checked
against that planning, kept here as written before (field by field, no precomputation), over the
built-in mappings and many generated rows, snapshots and conflict resolutions. One rule was added since:
a bidirectional lookup that neither side changed since the last synchronisation is not converted."""

import random

import pytest

from sync.engine import KEEP, FieldPlan, RowPlan
from sync.errors import ConflictError
from sync.mappings import builtin_mappings
from sync.model import EMPTY_GUID, Convert, Direction, UpdateConflictResolution
from sync.ports import Coupling, Record
from sync.values import is_blank, normalize, same

MAPPINGS = [m for m in builtin_mappings() if m.fields and not m.is_option_mapping]
VALUES = [None, "", "x", "X", "Lyon", "lyon", EMPTY_GUID, "6F1D4C1E-3A51-4B9E-9F5C-0C2B8E7D5A10",
          "6f1d4c1e-3a51-4b9e-9f5c-0c2b8e7d5a10", 0, 1, 1.0, -2, 2.5, True, False, "keep"]


def reference_plan(mapping, direction, src, dst, coupling, convert) -> RowPlan:
    src_side, dst_side = direction.source, direction.target
    src_snap = coupling.values_on(src_side) if coupling else {}
    dst_snap = coupling.values_on(dst_side) if coupling else {}
    writes, new_src, new_dst, conflicts, dst_pending = {}, {}, dict(dst_snap), [], False
    for fm in mapping.fields_for(direction):
        src_field, dst_field = fm.field_on(src_side), fm.field_on(dst_side)
        if dst_field is None or (fm.insert_only and dst is not None):
            continue
        raw = src.values.get(src_field) if src_field else None
        if src_field is not None:
            new_src[fm.key] = raw
        if (fm.convert is Convert.LOOKUP and fm.direction is Direction.BIDIRECTIONAL and dst is not None
                and src_field is not None and fm.key in src_snap and fm.key in dst_snap
                and same(raw, src_snap[fm.key]) and same(dst.values.get(dst_field), dst_snap[fm.key])):
            continue  # a lookup neither side changed: nothing to write, whatever it converts to
        target = fm.constant if src_field is None else convert(fm, raw)
        if target is KEEP:
            continue
        if dst is None:
            if not is_blank(target):
                writes[dst_field] = target
            if src_field is not None:
                new_dst[fm.key] = target
            continue
        current = dst.values.get(dst_field)
        if same(target, current):
            if src_field is not None:
                new_dst[fm.key] = current
            continue
        both = fm.direction is Direction.BIDIRECTIONAL
        if both and fm.key not in src_snap and is_blank(target):
            dst_pending = True
            continue
        if both and fm.key in src_snap:
            src_changed = not same(raw, src_snap.get(fm.key))
            dst_changed = not same(current, dst_snap.get(fm.key))
            if dst_changed and not src_changed:
                dst_pending = True
                continue
            if dst_changed:
                conflicts.append((fm, target, current))
                continue
            if not src_changed:
                continue
        writes[dst_field] = target
        if src_field is not None:
            new_dst[fm.key] = target
    skip = False
    if conflicts:
        if mapping.update_conflict is UpdateConflictResolution.NONE:
            return RowPlan("fail", error=ConflictError("; ".join(
                f"{fm.label}: source {normalize(v)!r}, destination {normalize(c)!r}" for fm, v, c in conflicts),
                fields=tuple(fm.label for fm, _, _ in conflicts)))
        if (mapping.update_conflict is UpdateConflictResolution.SEND_TO_CRM) == (direction is Direction.TO_CRM):
            for fm, value, _ in conflicts:
                writes[fm.field_on(dst_side)] = value
                new_dst[fm.key] = value
        else:
            skip = dst_pending = True
    action = "insert" if dst is None else "update" if writes else "skip" if skip else "unchanged"
    return RowPlan(action, writes, src_snapshot=new_src, dst_snapshot=new_dst, dst_has_unsynced_changes=dst_pending)


def convert(fm, value):
    """Some conversion that keeps, blanks and changes values, as lookups and text conversions do."""
    if value == "keep":
        return KEEP
    return value.upper() if isinstance(value, str) and fm.max_length == 30 else value


def random_values(rng, names):
    return {name: rng.choice(VALUES) for name in names if rng.random() < 0.8}


@pytest.mark.parametrize("resolution", list(UpdateConflictResolution))
@pytest.mark.parametrize("mapping", MAPPINGS, ids=lambda m: m.name)
def test_the_field_plan_decides_as_planning_row_by_row_did(mapping, resolution):
    mapping = mapping.with_overrides(update_conflict=resolution)
    rng = random.Random(f"{mapping.name}/{resolution.value}")
    keys = [fm.key for fm in mapping.fields]
    for direction in mapping.direction.job_directions():
        plan = FieldPlan(mapping, direction, lambda fm: lambda value, row: convert(fm, value))
        src_names = [fm.field_on(direction.source) for fm in mapping.fields if fm.field_on(direction.source)]
        dst_names = [fm.field_on(direction.target) for fm in mapping.fields if fm.field_on(direction.target)]
        actions = set()
        for i in range(400):
            src = Record("s", random_values(rng, src_names))
            dst = Record("d", random_values(rng, dst_names)) if rng.random() < 0.8 else None
            if dst is not None and rng.random() < 0.2:  # what the source holds, converted: nothing to do
                source = direction.source
                dst.values.update({fm.field_on(direction.target): convert(fm, src.values.get(fm.field_on(source)))
                                   if fm.field_on(source) else fm.constant for fm in mapping.fields})
            coupling = Coupling(mapping.name, "b", "c", bc_values=random_values(rng, keys),
                                crm_values=random_values(rng, keys)) if rng.random() < 0.7 else None
            if coupling is not None and rng.random() < 0.5:  # values that agree: the usual echo
                coupling.crm_values = dict(coupling.bc_values)
            expected = reference_plan(mapping, direction, src, dst, coupling, convert)
            got = plan.plan(src, dst, coupling)
            assert (got.action, got.values, got.src_snapshot, got.dst_snapshot, got.dst_has_unsynced_changes) == (
                expected.action, expected.values, expected.src_snapshot, expected.dst_snapshot,
                expected.dst_has_unsynced_changes), (direction, src, dst, coupling)
            if got.action == "fail":
                assert got.error.fields == expected.error.fields and expected.error.message in got.error.message
            actions.add(got.action)
        # the generated rows reach the interesting cases
        assert {"insert", "update", "unchanged"} <= actions
        if any(fm.direction is Direction.BIDIRECTIONAL for fm in mapping.fields):
            assert ("fail" if resolution is UpdateConflictResolution.NONE else "update") in actions
