"""The status page against the local stack: every page renders real data, escapes what the services hold,
shows no secret, and its actions (buttons and forms read from the page itself) reach the JSON routes and
change both services and the tables. The browser side (clicks, keyboard, phone width) is tested in Chromium."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest

import function_app
from sync.runs import RunStatus
from tests.support import FunctionsHost

from .conftest import job

HOSTILE = "<script>alert(1)</script>"
PAGES = ("/api/console", "/api/console/mappings", "/api/console/mappings/CUSTOMER", "/api/console/review",
         "/api/console/jobs", "/api/console/errors", "/api/console/couplings?mapping=CUSTOMER",
         "/api/console/availability?product=1000")


class Page(HTMLParser):
    """What a test needs of a page: its action buttons, its forms with their fields, links and element ids."""

    def __init__(self, text: str):
        super().__init__()
        self.text, self.buttons, self.forms, self.links, self.ids, self.labels = text, [], [], [], set(), set()
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.ids.add(a.get("id"))
        if tag == "button" and "data-path" in a:
            self.buttons.append(a)
        elif tag == "form":
            self.forms.append({**a, "fields": {}})
        elif tag in ("input", "select") and self.forms and a.get("name"):
            self.forms[-1]["fields"][a["name"]] = a
        elif tag == "a":
            self.links.append(a.get("href"))
        elif tag == "label":
            self.labels.add(a.get("for"))

    def button(self, label: str) -> dict:
        return next(b for b in self.buttons if b.get("aria-label") == label)

    def form(self, form_id: str) -> dict:
        return next(f for f in self.forms if f.get("id") == form_id)


@pytest.fixture
def host(env, monkeypatch):
    monkeypatch.setattr(function_app, "_services", env.services)
    return FunctionsHost(function_app.app)


def get(host, url) -> Page:
    answer = host.request("GET", url, key=host.FUNCTION_KEY)
    assert answer.status_code == 200, (url, answer.get_body()[:2000])
    assert answer.mimetype == "text/html" and "default-src 'none'" in answer.headers["Content-Security-Policy"]
    return Page(answer.get_body().decode())


def press(host, control: dict, body=None):
    """What the page's script does for a button or form: its method and path under /api, with the master key."""
    body = json.loads(control["data-body"]) if body is None and "data-body" in control else body
    path, _, query = control["data-path"].partition("?")
    return host.request(control["data-method"], "/api" + path + (f"?{query}" if query else ""), body,
                        key=host.MASTER_KEY)


def seed(env):
    """A coupled customer with a hostile name, one that fails (its salesperson has no Sales user), an item."""
    env.dv.seed("systemuser", [{"fullname": "Alicia Thornber", "islicensed": True,
                                "internalemailaddress": "alicia@contoso.com"}])
    env.bc.seed("salespeoplePurchasers", [{"code": "AT", "displayName": "Alicia", "email": "alicia@contoso.com"},
                                          {"code": "JR", "displayName": "Jim", "email": "jim@contoso.com"}])
    hostile, failing = env.bc.seed("customers", [
        {"number": "10000", "displayName": HOSTILE, "salespersonCode": "AT"},
        {"number": "40000", "displayName": "Alpine Ski House", "salespersonCode": "JR"}])
    env.bc.seed("unitsOfMeasure", [{"code": "PCS", "displayName": "Piece"}])
    env.bc.seed("items", [{"number": "1000", "displayName": "Bicycle", "baseUnitOfMeasureCode": "PCS",
                           "unitPrice": 400, "inventory": 12}])
    report = env.full_sync()
    assert job(report, "CUSTOMER:to-crm").counts.failed == 1
    return hostile, failing


