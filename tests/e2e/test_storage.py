"""Couplings and errors in Table Storage (Azurite): lookups by range or by key, transactions in parallel,
deletes in transactions, couplings spread over buckets."""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter

from shared import storage as storage_module
from shared.storage import COUPLING_BUCKETS, SCAN_PAGE, VERSIONS_PER_ROW, CouplingTable, RunTable, StateTable, _bucket
from sync.model import Direction, Side
from sync.notifications import Change
from sync.ports import Coupling, FollowUp, RecordFailure
from sync.runs import Run, RunKind
from sync.targeted import COLLECTION_ID, NotifiedRow

from ..conftest import fresh
from .conftest import Env, job


def _couplings(n: int, mapping: str = "CUSTOMER") -> list[Coupling]:
    return [Coupling(mapping, str(uuid.uuid4()), str(uuid.uuid4()), bc_etag=f"b{i}", crm_etag=f"c{i}",
                     bc_values={"displayName|name": f"Customer {i}"}, crm_values={"displayName|name": f"Customer {i}"})
            for i in range(n)]


def _partitions(couplings: list[Coupling]) -> int:
    """How many partitions the rows of both sides of these couplings are in: a transaction each at least."""
    return len({CouplingTable._address(c.mapping, side, c.id_on(side))[0] for c in couplings for side in Side})


def _in_bucket(couplings: list[Coupling], bucket: int) -> Coupling:
    return next(c for c in couplings if _bucket(c.bc_id) == f"{bucket:02x}")


def test_many_ids_are_looked_up_by_one_range_query_while_the_couplings_are_few(env):
    store, storage = env.services.couplings, env.services.storage
    saved = _couplings(300)
    store.save_many(saved)
    wanted = [c.bc_id for c in saved[:200]] + ["not-coupled"]
    before = storage.requests_sent
    found = CouplingTable(storage).get_many("CUSTOMER", Side.BC, wanted)   # nothing known about the size yet
    # a new store looks once for couplings in the first layout; 200 ids in 16 buckets are 24 key queries
    assert storage.requests_sent - before == 2
    assert set(found) == set(wanted[:200])
    assert found[saved[7].bc_id].crm_id == saved[7].crm_id
    assert found[saved[7].bc_id].bc_values == {"displayName|name": "Customer 7"}
    by_crm = store.get_many("CUSTOMER", Side.CRM, [c.crm_id for c in saved[100:130]])
    assert {c.bc_id for c in by_crm.values()} == {c.bc_id for c in saved[100:130]}


def test_a_range_query_stops_where_key_queries_get_cheaper_and_keys_finish_the_lookup(env, monkeypatch):
    store, storage = CouplingTable(env.services.storage), env.services.storage
    saved = _couplings(SCAN_PAGE + 200)
    store.save_many(saved)
    wanted = [_in_bucket(saved, 0).bc_id, _in_bucket(saved, COUPLING_BUCKETS - 1).bc_id]
    # two ids are too few for a range query: two key queries, in parallel, not the side's first thousand couplings
    before = storage.requests_sent
    assert set(store.get_many("CUSTOMER", Side.BC, wanted)) == set(wanted)
    assert storage.requests_sent - before == 2 and not store._sizes
    # were they enough: two key queries (two buckets) cost one answer of the range query at most, then a key query
    # for the bucket it did not reach (partitions come in order, the last bucket last)
    monkeypatch.setattr(storage_module, "SCAN_MIN_IDS", 1)
    before = storage.requests_sent
    found = store.get_many("CUSTOMER", Side.BC, wanted)
    assert set(found) == set(wanted)
    assert storage.requests_sent - before == 2
    # once a range query has counted the couplings, few ids go straight to key queries
    store.get_many("CUSTOMER", Side.BC, [c.bc_id for c in saved])
    before = storage.requests_sent
    assert set(store.get_many("CUSTOMER", Side.BC, wanted)) == set(wanted)
    assert storage.requests_sent - before == 2


