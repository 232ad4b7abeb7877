"""The two unit modes: which mappings each catalogue holds, and the refusal of couplings of the other mode."""

import datetime as dt
from types import SimpleNamespace

import pytest

from sync.config import MappingOverride, build_catalog
from sync.errors import ConfigurationError
from sync.facts import Facts
from sync.mappings import Catalog, builtin_mappings
from sync.model import Direction
from sync.planner import plan
from sync.ports import Coupling
from sync.rules.units import refuse_mixed_modes
from tests.fakes import FakeClock, FakeCouplings, FakeState
from tests.unit.test_engine import World


def test_unit_group_mode_replaces_unit_of_measure_and_orders_groups_before_units_before_products():
    catalog = Catalog(builtin_mappings(unit_groups=True))
    assert "UNIT OF MEASURE" not in catalog and {"UNIT GROUP", "ITEM UOM", "RESOURCE UOM"} <= set(catalog.names())
    order = [j.job_id for j in plan(catalog)]
    assert order.index("UNIT GROUP:to-crm") < order.index("ITEM UOM:to-crm") < order.index("ITEM-PRODUCT:to-crm")
    assert order.index("RESOURCE UOM:to-crm") < order.index("RESOURCE-PRODUCT:to-crm")
    # a product's unit comes from its rules, not through UNIT OF MEASURE
    assert not any(f.lookup_mapping == "UNIT OF MEASURE" for m in catalog for f in m.fields)
    assert "UNIT GROUP" not in Catalog(builtin_mappings())


def test_overrides_stored_for_the_other_modes_mappings_are_kept_but_do_not_apply():
    catalog = build_catalog(builtin_mappings(unit_groups=True), {"UNIT OF MEASURE": MappingOverride(enabled=False)})
    assert "UNIT OF MEASURE" not in catalog
    with pytest.raises(ConfigurationError, match="NOPE"):
        build_catalog(builtin_mappings(), {"NOPE": MappingOverride(enabled=False)})


def context(unit_groups: bool, mapping: str, couplings: FakeCouplings, state: FakeState, clock: FakeClock,
            extended_pricing: bool = False):
    catalog = Catalog(builtin_mappings(unit_groups, extended_pricing=extended_pricing))
    return SimpleNamespace(catalog=catalog, mapping=catalog[mapping], couplings=couplings,
                           facts=Facts(state, clock, dt.timedelta(hours=1), lambda note: None))


def test_couplings_of_the_other_mode_stop_unit_product_and_order_jobs_only_and_a_clean_mode_is_remembered():
    clock = FakeClock()
    state, couplings = FakeState(clock), FakeCouplings()
    legacy = Coupling("UNIT OF MEASURE", "bc-pcs", "crm-nav-pcs")
    couplings.save_many([legacy])
    for mapping in ("UNIT GROUP", "ITEM-PRODUCT", "SALESPRC-PRODPRICE", "SALESORDER-ORDER"):
        with pytest.raises(ConfigurationError, match="unit-groups unit mode.*UNIT OF MEASURE.*uncouple"):
            refuse_mixed_modes(context(True, mapping, couplings, state, clock))
    refuse_mixed_modes(context(True, "CUSTOMER", couplings, state, clock))   # no units: runs
    refuse_mixed_modes(context(False, "ITEM-PRODUCT", couplings, state, clock))  # its own mode's couplings

    couplings.delete_many([legacy])
    reads = []
    real = couplings.coupled_ids
    couplings.coupled_ids = lambda *args: reads.append(args) or real(*args)
    refuse_mixed_modes(context(True, "ITEM UOM", couplings, state, clock))
    refuse_mixed_modes(context(True, "ITEM-PRODUCT", couplings, state, clock))
    assert len(reads) == 1   # the clean mode is kept as a fact: one coupling read per switch, not per job
    refuse_mixed_modes(context(False, "ITEM-PRODUCT", couplings, state, clock))
    assert len(reads) == 4   # switched back: the unit-group mappings' couplings are looked for


def test_every_job_that_works_on_records_is_refused_while_the_other_modes_couplings_exist():
    world = World(Catalog(builtin_mappings(unit_groups=True)))
    world.couplings.save_many([Coupling("UNIT OF MEASURE", "bc-pcs", "crm-nav-pcs")])
    refused = pytest.raises(ConfigurationError, match="unit-groups unit mode.*UNIT OF MEASURE")
    with refused:
        world.engine.run("ITEM-PRODUCT", Direction.TO_CRM, job_id="run")              # a run's job
    with refused:
        world.engine.job("SALESORDER-ORDER", "on-demand")                            # one sales order created
    with refused:
        world.engine.sync_records("ITEM-PRODUCT", Direction.TO_CRM, ["bc-item"], job_id="now")  # some records now
    world.engine.has_work("ITEM-PRODUCT")   # the schedule's check works on no record: not refused