def test_every_page_shows_real_data_escaped_and_no_secret(env, host):
    hostile, failing = seed(env)
    env.services.set_mapping("CUSTOMER", {"bc_filter": f"displayName ne '{HOSTILE}'"})
    secrets = [env.values[k] for k in ("BCSYNC_CLIENT_SECRET", "AzureWebJobsStorage")]
    secrets += re.findall(r"AccountKey=([^;]+)", env.values["AzureWebJobsStorage"])
    pages = {}
    for url in PAGES:
        page = get(host, url + ("&" if "?" in url else "?") + f"code={host.FUNCTION_KEY}")
        pages[url] = page
        assert HOSTILE not in page.text, url                         # every value is escaped
        assert not [s for s in secrets + [host.FUNCTION_KEY] if s in page.text], url
        assert '<meta name="viewport"' in page.text and 'aria-current="page"' in page.text, url
        fields = {field.get("id") for form in page.forms for field in form["fields"].values()}
        assert fields <= page.labels, url                             # every field has its label
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert escaped in pages["/api/console/couplings?mapping=CUSTOMER"].text               # a coupled record's values
    assert f"displayName ne &#x27;{escaped}&#x27;" in pages["/api/console/mappings/CUSTOMER"].text   # a filter

    mappings = pages["/api/console/mappings"]
    row = re.search(r'<tr data-mapping="CUSTOMER">.*?</tr>', mappings.text).group(0)
    assert "<td>enabled</td><td>bidirectional</td>" in row
    assert 'href="errors?mapping=CUSTOMER">1</a>' in row                                 # one failed record
    jobs = pages["/api/console/jobs"].text
    assert 'data-job="CUSTOMER:to-crm"' in jobs and 'data-running="false"' in jobs
    errors = pages["/api/console/errors"]
    assert "Customer 40000" in errors.text and f'data-source-id="{failing}"' in errors.text
    bc_link = next(link for link in errors.links if "SystemId" in link)
    tenant_environment = urlsplit(env.settings.bc_url).path.split("/v2.0/")[1].strip("/")
    assert urlsplit(bc_link).path == f"/{tenant_environment}/" and "page=22" in bc_link and failing in bc_link
    assert not [link for link in errors.links if "main.aspx" in link]   # the failed customer has no account yet
    review = pages["/api/console/review"].text
    assert re.search(r'data-recommendation="CUSTOMER">(couple records|full synchronization)<', review)
    availability = pages["/api/console/availability?product=1000"].text
    assert '<td data-field="inventory">12.0</td>' in availability


def test_each_page_reads_the_mapping_configuration_once(env, host):
    seed(env)
    table = env.services.mapping_config.table
    queries, query = [], table.query_entities
    table.query_entities = lambda *args, **kwargs: queries.append(args) or query(*args, **kwargs)
    for url in PAGES:
        queries.clear()
        get(host, url + ("&" if "?" in url else "?") + f"code={host.FUNCTION_KEY}")
        assert len(queries) == 1, url   # the names, the links, the couplings, each recommendation: one read


def test_the_review_lists_every_mapping_while_a_stored_override_is_wrong(env, host):
    env.services.mapping_config.table.upsert_entity({"PartitionKey": "mapping", "RowKey": "CUSTOMER", "name": "CUSTOMER",
                                                     "override": json.dumps({"interval_minutes": 10 ** 300})})
    review = get(host, f"/api/console/review?code={host.FUNCTION_KEY}").text
    shown = re.findall(r'data-recommendation="([^"]+)">not known: The stored overrides of table mapping CUSTOMER', review)
    assert {"CUSTOMER", "CONTACT"} <= set(shown)   # no job could run: no mapping is reviewed


def test_a_hostile_product_lookup_is_escaped_and_a_bad_filter_answers_a_page(env, host):
    answer = host.request("GET", "/api/console/availability", key=host.FUNCTION_KEY, params={"product": HOSTILE})
    assert answer.status_code == 404 and HOSTILE not in answer.get_body().decode()
    assert "&lt;script&gt;" in answer.get_body().decode()
    refused = host.request("GET", "/api/console/errors?direction=sideways", key=host.FUNCTION_KEY)
    assert refused.status_code == 400 and refused.mimetype == "text/html"
    assert 'id="problem"' in refused.get_body().decode()
    assert host.request("GET", "/api/console/jobs/nope", key=host.FUNCTION_KEY).status_code == 404


