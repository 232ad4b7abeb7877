"""Bad input over HTTP: every route answers it with a 400 or 404 JSON problem that names the field, never a
500 or a traceback, and writes nothing. The issue's cases first, then hypothesis-generated bodies, query
and route parameters for every route, against the local stack."""

from __future__ import annotations

import json
from dataclasses import dataclass

import azure.functions as func
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.request import MAX_TEXT
from sync.mappings import builtin_mappings
from tests.functions.test_function_app import services, user_function  # noqa: F401 (a fixture)

HUGE = "N" * 100_000
GUID = "6f9619ff-8b86-d011-b42d-00cf4fc964ff"
MAPPINGS = [m.name for m in builtin_mappings()]


def call(name, method="POST", body: bytes | str = b"", params=None, route_params=None):
    """The function's answer, as status and parsed JSON body (every answer is JSON)."""
    raw = body.encode() if isinstance(body, str) else body
    answer = user_function(name)(func.HttpRequest(method, "https://bcsync.example/api/x", headers={},
                                                  params=params or {}, route_params=route_params or {}, body=raw))
    return answer.status_code, json.loads(answer.get_body())


def stored(services):
    """What a refused request must leave as it was: runs, mapping overrides, couplings, failed records."""
    return ([r.run_id for r in services.runs.list_runs(limit=200)],
            {k: v.to_dict() for k, v in services.mapping_config.load_checked()[0].items()},
            [(c.bc_id, c.crm_id) for c in services.couplings.list("CUSTOMER", 1000, None)],
            len(services.errors.list_all()))