def test_ids_across_buckets_are_found_with_key_queries_per_bucket(env):
    store, storage = env.services.couplings, env.services.storage
    saved = _couplings(3 * SCAN_PAGE)
    store.save_many(saved)
    store.get_many("CUSTOMER", Side.BC, [c.bc_id for c in saved])          # counts them: 3 answers of a range query
    first, last = [c for c in saved if _bucket(c.bc_id) == "00"][:15], _in_bucket(saved, COUPLING_BUCKETS - 1)
    wanted = first + [last]
    before = storage.requests_sent
    found = store.get_many("CUSTOMER", Side.BC, [c.bc_id for c in wanted])
    assert storage.requests_sent - before == 3         # 14 + 1 keys of one bucket, 1 of another: as dear as a scan
    assert {i: c.crm_id for i, c in found.items()} == {c.bc_id: c.crm_id for c in wanted}
    # ids that differ in case only are different keys, as before
    assert store.get_many("CUSTOMER", Side.BC, [last.bc_id.upper()]) == {}


def test_transactions_go_in_parallel_and_deletes_in_transactions(env):
    store, storage = env.services.couplings, env.services.storage
    saved = _couplings(260) + _couplings(10, mapping="CONTACT")
    before = storage.requests_sent
    store.save_many(saved)
    # a look for the first layout per mapping, a journal row written and deleted per mapping, and a transaction
    # per partition (no partition holds 100 of these 540 rows)
    assert storage.requests_sent - before == 2 + 2 + _partitions(saved) + 2
    assert len(store.list("CUSTOMER")) == 260 and len(store.list("CONTACT")) == 10
    store.delete_many(saved[:3])
    before = storage.requests_sent
    store.delete_many(saved[:120])                    # three of them are gone already
    assert len(store.list("CUSTOMER")) == 140
    assert store.get_many("CUSTOMER", Side.CRM, [c.crm_id for c in saved[:120]]) == {}
    assert storage.requests_sent - before < 120       # one at a time only in the transaction that failed
    before = storage.requests_sent
    store.delete_many(saved[120:220])
    assert storage.requests_sent - before == 1 + _partitions(saved[120:220]) + 1
    assert len(store.list("CUSTOMER")) == 40


def test_errors_are_cleared_in_transactions(env):
    errors, storage = env.services.errors, env.services.storage
    failures = [RecordFailure("CUSTOMER", Direction.TO_CRM, f"id{i}", f"Customer {i}", "bad") for i in range(150)]
    errors.save_many(failures)
    before = storage.requests_sent
    errors.clear_many("CUSTOMER", Direction.TO_CRM, [f"id{i}" for i in range(140)])
    assert storage.requests_sent - before == 2
    assert sorted(f.source_id for f in errors.list("CUSTOMER", Direction.TO_CRM)) == [f"id{i}" for i in range(140, 150)]


def test_held_couplings_are_read_once_and_follow_what_the_store_saves_and_deletes(env):
    store, storage = CouplingTable(env.services.storage), env.services.storage
    saved = _couplings(SCAN_PAGE + 200)
    store.save_many(saved)
    with store.held("CUSTOMER", Side.CRM):
        before, purposes = storage.requests_sent, Counter(storage.requests_by_purpose)
        found = store.get_many("CUSTOMER", Side.CRM, [c.crm_id for c in saved[:700]] + ["not-coupled"])
        assert storage.requests_sent - before == 2                   # the side's 1,200 rows, a thousand a request
        # counted by what they were for: a query of the couplings table from the side's first partition on
        assert storage.requests_by_purpose - purposes == {("query", f"{storage.prefix}couplings", "CUSTOMER|crm|"): 2}
        assert found[saved[5].crm_id] == saved[5]
        added, changed = _couplings(3), Coupling(**{**saved[6].__dict__, "crm_etag": "c-new"})
        store.save_many([*added, changed])
        store.delete_many(saved[7:9])
        before = storage.requests_sent
        found = store.get_many("CUSTOMER", Side.CRM, [c.crm_id for c in [*added, *saved[:10]]])
        assert storage.requests_sent - before == 0                   # answered from memory
        assert set(found) == {c.crm_id for c in [*added, *saved[:7], saved[9]]}
        assert found[saved[6].crm_id].crm_etag == "c-new"
        # the other side is looked up in storage, as without holding
        assert set(store.get_many("CUSTOMER", Side.BC, [added[0].bc_id])) == {added[0].bc_id}
    before = storage.requests_sent
    assert set(store.get_many("CUSTOMER", Side.CRM, [saved[0].crm_id])) == {saved[0].crm_id}
    assert storage.requests_sent - before == 1                       # let go: looked up again


