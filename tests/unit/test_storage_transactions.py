"""Entity-group transactions sent again when the connection broke after sending, where that is safe."""

from __future__ import annotations

import pytest
from azure.core.exceptions import ServiceResponseError

from shared import storage
from shared.storage import TRANSACTION_ATTEMPTS, _transact
from sync.errors import ServiceUnavailableError


class BrokenThenFine:
    """A table client whose first `breaks` transactions lose their connection after being sent."""

    def __init__(self, breaks: int):
        self.breaks, self.sent = breaks, []

    def submit_transaction(self, chunk):
        self.sent.append(chunk)
        if len(self.sent) <= self.breaks:
            raise ServiceResponseError("('Connection aborted.', ConnectionResetError(104, 'Connection reset by peer'))")
        return []


@pytest.fixture(autouse=True)
def sent_by_the_fake(monkeypatch):
    """Transactions go to the fake table client's submit_transaction instead of over HTTP."""
    monkeypatch.setattr(storage, "submit_transaction", lambda table, chunk: table.submit_transaction(chunk))


def _ops(kind: str, n: int = 3) -> list[tuple]:
    return [(kind, {"PartitionKey": "CUSTOMER", "RowKey": f"bc:{i}"}) for i in range(n)]


def test_upserts_are_sent_again_when_the_connection_broke():
    table = BrokenThenFine(breaks=1)
    _transact(None, table, _ops("upsert"))
    assert len(table.sent) == 2 and table.sent[0] == table.sent[1]


def test_a_connection_that_keeps_breaking_is_a_transient_error():
    table = BrokenThenFine(breaks=TRANSACTION_ATTEMPTS)
    with pytest.raises(ServiceUnavailableError):
        _transact(None, table, _ops("upsert"))
    assert len(table.sent) == TRANSACTION_ATTEMPTS


def test_deletes_are_not_sent_again_here():
    # a delete that did happen would fail the second time as not found: the job's retry covers it
    table = BrokenThenFine(breaks=1)
    with pytest.raises(ServiceUnavailableError):
        _transact(None, table, _ops("delete"))
    assert len(table.sent) == 1


def test_a_job_state_of_several_transactions_deletes_the_old_version_rows_only_once_the_new_ones_are_written():
    """_transact sends the transactions of many operations side by side: the leftover version rows' deletes must not
    land before the upserts that replace them (a save cut short would leave fewer known versions than either set)."""
    import datetime as dt
    from shared.storage import KnownVersions, StateTable, VERSIONS_PER_ROW
    from sync.model import Direction

    state, sent = StateTable.__new__(StateTable), []
    state.transact = sent.append
    read = KnownVersions({}, row_keys=[f"versions:to-crm:{n:06d}" for n in range(150)])
    versions = {f"bc-{i}": "v1" for i in range(120 * VERSIONS_PER_ROW)}
    state.save_job_state("CUSTOMER", Direction.TO_CRM, watermark=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
                         versions=versions, replacing=read)
    assert [{kind for kind, _ in ops} for ops in sent] == [{"upsert"}, {"delete"}]
    assert len(sent[0]) == 121 and len(sent[1]) == 30
    sent.clear()
    state.save_job_state("CUSTOMER", Direction.TO_CRM, versions={"bc-1": "v2"},
                         replacing=KnownVersions({}, row_keys=read.row_keys[:50]))
    assert [len(ops) for ops in sent] == [50]   # one transaction: all or nothing
