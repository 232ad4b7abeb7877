"""Write-backs to Sales rows read-only in their state: the steps, their record, and completing them."""

from __future__ import annotations

from types import SimpleNamespace

from sync.errors import ServiceUnavailableError
from sync.model import Side
from sync.ports import RowChange, WriteBack, WriteResult
from sync.tables import CRM_SALES_ORDER
from sync.writeback import WriteBacks

from ..fakes import FakeClock, FakeEndpoint, FakeState

ACTIVE, SUBMITTED, INVOICED = 0, 1, 4
STAMP = {"lastbackofficesubmit": "2024-05-02", "submitstatusdescription": "Business Central sales order 101005"}


class Job(SimpleNamespace):
    def note(self, text: str) -> None:
        self.notes.append(text)

    def integration_user_id(self) -> str:
        return self.crm.integration_user_id()


def job() -> Job:
    clock = FakeClock()
    return Job(mapping=SimpleNamespace(name="SALESORDER-ORDER"), crm=FakeEndpoint(Side.CRM, clock),
               state=FakeState(clock), notes=[])


def order(j: Job, state: int = SUBMITTED, status: int = 3, **values) -> str:
    return j.crm.put(CRM_SALES_ORDER, {"statecode": state, "statuscode": status, **values}, by="sam")


def updates(j: Job, action) -> list[dict]:
    """The updates `action` sends, in order."""
    sent, real = [], j.crm.update

    def update(table, changes, fields):
        sent.extend(c.values for c in changes)
        return real(table, changes, fields)

    j.crm.update = update
    action()
    j.crm.update = real
    return sent


def row(j: Job, row_id: str) -> dict:
    return j.crm.rows(CRM_SALES_ORDER)[row_id]["values"]


def test_a_submitted_row_is_re_activated_written_and_submitted_again_and_the_write_back_forgotten():
    j, write_backs = job(), WriteBacks(CRM_SALES_ORDER, reopens=frozenset({SUBMITTED}))
    submitted = order(j)
    recorded, save = [], j.state.save_write_backs
    j.state.save_write_backs = lambda mapping, items: (recorded.extend(items), save(mapping, items))
    assert updates(j, lambda: write_backs.write(j, [WriteBack(submitted, STAMP)])) == [
        {"statecode": ACTIVE}, STAMP, {"statecode": SUBMITTED}]
    assert row(j, submitted)["statecode"] == SUBMITTED and row(j, submitted)["lastbackofficesubmit"] == "2024-05-02"
    assert [(w.row_id, w.state, w.version) for w in recorded] == [(submitted, SUBMITTED, "v1")]
    assert j.state.write_backs("SALESORDER-ORDER") == []
    # nothing left to write: nothing sent, nothing recorded
    assert updates(j, lambda: write_backs.write(j, [WriteBack(submitted, STAMP)])) == []


def test_setting_a_row_back_to_active_is_two_updates_and_a_state_alone_is_one():
    j, write_backs = job(), WriteBacks(CRM_SALES_ORDER, reopens=frozenset({SUBMITTED}))
    reset, posted = order(j, **STAMP), order(j)
    cleared = {"lastbackofficesubmit": None, "submitstatusdescription": None}
    assert updates(j, lambda: write_backs.write(j, [WriteBack(reset, cleared, ACTIVE, 2),
                                                    WriteBack(posted, {}, INVOICED, 100003)])) == [
        {"statecode": ACTIVE, "statuscode": 2}, cleared, {"statecode": INVOICED, "statuscode": 100003}]