CASES = [  # function, method, body, params, route params, status, words the problem must have
    ("mapping", "GET", "", {}, {"name": "UNIT GROUP"}, 404, ["UNIT GROUP", "not in use", "BCSYNC_UNIT_MODE"]),
    ("mapping", "GET", "", {}, {"name": "PLLINE-PRODPRICE"}, 404, ["PLLINE-PRODPRICE", "not in use", "BCSYNC_PRICING"]),
    ("list_errors", "GET", "", {"direction": "sideways"}, {}, 400, ["direction", "to-crm or from-crm"]),
    ("retry_errors", "POST", '{"all": true, "direction": "sideways"}', {}, {}, 400, ["direction", "sideways"]),
    ("start_full_sync", "POST", '{"mappings": [1, null]}', {}, {}, 400, ["mappings must be text", "1"]),
    ("start_full_sync", "POST", '{"mappings": "CUSTOMER"}', {}, {}, 400, ["list", "CUSTOMER"]),
    ("start_full_sync", "POST", '["CUSTOMER"]', {}, {}, 400, ["an array, not a JSON object"]),
    ("start_full_sync", "POST", '{"mapping": ["CUSTOMER"]}', {}, {}, 400, ["unknown key 'mapping'"]),
    ("start_full_sync", "POST", '{"mappings": []}', {}, {}, 400, ["list of 1 to"]),
    ("change_mapping", "PATCH", '{"match": 5}', {}, {"name": "CUSTOMER"}, 400, ["match must be a list", "got 5"]),
    ("change_mapping", "PATCH", '{"match": "Name"}', {}, {"name": "CUSTOMER"}, 400, ["match must be a list"]),
    ("change_mapping", "PATCH", '{"match": {"Name": 5}}', {}, {"name": "CUSTOMER"}, 400, ["match options of Name"]),
    ("change_mapping", "PATCH", '{"match": [5]}', {}, {"name": "CUSTOMER"}, 400, ["by their name"]),
    ("change_mapping", "PATCH", '{"match": {"Name": {"priority": "first"}}}', {}, {"name": "CUSTOMER"}, 400,
     ["match priority of Name", "'first'"]),
    ("change_mapping", "PATCH", '{"interval_minutes": 1e300}', {}, {"name": "CUSTOMER"}, 400,
     ["interval_minutes must be a whole number of minutes from 1 to 525,600", "1e+300"]),
    ("change_mapping", "PATCH", '{"interval_minutes": Infinity}', {}, {"name": "CUSTOMER"}, 400, ["got inf"]),
    ("change_mapping", "PATCH", '{"interval_minutes": NaN}', {}, {"name": "CUSTOMER"}, 400, ["got nan"]),
    ("change_mapping", "PATCH", '{"interval_minutes": -5}', {}, {"name": "CUSTOMER"}, 400, ["got -5"]),
    ("change_mapping", "PATCH", '{"interval_minutes": 2.5}', {}, {"name": "CUSTOMER"}, 400, ["got 2.5"]),
    ("change_mapping", "PATCH", '{"inactivity_timeout_minutes": true}', {}, {"name": "CUSTOMER"}, 400, ["got True"]),
    ("change_mapping", "PATCH", '{"bc_filter": ["x"]}', {}, {"name": "CUSTOMER"}, 400, ["bc_filter must be text"]),
    ("change_mapping", "PATCH", '[]', {}, {"name": "CUSTOMER"}, 400, ["not a JSON object"]),
    ("change_mapping", "PATCH", '{"enabled": false}', {}, {"name": HUGE}, 404, ["no table mapping named NNN"]),
    ("match", "POST", '["email"]', {}, {"mapping": "CONTACT"}, 400, ["not a JSON object"]),
    ("match", "POST", '"email"', {}, {"mapping": "CONTACT"}, 400, ["is text, not a JSON object"]),
    ("couple", "POST", '{"bc_id": "x", "crm_id": "y"}', {}, {"mapping": "CUSTOMER"}, 400,
     ["Business Central record id in CUSTOMER is a GUID", "'x'"]),
    ("couple", "POST", json.dumps({"bc_id": GUID, "crm_id": HUGE}), {}, {"mapping": "CUSTOMER"}, 400,
     ["crm_id has 100,000 characters"]),
    ("couple", "POST", json.dumps({"bc_id": GUID, "crm_id": 7}), {}, {"mapping": "CUSTOMER"}, 400,
     ["crm_id must be text"]),
    ("uncouple", "DELETE", "", {"bc": "not-a-guid"}, {"mapping": "CUSTOMER"}, 400, ["is a GUID"]),
    ("uncouple", "DELETE", "", {"crm": GUID}, {"mapping": "CUSTOMER"}, 404, ["is not coupled"]),
    ("start_full_sync", "POST", json.dumps({"mappings": [HUGE]}), {}, {}, 400, ["more than the 100"]),
    ("run_status", "GET", "", {}, {"run_id": HUGE}, 404, ["There is no run NNN"]),
    ("list_runs", "GET", "", {"limit": "1e3"}, {}, 400, ["limit must be a whole number"]),
    ("list_runs", "GET", "", {"mapping": "N" * 500}, {}, 400, ["mapping has 500 characters"]),
    ("list_runs", "GET", "", {"mapping": "NOPE"}, {}, 400, ["no table mapping named NOPE", "CUSTOMER"]),
    ("list_couplings", "GET", "", {"search": HUGE}, {"mapping": "CUSTOMER"}, 400, ["search has 100,000"]),
    ("list_errors", "GET", "", {"skipped": "maybe"}, {}, 400, ["skipped is true or false"]),
    ("retry_errors", "POST", '{"source_id": 5}', {}, {}, 400, ["source_id must be text"]),
    ("retry_errors", "POST", '{"all": "yes"}', {}, {}, 400, ["all is true or false"]),
    ("synchronise_records", "POST", '{"ids": ["x"]}', {}, {"mapping": "CUSTOMER"}, 400, ["GUID", "'x'"]),
    ("create_records", "POST", json.dumps({"in": "sales", "ids": [GUID], "filter": "x"}), {}, {"mapping": "CUSTOMER"},
     400, ["one of the two"]),
    ("create_records", "POST", json.dumps({"in": "elsewhere", "ids": [GUID]}), {}, {"mapping": "CUSTOMER"}, 400,
     ["in is sales or bc"]),
    ("create_orders", "POST", '{"orders": "x"}', {}, {}, 400, ["orders must be a list"]),
    ("create_orders", "POST", b"\xff\xfe{", {}, {}, 400, ["The body is not JSON"]),
    ("item_availability", "GET", "", {"product": HUGE}, {}, 400, ["product has 100,000 characters"]),
    ("reset_mapping", "DELETE", "", {}, {"name": "NOPE"}, 404, ["no table mapping named NOPE"]),
]


@pytest.mark.parametrize("name, method, body, params, route_params, status, words", CASES)
def test_bad_input_is_answered_with_the_field_and_nothing_is_written(services, name, method, body, params,
                                                                      route_params, status, words):
    before = stored(services)
    answer_status, answer = call(name, method, body, params, route_params)
    assert answer_status == status, answer
    assert all(w in answer["error"] for w in words), answer["error"]
    assert len(answer["error"]) < 1_000                     # a huge value is never echoed whole
    assert stored(services) == before


def test_bad_overrides_already_in_storage_are_shown_with_their_fix_and_can_be_reset(services):
    """Written by hand or by an older version: one that no longer parses, one that no longer applies."""
    for name, override in (("CUSTOMER", {"interval_minutes": 10 ** 300}), ("SALESPEOPLE", {"template_code": "CUST"})):
        services.mapping_config.table.upsert_entity({"PartitionKey": "mapping", "RowKey": name, "name": name,
                                                     "override": json.dumps(override)})
    status, listed = call("list_mappings", "GET")
    assert status == 200
    shown = {m["name"]: m for m in listed["mappings"] if "override_problem" in m}
    assert set(shown) == {"CUSTOMER", "SALESPEOPLE"} and shown["CUSTOMER"]["interval_minutes"] == 30
    assert "DELETE /api/mappings/CUSTOMER/overrides" in shown["CUSTOMER"]["override_problem"]
    assert "cannot have a template code" in shown["SALESPEOPLE"]["override_problem"]
    assert call("mapping", "GET", route_params={"name": "CUSTOMER"})[0] == 200
    status, problem = call("start_full_sync", body='{"mappings": ["CONTACT"]}')
    assert status == 400 and "stored overrides of table mapping" in problem["error"]   # runs wait for the fix
    for name in shown:
        assert call("reset_mapping", "DELETE", route_params={"name": name})[0] == 200
    status, listed = call("list_mappings", "GET")
    assert not any("override_problem" in m for m in listed["mappings"])
    assert call("start_full_sync", body='{"mappings": ["CONTACT"]}')[0] == 202


