"""The Business Central simulator over real HTTPS, with real MSAL tokens from the Entra simulator."""

from __future__ import annotations

import datetime as dt
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import quote

import msal
import pytest
import requests

from simulators.businesscentral import BCError, BusinessCentralSimulator
from simulators.tls import LocalCA
from simulators.token import Client, TokenIssuer, User

SCOPE = "https://api.businesscentral.dynamics.com/.default"
EMPTY_GUID = "00000000-0000-0000-0000-000000000000"
DATETIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,3})?Z$")


@dataclass
class Env:
    ca: LocalCA
    issuer: TokenIssuer
    token_url: str
    sim: BusinessCentralSimulator
    url: str  # server root, e.g. https://127.0.0.1:port
    client: Client
    token: str

    @property
    def base(self) -> str:
        return self.url + self.sim.root_path

    @property
    def api(self) -> str:
        return f"{self.base}/api/v2.0"

    @property
    def company(self) -> str:
        return f"{self.api}/companies({self.sim.company_id})"

    @property
    def odata(self) -> str:
        return f"{self.base}/ODataV4/Company('{quote(self.sim.company_name, safe='')}')"

    def session(self, token: str | None = None) -> requests.Session:
        session = requests.Session()
        session.trust_env = False  # REQUESTS_CA_BUNDLE would override `verify`
        session.verify = str(self.ca.ca_file)
        if token is not None:
            session.headers["Authorization"] = f"Bearer {token}"
        return session

    def app_token(self, client_id: str, secret: str, scope: str = SCOPE) -> str:
        app = msal.ConfidentialClientApplication(client_id, client_credential=secret,
                                                 authority=f"{self.token_url}/{self.issuer.tenant_id}",
                                                 instance_discovery=False, http_client=self.session())
        result = app.acquire_token_for_client(scopes=[scope])
        assert "access_token" in result, result
        return result["access_token"]


@pytest.fixture(scope="module")
def env(tenant):
    sim = BusinessCentralSimulator(tenant.issuer)
    bc_server = tenant.serve(sim.app)
    client = tenant.issuer.add_client(Client(str(uuid.uuid4()), secret="bc-secret"))
    sim.register_application(client.client_id)
    env = Env(tenant.ca, tenant.issuer, tenant.token_url, sim, bc_server.url, client, "")
    env.token = env.app_token(client.client_id, "bc-secret")
    yield env
    bc_server.stop()


@pytest.fixture
def bc(env) -> requests.Session:
    env.sim.reset()
    env.sim.max_page_size = 20_000
    return env.session(env.token)


def when(text: str) -> dt.datetime:
    """Parse a wire datetime. BC drops trailing zeros of the fraction (`.27Z`), so never compare the strings."""
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def error_of(response: requests.Response) -> tuple[int, str, str]:
    body = response.json()["error"]
    assert re.search(r"  CorrelationId:  [0-9a-f-]{36}\.$", body["message"]), body["message"]
    return response.status_code, body["code"], body["message"].split("  CorrelationId:")[0]


# -- authentication -----------------------------------------------------------------------------------

def test_requests_need_a_valid_token_of_a_registered_application(env, bc):
    anonymous = env.session()
    response = anonymous.get(f"{env.api}/companies")
    assert error_of(response) == (401, "Authentication_InvalidCredentials", "The server has rejected the client credentials.")
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")

    stranger = env.issuer.add_client(Client(str(uuid.uuid4()), secret="other"))
    unregistered = env.session(env.app_token(stranger.client_id, "other"))
    assert unregistered.get(f"{env.api}/companies").status_code == 401

    wrong_audience = env.session(env.app_token(env.client.client_id, "bc-secret", "https://org.crm.dynamics.com/.default"))
    assert wrong_audience.get(f"{env.api}/companies").status_code == 401

    env.sim.register_application(stranger.client_id)
    assert unregistered.get(f"{env.api}/companies").status_code == 200


def test_a_registered_user_with_a_delegated_token_is_accepted_and_recorded_as_modifier(env, bc):
    user = env.issuer.add_user(User("ann@contoso.example", "pw", name="Ann"))
    # the resource-owner password grant, posted as MSAL would (MSAL's own user-realm lookup needs port 443)
    result = env.session().post(f"{env.token_url}/{env.issuer.tenant_id}/oauth2/v2.0/token", data={
        "grant_type": "password", "client_id": str(uuid.uuid4()), "username": "ann@contoso.example",
        "password": "pw", "scope": SCOPE}).json()
    session = env.session(result["access_token"])
    assert session.get(f"{env.api}/companies").status_code == 401
    user_id = env.sim.register_user(user.object_id, "Ann")
    created = session.post(f"{env.company}/customers", json={"displayName": "Ann's customer"})
    assert created.status_code == 201
    assert env.sim.get("customers", created.json()["id"])["systemModifiedBy"] == user_id


def test_tenant_domain_and_unknown_environment(env, bc):
    domain_url = f"{env.url}/v2.0/contoso.onmicrosoft.com/{env.sim.environment}/api/v2.0/companies"
    assert bc.get(domain_url).status_code == 200
    status, code, _ = error_of(bc.get(f"{env.url}/v2.0/{env.sim.tenant_id}/nosuchenv/api/v2.0/companies"))
    assert status == 404


# -- companies and metadata -----------------------------------------------------------------------------

