"""The local worker against Azurite, given queue messages that can never work: it keeps running, moves each one to
the poison queue (at once: none is delivered again), and runs the real jobs around them."""

from __future__ import annotations

import base64
import json

import pytest
from azure.core.exceptions import ResourceExistsError

from sync.errors import TerminalError
from sync.runs import RunKind, RunStatus


def raw_queue(env, name):
    queue = env.services.storage_account.queue_client(name)
    try:
        queue.create_queue()
    except ResourceExistsError:
        pass
    return queue


def b64(body: bytes) -> str:
    return base64.b64encode(body).decode()


def test_the_worker_moves_messages_that_can_never_work_to_poison_and_runs_the_rest(env):
    queue = raw_queue(env, env.settings.queue_name)
    bad = [
        "this is not base64 {}",                              # the SDK's own decoding failed on this (AttributeError)
        b64(b"\xc3\x28 not UTF-8"),
        b64(json.dumps({"run": "9" * 45_000, "job": "CUSTOMER:to-crm"}).encode()),   # about 60 kB on the queue
        b64(b'{"run": "20990101-000000-000000", "job": "CUSTOMER:to-crm"}'),
        b64(b'{"run": 1, "job": [2]}'),
    ]
    for content in bad:
        queue.send_message(content)
    run = env.services.start_run(RunKind.SCHEDULED, trigger="test", mappings=["SALESPEOPLE"])
    assert env.worker.run_until(lambda: env.services.report(run.run_id).run.status is not RunStatus.RUNNING,
                                timeout=60)
    assert env.services.report(run.run_id).run.status is RunStatus.DONE
    poison = raw_queue(env, f"{env.settings.queue_name}-poison")
    kept = [m for m in poison.receive_messages(max_messages=32)]
    assert sorted(m.content for m in kept) == sorted(bad)     # each kept as it was, once
    assert list(queue.peek_messages(max_messages=32)) == []   # nothing left to be delivered again


def test_a_storage_refusal_below_500_is_a_terminal_error(env):
    """A request Table Storage refuses (here a 45 kB key: 431, headers too large) is terminal, not a traceback."""
    with pytest.raises(TerminalError) as refused:
        env.services.runs.get("9" * 45_000)
    assert 400 <= refused.value.status < 500 and not refused.value.transient
    assert len(refused.value.message) < 400

