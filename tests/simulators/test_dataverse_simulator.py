"""The Dataverse simulator over real HTTPS: MSAL tokens from the token simulator, `requests` on the wire,
and Microsoft's PowerPlatform-Dataverse-Client SDK against it unchanged."""

from __future__ import annotations

import datetime as dt
import json
import re
import time
import uuid
from dataclasses import dataclass

import msal
import pytest
import requests

from simulators.dataverse import DataverseSimulator
from simulators.tls import LocalCA
from simulators.token import Client, TokenIssuer, User

GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
ODATA_HEADERS = {"Accept": "application/json", "OData-MaxVersion": "4.0", "OData-Version": "4.0"}


class Clock:
    """A settable clock for the simulator: time moves only when a test says so."""

    def __init__(self):
        self.now = dt.datetime(2024, 5, 1, 10, 0, 0, tzinfo=dt.timezone.utc)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> dt.datetime:
        self.now += dt.timedelta(seconds=seconds)
        return self.now


@dataclass
class Env:
    ca: LocalCA
    issuer: TokenIssuer
    token_url: str
    dv_url: str
    sim: DataverseSimulator
    clock: Clock
    session: requests.Session
    client: Client
    other_client: Client
    user: User

    @property
    def api(self) -> str:
        return f"{self.dv_url}/api/data/v9.2"

    def msal_app(self, client: Client) -> msal.ConfidentialClientApplication:
        return msal.ConfidentialClientApplication(
            client.client_id, client_credential=client.secret,
            authority=f"{self.token_url}/{self.issuer.tenant_id}", instance_discovery=False,
            http_client=self.session)


@pytest.fixture(scope="module")
def env(tenant):
    clock = Clock()
    sim = DataverseSimulator(tenant.issuer, clock=clock, any_webhook_port=True)  # receivers on loopback ports
    dv_server = tenant.serve(sim.app)
    session = tenant.session()
    client = tenant.issuer.add_client(Client(str(uuid.uuid4()), secret="integration-secret", name="bcsync"))
    other = tenant.issuer.add_client(Client(str(uuid.uuid4()), secret="other-secret", name="other app"))
    user = tenant.issuer.add_user(User("sales.rep@contoso.example", "P@ssw0rd!", name="Sales Rep"))
    yield Env(tenant.ca, tenant.issuer, tenant.token_url, dv_server.url, sim, clock, session, client, other, user)
    dv_server.stop()
    session.close()


class Api:
    """A thin Web API caller: base URL, bearer token, the OData headers a real client sends."""

    def __init__(self, env: Env, token: str):
        self.env = env
        self.token = token

    def url(self, path: str) -> str:
        return path if path.startswith("https://") else f"{self.env.api}/{path.lstrip('/')}"

    def request(self, method: str, path: str, *, headers: dict | None = None, **kw) -> requests.Response:
        merged = {**ODATA_HEADERS, "Authorization": f"Bearer {self.token}", **(headers or {})}
        return self.env.session.request(method, self.url(path), headers=merged, timeout=30, **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, json=body, **kw)

    def patch(self, path, body=None, **kw):
        return self.request("PATCH", path, json=body, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)


_tokens: dict[str, str] = {}


def app_token(env: Env, client: Client) -> str:
    result = env.msal_app(client).acquire_token_for_client(scopes=[f"{env.dv_url}/.default"])
    assert "access_token" in result, result
    return result["access_token"]


@pytest.fixture
def dv(env):
    """A fresh organisation with the integration's application user; returns an authenticated Api."""
    env.sim.reset()
    env.sim.faults.clear()
    env.clock.now = dt.datetime(2024, 5, 1, 10, 0, 0, tzinfo=dt.timezone.utc)
    env.sim.seed("systemuser", [{
        "systemuserid": "5e1c0000-0000-4000-8000-00000000a001", "applicationid": env.client.client_id,
        "firstname": "# bcsync", "lastname": "Integration", "islicensed": False, "accessmode": 4,
        "internalemailaddress": "bcsync@contoso.example"}])
    if env.client.client_id not in _tokens:
        _tokens[env.client.client_id] = app_token(env, env.client)
    return Api(env, _tokens[env.client.client_id])


APP_USER = "5e1c0000-0000-4000-8000-00000000a001"


def entity_id(response: requests.Response) -> str:
    match = GUID.search(response.headers["OData-EntityId"])
    assert match, response.headers
    return match.group(0)


def error_code(response: requests.Response) -> str:
    return response.json()["error"]["code"]


# --------------------------------------------------------------------------- authentication

def test_missing_or_bad_token_is_401_with_a_bearer_challenge(env, dv):
    bare = env.session.get(f"{env.api}/WhoAmI", headers=ODATA_HEADERS)
    assert bare.status_code == 401
    assert bare.headers["WWW-Authenticate"].startswith("Bearer authorization_uri=")
    assert env.issuer.tenant_id in bare.headers["WWW-Authenticate"]

    wrong_audience = env.issuer.access_token("https://someone-else.crm.dynamics.com", app_id=env.client.client_id,
                                             object_id=env.client.object_id)
    assert Api(env, wrong_audience).get("WhoAmI").status_code == 401
    forged = TokenIssuer(env.issuer.tenant_id)
    forged.base_url = env.issuer.base_url
    other_key = forged.access_token(env.dv_url, app_id=env.client.client_id, object_id=env.client.object_id)
    assert Api(env, other_key).get("WhoAmI").status_code == 401
    expired = env.issuer.access_token(env.dv_url, app_id=env.client.client_id, object_id=env.client.object_id,
                                      extra={"exp": int(time.time()) - 60})
    assert Api(env, expired).get("WhoAmI").status_code == 401


def test_an_app_without_an_application_user_is_403(env, dv):
    other = Api(env, app_token(env, env.other_client))
    response = other.get("accounts")
    assert response.status_code == 403
    assert response.json()["error"] == {"code": "0x80072560", "message": "The user is not a member of the organization."}


def test_a_disabled_application_user_is_403(env, dv):
    env.sim.update("systemuser", APP_USER, {"isdisabled": True})
    response = dv.get("WhoAmI")
    assert response.status_code == 403
    assert error_code(response) == "0x80040225"


def test_who_am_i(env, dv):
    for path in ("WhoAmI", "WhoAmI()"):
        response = dv.get(path)
        assert response.status_code == 200
        body = response.json()
        assert body["@odata.context"] == f"{env.api}/$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse"
        assert body["UserId"] == APP_USER
        assert body["BusinessUnitId"] == env.sim.root_business_unit_id
        assert body["OrganizationId"] == env.sim.organization_id
        assert response.headers["OData-Version"] == "4.0"


def test_a_revoked_privilege_refuses_what_needs_it_and_is_missing_from_the_users_privileges(env, dv):
    env.sim.revoke_privileges(APP_USER, ["prvWriteAccount", "prvReadInvoice"])
    created = dv.post("accounts", {"name": "Adatum"})
    assert created.status_code == 204                              # Create is still granted
    account = entity_id(created)
    refused = dv.patch(f"accounts({account})", {"name": "Adatum Ltd"}, headers={"If-Match": "*"})
    assert refused.status_code == 403 and error_code(refused) == "0x80040220"
    assert "missing prvWriteAccount privilege" in refused.json()["error"]["message"]
    bulk = dv.post("accounts/Microsoft.Dynamics.CRM.UpdateMultiple", {"Targets": [
        {"@odata.type": "Microsoft.Dynamics.CRM.account", "accountid": account, "name": "x"}]})
    assert bulk.status_code == 403
    lines = dv.get("invoicedetails?$top=1")                        # lines follow the invoice's privileges
    assert lines.status_code == 403 and "prvReadInvoice" in lines.json()["error"]["message"]
    assert dv.get("accounts?$top=1").status_code == 200

    answer = dv.get(f"systemusers({APP_USER})/Microsoft.Dynamics.CRM.RetrieveUserPrivileges()")
    assert answer.status_code == 200
    held = {p["PrivilegeName"]: p for p in answer.json()["RolePrivileges"]}
    assert "prvWriteAccount" not in held and "prvReadInvoice" not in held
    assert held["prvCreateAccount"]["Depth"] == "Global" and "prvReadUser" in held
    assert held["prvCreateAccount"]["BusinessUnitId"] == env.sim.root_business_unit_id
    assert not any(name.endswith("InvoiceDetail") or name.endswith("Invoicedetail") for name in held)
    env.sim.reset()
    env.sim.seed("systemuser", [{"systemuserid": APP_USER, "applicationid": env.client.client_id,
                                 "lastname": "Integration", "islicensed": False}])
    assert dv.get("invoices?$top=1").status_code == 200           # a reset gives the role its privileges back


def test_initial_state_is_root_business_unit_default_team_and_base_currency(env):
    env.sim.reset()
    assert [r["businessunitid"] for r in env.sim.rows("businessunit")] == [env.sim.root_business_unit_id]
    teams = env.sim.rows("team")
    assert [t["teamid"] for t in teams] == [env.sim.default_team_id]
    assert teams[0]["isdefault"] is True and teams[0]["businessunitid"] == env.sim.root_business_unit_id
    (usd,) = env.sim.rows("transactioncurrency")
    assert usd["transactioncurrencyid"] == env.sim.base_currency_id
    assert (usd["isocurrencycode"], usd["exchangerate"], usd["currencyprecision"]) == ("USD", 1.0, 2)
    assert env.sim.rows("systemuser") == [] and env.sim.rows("account") == []


