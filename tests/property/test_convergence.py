"""Convergence: random creates, edits and deletes on both sides, with scheduled and full runs in between,
some of them killed midway and taken over by another worker, under every update-conflict and
deletion-conflict resolution. After every run both sides must hold what a model of the resolution
promises, every coupling must pair one Business Central customer with one account, and no record may
be duplicated or lost.

The model (Model below), for the customers' name, e-mail and phone:
- a field changed on one side since the last synchronisation takes that side's value; changed on both
  sides to different values it is an update conflict: *none* leaves the pair as it is (and reports it),
  *send to Sales* takes Business Central's value, *get from Sales* takes Sales' value;
- a coupled row deleted on one side: *none* leaves the survivor and the coupling (and reports it),
  *restore* creates the row again from the survivor, *remove coupling* forgets the pair, and the survivor
  is created anew by a later full synchronisation, like any uncoupled row; deleted on both sides, the
  coupling goes; nothing is ever deleted by bcsync;
- scheduled runs leave uncoupled rows alone; a full run couples them by name or creates their
  counterparts (a matched pair takes Business Central's values, a blank filled from Sales). When both
  sides hold rows the full synchronisation only couples (Business Central's review), leaving coupled
  pairs to the scheduled runs (but for those that failed before); otherwise it also synchronises them
  as a scheduled run does. An account bcsync wrote last is, like any change of the integration user,
  not read: once its coupling was removed it is not created again until a user edits it.
"""

from __future__ import annotations

import datetime as dt
import itertools
import uuid

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule, run_state_machine_as_test

from sync.config import StaticCatalog
from sync.mappings import Catalog, builtin_mappings
from sync.model import DeletionConflictResolution, Side, UpdateConflictResolution
from sync.runs import RunCoordinator, RunKind, RunStatus
from sync.tables import BC_CUSTOMER, CRM_ACCOUNT
from tests.fakes import FakeQueue, FakeRuns
from tests.unit.test_engine import World

from .conftest import PROFILE

MAPPING = "CUSTOMER"
# the fields the test changes: model name -> (Business Central field, Sales field)
FIELDS = {"name": ("displayName", "name"), "email": ("email", "emailaddress1"), "phone": ("phoneNumber", "telephone1")}
VALUES = {"email": ["", "a@example.com", "b@example.com"], "phone": ["", "111", "222"]}
# the ports' writes a worker can be killed right after (the write has reached the service or store)
WRITES = {"bc": ("insert", "update"), "crm": ("insert", "update"), "couplings": ("save_many", "delete_many"),
          "errors": ("save_many", "clear_many"),
          "state": ("advance_watermark", "save_watermark", "mark_pending", "clear_pending", "save_cursor", "save_pending_inserts",
                    "clear_pending_inserts")}
U, D = UpdateConflictResolution, DeletionConflictResolution


class Killed(BaseException):
    """The worker process dying: nothing in bcsync catches it."""


def blank(value):
    return "" if value is None else value


