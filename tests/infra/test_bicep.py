"""The Bicep in infra/: every file parses, modules are local, and the resources are what a deployment
without secrets needs (read from pycep's tree, not from the text)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from sync.notifications import BC_ROUTE, CRM_ROUTE

from . import bicep
from .bicep import INFRA, MAIN, ROOT, parse, resources, unwrap

ROLE = {
    "Storage Blob Data Owner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "Storage Queue Data Contributor": "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
    "Storage Table Data Contributor": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
    "Monitoring Metrics Publisher": "3913510d-42f4-4e42-8a64-420c390055eb",
    "Key Vault Secrets User": "4633458b-17de-408a-b874-0445c86b69e6",
}


def one(tree: dict, type_: str) -> dict:
    found = resources(tree, type_)
    assert len(found) == 1, f"expected one {type_}, found {list(found)}"
    return unwrap(next(iter(found.values())))[1]


def app(name: str) -> dict:
    return parse(INFRA / "app" / name)


@pytest.mark.parametrize("path", bicep.bicep_files(), ids=lambda p: str(p.relative_to(INFRA)))
def test_every_bicep_file_parses(path: Path):
    tree = parse(path)
    assert tree.get("resources") or tree.get("modules"), f"{path.name} declares nothing"


def test_modules_are_local_files_no_registry():
    for path in bicep.bicep_files():
        for name, module in parse(path).get("modules", {}).items():
            assert module["type"] == "local", f"{path.name}: module {name} is not a local file (registries are unreachable)"
            target = path.parent / module["detail"]["path"]
            assert target.is_file(), f"{path.name}: module {name} points at missing {target}"


def test_main_creates_resource_group_at_subscription_scope():
    tree = parse(MAIN)
    assert tree["globals"]["scope"]["value"] == "subscription"
    assert resources(tree, "Microsoft.Resources/resourceGroups"), "main.bicep creates no resource group"


def test_flex_consumption_plan_and_python_311_function_app():
    tree = app("functionapp.bicep")
    plan = one(tree, "Microsoft.Web/serverfarms")
    assert plan["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    assert plan["properties"]["reserved"] is True  # Linux
    site = one(tree, "Microsoft.Web/sites")
    assert site["kind"] == "functionapp,linux"
    props = site["properties"]
    assert props["httpsOnly"] is True
    assert props["siteConfig"]["minTlsVersion"] == "1.2"
    assert props["siteConfig"]["ftpsState"] == "Disabled"
    config = props["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "3.11"}
    assert {"instanceMemoryMB", "maximumInstanceCount"} <= set(config["scaleAndConcurrency"])
    storage = config["deployment"]["storage"]
    assert storage["type"] == "blobContainer"
    assert storage["authentication"] == {"type": "UserAssignedIdentity", "userAssignedIdentityResourceId": "identityId"}


def test_function_app_has_only_the_user_assigned_identity():
    site = one(app("functionapp.bicep"), "Microsoft.Web/sites")
    assert site["identity"]["type"] == "UserAssigned"
    assert [bicep.unquote(k) for k in site["identity"]["userAssignedIdentities"]] == ["${identityId}"]
    assert site["properties"]["keyVaultReferenceIdentity"] == "identityId"
    policies = resources(app("functionapp.bicep"), "Microsoft.Web/sites/basicPublishingCredentialsPolicies")
    assert {unwrap(p)[1]["name"]: unwrap(p)[1]["properties"]["allow"] for p in policies.values()} == \
        {"ftp": False, "scm": False}


def test_storage_accepts_only_entra_id():
    tree = app("storage.bicep")
    props = one(tree, "Microsoft.Storage/storageAccounts")["properties"]
    assert props["allowSharedKeyAccess"] is False
    assert props["allowBlobPublicAccess"] is False
    assert props["minimumTlsVersion"] == "TLS1_2"
    assert props["supportsHttpsTrafficOnly"] is True
    container = one(tree, "Microsoft.Storage/storageAccounts/blobServices/containers")
    assert container["properties"]["publicAccess"] == "None"
    assert one(tree, "Microsoft.Storage/storageAccounts/queueServices/queues")["name"] == "queueName"


def test_monitoring_refuses_local_authentication():
    tree = app("monitoring.bicep")
    insights = one(tree, "Microsoft.Insights/components")["properties"]
    assert insights["DisableLocalAuth"] is True
    assert insights["WorkspaceResourceId"] == {"operator": {"type": "property_accessor",
                                                            "operands": {"operand_1": "workspace", "operand_2": "id"}}}
    assert one(tree, "Microsoft.OperationalInsights/workspaces")["properties"]["features"]["disableLocalAuth"] is True


def _assignments(tree: dict) -> dict[str, dict]:
    """role definition id -> assignment config, checking the deterministic guid() name."""
    found = {}
    for name, entry in resources(tree, "Microsoft.Authorization/roleAssignments").items():
        _, res = unwrap(entry)
        role_fn = res["properties"]["roleDefinitionId"]["function"]
        assert role_fn["type"] == "subscription_resource_id"
        assert role_fn["parameters"]["resource_type"] == "Microsoft.Authorization/roleDefinitions"
        role_ref = bicep._render(role_fn["parameters"]["resource_name_1"])  # e.g. roles.storageBlobDataOwner
        role_id = tree["variables"]["roles"]["value"][role_ref.split(".", 1)[1]]
        guid = res["name"]["function"]
        assert guid["type"] == "guid", f"{name}: name is not guid(...)"
        scope_arg, principal_arg, role_arg = guid["parameters"].values()
        assert bicep._render(scope_arg) == f"{res['scope']}.id", f"{name}: guid() does not start with its scope's id"
        assert principal_arg == res["properties"]["principalId"], f"{name}: guid() lacks the principal"
        assert bicep._render(role_arg) == role_ref, f"{name}: guid() lacks the role"
        found[role_id] = res
    return found


def test_identity_gets_data_plane_roles_named_deterministically():
    granted = _assignments(app("rbac.bicep"))
    for role in ("Storage Blob Data Owner", "Storage Queue Data Contributor", "Storage Table Data Contributor",
                 "Monitoring Metrics Publisher"):
        assignment = granted.get(ROLE[role])
        assert assignment, f"the identity lacks {role}"
        assert assignment["properties"]["principalId"] == "principalId"
        assert assignment["properties"]["principalType"] == "ServicePrincipal"
    assert granted[ROLE["Monitoring Metrics Publisher"]]["scope"] == "applicationInsights"
    assert granted[ROLE["Storage Table Data Contributor"]]["scope"] == "storageAccount"


def test_optional_key_vault_uses_rbac_with_purge_protection():
    main = parse(MAIN)
    _, module = bicep.module_entry(main, "app/keyvault.bicep")
    condition, _ = unwrap(module)
    assert condition == "useKeyVaultCertificate"
    assert main["parameters"]["useKeyVaultCertificate"]["default"] is False
    tree = app("keyvault.bicep")
    props = one(tree, "Microsoft.KeyVault/vaults")["properties"]
    assert props["enableRbacAuthorization"] is True
    assert props["enableSoftDelete"] is True
    assert props["enablePurgeProtection"] is True
    user = _assignments(tree)[ROLE["Key Vault Secrets User"]]
    assert user["properties"]["principalId"] == "identityPrincipalId"


def test_entra_http_auth_turns_on_app_service_authentication():
    tree = app("functionapp.bicep")
    _, module = bicep.module_entry(tree, "authentication.bicep")
    condition, _ = unwrap(module)
    assert bicep.evaluate(condition, {"httpAuth": "entra"}, tree) is True
    assert bicep.evaluate(condition, {"httpAuth": "keys"}, tree) is False
    auth = one(app("authentication.bicep"), "Microsoft.Web/sites/config")
    assert auth["name"] == "authsettingsV2"
    assert auth["properties"]["platform"]["enabled"] is True
    assert auth["properties"]["globalValidation"]["requireAuthentication"] is True
    # the notification receivers pass Easy Auth (they carry no token; their handler checks the service's key)
    assert set(auth["properties"]["globalValidation"]["excludedPaths"]) == {f"/api/{BC_ROUTE}", f"/api/{CRM_ROUTE}"}


def test_outputs_for_azd_and_the_federated_credential():
    outputs = parse(MAIN)["outputs"]
    for name in ("AZURE_FUNCTION_APP_NAME", "AZURE_FUNCTION_APP_URL", "SERVICE_API_NAME", "SERVICE_API_URI",
                 "AZURE_MANAGED_IDENTITY_CLIENT_ID", "AZURE_MANAGED_IDENTITY_PRINCIPAL_ID",
                 "AZURE_FEDERATED_CREDENTIAL_ISSUER", "AZURE_RESOURCE_GROUP", "AZURE_LOCATION"):
        assert name in outputs, f"main.bicep does not output {name}"
    assert parse(bicep.function_app_file())["outputs"]["url"]["value"] == \
        "https://${functionApp.properties.defaultHostName}"


def test_function_app_is_the_azd_service():
    site = one(app("functionapp.bicep"), "Microsoft.Web/sites")
    tags = bicep.evaluate(site["tags"], {"tags": {}}, app("functionapp.bicep"))
    service = yaml.safe_load((ROOT / "azure.yaml").read_text())
    assert list(service["services"]) == [tags["azd-service-name"]]
    api = service["services"][tags["azd-service-name"]]
    assert api == {"project": ".", "language": "python", "host": "function"}
    assert service["infra"]["path"] == "infra" and service["infra"]["module"] == "main"
    assert (ROOT / api["project"] / "function_app.py").is_file()


def test_deployment_package_leaves_out_tests_and_tools():
    ignored = {line.strip().rstrip("/") for line in (ROOT / ".funcignore").read_text().splitlines()}
    assert {"tests", "simulators", "benchmarks", ".venv", "local.settings.json"} <= ignored


def test_no_keys_or_secrets_in_the_bicep():
    for path in bicep.bicep_files():
        text = path.read_text()
        for forbidden in ("listKeys(", "listkeys(", "AccountKey=", "SharedAccessSignature", "InstrumentationKey=",
                          "@secure()"):
            assert forbidden not in text, f"{path.name} contains {forbidden}"
        for name, output in parse(path).get("outputs", {}).items():
            assert "key" not in name.lower() or "vault" in name.lower(), f"{path.name} outputs {name}"


def test_parameters_file_is_valid_json_for_every_main_parameter():
    values = bicep.parameters_file()
    params = parse(MAIN)["parameters"]
    assert set(values) <= set(params), f"main.parameters.json maps unknown parameters: {set(values) - set(params)}"
    for name, param in params.items():
        if param.get("default") is None:
            assert name in values, f"required parameter {name} is not mapped from the azd environment"
    assert json.loads((INFRA / "main.parameters.json").read_text())["contentVersion"] == "1.0.0.0"