# --------------------------------------------------------------------------- create

def test_create_answers_204_with_the_entity_id(env, dv):
    response = dv.post("accounts", {"name": "Contoso", "accountnumber": "C-001"})
    assert response.status_code == 204
    new_id = entity_id(response)
    assert response.headers["OData-EntityId"] == f"{env.api}/accounts({new_id})"
    row = env.sim.get("account", new_id)
    assert row["name"] == "Contoso"
    assert row["ownerid"] == APP_USER and row["createdby"] == APP_USER and row["modifiedby"] == APP_USER
    assert row["owningbusinessunit"] == env.sim.root_business_unit_id
    assert (row["statecode"], row["statuscode"]) == (0, 1)
    assert row["createdon"] == row["modifiedon"] == env.clock.now


def test_create_with_representation_answers_201_with_the_row(env, dv):
    response = dv.post("accounts?$select=name,accountnumber,_ownerid_value", {"name": "Fabrikam", "accountnumber": "F1"},
                       headers={"Prefer": "return=representation"})
    assert response.status_code == 201
    body = response.json()
    assert body["@odata.context"] == f"{env.api}/$metadata#accounts(name,accountnumber,_ownerid_value)/$entity"
    assert body["name"] == "Fabrikam" and body["_ownerid_value"] == APP_USER
    assert GUID.fullmatch(body["accountid"])
    assert body["@odata.etag"] == response.headers["ETag"]
    assert set(body) == {"@odata.context", "@odata.etag", "name", "accountnumber", "_ownerid_value", "accountid"}


def test_create_with_a_client_supplied_id_and_duplicate_id_is_412(env, dv):
    new_id = str(uuid.uuid4())
    first = dv.post("accounts", {"accountid": new_id, "name": "Idempotent"})
    assert first.status_code == 204 and entity_id(first) == new_id
    again = dv.post("accounts", {"accountid": new_id, "name": "Idempotent"})
    assert again.status_code == 412
    assert again.json()["error"] == {"code": "0x80040237", "message": "Cannot insert duplicate key."}
    assert len(env.sim.rows("account")) == 1