def test_the_pages_actions_reach_the_json_routes(env, host):
    hostile, failing = seed(env)

    # table mappings: run now and full sync start runs of that mapping, which the job log then shows
    mappings = get(host, "/api/console/mappings")
    for label in ("Run CUSTOMER now", "Full synchronisation of CUSTOMER"):
        started = press(host, mappings.button(label))
        assert started.status_code == 202
        run = json.loads(started.get_body())["run"]
        assert env.services.report(run).run.mappings == ("CUSTOMER",)
        assert "<td>enabled, running</td>" in re.search(r'<tr data-mapping="CUSTOMER">.*?</tr>',
                                                         get(host, "/api/console/mappings").text).group(0)
        shown = get(host, f"/api/console/jobs/{run}")
        assert f'data-run="{run}"' in shown.text and 'data-running="true"' in shown.text
        assert env.worker.run_until(lambda: env.services.report(run).run.status is not RunStatus.RUNNING, timeout=120)
        polled = host.request("GET", f"/api/runs/{run}", key=host.FUNCTION_KEY)        # what the page polls
        assert json.loads(polled.get_body())["status"] == "done"

    # the mapping's form sends what changed
    form = get(host, "/api/console/mappings/CUSTOMER").form("mapping-form")
    assert set(form["fields"]) >= {"direction", "bc_filter", "crm_filter", "update_conflict", "deletion_conflict",
                                   "interval_minutes", "inactivity_timeout_minutes", "enabled"}
    assert press(host, form, {"interval_minutes": 45, "update_conflict": "send-to-crm"}).status_code == 200
    described = next(m for m in env.services.mappings() if m["name"] == "CUSTOMER")
    assert (described["interval_minutes"], described["update_conflict"]) == (45, "send-to-crm")
    reset = get(host, "/api/console/mappings/CUSTOMER").button("Reset CUSTOMER to its built-in definition")
    assert press(host, reset).status_code == 200 and env.services.mapping_config.load() == {}

    # errors: retry one; once skipped, restore it
    env.sync(["CUSTOMER"])
    [skipped] = [f for f in env.errors() if f.source_id == failing]
    assert skipped.skipped
    restore = get(host, "/api/console/errors?skipped=true").button("Restore skipped record Customer 40000")
    assert json.loads(press(host, restore).get_body())["retried"][0]["source_id"] == failing
    assert not [f for f in env.errors() if f.source_id == failing][0].skipped
    retry = get(host, "/api/console/errors?mapping=CUSTOMER&direction=to-crm").button("Retry record Customer 40000")
    assert press(host, retry).status_code == 200

    # couplings: uncouple the hostile customer, then couple it again by hand
    [account] = [a for a in env.dv.rows("account") if a["name"] == HOSTILE]
    couplings = get(host, "/api/console/couplings?mapping=CUSTOMER")
    assert press(host, couplings.button(f"Uncouple {hostile}")).status_code == 200
    assert [c.bc_id for c in env.couplings("CUSTOMER")] == []
    couple = get(host, "/api/console/couplings?mapping=CUSTOMER").form("couple-form")
    assert press(host, couple, {"bc_id": hostile, "crm_id": account["accountid"]}).status_code == 201
    assert [(c.bc_id, c.crm_id) for c in env.couplings("CUSTOMER")] == [(hostile, account["accountid"])]

    # review: Start sends the ticked mappings to POST /api/fullsync
    review = get(host, "/api/console/review").form("review-form")
    started = press(host, review, {"mappings": ["CUSTOMER"]})
    assert started.status_code == 202
    assert env.services.report(json.loads(started.get_body())["run"]).run.mappings == ("CUSTOMER",)


def test_actions_need_the_master_key_in_keys_mode(env, host):
    seed(env)
    button = get(host, "/api/console/mappings").button("Run CUSTOMER now")
    refused = host.request(button["data-method"], "/api" + button["data-path"], json.loads(button["data-body"]),
                           key=host.FUNCTION_KEY)
    assert refused.status_code == 401 and len(env.services.runs.list_runs()) == 1     # the seed's full sync only


def test_settings_in_error_are_named_on_the_page_without_a_secret(env, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no local.settings.json here
    for name, value in env.values.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("BCSYNC_CLIENT_SECRET", "s3cret-pasted-with-a-space ")
    monkeypatch.setattr(function_app, "_services", None)
    host = FunctionsHost(function_app.app)
    answer = host.request("GET", "/api/console/mappings", key=host.FUNCTION_KEY)
    page = answer.get_body().decode()
    assert answer.status_code == 503 and "<code>BCSYNC_CLIENT_SECRET</code>" in page and "s3cret" not in page
