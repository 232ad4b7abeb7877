"""Mappings are data: listed, overridden and reset from the CLI and over HTTP, stored in Table Storage,
validated, and obeyed by the next run."""

from __future__ import annotations

import json

import azure.functions as func
import pytest

import function_app

from .conftest import job


def test_list_show_set_and_reset_from_the_command_line(cli, env):
    code, out, _ = cli("mappings")
    assert code == 0 and "CUSTOMER" in out and "SALESPEOPLE" in out
    code, out, _ = cli("mappings", "show", "CUSTOMER", "--json")
    shown = json.loads(out)
    assert shown["direction"] == "bidirectional" and shown["crm_filter"] == "customertypecode eq 3"

    code, out, _ = cli("mappings", "set", "CUSTOMER", "--update-conflict", "send-to-crm", "--field", "email=to-crm",
                       "--json")
    assert code == 0, out
    changed = json.loads(out)
    assert changed["update_conflict"] == "send-to-crm"
    assert next(f for f in changed["fields"] if f["bc"] == "email")["direction"] == "to-crm"
    assert changed["overridden"] == {"update_conflict": "send-to-crm", "fields": {"email|emailaddress1": "to-crm"}}
    # stored: a fresh process sees it
    _, out, _ = cli("mappings", "show", "CUSTOMER", "--json")
    assert json.loads(out)["update_conflict"] == "send-to-crm"

    code, out, _ = cli("mappings", "reset", "CUSTOMER", "--json")
    assert code == 0 and json.loads(out)["update_conflict"] == "none"


@pytest.mark.parametrize("args, message", [
    (("set", "PAYMENT TERMS", "--direction", "bidirectional"), "option mappings must be one-way"),
    (("set", "CUSTOMER", "--field", "colour=to-crm"), "has no field 'colour'"),
    (("set", "CUSTOMER", "--direction", "to-crm", "--field", "creditLimit=bidirectional"), "cannot be bidirectional"),
    (("set", "NOPE", "--enabled", "false"), "no table mapping named NOPE"),
    (("set", "CUSTOMER", "--bc-filter", "colour eq 'red'"), "Business Central filter of CUSTOMER"),
    (("set", "CUSTOMER", "--crm-filter", "statecode eq"), "Dataverse filter of CUSTOMER"),
])
def test_invalid_changes_are_refused_with_a_clear_error_and_nothing_is_stored(cli, args, message):
    code, _, err = cli("mappings", *args)
    assert code == 2 and message in err
    _, out, _ = cli("mappings", "--json")
    assert all(m["overridden"] == {} for m in json.loads(out))


def test_overrides_are_obeyed_by_the_next_run(cli, env):
    env.bc.seed("customers", [{"number": "10000", "displayName": "Adatum", "email": "a@adatum.example"}])
    cli("mappings", "set", "CUSTOMER", "--field", "email=to-crm")
    cli("mappings", "set", "SHIPMENT METHOD", "--enabled", "false")
    report = env.full_sync()
    assert "SHIPMENT METHOD:to-crm" not in [j.job_id for j in report.jobs]
    [account] = env.dv.rows("account")
    env.dv.update("account", account["accountid"], {"emailaddress1": "changed@adatum.example", "telephone1": "555"})
    report = env.sync()
    [customer] = env.bc.rows("customers")
    assert customer["phoneNumber"] == "555"                  # bidirectional field came back
    assert customer["email"] == "a@adatum.example"           # the field now only flows to Sales
    assert job(report, "CUSTOMER:from-crm").counts.modified == 1

    # a narrower filter: customers in Lyon only
    cli("mappings", "set", "CUSTOMER", "--bc-filter", "blocked eq '_x0020_' and city eq 'Lyon'")
    env.bc.seed("customers", [{"number": "20000", "displayName": "Paris Co", "city": "Paris"},
                              {"number": "30000", "displayName": "Lyon Co", "city": "Lyon"}])
    env.full_sync(mappings=["CUSTOMER"])
    assert sorted(a["name"] for a in env.dv.rows("account")) == ["Adatum", "Lyon Co"]


def test_mappings_over_http(env, monkeypatch):
    monkeypatch.setattr(function_app, "_services", env.services)

    def call(name, method, route_params=None, body=b""):
        fn = getattr(function_app, name).build().get_user_function()
        return fn(func.HttpRequest(method, "https://x/api/mappings", body=body, route_params=route_params or {},
                                   headers={"Content-Type": "application/json"}))

    listed = json.loads(call("list_mappings", "GET").get_body())["mappings"]
    assert {m["name"] for m in listed} >= {"SALESPEOPLE", "CUSTOMER", "PAYMENT TERMS", "SHIPMENT METHOD"}
    patched = call("change_mapping", "PATCH", {"name": "CUSTOMER"}, json.dumps({"enabled": False, "sync_only_coupled": False}).encode())
    assert patched.status_code == 200 and json.loads(patched.get_body())["enabled"] is False
    assert json.loads(call("mapping", "GET", {"name": "CUSTOMER"}).get_body())["sync_only_coupled"] is False
    bad = call("change_mapping", "PATCH", {"name": "CUSTOMER"}, json.dumps({"colour": "red"}).encode())
    assert bad.status_code == 400 and "colour" in json.loads(bad.get_body())["error"]
    assert call("mapping", "GET", {"name": "NOPE"}).status_code == 404
    reset = call("reset_mapping", "DELETE", {"name": "CUSTOMER"})
    assert reset.status_code == 200 and json.loads(reset.get_body())["enabled"] is True
