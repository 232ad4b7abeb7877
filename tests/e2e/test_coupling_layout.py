"""Couplings in a table per mapping, in partitions by side and bucket: those that an earlier release stored in the
table of all mappings, in either of its layouts, are moved by the first process that needs them, once, even when two
move them at once or a move stops midway; and a pair that a dying worker left written on one side only is completed."""

from __future__ import annotations

import threading
import time

import pytest
from azure.core.exceptions import ResourceExistsError

from shared import storage
from shared.storage import SHARED_COUPLINGS, CouplingTable, _bucket
from sync.model import Side
from sync.runs import RunKind, RunStatus

from .conftest import WorkerDied, job, taken_over


def _customers(env, n):
    return env.bc.seed("customers", [{"number": f"C{i:03d}", "displayName": f"Customer {i}"} for i in range(n)])


def _entities(table, low: str, high: str) -> list[dict]:
    return list(table.query_entities("PartitionKey ge @lo and PartitionKey lt @hi", parameters={"lo": low, "hi": high}))


def _as_an_earlier_release_left_them(env, mapping: str, first_layout: bool = False) -> list[dict]:
    """Moves the mapping's rows back into the table of all mappings, as an earlier release stored them: in partitions
    by side and bucket, or (first_layout) both rows of a coupling in the mapping's partition; what it wrote there."""
    own, shared = env.services.couplings.table(mapping), env.services.storage.table(SHARED_COUPLINGS)
    try:
        shared.create_table()   # its client, made when this process found no such table, did not create it
    except ResourceExistsError:
        pass
    current = _entities(own, f"{mapping}|", f"{mapping}}}")
    if first_layout:
        rows = [{**e, "PartitionKey": mapping, "RowKey": f"{side}:{e['bc_id'] if side == 'bc' else e['crm_id']}"}
                for e in current if e["PartitionKey"].startswith(f"{mapping}|bc|") for side in ("bc", "crm")]
    else:
        rows = [dict(e) for e in current]
    for row in rows:
        shared.upsert_entity(row)
    for e in current:
        own.delete_entity(e["PartitionKey"], e["RowKey"])
    return rows


@pytest.mark.parametrize("first_layout", [False, True], ids=["by side and bucket", "first layout"])
def test_couplings_of_the_shared_table_are_moved_to_the_mappings_own_and_found_by_the_next_run(env, first_layout):
    _customers(env, 6)
    env.full_sync(["CUSTOMER"])
    coupled = env.couplings("CUSTOMER")
    assert len(coupled) == 6
    shared = env.services.storage.table(SHARED_COUPLINGS)
    assert len(_as_an_earlier_release_left_them(env, "CUSTOMER", first_layout)) == 12
    shared.upsert_entity({"PartitionKey": "CONTACT|bc|00", "RowKey": "another-mapping", "mapping": "CONTACT"})

    env.configure()   # a new process: it has moved nothing yet
    customer, account = env.bc.rows("customers")[0], env.dv.rows("account")[-1]
    env.bc.update("customers", customer["id"], {"city": "Marseille"})
    env.dv.update("account", account["accountid"], {"telephone1": "+33 1 23 45 67 89"},
                  as_user=env.stack.ids.user_systemuser_id)
    report = env.sync(["CUSTOMER"])
    assert report.run.status is RunStatus.DONE
    assert sum(j.counts.inserted for j in report.jobs) == 0
    assert job(report, "CUSTOMER:to-crm").counts.modified == 1 and job(report, "CUSTOMER:from-crm").counts.modified == 1
    assert len(env.dv.rows("account")) == 6 and len(env.bc.rows("customers")) == 6
    assert _entities(shared, "CUSTOMER", "CUSTOMER}") == []                  # nothing of the mapping is left there
    assert len(_entities(shared, "CONTACT", "CONTACT}")) == 1                # another mapping's rows wait for it
    moved = _entities(env.services.couplings.table("CUSTOMER"), "CUSTOMER|", "CUSTOMER}")
    assert {e["PartitionKey"].rsplit("|", 1)[0] for e in moved} == {"CUSTOMER|bc", "CUSTOMER|crm"}
    assert len(moved) == 12
    assert {(c.bc_id, c.crm_id) for c in env.couplings("CUSTOMER")} == {(c.bc_id, c.crm_id) for c in coupled}


def test_two_processes_that_move_at_once_and_a_move_that_stopped_leave_each_coupling_once(env, monkeypatch):
    ids = _customers(env, 12)
    env.full_sync(["CUSTOMER"])
    coupled = {(c.bc_id, c.crm_id) for c in env.couplings("CUSTOMER")}
    assert len(coupled) == 12
    _as_an_earlier_release_left_them(env, "CUSTOMER")
    monkeypatch.setattr(storage, "SCAN_PAGE", 5)                    # 24 rows: five pages
    monkeypatch.setattr(storage, "MOVE_WAIT_SECONDS", 0.05)
    real, pages = storage._transact, []

    def stops_at_the_third_page(service, table, operations, build=None):
        if table.table_name != f"{service.prefix}{SHARED_COUPLINGS}" and operations[0][0] == "upsert":
            pages.append(len(operations))
            if len(pages) == 3:
                raise WorkerDied()
        return real(service, table, operations, build)

    monkeypatch.setattr(storage, "_transact", stops_at_the_third_page)
    with pytest.raises(WorkerDied):
        CouplingTable(env.services.storage).get_many("CUSTOMER", Side.BC, ids)
    monkeypatch.setattr(storage, "_transact", real)
    shared = env.services.storage.table(SHARED_COUPLINGS)
    assert 0 < len(_entities(shared, "CUSTOMER", "CUSTOMER}")) < 24          # stopped midway

    found, stores = [], [CouplingTable(env.services.storage) for _ in range(2)]
    threads = [threading.Thread(target=lambda s=s: found.append(s.get_many("CUSTOMER", Side.BC, ids))) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert [{(c.bc_id, c.crm_id) for c in f.values()} for f in found] == [coupled, coupled]
    assert _entities(shared, "CUSTOMER", "CUSTOMER}") == []
    rows = _entities(env.services.couplings.table("CUSTOMER"), "CUSTOMER|", "CUSTOMER}")
    assert len(rows) == 24 and len({(e["PartitionKey"], e["RowKey"]) for e in rows}) == 24
    again = env.full_sync(["CUSTOMER"])
    assert sum(j.counts.inserted for j in again.jobs) == 0
    assert len(env.dv.rows("account")) == 12


def test_a_pair_written_on_one_side_when_the_worker_died_is_completed_by_the_next_job(env, monkeypatch):
    env.configure(BCSYNC_JOB_LEASE_SECONDS=2)
    _customers(env, 5)
    table = env.services.couplings.table("CUSTOMER")
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
