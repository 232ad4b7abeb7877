from __future__ import annotations

import json
from typing import Any, Callable, Sequence

import pytest

from bcsync.cli import main
from bcsync.worker import LocalWorker
from shared.settings import Settings
from shared.wiring import build_services
from sync.model import Side
from sync.runs import Run, RunKind, RunStatus


class Env:
    """bcsync wired to the local stack exactly as in production, plus handles on both simulators."""

    def __init__(self, stack, values: dict):
        self.stack = stack
        self.dv = stack.dataverse
        self.bc = stack.business_central
        self.configure(**values)

    def configure(self, clock=None, **values) -> "Env":
        """Rewire with these settings changed, or another clock (storage and simulators are kept)."""
        self.values = {**getattr(self, "values", {}), **{k: str(v) for k, v in values.items()}}
        self.settings = Settings.load(environ=self.values)
        self.services = build_services(self.settings, clock)
        self.worker = LocalWorker(self.services, poll_seconds=0.05)
        return self

    def run(self, kind: RunKind, mappings=None, timeout: float = 120):
        run = self.services.start_run(kind, trigger="test", mappings=mappings)
        finished = lambda: self.services.report(run.run_id).run.status is not RunStatus.RUNNING
        assert self.worker.run_until(finished, timeout=timeout), "the run did not finish in time"
        return self.services.report(run.run_id)

    def full_sync(self, mappings=None):
        return self.run(RunKind.FULL, mappings)

    def sync(self, mappings=None):
        return self.run(RunKind.SCHEDULED, mappings)

    def couplings(self, mapping):
        return self.services.couplings.list(mapping)

    def errors(self):
        return self.services.errors.list_all()


@pytest.fixture
def env(stack, isolated):
    return Env(stack, isolated)


@pytest.fixture
def cli(env, tmp_path, capsys):
    """`bcsync ...` against the test's stack, with the settings `env` was configured with last; returns
    (exit code, stdout, stderr)."""
    settings = tmp_path / "settings.json"

    def run(*args):
        settings.write_text(json.dumps({"Values": env.values}))
        code = main(["--settings", str(settings), *args])
        out, err = capsys.readouterr()
        return code, out, err
    return run


def job(report, job_id):
    return next(j for j in report.jobs if j.job_id == job_id)


class WorkerDied(BaseException):
    """Stands for the process being killed: nothing in bcsync catches it."""


def killed_after(env, side: Side, method: str, when: Callable[[Any, Sequence], bool],
                 kind: RunKind = RunKind.SCHEDULED, mappings: Sequence[str] | None = None, before: bool = False) -> Run:
    """Starts a run whose worker dies right after a call of `method` ("insert", "update") on the endpoint of
    `side` for which `when(table, rows)` holds, once that call has reached the service (`before`: just before
    it is made). Returns the run."""
    endpoint = env.services.engine.endpoint(side)
    real = getattr(endpoint, method)

    def call(table, rows, fields):
        if before and when(table, rows):
            raise WorkerDied()
        results = real(table, rows, fields)
        if when(table, rows):
            raise WorkerDied()
        return results

    setattr(endpoint, method, call)
    try:
        run = env.services.start_run(kind, trigger="test", mappings=list(mappings) if mappings else None)
        with pytest.raises(WorkerDied):
            env.worker.run_until(lambda: False, timeout=60)
    finally:
        setattr(endpoint, method, real)
    return run


def taken_over(env, run: Run):
    """Another worker (a new process) takes the run over once the dead one's lease runs out; its report."""
    survivor = LocalWorker(build_services(env.settings), poll_seconds=0.05)
    assert survivor.run_until(lambda: env.services.report(run.run_id).run.status is not RunStatus.RUNNING,
                              timeout=60, recover_every=1)
    return env.services.report(run.run_id)
