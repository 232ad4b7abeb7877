"""Who may call the HTTP API, route by route: reading needs a function key (keys mode) or the reader
or admin app role (entra mode); changing needs the master key or the admin role. A refusal answers
401 or 403 and writes nothing."""

from __future__ import annotations

import base64
import dataclasses
import importlib
import json
import re
from pathlib import Path

import pytest

import function_app
from shared import bc_receiver, console, dataverse_receiver, http_api
from shared.access import Access
from shared.settings import Settings
from sync.model import Side
from shared.wiring import build_services
from tests.support import FunctionsHost

# Every route of the API with a request that reads or that the route's own validation refuses, so a
# request let through writes nothing either; the access each route needs.
ROUTES = [
    ("POST", "/api/fullsync", {"mappings": ["NOPE"]}, Access.CHANGE),
    ("POST", "/api/sync", {"mappings": ["NOPE"]}, Access.CHANGE),
    ("GET", "/api/runs/nope", None, Access.READ),
    ("GET", "/api/runs?limit=x", None, Access.READ),
    ("GET", "/api/mappings", None, Access.READ),
    ("GET", "/api/mappings/NOPE", None, Access.READ),
    ("PATCH", "/api/mappings/CUSTOMER", {"colour": "red"}, Access.CHANGE),
    ("DELETE", "/api/mappings/NOPE/overrides", None, Access.CHANGE),
    ("GET", "/api/errors", None, Access.READ),
    ("POST", "/api/errors/retry", {}, Access.CHANGE),
    ("GET", "/api/couplings/CUSTOMER?limit=x", None, Access.READ),
    ("POST", "/api/couplings/CUSTOMER", {}, Access.CHANGE),
    ("DELETE", "/api/couplings/CUSTOMER", None, Access.CHANGE),
    ("POST", "/api/match/NOPE", None, Access.CHANGE),
    ("POST", "/api/orders/create", {"orders": []}, Access.CHANGE),
    ("POST", "/api/records/CUSTOMER/create", {"in": "sales"}, Access.CHANGE),
    ("POST", "/api/records/CUSTOMER/sync", {"ids": []}, Access.CHANGE),
    ("GET", "/api/items/availability", None, Access.READ),
    ("GET", "/api/health", None, Access.READ),
    ("GET", "/api/console", None, Access.READ),
    ("GET", "/api/console/mappings", None, Access.READ),
    ("GET", "/api/console/mappings/NOPE", None, Access.READ),
    ("GET", "/api/console/review", None, Access.READ),
    ("GET", "/api/console/jobs?limit=x", None, Access.READ),
    ("GET", "/api/console/jobs/nope", None, Access.READ),
    ("GET", "/api/console/errors?direction=x", None, Access.READ),
    ("GET", "/api/console/couplings", None, Access.READ),
    ("GET", "/api/console/availability", None, Access.READ),
    ("POST", "/api/webhooks", None, Access.CHANGE),  # refused: BCSYNC_WEBHOOK_URL is not set
    ("GET", "/api/webhooks", None, Access.READ),
    ("DELETE", "/api/webhooks", None, Access.CHANGE),
]
# The services' notification receivers: anonymous to the host and to Easy Auth (their handler checks the key the
# registration gave the service); the validation handshake shows that a request without key or sign-in gets through.
HANDSHAKE_ROUTES = [
    ("POST", "/api/webhooks/businesscentral?validationToken=t0k3n", None, Access.SERVICE),
]
# ... and without the key, each answers 401 and writes nothing
SERVICE_ROUTES = [
    ("POST", "/api/webhooks/dataverse", {"MessageName": "Create"}, Access.SERVICE),
    ("POST", "/api/webhooks/businesscentral", {"value": [{"clientState": "forged"}]}, Access.SERVICE),
]


def principal(*roles: str) -> str:
    """X-MS-CLIENT-PRINCIPAL as App Service Authentication forwards it."""
    return base64.b64encode(json.dumps({
        "auth_typ": "aad", "name_typ": "name", "role_typ": "roles",
        "claims": [{"typ": "name", "val": "Pat Admin"}, *({"typ": "roles", "val": r} for r in roles)],
    }).encode()).decode()


@pytest.fixture
def services(isolated, monkeypatch):
    services = build_services(Settings.load(environ=isolated))
    monkeypatch.setattr(function_app, "_services", services)
    return services


def written(services) -> tuple:
    """What a request could have written: runs, mapping overrides, couplings, failed records."""
    return (len(services.runs.list_runs()), services.mapping_config.load(), services.couplings.list("CUSTOMER"),
            services.errors.list_all())


def test_every_route_is_classified_as_reading_or_changing():
    host = FunctionsHost(function_app.app)
    declared = {(m, p.pattern) for p, methods, _, _ in host.routes for m in methods}
    classified = set()
    for method, url, _, _ in ROUTES + SERVICE_ROUTES:
        path = url.split("?")[0]
        found = next(p.pattern for p, methods, _, _ in host.routes if p.match(path) and method in methods)
        classified.add((method, found))
    assert classified == declared


@pytest.mark.parametrize("method, url, body, access", ROUTES, ids=[f"{r[0]} {r[1]}" for r in ROUTES])
def test_keys_mode_reading_needs_a_function_key_and_changing_the_master_key(services, method, url, body, access):
    host = FunctionsHost(function_app.app)
    before = written(services)
    assert host.request(method, url, body).status_code == 401                       # no key
    with_function_key = host.request(method, url, body, key=host.FUNCTION_KEY).status_code
    assert (with_function_key == 401) is (access is Access.CHANGE)
    assert host.request(method, url, body, key=host.MASTER_KEY).status_code in (200, 400, 404)
    assert written(services) == before


