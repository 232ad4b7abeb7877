"""Match-based coupling through the stack: criteria, priorities, case sensitivity, the
coupling mode's options, and the CLI and HTTP entry points."""

from __future__ import annotations

import json

import azure.functions as func

import function_app
from sync.runs import RunKind


def _seed_customers(env):
    bc = env.bc.seed("customers", [
        {"number": "C1", "displayName": "Fabrikam", "city": "Oslo", "phoneNumber": "111"},
        {"number": "C2", "displayName": "Litware", "city": "Paris", "phoneNumber": "222"},
        {"number": "C3", "displayName": "Northwind", "city": "Rome", "phoneNumber": "333"},
        {"number": "C4", "displayName": "Contoso", "city": "Lima"},
    ])
    crm = env.dv.seed("account", [
        {"name": "FABRIKAM", "address1_city": "Oslo", "telephone1": "111", "customertypecode": 3},
        {"name": "Litware", "address1_city": "Paris", "telephone1": "999", "customertypecode": 3},
        {"name": "Other name", "address1_city": "Rome", "telephone1": "333", "customertypecode": 3},
        {"name": "Contoso", "address1_city": "Lima", "customertypecode": 3},
        {"name": "Contoso", "address1_city": "Lima", "customertypecode": 3},
    ])
    return bc, crm


def _pairs(env):
    return {(c.bc_id, c.crm_id) for c in env.couplings("CUSTOMER")}


def test_priority_groups_case_sensitivity_and_no_or_several_matches(env, cli):
    (fabrikam, litware, northwind, contoso), (a_fab, a_lit, a_other, a_con1, a_con2) = _seed_customers(env)
    # priority 0: name and phone must both match (case-sensitively); priority 1: the city alone
    code, out, err = cli("match", "CUSTOMER", "--match", "Name:0:case", "--match", "Phone No.:0",
                         "--match", "City:1", "--create-new-if-no-match", "false", "--sync-after-coupling", "false",
                         "--wait", "--json")
    report = json.loads(out)
    assert code == 0, err
    pairs = _pairs(env)
    # FABRIKAM differs in case, so group 0 misses, but the city couples it in group 1
    assert (fabrikam, a_fab) in pairs
    # Litware: name matches but the phone does not; the city does
    assert (litware, a_lit) in pairs
    # Northwind: the phone matches but not the name; the city Rome finds the renamed account
    assert (northwind, a_other) in pairs
    # Contoso: two accounts match it, and from Sales both accounts match the one customer: nothing is
    # coupled, and each side's error names the rows involved
    assert not any(bc == contoso or crm in (a_con1, a_con2) for bc, crm in pairs)
    errors = {e.source_id: e for e in env.errors()}
    assert errors[contoso].code == "SeveralMatches" and errors[contoso].field == "Name"
    assert errors[contoso].message.startswith("Customer C4: 2 uncoupled account rows match it")
    assert errors[a_con1].code == errors[a_con2].code == "SeveralMatches"
    assert "matches Customer C4, and so do 1 other uncoupled account" in errors[a_con1].message
    # the coupling run neither created nor changed a row
    assert len(env.dv.rows("account")) == 5 and len(env.bc.rows("customers")) == 4
    assert env.dv.get("account", a_fab)["name"] == "FABRIKAM"
    counts = {(j["mapping"], j["direction"]): j["counts"] for j in report["jobs"]}
    assert counts[("CUSTOMER", "to-crm")]["coupled"] == 3

    # the Sales side's duplicate is resolved by hand; the next matching run couples Contoso
    env.dv.delete("account", a_con2)
    code, out, err = cli("match", "CUSTOMER", "--wait")
    assert code == 0, err
    assert (contoso, a_con1) in _pairs(env)
    assert env.errors() == []             # coupled or gone: every matching error cleared itself


def test_no_match_is_reported_unless_create_new_is_on_and_sync_after_coupling(env, cli):
    [alpine] = env.bc.seed("customers", [{"number": "C9", "displayName": "Alpine Ski House", "city": "Bern"}])
    [blue] = env.dv.seed("account", [{"name": "Blue Yonder", "customertypecode": 3}])
    [coho] = env.dv.seed("account", [{"name": "COHO winery", "address1_city": "Napa", "customertypecode": 3}])
    [coho_bc] = env.bc.seed("customers", [{"number": "C8", "displayName": "Coho Winery", "city": "Sonoma"}])

    code, out, err = cli("match", "CUSTOMER", "--create-new-if-no-match", "false", "--sync-after-coupling", "false",
                         "--wait")
    assert code == 0, err
    no_match = {e.source_id: e for e in env.errors() if e.code == "NoMatch"}
    assert "Customer C9" in no_match[alpine].message and "no uncoupled account matches it" in no_match[alpine].message
    assert blue in no_match                                         # both directions report theirs
    assert len(env.dv.rows("account")) == 2 and len(env.bc.rows("customers")) == 2
    assert (coho_bc, coho) in _pairs(env)                          # the default name match is not case-sensitive
    assert env.dv.get("account", coho)["address1_city"] == "Napa"  # coupled only, not synchronised

    code, out, err = cli("match", "CUSTOMER", "--create-new-if-no-match", "true", "--sync-after-coupling", "true",
                         "--wait")
    assert code == 0, err
    names = sorted(r["name"] for r in env.dv.rows("account"))
    assert names == ["Alpine Ski House", "Blue Yonder", "COHO winery"]
    assert sorted(r["displayName"] for r in env.bc.rows("customers")) == ["Alpine Ski House", "Blue Yonder",
                                                                           "Coho Winery"]
    assert not [e for e in env.errors() if e.code == "NoMatch"]
    # the already coupled pair is left alone by match-based coupling, even with synchronise-after on
    assert env.dv.get("account", coho)["address1_city"] == "Napa"

    env.sync()   # the next scheduled run synchronises the pair coupled earlier (BC first, as for a new pair)
    assert env.dv.get("account", coho)["address1_city"] == "Sonoma"


def test_match_over_http_changes_the_criteria_and_starts_a_coupling_run(env, monkeypatch):
    monkeypatch.setattr(function_app, "_services", env.services)
    handler = function_app.match.build().get_user_function()
    [c] = env.bc.seed("customers", [{"number": "C1", "displayName": "Trey Research", "phoneNumber": "555"}])
    [a] = env.dv.seed("account", [{"name": "Trey", "telephone1": "555", "customertypecode": 3}])
    body = json.dumps({"match": {"Phone No.": {"priority": 0}}, "create_new_if_no_match": False}).encode()
    response = handler(func.HttpRequest("POST", "http://localhost/api/match/CUSTOMER", body=body,
                                        route_params={"mapping": "CUSTOMER"}))
    assert response.status_code == 202, response.get_body()
    started = json.loads(response.get_body())
    assert response.headers["Location"].endswith(f"/api/runs/{started['run']}")
    assert env.worker.run_until(lambda: env.services.report(started["run"]).run.status.value != "running", 60)
    assert _pairs(env) == {(c, a)}
    assert env.services.report(started["run"]).run.kind is RunKind.COUPLE

    bad = handler(func.HttpRequest("POST", "http://localhost/api/match/CUSTOMER",
                                   body=json.dumps({"match": {"Nope": {}}}).encode(),
                                   route_params={"mapping": "CUSTOMER"}))
    assert bad.status_code == 400 and "Nope" in json.loads(bad.get_body())["error"]