def test_system_fields_in_a_payload_are_ignored(env, dv):
    response = dv.post("accounts", {
        "name": "Sneaky", "createdon": "2001-01-01T00:00:00Z", "modifiedon": "2001-01-01T00:00:00Z",
        "versionnumber": 1, "overriddencreatedon": None}, headers={"Prefer": "return=representation"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["createdon"] == body["modifiedon"] == "2024-05-01T10:00:00Z"
    assert body["versionnumber"] > 1
    assert body["_createdby_value"] == APP_USER


# --------------------------------------------------------------------------- read

def seed_accounts(env: Env, count: int, **extra) -> list[str]:
    return env.sim.seed("account", [{"name": f"Account {i:03d}", "accountnumber": f"A{i:03d}", **extra}
                                    for i in range(count)])


def test_read_a_single_row_with_select_and_etag(env, dv):
    (acc,) = seed_accounts(env, 1)
    response = dv.get(f"accounts({acc})?$select=name,_transactioncurrencyid_value")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json; odata.metadata=minimal"
    body = response.json()
    assert body["@odata.context"] == f"{env.api}/$metadata#accounts(name,_transactioncurrencyid_value)/$entity"
    assert body["accountid"] == acc and body["name"] == "Account 000"
    row = env.sim.get("account", acc)
    assert body["@odata.etag"] == response.headers["ETag"] == f'W/"{row["versionnumber"]}"'
    assert dv.get(f"accounts(accountid={acc})?$select=name").json()["name"] == "Account 000"


def test_read_errors(env, dv):
    missing = str(uuid.uuid4())
    response = dv.get(f"accounts({missing})")
    assert response.status_code == 404
    assert response.json()["error"] == {"code": "0x80040217", "message": f"account With Id = {missing} Does Not Exist"}
    response = dv.get("accounts?$select=name,nosuchcolumn")
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "0x80060888",
        "message": "Could not find a property named 'nosuchcolumn' on type 'Microsoft.Dynamics.CRM.account'."}
    assert dv.get("accounts?$select=ownerid").status_code == 400  # lookups are read as _ownerid_value
    response = dv.get("acounts")
    assert response.status_code == 404
    assert response.json()["error"] == {"code": "0x80060888", "message": "Resource not found for the segment 'acounts'."}
    response = dv.get("accounts?$skip=10")
    assert response.status_code == 400 and response.json()["error"]["message"] == "Skip Clause is not supported in CRM"
    assert dv.get(f"systemusers(systemuserid={APP_USER})").status_code == 400
    assert dv.get(f"systemusers({APP_USER})").json()["systemuserid"] == APP_USER
    assert dv.patch("accounts", {"name": "x"}).status_code == 405
    assert dv.delete("accounts").status_code == 405


def test_collection_select_orderby_top(env, dv):
    seed_accounts(env, 5)
    response = dv.get("accounts?$select=name&$orderby=name desc&$top=3")
    assert response.status_code == 200
    body = response.json()
    assert body["@odata.context"] == f"{env.api}/$metadata#accounts(name)"
    assert [r["name"] for r in body["value"]] == ["Account 004", "Account 003", "Account 002"]
    assert "@odata.nextLink" not in body
    for row in body["value"]:
        assert set(row) == {"@odata.etag", "name", "accountid"}
        assert row["@odata.etag"].startswith('W/"')
    everything = dv.get("accounts").json()["value"][0]
    assert {"name", "_ownerid_value", "_owninguser_value", "_owningteam_value", "_owningbusinessunit_value",
            "createdon", "modifiedon", "_createdby_value", "_modifiedby_value", "versionnumber",
            "statecode", "statuscode", "address1_line1", "customertypecode"} <= set(everything)


def test_filters(env, dv):
    clock = env.clock
    contoso = env.sim.create("account", {"name": "Contoso Ltd", "accountnumber": "C1", "customertypecode": 3,
                                         "revenue": 5000.0, "creditonhold": True})
    clock.advance(3600)
    fabrikam = env.sim.create("account", {"name": "Fabrikam", "accountnumber": None, "customertypecode": 8,
                                          "statecode": 1, "statuscode": 2})
    clock.advance(3600)
    team_owned = env.sim.create("account", {"name": "Northwind", "accountnumber": "N1",
                                            "ownerid": env.sim.default_team_id})

    def names(expr: str) -> list[str]:
        response = dv.get("accounts", params={"$select": "name", "$filter": expr, "$orderby": "name"})
        assert response.status_code == 200, response.text
        return [r["name"] for r in response.json()["value"]]

    assert names("name eq 'CONTOSO LTD'") == ["Contoso Ltd"]
    assert names("contains(name,'wind')") == ["Northwind"]
    assert names("startswith(name,'fab') or endswith(name,'LTD')") == ["Contoso Ltd", "Fabrikam"]
    assert names("accountnumber eq null") == ["Fabrikam"]
    assert names("accountnumber ne null and not (statecode eq 1)") == ["Contoso Ltd", "Northwind"]
    assert names(f"_ownerid_value eq {env.sim.default_team_id}") == ["Contoso Ltd", "Fabrikam", "Northwind"]
    assert names(f"accountid eq {fabrikam}") == ["Fabrikam"]
    assert names("createdon gt 2024-05-01T10:30:00Z") == ["Fabrikam", "Northwind"]
    assert names("modifiedon le 2024-05-01T11:00:00Z and modifiedon ge 2024-05-01T11:00:00Z") == ["Fabrikam"]
    assert names("revenue gt 100 and creditonhold eq true") == ["Contoso Ltd"]
    assert names("Microsoft.Dynamics.CRM.In(PropertyName='customertypecode',PropertyValues=[\"3\",\"8\"])") == [
        "Contoso Ltd", "Fabrikam"]
    assert contoso and team_owned
    response = dv.get("accounts", params={"$filter": "nosuch eq 1"})
    assert response.status_code == 400 and error_code(response) == "0x80060888"
    assert "nosuch" in response.json()["error"]["message"]
    assert dv.get("accounts", params={"$filter": "name eq"}).status_code == 400
    for other in ("tolower(name) eq 'contoso ltd'", "length(name) gt 3", "contains(toupper(name),'WIND')"):
        refused = dv.get("accounts", params={"$filter": other})   # only contains, endswith and startswith
        assert refused.status_code == 400 and "is not supported" in refused.json()["error"]["message"], other


# --------------------------------------------------------------------------- paging

def test_server_driven_paging_with_count_over_three_pages(env, dv):
    seed_accounts(env, 25)
    url = "accounts?$select=name&$count=true&$orderby=name"
    prefer = {"Prefer": "odata.maxpagesize=10"}
    pages = []
    while url:
        response = dv.get(url, headers=prefer)
        assert response.status_code == 200, response.text
        assert response.headers["Preference-Applied"] == "odata.maxpagesize=10"
        body = response.json()
        assert body["@odata.count"] == 25
        pages.append([r["name"] for r in body["value"]])
        url = body.get("@odata.nextLink")
        if url:
            assert url.startswith(f"{env.api}/accounts?")
            assert "$skiptoken=" in url and "%3Ccookie%20pagenumber%3D%22" in url
    assert [len(p) for p in pages] == [10, 10, 5]
    assert [n for p in pages for n in p] == [f"Account {i:03d}" for i in range(25)]


def test_in_filters_by_a_list_of_values_quotes_included(env, dv):
    ids = env.sim.seed("account", [{"name": name} for name in ("O'Brien Ltd", "Contoso", "Fabrikam")])
    names = dv.get("accounts?$select=name&$orderby=name&$filter=Microsoft.Dynamics.CRM.In("
                   "PropertyName='name',PropertyValues=['o''brien ltd','Fabrikam','Nobody'])")
    assert names.status_code == 200, names.text
    assert [r["name"] for r in names.json()["value"]] == ["Fabrikam", "O'Brien Ltd"]
    by_id = dv.get(f"accounts?$select=name&$filter=Microsoft.Dynamics.CRM.In(PropertyName='accountid',"
                   f"PropertyValues=['{ids[1]}','{ids[2]}']) and name ne 'Fabrikam'")
    assert [r["name"] for r in by_id.json()["value"]] == ["Contoso"]
    others = dv.get(f"accounts?$select=name&$filter=Microsoft.Dynamics.CRM.NotIn(PropertyName='accountid',"
                    f"PropertyValues=['{ids[1]}','{ids[2]}'])")
    assert [r["name"] for r in others.json()["value"]] == ["O'Brien Ltd"]


def test_a_page_costs_the_rows_it_walks_not_the_table(env, dv):
    """100k accounts: a 5000-row page, first or next (after a write in between), examines about 5000 rows; a
    lookup of 1000 ids examines those 1000; a query the index cannot serve ($count) still works."""
    ids = env.sim.seed("account", [{"name": f"Bulk {i:06d}"} for i in range(100_000)])
    prefer = {"Prefer": "odata.maxpagesize=5000"}
    runner = env.sim.runner

    def examined(url: str) -> tuple[int, dict]:
        before = runner.examined
        response = dv.get(url, headers=prefer)
        assert response.status_code == 200, response.text
        return runner.examined - before, response.json()

    dv.get("accounts?$select=name&$orderby=modifiedon,accountid", headers={"Prefer": "odata.maxpagesize=1"})
    cost, first = examined("accounts?$select=name&$orderby=modifiedon,accountid")
    assert cost <= 5001 and len(first["value"]) == 5000
    env.sim.update("account", ids[7], {"name": "Changed"})  # a write between pages does not rebuild anything
    cost, second = examined(first["@odata.nextLink"])
    assert cost <= 5001 and len(second["value"]) == 5000
    assert not {r["accountid"] for r in first["value"]} & {r["accountid"] for r in second["value"]}
    wanted = ids[50_000:51_000]
    chunks = [wanted[:500], wanted[500:]]
    found = set()
    for chunk in chunks:
        cost, body = examined("accounts?$select=name&$filter=Microsoft.Dynamics.CRM.In(PropertyName='accountid',"
                              "PropertyValues=[" + ",".join(f"'{i}'" for i in chunk) + "])")
        assert cost <= len(chunk)
        found |= {r["accountid"] for r in body["value"]}
    assert found == set(wanted)
    assert examined("accounts?$select=name&$count=true&$top=3")[1]["@odata.count"] == 5000


def test_every_answer_carries_the_recommended_degree_of_parallelism(env, dv):
    assert dv.get("WhoAmI").headers["x-ms-dop-hint"] == "4"
    assert dv.get("accounts(00000000-0000-0000-0000-000000000001)").headers["x-ms-dop-hint"] == "4"
    env.sim.dop_hint = 8
    try:
        assert dv.get("accounts?$top=1").headers["x-ms-dop-hint"] == "8"
    finally:
        env.sim.dop_hint = 4


def test_top_is_ignored_when_maxpagesize_is_present(env, dv):
    seed_accounts(env, 12)
    body = dv.get("accounts?$select=name&$top=3", headers={"Prefer": "odata.maxpagesize=5"}).json()
    assert len(body["value"]) == 5 and "@odata.nextLink" in body
    assert len(dv.get("accounts?$select=name&$top=3").json()["value"]) == 3


def test_a_maxpagesize_above_5000_is_ignored_not_applied(env, dv):
    seed_accounts(env, 6)
    response = dv.get("accounts?$select=name&$top=3", headers={"Prefer": "odata.maxpagesize=6000"})
    assert "Preference-Applied" not in response.headers
    assert len(response.json()["value"]) == 3                   # no page size in force: $top applies


def test_paging_never_skips_rows_changed_between_page_reads(env, dv):
    """Keyset paging: deleting an already-read row or re-sorting an unread one loses nothing."""
    ids = seed_accounts(env, 30)
    env.clock.advance(60)
    seen: list[str] = []
    prefer = {"Prefer": "odata.maxpagesize=10"}
    body = dv.get("accounts?$select=name,modifiedon&$orderby=modifiedon asc,name asc", headers=prefer).json()
    seen += [r["accountid"] for r in body["value"]]
    # an offset-based server would now skip a row: remove two rows already read, and touch an unread one
    env.sim.delete("account", seen[0])
    env.sim.delete("account", seen[1])
    env.clock.advance(60)
    touched = ids[15]
    assert touched not in seen
    env.sim.update("account", touched, {"telephone1": "555-0100"})
    while body.get("@odata.nextLink"):
        body = dv.get(body["@odata.nextLink"], headers=prefer).json()
        seen += [r["accountid"] for r in body["value"]]
    assert set(ids) <= set(seen)
    assert seen[-1] == touched  # it moved to the end of the modifiedon order and was read there


def test_paging_with_a_row_renamed_into_an_earlier_position(env, dv):
    ids = seed_accounts(env, 20)
    prefer = {"Prefer": "odata.maxpagesize=8"}
    body = dv.get("accounts?$select=name&$orderby=name desc", headers=prefer).json()
    seen = [r["accountid"] for r in body["value"]]
    env.sim.update("account", ids[0], {"name": "Account 999"})  # jumps to the front of the order, already passed
    while body.get("@odata.nextLink"):
        body = dv.get(body["@odata.nextLink"], headers=prefer).json()
        seen += [r["accountid"] for r in body["value"]]
    assert set(ids) - {ids[0]} <= set(seen)
    assert len(seen) == len(set(seen))


# --------------------------------------------------------------------------- concurrency and upsert

def test_etags_if_match_and_if_none_match(env, dv):
    (acc,) = seed_accounts(env, 1)
    first = dv.get(f"accounts({acc})?$select=name")
    etag = first.headers["ETag"]
    assert dv.get(f"accounts({acc})?$select=name", headers={"If-None-Match": etag}).status_code == 304
    assert dv.get(f"accounts({acc})?$select=name", headers={"If-None-Match": "null"}).status_code == 200
    annotated = dv.get(f"accounts({acc})?$select=name",
                       headers={"If-None-Match": etag, "Prefer": 'odata.include-annotations="*"'})
    assert annotated.status_code == 200
    ok = dv.patch(f"accounts({acc})", {"name": "Renamed"}, headers={"If-Match": etag})
    assert ok.status_code == 204
    stale = dv.patch(f"accounts({acc})", {"name": "Lost update"}, headers={"If-Match": etag})
    assert stale.status_code == 412
    assert stale.json()["error"] == {
        "code": "0x80060882",
        "message": "The version of the existing record doesn't match the RowVersion property provided."}
    assert dv.delete(f"accounts({acc})", headers={"If-Match": etag}).status_code == 412
    assert dv.get(f"accounts({acc})?$select=name", headers={"If-None-Match": etag}).status_code == 200
    assert env.sim.get("account", acc)["name"] == "Renamed"


def test_patch_semantics_update_upsert_and_create_only(env, dv):
    new_id = str(uuid.uuid4())
    assert dv.patch(f"accounts({new_id})", {"name": "x"}, headers={"If-Match": "*"}).status_code == 404
    assert env.sim.get("account", new_id) is None
    created = dv.patch(f"accounts({new_id})", {"name": "Upserted"})
    assert created.status_code == 204 and entity_id(created) == new_id
    updated = dv.patch(f"accounts({new_id})", {"telephone1": "555"})
    assert updated.status_code == 204 and entity_id(updated) == new_id
    row = env.sim.get("account", new_id)
    assert (row["name"], row["telephone1"]) == ("Upserted", "555")
    exists = dv.patch(f"accounts({new_id})", {"name": "again"}, headers={"If-None-Match": "*"})
    assert exists.status_code == 412
    assert exists.json()["error"]["message"] == "A record with matching key values already exists."
    other = str(uuid.uuid4())
    rep = dv.patch(f"accounts({other})?$select=name", {"name": "Rep"}, headers={"Prefer": "return=representation"})
    assert rep.status_code == 201 and rep.json()["name"] == "Rep"
    rep = dv.patch(f"accounts({other})?$select=name", {"name": "Rep2"},
                   headers={"Prefer": "return=representation", "If-Match": "*"})
    assert rep.status_code == 200 and rep.json()["name"] == "Rep2" and rep.headers["ETag"] == rep.json()["@odata.etag"]
    assert dv.delete(f"accounts({other})").status_code == 204
    assert dv.delete(f"accounts({other})").status_code == 404


def test_state_and_status_by_patch(env, dv):
    (acc,) = seed_accounts(env, 1)
    assert dv.patch(f"accounts({acc})", {"statecode": 1, "statuscode": 2}).status_code == 204
    assert (env.sim.get("account", acc)["statecode"], env.sim.get("account", acc)["statuscode"]) == (1, 2)
    assert dv.patch(f"accounts({acc})", {"statecode": 0}).status_code == 204
    assert env.sim.get("account", acc)["statuscode"] == 1  # the state's default status
    mismatch = dv.patch(f"accounts({acc})", {"statuscode": 2})
    assert mismatch.status_code == 400
    assert "is not a valid status code for state code" in mismatch.json()["error"]["message"]


def test_a_new_business_unit_gets_its_default_owner_team_which_can_own_rows(env, dv):
    root = env.sim.root_business_unit_id
    response = dv.post("businessunits", {"name": "CRONUS USA", "parentbusinessunitid@odata.bind": f"/businessunits({root})"})
    assert response.status_code == 204, response.text
    unit = entity_id(response)
    found = dv.get(f"teams?$select=teamid,name,teamtype,isdefault&$filter=_businessunitid_value eq {unit} and "
                   f"isdefault eq true and teamtype eq 0").json()["value"]
    assert [(t["name"], t["teamtype"], t["isdefault"]) for t in found] == [("CRONUS USA", 0, True)]
    team = found[0]["teamid"]
    response = dv.post("accounts?$select=_ownerid_value,_owningteam_value,_owningbusinessunit_value",
                       {"name": "Team owned", "ownerid@odata.bind": f"/teams({team})"},
                       headers={"Prefer": "return=representation"})
    body = response.json()
    assert (body["_ownerid_value"], body["_owningteam_value"], body["_owningbusinessunit_value"]) == (team, team, unit)
    # the application user moved into the unit: WhoAmI names it
    dv.patch(f"systemusers({APP_USER})", {"businessunitid@odata.bind": f"/businessunits({unit})"})
    assert dv.get("WhoAmI").json()["BusinessUnitId"] == unit


# --------------------------------------------------------------------------- lookups

def test_binding_owner_and_lookups_and_reading_them_back(env, dv):
    sim = env.sim
    contact = sim.create("contact", {"firstname": "Jo", "lastname": "Bloggs"})
    parent = sim.create("account", {"name": "Parent"})
    eur = sim.create("transactioncurrency", {"isocurrencycode": "EUR", "currencyname": "Euro", "currencysymbol": "€",
                                              "currencyprecision": 2, "exchangerate": 0.9})
    response = dv.post("accounts?$select=name,_ownerid_value,_primarycontactid_value,_parentaccountid_value,"
                       "_transactioncurrencyid_value,_owningteam_value,_owninguser_value,creditlimit,creditlimit_base", {
                           "name": "Child",
                           "ownerid@odata.bind": f"/teams({sim.default_team_id})",
                           "primarycontactid@odata.bind": f"/contacts({contact})",
                           "parentaccountid@odata.bind": f"{env.api}/accounts({parent})",
                           "transactioncurrencyid@odata.bind": f"transactioncurrencies({eur})",
                           "creditlimit": 900.0,
                       }, headers={"Prefer": "return=representation"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["_ownerid_value"] == sim.default_team_id and body["_owningteam_value"] == sim.default_team_id
    assert body["_owninguser_value"] is None
    assert body["_primarycontactid_value"] == contact and body["_parentaccountid_value"] == parent
    assert body["_transactioncurrencyid_value"] == eur
    assert body["creditlimit"] == 900.0 and body["creditlimit_base"] == 1000.0

    child = dv.post("contacts", {"firstname": "Sam", "lastname": "Smith",
                                 "parentcustomerid_account@odata.bind": f"/accounts({parent})"})
    assert child.status_code == 204, child.text
    row = dv.get(f"contacts({entity_id(child)})?$select=fullname,_parentcustomerid_value",
                 headers={"Prefer": 'odata.include-annotations="*"'}).json()
    assert row["fullname"] == "Sam Smith"
    assert row["_parentcustomerid_value"] == parent
    assert row["_parentcustomerid_value@Microsoft.Dynamics.CRM.lookuplogicalname"] == "account"
    assert row["_parentcustomerid_value@Microsoft.Dynamics.CRM.associatednavigationproperty"] == "parentcustomerid_account"
    assert row["_parentcustomerid_value@OData.Community.Display.V1.FormattedValue"] == "Parent"

    # clearing a lookup, and re-pointing the owner at a user
    acc = body["accountid"]
    assert dv.patch(f"accounts({acc})", {"primarycontactid@odata.bind": None,
                                         "ownerid@odata.bind": f"/systemusers({APP_USER})"}).status_code == 204
    row = sim.get("account", acc)
    assert row["primarycontactid"] is None and row["ownerid"] == APP_USER and row["owningteam"] is None


def test_bind_errors(env, dv):
    missing = str(uuid.uuid4())
    response = dv.post("accounts", {"name": "x", "primarycontactid@odata.bind": f"/contacts({missing})"})
    assert response.status_code == 404
    assert response.json()["error"] == {"code": "0x80040217", "message": f"contact With Id = {missing} Does Not Exist"}
    response = dv.post("accounts", {"name": "x", "PrimaryContactId@odata.bind": f"/contacts({missing})"})
    assert response.status_code == 400 and error_code(response) == "0x80048d19"
    assert "An undeclared property 'PrimaryContactId' which only has property annotations" in response.json()["error"]["message"]
    assert dv.post("accounts", {"name": "x", "ownerid": APP_USER}).status_code == 400
    assert dv.post("accounts", {"name": "x", "_ownerid_value": APP_USER}).status_code == 400
    assert dv.post("accounts", {"name": "x", "primarycontactid@odata.bind": f"/accounts({missing})"}).status_code == 400
    assert dv.post("contacts", {"lastname": "x", "parentcustomerid@odata.bind": f"/accounts({missing})"}).status_code == 400
    assert env.sim.rows("account") == [] and env.sim.rows("contact") == []


# --------------------------------------------------------------------------- validation

def test_validation_errors(env, dv):
    response = dv.post("accounts", {"name": "x", "nosuchcolumn": 1})
    assert response.status_code == 400 and error_code(response) == "0x80048d19"
    message = response.json()["error"]["message"]
    assert message.startswith("Error identified in Payload provided by the user for Entity :'account'")
    assert "Could not find a property named 'nosuchcolumn' on type 'Microsoft.Dynamics.CRM.account'." in message

    response = dv.post("accounts", {"name": "x" * 161})
    assert response.status_code == 400
    assert response.json()["error"] == {"code": "0x80044331", "message": (
        "A validation error occurred.  The length of the 'name' attribute of the 'account' entity exceeded the "
        "maximum allowed length of '160'.")}

    response = dv.post("accounts", {"name": "x", "paymenttermscode": 99})
    assert response.status_code == 400 and error_code(response) == "0x8004431a"
    assert "'paymenttermscode'" in response.json()["error"]["message"] and "'account'" in response.json()["error"]["message"]

    for bad in ({"name": 5}, {"creditlimit": "lots"}, {"creditonhold": "yes"}, {"paymenttermscode": "Net 30"},
                {"numberofemployees": 1.5}):
        response = dv.post("accounts", bad)
        assert response.status_code == 400 and error_code(response) == "0x80048d19", (bad, response.text)
    response = dv.post("accounts", {"name": "x", "statecode": 0, "statuscode": 2})
    assert response.status_code == 400
    assert env.sim.rows("account") == []
    assert dv.post("transactioncurrencies", {"isocurrencycode": "usd", "currencyname": "Again", "currencysymbol": "$",
                                             "currencyprecision": 2, "exchangerate": 1}).status_code == 400


# --------------------------------------------------------------------------- who changed what

def test_modifiedby_is_the_calling_user(env, dv):
    """An ordinary user signs in with a password (a direct form POST: MSAL refuses a non-443 authority port)."""
    sales_rep = env.sim.create("systemuser", {"firstname": "Sales", "lastname": "Rep", "islicensed": True,
                                              "azureactivedirectoryobjectid": env.user.object_id,
                                              "domainname": env.user.username})
    grant = env.session.post(f"{env.token_url}/{env.issuer.tenant_id}/oauth2/v2.0/token", data={
        "grant_type": "password", "client_id": str(uuid.uuid4()), "username": env.user.username,
        "password": env.user.password, "scope": f"{env.dv_url}/.default"})
    assert grant.status_code == 200, grant.text
    rep = Api(env, grant.json()["access_token"])
    assert rep.get("WhoAmI").json()["UserId"] == sales_rep

    acc = entity_id(dv.post("accounts", {"name": "Shared"}))
    env.clock.advance(5)
    assert rep.patch(f"accounts({acc})", {"telephone1": "555-0199"}, headers={"If-Match": "*"}).status_code == 204
    row = dv.get(f"accounts({acc})?$select=_createdby_value,_modifiedby_value,createdon,modifiedon",
                 headers={"Prefer": 'odata.include-annotations="*"'}).json()
    assert row["_createdby_value"] == APP_USER and row["_modifiedby_value"] == sales_rep
    assert row["_modifiedby_value@OData.Community.Display.V1.FormattedValue"] == "Sales Rep"
    assert row["createdon"] == "2024-05-01T10:00:00Z" and row["modifiedon"] == "2024-05-01T10:00:05Z"
    mine = rep.post("accounts", {"name": "Rep's"})
    assert env.sim.get("account", entity_id(mine))["ownerid"] == sales_rep


# --------------------------------------------------------------------------- annotations

def test_formatted_values_and_lookup_annotations(env, dv):
    acc = env.sim.create("account", {"name": "Annotated", "paymenttermscode": 2, "customertypecode": 3,
                                     "creditonhold": True, "creditlimit": 1234.5, "ownerid": APP_USER})
    response = dv.get(f"accounts({acc})?$select=paymenttermscode,customertypecode,creditonhold,creditlimit,"
                      f"_ownerid_value,statecode,createdon",
                      headers={"Prefer": 'odata.include-annotations="*"'})
    assert response.status_code == 200
    assert 'odata.include-annotations="*"' in response.headers["Preference-Applied"]
    body = response.json()
    fv = "@OData.Community.Display.V1.FormattedValue"
    assert body["paymenttermscode" + fv] == "2% 10; Net 30"
    assert body["customertypecode" + fv] == "Customer"
    assert body["creditonhold" + fv] == "Yes"
    assert body["statecode" + fv] == "Active"
    assert body["creditlimit" + fv] == "$1,234.50"
    assert body["createdon" + fv] == "5/1/2024 10:00 AM"
    assert body["_ownerid_value" + fv] == "# bcsync Integration"
    assert body["_ownerid_value@Microsoft.Dynamics.CRM.lookuplogicalname"] == "systemuser"
    assert body["_ownerid_value@Microsoft.Dynamics.CRM.associatednavigationproperty"] == "ownerid"
    only_formatted = dv.get(f"accounts({acc})?$select=paymenttermscode,_ownerid_value",
                            headers={"Prefer": 'odata.include-annotations="OData.Community.Display.V1.FormattedValue"'}).json()
    assert "paymenttermscode" + fv in only_formatted
    assert "_ownerid_value@Microsoft.Dynamics.CRM.lookuplogicalname" not in only_formatted
    plain = dv.get(f"accounts({acc})?$select=paymenttermscode").json()
    assert not [k for k in plain if "@" in k and k != "@odata.etag" and k != "@odata.context"]


# --------------------------------------------------------------------------- table definitions

def test_entity_definitions_as_the_sdk_asks_for_them(env, dv):
    # exactly what `requests` sends for the SDK's params: '+' for spaces, %24 for '$'
    raw = ("EntityDefinitions?%24select=LogicalName%2CEntitySetName%2CPrimaryIdAttribute"
           "&%24filter=LogicalName+eq+%27account%27")
    body = dv.get(raw).json()
    (item,) = body["value"]
    assert item["LogicalName"] == "account" and item["EntitySetName"] == "accounts"
    assert item["PrimaryIdAttribute"] == "accountid" and GUID.fullmatch(item["MetadataId"])
    assert set(item) == {"LogicalName", "EntitySetName", "PrimaryIdAttribute", "MetadataId"}

    info = dv.get("EntityDefinitions", params={
        "$select": "MetadataId,LogicalName,SchemaName,EntitySetName,PrimaryNameAttribute,PrimaryIdAttribute",
        "$filter": "LogicalName eq 'contact'"}).json()["value"][0]
    assert (info["SchemaName"], info["PrimaryNameAttribute"], info["EntitySetName"]) == ("Contact", "fullname", "contacts")
    assert dv.get("EntityDefinitions", params={"$filter": "LogicalName eq 'nosuchtable'"}).json()["value"] == []
    single = dv.get("EntityDefinitions(LogicalName='transactioncurrency')?$select=EntitySetName").json()
    assert single["EntitySetName"] == "transactioncurrencies"


def test_picklist_metadata(env, dv):
    body = dv.get("EntityDefinitions(LogicalName='account')/Attributes/Microsoft.Dynamics.CRM.PicklistAttributeMetadata"
                  "?$select=LogicalName&$expand=OptionSet($select=Options)").json()
    picklists = {item["LogicalName"]: item for item in body["value"]}
    assert {"customertypecode", "paymenttermscode", "address1_freighttermscode", "address1_shippingmethodcode"} <= set(picklists)
    assert "statecode" not in picklists and "name" not in picklists
    options = picklists["paymenttermscode"]["OptionSet"]["Options"]
    assert options[1]["Value"] == 2
    assert options[1]["Label"]["LocalizedLabels"][0] == {**options[1]["Label"]["LocalizedLabels"][0],
                                                         "Label": "2% 10; Net 30", "LanguageCode": 1033}
    assert options[1]["Label"]["UserLocalizedLabel"]["Label"] == "2% 10; Net 30"
    shipping = {o["Value"]: o["Label"]["UserLocalizedLabel"]["Label"]
                for o in picklists["address1_shippingmethodcode"]["OptionSet"]["Options"]}
    assert shipping == {1: "Airborne", 2: "DHL", 3: "FedEx", 4: "UPS", 5: "Postal Mail", 6: "Full Load", 7: "Will Call"}

    single = dv.get("EntityDefinitions(LogicalName='account')/Attributes(LogicalName='paymenttermscode')"
                    "/Microsoft.Dynamics.CRM.PicklistAttributeMetadata?$expand=OptionSet").json()
    assert single["LogicalName"] == "paymenttermscode"
    assert [o["Value"] for o in single["OptionSet"]["Options"]] == [1, 2, 3, 4]
    status = dv.get("EntityDefinitions(LogicalName='account')/Attributes(LogicalName='statuscode')"
                    "/Microsoft.Dynamics.CRM.StatusAttributeMetadata?$expand=OptionSet").json()
    assert [(o["Value"], o["State"]) for o in status["OptionSet"]["Options"]] == [(1, 0), (2, 1)]
    assert dv.get("EntityDefinitions(LogicalName='nosuch')/Attributes/Microsoft.Dynamics.CRM.PicklistAttributeMetadata"
                  ).status_code == 404
    attrs = dv.get("EntityDefinitions(LogicalName='account')/Attributes?$select=LogicalName,AttributeType"
                   "&$filter=LogicalName eq 'name'").json()["value"]
    assert attrs[0]["LogicalName"] == "name" and attrs[0]["AttributeType"] == "String"
    csdl = dv.get("$metadata")
    assert csdl.status_code == 200 and '<EntitySet Name="accounts"' in csdl.text


# --------------------------------------------------------------------------- bulk

def test_create_update_and_upsert_multiple(env, dv):
    created = dv.post("accounts/Microsoft.Dynamics.CRM.CreateMultiple", {"Targets": [
        {"name": "Bulk 1", "@odata.type": "Microsoft.Dynamics.CRM.account"},
        {"name": "Bulk 2", "@odata.type": "Microsoft.Dynamics.CRM.account",
         "ownerid@odata.bind": f"/teams({env.sim.default_team_id})"},
    ]})
    assert created.status_code == 200, created.text
    body = created.json()
    assert body["@odata.context"] == f"{env.api}/$metadata#Microsoft.Dynamics.CRM.CreateMultipleResponse"
    one, two = body["Ids"]
    assert env.sim.get("account", two)["ownerid"] == env.sim.default_team_id

    updated = dv.post("accounts/Microsoft.Dynamics.CRM.UpdateMultiple", {"Targets": [
        {"accountid": one, "telephone1": "1", "@odata.type": "Microsoft.Dynamics.CRM.account"},
        {"accountid": two, "telephone1": "2", "@odata.type": "Microsoft.Dynamics.CRM.account"},
    ]})
    assert updated.status_code == 204
    assert [env.sim.get("account", i)["telephone1"] for i in (one, two)] == ["1", "2"]

    fresh = str(uuid.uuid4())
    upserted = dv.post("accounts/Microsoft.Dynamics.CRM.UpsertMultiple", {"Targets": [
        {"accountid": one, "name": "Bulk 1b", "@odata.type": "Microsoft.Dynamics.CRM.account"},
        {"@odata.id": f"accounts({fresh})", "name": "Bulk 3", "@odata.type": "Microsoft.Dynamics.CRM.account"},
    ]})
    assert upserted.status_code == 204 and upserted.content == b""   # no UpsertMultipleResponse, unlike the SDK's
    assert env.sim.get("account", one)["name"] == "Bulk 1b"
    assert env.sim.get("account", fresh)["name"] == "Bulk 3"


def test_bulk_calls_roll_back_on_any_error(env, dv):
    response = dv.post("accounts/Microsoft.Dynamics.CRM.CreateMultiple", {"Targets": [
        {"name": "Good", "@odata.type": "Microsoft.Dynamics.CRM.account"},
        {"name": "x" * 200, "@odata.type": "Microsoft.Dynamics.CRM.account"},
    ]})
    assert response.status_code == 400 and error_code(response) == "0x80044331"
    assert env.sim.rows("account") == []
    (acc,) = seed_accounts(env, 1)
    response = dv.post("accounts/Microsoft.Dynamics.CRM.UpdateMultiple", {"Targets": [
        {"accountid": acc, "name": "Changed", "@odata.type": "Microsoft.Dynamics.CRM.account"},
        {"accountid": str(uuid.uuid4()), "name": "Missing", "@odata.type": "Microsoft.Dynamics.CRM.account"},
    ]})
    assert response.status_code == 404 and error_code(response) == "0x80040217"
    assert env.sim.get("account", acc)["name"] == "Account 000"
    untyped = dv.post("accounts/Microsoft.Dynamics.CRM.CreateMultiple", {"Targets": [{"name": "No type"}]})
    assert untyped.status_code == 400
    fresh = str(uuid.uuid4())
    duplicate = dv.post("accounts/Microsoft.Dynamics.CRM.CreateMultiple", {"Targets": [
        {"accountid": fresh, "name": "New", "@odata.type": "Microsoft.Dynamics.CRM.account"},
        {"accountid": acc, "name": "Again", "@odata.type": "Microsoft.Dynamics.CRM.account"},
    ]})
    assert duplicate.status_code == 412 and error_code(duplicate) == "0x80040237"  # a repeated create
    assert env.sim.get("account", fresh) is None and env.sim.get("account", acc)["name"] == "Account 000"


# --------------------------------------------------------------------------- failure injection

def test_injected_throttling_and_server_errors(env, dv):
    env.sim.faults.fail(429, times=2, retry_after=5, path_contains="/accounts")
    for _ in range(2):
        response = dv.get("accounts")
        assert response.status_code == 429
        assert response.headers["Retry-After"] == "5"
        assert response.json()["error"] == {
            "code": "0x80072322",
            "message": "Number of requests exceeded the limit of 6000 over time window of 300 seconds."}
    assert dv.get("accounts").status_code == 200
    env.sim.faults.fail(503, methods=("POST",))
    assert dv.get("accounts").status_code == 200
    failed = dv.post("accounts", {"name": "x"})
    assert failed.status_code == 503 and failed.json()["error"]["code"]
    assert env.sim.rows("account") == []
    admin = env.session.post(f"{env.dv_url}/_sim/faults", json={"fail": [{"status": 500}]})
    assert admin.status_code == 200
    assert dv.get("WhoAmI").status_code == 500
    assert dv.get("WhoAmI").status_code == 200


# --------------------------------------------------------------------------- $batch

def batch_body(boundary: str, parts: list[str]) -> str:
    return "".join(f"--{boundary}\r\n{p}\r\n" for p in parts) + f"--{boundary}--\r\n"


def http_part(request_line: str, body: dict | None = None, headers: dict | None = None, content_id: str | None = None):
    lines = ["Content-Type: application/http", "Content-Transfer-Encoding: binary"]
    if content_id:
        lines.append(f"Content-ID: {content_id}")
    lines += ["", request_line]
    for key, value in (headers or {}).items():
        lines.append(f"{key}: {value}")
    if body is not None:
        lines.append("Content-Type: application/json; type=entry")
    lines += ["", json.dumps(body) if body is not None else ""]
    return "\r\n".join(lines)


def test_batch_with_a_changeset_content_id_references_and_raw_spaces(env, dv):
    seed_accounts(env, 3)
    changeset = batch_body("changeset_abc", [
        http_part(f"POST {env.api}/contacts HTTP/1.1", {"firstname": "Ann", "lastname": "Batch"}, content_id="1"),
        http_part(f"POST {env.api}/accounts HTTP/1.1", {"name": "Batch Co", "primarycontactid@odata.bind": "$1"},
                  content_id="2"),
        http_part("PATCH $1 HTTP/1.1", {"jobtitle": "Buyer"}, content_id="3"),
    ])
    body = batch_body("batch_xyz", [
        "Content-Type: multipart/mixed; boundary=changeset_abc\r\n\r\n" + changeset,
        http_part(f"GET {env.api}/accounts?$select=name&$filter=startswith(name, 'Account') HTTP/1.1"),
        http_part("GET /api/data/v9.2/WhoAmI HTTP/1.1"),
    ])
    response = dv.post("$batch", data=body, headers={"Content-Type": "multipart/mixed; boundary=batch_xyz"})
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("multipart/mixed; boundary=batchresponse_")
    text = response.text
    assert text.count("HTTP/1.1 204 No Content") == 3 and text.count("HTTP/1.1 200 OK") == 2
    assert "changesetresponse_" in text and "Content-ID: 2" in text
    (account,) = [a for a in env.sim.rows("account") if a["name"] == "Batch Co"]
    contact = env.sim.get("contact", account["primarycontactid"])
    assert contact["fullname"] == "Ann Batch" and contact["jobtitle"] == "Buyer"
    assert '"Account 002"' in text and APP_USER in text


def test_batch_changeset_rolls_back_and_stops_at_the_first_failure(env, dv):
    changeset = batch_body("cs", [
        http_part(f"POST {env.api}/accounts HTTP/1.1", {"name": "Will roll back"}, content_id="1"),
        http_part(f"POST {env.api}/accounts HTTP/1.1", {"name": "y" * 300}, content_id="2"),
    ])
    body = batch_body("b", ["Content-Type: multipart/mixed; boundary=cs\r\n\r\n" + changeset,
                            http_part(f"POST {env.api}/accounts HTTP/1.1", {"name": "Never reached"})])
    response = dv.post("$batch", data=body, headers={"Content-Type": "multipart/mixed; boundary=b"})
    assert response.status_code == 400
    assert "0x80044331" in response.text and "HTTP/1.1 400 Bad Request" in response.text
    assert env.sim.rows("account") == []

    body = batch_body("b", [http_part(f"POST {env.api}/accounts HTTP/1.1", {"name": "z" * 300}),
                            http_part(f"POST {env.api}/accounts HTTP/1.1", {"name": "Reached"})])
    response = dv.post("$batch", data=body, headers={"Content-Type": "multipart/mixed; boundary=b",
                                                     "Prefer": "odata.continue-on-error"})
    assert response.status_code == 200
    assert "HTTP/1.1 400 Bad Request" in response.text and "HTTP/1.1 204 No Content" in response.text
    assert [a["name"] for a in env.sim.rows("account")] == ["Reached"]
    assert dv.post("$batch", data="not multipart", headers={"Content-Type": "text/plain"}).status_code == 400



def test_batch_of_version_checked_updates_answers_each_row_and_a_scripted_fault_hits_one_part(env, dv):
    seed_accounts(env, 4)
    rows = sorted(env.sim.rows("account"), key=lambda a: a["name"])
    etags = {a["accountid"]: dv.get(f"accounts({a['accountid']})").json()["@odata.etag"] for a in rows}
    env.sim.update("account", rows[1]["accountid"], {"telephone1": "changed meanwhile"})
    env.sim.faults.fail(400, path_contains=f"/accounts({rows[2]['accountid']})", methods=("PATCH",),
                        body={"error": {"code": "0x80040265", "message": "A plug-in refused it."}})
    prefer = {"Prefer": "return=representation"}
    parts = [http_part(f"PATCH {env.api}/accounts({a['accountid']})?$select=name,telephone1 HTTP/1.1",
                       {"telephone1": f"new {i}"}, {"If-Match": etags[a["accountid"]], **prefer})
             for i, a in enumerate(rows[:3])]
    parts.append(http_part(f"PATCH {env.api}/accounts({uuid.uuid4()}) HTTP/1.1", {"name": "never created"},
                           {"If-Match": "*", **prefer}))
    response = dv.post("$batch", data=batch_body("b", parts), headers={
        "Content-Type": "multipart/mixed; boundary=b", "Prefer": "odata.continue-on-error"})
    assert response.status_code == 200
    statuses = re.findall(r"HTTP/1.1 (\d+)", response.text)
    assert statuses == ["200", "412", "400", "404"]
    # the updated row comes back as stored, its new version in the body and the ETag header
    first = env.sim.get("account", rows[0]["accountid"])
    assert first["telephone1"] == "new 0" and f'"telephone1":"new 0"' in response.text
    new_etag = dv.get(f"accounts({rows[0]['accountid']})").json()["@odata.etag"]
    assert new_etag != etags[rows[0]["accountid"]] and f"ETag: {new_etag}" in response.text
    assert "0x80060882" in response.text and "A plug-in refused it." in response.text
    assert env.sim.get("account", rows[1]["accountid"])["telephone1"] == "changed meanwhile"
    assert env.sim.get("account", rows[2]["accountid"]).get("telephone1") != "new 2"
    assert len(env.sim.rows("account")) == 4
    assert [m for m, p in env.sim.faults.requests if p.endswith("$batch")] == ["POST"]   # one request in all


# --------------------------------------------------------------------------- admin endpoints

def test_admin_endpoints(env, dv):
    base = f"{env.dv_url}/_sim"
    ids = env.session.post(f"{base}/seed", json={"entity": "account", "rows": [
        {"name": "Seeded", "modifiedon": "2023-01-02T03:04:05Z", "ownerid": APP_USER}], "as_user": APP_USER}).json()["ids"]
    (row,) = env.session.get(f"{base}/rows/account").json()["value"]
    assert row["accountid"] == ids[0] and row["modifiedon"] == "2023-01-02T03:04:05Z"
    assert row["createdby"] == APP_USER
    assert env.session.post(f"{base}/update", json={"entity": "account", "id": ids[0],
                                                     "values": {"name": "Seeded 2"}}).status_code == 200
    assert env.sim.get("account", ids[0])["name"] == "Seeded 2"
    assert env.session.post(f"{base}/delete", json={"entity": "account", "id": ids[0]}).status_code == 200
    assert env.sim.rows("account") == []
    bad = env.session.post(f"{base}/seed", json={"entity": "account", "rows": [{"name": "x" * 500}]})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "0x80044331"
    assert env.session.post(f"{base}/reset").status_code == 200
    assert env.sim.rows("systemuser") == []


# --------------------------------------------------------------------------- Microsoft's SDK, unchanged

class MsalCredential:
    """What the SDK needs from a credential: `get_token(*scopes)` -> AccessToken (MSAL caches the token)."""

    def __init__(self, app: msal.ConfidentialClientApplication):
        self.app = app
        self.calls = 0

    def get_token(self, *scopes, **kwargs):
        from azure.core.credentials import AccessToken

        self.calls += 1
        result = self.app.acquire_token_for_client(scopes=list(scopes))
        assert "access_token" in result, result
        return AccessToken(result["access_token"], int(time.time()) + int(result["expires_in"]))


def test_the_dataverse_sdk_works_unchanged(env, dv, monkeypatch):
    from PowerPlatform.Dataverse.client import DataverseClient
    from PowerPlatform.Dataverse.core.errors import HttpError
    from PowerPlatform.Dataverse.models.filters import col

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(env.ca.combined_bundle()))
    credential = MsalCredential(env.msal_app(env.client))
    contact = env.sim.create("contact", {"firstname": "Pat", "lastname": "Primary"})
    with DataverseClient(env.dv_url, credential) as client:
        one = client.records.create("account", {"name": "SDK One", "accountnumber": "S1",
                                                "paymenttermscode": "Net 45",  # a label: the SDK maps it to 3
                                                "primarycontactid@odata.bind": f"/contacts({contact})"})
        many = client.records.create("account", [{"name": f"SDK Bulk {i}", "accountnumber": f"B{i}"} for i in range(3)])
        assert GUID.fullmatch(one) and len(many) == 3 and all(GUID.fullmatch(i) for i in many)
        row = env.sim.get("account", one)
        assert row["paymenttermscode"] == 3 and row["primarycontactid"] == contact and row["ownerid"] == APP_USER

        record = client.records.retrieve("account", one, select=["name", "accountnumber"])
        assert record["name"] == "SDK One" and record.etag and record.etag.startswith('W/"')
        assert record.id == one
        assert client.records.retrieve("account", str(uuid.uuid4())) is None

        pages = list(client.records.list_pages("account", select=["name"], filter="startswith(name,'sdk bulk')",
                                               orderby=["name desc"], page_size=2))
        assert [len(p) for p in pages] == [2, 1]
        assert [r["name"] for p in pages for r in p] == ["SDK Bulk 2", "SDK Bulk 1", "SDK Bulk 0"]
        found = client.records.list("account", filter=col("accountnumber").in_(["B0", "S1"]) & (col("statecode") == 0),
                                    select=["accountnumber"], orderby=["accountnumber"])
        assert [r["accountnumber"] for r in found] == ["B0", "S1"]

        client.records.update("account", one, {"telephone1": "555-0142", "customertypecode": "Customer"})
        client.records.update("account", many, {"statecode": 1, "statuscode": 2})
        assert env.sim.get("account", one)["telephone1"] == "555-0142"
        assert env.sim.get("account", one)["customertypecode"] == 3
        assert {env.sim.get("account", i)["statecode"] for i in many} == {1}

        client.records.delete("account", one)
        assert env.sim.get("account", one) is None
        with pytest.raises(HttpError) as missing:
            client.records.update("account", one, {"name": "gone"})
        assert missing.value.status_code == 404 and missing.value.details["service_error_code"] == "0x80040217"
        client.records.delete("account", many)  # BulkDelete
        assert env.sim.rows("account") == []

        info = client.tables.get("contact")
        assert info is not None and info["entity_set_name"] == "contacts" and info["primary_name_attribute"] == "fullname"
        tables = client.tables.list(filter="OwnershipType eq 'UserOwned'", select=["LogicalName", "EntitySetName"])
        assert {t["LogicalName"] for t in tables} == {"account", "contact", "opportunity", "quote", "quotedetail",
                                                      "salesorder", "salesorderdetail", "invoice", "invoicedetail",
                                                      "annotation", "bcbi_company"}

        env.sim.faults.fail(429, retry_after=7)
        with pytest.raises(HttpError) as throttled:
            client.records.create("account", {"name": "throttled"})
        assert throttled.value.status_code == 429 and throttled.value.details["retry_after"] == 7
        assert throttled.value.is_transient
    assert credential.calls > 0


def test_the_sdk_batch_with_a_changeset(env, dv, monkeypatch):
    from PowerPlatform.Dataverse.client import DataverseClient

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(env.ca.combined_bundle()))
    (existing,) = seed_accounts(env, 1)
    with DataverseClient(env.dv_url, MsalCredential(env.msal_app(env.client))) as client:
        batch = client.batch.new()
        batch.records.create("account", {"name": "Batch Plain"})
        with batch.changeset() as cs:
            ref = cs.records.create("contact", {"firstname": "Alice", "lastname": "Batch"})
            cs.records.update("account", existing, {"primarycontactid@odata.bind": ref})
        batch.records.retrieve("account", existing, select=["name", "_primarycontactid_value"])
        batch.records.list("account", filter="statecode eq 0", select=["name"])
        result = batch.execute()
        assert not result.has_errors, [(r.status_code, r.error_message) for r in result.failed]
        assert len(result.entity_ids) >= 2
        contact_id = env.sim.get("account", existing)["primarycontactid"]
        assert env.sim.get("contact", contact_id)["fullname"] == "Alice Batch"
        assert {a["name"] for a in env.sim.rows("account")} == {"Account 000", "Batch Plain"}

        failing = client.batch.new()
        with failing.changeset() as cs:
            cs.records.create("account", {"name": "Rolled back"})
            cs.records.create("account", {"name": "n" * 161})
        result = failing.execute(continue_on_error=True)
        assert result.has_errors and result.failed[0].error_code == "0x80044331"
        assert "Rolled back" not in {a["name"] for a in env.sim.rows("account")}


# --------------------------------------------------------------------------- $expand, change tracking, alternate keys

def test_expand_single_valued_navigation_properties(env, dv):
    contact = env.sim.create("contact", {"firstname": "Exp", "lastname": "Anded", "emailaddress1": "e@x.example"})
    acc = env.sim.create("account", {"name": "Expanding", "primarycontactid": contact, "ownerid": APP_USER})
    body = dv.get(f"accounts({acc})?$select=name&$expand=primarycontactid($select=fullname,emailaddress1),"
                  f"ownerid($select=fullname),parentaccountid").json()
    assert body["primarycontactid"]["fullname"] == "Exp Anded" and body["primarycontactid"]["contactid"] == contact
    assert body["primarycontactid"]["@odata.etag"].startswith('W/"')
    assert body["ownerid"]["@odata.type"] == "#Microsoft.Dynamics.CRM.systemuser"
    assert body["ownerid"]["systemuserid"] == APP_USER and body["ownerid"]["fullname"] == "# bcsync Integration"
    assert body["parentaccountid"] is None
    listed = dv.get("accounts?$select=name&$expand=primarycontactid($select=fullname)").json()["value"]
    assert listed[0]["primarycontactid"]["fullname"] == "Exp Anded"
    assert dv.get(f"accounts({acc})?$expand=nosuchnav").status_code == 400
    assert dv.get(f"accounts({acc})?$expand=primarycontactid($select=nosuch)").status_code == 400


def test_change_tracking_initial_sync_and_deltas(env, dv):
    ids = seed_accounts(env, 5)
    prefer = {"Prefer": "odata.track-changes,odata.maxpagesize=2"}
    body = dv.get("accounts?$select=name,accountnumber", headers=prefer).json()
    seen = [r["accountid"] for r in body["value"]]
    env.sim.update("account", ids[4], {"name": "Changed during the initial sync"})
    while "@odata.nextLink" in body:
        assert "@odata.deltaLink" not in body
        response = dv.get(body["@odata.nextLink"], headers=prefer)
        assert "odata.track-changes" in response.headers["Preference-Applied"]
        body = response.json()
        seen += [r["accountid"] for r in body["value"]]
    assert sorted(seen) == sorted(ids)
    delta_link = body["@odata.deltaLink"]
    assert delta_link.startswith(f"{env.api}/accounts?$select=name,accountnumber&$deltatoken=")

    env.clock.advance(60)
    new = env.sim.create("account", {"name": "New"})
    env.sim.update("account", ids[0], {"name": "Updated"})
    env.sim.delete("account", ids[1])
    gone = env.sim.create("account", {"name": "Created and deleted"})
    env.sim.delete("account", gone)
    delta = dv.get(delta_link).json()
    assert delta["@odata.context"] == f"{env.api}/$metadata#accounts(name,accountnumber)/$delta"
    changed = [r.get("accountid") or r["id"] for r in delta["value"]]
    # the row changed during the initial sync comes again (the token predates it), then the new changes by version
    assert changed == [ids[4], new, ids[0], ids[1], gone]
    assert delta["value"][-1] == {"@odata.context": f"{env.api}/$metadata#accounts/$deletedEntity", "id": gone,
                                  "reason": "deleted"}
    assert dv.get(delta["@odata.deltaLink"]).json()["value"] == []
    assert dv.get(delta_link.replace("accounts?", "accounts/$count?")).text == "5"

    refused = dv.get("accounts?$filter=statecode eq 0", headers={"Prefer": "odata.track-changes"})
    assert refused.status_code == 400 and "isn't supported when Change Tracking is enabled" in refused.text
    env.clock.advance(8 * 86400)
    expired = dv.get(delta["@odata.deltaLink"])
    assert expired.status_code == 400 and error_code(expired) == "0x80044352"


def test_a_delta_read_pages_by_maxpagesize_and_misses_nothing_changed_while_it_pages(env, dv):
    ids = seed_accounts(env, 3)
    body = dv.get("accounts?$select=name,modifiedon,_modifiedby_value",
                  headers={"Prefer": "odata.track-changes"}).json()
    link = body["@odata.deltaLink"]
    for i in ids:
        env.sim.update("account", i, {"name": f"Changed {i}"})
    env.sim.delete("account", ids[2])
    page_of_two = {"Prefer": "odata.maxpagesize=2"}
    first = dv.get(link, headers=page_of_two)
    assert first.headers["Preference-Applied"] == "odata.maxpagesize=2"
    first = first.json()
    assert [r["accountid"] for r in first["value"]] == ids[:2] and "@odata.deltaLink" not in first
    assert set(first["value"][0]) >= {"@odata.etag", "accountid", "name", "modifiedon", "_modifiedby_value"}
    env.sim.update("account", ids[0], {"name": "Changed again while paging"})
    second = dv.get(first["@odata.nextLink"], headers=page_of_two).json()
    # the row changed meanwhile comes again after the others, then the deletion, on the last page
    assert [r.get("accountid") or r["id"] for r in second["value"]] == [ids[0], ids[2]]
    assert second["value"][-1]["reason"] == "deleted" and "@odata.nextLink" not in second
    # the next delta starts where this read began: the row changed while it paged comes once more, alone
    again = dv.get(second["@odata.deltaLink"]).json()
    assert [r["accountid"] for r in again["value"]] == [ids[0]]
    assert dv.get(again["@odata.deltaLink"]).json()["value"] == []


def test_alternate_keys_for_addressing_and_sdk_upsert(env, dv, monkeypatch):
    from PowerPlatform.Dataverse.client import DataverseClient
    from PowerPlatform.Dataverse.models.upsert import UpsertItem

    assert dv.get("accounts(accountnumber='A000')").status_code == 400  # no alternate key out of the box
    env.sim.add_alternate_key("account", ["accountnumber"])
    try:
        (acc,) = seed_accounts(env, 1)
        assert dv.get("accounts(accountnumber='A000')?$select=name").json()["accountid"] == acc
        assert dv.get("accounts(accountnumber='NOPE')").status_code == 404
        keys = dv.get("EntityDefinitions(LogicalName='account')/Keys").json()["value"]
        assert keys[0]["KeyAttributes"] == ["accountnumber"]
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(env.ca.combined_bundle()))
        with DataverseClient(env.dv_url, MsalCredential(env.msal_app(env.client))) as client:
            client.records.upsert("account", [UpsertItem(alternate_key={"accountnumber": "A000"},
                                                         record={"name": "Upserted by key"})])
            client.records.upsert("account", [
                UpsertItem(alternate_key={"accountnumber": "K1"}, record={"name": "Key One"}),
                UpsertItem(alternate_key={"accountnumber": "K2"}, record={"name": "Key Two"}),
            ])
        assert env.sim.get("account", acc)["name"] == "Upserted by key"
        by_number = {a["accountnumber"]: a["name"] for a in env.sim.rows("account")}
        assert by_number == {"A000": "Upserted by key", "K1": "Key One", "K2": "Key Two"}

        # the key column in the body as well as in @odata.id: taken when the row exists, refused when it is created
        def upsert(number, name):
            return dv.post("accounts/Microsoft.Dynamics.CRM.UpsertMultiple", {"Targets": [
                {"@odata.type": "Microsoft.Dynamics.CRM.account", "@odata.id": f"accounts(accountnumber='{number}')",
                 "accountnumber": number, "name": name}]})
        assert upsert("K1", "Key One again").status_code == 204
        refused = upsert("K3", "Key Three")
        assert refused.status_code == 400 and refused.json()["error"] == {
            "code": "0x80040216", "message": "An unexpected error occurred."}
        assert sorted(a["accountnumber"] for a in env.sim.rows("account")) == ["A000", "K1", "K2"]
    finally:
        env.sim.schema["account"].alternate_keys.clear()


