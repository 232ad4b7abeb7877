"""Failed records: kept with what a user needs, skipped after the same error twice, retried and
restored on request, and gone once the record synchronises."""

from __future__ import annotations

import json

import azure.functions as func

import function_app

from .conftest import job


def seed(env):
    env.dv.seed("systemuser", [{"fullname": "Alicia Thornber", "islicensed": True,
                                "internalemailaddress": "alicia@contoso.com"}])
    env.bc.seed("salespeoplePurchasers", [{"code": "AT", "displayName": "Alicia", "email": "alicia@contoso.com"},
                                          {"code": "JR", "displayName": "Jim", "email": "jim@contoso.com"}])
    [customer] = env.bc.seed("customers", [{"number": "40000", "displayName": "Alpine Ski House",
                                            "salespersonCode": "JR"}])
    return customer


def test_an_error_is_skipped_after_twice_then_clears_when_fixed_at_the_source(env, cli):
    customer = seed(env)
    env.full_sync()
    code, out, _ = cli("errors", "--json")
    [failure] = json.loads(out)
    assert failure["record"] == "Customer 40000" and failure["field"] == "Salesperson Code"
    assert failure["mapping"] == "CUSTOMER" and failure["direction"] == "to-crm" and failure["source_id"] == customer
    assert failure["count"] == 1 and not failure["skipped"] and failure["first_seen"] and failure["code"] == "NotCoupled"

    env.sync()                                             # the same error again: skipped from now on
    [failure] = json.loads(cli("errors", "--json")[1])
    assert failure["count"] == 2 and failure["skipped"]
    report = env.sync()                                    # a skipped record costs nothing
    assert job(report, "CUSTOMER:to-crm").counts.failed == 0
    assert json.loads(cli("errors", "--json")[1])[0]["count"] == 2

    env.bc.update("customers", customer, {"salespersonCode": "AT"})   # fixed where it came from
    report = env.sync()
    assert job(report, "CUSTOMER:to-crm").counts.inserted == 1
    assert json.loads(cli("errors", "--json")[1]) == []
    assert [a["name"] for a in env.dv.rows("account")] == ["Alpine Ski House"]


def test_retry_one_and_restore_skipped_from_the_cli_and_http(env, cli, monkeypatch):
    customer = seed(env)
    env.full_sync()
    env.sync()
    assert json.loads(cli("errors", "--skipped", "--json")[1])[0]["skipped"]
    # Jim gets a Sales user and is coupled; the skipped customer waits until someone restores it
    env.dv.seed("systemuser", [{"fullname": "Jim Rowe", "islicensed": True, "internalemailaddress": "jim@contoso.com"}])
    env.full_sync(mappings=["SALESPEOPLE"])
    assert job(env.sync(), "CUSTOMER:to-crm").counts.inserted == 0
    code, out, _ = cli("retry", "--skipped")
    assert code == 0 and "1 record(s) will be retried" in out
    assert job(env.sync(), "CUSTOMER:to-crm").counts.inserted == 1

    # over HTTP: list and retry one by its id
    env.bc.update("customers", customer, {"city": "Innsbruck"})
    env.dv.seed("account", [{"name": "Duplicate Alpine", "customertypecode": 3}])
    monkeypatch.setattr(function_app, "_services", env.services)
    listed = function_app.list_errors.build().get_user_function()(
        func.HttpRequest("GET", "https://x/api/errors", params={"mapping": "CUSTOMER"}, body=b""))
    assert json.loads(listed.get_body()) == {"errors": []}
    retry = function_app.retry_errors.build().get_user_function()
    refused = retry(func.HttpRequest("POST", "https://x/api/errors/retry", body=b"{}"))
    assert refused.status_code == 400
    done = retry(func.HttpRequest("POST", "https://x/api/errors/retry", body=json.dumps({"source_id": customer}).encode()))
    assert json.loads(done.get_body()) == {"retried": []}