# -- hypothesis ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Route:
    method: str
    body_keys: tuple[str, ...] = ()
    params: tuple[str, ...] = ()
    route_params: tuple[str, ...] = ()
    examples: int = 50


ROUTES = {
    "start_full_sync": Route("POST", ("mappings",), examples=30),   # a valid body starts a run: slower
    "run_status": Route("GET", route_params=("run_id",)),
    "list_runs": Route("GET", params=("limit", "mapping")),
    "list_mappings": Route("GET", examples=5),
    "mapping": Route("GET", route_params=("name",)),
    "change_mapping": Route("PATCH", ("match", "interval_minutes", "inactivity_timeout_minutes", "enabled",
                                      "direction", "fields", "template_code", "truncation"), route_params=("name",)),
    "reset_mapping": Route("DELETE", route_params=("name",)),
    "list_errors": Route("GET", params=("mapping", "direction", "skipped")),
    "retry_errors": Route("POST", ("source_id", "all", "skipped", "mapping", "direction")),
    "list_couplings": Route("GET", params=("search", "limit"), route_params=("mapping",)),
    "couple": Route("POST", ("bc_id", "crm_id"), route_params=("mapping",)),
    "uncouple": Route("DELETE", params=("bc", "crm"), route_params=("mapping",)),
    "match": Route("POST", ("match", "create_new_if_no_match", "sync_after_coupling"), route_params=("mapping",)),
    "create_records": Route("POST", ("in", "ids", "filter"), route_params=("mapping",)),
    "synchronise_records": Route("POST", ("direction", "ids", "filter"), route_params=("mapping",)),
    "create_orders": Route("POST", ("orders",)),
    "health": Route("GET", examples=2),
    "item_availability": Route("GET", params=("product",)),
}

# values a route might take, near misses of them, and junk
plausible = st.sampled_from(MAPPINGS + [GUID, GUID.upper(), "to-crm", "from-crm", "sideways", "sales", "bc", "true",
                                        "1e300", "Name", "email", "0", "-1", "20261203-101010-abcdef", "", " ",
                                        HUGE, "x" * (MAX_TEXT + 1), "\u0000", "é", "../", "'; --"])
scalars = (st.none() | st.booleans() | st.integers(min_value=-2 ** 70, max_value=2 ** 70) | st.floats()
           | st.text(max_size=30) | plausible)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=10) | plausible, inner, max_size=4), max_leaves=12)


def bodies(keys: tuple[str, ...]):
    near = plausible | st.lists(plausible, min_size=1, max_size=3) | st.dictionaries(plausible, plausible, max_size=2)
    objects = st.dictionaries(st.sampled_from(keys) if keys else st.text(max_size=10), near | values, max_size=4)
    return (objects.map(json.dumps) | values.map(json.dumps) | st.binary(max_size=40) | st.just("")
            | st.just("[" * 50_000) | objects.map(lambda o: json.dumps(o).replace("0", "Infinity", 1)))


def texts_for(keys: tuple[str, ...]):
    return st.dictionaries(st.sampled_from(keys), plausible | st.text(max_size=40), max_size=len(keys)) if keys \
        else st.just({})


@pytest.mark.parametrize("name", ROUTES)
def test_no_generated_request_makes_a_route_fail(services, name):
    route = ROUTES[name]

    @settings(max_examples=route.examples, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(body=bodies(route.body_keys), params=texts_for(route.params), route_params=texts_for(route.route_params))
    def fuzz(body, params, route_params):
        route_params = {k: route_params.get(k, "CUSTOMER") for k in route.route_params}
        status, answer = call(name, route.method, body if route.body_keys else b"", params, route_params)
        assert status != 500, answer
        if status in (400, 404, 409):   # 422 is a per-record answer; 503 a health report
            assert isinstance(answer["error"], str) and len(answer["error"]) < 10_000, answer

    fuzz()


def test_anything_unforeseen_is_a_logged_500_problem_not_a_traceback(services, monkeypatch, caplog):
    monkeypatch.setattr(type(services), "mappings", lambda self: 1 / 0)
    status, problem = call("list_mappings", "GET")
    assert status == 500 and "what went wrong is in its log" in problem["error"]
    assert any(r.exc_info and r.exc_info[0] is ZeroDivisionError for r in caplog.records)
