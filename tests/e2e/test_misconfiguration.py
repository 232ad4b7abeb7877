"""A setting that can never work fails fast, naming the setting, instead of being retried for minutes as if the
service were down: a host that does not resolve, a closed port, a certificate no trusted CA signed, a tenant or
client that Entra ID does not know. A service that is only down (503) is still retried."""

from __future__ import annotations

import time
import uuid

import certifi
import pytest

from simulators.stack import free_port
from sync.runs import JobStatus, RunKind

# a few quick tries, not the job's re-queue at 15, 30, 60 and 120 s
PROMPT_SECONDS = 20


def sync_wait(cli, *args):
    started = time.monotonic()
    code, out, err = cli("sync", "--wait", "--mapping", "CUSTOMER", *args)
    return code, out, err, time.monotonic() - started


def one_line(err: str) -> str:
    [line] = [line for line in err.splitlines() if line.startswith("bcsync: ")]
    assert "Traceback" not in err
    return line


@pytest.mark.parametrize("setting, value, problem", [
    ("BCSYNC_DATAVERSE_URL", "https://nonexistent.invalid", "its host nonexistent.invalid does not resolve"),
    ("BCSYNC_DATAVERSE_URL", "https://127.0.0.1:{closed}", "connection refused"),
    ("BCSYNC_BC_URL", "https://127.0.0.1:{closed}/v2.0/tenant/production", "connection refused"),
    ("BCSYNC_AUTHORITY_HOST", "https://127.0.0.1:{closed}", "connection refused"),
], ids=["unresolvable host", "closed port", "closed Business Central port", "closed token authority"])
def test_an_address_that_can_never_answer_fails_the_job_in_seconds_naming_the_setting(env, cli, setting, value,
                                                                                         problem):
    env.dv.seed("account", [{"name": "Contoso", "customertypecode": 3}])
    env.configure(**{setting: value.format(closed=free_port())})
    code, out, err, seconds = sync_wait(cli)
    assert code == 2 and seconds < PROMPT_SECONDS, (code, seconds, out, err)
    line = one_line(err)
    assert f"SettingsError: {setting}: " in line and problem in line, line
    report = env.services.report()
    failed = [j for j in report.jobs if j.status is JobStatus.FAILED]
    assert failed and all(j.attempts == 1 for j in failed), report.jobs  # never re-queued
    assert all(j.status in (JobStatus.DONE, JobStatus.FAILED, JobStatus.BLOCKED) for j in report.jobs)
    assert env.errors() == []  # no record is blamed for it


def test_a_certificate_no_trusted_ca_signed_names_the_ca_bundle(env, cli):
    env.configure(BCSYNC_CA_BUNDLE=certifi.where())  # public CAs only: the simulators' test CA is not among them
    code, out, err, seconds = sync_wait(cli)
    assert code == 2 and seconds < PROMPT_SECONDS, (code, seconds, out, err)
    line = one_line(err)
    assert "SettingsError: BCSYNC_CA_BUNDLE: the certificate of 127.0.0.1:" in line, line
    assert "(BCSYNC_AUTHORITY_HOST) is not trusted: unable to get local issuer certificate" in line, line


@pytest.mark.parametrize("setting, answer", [
    ("BCSYNC_CLIENT_ID", "AADSTS700016"),
    ("BCSYNC_TENANT_ID", "does not know"),
], ids=["unknown client", "unknown tenant"])
def test_a_client_or_tenant_entra_id_does_not_know_names_the_setting(env, cli, setting, answer):
    env.configure(**{setting: str(uuid.uuid4())})
    code, out, err, seconds = sync_wait(cli)
    assert code == 2 and seconds < PROMPT_SECONDS, (code, seconds, out, err)
    line = one_line(err)
    assert f"SettingsError: {setting}: " in line and answer in line, line


def test_a_url_that_is_not_a_url_is_refused_at_start_not_sent_as_a_scope(env, cli):
    env.values["BCSYNC_DATAVERSE_URL"] = "not a url"  # what the settings file says; bcsync reads it at start
    code, out, err = cli("sync", "--wait")
    assert code == 2 and out == ""
    line = one_line(err)
    assert line.startswith("bcsync: SettingsError: BCSYNC_DATAVERSE_URL: 'not a url' is not a URL;"), line
    assert "invalid_scope" not in err


def test_a_service_that_is_down_is_still_retried(env):
    """503s are the service in trouble, not a setting: the request is retried, and the job re-queued."""
    env.dv.seed("account", [{"name": "Contoso", "customertypecode": 3}])
    env.configure(BCSYNC_HTTP_MAX_RETRIES=1)
    run = env.services.start_run(RunKind.FULL, trigger="test", mappings=["CUSTOMER"])
    env.dv.faults.fail(503, times=4)
    env.worker.run_until(lambda: False, timeout=3)
    jobs = env.services.report(run.run_id).jobs
    assert any(j.status is JobStatus.QUEUED and "retrying in 15 s" in j.message for j in jobs), jobs
    assert not any(j.status is JobStatus.FAILED or "SettingsError" in j.message for j in jobs), jobs
