"""The queue and timer functions given bad input, called directly as the host calls them.

A queue message that can never work is answered like this: the function logs why (naming the field and its
problem), copies the message to `<queue>-poison`, and returns, so that the host deletes it. Nothing raises
and nothing is written to the job log. A message that points at a real job that can never run fails that
job in the job log instead.
"""

from __future__ import annotations

import base64
import json
import logging

import pytest
from azure.core.exceptions import ResourceExistsError
from azure.functions.queue import QueueMessage
from azure.functions.timer import TimerRequest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sync.config import MappingOverride
from sync.model import Direction
from sync.runs import Job, JobStatus, Run, RunKind
from tests.functions.test_function_app import services, user_function  # noqa: F401 (services is a fixture)

RUN_ID = "20261203-101500-abc123"


@pytest.fixture
def run(services):
    """A run with one queued job, for messages that name it."""
    now = services.clock.now()
    run = Run(RUN_ID, RunKind.SCHEDULED, "test", created_at=now, mappings=("SALESPEOPLE",))
    services.runs.create(run, [Job(RUN_ID, "SALESPEOPLE:from-crm", "SALESPEOPLE", Direction.FROM_CRM, (),
                                   status=JobStatus.QUEUED, queued_at=now)])
    return run


def deliver(body: bytes) -> None:
    """What the host does with a base64 message on the queue: decode it and call the trigger."""
    user_function("run_job")(QueueMessage(id="m1", body=body, dequeue_count=1, pop_receipt="p1"))


def poisoned(services) -> list[bytes]:
    """The bodies on the poison queue (taken off it)."""
    poison = services.storage_account.queue_client(f"{services.settings.queue_name}-poison")
    try:
        poison.create_queue()
    except ResourceExistsError:
        pass
    bodies = []
    while True:
        messages = list(poison.receive_messages(max_messages=32, visibility_timeout=30))
        if not messages:
            return bodies
        for m in messages:
            bodies.append(base64.b64decode(m.content, validate=True))
            poison.delete_message(m)


def job_log(services) -> list[dict]:
    return [job.to_dict() for report in services.job_log(limit=50) for job in report.jobs]


BAD_MESSAGES = [
    (b"\xff\xfe not text", "", "is not UTF-8 text (byte 0xff at position 0)"),
    (b"{not json", "", "is not JSON (Expecting property name enclosed in double quotes at position 1)"),
    (b'["CUSTOMER:to-crm"]', "", "must be a JSON object"),
    (b'{"run": 20261203, "job": "SALESPEOPLE:from-crm"}', "run", 'Field "run" of the job message must be a string'),
    (b'{"run": "' + RUN_ID.encode() + b'"}', "job", 'Field "job" of the job message is missing'),
    # 45,000 characters: with base64 about 60 kB, as large as a queue message gets; Table Storage would answer 431
    (json.dumps({"run": "9" * 45_000, "job": "SALESPEOPLE:from-crm"}).encode(), "run",
     'Field "run" of the job message is 45000 characters long; a run id has at most 64'),
    (b'{"run": "' + RUN_ID.encode() + b'", "job": "SALES\\u0000PEOPLE"}', "job", "has characters no job id has"),
    (b'{"run": "20990101-000000-000000", "job": "SALESPEOPLE:from-crm"}', "run", "There is no run 20990101-"),
    (b'{"run": "' + RUN_ID.encode() + b'", "job": "NOPE:to-crm"}', "job",
     f"Run {RUN_ID} has no job 'NOPE:to-crm'"),
]


@pytest.mark.parametrize("body, field, says", BAD_MESSAGES, ids=[
    "not-utf8", "not-json", "array", "run-not-a-string", "job-missing", "60kB-run-id", "control-character",
    "unknown-run", "unknown-mapping"])
def test_a_bad_message_is_reported_and_moved_to_poison_without_raising(services, run, caplog, body, field, says):
    before = job_log(services)
    with caplog.at_level(logging.ERROR, logger="bcsync"):
        deliver(body)                                       # returns: the host deletes the message
    [record] = [r for r in caplog.records if r.name == "bcsync.queue"]
    assert says in record.getMessage() and record.field == field and not record.exc_info
    assert f"moved to {services.settings.queue_name}-poison" in record.getMessage()
    assert len(record.getMessage()) < 600                   # a 60 kB value is not echoed whole
    assert poisoned(services) == [body]                     # kept, exactly as it came
    assert job_log(services) == before                      # nothing written


def test_a_job_of_an_unknown_mapping_fails_in_the_job_log(services):
    """A message that names a real job that can never run: the job fails with the reason, the message is done."""
    now = services.clock.now()
    services.runs.create(Run(RUN_ID, RunKind.SCHEDULED, "test", created_at=now, mappings=("NOPE",)),
                         [Job(RUN_ID, "NOPE:to-crm", "NOPE", Direction.TO_CRM, (), status=JobStatus.QUEUED,
                              queued_at=now)])
    deliver(json.dumps({"run": RUN_ID, "job": "NOPE:to-crm"}).encode())
    report = services.report(RUN_ID)
    [job] = report.jobs
    assert job.status is JobStatus.FAILED and job.message == "ConfigurationError: There is no table mapping named NOPE."
    assert report.run.status.value == "failed" and poisoned(services) == []


def test_the_timer_does_not_raise_on_an_odd_request_or_a_catalog_it_cannot_read(services, caplog):
    user_function("scheduled_sync")(TimerRequest(past_due="yes"))  # not a true flag: not called late
    [first] = services.runs.list_runs()
    assert first.trigger == "timer"
    # overrides stored for a mapping this version does not have: no run can be planned until they are removed
    services.mapping_config.save("RETIRED", MappingOverride(enabled=False))
    with caplog.at_level(logging.ERROR, logger="bcsync"):
        user_function("scheduled_sync")(TimerRequest(past_due=True))
    assert [r.run_id for r in services.runs.list_runs()] == [first.run_id]
    [record] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "unknown table mapping RETIRED" in record.getMessage() and not record.exc_info


# Bodies of every kind: arbitrary bytes, text, JSON of any shape, and objects shaped almost like a job message.
ids = st.one_of(st.text(max_size=80), st.integers(), st.none(), st.booleans(), st.lists(st.integers(), max_size=3))
json_values = st.recursive(st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
                           max_leaves=12)
bodies = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=300).map(str.encode),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({}, optional={"run": ids, "job": ids}).map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"run": st.just(RUN_ID), "job": ids}).map(lambda v: json.dumps(v).encode()),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies)
def test_no_queue_message_raises_and_each_bad_one_is_kept_in_poison(services, run, body):
    deliver(body)
    assert poisoned(services) == [body]
    assert [j["status"] for j in job_log(services)] == ["queued"]   # the run's real job is left alone