# --------------------------------------------------------------------------- scale and threads

def test_fifty_thousand_rows_page_through_quickly(env, dv):
    env.sim.seed("account", [{"name": f"Bulk {i:05d}", "accountnumber": f"N{i:05d}"} for i in range(50000)])
    started = time.perf_counter()
    url, total, pages = "accounts?$select=name,accountnumber&$orderby=name desc", 0, 0
    last = None
    while url:
        response = dv.get(url, headers={"Prefer": "odata.maxpagesize=5000"})
        body = response.json()
        names = [r["name"] for r in body["value"]]
        assert last is None or names[0] < last
        last = names[-1]
        total, pages = total + len(names), pages + 1
        url = body.get("@odata.nextLink")
    elapsed = time.perf_counter() - started
    assert (total, pages) == (50000, 10)
    assert elapsed < 10, f"paging 50,000 rows took {elapsed:.1f}s"
    assert dv.get("accounts?$count=true&$top=1").json()["@odata.count"] == 5000


def test_concurrent_writers_and_readers(env, dv):
    from concurrent.futures import ThreadPoolExecutor

    def work(worker: int) -> list[int]:
        statuses = []
        for i in range(10):
            statuses.append(dv.post("accounts", {"name": f"W{worker}-{i}"}).status_code)
            statuses.append(dv.get("accounts?$select=name&$top=5").status_code)
        return statuses

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = [s for statuses in pool.map(work, range(6)) for s in statuses]
    assert set(results) == {200, 204}
    rows = env.sim.rows("account")
    assert len(rows) == 60
    assert len({r["versionnumber"] for r in rows}) == 60