def test_companies_lists_the_company_with_its_fields(env, bc):
    response = bc.get(f"{env.api}/companies")
    assert response.status_code == 200
    assert response.headers["OData-Version"] == "4.0"
    body = response.json()
    assert body["@odata.context"] == f"{env.api}/$metadata#companies"
    [company] = body["value"]
    assert company["id"] == env.sim.company_id
    assert company["name"] == company["displayName"] == "CRONUS USA, Inc."
    assert set(company) == {"@odata.etag", "id", "systemVersion", "timestamp", "name", "displayName",
                            "businessProfileId", "systemCreatedAt", "systemCreatedBy", "systemModifiedAt",
                            "systemModifiedBy"}
    assert DATETIME.match(company["systemCreatedAt"])
    assert company["systemVersion"].startswith("26.")  # it serves salespeoplePurchasers as 26.0 has it
    single = bc.get(f"{env.api}/companies({env.sim.company_id})")
    assert single.json()["@odata.context"].endswith("#companies/$entity")
    assert error_of(bc.post(f"{env.api}/companies", json={"name": "X"}))[:2] == (405, "BadRequest_MethodNotAllowed")
    metadata = bc.get(f"{env.api}/$metadata")
    assert metadata.status_code == 200 and '<EntitySet Name="customers"' in metadata.text


# -- create and read ------------------------------------------------------------------------------------

def test_create_returns_201_with_the_full_entity_and_numbers_from_the_series(env, bc):
    first = bc.post(f"{env.company}/customers", json={"displayName": "Adatum Corporation", "city": "Atlanta"})
    assert first.status_code == 201
    body = first.json()
    assert body["@odata.context"] == f"{env.api}/$metadata#companies({env.sim.company_id})/customers/$entity"
    assert body["number"] == "C00010"
    assert body["blocked"] == "_x0020_"
    assert body["type"] == "Company"
    assert body["currencyId"] == EMPTY_GUID and body["currencyCode"] == "USD"
    assert body["balanceDue"] == 0 and body["taxLiable"] is False
    assert re.fullmatch(r'W/"[A-Za-z0-9+/=]+"', body["@odata.etag"])
    assert first.headers["ETag"] == body["@odata.etag"]
    assert first.headers["Location"] == f"{env.company}/customers({body['id']})"
    assert DATETIME.match(body["lastModifiedDateTime"])
    assert "shippingAgentCode" not in body
    second = bc.post(f"{env.company}/customers", json={"displayName": "Trey Research"}).json()
    assert second["number"] == "C00020"
    own = bc.post(f"{env.company}/customers", json={"number": "k-100", "displayName": "Own number"}).json()
    assert own["number"] == "K-100"

    read = bc.get(f"{env.company}/customers({body['id']})")
    assert read.status_code == 200 and read.headers["ETag"] == body["@odata.etag"]
    assert read.json()["@odata.context"].endswith("/customers/$entity")
    # the company may also be given as a query parameter
    listed = bc.get(f"{env.api}/customers", params={"company": env.sim.company_id}).json()
    assert [c["number"] for c in listed["value"]] == ["C00010", "C00020", "K-100"]
    # the app's BC user is recorded as the modifier
    assert env.sim.get("customers", body["id"])["systemModifiedBy"] == env.sim.user_id_for(env.client.client_id)


def test_filter_with_escaped_enums_datetimes_and_or_on_one_field_only(env, bc):
    ids = env.sim.seed("customers", [
        {"displayName": "Alpha", "blocked": " ", "city": "Oslo", "lastModifiedDateTime": "2024-05-01T12:00:00.000Z"},
        {"displayName": "Bravo", "blocked": "Ship", "city": "Rome", "lastModifiedDateTime": "2024-05-01T12:00:00.003Z"},
        {"displayName": "Charlie", "blocked": "All", "city": "Oslo", "lastModifiedDateTime": "2024-05-01T12:00:00.007Z"},
    ])
    url = f"{env.company}/customers"

    def numbers(**params):
        response = bc.get(url, params=params)
        assert response.status_code == 200, response.text
        return [c["displayName"] for c in response.json()["value"]]

    assert numbers(**{"$filter": "blocked eq '_x0020_'"}) == ["Alpha"]
    assert numbers(**{"$filter": "blocked eq 'Ship' or blocked eq 'All'"}) == ["Bravo", "Charlie"]
    assert numbers(**{"$filter": "city eq 'Oslo' and blocked ne '_x0020_'"}) == ["Charlie"]
    assert numbers(**{"$filter": "startswith(displayName,'br') or contains(displayName,'arl')"}) == ["Bravo", "Charlie"]
    assert numbers(**{"$filter": f"id eq {ids[1]}"}) == ["Bravo"]
    assert numbers(**{"$filter": f"currencyId eq {EMPTY_GUID}"}) == ["Alpha", "Bravo", "Charlie"]

    middle = env.sim.get("customers", ids[1])["lastModifiedDateTime"]
    literal = middle.strftime("%Y-%m-%dT%H:%M:%S.") + f"{middle.microsecond // 1000:03d}Z"
    assert numbers(**{"$filter": f"lastModifiedDateTime gt {literal}"}) == ["Charlie"]

    assert error_of(bc.get(url, params={"$filter": "blocked eq '_x0020_' or city eq 'Oslo'"})) == (
        501, "BadRequest_MethodNotImplemented",
        "The 'OR' operator is not supported on distinct fields on an OData filter.")
    assert error_of(bc.get(url, params={"$filter": "not (city eq 'Oslo')"})) == (
        501, "BadRequest_MethodNotImplemented", "Client requests that contain 'Not' filter options are not supported.")
    # `in` only in schema version 2.1 (BC 24 and later); otherwise an `or` chain on the one field
    assert error_of(bc.get(url, params={"$filter": "city in ('Oslo', 'Bergen')"}))[:2] == (
        501, "BadRequest_MethodNotImplemented")
    assert numbers(**{"$filter": "city in ('Oslo', 'Bergen')", "$schemaversion": "2.1"}) == \
        numbers(**{"$filter": "city eq 'Oslo' or city eq 'Bergen'"}) == ["Alpha", "Charlie"]
    assert error_of(bc.get(url, params={"$filter": "nickname eq 'x'"})) == (
        400, "BadRequest_NotFound", "Could not find a property named 'nickname' on type 'Microsoft.NAV.customer'.")
    assert error_of(bc.get(url, params={"$filter": "blocked eq ' '"}))[:2] == (400, "BadRequest")
    assert error_of(bc.get(url, params={"$filter": f"lastModifiedDateTime gt '{literal}'"}))[:2] == (400, "BadRequest")


