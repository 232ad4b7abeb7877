"""Shared fixtures: the local stack (Azurite + simulators over TLS) for contract and end-to-end tests."""

from __future__ import annotations

import uuid

import pytest

from simulators.stack import LocalStack


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    """One stack for the whole session; each test gets fresh simulators and its own tables/queue."""
    local = LocalStack(tmp_path_factory.mktemp("stack")).start()
    yield local
    local.stop()


@pytest.fixture
def isolated(stack):
    """Resets the simulators; returns settings values with a table prefix and queue of the test's own."""
    stack.reset()
    tag = uuid.uuid4().hex[:10]
    return stack.settings_values(BCSYNC_TABLE_PREFIX=f"t{tag}", BCSYNC_QUEUE_NAME=f"jobs-{tag}")
