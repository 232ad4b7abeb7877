"""The app settings the Bicep deploys against the settings bcsync and its bindings read: every
required setting is set in every deployment shape, every %SETTING% of a binding is set both in Azure
and in the local.settings.json of the local stack, connections resolve identity-based, no secret is
ever an app setting, and the tunables carry the code's defaults all the way from the azd environment.
"""

from __future__ import annotations

import re
from dataclasses import fields
from typing import Any

import pytest

import function_app
from shared.settings import Settings, settings_table

from tests.support import functions_of

from . import bicep
from .bicep import Ref, Symbol, app_settings, deployment_variants

# Read by the Functions host, not by bcsync (so not in the settings table).
HOST_SETTINGS = {"AzureWebJobsStorage__blobServiceUri"}
# Flex Consumption takes the runtime from functionAppConfig and refuses these as app settings.
NOT_ON_FLEX = {"FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_EXTENSION_VERSION", "WEBSITE_RUN_FROM_PACKAGE",
               "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING", "WEBSITE_CONTENTSHARE"}
BINDING_SETTING = re.compile(r"%([A-Za-z0-9_]+)%")


def table_rows() -> dict[str, dict[str, str]]:
    """The README's configuration table, as settings_table() prints it: name -> its columns."""
    rows = {}
    for line in settings_table().splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        name, default, required = cells[0].strip("`"), cells[1].strip("`"), cells[2]
        rows[name] = {"default": default, "required": required}
    return rows


def secret_settings() -> set[str]:
    return {f.metadata["env"] for f in fields(Settings) if f.metadata["secret"]}


def binding_references() -> dict[str, set[str]]:
    """%SETTING% names used in each function's bindings, and the bindings' connection names."""
    used: dict[str, set[str]] = {"settings": set(), "connections": set()}
    for fn in functions_of(function_app.app):
        for binding in fn.get_bindings():
            for key, value in binding.get_dict_repr().items():
                if isinstance(value, str):
                    used["settings"].update(BINDING_SETTING.findall(value))
                    if key == "connection":
                        used["connections"].add(value)
    return used


@pytest.fixture(params=deployment_variants(), ids=lambda v: f"keyvault={v['useKeyVaultCertificate']}-{v['httpAuth']}")
def deployed(request) -> dict[str, Any]:
    return app_settings(request.param)


def test_table_is_read():
    rows = table_rows()
    assert "BCSYNC_TENANT_ID" in rows and rows["BCSYNC_TENANT_ID"]["required"] == "yes"
    assert rows["BCSYNC_PAGE_SIZE"]["required"] == ""


def test_every_required_setting_is_set_by_the_bicep(deployed):
    missing = [name for name, row in table_rows().items() if row["required"] == "yes" and name not in deployed]
    assert not missing, f"required settings the Bicep does not set: {missing}"


def test_every_app_setting_is_one_bcsync_or_the_host_reads(deployed):
    known = set(table_rows()) | HOST_SETTINGS
    unknown = sorted(set(deployed) - known)
    assert not unknown, f"app settings nobody reads (a typo?): {unknown}"
    assert not NOT_ON_FLEX & set(deployed), f"settings Flex Consumption refuses: {NOT_ON_FLEX & set(deployed)}"


def test_no_secret_is_an_app_setting(deployed):
    for name in secret_settings() & set(deployed):
        value = deployed[name]
        assert isinstance(value, str) and re.fullmatch(r"@Microsoft\.KeyVault\(SecretUri=https://.+/secrets/[\w-]+\)", value), \
            f"{name} is a secret: only a Key Vault reference may stand in the app settings, not {value!r}"
    assert "AzureWebJobsStorage" not in deployed, "storage must be identity-based, never a connection string"