def test_select_orderby_top_skip_and_count(env, bc):
    env.sim.seed("customers", [{"displayName": name} for name in ("Delta", "Alpha", "Echo", "Bravo", "Charlie")])
    url = f"{env.company}/customers"
    body = bc.get(url, params={"$select": "number,displayName", "$orderby": "displayName desc", "$top": "2"}).json()
    assert body["@odata.context"].endswith("/customers(number,displayName)")
    assert [set(c) for c in body["value"]] == [{"@odata.etag", "number", "displayName"}] * 2
    assert [c["displayName"] for c in body["value"]] == ["Echo", "Delta"]
    assert "@odata.nextLink" not in body
    body = bc.get(url, params={"$orderby": "displayName", "$skip": "1", "$top": "2", "$count": "true"}).json()
    assert [c["displayName"] for c in body["value"]] == ["Bravo", "Charlie"] and body["@odata.count"] == 5
    assert bc.get(f"{url}/$count").text == "5"
    env.sim.seed("customers", [{"displayName": "Foxtrot", "blocked": "All"}, {"displayName": "Golf", "blocked": "Ship"}])
    by_blocked = bc.get(url, params={"$orderby": "blocked desc,displayName", "$top": "3"}).json()["value"]
    assert [(c["blocked"], c["displayName"]) for c in by_blocked] == [  # options sort by ordinal, not by name
        ("All", "Foxtrot"), ("Ship", "Golf"), ("_x0020_", "Alpha")]
    assert error_of(bc.get(url, params={"$select": "number,nickname"}))[:2] == (400, "BadRequest_NotFound")
    assert error_of(bc.get(url, params={"$orderby": "nickname"}))[:2] == (400, "BadRequest_NotFound")


def test_paging_follows_next_links_and_never_skips_a_row_modified_between_pages(env, bc):
    ids = env.sim.seed("customers", [{"displayName": f"Customer {i:02d}",
                                      "lastModifiedDateTime": f"2024-05-01T12:00:{i:02d}Z"} for i in range(25)])
    url = f"{env.company}/customers?$filter=lastModifiedDateTime gt 2000-01-01T00:00:00Z&$orderby=lastModifiedDateTime"
    headers = {"Prefer": "odata.maxpagesize=10"}
    seen, pages = [], 0
    while url:
        response = bc.get(url, headers=headers)
        assert response.status_code == 200, response.text
        assert response.headers["Preference-Applied"] == "odata.maxpagesize=10"
        body = response.json()
        seen += [c["id"] for c in body["value"]]
        pages += 1
        if pages == 1:
            # a row already read moves to the end: offset paging would now skip the 11th row
            first = body["value"][0]
            patched = bc.patch(f"{env.company}/customers({first['id']})", json={"city": "Moved"},
                               headers={"If-Match": first["@odata.etag"]})
            assert patched.status_code == 200
        url = body.get("@odata.nextLink")
        if url:
            assert url.startswith(env.company + "/customers?") and "$skiptoken=" in url
    assert pages == 3
    assert set(seen) == set(ids)
    assert seen.count(ids[0]) == 2 and len(seen) == 26

    # server-side page limit, and $top spanning pages
    env.sim.max_page_size = 7
    body = bc.get(f"{env.company}/customers", params={"$top": "12"}).json()
    assert len(body["value"]) == 7
    rest = bc.get(body["@odata.nextLink"]).json()
    assert len(rest["value"]) == 5 and "@odata.nextLink" not in rest


# -- update and delete ------------------------------------------------------------------------------------

def test_patch_needs_if_match_returns_200_and_detects_stale_etags(env, bc):
    created = bc.post(f"{env.company}/customers", json={"displayName": "Fabrikam"}).json()
    url = f"{env.company}/customers({created['id']})"
    assert error_of(bc.patch(url, json={"city": "Redmond"})) == (
        400, "BadRequest_InvalidToken",
        "Could not validate the client concurrency token required by the service. "
        "Please provide a valid token in the client request.")
    time.sleep(0.01)  # past the clock tick of the insert: writes within one tick share a modified time
    updated = bc.patch(url, json={"city": "Redmond"}, headers={"If-Match": created["@odata.etag"]})
    assert updated.status_code == 200
    body = updated.json()
    assert body["city"] == "Redmond" and body["displayName"] == "Fabrikam"
    assert body["@odata.etag"] != created["@odata.etag"] and updated.headers["ETag"] == body["@odata.etag"]
    assert when(body["lastModifiedDateTime"]) > when(created["lastModifiedDateTime"])
    assert error_of(bc.patch(url, json={"city": "Paris"}, headers={"If-Match": created["@odata.etag"]})) == (
        409, "Request_EntityChanged", "Another user has already changed the record.")
    assert bc.patch(url, json={"city": "Paris"}, headers={"If-Match": "*"}).json()["city"] == "Paris"
    # renaming the number keeps the id
    renamed = bc.patch(url, json={"number": "C99999"}, headers={"If-Match": "*"}).json()
    assert renamed["id"] == created["id"] and renamed["number"] == "C99999"
    assert error_of(bc.patch(f"{env.company}/customers", json={"city": "x"}, headers={"If-Match": "*"}))[:2] == (
        405, "BadRequest_MethodNotAllowed")