# --------------------------------------------------------------------------- odds and ends

def test_single_properties_counts_links_and_the_service_document(env, dv):
    parent = env.sim.create("account", {"name": "Parent Co"})
    child = env.sim.create("contact", {"lastname": "Child", "parentcustomerid": parent})
    assert dv.get(f"accounts({parent})/name").json()["value"] == "Parent Co"
    assert dv.get(f"accounts({parent})/name/$value").text == "Parent Co"
    assert dv.request("PUT", f"accounts({parent})/name", json={"value": "Renamed Co"}).status_code == 204
    assert env.sim.get("account", parent)["name"] == "Renamed Co"
    assert dv.get(f"contacts({child})/_parentcustomerid_value").json()["value"] == parent
    assert dv.get("accounts/$count").text == "1"
    assert dv.get("contacts/$count?$filter=lastname eq 'nobody'").text == "0"

    # deleting a row removes the links pointing at it ("Remove Link"), and that is a change of the child
    before = env.sim.get("contact", child)["versionnumber"]
    assert dv.delete(f"accounts({parent})").status_code == 204
    after = env.sim.get("contact", child)
    assert after["parentcustomerid"] is None and after["versionnumber"] > before
    assert after["modifiedby"] == APP_USER

    assert dv.delete(f"contacts({child})/parentcustomerid_account/$ref").status_code == 204
    doc = dv.get("").json()
    assert {"name": "accounts", "kind": "EntitySet", "url": "accounts"} in doc["value"]
    assert Api(env, dv.token).get(f"{env.dv_url}/api/data/v9.1/WhoAmI").json()["UserId"] == APP_USER


