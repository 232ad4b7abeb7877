"""Match-based coupling gives the same result whether the destination is read once and matched in memory
(full synchronisation, coupling jobs) or asked per page (scheduled runs)."""

import pytest

from sync.config import MappingOverride, StaticCatalog, apply
from sync.engine import JobMode
from sync.mappings import Catalog
from sync.model import Direction
from sync.tables import CRM_ACCOUNT

from .test_engine import World

TO = Direction.TO_CRM


class Matching:
    """A World whose CUSTOMER job matches by the given criteria, in memory or by queries."""

    def __init__(self, in_memory: bool, match: dict | None = None):
        self.w = World()
        self.in_memory = in_memory
        # a scheduled run works on uncoupled rows when the mapping does not sync coupled rows only
        override = MappingOverride(sync_only_coupled=False, match=match)
        self.w.engine.catalogs = StaticCatalog(Catalog([apply(m, override) if m.name == "CUSTOMER" else m
                                                        for m in self.w.catalog]))
        self.queries = 0  # of accounts by value
        real = self.w.crm.read_matching

        def counted(table, *args, **kwargs):
            self.queries += table is CRM_ACCOUNT
            return real(table, *args, **kwargs)
        self.w.crm.read_matching = counted

    def run(self):
        self.w.jobs += 1
        self.w.clock.tick(120)
        mode = JobMode.FULL if self.in_memory else JobMode.INCREMENTAL
        return self.w.engine.run("CUSTOMER", TO, job_id=f"job{self.w.jobs}", mode=mode)

    def coupled(self, customer_id):
        coupling = self.w.couplings.all("CUSTOMER").get(customer_id)
        return coupling.crm_id if coupling else None


both_ways = pytest.mark.parametrize("in_memory", [True, False], ids=["in memory", "by queries"])
NAME_THEN_PHONE = {"displayName|name": {"priority": 0}, "phoneNumber|telephone1": {"priority": 1}}


@both_ways
def test_text_criteria_ignore_case_unless_case_sensitive(in_memory):
    m = Matching(in_memory)
    aid = m.w.account("ADATUM corporation")
    cid = m.w.customer("C1", "Adatum Corporation")
    m.run()
    assert m.coupled(cid) == aid
    m = Matching(in_memory, {"displayName|name": {"priority": 0, "case_sensitive": True}})
    m.w.account("ADATUM corporation")
    cid = m.w.customer("C1", "Adatum Corporation")
    out = m.run()
    assert out.counts.inserted == 1 and len(m.w.crm.rows(CRM_ACCOUNT)) == 2


@both_ways
def test_groups_are_tried_by_priority_and_the_first_that_finds_one_row_couples(in_memory):
    m = Matching(in_memory, NAME_THEN_PHONE)
    by_name = m.w.account("Contoso", telephone1="111")
    by_phone = m.w.account("Fabrikam Inc", telephone1="222")
    m.w.account("Litware", telephone1="333")
    first = m.w.customer("C1", "Contoso", phoneNumber="333")     # the name comes first
    second = m.w.customer("C2", "Fabrikam", phoneNumber="222")   # no name match: then the phone
    out = m.run()
    assert (m.coupled(first), m.coupled(second)) == (by_name, by_phone)
    assert out.counts.coupled == 2 and out.counts.inserted == 0


@both_ways
def test_blank_criteria_are_left_out_of_their_group(in_memory):
    m = Matching(in_memory, {"displayName|name": {"priority": 0}, "phoneNumber|telephone1": {"priority": 0}})
    aid = m.w.account("Contoso", telephone1="111")
    blank_phone = m.w.customer("C1", "Contoso", phoneNumber="")      # matched by its name alone
    other_phone = m.w.customer("C2", "Contoso", phoneNumber="999")   # both criteria: no match
    m.run()
    assert m.coupled(blank_phone) == aid
    assert m.coupled(other_phone) not in (None, aid)   # created instead


@both_ways
def test_several_rows_matching_one_row_fail_and_couple_nothing(in_memory):
    m = Matching(in_memory)
    m.w.account("Contoso")
    m.w.account("contoso")
    one = m.w.customer("C1", "Contoso")
    out = m.run()
    assert out.counts.failed == 1 and m.coupled(one) is None
    [failure] = m.w.errors.list("CUSTOMER", TO)
    assert failure.code == "SeveralMatches" and "2 uncoupled account rows match" in failure.message
    assert failure.field == "Name"


@both_ways
def test_a_row_matched_by_several_of_ours_in_one_page_couples_none_of_them(in_memory):
    m = Matching(in_memory)
    m.w.engine.page_size = 10
    m.w.account("Contoso")
    first, second = m.w.customer("C1", "Contoso"), m.w.customer("C2", "CONTOSO")
    out = m.run()
    assert out.counts.failed == 2 and m.coupled(first) is m.coupled(second) is None
    assert all("and so do 1 other uncoupled Customer row(s)" in f.message for f in m.w.errors.list("CUSTOMER", TO))


@both_ways
def test_a_row_is_claimed_once_and_the_next_page_does_not_find_it_again(in_memory):
    m = Matching(in_memory)   # pages of two rows
    aid = m.w.account("Contoso")
    first = m.w.customer("C1", "Contoso")
    m.w.customer("C2", "Litware")
    third = m.w.customer("C3", "Contoso")   # the next page: the account is coupled by now
    out = m.run()
    assert m.coupled(first) == aid and m.coupled(third) not in (None, aid)
    assert out.counts.coupled == 1 and out.counts.inserted == 2


@both_ways
def test_rows_coupled_before_the_job_are_no_candidates(in_memory):
    m = Matching(in_memory)
    first = m.w.customer("C1", "Contoso")
    m.run()                                      # creates the account and couples it
    second = m.w.customer("C2", "Contoso")
    m.run()
    assert m.coupled(second) not in (None, m.coupled(first))
    assert len(m.w.crm.rows(CRM_ACCOUNT)) == 2


def test_a_full_synchronisation_reads_the_destination_once_instead_of_querying_per_page():
    m = Matching(in_memory=True)
    for i in range(7):   # four pages
        m.w.account(f"Account {i}")
        m.w.customer(f"C{i}", f"Account {i}")
    reads = []
    real = m.w.crm.read_changed
    m.w.crm.read_changed = lambda table, *a, **k: (reads.append(table.logical_name), real(table, *a, **k))[1]
    out = m.run()
    assert out.counts.coupled == 7 and m.queries == 0
    assert reads.count("account") == 1


def test_a_scheduled_run_asks_the_destination_per_page():
    m = Matching(in_memory=False)
    for i in range(3):   # two pages
        m.w.account(f"Account {i}")
        m.w.customer(f"C{i}", f"Account {i}")
    assert m.run().counts.coupled == 3 and m.queries == 2
