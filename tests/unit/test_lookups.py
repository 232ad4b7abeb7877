"""Lookups through couplings, resolved in bulk and cached for the job (sync.lookups)."""

from __future__ import annotations

from sync.lookups import LookupResolver
from sync.mappings import Catalog, builtin_mappings
from sync.model import Side
from sync.ports import Coupling
from sync.tables import BC_UNIT_OF_MEASURE

from ..fakes import FakeClock, FakeCouplings, FakeEndpoint


class Walked(dict):
    """A cache bucket that counts how often it is walked whole."""

    walks = 0

    def __iter__(self):
        self.walks += 1
        return super().__iter__()


def test_a_value_asked_row_by_row_is_read_once_and_the_jobs_other_values_are_not_walked():
    bc, couplings = FakeEndpoint(Side.BC, FakeClock()), FakeCouplings()
    pcs = bc.put(BC_UNIT_OF_MEASURE, {"code": "PCS"})
    bc.put(BC_UNIT_OF_MEASURE, {"code": "BOX"})  # not coupled
    couplings.save_many([Coupling("UNIT OF MEASURE", pcs, "crm-nav-pcs")])
    resolver = LookupResolver(Catalog(builtin_mappings()), bc, couplings)
    # what the job resolved before: many codes (a row's unit group by its item's id holds one per row)
    bucket = resolver._cache[("UNIT OF MEASURE", "code", Side.CRM)] = Walked({f"C{i}": f"crm-{i}" for i in range(1000)})

    found = [resolver.coupled("UNIT OF MEASURE", "code", [code]) for code in ["PCS", "BOX"] * 500]

    assert found[:2] == [{"PCS": "crm-nav-pcs"}, {}] and found[-2:] == found[:2]
    assert couplings.queries == 2      # each code read at its first row only (BOX: known not to be coupled)
    assert bucket.walks == 0           # a row's value is looked for, not the job's cache copied per row
