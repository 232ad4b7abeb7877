"""Writing to Sales rows that are read-only in their state, the way Business Central's own integration
writes to a submitted sales order: re-activate the row, write the columns, set its state again, each
step its own update. One update cannot do it: Dataverse applies an update's columns before its state
change, while the row still has its old, read-only state.

A write-back is recorded (StateStore) before its first step and forgotten after its last, so that a
run stopping in between leaves it behind; `finish`, at the start of the mapping's next job, reads those
rows by id, whatever state they were left in, and completes them. A row that someone other than the
integration changed after the write-back began keeps the state that person gave it: only the columns
are still written, never a state over theirs.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

from .errors import NotFoundError
from .model import CrmTable
from .ports import Record, RowChange, WriteBack
from .process import JobContext
from .values import same

ACTIVE = 0

Begun = list[tuple[WriteBack, Record | None]]


def _state_change(row: Record, state: int, status: int | None) -> dict:
    """What moves `row` to `state` (and `status`, else whatever status the state defaults to)."""
    if row.values.get("statecode") == state and status in (None, row.values.get("statuscode")):
        return {}
    return {"statecode": state, **({"statuscode": status} if status is not None else {})}


class WriteBacks:
    """Write-backs to one table. `reopens`: the closed states a row is re-activated from to be written
    (a submitted order); a row in any other closed state is left as it is."""

    def __init__(self, table: CrmTable, reopens: frozenset[int]):
        self.table = table
        self.reopens = reopens

    def write(self, job: JobContext, write_backs: Sequence[WriteBack]) -> dict[str, str]:
        """Write these now; the rows that could not be written, with the reason (the next job completes
        them). A row that no longer exists needs nothing."""
        return self.complete(job, self.begin(job, write_backs))

    def begin(self, job: JobContext, write_backs: Sequence[WriteBack], keep: frozenset[str] = frozenset()) -> Begun:
        """Read the rows and record what is to be written to them; nothing is written yet. A row that
        still has a write-back recorded (one that failed midway) gets a single one for both. Rows `keep`
        (lower-case ids) are kept even when their columns and state are as wanted (their children change)."""
        if not write_backs:
            return []
        recorded = {w.row_id.lower(): w for w in job.state.write_backs(job.mapping.name)}
        wanted: dict[str, WriteBack] = {}
        for w in write_backs:
            key = w.row_id.lower()
            earlier = wanted.get(key) or recorded.get(key)
            wanted[key] = w if earlier is None else dataclasses.replace(
                earlier, values={**earlier.values, **w.values},
                **({} if w.state is None else {"state": w.state, "status": w.status}))
        rows = self._read(job, wanted.values())
        begun: Begun = []
        for key, w in wanted.items():
            row = rows.get(key)
            if key in recorded or (row is not None and (
                    key in keep or self._columns(w, row) or self._set_state(w, row))):
                begun.append((self._resolve(job, w, row), row))
        if begun:
            job.state.save_write_backs(job.mapping.name, [w for w, _ in begun])
        return begun

    def finish(self, job: JobContext) -> None:
        """Complete the write-backs a job that stopped midway left behind."""
        left = job.state.write_backs(job.mapping.name)
        if not left:
            return
        rows = self._read(job, left)
        begun = [(self._resolve(job, w, rows.get(w.row_id.lower())), rows.get(w.row_id.lower())) for w in left]
        for row_id, reason in self.complete(job, begun).items():
            job.note(f"{self.table.logical_name} {row_id}: what bcsync began to write could not be completed "
                     f"({reason}); tried again next run")

    def _resolve(self, job: JobContext, w: WriteBack, row: Record | None) -> WriteBack:
        """The write-back as it is to be done. A new one ends in the state it names, else in the row's,
        and remembers the row's version. One begun earlier ends in its state too, unless someone other
        than the integration changed the row since it began: the state that person gave it stands."""
        if row is None:
            return w
        if w.version is None:
            return dataclasses.replace(w, state=row.values.get("statecode") if w.state is None else w.state,
                                       version=row.etag)
        if row.etag != w.version and (row.modified_by or "").lower() != job.integration_user_id().lower():
            job.note(f"{self.table.logical_name} {w.row_id} was changed in Sales while bcsync was writing to it; "
                     f"it keeps the state it was given then")
            return dataclasses.replace(w, state=row.values.get("statecode"), status=row.values.get("statuscode"))
        return w

    def complete(self, job: JobContext, begun: Begun,
                 while_active: Callable[[list[str]], dict[str, str]] | None = None) -> dict[str, str]:
        """Re-activate, write, set the state again; forget each write-back once its row is done (or gone).
        `while_active`, when given, writes what only an active row takes (an order's lines) to the rows, all
        re-activated for it, before their state is set again; it answers the rows it failed, with the reason."""
        current = {w.row_id: row for w, row in begun}
        failed: dict[str, str] = {}
        writable = []
        for w, row in begun:
            if row is None:
                continue  # deleted meanwhile: nothing to write
            state = row.values.get("statecode")
            if state != ACTIVE and state not in self.reopens:
                if self._columns(w, row) or self._set_state(w, row):
                    job.note(f"{self.table.logical_name} {w.row_id} is closed in Sales (state {state}), so bcsync "
                             f"left it as it is")
                continue
            writable.append(w)
        reactivate = self._reactivate if while_active is None else self._activate
        for step in (reactivate, self._columns, None, self._set_state):
            writable = [w for w in writable if current[w.row_id] is not None and w.row_id not in failed]
            if step is None:
                if while_active is not None and writable:
                    failed.update(while_active([w.row_id for w in writable]))
                    # writing children moves the row's version (its totals): the state is set on the new one
                    fresh = self._read(job, writable)
                    current.update({w.row_id: fresh.get(w.row_id.lower()) for w in writable})
                continue
            self._step(job, current, failed, [(w, step(w, current[w.row_id])) for w in writable])
        done = [w.row_id for w, _ in begun if w.row_id not in failed]
        if done:
            job.state.clear_write_backs(job.mapping.name, done)
        return failed

    def _step(self, job: JobContext, current: dict[str, Record | None], failed: dict[str, str],
              changes: list[tuple[WriteBack, dict]]) -> None:
        """One update per row, each on the version the step before left (a change in between fails it)."""
        changes = [(w, values) for w, values in changes if values]
        if not changes:
            return
        fields = list(dict.fromkeys(["statecode", "statuscode", *(k for w, _ in changes for k in w.values)]))
        results = job.crm.update(self.table, [RowChange(w.row_id, current[w.row_id].etag, values)
                                              for w, values in changes], fields)
        for (w, _), result in zip(changes, results):
            if result.error is None:
                current[w.row_id] = result.record
            elif isinstance(result.error, NotFoundError):
                current[w.row_id] = None
            else:
                failed[w.row_id] = result.error.message

    def _reactivate(self, w: WriteBack, row: Record) -> dict:
        """Step 1, for a closed row with columns to write; straight to its status when it stays active
        (Business Central sets an order back to Active / Pending in one update)."""
        if row.values.get("statecode") == ACTIVE or not self._columns(w, row):
            return {}
        return _state_change(row, ACTIVE, w.status if w.state == ACTIVE else None)

    @staticmethod
    def _activate(w: WriteBack, row: Record) -> dict:
        """Step 1 when the row's children are written too: re-activate it whatever its columns."""
        return _state_change(row, ACTIVE, None)

    @staticmethod
    def _columns(w: WriteBack, row: Record) -> dict:
        """Step 2: the columns that differ."""
        return {k: v for k, v in w.values.items() if not same(row.values.get(k), v)}

    @staticmethod
    def _set_state(w: WriteBack, row: Record) -> dict:
        """Step 3: the state the row ends in."""
        return _state_change(row, w.state, w.status)

    def _read(self, job: JobContext, write_backs) -> dict[str, Record]:
        write_backs = list(write_backs)
        fields = list(dict.fromkeys(["statecode", "statuscode", *(k for w in write_backs for k in w.values)]))
        return {r.id.lower(): r for r in job.crm.read_ids(self.table, fields, [w.row_id for w in write_backs])}
