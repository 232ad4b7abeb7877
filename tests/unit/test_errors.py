"""Which errors stop a job and which fail only their record."""

import pytest

from sync.errors import (
    ConcurrencyError,
    NotFoundError,
    RecordError,
    ServiceUnavailableError,
    ThrottledError,
    WriteOutcomeUnknown,
    stops_job,
)


@pytest.mark.parametrize("error", [ThrottledError("slow down"), ServiceUnavailableError("down"),
                                   WriteOutcomeUnknown("no answer")])
def test_a_service_giving_out_stops_the_job(error):
    assert stops_job(error)


@pytest.mark.parametrize("error", [ConcurrencyError("changed meanwhile"), RecordError("bad value", field="name"),
                                   NotFoundError("gone"), ValueError("not ours"), None])
def test_a_row_changed_meanwhile_a_bad_record_or_no_error_does_not(error):
    assert not stops_job(error)
