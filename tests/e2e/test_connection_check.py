"""`bcsync check` against the local stack: a healthy stack passes every check; each way a connection or a
permission can be wrong is one problem naming what failed and its fix; the check writes nothing."""

from __future__ import annotations

import datetime as dt
import json
import uuid

from simulators.stack import azurite_connection_string, free_port
from sync.facts import INTEGRATION_USER
from sync.ports import Fact


def only_reads(env) -> None:
    """Neither service received anything but reads; storage holds no table of this test's prefix."""
    for sim in (env.dv, env.bc):
        assert {method for method, _ in sim.faults.requests} <= {"GET"}, sim.faults.requests
    storage = next(f for f in env.services.check().findings if f.check == "Storage")
    assert "not created yet" in storage.detail and storage.detail.count("table ") == 5


def check(cli) -> tuple[int, dict]:
    code, out, err = cli("check", "--json")
    return code, json.loads(out)


def problems(report: dict) -> dict[str, dict]:
    return {p["check"]: p for p in report["problems"]}


def test_a_healthy_stack_passes_every_check_in_seconds_and_writes_nothing(env, cli):
    code, out, _ = cli("check")
    assert code == 0, out
    assert "Connection check: healthy" in out and "FAIL" not in out
    for line in ("ok    Dataverse sign-in", "ok    Business Central sign-in", "ok    Dataverse application user",
                 "ok    Integration user", "ok    Dataverse table account: Create, Read, Write at organization level",
                 "ok    Business Central company: 'CRONUS USA, Inc.'", "ok    Business Central entity set customers",
                 "ok    Business Central entity set salesInvoiceLines", "ok    Business Central page CustomerCard",
                 "ok    Business Central page SalesOrder", "ok    Storage: reachable"):
        assert line in out
    _, report = check(cli)
    assert report["healthy"] and report["problems"] == [] and report["seconds"] < 10
    only_reads(env)


def test_a_disabled_mapping_is_not_checked(env, cli):
    env.bc.unpublished = {"SalesPrices"}
    assert problems(check(cli)[1]).keys() == {"Business Central page SalesPrices"}
    env.services.set_mapping("SALESPRC-PRODPRICE", {"enabled": False})
    code, report = check(cli)
    assert code == 1    # CUSTPRCGRP-PRICE reads the prices too: a price list takes their currency
    env.services.set_mapping("CUSTPRCGRP-PRICE", {"enabled": False})
    code, report = check(cli)
    assert code == 0 and not any("SalesPrices" in c["check"] for c in report["checks"])


def test_a_wrong_company_names_the_companies_there_are(env, cli):
    wrong = str(uuid.uuid4())
    env.configure(BCSYNC_BC_COMPANY_ID=wrong)
    code, report = check(cli)
    assert code == 1
    found = problems(report)
    assert found.keys() == {"Business Central company"}, found
    fix = found["Business Central company"]["fix"]
    assert "BCSYNC_BC_COMPANY_ID" in fix and f"'CRONUS USA, Inc.' ({env.bc.company_id})" in fix
    assert not any(c["check"].startswith("Business Central page") for c in report["checks"])


def test_an_unpublished_page_is_named_with_the_extension_that_publishes_it(env, cli):
    env.bc.unpublished = {"CustomerCard", "ShippingAgents"}
    code, out, _ = cli("check")
    assert code == 1
    [card] = [line for line in out.splitlines() if line.startswith("FAIL  Business Central page CustomerCard")]
    assert "Resource not found for the segment 'CustomerCard'" in card
    assert "Fix: publish the page as the web service CustomerCard (install the bcsync extension" in card
    assert "FAIL  Business Central page ShippingAgents" in out and out.count("FAIL") == 2
    assert "Connection check: 2 problem(s)" in out
    only_reads(env)


def test_a_missing_privilege_names_the_table_the_access_and_the_role_to_fix(env, cli):
    user = env.stack.ids.integration_user_id
    env.dv.revoke_privileges(user, ["prvWriteAccount", "prvReadSalesOrder"])
    code, report = check(cli)
    assert code == 1
    found = problems(report)
    assert found.keys() == {"Dataverse table account", "Dataverse table salesorder", "Dataverse table salesorderdetail"}
    account = found["Dataverse table account"]
    assert account["detail"] == ("the application user '# bcsync integration' has no security role with Write on "
                                 "account at organization level")
    assert account["fix"].startswith("add Write on the table account at Organization level to its security role")
    assert "Read" in found["Dataverse table salesorderdetail"]["detail"]  # order lines follow the order's privileges
    only_reads(env)


def test_the_revoked_privilege_is_what_a_synchronisation_meets(env):
    """The check reports what the service enforces: a job writing accounts is refused with the same privilege."""
    env.dv.revoke_privileges(env.stack.ids.integration_user_id, ["prvCreateAccount"])
    env.bc.seed("customers", [{"number": "10000", "displayName": "Adatum"}])
    env.full_sync(["CUSTOMER"])
    [failure] = [f for f in env.errors() if f.mapping == "CUSTOMER"]
    assert failure.code == "0x80040220" and "prvCreateAccount" in failure.message