def test_a_side_held_in_part_answers_what_it_holds_from_memory_and_looks_up_the_rest(env):
    # another mapping's couplings, held by a job that looks them up page by page: that mapping's own jobs (in
    # other workers, under their own lease) may couple more meanwhile, which are then found in storage
    store, other, storage = CouplingTable(env.services.storage), CouplingTable(env.services.storage), env.services.storage
    saved = _couplings(SCAN_PAGE + 200)
    store.save_many(saved)
    with store.held("CUSTOMER", Side.BC, complete=False):
        store.get_many("CUSTOMER", Side.BC, [saved[0].bc_id])       # the side is read at the first lookup
        before = storage.requests_sent
        found = store.get_many("CUSTOMER", Side.BC, [c.bc_id for c in saved[:300]])
        assert storage.requests_sent - before == 0 and set(found) == {c.bc_id for c in saved[:300]}
        late = _couplings(2)
        other.save_many(late)                                          # coupled elsewhere meanwhile
        before = storage.requests_sent
        found = store.get_many("CUSTOMER", Side.BC, [c.bc_id for c in [*saved[:5], *late]] + ["not-coupled"])
        assert set(found) == {c.bc_id for c in [*saved[:5], *late]}
        assert found[late[1].bc_id] == late[1] and found[saved[3].bc_id] == saved[3]
        assert 0 < storage.requests_sent - before <= 3                 # only the ids not held, by key


def test_a_follow_up_note_costs_no_request_and_a_stopped_job_leaves_it_to_recover(env):
    store, storage = CouplingTable(env.services.storage), env.services.storage
    plain, noted = _couplings(50), _couplings(50)
    store.get_many("CUSTOMER", Side.BC, ["warm-up"])                  # the first layout's look, done
    before = storage.requests_sent
    store.save_many(plain)
    plain_cost = storage.requests_sent - before
    before = storage.requests_sent
    follow_up = FollowUp(Direction.TO_CRM, [c.bc_id for c in noted[:30]])
    store.save_many(noted, follow_up)
    store.followed_up(follow_up)
    # a journal transaction, a transaction per partition, the journal's removal: the note adds none
    assert plain_cost == 1 + _partitions(plain) + 1
    assert storage.requests_sent - before == 1 + _partitions(noted) + 1
    assert store.recover("CUSTOMER") == []
    # a job that stops between the save and the follow-ups leaves the note (and the save's journal)
    stopped = FollowUp(Direction.FROM_CRM, [noted[0].crm_id])
    store.save_many(noted[:2], stopped)
    left = store.recover("CUSTOMER")
    assert [(f.direction, f.source_ids) for f in left] == [(Direction.FROM_CRM, [noted[0].crm_id])]
    assert set(store.get_many("CUSTOMER", Side.BC, [c.bc_id for c in noted[:2]])) == {c.bc_id for c in noted[:2]}
    assert len(store.recover("CUSTOMER")) == 1                       # kept until the caller has logged them
    store.followed_up(left[0])
    assert store.recover("CUSTOMER") == []


def _range_queries_of_a_full_synchronisation(stack, page_size: int) -> Counter:
    """A full synchronisation of 40 + 40 customers read in pages of `page_size` rows, on fresh simulators and
    tables: its range queries over couplings, by the side they read."""
    env = Env(stack, {**fresh(stack), "BCSYNC_PAGE_SIZE": page_size})
    env.bc.seed("customers", [{"number": f"C{i:05d}", "displayName": f"Customer {i}"} for i in range(40)])
    env.dv.seed("account", [{"name": f"Account {i}", "customertypecode": 3} for i in range(40)])
    storage = env.services.storage
    purposes = Counter(storage.requests_by_purpose)
    full = env.full_sync(["CUSTOMER"])
    assert full.to_dict()["totals"]["failed"] == 0, full.to_dict()
    assert job(full, "CUSTOMER:to-crm").counts.inserted == job(full, "CUSTOMER:from-crm").counts.inserted == 40
    queries: Counter = Counter()
    for (operation, table, partition), n in (storage.requests_by_purpose - purposes).items():
        # a range query's partition is where it starts, the side's first one: `CUSTOMER|bc|`
        if operation == "query" and table.endswith("couplings") and partition.endswith("|"):
            queries[partition] += n
    return queries


