"""Couplings and errors in Table Storage (Azurite): lookups by range or by key, transactions in parallel,
deletes in transactions."""

from __future__ import annotations

import uuid

from shared.storage import SCAN_PAGE, CouplingTable
from sync.model import Direction, Side
from sync.ports import Coupling, RecordFailure


def _couplings(n: int, mapping: str = "CUSTOMER") -> list[Coupling]:
    return [Coupling(mapping, str(uuid.uuid4()), str(uuid.uuid4()), bc_etag=f"b{i}", crm_etag=f"c{i}",
                     bc_values={"displayName|name": f"Customer {i}"}, crm_values={"displayName|name": f"Customer {i}"})
            for i in range(n)]


def test_many_ids_are_looked_up_by_one_range_query_while_the_couplings_are_few(env):
    store, storage = env.services.couplings, env.services.storage
    saved = _couplings(300)
    store.save_many(saved)
    wanted = [c.bc_id for c in saved[:200]] + ["not-coupled"]
    before = storage.requests_sent
    found = CouplingTable(storage).get_many("CUSTOMER", Side.BC, wanted)   # nothing known about the size yet
    assert storage.requests_sent - before == 1        # 200 ids are 15 key queries
    assert set(found) == set(wanted[:200])
    assert found[saved[7].bc_id].crm_id == saved[7].crm_id
    assert found[saved[7].bc_id].bc_values == {"displayName|name": "Customer 7"}
    by_crm = store.get_many("CUSTOMER", Side.CRM, [c.crm_id for c in saved[100:130]])
    assert {c.bc_id for c in by_crm.values()} == {c.bc_id for c in saved[100:130]}


def test_a_range_query_stops_where_key_queries_get_cheaper_and_keys_finish_the_lookup(env):
    store, storage = CouplingTable(env.services.storage), env.services.storage
    saved = _couplings(SCAN_PAGE + 200)
    store.save_many(saved)
    wanted = [c.bc_id for c in saved[:20]]            # two key queries: one answer of the range query at most
    before = storage.requests_sent
    found = store.get_many("CUSTOMER", Side.BC, wanted)
    assert set(found) == set(wanted)
    assert storage.requests_sent - before <= 3
    # once a range query has counted the couplings, few ids go straight to key queries
    store.get_many("CUSTOMER", Side.BC, [c.bc_id for c in saved])
    before = storage.requests_sent
    assert set(store.get_many("CUSTOMER", Side.BC, wanted)) == set(wanted)
    assert storage.requests_sent - before == 2


def test_transactions_go_in_parallel_and_deletes_in_transactions(env):
    store, storage = env.services.couplings, env.services.storage
    saved = _couplings(260) + _couplings(10, mapping="CONTACT")
    before = storage.requests_sent
    store.save_many(saved)
    assert storage.requests_sent - before == 7        # 540 rows: 5 + 1 transactions of CUSTOMER, 1 of CONTACT
    assert len(store.list("CUSTOMER")) == 260 and len(store.list("CONTACT")) == 10
    store.delete_many(saved[:3])
    before = storage.requests_sent
    store.delete_many(saved[:120])                    # three of them are gone already
    assert len(store.list("CUSTOMER")) == 140
    assert store.get_many("CUSTOMER", Side.CRM, [c.crm_id for c in saved[:120]]) == {}
    assert storage.requests_sent - before < 120       # one at a time only in the transaction that failed
    before = storage.requests_sent
    store.delete_many(saved[120:220])
    assert storage.requests_sent - before == 2 and len(store.list("CUSTOMER")) == 40


def test_errors_are_cleared_in_transactions(env):
    errors, storage = env.services.errors, env.services.storage
    failures = [RecordFailure("CUSTOMER", Direction.TO_CRM, f"id{i}", f"Customer {i}", "bad") for i in range(150)]
    errors.save_many(failures)
    before = storage.requests_sent
    errors.clear_many("CUSTOMER", Direction.TO_CRM, [f"id{i}" for i in range(140)])
    assert storage.requests_sent - before == 2
    assert sorted(f.source_id for f in errors.list("CUSTOMER", Direction.TO_CRM)) == [f"id{i}" for i in range(140, 150)]
