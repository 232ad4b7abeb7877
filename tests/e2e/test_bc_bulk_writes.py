"""Writes to Business Central in JSON `$batch`es of up to 100: a bad row fails alone, a lost answer is
repeated without duplicates, throttling inside a chunk loses nothing, and a full synchronisation costs
tens of requests rather than one or two per row."""

from __future__ import annotations

from collections import Counter

from sync.runs import RunStatus

from .conftest import job


def _accounts(env, n, special=None):
    """n Sales customer accounts `Account 000` ...; `special` maps an index to extra values."""
    return env.dv.seed("account", [{"name": f"Account {i:03d}", "customertypecode": 3, **(special or {}).get(i, {})}
                                   for i in range(n)])


def _batches(env, root="/api/v2.0/$batch"):
    return [p for m, p in env.bc.faults.requests if m == "POST" and p.endswith(root)]


def test_one_bad_row_in_a_chunk_of_100_fails_alone_and_is_retried_next_run(env):
    env.configure(BCSYNC_PAGE_SIZE=100)
    ids = _accounts(env, 100, {57: {"emailaddress1": "not an address"}})
    env.bc.faults.requests.clear()
    report = env.full_sync(["CUSTOMER"])
    assert job(report, "CUSTOMER:from-crm").counts.inserted == 99
    assert len(_batches(env)) == 1                       # the 100 creates went in one $batch
    names = Counter(c["displayName"] for c in env.bc.rows("customers"))
    assert len(names) == 99 and set(names.values()) == {1} and "Account 057" not in names
    assert len(env.couplings("CUSTOMER")) == 99
    [failure] = env.errors()
    assert failure.source_id == ids[57] and "Account 057" in failure.record and failure.field == "email"
    assert "not an address" in failure.message and failure.mapping == "CUSTOMER"

    env.dv.update("account", ids[57], {"emailaddress1": "info@account57.example"})   # fixed at the source
    env.sync(["CUSTOMER"])
    assert env.errors() == []
    [fixed] = [c for c in env.bc.rows("customers") if c["displayName"] == "Account 057"]
    assert fixed["email"] == "info@account57.example" and len(env.couplings("CUSTOMER")) == 100


def test_a_lost_answer_to_a_batch_of_creates_is_repeated_without_duplicates(env):
    env.configure(BCSYNC_PAGE_SIZE=10)
    _accounts(env, 30)
    # the second $batch of creates is applied, but its answer never arrives
    env.bc.faults.lose_answers(times=1, path_contains="/api/v2.0/$batch", methods=("POST",), after=1)
    report = env.full_sync(["CUSTOMER"])
    assert report.run.status is RunStatus.DONE, report.to_dict()
    assert not env.bc.faults.faults                     # the answer was indeed lost
    from_crm = job(report, "CUSTOMER:from-crm")
    assert from_crm.attempts >= 2                       # the job stopped on the unknown outcome and resumed
    names = Counter(c["displayName"] for c in env.bc.rows("customers"))
    assert sorted(names) == [f"Account {i:03d}" for i in range(30)] and set(names.values()) == {1}
    assert len(env.couplings("CUSTOMER")) == 30 and env.errors() == []
    again = env.sync(["CUSTOMER"])
    assert sum(j.counts.inserted for j in again.jobs) == 0


def test_throttling_in_the_middle_of_a_chunk_loses_and_repeats_nothing(env):
    env.configure(BCSYNC_PAGE_SIZE=250)
    _accounts(env, 250)
    # rows 121 and 122 of the page (in the second $batch) are refused as too many requests
    env.bc.faults.fail(429, times=2, retry_after=1, path_contains="/customers", methods=("POST",), after=120)
    report = env.full_sync(["CUSTOMER"])
    assert report.run.status is RunStatus.DONE, report.to_dict()
    names = Counter(c["displayName"] for c in env.bc.rows("customers"))
    assert len(names) == 250 and set(names.values()) == {1}
    assert len(env.couplings("CUSTOMER")) == 250 and env.errors() == []
    assert not env.bc.faults.faults


def test_a_full_customer_sync_of_1000_accounts_costs_tens_of_business_central_requests(env):
    _accounts(env, 1000)
    env.bc.faults.requests.clear()
    report = env.full_sync(["CUSTOMER"])
    assert job(report, "CUSTOMER:from-crm").counts.inserted == 1000
    requests = env.bc.faults.requests
    assert len(requests) <= 30, Counter((m, p.rsplit("/", 1)[-1].split("(")[0]) for m, p in requests)
    assert len(_batches(env)) == 10                      # 1000 creates, 100 per $batch
    assert len(env.couplings("CUSTOMER")) == 1000 and env.errors() == []