def test_a_full_synchronisation_reads_each_sides_couplings_by_range_as_often_whatever_its_pages(stack):
    # Each range query reads a side's couplings from its start: one per page would grow with the rows squared.
    # Read in pages of 10 rows (4 to 8 per side and job) or in one page, the full jobs send as many. Among them:
    # the Sales -> BC job looks up at its end the couplings of the BC rows it did not see (those the BC -> Sales
    # job coupled, changed since its watermark), once for all of them, not once per page of BC rows
    small, whole = [_range_queries_of_a_full_synchronisation(stack, size) for size in (10, 1000)]
    assert small == whole, (small, whole)
    assert sum(whole.values()) <= 12, whole


def test_a_lease_is_taken_renewed_and_released_in_one_request_each_and_keeps_other_owners_out(env):
    storage, clock = env.services.storage, env.services.clock
    mine, theirs = StateTable(storage, clock), StateTable(storage, clock)   # two workers
    lease, later = f"mapping:{uuid.uuid4()}", clock.now() + dt.timedelta(minutes=10)

    def requests(call, *args):
        before = storage.requests_sent
        result = call(*args)
        return result, storage.requests_sent - before

    assert requests(mine.acquire, lease, "run/job/a", later) == (True, 1)      # free: created
    assert requests(mine.acquire, lease, "run/job/a", later) == (True, 1)      # renewed by its ETag
    assert theirs.acquire(lease, "run/job/b", later) is False                  # held by another owner
    assert requests(mine.release, lease, "run/job/a") == (None, 1)
    assert theirs.acquire(lease, "run/job/b", clock.now() - dt.timedelta(seconds=1)) is True   # free again
    # b's lease has run out: a takes it over, and b, which no longer holds it, can neither renew nor release it
    assert mine.acquire(lease, "run/job/a", later) is True
    assert theirs.acquire(lease, "run/job/b", later) is False
    theirs.release(lease, "run/job/b")
    assert theirs.acquire(lease, "run/job/c", later) is False
    mine.release(lease, "run/job/a")
    assert theirs.acquire(lease, "run/job/c", later) is True


def test_known_versions_are_replaced_without_reading_them_again_even_when_a_row_is_gone(env):
    storage, clock = env.services.storage, env.services.clock
    state, mapping = StateTable(storage, clock), f"M{uuid.uuid4().hex[:8]}"
    many = {f"id{n:05d}": f"v{n}" for n in range(3 * VERSIONS_PER_ROW)}              # three rows
    state.save_known_versions(mapping, Direction.TO_CRM, many)
    read = state.known_versions(mapping, Direction.TO_CRM)
    assert read == many
    # a row of those read is gone before the job saves (its delete fails the transaction): the job does not fail
    state.table.delete_entity(storage_module._key(mapping), f"versions:{Direction.TO_CRM.value}:000002")
    state.save_known_versions(mapping, Direction.TO_CRM, {"id00001": "v1"}, replacing=read)
    assert state.known_versions(mapping, Direction.TO_CRM) == {"id00001": "v1"}
    # and without a row gone: one transaction, no query for the rows read already
    state.save_known_versions(mapping, Direction.TO_CRM, many)
    read = state.known_versions(mapping, Direction.TO_CRM)
    before = storage.requests_sent
    state.save_known_versions(mapping, Direction.TO_CRM, {"id00002": "v2"}, replacing=read)
    assert storage.requests_sent - before == 1
    assert state.known_versions(mapping, Direction.TO_CRM) == {"id00002": "v2"}