def test_last_modified_follows_the_clock_in_sql_datetime_ticks_and_writes_may_tie(env, bc):
    frozen = dt.datetime(2024, 5, 1, 12, 0, 0, 1000, tzinfo=dt.timezone.utc)
    sim = BusinessCentralSimulator(env.issuer, clock=lambda: frozen)
    ids = sim.seed("salespeoplePurchasers", [{"code": f"S{i}"} for i in range(5)])
    times = [sim.get("salespeoplePurchasers", i)["lastModifiedDateTime"] for i in ids]
    # writes within one tick share a stamp (SQL datetime), rounded to the nearest 1/300 s: 1 ms -> 0 ms
    assert times == [frozen.replace(microsecond=0)] * 5

    # a burst of writes does not run the stamps ahead of the real clock
    before = dt.datetime.now(dt.timezone.utc)
    ids = env.sim.seed("customers", [{"displayName": f"Burst {i}"} for i in range(1000)])
    after = dt.datetime.now(dt.timezone.utc)
    stamps = [env.sim.get("customers", i)["lastModifiedDateTime"] for i in ids]
    assert before - dt.timedelta(milliseconds=2) <= min(stamps) and max(stamps) <= after + dt.timedelta(milliseconds=2)
    assert stamps == sorted(stamps) and len(set(stamps)) < len(stamps)  # in order, some tied
    assert all(t.microsecond // 1000 % 10 in (0, 3, 7) and t.microsecond % 1000 == 0 for t in stamps)


def test_rows_sharing_a_last_modified_time_page_through_once_each(env, bc):
    ids = env.sim.seed("customers", [{"displayName": f"Tied {i:02d}", "lastModifiedDateTime": "2024-05-01T12:00:00Z"}
                                     for i in range(25)])
    url = (f"{env.company}/customers?$filter=lastModifiedDateTime ge 2024-05-01T12:00:00.000Z"
           "&$orderby=lastModifiedDateTime asc")
    seen = []
    while url:
        body = bc.get(url, headers={"Prefer": "odata.maxpagesize=10"}).json()
        seen += [c["id"] for c in body["value"] if c["displayName"].startswith("Tied")]
        url = body.get("@odata.nextLink")
    assert sorted(seen) == sorted(ids)  # the page boundaries fall inside the tie: none lost, none twice


def test_delete_needs_if_match_and_returns_204(env, bc):
    created = bc.post(f"{env.company}/customers", json={"displayName": "Gone"}).json()
    url = f"{env.company}/customers({created['id']})"
    assert error_of(bc.delete(url))[:2] == (400, "BadRequest_InvalidToken")
    response = bc.delete(url, headers={"If-Match": created["@odata.etag"]})
    assert response.status_code == 204 and response.content == b""
    assert error_of(bc.get(url))[:2] == (404, "Internal_RecordNotFound")
    assert error_of(bc.delete(url, headers={"If-Match": "*"}))[:2] == (404, "Internal_RecordNotFound")
    assert error_of(bc.delete(f"{env.company}/customers", headers={"If-Match": "*"}))[:2] == (
        405, "BadRequest_MethodNotAllowed")
    assert env.sim.get("customers", created["id"]) is None


# -- validation ---------------------------------------------------------------------------------------------

def test_writes_are_validated_like_business_central(env, bc):
    url = f"{env.company}/customers"
    assert error_of(bc.post(url, json={"displayName": "X", "nickname": "x"})) == (
        400, "BadRequest", "The property 'nickname' does not exist on type 'Microsoft.NAV.customer'. "
                           "Make sure to only use property names that are defined by the type.")
    assert error_of(bc.post(url, json={"displayName": "X", "balanceDue": 5})) == (
        400, "BadRequest_InvalidOperation", "Control 'Balance Due' is read-only.")
    assert error_of(bc.post(url, json={"displayName": "X", "id": str(uuid.uuid4())}))[:2] == (
        400, "BadRequest_InvalidOperation")
    long_name = "N" * 57
    assert error_of(bc.post(url, json={"displayName": "X", "addressLine2": long_name})) == (
        400, "Application_StringExceededLength",
        f"The length of the string is 57, but it must be less than or equal to 50 characters. Value: {long_name}")
    assert error_of(bc.post(url, json={"displayName": "X", "blocked": "Sometimes"})) == (
        400, "Application_EvaluateException", "The value 'Sometimes' cannot be evaluated into type Option.")
    assert error_of(bc.post(url, json={"displayName": "X", "salespersonCode": "NOBODY"})) == (
        400, "Internal_InvalidTableRelation",
        "The field Salesperson Code of table Customer contains a value (NOBODY) that cannot be found in the "
        "related table (Salesperson/Purchaser).")
    assert error_of(bc.post(url, json={"displayName": "X", "creditLimit": "lots"}))[:2] == (400, "BadRequest")
    assert error_of(bc.post(url, json={"city": "Nameless"})) == (
        400, "Application_DialogException", 'A "displayName" must be provided.')
    assert error_of(bc.post(url, json={"displayName": "X", "email": "not an address"}))[:2] == (
        400, "Application_DialogException")
    assert error_of(bc.post(url, json={"displayName": "X", "country": "ZZ"}))[:2] == (400, "Internal_InvalidTableRelation")
    assert error_of(bc.get(f"{env.company}/vendorsAndStuff"))[:2] == (404, "BadRequest_ResourceNotFound")
    assert error_of(bc.get(f"{env.company}/customers({uuid.uuid4()})"))[:2] == (404, "Internal_RecordNotFound")

    # both spellings of an enum are accepted on write; codes are upper-cased
    assert bc.post(url, json={"displayName": "Y", "blocked": "_x0020_"}).status_code == 201
    person = bc.post(env.company + "/salespeoplePurchasers", json={"code": "jr", "displayName": "John Roberts"})
    assert person.status_code == 201 and person.json()["code"] == "JR"
    assert bc.post(url, json={"displayName": "Z", "salespersonCode": "jr", "blocked": "Invoice"}).json()[
        "salespersonCode"] == "JR"
    assert error_of(bc.post(url, json={"number": "C00010", "displayName": "Dup"})) == (
        400, "Internal_EntityWithSameKeyExists",
        "The record in table Customer already exists. Identification fields and values: No.='C00010'")
    assert error_of(bc.post(env.company + "/salespeoplePurchasers", json={"code": "JR"}))[:2] == (
        400, "Internal_EntityWithSameKeyExists")
    assert error_of(bc.post(env.company + "/salespeoplePurchasers", json={"displayName": "No code"}))[:2] == (
        400, "Application_FieldValidationException")


def test_currency_id_and_code_are_kept_consistent(env, bc):
    [eur] = env.sim.seed("currencies", [{"code": "EUR", "displayName": "Euro", "symbol": "€"}])
    [net30] = env.sim.seed("paymentTerms", [{"code": "30 DAYS", "displayName": "Net 30", "dueDateCalculation": "30D"}])
    created = bc.post(f"{env.company}/customers", json={"displayName": "Euro AG", "currencyCode": "EUR",
                                                        "paymentTermsId": net30}).json()
    assert created["currencyId"] == eur and created["currencyCode"] == "EUR" and created["paymentTermsId"] == net30
    url = f"{env.company}/customers({created['id']})"
    local = bc.patch(url, json={"currencyId": EMPTY_GUID}, headers={"If-Match": "*"}).json()
    assert local["currencyCode"] == "USD" and local["currencyId"] == EMPTY_GUID
    by_id = bc.patch(url, json={"currencyId": eur}, headers={"If-Match": "*"}).json()
    assert by_id["currencyCode"] == "EUR"
    lcy = bc.patch(url, json={"currencyCode": "USD"}, headers={"If-Match": "*"}).json()
    assert lcy["currencyId"] == EMPTY_GUID and env.sim.get("customers", created["id"])["currencyCode"] == "USD"
    assert error_of(bc.patch(url, json={"currencyId": str(uuid.uuid4())}, headers={"If-Match": "*"})) == (
        400, "Application_DialogException", 'The "currencyId" does not match to a Currency.')
    assert error_of(bc.patch(url, json={"currencyCode": "GBP"}, headers={"If-Match": "*"}))[:2] == (
        400, "Application_DialogException")
    assert error_of(bc.patch(url, json={"currencyId": eur, "currencyCode": "USD"}, headers={"If-Match": "*"})) == (
        400, "Application_DialogException", "The currency values do not match to a specific Currency.")
    assert error_of(bc.patch(url, json={"paymentTermsId": str(uuid.uuid4())}, headers={"If-Match": "*"}))[:2] == (
        400, "Application_DialogException")
    terms = bc.get(f"{env.company}/paymentTerms({net30})").json()
    assert terms["dueDateCalculation"] == "30D" and terms["code"] == "30 DAYS"
    currency = bc.get(f"{env.company}/currencies({eur})").json()
    assert currency["amountDecimalPlaces"] == "2:2" and currency["symbol"] == "€"


# -- OData v4 page web services ---------------------------------------------------------------------------

def test_customer_card_page_is_another_view_of_the_same_customer_rows(env, bc):
    agent = bc.post(f"{env.odata}/ShippingAgents", json={"Code": "dhl", "Name": "DHL", "Internet_Address": "dhl.com"})
    assert agent.status_code == 201, agent.text
    assert agent.json()["Code"] == "DHL"
    assert agent.headers["Location"].endswith("/ShippingAgents('DHL')")
    customer = bc.post(f"{env.company}/customers", json={"displayName": "Contoso"}).json()

    card_url = f"{env.odata}/CustomerCard('{customer['number']}')"
    card = bc.get(card_url)
    assert card.status_code == 200, card.text
    body = card.json()
    assert body["@odata.context"].endswith("/ODataV4/$metadata#Company('CRONUS%20USA%2C%20Inc.')/CustomerCard/$entity")
    assert {k: body[k] for k in ("No", "Name", "Shipping_Agent_Code", "SystemId")} == {
        "No": customer["number"], "Name": "Contoso", "Shipping_Agent_Code": "", "SystemId": customer["id"]}
    assert body["SystemModifiedAt"] == customer["lastModifiedDateTime"]
    assert body["@odata.etag"] == customer["@odata.etag"]

    assert error_of(bc.patch(card_url, json={"Shipping_Agent_Code": "DHL"}))[:2] == (400, "BadRequest_InvalidToken")
    assert error_of(bc.patch(card_url, json={"Shipping_Agent_Code": "UPS"}, headers={"If-Match": "*"}))[:2] == (
        400, "Internal_InvalidTableRelation")
    time.sleep(0.01)  # past the clock tick of the customer's last write
    patched = bc.patch(card_url, json={"Shipping_Agent_Code": "dhl"}, headers={"If-Match": body["@odata.etag"]})
    assert patched.status_code == 200 and patched.json()["Shipping_Agent_Code"] == "DHL"
    # the page checks the record's version as the API does: the one read before that write is stale now
    assert error_of(bc.patch(card_url, json={"Primary_Contact_No": ""}, headers={"If-Match": body["@odata.etag"]}))[
        :2] == (409, "Request_EntityChanged")

    again = bc.get(f"{env.company}/customers({customer['id']})").json()
    assert when(again["lastModifiedDateTime"]) > when(customer["lastModifiedDateTime"])
    assert again["@odata.etag"] != customer["@odata.etag"] and again["@odata.etag"] == patched.json()["@odata.etag"]
    assert "shippingAgentCode" not in again
    assert env.sim.get("customers", customer["id"])["shippingAgentCode"] == "DHL"
    assert error_of(bc.patch(f"{env.company}/customers({customer['id']})", json={"city": "x"},
                             headers={"If-Match": customer["@odata.etag"]}))[:2] == (409, "Request_EntityChanged")

    listed = bc.get(f"{env.odata}/CustomerCard", params={"$filter": "Shipping_Agent_Code eq 'DHL'",
                                                         "$select": "No,Name"}).json()
    assert listed["value"] == [{"@odata.etag": again["@odata.etag"], "No": customer["number"], "Name": "Contoso"}]
    assert error_of(bc.get(f"{env.odata}/CustomerCard", params={"$filter": "displayName eq 'x'"})) == (
        400, "BadRequest_NotFound", "Could not find a property named 'displayName' on type 'NAV.CustomerCard'.")
    assert error_of(bc.get(f"{env.odata}/CustomerCard('NOPE')"))[:2] == (404, "Internal_RecordNotFound")
    # a row created through the page gets its number from the series and shows up in the API
    created = bc.post(f"{env.odata}/CustomerCard", json={"Name": "From the page"}).json()
    assert created["No"] == "C00020"
    assert bc.get(f"{env.company}/customers({created['SystemId']})").json()["displayName"] == "From the page"


# -- $batch -----------------------------------------------------------------------------------------------

def test_an_unpublished_page_is_not_found_until_published_again(env, bc):
    assert bc.get(f"{env.odata}/CustomerCard?$top=1").status_code == 200
    admin = env.session().post(f"{env.url}/_sim/settings", json={"unpublished": ["CustomerCard"]})
    assert admin.status_code == 200
    gone = bc.get(f"{env.odata}/CustomerCard?$top=1")
    assert error_of(gone) == (404, "BadRequest_ResourceNotFound", "Resource not found for the segment 'CustomerCard'.")
    assert bc.get(f"{env.odata}/ItemCard?$top=1").status_code == 200
    assert bc.get(f"{env.company}/customers?$top=1").status_code == 200   # the API's own entity set stays
    env.sim.reset()
    assert bc.get(f"{env.odata}/CustomerCard?$top=1").status_code == 200


def test_batch_runs_each_request_and_reports_its_status(env, bc):
    [existing] = env.sim.seed("customers", [{"displayName": "Existing"}])
    etag = env.sim.get("customers", existing)["@odata.etag"]
    cid = env.sim.company_id
    response = bc.post(f"{env.api}/$batch", json={"requests": [
        {"id": "1", "method": "POST", "url": f"companies({cid})/customers",
         "headers": {"Content-Type": "application/json"}, "body": {"displayName": "Batch One"}},
        {"id": "2", "method": "POST", "url": f"companies({cid})/customers",
         "headers": {"Content-Type": "application/json"}, "body": {"displayName": "Bad", "blocked": "Nope"}},
        {"id": "3", "method": "PATCH", "url": f"companies({cid})/customers({existing})",
         "headers": {"Content-Type": "application/json", "If-Match": etag}, "body": {"city": "Batchville"}},
        {"id": "4", "method": "GET", "url": f"{env.api}/companies({cid})/customers?$filter=city eq 'Batchville'"},
        {"id": "5", "method": "GET", "url": "customers", "headers": {"Company": cid}},
    ]})
    assert response.status_code == 200
    responses = {r["id"]: r for r in response.json()["responses"]}
    assert [responses[i]["status"] for i in "12345"] == [201, 400, 200, 200, 200]
    assert responses["1"]["body"]["number"] == "C00020"
    assert responses["2"]["body"]["error"]["code"] == "Application_EvaluateException"
    assert [c["displayName"] for c in responses["4"]["body"]["value"]] == ["Existing"]
    assert len(responses["5"]["body"]["value"]) == 2
    assert sorted(c["displayName"] for c in env.sim.rows("customers")) == ["Batch One", "Existing"]


def test_page_services_take_a_batch_and_a_fault_may_hit_one_request_of_it(env, bc):
    numbers = [env.sim.get("customers", i)["number"] for i in env.sim.seed("customers", [{"displayName": "A"},
                                                                                         {"displayName": "B"}])]
    company = f"Company('{quote(env.sim.company_name, safe='')}')"
    env.sim.faults.fail(503, path_contains=f"CustomerCard('{numbers[1]}')", methods=("PATCH",))
    response = bc.post(f"{env.base}/ODataV4/$batch", json={"requests": [
        {"id": n, "method": "PATCH", "url": f"{company}/CustomerCard('{n}')", "headers": {"If-Match": "*"},
         "body": {"Fax_No": "42"}} for n in numbers]})
    assert [r["status"] for r in response.json()["responses"]] == [200, 503]
    assert [c["Fax_No"] for c in env.sim.rows("CustomerCard")] == ["42", ""]
    assert [m for m, _ in env.sim.faults.requests[-1:]] == ["POST"]      # the inner requests are not logged
    env.sim.faults.lose_answers(path_contains="/ODataV4/$batch")
    with pytest.raises(requests.exceptions.ChunkedEncodingError):       # applied, but the answer breaks off
        bc.post(f"{env.base}/ODataV4/$batch", json={"requests": [
            {"id": "1", "method": "PATCH", "url": f"{company}/CustomerCard('{numbers[1]}')",
             "headers": {"If-Match": "*"}, "body": {"Fax_No": "43"}}]})
    assert [c["Fax_No"] for c in env.sim.rows("CustomerCard")] == ["42", "43"]


def test_batch_with_snapshot_isolation_is_all_or_nothing(env, bc):
    cid = env.sim.company_id
    requests_ = [
        {"id": "a", "method": "POST", "url": f"companies({cid})/customers", "body": {"displayName": "Kept?"}},
        {"id": "b", "method": "POST", "url": f"companies({cid})/salespeoplePurchasers", "body": {"code": "AB"}},
        {"id": "c", "method": "POST", "url": f"companies({cid})/customers",
         "body": {"displayName": "Broken", "salespersonCode": "ZZ"}},
    ]
    response = bc.post(f"{env.api}/$batch", json={"requests": requests_}, headers={"Isolation": "snapshot"})
    assert response.status_code == 200
    assert [r["status"] for r in response.json()["responses"]] == [201, 201, 400]
    assert env.sim.rows("customers") == [] and env.sim.rows("salespeoplePurchasers") == []

    ok = bc.post(f"{env.api}/$batch", json={"requests": requests_[:2]}, headers={"Isolation": "snapshot"})
    assert [r["status"] for r in ok.json()["responses"]] == [201, 201]
    assert [c["number"] for c in env.sim.rows("customers")] == ["C00010"]  # the rolled-back number is reused

    # posting commits, as Sales-Post does: a snapshot batch cannot roll back what came before it
    # (a customer created over the API has no posting groups: what a template would give it, to be invoiced)
    env.sim.update("customers", env.sim.rows("customers")[0]["id"],
                   {"genBusPostingGroup": "DOMESTIC", "customerPostingGroup": "DOMESTIC"})
    [item] = env.sim.seed("items", [{"displayName": "Bicycle", "unitPrice": 100}])
    [order] = env.sim.seed("salesOrders", [{"customerNumber": "C00010"}])
    env.sim.seed("salesOrderLines", [{"documentId": order, "itemId": item, "quantity": 1}])
    posting = [
        {"id": "a", "method": "POST", "url": f"companies({cid})/salespeoplePurchasers", "body": {"code": "CD"}},
        {"id": "b", "method": "POST", "url": f"companies({cid})/salesOrders({order})/Microsoft.NAV.shipAndInvoice"},
        {"id": "c", "method": "POST", "url": f"companies({cid})/customers",
         "body": {"displayName": "Broken", "salespersonCode": "ZZ"}},
    ]
    response = bc.post(f"{env.api}/$batch", json={"requests": posting}, headers={"Isolation": "snapshot"})
    assert [r["status"] for r in response.json()["responses"]] == [201, 204, 400]
    assert [s["code"] for s in env.sim.rows("salespeoplePurchasers")] == ["AB", "CD"]
    assert env.sim.rows("salesOrders") == [] and len(env.sim.rows("salesInvoices")) == 1

    too_many = [{"id": str(i), "method": "GET", "url": "companies"} for i in range(101)]
    assert error_of(bc.post(f"{env.api}/$batch", json={"requests": too_many})) == (
        400, "Unknown", "The current batch message contains too many parts. A maximum number of '100' query "
                        "operations and change sets are allowed in a batch message.")
    assert bc.post(f"{env.api}/$batch", json={"requests": too_many[:100]}).status_code == 200


# -- failure injection and admin endpoints ------------------------------------------------------------------

def test_scripted_throttling_and_outages(env, bc):
    env.sim.faults.fail(429, retry_after=7, path_contains="/customers")
    throttled = bc.get(f"{env.company}/customers")
    assert throttled.headers["Retry-After"] == "7"
    assert error_of(throttled) == (429, "Application_TooManyRequests", "Too many requests reached. Actual (101). Maximum (100).")
    assert bc.get(f"{env.company}/customers").status_code == 200

    admin = env.session()
    assert admin.post(f"{env.url}/_sim/faults", json={"fail": [{"status": 503, "retry_after": 2}]}).status_code == 200
    unavailable = bc.get(f"{env.api}/companies")
    assert unavailable.status_code == 503 and unavailable.headers["Retry-After"] == "2"
    assert bc.get(f"{env.api}/companies").status_code == 200


def test_random_faults_of_each_kind_reach_the_client_as_real_failures(env, bc):
    admin = env.session()
    customers = f"{env.company}/customers"

    def only(kind: str, **more) -> None:
        spec = {"rate": 1, "kinds": [kind], **more}
        assert admin.post(f"{env.url}/_sim/faults", json={"random": spec}).status_code == 200

    only("throttled", retry_after=3)
    throttled = bc.get(customers)
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "3"
    only("unavailable")
    assert bc.get(customers).status_code == 503
    only("stall", stall_seconds=1.5)
    with pytest.raises(requests.exceptions.ReadTimeout):                 # longer than the client waits
        bc.post(customers, json={"displayName": "Stalled"}, timeout=0.5)
    only("cut before")
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        bc.post(customers, json={"displayName": "Never applied"})
    only("cut after")
    with pytest.raises(requests.exceptions.ChunkedEncodingError):      # applied, but the client never hears
        bc.post(customers, json={"displayName": "Applied"})
    assert admin.get(f"{env.url}/_sim/faulted").json() == {"cut after": 1}
    time.sleep(1.5)  # the stalled request is dropped unserved
    assert [c["displayName"] for c in env.sim.rows("customers")] == ["Applied"]

    admin.post(f"{env.url}/_sim/faults", json={"random": {"rate": 0.3, "seed": 7, "kinds": ["unavailable"]}})
    failed = sum(bc.get(customers).status_code == 503 for _ in range(100))
    assert 15 <= failed <= 45 and admin.get(f"{env.url}/_sim/faulted").json() == {"unavailable": failed}
    admin.post(f"{env.url}/_sim/faults", json={"random": None})
    assert bc.get(customers).status_code == 200
    assert admin.post(f"{env.url}/_sim/faults", json={"random": {"rate": 1, "kinds": ["gremlins"]}}).status_code == 400


def test_admin_endpoints_seed_update_delete_and_reset(env, bc):
    admin = env.session()
    agents = admin.post(f"{env.url}/_sim/seed", json={"entity": "ShippingAgents", "rows": [{"Code": "FEDEX"}]})
    assert agents.status_code == 200
    ids = admin.post(f"{env.url}/_sim/seed", json={"entity": "customers", "rows": [
        {"displayName": "Seeded", "shippingAgentCode": "FEDEX", "blocked": "Ship"}]}).json()["ids"]
    rows = admin.get(f"{env.url}/_sim/rows/customers").json()["value"]
    assert rows[0]["id"] == ids[0] and rows[0]["shippingAgentCode"] == "FEDEX" and rows[0]["blocked"] == "Ship"
    assert DATETIME.match(rows[0]["lastModifiedDateTime"])
    admin.post(f"{env.url}/_sim/update", json={"entity": "customers", "id": ids[0], "values": {"city": "Lyon"}})
    assert bc.get(f"{env.company}/customers({ids[0]})").json()["city"] == "Lyon"
    admin.post(f"{env.url}/_sim/delete", json={"entity": "customers", "id": ids[0]})
    assert env.sim.rows("customers") == []
    env.sim.create("customers", {"displayName": "Before reset"})
    assert admin.post(f"{env.url}/_sim/reset").status_code == 200
    assert env.sim.rows("customers") == [] and len(env.sim.rows("companies")) == 1
    with pytest.raises(BCError) as raised:
        env.sim.create("customers", {"displayName": "x" * 101})
    assert raised.value.code == "Application_StringExceededLength"


def test_in_process_seed_may_fix_ids_timestamps_and_hidden_fields(env, bc):
    fixed_id = str(uuid.uuid4())
    stamp = dt.datetime(2023, 3, 4, 5, 6, 7, 890000, tzinfo=dt.timezone.utc)
    env.sim.seed("ShippingAgents", [{"Code": "UPS", "Name": "UPS"}])
    [seeded] = env.sim.seed("customers", [{"id": fixed_id, "lastModifiedDateTime": stamp, "displayName": "Old",
                                           "shippingAgentCode": "ups", "balanceDue": 12.5}])
    assert seeded == fixed_id
    body = bc.get(f"{env.company}/customers({fixed_id})").json()
    assert body["lastModifiedDateTime"] == "2023-03-04T05:06:07.89Z" and body["balanceDue"] == 12.5
    assert env.sim.get("customers", fixed_id)["shippingAgentCode"] == "UPS"
    newer = bc.get(f"{env.company}/customers", params={"$filter": "lastModifiedDateTime gt 2023-03-04T05:06:07.89Z"})
    assert newer.json()["value"] == []


def test_concurrent_clients_get_distinct_numbers(env, bc):
    def create_ten(worker: int) -> list[str]:
        session = env.session(env.token)
        return [session.post(f"{env.company}/customers", json={"displayName": f"W{worker}-{i}"}).json()["number"]
                for i in range(10)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        numbers = [n for chunk in pool.map(create_ten, range(8)) for n in chunk]
    assert len(set(numbers)) == 80 and len(env.sim.rows("customers")) == 80


def test_fifty_thousand_customers_page_through_at_5000_per_page(env, bc):
    env.sim.seed("customers", [{"displayName": f"Customer {i:05d}", "city": "Seattle"} for i in range(50_000)])
    started = time.monotonic()
    url, count, pages = f"{env.company}/customers?$filter=city eq 'Seattle'", 0, 0
    while url:
        body = bc.get(url, headers={"Prefer": "odata.maxpagesize=5000"}).json()
        count, pages, url = count + len(body["value"]), pages + 1, body.get("@odata.nextLink")
    assert (count, pages) == (50_000, 10)
    assert time.monotonic() - started < 20