def test_a_stopped_write_back_is_completed_and_a_user_who_changed_the_row_meanwhile_keeps_its_state():
    j, write_backs = job(), WriteBacks(CRM_SALES_ORDER, reopens=frozenset({SUBMITTED}))
    ours, theirs, closed, gone, untouched = (order(j) for _ in range(5))
    begun = write_backs.begin(j, [WriteBack(i, STAMP) for i in (ours, theirs, closed, gone, untouched)])
    assert len(begun) == 5 and len(j.state.write_backs("SALESORDER-ORDER")) == 5
    # the job stopped after re-activating two of them; then a user edited one, another was invoiced, one deleted
    j.crm.update(CRM_SALES_ORDER, [RowChange(ours, None, {"statecode": ACTIVE, "statuscode": 1}),
                                   RowChange(theirs, None, {"statecode": ACTIVE, "statuscode": 1})], [])
    j.crm.edit(CRM_SALES_ORDER, theirs, by="sam", name="PO 4711 with a bell")
    j.crm.edit(CRM_SALES_ORDER, closed, by="sam", statecode=INVOICED, statuscode=100003)
    j.crm.delete(CRM_SALES_ORDER, gone)

    write_backs.finish(j)
    assert (row(j, ours)["statecode"], row(j, ours)["lastbackofficesubmit"]) == (SUBMITTED, "2024-05-02")
    assert (row(j, untouched)["statecode"], row(j, untouched)["lastbackofficesubmit"]) == (SUBMITTED, "2024-05-02")
    assert (row(j, theirs)["statecode"], row(j, theirs)["name"]) == (ACTIVE, "PO 4711 with a bell")
    assert row(j, theirs)["lastbackofficesubmit"] == "2024-05-02"      # the columns are written all the same
    assert row(j, closed)["statecode"] == INVOICED and row(j, closed).get("lastbackofficesubmit") is None
    assert j.state.write_backs("SALESORDER-ORDER") == []
    assert any(theirs in n and "changed in Sales" in n for n in j.notes)
    assert any(closed in n and "closed" in n for n in j.notes)



def test_a_write_back_failing_midway_is_merged_into_the_next_one_for_the_row_not_replaced():
    j, write_backs = job(), WriteBacks(CRM_SALES_ORDER, reopens=frozenset({SUBMITTED}))
    submitted = order(j)
    real = j.crm.update

    def down_for_columns(table, changes, fields):   # the service gives out on the columns, once
        if any("lastbackofficesubmit" in c.values for c in changes):
            j.crm.update = real
            return [WriteResult(error=ServiceUnavailableError("503")) for _ in changes]
        return real(table, changes, fields)

    j.crm.update = down_for_columns
    assert list(write_backs.write(j, [WriteBack(submitted, STAMP)])) == [submitted]
    assert row(j, submitted)["statecode"] == ACTIVE                          # re-activated, then it failed
    # the same job writes the order's error: the stamp still recorded is written with it, and the order
    # goes back to Submitted rather than staying in the Active state the failed attempt left
    write_backs.write(j, [WriteBack(submitted, {"submitstatusdescription": "Its discount could not be set"})])
    assert (row(j, submitted)["statecode"], row(j, submitted)["lastbackofficesubmit"]) == (SUBMITTED, "2024-05-02")
    assert row(j, submitted)["submitstatusdescription"] == "Its discount could not be set"
    assert j.state.write_backs("SALESORDER-ORDER") == []


def test_children_are_written_while_the_row_is_active_even_with_no_column_to_write_and_a_failure_keeps_it_active():
    j, write_backs = job(), WriteBacks(CRM_SALES_ORDER, reopens=frozenset({SUBMITTED}))
    lines_only, failing = order(j, **STAMP), order(j, **STAMP)
    seen = []

    def write_lines(ids):
        seen.extend((i, row(j, i)["statecode"]) for i in ids)
        # the children move the row's version (its totals), as Dataverse does
        for i in ids:
            j.crm.edit(CRM_SALES_ORDER, i, by="integration", totallineitemamount=10)
        return {failing: "a line could not be written"}

    # no column differs: dropped unless kept for its children
    assert write_backs.begin(j, [WriteBack(lines_only, STAMP, SUBMITTED)]) == []
    begun = write_backs.begin(j, [WriteBack(i, STAMP, SUBMITTED) for i in (lines_only, failing)],
                              keep=frozenset({lines_only.lower(), failing.lower()}))
    sent = updates(j, lambda: write_backs.complete(j, begun, while_active=write_lines))
    assert sorted(seen) == sorted([(lines_only, ACTIVE), (failing, ACTIVE)])
    assert sent == [{"statecode": ACTIVE}, {"statecode": ACTIVE}, {"statecode": SUBMITTED}]
    assert row(j, lines_only)["statecode"] == SUBMITTED and row(j, failing)["statecode"] == ACTIVE
    # the failed one stays recorded: the next job submits it again
    assert [w.row_id for w in j.state.write_backs("SALESORDER-ORDER")] == [failing]