@pytest.fixture
def entra(services, monkeypatch):
    """The function app as it starts with BCSYNC_HTTP_AUTH=entra behind App Service Authentication."""
    monkeypatch.setenv("BCSYNC_HTTP_AUTH", "entra")
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "True")
    module = reload_app()
    module._services = services
    yield FunctionsHost(module.app)
    monkeypatch.delenv("BCSYNC_HTTP_AUTH")
    reload_app()


def reload_app():
    """The function app as the host loads it: the blueprints fix their routes' key levels when built."""
    importlib.reload(http_api)
    importlib.reload(console)
    importlib.reload(bc_receiver)
    importlib.reload(dataverse_receiver)
    return importlib.reload(function_app)


@pytest.mark.parametrize("method, url, body, access", ROUTES, ids=[f"{r[0]} {r[1]}" for r in ROUTES])
def test_entra_mode_checks_app_roles_on_every_route(services, entra, method, url, body, access):
    before = written(services)
    anonymous = entra.request(method, url, body)
    assert anonymous.status_code == 401 and "Sign in" in anonymous.get_body().decode()  # JSON, or a page
    no_role = entra.request(method, url, body, headers={"X-MS-CLIENT-PRINCIPAL": principal()})
    assert no_role.status_code == 403
    reader = entra.request(method, url, body, headers={"X-MS-CLIENT-PRINCIPAL": principal("bcsync.Reader")})
    if access is Access.CHANGE:
        assert reader.status_code == 403 and "bcsync.Admin" in json.loads(reader.get_body())["error"]
    else:
        assert reader.status_code in (200, 400, 404)
    admin = entra.request(method, url, body, headers={"X-MS-CLIENT-PRINCIPAL": principal("bcsync.Admin")})
    assert admin.status_code in (200, 400, 404)
    assert written(services) == before


@pytest.mark.parametrize("method, url, body, access", SERVICE_ROUTES, ids=[f"{r[0]} {r[1]}" for r in SERVICE_ROUTES])
@pytest.mark.parametrize("mode", ["keys", "entra"])
def test_a_services_route_needs_no_host_key_nor_role_but_its_secret(services, monkeypatch, mode, method, url, body,
                                                                     access):
    if mode == "entra":
        monkeypatch.setenv("BCSYNC_HTTP_AUTH", "entra")
        monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "True")
    module = reload_app()
    module._services = services
    for side in Side:  # registered: without keys, the receivers answer 503 (bcsync's trouble, the service retries)
        services.webhook_key(side, create=True)
    try:
        before = written(services)
        refused = FunctionsHost(module.app).request(method, url, body)  # no key, no sign-in: the handler answers
        assert refused.status_code == 401
        assert written(services) == before
    finally:
        monkeypatch.delenv("BCSYNC_HTTP_AUTH", raising=False)
        reload_app()


@pytest.mark.parametrize("method, url, body, access", HANDSHAKE_ROUTES, ids=[f"{r[0]} {r[1]}" for r in HANDSHAKE_ROUTES])
@pytest.mark.parametrize("mode", ["keys", "entra"])
def test_a_services_receiver_needs_neither_key_nor_sign_in(services, monkeypatch, mode, method, url, body, access):
    monkeypatch.setenv("BCSYNC_HTTP_AUTH", mode)
    try:
        answer = FunctionsHost(reload_app().app).request(method, url, body)
        assert (answer.status_code, answer.get_body()) == (200, b"t0k3n")
    finally:
        monkeypatch.delenv("BCSYNC_HTTP_AUTH")
        reload_app()


def test_entra_mode_without_app_service_authentication_trusts_no_header(services, entra, monkeypatch):
    monkeypatch.delenv("WEBSITE_AUTH_ENABLED")
    refused = entra.request("GET", "/api/mappings", headers={"X-MS-CLIENT-PRINCIPAL": principal("bcsync.Admin")})
    assert refused.status_code == 401 and "App Service Authentication" in json.loads(refused.get_body())["error"]
    garbled = entra.request("GET", "/api/mappings", headers={"X-MS-CLIENT-PRINCIPAL": "%%%"})
    assert garbled.status_code == 401


def test_entra_mode_roles_can_be_renamed(services, entra):
    function_app._services = build_services(dataclasses.replace(services.settings, admin_role="Sync.Admins"))
    allowed = entra.request("POST", "/api/fullsync", {"mappings": ["NOPE"]},
                            headers={"X-MS-CLIENT-PRINCIPAL": principal("Sync.Admins")})
    assert allowed.status_code == 400
    refused = entra.request("POST", "/api/fullsync", {"mappings": ["NOPE"]},
                            headers={"X-MS-CLIENT-PRINCIPAL": principal("bcsync.Admin")})
    assert refused.status_code == 403


def test_the_readme_documents_each_routes_access():
    """The README's HTTP API table says, per route, whether it reads or changes (or is a service's, posting
    notifications); it matches the code."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    rows = re.findall(r"^\| `(GET|POST|PATCH|DELETE) (/api/[^` ?]+)[^|]*\| (read|change|service) \|", readme, re.M)
    documented = {(method, path.replace("{", "<").replace("}", ">")): access for method, path, access in rows}
    host = FunctionsHost(function_app.app)
    actual = {}
    for pattern, methods, level, _ in host.routes:
        path = re.sub(r"\(\?P<(\w+)>\[\^/\]\+\)", r"<\1>", pattern.pattern.strip("^$"))
        for method in methods:
            actual[(method, path)] = {"FUNCTION": "read", "ANONYMOUS": "service"}.get(level, "change")
    assert documented == actual
