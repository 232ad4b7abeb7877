"""Writes to Dataverse in bulk, end to end: CreateMultiple / UpdateMultiple per chunk, a bad row isolated,
a lost answer repeated without duplicates, and the request count of a full synchronisation."""

from __future__ import annotations

from sync.runs import RunStatus

from .conftest import job


def seed_customers(env, count: int, names: dict[int, str] | None = None) -> None:
    env.bc.seed("customers", [{"number": f"B{i:06d}", "displayName": (names or {}).get(i, f"BC customer {i}"),
                               "city": "Lyon"} for i in range(count)])


def dataverse_requests(env) -> list[tuple[str, str]]:
    return [r for r in env.dv.faults.requests if r[1].startswith("/api/")]


def test_a_full_sync_of_1000_customers_costs_a_handful_of_dataverse_requests(env):
    seed_customers(env, 1000)
    env.dv.faults.requests.clear()
    report = env.full_sync(["CUSTOMER"])
    assert report.run.status is RunStatus.DONE, report.to_dict()
    assert job(report, "CUSTOMER:to-crm").counts.inserted == 1000
    assert len(env.dv.rows("account")) == 1000 and len(env.couplings("CUSTOMER")) == 1000
    sent = dataverse_requests(env)
    bulk = [path for method, path in sent if method == "POST"]
    # two chunks of 500, then the new rows' versions: both In queries (500 ids each) in one $batch
    assert bulk == ["/api/data/v9.2/accounts/Microsoft.Dynamics.CRM.CreateMultiple"] * 2 + ["/api/data/v9.2/$batch"]
    assert len(sent) <= 20, sent


def test_one_bad_row_among_100_is_that_records_error_and_the_others_are_coupled(env, monkeypatch):
    # a Sales customisation shortened the account name: one Business Central name no longer fits
    monkeypatch.setattr(env.dv.schema["account"].attributes["name"], "max_length", 20)
    seed_customers(env, 100, {37: "A name far too long for Sales"})
    env.dv.faults.requests.clear()
    report = env.full_sync(["CUSTOMER"])
    assert job(report, "CUSTOMER:to-crm").counts.inserted == 99
    assert len(env.dv.rows("account")) == 99 and len(env.couplings("CUSTOMER")) == 99
    [failure] = [e for e in env.errors() if e.mapping == "CUSTOMER"]
    assert failure.record == "Customer B000037" and "'name'" in failure.message
    assert len([p for m, p in dataverse_requests(env) if "CreateMultiple" in p]) <= 1 + 2 * 7


def test_a_lost_answer_to_a_bulk_create_is_repeated_without_duplicates(env):
    seed_customers(env, 50)
    env.dv.faults.fail(504, served_first=True, path_contains="CreateMultiple")
    report = env.full_sync(["CUSTOMER"])
    assert report.run.status is RunStatus.DONE, report.to_dict()
    names = sorted(a["name"] for a in env.dv.rows("account"))
    assert names == sorted(f"BC customer {i}" for i in range(50))  # each once
    assert len(env.couplings("CUSTOMER")) == 50 and not env.errors()
