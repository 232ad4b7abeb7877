"""The job queue in Azure Queue Storage (Azurite): a message delivered again while its first delivery still works."""

from __future__ import annotations

import time
import uuid

from shared.queue import StorageJobQueue


def test_a_delivery_whose_message_was_taken_again_deletes_nothing_and_does_not_fail(env):
    # a job that outlasts its message's visibility (a loaded worker): the message is delivered again, and the
    # first delivery's delete must neither fail the worker nor remove the message from the second
    queue = StorageJobQueue(env.services.storage.account, f"redelivered-{uuid.uuid4().hex[:8]}")
    queue._send(b"a job")
    [first] = queue.receive(visibility_timeout=1)
    time.sleep(2)
    [second] = queue.receive(visibility_timeout=30)
    queue.delete(first)
    queue.delete(second)
    time.sleep(1.5)
    assert list(queue.receive(visibility_timeout=1)) == []