def test_in_process_api_keeps_system_columns_when_told(env, dv):
    user = env.sim.create("systemuser", {"fullname": "Seeded Name", "azureactivedirectoryobjectid": str(uuid.uuid4())})
    assert env.sim.get("systemuser", user)["fullname"] == "Seeded Name"
    stamp = dt.datetime(2023, 3, 4, 5, 6, 7, 890000, tzinfo=dt.timezone.utc)
    acc = env.sim.create("account", {"name": "Old", "createdon": stamp, "modifiedon": stamp}, as_user=user)
    row = env.sim.get("account", acc)
    assert row["createdon"] == row["modifiedon"] == stamp.replace(microsecond=0)
    assert row["createdby"] == user and row["ownerid"] == user
    env.clock.advance(10)
    env.sim.update("account", acc, {"telephone1": "1"}, as_user=APP_USER)
    row2 = env.sim.get("account", acc)
    assert row2["modifiedby"] == APP_USER and row2["createdby"] == user
    assert row2["modifiedon"] == env.clock.now and row2["versionnumber"] > row["versionnumber"]
    migrated = dv.post("accounts?$select=createdon", {"name": "Migrated", "overriddencreatedon": "2020-02-02T02:02:02Z"},
                       headers={"Prefer": "return=representation"}).json()
    assert migrated["createdon"] == "2020-02-02T02:02:02Z"
    with pytest.raises(Exception):
        env.sim.create("account", {"name": "x" * 161})
    with pytest.raises(Exception):
        env.sim.create("account", {"ownerid": str(uuid.uuid4())})
    dup = dv.post("transactioncurrencies", {"isocurrencycode": "usd", "currencyname": "Again", "currencysymbol": "$",
                                            "currencyprecision": 2, "exchangerate": 1})
    assert dup.status_code == 400 and error_code(dup) == "0x80048cf3"


def test_lookups_by_chunks_of_ids_are_exact(env, dv):
    """`id eq a or id eq b ...` (how clients fetch known rows) is served from the key, with the rest of the filter."""
    ids = seed_accounts(env, 300)
    env.sim.update("account", ids[7], {"statecode": 1, "statuscode": 2})
    wanted = ids[:10] + [str(uuid.uuid4())]
    expr = " or ".join(f"accountid eq {i}" for i in wanted)
    rows = dv.get("accounts", params={"$select": "name", "$filter": f"({expr}) and statecode eq 0"}).json()["value"]
    assert sorted(r["accountid"] for r in rows) == sorted(ids[:7] + ids[8:10])
    numbers = " or ".join(f"accountnumber eq 'a{i:03d}'" for i in (1, 2, 299))
    rows = dv.get("accounts", params={"$select": "accountnumber", "$filter": numbers}).json()["value"]
    assert sorted(r["accountnumber"] for r in rows) == ["A001", "A002", "A299"]
