"""Shared fixtures: the local stack (Azurite + simulators over TLS) for contract and end-to-end tests."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from simulators.stack import LocalStack


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    """One stack for the whole session; each test gets fresh simulators and its own tables/queue."""
    local = LocalStack(tmp_path_factory.mktemp("stack")).start()
    yield local
    local.stop()


def fresh(stack) -> dict:
    """Resets the simulators; returns settings values with a table prefix and queue of their own."""
    stack.reset()
    tag = uuid.uuid4().hex[:10]
    return stack.settings_values(BCSYNC_TABLE_PREFIX=f"t{tag}", BCSYNC_QUEUE_NAME=f"jobs-{tag}")


@pytest.fixture
def isolated(stack):
    """Fresh simulators, tables and queue for the test."""
    return fresh(stack)


SCREENSHOTS = Path(__file__).resolve().parents[1] / "test-results" / "screenshots"
_started = time.time()


def pytest_terminal_summary(terminalreporter):
    """Where the browser tests (tests/browser) left this session's screenshots."""
    taken = [p for p in SCREENSHOTS.glob("*.png") if p.stat().st_mtime >= _started] if SCREENSHOTS.is_dir() else []
    if taken:
        terminalreporter.write_line(f"{len(taken)} screenshot(s) of the status page in {SCREENSHOTS}")
