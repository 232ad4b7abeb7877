"""Couplings in partitions by side and bucket: those stored in the first layout (one partition per mapping)
are moved by the first job, and a pair that a dying worker left written on one side only is completed."""

from __future__ import annotations

import time

import pytest

from shared import storage
from shared.storage import CouplingTable, _bucket
from sync.model import Side
from sync.runs import RunKind, RunStatus

from .conftest import WorkerDied, job, taken_over


def _customers(env, n):
    return env.bc.seed("customers", [{"number": f"C{i:03d}", "displayName": f"Customer {i}"} for i in range(n)])


def _entities(table, low: str, high: str) -> list[dict]:
    return list(table.query_entities("PartitionKey ge @lo and PartitionKey lt @hi", parameters={"lo": low, "hi": high}))


def test_couplings_of_the_first_layout_are_moved_and_found_by_the_next_scheduled_run(env):
    _customers(env, 6)
    env.full_sync(["CUSTOMER"])
    table = env.services.storage.table("couplings")
    coupled = env.couplings("CUSTOMER")
    assert len(coupled) == 6
    # as the first layout had them: both rows of a coupling in the mapping's partition
    current = _entities(table, "CUSTOMER|", "CUSTOMER}")
    table.submit_transaction(
        [("upsert", {**{k: v for k, v in e.items()}, "PartitionKey": "CUSTOMER",
                     "RowKey": f"{side}:{e['bc_id'] if side == 'bc' else e['crm_id']}"})
         for e in current if e["PartitionKey"].startswith("CUSTOMER|bc|") for side in ("bc", "crm")])
    for e in current:
        table.delete_entity(e["PartitionKey"], e["RowKey"])
    assert len(_entities(table, "CUSTOMER", "CUSTOMER|")) == 12

    env.configure()   # a new process: it knows nothing of the layout yet
    customer, account = env.bc.rows("customers")[0], env.dv.rows("account")[-1]
    env.bc.update("customers", customer["id"], {"city": "Marseille"})
    env.dv.update("account", account["accountid"], {"telephone1": "+33 1 23 45 67 89"},
                  as_user=env.stack.ids.user_systemuser_id)
    report = env.sync(["CUSTOMER"])
    assert report.run.status is RunStatus.DONE
    assert sum(j.counts.inserted for j in report.jobs) == 0
    assert job(report, "CUSTOMER:to-crm").counts.modified == 1 and job(report, "CUSTOMER:from-crm").counts.modified == 1
    assert len(env.dv.rows("account")) == 6 and len(env.bc.rows("customers")) == 6
    assert _entities(table, "CUSTOMER", "CUSTOMER|") == []                  # the first layout's rows are gone
    moved = _entities(table, "CUSTOMER|", "CUSTOMER}")
    assert {e["PartitionKey"].rsplit("|", 1)[0] for e in moved} == {"CUSTOMER|bc", "CUSTOMER|crm"}
    assert len(moved) == 12
    assert {(c.bc_id, c.crm_id) for c in env.couplings("CUSTOMER")} == {(c.bc_id, c.crm_id) for c in coupled}


def test_a_pair_written_on_one_side_when_the_worker_died_is_completed_by_the_next_job(env, monkeypatch):
    env.configure(BCSYNC_JOB_LEASE_SECONDS=2)
    _customers(env, 5)
    table = env.services.couplings.table
    real, failed, stored = storage.submit_transaction, [], set()
    bc_partitions = {f"CUSTOMER|bc|{_bucket(c['id'])}" for c in env.bc.rows("customers")}

    def submit(client, operations):
        # the worker dies while the rows of Sales' side are sent: one transaction never reaches storage,
        # after those of Business Central's side have (they go in parallel, so it waits for them)
        partition = operations[0][1]["PartitionKey"]
        if client is table and not failed and partition.startswith("CUSTOMER|crm|"):
            failed.append(operations)
            deadline = time.monotonic() + 10
            while not bc_partitions <= stored and time.monotonic() < deadline:
                time.sleep(0.01)
            raise WorkerDied()
        result = real(client, operations)
        stored.add(partition)
        return result

    monkeypatch.setattr(storage, "submit_transaction", submit)
    run = env.services.start_run(RunKind.FULL, trigger="test", mappings=["CUSTOMER"])
    with pytest.raises(WorkerDied):
        env.worker.run_until(lambda: False, timeout=60)
    monkeypatch.undo()
    accounts = [a["accountid"] for a in env.dv.rows("account")]
    assert len(accounts) == 5
    half = CouplingTable(env.services.storage)
    assert len(half.get_many("CUSTOMER", Side.BC, [c["id"] for c in env.bc.rows("customers")])) == 5
    missing = [e[1]["RowKey"] for e in failed[0]]
    assert half.get_many("CUSTOMER", Side.CRM, missing) == {}
    assert len(_entities(table, "CUSTOMER|journal", "CUSTOMER|journam")) == 1

    report = taken_over(env, run)                                            # its first job recovers the pair
    assert report.run.status is RunStatus.DONE
    assert set(half.get_many("CUSTOMER", Side.CRM, accounts)) == set(accounts)
    assert _entities(table, "CUSTOMER|journal", "CUSTOMER|journam") == []
    again = env.full_sync(["CUSTOMER"])
    assert sum(j.counts.inserted for j in again.jobs) == 0
    assert len(env.dv.rows("account")) == 5 and len(env.bc.rows("customers")) == 5
    assert env.errors() == []