def test_a_missing_application_user(env, cli):
    env.dv.delete("systemuser", env.stack.ids.integration_user_id)
    code, report = check(cli)
    assert code == 1
    [problem] = report["problems"]
    client_id = env.stack.ids.integration_client_id
    assert problem["check"] == "Dataverse application user"
    assert problem["detail"] == f"the app registration {client_id} has no application user in this environment"
    assert problem["fix"].startswith("create one with that application id")
    only_reads(env)


def test_a_disabled_application_user(env, cli):
    env.dv.update("systemuser", env.stack.ids.integration_user_id, {"isdisabled": True})
    [problem] = check(cli)[1]["problems"]
    assert problem["check"] == "Dataverse application user" and "is disabled" in problem["detail"]
    assert problem["fix"].startswith("enable it")


def test_a_refused_secret_fails_both_sign_ins_and_nothing_else_is_asked(env, cli):
    env.configure(BCSYNC_CLIENT_SECRET="not-the-secret")
    code, report = check(cli)
    assert code == 1
    found = problems(report)
    assert found.keys() == {"Dataverse sign-in", "Business Central sign-in"}
    for problem in found.values():
        assert "AADSTS7000215" in problem["detail"] and "Fix: BCSYNC_CLIENT_SECRET is wrong or has expired" in \
            problem["detail"]
    assert env.dv.faults.requests == [] and env.bc.faults.requests == []


def test_business_central_refusing_the_application(env, cli):
    env.bc.faults.fail(403, times=100, path_contains="/salesOrders")
    found = problems(check(cli)[1])
    assert found.keys() == {"Business Central entity set salesOrders"}
    problem = found["Business Central entity set salesOrders"]
    assert "You do not have permission" in problem["detail"]
    assert "Microsoft Entra Applications page" in problem["fix"] and "BCS INTEGRATION" in problem["fix"]


def test_business_central_not_knowing_the_application(env, cli):
    env.bc.applications.pop(env.stack.ids.integration_client_id.lower())
    found = problems(check(cli)[1])
    assert found.keys() == {"Business Central company"}
    assert "rejected the client credentials" in found["Business Central company"]["detail"]
    assert found["Business Central company"]["fix"].startswith(
        f"on Business Central's Microsoft Entra Applications page, enable the app registration "
        f"{env.stack.ids.integration_client_id}")


def test_an_unreachable_service_fails_its_checks_in_seconds_naming_the_setting(env, cli):
    closed = free_port()
    env.configure(BCSYNC_BC_URL=f"https://127.0.0.1:{closed}{env.bc.root_path}")
    code, report = check(cli)
    assert code == 1 and report["seconds"] < 10
    company = problems(report)["Business Central company"]
    assert "connection refused" in company["detail"] and company["fix"] == "correct BCSYNC_BC_URL"
    assert [p["check"] for p in report["problems"]] == ["Business Central company"]


def test_unreachable_storage(env, cli):
    closed = free_port()
    env.configure(AzureWebJobsStorage=azurite_connection_string(closed, closed, closed))
    code, report = check(cli)
    assert code == 1 and report["seconds"] < 10
    storage = problems(report)["Storage"]
    assert "Table Storage" in storage["detail"] and "reachable from here" in storage["fix"]
    assert problems(report).keys() == {"Storage"}  # the services are checked all the same


def test_storage_refusing_the_key(env, cli):
    connection = env.values["AzureWebJobsStorage"]
    key = connection.split("AccountKey=")[1].split(";")[0]
    env.configure(AzureWebJobsStorage=connection.replace(key, "d3Jvbmcta2V5" * 4))
    storage = problems(check(cli)[1])["Storage"]
    assert "Azure Storage refused bcsync (HTTP 403" in storage["detail"]


def test_a_kept_integration_user_that_is_no_longer_ours(env, cli):
    env.services.state.save_fact(INTEGRATION_USER, Fact(str(uuid.uuid4()), dt.datetime.now(dt.timezone.utc)))
    [problem] = check(cli)[1]["problems"]
    assert problem["check"] == "Integration user" and "BCSYNC_FACTS_TTL_SECONDS" in problem["fix"]
    assert env.stack.ids.integration_user_id in problem["detail"]



def test_extended_pricing_checks_the_price_list_pages_instead_of_the_legacy_ones(env, cli):
    env.configure(BCSYNC_PRICING="extended")
    env.bc.unpublished = {"PriceListLines"}
    code, report = check(cli)
    assert code == 1 and problems(report).keys() == {"Business Central page PriceListLines"}
    checked = {c["check"] for c in report["checks"]}
    assert "Business Central page PriceListHeaders" in checked
    assert not {"Business Central page SalesPrices", "Business Central page CustomerPriceGroups"} & checked
