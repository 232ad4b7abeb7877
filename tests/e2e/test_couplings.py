"""Coupling by hand, uncoupling, listing and searching couplings: CLI and HTTP."""

from __future__ import annotations

import json

import function_app
from tests.support import FunctionsHost


def test_couple_by_hand_then_the_next_run_synchronises_the_pair(env, cli):
    [customer] = env.bc.seed("customers", [{"number": "10000", "displayName": "Adatum Corp.", "city": "Atlanta"}])
    [account] = env.dv.seed("account", [{"name": "ADATUM (old name)", "customertypecode": 3}])
    code, out, err = cli("couple", "CUSTOMER", "--bc", customer, "--crm", account)
    assert code == 0, err
    env.sync()                                             # a scheduled run: BC -> Sales first for a new pair
    assert env.dv.get("account", account)["name"] == "Adatum Corp."
    assert env.dv.get("account", account)["address1_city"] == "Atlanta"
    assert len(env.dv.rows("account")) == 1 and len(env.bc.rows("customers")) == 1

    code, out, _ = cli("couplings", "CUSTOMER", "--search", "adatum", "--json")
    [listed] = json.loads(out)
    assert listed["bc_id"] == customer and listed["crm_id"] == account
    assert json.loads(cli("couplings", "CUSTOMER", "--search", "nothing like it", "--json")[1]) == []

    # coupling what is already coupled, or what does not exist, is refused with both records named
    [other] = env.dv.seed("account", [{"name": "Someone else", "customertypecode": 3}])
    code, _, err = cli("couple", "CUSTOMER", "--bc", customer, "--crm", other)
    assert code == 2 and "Customer 10000 is already coupled" in err
    code, _, err = cli("couple", "CUSTOMER", "--bc", "00000000-0000-0000-0000-000000000001", "--crm", other)
    assert code == 2 and "There is no Customer with id" in err

    code, out, _ = cli("uncouple", "CUSTOMER", "--crm", account)
    assert code == 0 and json.loads(cli("couplings", "CUSTOMER", "--json")[1]) == []
    env.bc.update("customers", customer, {"city": "Savannah"})
    env.sync()                                             # uncoupled: nothing flows any more
    assert env.dv.get("account", account)["address1_city"] == "Atlanta"


def test_couplings_over_http(env, monkeypatch):
    monkeypatch.setattr(function_app, "_services", env.services)
    host = FunctionsHost(function_app.app)
    [customer] = env.bc.seed("customers", [{"number": "10000", "displayName": "Adatum"}])
    [account] = env.dv.seed("account", [{"name": "Adatum", "customertypecode": 3}])

    def call(method, params=None, body=b""):
        key = host.FUNCTION_KEY if method == "GET" else host.MASTER_KEY
        return host.request(method, "/api/couplings/CUSTOMER", body, key=key, params=params)

    made = call("POST", body=json.dumps({"bc_id": customer, "crm_id": account}).encode())
    assert made.status_code == 201
    listed = json.loads(call("GET").get_body())["couplings"]
    assert [(c["bc_id"], c["crm_id"]) for c in listed] == [(customer, account)]
    assert call("POST", body=b"{}").status_code == 400
    assert call("DELETE", params={"bc": customer}).status_code == 200
    assert call("DELETE", params={"bc": customer}).status_code == 404