class Model:
    """What both sides should hold after each run: rows per side (by id; a row bcsync is to create has a
    placeholder id until the run tells it), the pairs bcsync couples and their values at the last
    synchronisation, and the pairs left in conflict (which the error log reports)."""

    def __init__(self, update: U, deletion: D):
        self.update, self.deletion = update, deletion
        self.rows: dict[Side, dict[str, dict]] = {Side.BC: {}, Side.CRM: {}}
        self.pairs: dict[str, str] = {}       # bc id -> crm id
        self.base: dict[str, dict] = {}       # bc id -> values at the last synchronisation
        self.stuck: set[str] = set()          # bc ids of pairs in conflict
        self.ours: set[str] = set()           # accounts bcsync wrote last (the integration user's changes)
        self._placeholders = itertools.count()

    def run(self, kind: RunKind) -> None:
        if kind is RunKind.SCHEDULED:
            self._synchronise_pairs()
            return
        bc, crm = self.rows[Side.BC], self.rows[Side.CRM]
        if not bc and not crm:
            return
        uncoupled = self._uncoupled()
        # the review's "full synchronization"; with rows on both sides "couple records", which leaves coupled
        # pairs alone but for those that failed before (every run retries them)
        self._synchronise_pairs(None if not (bc and crm) else set(self.stuck))
        self._couple(*uncoupled)

    def _uncoupled(self) -> tuple[list[str], list[str]]:
        crm_coupled = set(self.pairs.values())
        # changes made in Sales by the integration user are not synchronised: an account bcsync wrote last
        # and whose coupling was removed is left alone (until a user changes it)
        return ([i for i in self.rows[Side.BC] if i not in self.pairs],
                [i for i in self.rows[Side.CRM] if i not in crm_coupled and i not in self.ours])

    def _placeholder(self, side: Side) -> str:
        return f"?{side.value}{next(self._placeholders)}"

    def _synchronise_pairs(self, only: set[str] | None = None) -> None:
        bc_rows, crm_rows = self.rows[Side.BC], self.rows[Side.CRM]
        for bc_id, crm_id in list(self.pairs.items()):
            if only is not None and bc_id not in only:
                continue
            b, c = bc_rows.get(bc_id), crm_rows.get(crm_id)
            if b is None and c is None:
                self._forget(bc_id)
            elif b is not None and c is not None:
                self._merge(bc_id, b, c)
            elif self.deletion is D.NONE:
                self.stuck.add(bc_id)
            elif self.deletion is D.REMOVE_COUPLING:
                self._forget(bc_id)
            else:   # restore: created again from the survivor
                survivor = dict(b or c)
                self._forget(bc_id)
                if b is None:
                    bc_id = self._placeholder(Side.BC)
                    bc_rows[bc_id] = dict(survivor)
                else:
                    crm_id = self._placeholder(Side.CRM)
                    crm_rows[crm_id] = dict(survivor)
                    self.ours.add(crm_id)
                self._couple_pair(bc_id, crm_id, survivor)

    def _merge(self, bc_id: str, b: dict, c: dict) -> None:
        base, result, conflict = self.base[bc_id], {}, False
        for name in FIELDS:
            if b[name] == c[name] or c[name] == base[name]:
                result[name] = b[name]
            elif b[name] == base[name]:
                result[name] = c[name]
            elif self.update is U.NONE:
                conflict = True
            else:
                result[name] = b[name] if self.update is U.SEND_TO_CRM else c[name]
        if conflict:
            self.stuck.add(bc_id)
            return
        self.stuck.discard(bc_id)
        self._write(self.pairs[bc_id], c, result)
        b.update(result)
        self.base[bc_id] = dict(result)

    def _couple(self, bc_ids: list[str], crm_ids: list[str]) -> None:
        """A full run's uncoupled rows: matched by name (exactly one on each side), else created."""
        bc_rows, crm_rows = self.rows[Side.BC], self.rows[Side.CRM]
        by_name: dict[str, tuple[list[str], list[str]]] = {}
        for side, ids, rows in ((0, bc_ids, bc_rows), (1, crm_ids, crm_rows)):
            for i in ids:
                by_name.setdefault(rows[i]["name"].casefold(), ([], []))[side].append(i)
        for bcs, crms in by_name.values():
            if len(bcs) == 1 and len(crms) == 1:
                b, c = bc_rows[bcs[0]], crm_rows[crms[0]]
                # a matched pair's first synchronisation: Business Central's values, a blank never wins
                values = {name: b[name] or c[name] for name in FIELDS}
                c.update(values)
                self.ours.add(crms[0])   # written all the same: the customer's currency and credit limit
                b.update(values)
                self._couple_pair(bcs[0], crms[0], values)
                continue
            assert not (bcs and crms), "the test makes names unique: no ambiguous matches"
            for bc_id in bcs:
                crm_id = self._placeholder(Side.CRM)
                crm_rows[crm_id] = dict(bc_rows[bc_id])
                self.ours.add(crm_id)
                self._couple_pair(bc_id, crm_id, bc_rows[bc_id])
            for crm_id in crms:
                bc_id = self._placeholder(Side.BC)
                bc_rows[bc_id] = dict(crm_rows[crm_id])
                self._couple_pair(bc_id, crm_id, crm_rows[crm_id])

    def _write(self, crm_id: str, c: dict, values: dict) -> None:
        """The account takes these values; bcsync writes it when one differs."""
        if c != values:
            self.ours.add(crm_id)
        c.update(values)

    def _couple_pair(self, bc_id: str, crm_id: str, values: dict) -> None:
        self.pairs[bc_id] = crm_id
        self.base[bc_id] = dict(values)

    def _forget(self, bc_id: str) -> None:
        del self.pairs[bc_id]
        self.base.pop(bc_id, None)
        self.stuck.discard(bc_id)

    def resolve(self, couplings: dict[str, str]) -> None:
        """Placeholders become the ids of the rows bcsync created, found through the couplings of their
        counterparts (`couplings`: bc id -> crm id as stored)."""
        by_crm = {crm: bc for bc, crm in couplings.items()}
        for bc_id, crm_id in list(self.pairs.items()):
            if bc_id.startswith("?"):
                assert crm_id in by_crm, f"the account {crm_id} {self.rows[Side.CRM][crm_id]} is not coupled"
                self._rename(Side.BC, bc_id, by_crm[crm_id])
            elif crm_id.startswith("?"):
                assert bc_id in couplings, f"the customer {bc_id} {self.rows[Side.BC][bc_id]} is not coupled"
                self._rename(Side.CRM, crm_id, couplings[bc_id])

    def _rename(self, side: Side, placeholder: str, real: str) -> None:
        rows = self.rows[side]
        assert real not in rows, f"{real} was coupled twice"
        rows[real] = rows.pop(placeholder)
        if placeholder in self.ours:
            self.ours.remove(placeholder)
            self.ours.add(real)
        if side is Side.BC:
            self.pairs[real] = self.pairs.pop(placeholder)
            self.base[real] = self.base.pop(placeholder)
            if placeholder in self.stuck:
                self.stuck.remove(placeholder)
                self.stuck.add(real)
        else:
            bc_id = next(b for b, c in self.pairs.items() if c == placeholder)
            self.pairs[bc_id] = real


