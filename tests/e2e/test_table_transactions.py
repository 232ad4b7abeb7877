"""Entity-group transactions written by shared/transactions.py, against Azurite: what the SDK's own
submit_transaction would have stored, and its exceptions when the service refuses."""

from __future__ import annotations

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableTransactionError, UpdateMode

from shared.settings import Settings
from shared.transactions import submit_transaction
from shared.wiring import build_services


@pytest.fixture
def table(stack, isolated):
    storage = build_services(Settings.load(environ=isolated)).storage
    return storage, storage.table("transactions")


def test_upserts_replace_or_merge_and_deletes_remove_with_awkward_keys_and_values(table):
    storage, client = table
    keys = [{"PartitionKey": "CUSTOMER|bc|0a", "RowKey": key} for key in ("O'Brien", "a b%c", "é;=&,()")]
    before = storage.requests_sent
    submit_transaction(client, [("upsert", {**k, "name": f"n{i}", "values": '{"a": 1}', "none": None, "n": i},
                                 {"mode": UpdateMode.REPLACE}) for i, k in enumerate(keys)])
    assert storage.requests_sent - before == 1  # one request for the whole transaction, counted
    assert {e["RowKey"]: (e["name"], e["values"], e["n"]) for e in client.list_entities()} == {
        "O'Brien": ("n0", '{"a": 1}', 0), "a b%c": ("n1", '{"a": 1}', 1), "é;=&,()": ("n2", '{"a": 1}', 2)}
    submit_transaction(client, [("upsert", {**keys[0], "extra": "x"})])  # merge: the other properties stay
    merged = client.get_entity(keys[0]["PartitionKey"], keys[0]["RowKey"])
    assert (merged["name"], merged["extra"]) == ("n0", "x")
    submit_transaction(client, [("upsert", {**keys[0], "only": "y"}, {"mode": UpdateMode.REPLACE})])
    assert "name" not in client.get_entity(keys[0]["PartitionKey"], keys[0]["RowKey"])
    submit_transaction(client, [("delete", k) for k in keys[:2]])
    assert [e["RowKey"] for e in client.list_entities()] == ["é;=&,()"]


def test_a_refused_operation_fails_the_whole_transaction_with_the_sdks_exception(table):
    _, client = table
    here, gone = ({"PartitionKey": "p", "RowKey": key} for key in ("here", "gone"))
    submit_transaction(client, [("upsert", {**here, "v": 1})])
    with pytest.raises(TableTransactionError):
        submit_transaction(client, [("delete", here), ("delete", gone)])
    assert client.get_entity("p", "here")["v"] == 1  # nothing of it was applied
    with pytest.raises(ResourceNotFoundError):
        client.get_entity("p", "gone")
