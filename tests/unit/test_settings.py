"""Settings are checked once, when they are loaded: every problem is named with its setting, what is wrong and the fix,
all of them at once; the CLI says so in one line with exit code 2, and the function app still loads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from bcsync.cli import main
from shared.settings import Settings
from sync.errors import SettingsError

# a value each setting refuses, and what its error says; a true/false setting is checked by reading it
BAD = {
    "AzureWebJobsStorage": ("AccountName=x;AccountKey", "is not KEY=VALUE"),
    "AzureWebJobsStorage__accountName": ("My_Account", "is not a storage account name"),
    "AzureWebJobsStorage__tableServiceUri": ("table.core.windows.net", "is not a URL"),
    "AzureWebJobsStorage__queueServiceUri": ("http://bcsync.queue.core.windows.net", "is not https"),
    "AzureWebJobsStorage__credential": ("connectionstring", "is not one of managedidentity"),
    "AzureWebJobsStorage__clientId": ("my-identity", "is not a GUID"),
    "BCSYNC_TENANT_ID": ("common", "is not a tenant"),
    "BCSYNC_AUTHORITY_HOST": ("login.microsoftonline.com", "is not a URL"),
    "BCSYNC_CLIENT_ID": ("bcsync-app", "is not a GUID"),
    "BCSYNC_CLIENT_CREDENTIAL": ("password", "is not one of managedidentity, certificate, secret"),
    "BCSYNC_MANAGED_IDENTITY_CLIENT_ID": ("{guid}", "is not a GUID"),
    "BCSYNC_FEDERATED_TOKEN_AUDIENCE": ("AzureADTokenExchange", "is not a URI"),
    "BCSYNC_CLIENT_SECRET": ("s3cret ", "starts or ends with a space"),
    "BCSYNC_CLIENT_CERTIFICATE_PATH": ("/nowhere/app.pfx", "names no file here"),
    "BCSYNC_CLIENT_CERTIFICATE": ("not base64!", "is not base64"),
    "BCSYNC_CLIENT_CERTIFICATE_PASSWORD": (None, "the certificate's password is checked when it is opened"),
    "BCSYNC_CLIENT_CERTIFICATE_THUMBPRINT": ("AB:CD", "is not a SHA-1 thumbprint"),
    "BCSYNC_DATAVERSE_URL": ("not a url", "is not a URL"),
    "BCSYNC_BC_URL": ("http://api.businesscentral.dynamics.com/v2.0/t/production", "is not https"),
    "BCSYNC_BC_COMPANY_ID": ("CRONUS", "is not a GUID"),
    "BCSYNC_COMPANIES": ("CRONUS", "is not NAME=ID"),
    "BCSYNC_BC_SCOPE": ("https://api.businesscentral.dynamics.com", "is not a resource's /.default scope"),
    "BCSYNC_CA_BUNDLE": ("/nowhere/ca.pem", "names no file here"),
    "BCSYNC_QUEUE_NAME": ("Jobs_Queue", "is not a queue name"),
    "BCSYNC_TABLE_PREFIX": ("bc-sync", "makes table names Azure Storage refuses"),
    "BCSYNC_PAGE_SIZE": ("0", "is out of range; set a number of at least 1"),
    "BCSYNC_WRITE_CONCURRENCY": ("0", "is out of range; set a number from 1 to 52"),
    "BCSYNC_HTTP_TIMEOUT": ("0", "is out of range; set a number from 0.1 to 3600"),
    "BCSYNC_HTTP_MAX_RETRIES": ("-1", "is out of range"),
    "BCSYNC_MAX_RETRY_WAIT": ("inf", "is out of range"),
    "BCSYNC_WATERMARK_MARGIN_SECONDS": ("-60", "is out of range"),
    "BCSYNC_JOB_LEASE_SECONDS": ("0", "is out of range"),
    "BCSYNC_JOB_TIME_BUDGET_SECONDS": ("8 minutes", "is not a whole number"),
    "BCSYNC_LOG_RETENTION_DAYS": ("99999999999", "is out of range"),
    "BCSYNC_RECONCILE_MINUTES": ("-1", "is out of range"),
    "BCSYNC_FACTS_TTL_SECONDS": ("1e300", "is not a whole number"),
    "BCSYNC_AUTO_CREATE_SALES_ORDERS": ("maybe", "is not true or false"),
    "BCSYNC_AUTO_PROCESS_SALES_QUOTES": ("sometimes", "is not true or false"),
    "BCSYNC_UNIT_MODE": ("unit groups", "is not one of legacy, unit-groups"),
    "BCSYNC_OWNERSHIP_MODEL": ("owner team", "is not one of person, team"),
    "BCSYNC_PRICING": ("new", "is not one of legacy, extended"),
    "BCSYNC_SALES_ORDER_MODE": ("both", "is not one of one-way, two-way"),
    "BCSYNC_SCHEDULE": ("every 5 minutes", "is not an NCRONTAB schedule"),
    "BCSYNC_WEBHOOK_URL": ("http://bcsync.example.com", "is not https (http)"),
    "BCSYNC_WEBHOOK_WINDOW_SECONDS": ("3600", "is out of range"),
    "BCSYNC_HTTP_AUTH": ("Entra ID", "is not one of keys, entra"),
    "BCSYNC_READER_ROLE": ("bcsync reader", "is not an app role value"),
    "BCSYNC_ADMIN_ROLE": ("bcsync admin", "is not an app role value"),
    "APPLICATIONINSIGHTS_CONNECTION_STRING": ("InstrumentationKey=abc", "is not an Application Insights connection"),
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": ("Authorization=AAD;ClientId=abc", "is not Authorization=AAD"),
    "PYTHON_ENABLE_OPENTELEMETRY": ("sometimes", "is not true or false"),
}


def problems(environ: dict) -> dict[str, str]:
    with pytest.raises(SettingsError) as refused:
        Settings.load(environ=environ)
    assert refused.value.message.count(": ") >= len(refused.value.problems)
    return refused.value.problems


def test_every_setting_has_a_bad_value_here():
    assert {f.metadata["env"] for f in fields(Settings)} == set(BAD)


@pytest.mark.parametrize("setting", [s for s, (value, _) in BAD.items() if value is not None])
def test_each_setting_refuses_a_bad_value_naming_itself_the_problem_and_the_fix(setting):
    value, problem = BAD[setting]
    found = problems({setting: value})
    assert list(found) == [setting] and problem in found[setting] and "; " in found[setting], found


def test_defaults_and_the_local_stack_values_pass(tmp_path):
    defaults = {f.metadata["env"]: str(f.default).lower() if isinstance(f.default, bool) else str(f.default)
                for f in fields(Settings) if f.default is not None}
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    Settings.load(environ={**defaults, "AzureWebJobsStorage": "UseDevelopmentStorage=true",
                           "BCSYNC_TENANT_ID": "contoso.onmicrosoft.com", "BCSYNC_CA_BUNDLE": str(ca),
                           "BCSYNC_CLIENT_ID": "11111111-2222-3333-4444-555555555555",
                           "BCSYNC_DATAVERSE_URL": "https://contoso.crm4.dynamics.com/",
                           "BCSYNC_BC_URL": "https://api.businesscentral.dynamics.com/v2.0/contoso/production",
                           "BCSYNC_SCHEDULE": "00:05:00", "BCSYNC_HTTP_AUTH": "Entra",
                           "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "Authorization=AAD"})


def test_every_problem_is_reported_at_once_and_secrets_are_not_shown():
    found = problems({"BCSYNC_PAGE_SIZE": "-1", "BCSYNC_WRITE_CONCURRENCY": "0", "BCSYNC_HTTP_TIMEOUT": "0",
                      "BCSYNC_TABLE_PREFIX": "1st", "AzureWebJobsStorage": "AccountName=x;AccountKey=k!ey",
                      "BCSYNC_CA_BUNDLE": "/nowhere/ca.pem", "BCSYNC_DATAVERSE_URL": "not a url"})
    assert len(found) == 7
    assert found["BCSYNC_PAGE_SIZE"].startswith("'-1' is out of range") and "default 20000" in found["BCSYNC_PAGE_SIZE"]
    storage = found["AzureWebJobsStorage"]
    assert "k!ey" not in storage and "AccountKey that is not base64" in storage and "(a secret, not shown)" in storage


def test_a_huge_value_is_not_echoed_whole():
    found = problems({"BCSYNC_DATAVERSE_URL": "x" * 100_000})
    assert len(found["BCSYNC_DATAVERSE_URL"]) < 300


@pytest.mark.parametrize("content, problem", [
    ('{"Values": null}', "its Values are null"),
    ('[["BCSYNC_PAGE_SIZE", "10"]]', "its Values are an array"),
    ('"BCSYNC_PAGE_SIZE=10"', "its Values are a string"),
    ('{"Values": {"BCSYNC_PAGE_SIZE": null}}', "BCSYNC_PAGE_SIZE in "),
    ('{"Values": {"BCSYNC_PAGE_SIZE": 10', "is not readable JSON"),
], ids=["null Values", "array", "string", "null value", "cut short"])
def test_a_settings_file_of_the_wrong_shape_is_named(tmp_path, content, problem):
    path = tmp_path / "local.settings.json"
    path.write_text(content)
    with pytest.raises(SettingsError) as refused:
        Settings.load(environ={}, file=path)
    assert problem in refused.value.message and str(path) in refused.value.message


def test_numbers_and_booleans_in_the_settings_file_are_read(tmp_path):
    path = tmp_path / "local.settings.json"
    path.write_text(json.dumps({"Values": {"BCSYNC_PAGE_SIZE": 500, "BCSYNC_AUTO_CREATE_SALES_ORDERS": True}}))
    settings = Settings.load(environ={}, file=path)
    assert settings.page_size == 500 and settings.auto_create_sales_orders is True


def test_the_cli_says_it_in_one_line_with_exit_code_2(tmp_path, capsys):
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"Values": {"BCSYNC_PAGE_SIZE": "0", "BCSYNC_HTTP_TIMEOUT": "0"}}))
    assert main(["--settings", str(path), "runs"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("bcsync: SettingsError: 2 settings are wrong: BCSYNC_PAGE_SIZE: '0' is out of range")


def test_the_function_app_loads_with_settings_in_error(tmp_path):
    """The host must index the functions even so; each function then answers with the settings' problems."""
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "BCSYNC_PAGE_SIZE": "0", "PYTHONPATH": str(root)}
    loaded = subprocess.run([sys.executable, "-c", "import function_app; print(len(function_app.app.get_functions()))"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert loaded.returncode == 0 and int(loaded.stdout) >= 15, loaded.stderr


def test_the_unit_mode_and_ownership_model_select_the_builtin_mappings_in_use():
    from shared.wiring import Services
    from sync.model import OwnershipModel
    from tests.fakes import FakeClock

    default = Settings.load(environ={})
    assert not default.unit_groups and default.ownership is OwnershipModel.PERSON
    chosen = Settings.load(environ={"BCSYNC_UNIT_MODE": " Unit-Groups ", "BCSYNC_OWNERSHIP_MODEL": "TEAM"})
    assert chosen.unit_groups and chosen.ownership is OwnershipModel.TEAM
    names = {m.name for m in Services(chosen, FakeClock()).builtins}
    assert {"UNIT GROUP", "ITEM UOM"} <= names and not names & {"UNIT OF MEASURE", "SALESPEOPLE"}
    assert {"UNIT OF MEASURE", "SALESPEOPLE"} <= {m.name for m in Services(default, FakeClock()).builtins}


def test_webhook_url_may_be_plain_http_on_this_machine_only():
    assert Settings.load(environ={"BCSYNC_WEBHOOK_URL": "http://127.0.0.1:7071"}).webhook_url == "http://127.0.0.1:7071"
    with pytest.raises(SettingsError) as refused:
        Settings.load(environ={"BCSYNC_WEBHOOK_URL": "https://app.azurewebsites.net/api"})
    assert "BCSYNC_WEBHOOK_URL" in refused.value.problems
