"""Dry jobs on the in-memory fakes: the engine plans as it would for real and every port keeps what it is given
to itself; the report's caps and how the parts of one job merge."""

from __future__ import annotations

import copy

from sync.dryrun import CARRIED_IDS, LISTED_RECORDS, DryRun, listed, merged, shown_report
from sync.engine import JobMode
from sync.model import Direction
from tests.unit.test_engine import World

JOBS = [("SALESPEOPLE", Direction.FROM_CRM), ("CURRENCY", Direction.TO_CRM), ("PAYMENT TERMS", Direction.TO_CRM),
        ("CUSTOMER", Direction.TO_CRM), ("CUSTOMER", Direction.FROM_CRM)]


def _stored(w: World):
    """What the services, couplings, failed records and state hold (not what the fakes count of their reads)."""
    state = w.state
    return copy.deepcopy([{name: rows for name, rows in side.tables.items() if rows} for side in (w.bc, w.crm)]
                         + [w.couplings.by_side, w.errors.entries, state.marks, state.pending_ids, state.kept_facts,
                            state.cursors, state.versions, state.added_versions, state.schedule_rows,
                            state.write_backs("CUSTOMER"),
                            state.pending_inserts("CUSTOMER")])


def test_a_dry_full_synchronisation_writes_nothing_and_counts_what_the_real_one_then_does():
    w = World()
    w.user("Alicia Thornber", "alicia@contoso.com")
    for number in range(1, 2 * LISTED_RECORDS + 3):
        w.customer(f"C{number:03}", f"Customer {number}")
    w.account("Woodgrove")
    before = _stored(w)
    planned = {}
    for mapping, direction in JOBS:
        w.clock.tick(120)
        dry = DryRun(w.engine)
        outcome = dry.engine.run(mapping, direction, job_id=f"dry/{mapping}", mode=JobMode.FULL)
        planned[(mapping, direction)] = (outcome.counts.as_dict(), dry.report())
    assert _stored(w) == before
    counts, report = planned[("CUSTOMER", Direction.TO_CRM)]
    assert report["counts"]["insert"] == counts["inserted"] == 2 * LISTED_RECORDS + 2
    assert len([r for r in report["records"] if r["kind"] == "insert"]) == LISTED_RECORDS and report["truncated"]
    first = next(r for r in report["records"] if r["record"] == "Customer C001")
    assert first["values"]["name"] == "Customer 1" and first["kind"] == "insert"

    for mapping, direction in JOBS:
        assert w.run(mapping, direction, full=True).counts.as_dict() == planned[(mapping, direction)][0], mapping


def test_the_report_lists_the_first_records_of_each_kind_and_merges_the_parts_of_a_job():
    entries = [{"kind": "insert", "mapping": "M", "source_id": f"s{i}"} for i in range(LISTED_RECORDS + 5)]
    first = {**listed(entries[:3]), "carried": ["a", "b"]}
    assert first["counts"]["insert"] == 3 and not first["truncated"]
    # a continuation that did the last page again: its records are listed once, its counts added
    both = merged(first, {**listed(entries[2:]), "carried": ["b", "c"]})
    assert both["counts"]["insert"] == LISTED_RECORDS + 6
    assert [r["source_id"] for r in both["records"]] == [f"s{i}" for i in range(LISTED_RECORDS)]
    assert both["truncated"] and both["carried"] == ["a", "b", "c"]
    assert "carried" not in shown_report(both)
    too_many = merged(first, {**listed([]), "carried": [str(i) for i in range(CARRIED_IDS)]})
    assert "carried" not in too_many and too_many["not_carried"] == CARRIED_IDS + 2
