"""Facts about the services' set-up, kept in the state store across jobs (sync.facts)."""

from __future__ import annotations

import datetime as dt

from sync.facts import BC_COMPANY_NAME, LCY_CURRENCY, Facts

from ..fakes import FakeClock, FakeState

HOUR = dt.timedelta(hours=1)


class Reads:
    """A fact's reader that counts its calls and answers what it is told."""

    def __init__(self, value):
        self.value, self.calls = value, 0

    def __call__(self):
        self.calls += 1
        return self.value


def job_facts(state: FakeState, ttl: dt.timedelta = HOUR, notes: list | None = None) -> Facts:
    return Facts(state, state.clock, ttl, (notes if notes is not None else []).append)


def test_a_fact_is_read_once_and_kept_for_later_jobs_until_its_time_to_live_is_over():
    state = FakeState(FakeClock())
    read = Reads("CRONUS")
    first = job_facts(state)
    assert first.get(BC_COMPANY_NAME, read) == first.get(BC_COMPANY_NAME, read) == "CRONUS"
    assert read.calls == 1

    state.clock.tick(HOUR.total_seconds() - 1)
    later, read.value = job_facts(state), "Renamed"
    assert later.get(BC_COMPANY_NAME, read) == "CRONUS" and later.get("other", Reads(1)) == 1
    assert read.calls == 1 and state.fact_reads == 2          # one query of the kept facts per job

    state.clock.tick(1)
    assert job_facts(state).get(BC_COMPANY_NAME, read) == "Renamed" and read.calls == 2
    assert state.kept_facts[BC_COMPANY_NAME].read_at == state.clock.now()


def test_a_fact_derived_from_another_is_read_again_when_it_no_longer_fits():
    state = FakeState(FakeClock())
    job_facts(state).get(LCY_CURRENCY, lambda: {"code": "USD", "id": "usd-row"})
    read = Reads({"code": "EUR", "id": "eur-row"})
    facts = job_facts(state)
    assert facts.get(LCY_CURRENCY, read, fits=lambda kept: kept["code"] == "EUR")["id"] == "eur-row"
    assert read.calls == 1 and state.kept_facts[LCY_CURRENCY].value["code"] == "EUR"


def test_a_fact_a_service_refuses_is_dropped_with_a_note_and_others_stay():
    state = FakeState(FakeClock())
    job_facts(state).get(BC_COMPANY_NAME, lambda: "CRONUS USA, Inc.")
    job_facts(state).get(LCY_CURRENCY, lambda: {"code": "USD", "id": "0a1b"})
    notes: list[str] = []
    facts = job_facts(state, notes=notes)
    assert facts.refused("Cannot open company CRONUS USA, Inc.") == []   # this job used no fact
    facts.get(LCY_CURRENCY, Reads(None))
    told = facts.refused("Cannot open company CRONUS USA, Inc.")
    assert told == notes and "CRONUS USA, Inc." in told[0]
    assert set(state.kept_facts) == {LCY_CURRENCY}


def test_without_a_time_to_live_nothing_is_kept_but_a_job_reads_each_fact_once():
    state = FakeState(FakeClock())
    read = Reads("CRONUS")
    facts = job_facts(state, ttl=dt.timedelta(0))
    assert facts.get(BC_COMPANY_NAME, read) == facts.get(BC_COMPANY_NAME, read) == "CRONUS"
    assert read.calls == 1 and state.kept_facts == {} and state.fact_reads == 0