def test_versions_added_by_another_mapping_s_job_are_read_with_the_others_and_replaced_only_once_read(env):
    storage, clock = env.services.storage, env.services.clock
    state, mapping = StateTable(storage, clock), f"M{uuid.uuid4().hex[:8]}"
    state.save_known_versions(mapping, Direction.TO_CRM, {"id00001": "v1", "id00002": "v2"})
    # a contact's job wrote rows of this mapping (one of them a second time): added in one request, newest wins
    before = storage.requests_sent
    state.add_known_versions(mapping, Direction.TO_CRM, {"id00002": "v3", "id00003": "v3"})
    assert storage.requests_sent - before == 1
    read = state.known_versions(mapping, Direction.TO_CRM)
    assert read == {"id00001": "v1", "id00002": "v3", "id00003": "v3"}
    assert state.known_versions(mapping, Direction.FROM_CRM) == {}
    # the mapping's job is running meanwhile: what is added after its read outlives its save
    state.add_known_versions(mapping, Direction.TO_CRM, {"id00004": "v4"})
    state.save_known_versions(mapping, Direction.TO_CRM, {"id00003": "v3"}, replacing=read)
    assert state.known_versions(mapping, Direction.TO_CRM) == {"id00003": "v3", "id00004": "v4"}
    # more than one row's worth at once
    many = {f"id{n:05d}": f"v{n}" for n in range(2 * VERSIONS_PER_ROW + 1)}
    state.add_known_versions(mapping, Direction.TO_CRM, many)
    assert state.known_versions(mapping, Direction.TO_CRM) == {**many, "id00003": "v3", "id00004": "v4"}


def test_a_notification_joins_a_waiting_run_with_one_read_and_a_job_reads_its_notified_rows_with_its_state(env):
    storage, clock = env.services.storage, env.services.clock
    state, mapping = StateTable(storage, clock), f"M{uuid.uuid4().hex[:8]}"
    stale = clock.now() - dt.timedelta(minutes=5)
    assert state.join_waiting_run(mapping, "run-a", stale)[0] == "run-a"       # absent: created
    before = storage.requests_sent
    assert state.join_waiting_run(mapping, "run-b", stale)[0] == "run-a"       # waiting: joined
    assert storage.requests_sent - before == 1
    state.release_waiting_run(mapping, "run-a")
    assert state.join_waiting_run(mapping, "run-c", stale)[0] == "run-c"
    state.notify(mapping, Direction.TO_CRM, [NotifiedRow("id1", Change.DELETED), NotifiedRow(COLLECTION_ID,
                                                                                           Change.COLLECTION)])
    state.mark_pending(mapping, Direction.TO_CRM, ["id2"])
    before = storage.requests_sent
    read = state.job_state(mapping, Direction.TO_CRM)
    assert storage.requests_sent - before == 1 and read.pending == ["id2"]
    assert read.notified == state.notified(mapping, Direction.TO_CRM) and len(read.notified) == 2
    assert state.job_state(mapping, Direction.FROM_CRM).notified == []


def test_the_newest_runs_of_one_kind_are_read_without_the_other_kinds_index_rows(env):
    storage, clock = env.services.storage, env.services.clock
    runs = RunTable(storage)
    start = clock.now() + dt.timedelta(days=3650)  # newer than any run other tests made
    made = {}
    for n, kind in enumerate([RunKind.SCHEDULED, RunKind.FULL, *[RunKind.NOTIFIED] * 5]):
        run = Run(f"{uuid.uuid4().hex[:6]}-{n}", kind, "test", created_at=start + dt.timedelta(seconds=n))
        runs.create(run, [])
        made[run.run_id] = run
    index_rows, query = [], runs.table.query_entities

    def counted(*args, **kwargs):
        for entity in query(*args, **kwargs):
            index_rows.append(entity)
            yield entity

    runs.table.query_entities = counted
    newest = lambda **kw: [r.run_id for r in runs.list_runs(**kw)]
    by_kind = lambda *kinds: [i for i in reversed(made) if made[i].kind in kinds]
    assert newest(limit=1, targeted=False) == by_kind(RunKind.SCHEDULED, RunKind.FULL)[:1]
    assert len(index_rows) == 1  # not the five targeted runs' rows newer than it
    assert newest(limit=2, targeted=True) == by_kind(RunKind.NOTIFIED)[:2]
    assert newest(limit=7) == list(reversed(made))
    runs.table.query_entities = query
    for run in made.values():
        runs.delete(runs.get(run.run_id))
    assert not set(made) & {r.run_id for r in runs.list_runs(limit=50)}
