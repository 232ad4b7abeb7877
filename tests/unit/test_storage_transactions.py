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