class Convergence(RuleBasedStateMachine):
    update: U = U.NONE
    deletion: D = D.NONE

    def __init__(self):
        super().__init__()
        catalog = Catalog([m.with_overrides(update_conflict=self.update, deletion_conflict=self.deletion)
                           if m.name == MAPPING else m for m in builtin_mappings()])
        self.w = World(catalog)
        # Business Central reports no deletions: its coupled ids are checked at every run here
        self.w.engine.reconcile_every = dt.timedelta(0)
        self.runs, self.queue = FakeRuns(), FakeQueue()
        self.coordinator = RunCoordinator(StaticCatalog(catalog), self.w.engine, self.runs, self.queue,
                                          self.w.state, self.w.state, self.w.clock)
        self.model = Model(self.update, self.deletion)
        self.names = itertools.count()
        # predictable ids, so that hypothesis replays a failing case exactly
        ids = itertools.count(1)
        self.w.bc.new_id = self.w.crm.new_id = lambda: str(uuid.UUID(int=next(ids)))
        self.countdown: int | None = None   # writes left before the worker is killed
        for attr, methods in WRITES.items():
            for method in methods:
                self._kill_after(getattr(self.w, attr), method)
        self._kill_after(self.runs, "save_job")

    def _kill_after(self, port, method: str) -> None:
        real = getattr(port, method)

        def write(*args, **kwargs):
            result = real(*args, **kwargs)
            if self.countdown is not None:
                self.countdown -= 1
                if self.countdown <= 0:
                    self.countdown = None
                    raise Killed()
            return result
        setattr(port, method, write)

    # -- what users do ----------------------------------------------------------------------------

    def _name(self) -> str:
        return f"Customer {next(self.names)}"

    def _values(self, email: str, phone: str) -> dict:
        return {"name": self._name(), "email": email, "phone": phone}

    def _create(self, side: Side, values: dict) -> None:
        if side is Side.BC:
            row_id = self.w.customer(f"C{next(self.names):05d}", values["name"], email=values["email"],
                                     phoneNumber=values["phone"])
        else:
            row_id = self.w.account(values["name"], emailaddress1=values["email"], telephone1=values["phone"],
                                    statuscode=1)   # as Sales sets it: bcsync has no reason to write the row
        self.model.rows[side][row_id] = dict(values)

    @rule(side=st.sampled_from(Side), email=st.sampled_from(VALUES["email"]), phone=st.sampled_from(VALUES["phone"]))
    def create(self, side, email, phone):
        self._create(side, self._values(email, phone))

    @rule(bc=st.tuples(st.sampled_from(VALUES["email"]), st.sampled_from(VALUES["phone"])),
          crm=st.tuples(st.sampled_from(VALUES["email"]), st.sampled_from(VALUES["phone"])))
    def create_on_both_sides(self, bc, crm):
        """The same customer entered on both sides: a full run couples them instead of duplicating."""
        name = self._name()
        self._create(Side.BC, {"name": name, "email": bc[0], "phone": bc[1]})
        self._create(Side.CRM, {"name": name, "email": crm[0], "phone": crm[1]})

    def _pick(self, side: Side, index: int) -> str | None:
        ids = list(self.model.rows[side])
        return ids[index % len(ids)] if ids else None

    @rule(side=st.sampled_from(Side), index=st.integers(0, 50), field=st.sampled_from(list(FIELDS)),
          choice=st.integers(0, 2))
    def edit(self, side, index, field, choice):
        row_id = self._pick(side, index)
        if row_id is None:
            return
        value = self._name() if field == "name" else VALUES[field][choice]
        table = BC_CUSTOMER if side is Side.BC else CRM_ACCOUNT
        self.w.clock.tick(5)
        endpoint = self.w.bc if side is Side.BC else self.w.crm
        endpoint.edit(table, row_id, **{FIELDS[field][0 if side is Side.BC else 1]: value})
        self.model.rows[side][row_id][field] = value
        self.model.ours.discard(row_id)

    @rule(side=st.sampled_from(Side), index=st.integers(0, 50))
    def delete(self, side, index):
        row_id = self._pick(side, index)
        if row_id is None:
            return
        (self.w.bc if side is Side.BC else self.w.crm).delete(BC_CUSTOMER if side is Side.BC else CRM_ACCOUNT, row_id)
        del self.model.rows[side][row_id]

    # -- runs -------------------------------------------------------------------------------------

    @rule(kind=st.sampled_from([RunKind.SCHEDULED, RunKind.FULL]),
          killed_after=st.one_of(st.none(), st.integers(1, 30)), twice=st.booleans())
    def synchronise(self, kind, killed_after, twice):
        """A run; `killed_after`: its worker dies right after that many writes, and another takes over once
        the lease has run out; `twice`: every job message is delivered twice."""
        self.w.clock.tick(5)
        run = self.coordinator.start_run(kind, trigger="test", mappings=[MAPPING])
        self.countdown = killed_after
        try:
            self._deliver(twice)
        except Killed:
            self.w.clock.tick(700)          # the dead worker's leases run out
            self.coordinator.recover()      # the timer's sweep re-queues what it left
            self._deliver(twice)
        finally:
            self.countdown = None
        assert self.runs.get(run.run_id).status is RunStatus.DONE, [j.to_dict() for j in self.runs.jobs(run.run_id)]
        self.model.run(kind)
        self.check()

    def _deliver(self, twice: bool) -> None:
        for _ in range(100):
            messages = self.queue.drain()
            if not messages:
                return
            for message in messages:
                self.w.clock.tick(120)      # jobs start past the watermark margin of the changes before them
                for _ in range(2 if twice else 1):
                    self.coordinator.handle(message)
        raise AssertionError("the job queue never emptied")

    # -- the promise ------------------------------------------------------------------------------

    def check(self) -> None:
        couplings = {c.bc_id: c.crm_id for c in self.w.couplings.all(MAPPING).values()}
        self.model.resolve(couplings)
        for side, table in ((Side.BC, BC_CUSTOMER), (Side.CRM, CRM_ACCOUNT)):
            stored = (self.w.bc if side is Side.BC else self.w.crm).rows(table)
            expected = self.model.rows[side]
            assert sorted(stored) == sorted(expected), f"{side.value}: rows lost or duplicated"
            at = 0 if side is Side.BC else 1
            actual = {i: {name: blank(row["values"].get(names[at])) for name, names in FIELDS.items()}
                      for i, row in stored.items()}
            assert actual == expected, f"{side.value}: values differ from the model"
        assert couplings == self.model.pairs, "couplings differ from the model"
        assert len(set(couplings.values())) == len(couplings), "an account is coupled twice"
        stuck = {i for bc_id in self.model.stuck for i in (bc_id, self.model.pairs[bc_id])}
        reported = {f.source_id for f in self.w.errors.list_all()}
        assert reported <= stuck, f"errors reported on records in sync: {reported - stuck}"
        for bc_id in self.model.stuck:
            assert {bc_id, self.model.pairs[bc_id]} & reported, f"the conflict of {bc_id} is not reported"


POLICIES = [(u, d) for u in U for d in D]


@pytest.mark.parametrize("update, deletion", POLICIES, ids=[f"{u.value}/{d.value}" for u, d in POLICIES])
def test_both_sides_converge_to_what_the_conflict_resolutions_promise(update, deletion):
    machine = type(f"Convergence_{update.name}_{deletion.name}", (Convergence,),
                   {"update": update, "deletion": deletion})
    run_state_machine_as_test(machine, settings=settings.get_profile(PROFILE))
