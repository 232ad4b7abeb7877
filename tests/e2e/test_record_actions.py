"""Per-record actions from the CLI, on the local stack: create in Sales, create in Business Central, and
synchronise now, by id and by filter; each answers with what became of every record."""

from __future__ import annotations

import json


def test_create_in_sales_and_in_business_central_and_synchronise_now(env, cli):
    [adatum] = env.bc.seed("customers", [{"number": "10000", "displayName": "Adatum"}])   # nothing coupled yet
    code, out, _ = cli("records", "create", "CUSTOMER", "--in", "sales", "--id", adatum)
    assert code == 0 and out.startswith("created") and "Customer 10000" in out, out
    [account] = env.dv.rows("account")
    assert account["name"] == "Adatum" and [c.crm_id for c in env.couplings("CUSTOMER")] == [account["accountid"]]
    code, out, _ = cli("records", "create", "CUSTOMER", "--in", "sales", "--id", adatum)
    assert code == 1 and out.startswith("failed") and "is already coupled in table mapping CUSTOMER" in out
    assert len(env.dv.rows("account")) == 1                                              # never created twice

    env.dv.seed("account", [{"name": "Contoso", "customertypecode": 3}])
    code, out, _ = cli("records", "create", "CUSTOMER", "--in", "bc", "--filter", "name eq 'Contoso'", "--json")
    [created] = json.loads(out)
    assert code == 0 and created["status"] == "created", created
    assert "Contoso" in [c["displayName"] for c in env.bc.rows("customers")]

    env.bc.update("customers", adatum, {"displayName": "Adatum Corporation"})
    code, out, _ = cli("records", "sync", "CUSTOMER", "--filter", "number eq '10000'")
    assert code == 0 and out.startswith("updated"), out
    assert [a["name"] for a in env.dv.rows("account") if a["accountid"] == account["accountid"]] == ["Adatum Corporation"]
    code, out, _ = cli("records", "sync", "CUSTOMER", "--id", adatum)
    assert code == 0 and out.startswith("unchanged"), out

    [blocked] = env.bc.seed("customers", [{"number": "10030", "displayName": "Litware", "blocked": "All"}])
    code, out, _ = cli("records", "create", "CUSTOMER", "--in", "sales", "--id", blocked)
    assert code == 1 and out.startswith("filtered") and "is left out by the rules of table mapping CUSTOMER" in out
    env.bc.update("customers", blocked, {"blocked": " "})
    code, out, _ = cli("records", "sync", "CUSTOMER", "--id", blocked)
    assert code == 1 and "is not coupled in table mapping CUSTOMER; create it in Sales instead" in out
    assert "Litware" not in [a["name"] for a in env.dv.rows("account")]