def test_storage_and_telemetry_go_through_the_user_assigned_identity(deployed):
    identity = Symbol("identity.outputs.clientId")
    assert deployed["AzureWebJobsStorage__credential"] == "managedidentity"
    assert deployed["AzureWebJobsStorage__clientId"] == identity
    for service in ("blob", "queue", "table"):
        assert deployed[f"AzureWebJobsStorage__{service}ServiceUri"] == \
            f"storageAccount.properties.primaryEndpoints.{service}"
    assert deployed["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == f"ClientId={identity};Authorization=AAD"
    assert deployed["APPLICATIONINSIGHTS_CONNECTION_STRING"] == "applicationInsights.properties.ConnectionString"


def test_sign_in_by_managed_identity_unless_a_key_vault_certificate_is_chosen():
    federated = app_settings({"useKeyVaultCertificate": False})
    assert federated["BCSYNC_CLIENT_CREDENTIAL"] == "managedidentity"
    assert federated["BCSYNC_MANAGED_IDENTITY_CLIENT_ID"] == "identity.outputs.clientId"
    assert federated["BCSYNC_FEDERATED_TOKEN_AUDIENCE"] == "api://AzureADTokenExchange"
    assert "BCSYNC_CLIENT_CERTIFICATE" not in federated
    certificate = app_settings({"useKeyVaultCertificate": True, "clientCertificateName": "bcsync-cert"})
    assert certificate["BCSYNC_CLIENT_CREDENTIAL"] == "certificate"
    assert re.fullmatch(r"@Microsoft\.KeyVault\(SecretUri=https://kv-bcsync-.+/secrets/bcsync-cert\)",
                        certificate["BCSYNC_CLIENT_CERTIFICATE"])


def test_required_settings_come_from_parameters_the_azd_environment_fills():
    traced = app_settings({"useKeyVaultCertificate": False, "httpAuth": "keys"}, trace=True)
    mapped = bicep.parameters_file()
    for name, row in table_rows().items():
        if row["required"] != "yes":
            continue
        value = traced[name]
        assert isinstance(value, Ref), f"{name} is not set from a parameter: {value!r}"
        variable, default = bicep.env_template(mapped[value.param])
        assert (variable, default) == (name, None), \
            f"parameter {value.param} should come from ${{{name}}} with no default, not {mapped[value.param]}"


def test_every_bcsync_parameter_maps_from_the_azd_variable_of_the_same_name():
    traced = app_settings({"useKeyVaultCertificate": False, "httpAuth": "keys"}, trace=True)
    mapped = bicep.parameters_file()
    for name, value in traced.items():
        if isinstance(value, Ref) and name.startswith("BCSYNC_"):
            assert value.param in mapped, f"parameter {value.param} ({name}) is not in main.parameters.json"
            assert bicep.env_template(mapped[value.param])[0] == name, \
                f"parameter {value.param} should read ${{{name}}}, not {mapped[value.param]}"


def _typed(text: str, kind: str) -> Any:
    return {"int": int, "bool": lambda t: {"true": True, "false": False}[t.lower()], "string": str}[kind](text)


def test_azd_defaults_equal_the_bicep_defaults():
    main = bicep.parse(bicep.MAIN)
    params, defaults = main["parameters"], bicep.parameter_defaults(main)
    for name, value in bicep.parameters_file().items():
        variable, default = bicep.env_template(value)
        if default is None:
            continue
        expected = defaults[name]
        assert _typed(default, params[name]["type"]) == expected, \
            f"main.parameters.json defaults {name} to {default!r}, main.bicep to {expected!r}"


# Set by the Bicep to something other than the code's default, on purpose: the HTTP API's mode follows
# the deployment's choice, and the worker's OpenTelemetry switch is for Azure only.
DEPLOYED_ON_PURPOSE = {"BCSYNC_HTTP_AUTH", "PYTHON_ENABLE_OPENTELEMETRY"}


def test_tunables_carry_the_code_defaults(deployed):
    code = Settings()
    given = {name: value for name, value in deployed.items()
             if type(value) is str and name in table_rows()}  # noqa: E721 (no Ref or Symbol)
    loaded = Settings.load(environ=given)
    compared = 0
    for f in fields(Settings):
        env = f.metadata["env"]
        if env in given and f.default is not None and env not in DEPLOYED_ON_PURPOSE:
            assert getattr(loaded, f.name) == f.default, f"{env}: the Bicep deploys {given[env]!r}, the code's " \
                                                         f"default is {f.default!r}"
            compared += 1
    assert compared >= 15
    assert code.http_auth == "keys" and app_settings({"httpAuth": "keys"})["BCSYNC_HTTP_AUTH"] == "keys"


def test_binding_settings_are_set_in_the_bicep(deployed):
    used = binding_references()
    assert {"BCSYNC_SCHEDULE", "BCSYNC_QUEUE_NAME"} <= used["settings"]
    missing = sorted(used["settings"] - set(deployed))
    assert not missing, f"bindings use %{missing}% but the Bicep does not set them"


def test_binding_connections_resolve_identity_based(deployed):
    for connection in binding_references()["connections"]:
        assert connection not in deployed, f"{connection} must not be a connection string"
        assert deployed.get(f"{connection}__credential") == "managedidentity"
        assert f"{connection}__clientId" in deployed
        assert f"{connection}__accountName" in deployed or all(
            f"{connection}__{service}ServiceUri" in deployed for service in ("blob", "queue", "table")), \
            f"{connection}: neither __accountName nor the three service URIs"


def test_binding_settings_are_in_the_local_settings(stack):
    """`make up` writes local.settings.json from settings_values(); the host needs the same names."""
    local = stack.settings_values()
    used = binding_references()
    missing = sorted(used["settings"] - set(local))
    assert not missing, f"local.settings.json lacks {missing}, which the bindings use"
    for connection in used["connections"]:
        assert local.get(connection) or local.get(f"{connection}__accountName") or \
            local.get(f"{connection}__queueServiceUri"), f"local.settings.json cannot resolve connection {connection}"
