"""The AL extension in bc-extension/, bcsync's Business Central client and the Business Central simulator agree.

What bcsync reads and writes through page web services is not kept by hand here: it is derived from the code
(the built-in mappings, the BcTable and Companion declarations, the rules' extra fields, the page filters) and
from a real synchronisation of the sample company against the local stack, with the requests the client makes
recorded on the way (services, $select, $filter, $orderby, the fields of every body, the keys of every URL).
Then, for every page web service and every field:

- the extension publishes the service (src/WebServices.xml) for the page the declarations name;
- the field is a control of the base page (contract/base-pages.json, checked against Microsoft's AL source),
  a primary-key field of the page's table, or a control the extension adds (src/*.PageExt.al);
- the simulator serves it ($metadata of ODataV4, over HTTPS);
- the permission set grants what the requests need (contract/tables.json), and no more.

A field bcsync starts to use that nobody declared makes this test fail; so does a known gap that went away.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
import uuid
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

import pytest

import sync
from shared.businesscentral import BusinessCentralClient
from simulators import sample
from simulators.businesscentral.catalog import build_catalog
from sync.mappings import builtin_mappings
from sync.model import BcTable, Convert, Side
from tests.e2e.conftest import Env

ROOT = Path(__file__).resolve().parents[2]
EXT = ROOT / "bc-extension"
BASE = json.loads((EXT / "contract" / "base-pages.json").read_text())["services"]
TABLES = json.loads((EXT / "contract" / "tables.json").read_text())

# -- reading the extension -------------------------------------------------------------------------------

_NAME = r'(?:"[^"]+"|\w+)'


def unquote(name: str) -> str:
    return name[1:-1] if name.startswith('"') else name


def odata_name(control: str) -> str:
    """The OData property a page control is published as: % -> Percent, every character that cannot be part
    of a name -> _, runs of _ merged, leading and trailing _ dropped ("Freight G/L Acc. No." ->
    Freight_G_L_Acc_No, "Payment Discount %" -> Payment_Discount_Percent)."""
    name = re.sub(r"[^0-9A-Za-z_]", "_", control.replace("%", "Percent"))
    return re.sub(r"_+", "_", name).strip("_")


def page_extensions() -> dict[str, dict]:
    """Base page name -> {id, name, anchor, controls: {control: OData name}} from src/*.PageExt.al."""
    found = {}
    for path in sorted((EXT / "src").glob("*.PageExt.al")):
        text = re.sub(r"//[^\n]*", "", path.read_text())
        head = re.search(rf'pageextension\s+(\d+)\s+({_NAME})\s+extends\s+({_NAME})', text)
        assert head, f"{path.name}: no pageextension header"
        anchors = re.findall(rf"add(?:first|last|after|before)\(({_NAME})\)", text)
        # a control shows a field of the record (Rec."Quote No.") or a page variable whose OnValidate sets one
        controls = [unquote(c) for c in re.findall(rf"\bfield\(({_NAME})\s*;\s*(?:Rec\.)?{_NAME}\s*\)", text)]
        base = unquote(head.group(3))
        assert base not in found, f"two extensions of page {base}"
        found[base] = {"id": int(head.group(1)), "name": unquote(head.group(2)), "file": path.name,
                       "anchors": [unquote(a) for a in anchors], "controls": {c: odata_name(c) for c in controls}}
    return found


def web_services() -> dict[str, int]:
    """Service name -> page ID from the TenantWebService entries of the extension."""
    services = {}
    for path in sorted((EXT / "src").glob("*.xml")):
        root = ET.parse(path).getroot()
        for ws in root.iter("TenantWebService"):
            assert ws.findtext("ObjectType") == "Page", ET.tostring(ws)
            assert ws.findtext("Published") == "true", ET.tostring(ws)
            name = ws.findtext("ServiceName")
            assert name not in services, f"service {name} published twice"
            services[name] = int(ws.findtext("ObjectID"))
    return services


def permission_set() -> tuple[dict[str, str], dict[str, str], dict]:
    """(tabledata name -> letters, page name -> letters, header) of the extension's permission set."""
    [path] = (EXT / "src").glob("*.PermissionSet.al")
    text = re.sub(r"//[^\n]*", "", path.read_text())
    head = re.search(rf"permissionset\s+(\d+)\s+({_NAME})", text)
    tabledata = {unquote(n): p for n, p in re.findall(rf"\btabledata\s+({_NAME})\s*=\s*([RIMD]+)", text)}
    pages = {unquote(n): p for n, p in re.findall(rf"\bpage\s+({_NAME})\s*=\s*(X)", text)}
    return tabledata, pages, {"id": int(head.group(1)), "name": unquote(head.group(2)),
                              "assignable": bool(re.search(r"Assignable\s*=\s*true", text))}


# -- what bcsync uses, from the code ---------------------------------------------------------------------

_KEYWORDS = {"eq", "ne", "gt", "ge", "lt", "le", "and", "or", "not", "in", "has", "startswith", "endswith",
             "contains", "true", "false", "null", "asc", "desc"}


def filter_fields(expression: str | None) -> set[str]:
    """The properties an OData $filter or $orderby names (not its literals)."""
    if not expression:
        return set()
    text = re.sub(r"'(?:[^']|'')*'", " ", expression)
    text = re.sub(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b", " ", text)
    text = re.sub(r"\b\d{4}-\d{2}-\d{2}(?:T[0-9:.]+(?:Z|[+-]\d{2}:\d{2})?)?\b", " ", text)
    text = re.sub(r"\b\d+(?:\.\d+)?\b", " ", text)
    return {w for w in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", text) if w.lower() not in _KEYWORDS}


def declared_tables() -> list[BcTable]:
    """Every BcTable the sync package declares at module level (tables, rules, processes)."""
    found = []
    for info in pkgutil.walk_packages(sync.__path__, "sync."):
        module = importlib.import_module(info.name)
        found += [v for v in vars(module).values() if isinstance(v, BcTable)]
    return found


def static_usage() -> dict[str, set[str]]:
    """Page service -> fields, from the declarations: page tables (keys, SystemId, SystemModifiedAt), companions
    (key, fixed keys, fields), the BC fields of mappings on page tables, their rules' extra fields and filters,
    and the key fields that lookups read from page tables."""
    used: dict[str, set[str]] = defaultdict(set)
    both_modes = [m for unit_groups in (False, True) for extended in (False, True)
                  for m in builtin_mappings(unit_groups, extended_pricing=extended)]
    mappings = {m.name: m for m in both_modes}
    tables = declared_tables() + [m.bc for m in both_modes]
    for t in tables:
        if t.is_page:
            used[t.entity_set] |= {*t.page_keys, t.id_field, *filter(None, [t.modified_field])}
        if t.companion:
            c = t.companion
            used[c.service] |= {c.key[1], *(k for k, _ in c.fixed_keys), *c.fields.values()}
    for m in both_modes:
        if m.bc.is_page:
            used[m.bc.entity_set] |= {f.bc for f in m.fields if f.bc} | filter_fields(m.bc_filter)
            if m.rules is not None:
                used[m.bc.entity_set] |= set(m.rules.extra_fields.get(Side.BC, ()))
        for f in m.fields:
            if f.convert is Convert.LOOKUP and f.bc_key and mappings[f.lookup_mapping].bc.is_page:
                used[mappings[f.lookup_mapping].bc.entity_set].add(f.bc_key)
    return dict(used)


class Recorder:
    """Records what BusinessCentralClient sends: per request the method, entity set or page service, and the
    fields it names ($select, $filter, $orderby, body, and the key fields of a page row's URL)."""

    def __init__(self):
        self.requests: list[tuple[str, str, bool, frozenset[str]]] = []

    def install(self, mp: pytest.MonkeyPatch) -> None:
        pages, create, update = BusinessCentralClient.pages, BusinessCentralClient.create, BusinessCentralClient.update
        read, delete = BusinessCentralClient.read, BusinessCentralClient.delete
        rec = self

        def recorded_pages(client, table, *, select=(), filter="", orderby="", top=None, page_size=500, **more):
            rec.add("GET", table, set(select) | filter_fields(filter) | filter_fields(orderby))
            return pages(client, table, select=select, filter=filter, orderby=orderby, top=top, page_size=page_size,
                         **more)

        def recorded_read(client, table, *, select, filter, **more):   # a read sent in a $batch
            rec.add("GET", table, set(select) | filter_fields(filter))
            return read(client, table, select=select, filter=filter, **more)

        def recorded_create(client, table, body):
            rec.add("POST", table, set(body))
            return create(client, table, body)

        def recorded_update(client, table, address, body, etag):
            rec.add("PATCH", table, set(body) | (set(table.page_keys) if table.is_page else set()))
            return update(client, table, address, body, etag)

        mp.setattr(BusinessCentralClient, "pages", recorded_pages)
        mp.setattr(BusinessCentralClient, "read", recorded_read)
        mp.setattr(BusinessCentralClient, "create", recorded_create)

        def recorded_delete(client, table, address):
            rec.add("DELETE", table, set(table.page_keys) if table.is_page else set())
            return delete(client, table, address)

        mp.setattr(BusinessCentralClient, "update", recorded_update)
        mp.setattr(BusinessCentralClient, "delete", recorded_delete)

    def add(self, method: str, table: BcTable, fields: set[str]) -> None:
        self.requests.append((method, table.entity_set, table.is_page, frozenset(fields)))

    def page_fields(self) -> dict[str, set[str]]:
        used: dict[str, set[str]] = defaultdict(set)
        for _, service, is_page, fields in self.requests:
            if is_page:
                used[service] |= fields
        return dict(used)

    def calls(self) -> set[tuple[str, str, str]]:
        """(kind, entity set or service, method) for every request: kind is api or pages."""
        return {("pages" if is_page else "api", name, method) for method, name, is_page, _ in self.requests}


def _sales_user(env: Env) -> str:
    return env.stack.ids.user_systemuser_id


def _run_sample(env: Env) -> None:
    """The sample company, synchronised in full with the sample's configuration templates; then what a salesperson does in Sales that bcsync writes to
    Business Central through pages (a customer's fax and shipping agent, a contact's name parts and pager, a
    service product, a resource's name, an order with shipping agent, payment discount % and work description),
    a scheduled run, and an availability look-up."""
    sample.seed(env.dv, env.bc)
    for mapping, template in (("CUSTOMER", "BCICUST"), ("ITEM-PRODUCT", "BCIITEM"), ("RESOURCE-PRODUCT", "BCIRES"),
                              ("VENDOR", "BCIVEND")):
        env.services.set_mapping(mapping, {"template_code": template})
    report = env.full_sync()
    assert report.run.status.name == "DONE", report.to_dict()
    user = _sales_user(env)

    accounts = {a["name"]: a for a in env.dv.rows("account")}
    env.dv.update("account", accounts["Adatum Corporation"]["accountid"],
                  {"fax": "+1 404 555 0199", "address1_shippingmethodcode": 4}, as_user=user)   # UPS
    ann = next(c for c in env.dv.rows("contact") if c.get("lastname") == "Lee" or c.get("fullname") == "Ann Lee")
    env.dv.update("contact", ann["contactid"], {"middlename": "Q", "pager": "+1 404 555 0112"}, as_user=user)
    products = {p["productnumber"]: p for p in env.dv.rows("product")}
    env.dv.update("product", products["R0010"]["productid"], {"name": "Installation on site"}, as_user=user)
    hours = products["R0010"]
    [service] = env.dv.seed("product", [{"name": "Assembly", "productnumber": "R0090", "producttypecode": 3,
                                         "defaultuomscheduleid": hours["defaultuomscheduleid"],
                                         "defaultuomid": hours["defaultuomid"]}], as_user=user)
    env.dv.update("product", service, {"statecode": 0, "statuscode": 1}, as_user=user)
    report = env.full_sync(["RESOURCE-PRODUCT"])
    assert report.run.status.name == "DONE", report.to_dict()

    desk = products["1896-S"]
    usd = next(c["transactioncurrencyid"] for c in env.dv.rows("transactioncurrency") if c["isocurrencycode"] == "USD")
    [order] = env.dv.seed("salesorder", [{"name": "PO 7100", "customerid": accounts["Adatum Corporation"]["accountid"],
                                          "transactioncurrencyid": usd, "shippingmethodcode": 4,
                                          "discountpercentage": 5, "description": "Deliver before noon."}],
                          as_user=user)
    env.dv.seed("salesorderdetail", [{"salesorderid": order, "productid": desk["productid"],
                                      "uomid": desk["defaultuomid"],
                                      "quantity": 1, "priceperunit": 1000, "ispriceoverridden": True}], as_user=user)
    env.dv.update("salesorder", order, {"statecode": 1, "statuscode": 3}, as_user=user)
    [result] = env.services.create_sales_orders([order])
    assert result.status == "created", result.message
    env.services.item_availability("1896-S")
    report = env.sync()
    assert report.run.status.name == "DONE", report.to_dict()

    # a quote processed into a Business Central quote, then revised: its lines are replaced
    env.configure(BCSYNC_AUTO_PROCESS_SALES_QUOTES="true")
    [quote] = env.dv.seed("quote", [{"name": "Desks", "customerid": accounts["Adatum Corporation"]["accountid"],
                                     "transactioncurrencyid": usd}], as_user=user)
    env.dv.seed("quotedetail", [{"quoteid": quote, "productid": desk["productid"], "uomid": desk["defaultuomid"],
                                 "quantity": 2, "priceperunit": 1000}], as_user=user)
    env.dv.update("quote", quote, {"statecode": 1, "statuscode": 3}, as_user=user)
    report = env.sync(["SALESQUOTE-QUOTE"])
    revision = env.dv.revise_quote(quote, as_user=user)
    env.dv.update("quote", revision, {"statecode": 1, "statuscode": 3}, as_user=user)
    report = env.sync(["SALESQUOTE-QUOTE"])
    assert report.run.status.name == "DONE" and not [f for f in env.errors() if f.mapping == "SALESQUOTE-QUOTE"]

    # unit-group mode reads units of measure and unit groups through their pages
    env.services.uncouple_all("UNIT OF MEASURE")
    env.configure(BCSYNC_UNIT_MODE="unit-groups")
    report = env.full_sync(["UNIT GROUP", "ITEM UOM", "RESOURCE UOM"])
    assert report.run.status.name == "DONE", report.to_dict()

    # extended pricing reads price lists and their lines through the extension's own pages
    for mapping in ("CUSTPRCGRP-PRICE", "SALESPRC-PRODPRICE"):
        env.services.uncouple_all(mapping)
    env.configure(BCSYNC_PRICING="extended")
    report = env.full_sync(["PLHEADER-PRICE", "PLLINE-PRODPRICE"])
    assert report.run.status.name == "DONE", report.to_dict()


@pytest.fixture(scope="module")
def observed(stack):
    """Runs the sample synchronisation once for this module, recording the client's requests; returns the
    recorder and the simulator's $metadata (entity set -> (properties, key))."""
    stack.reset()
    tag = uuid.uuid4().hex[:10]
    env = Env(stack, stack.settings_values(BCSYNC_TABLE_PREFIX=f"t{tag}", BCSYNC_QUEUE_NAME=f"jobs-{tag}"))
    recorder = Recorder()
    with pytest.MonkeyPatch.context() as mp:
        recorder.install(mp)
        _run_sample(env)
    response = env.services.business_central.api.request("GET", "ODataV4/$metadata",
                                                         headers={"Accept": "application/xml"})
    return recorder, parse_metadata(response.text)


def parse_metadata(text: str) -> dict[str, tuple[set[str], list[str]]]:
    ns = {"edm": "http://docs.oasis-open.org/odata/ns/edm"}
    root = ET.fromstring(text)
    types = {}
    for t in root.iterfind(".//edm:EntityType", ns):
        types[t.get("Name")] = ({p.get("Name") for p in t.iterfind("edm:Property", ns)},
                                [k.get("Name") for k in t.iterfind("edm:Key/edm:PropertyRef", ns)])
    return {s.get("Name"): types[s.get("EntityType").split(".")[-1]] for s in root.iterfind(".//edm:EntitySet", ns)}


@pytest.fixture(scope="module")
def used(observed):
    """Page service -> every field bcsync uses, from the declarations and from the recorded requests."""
    recorder, _ = observed
    merged: dict[str, set[str]] = defaultdict(set)
    for source in (static_usage(), recorder.page_fields()):
        for service, fields in source.items():
            merged[service] |= fields
    return dict(merged)


def published_fields(service: str) -> dict[str, str]:
    """OData name -> where it comes from, for one service: base controls, the table's key, the extension."""
    base = BASE[service]
    fields = {name: f"control {control!r} of page {base['page']}" for control, name in base["controls"].items()}
    fields.update({name: f"key field {field!r} of table {base['source_table']}"
                   for field, name in base["primary_key"].items()})
    for control, name in page_extensions().get(base["page_name"], {"controls": {}})["controls"].items():
        fields[name] = f"control {control!r} added by the extension"
    return fields


# -- the tests -------------------------------------------------------------------------------------------


def test_the_recorded_run_used_every_page_service(observed, used):
    recorder, _ = observed
    touched = {name for kind, name, _ in recorder.calls() if kind == "pages"}
    assert set(used) - touched == set(), "services the declarations name that the sample run never called"
    # the run wrote through the pages bcsync writes to, so their write fields were recorded, not assumed
    written = {name for kind, name, method in recorder.calls() if kind == "pages" and method != "GET"}
    assert {"CustomerCard", "ContactCard", "Resources", "SalesOrder"} <= written, written
    # and the one delete bcsync makes: a revised quote's lines
    assert ("api", "salesQuoteLines", "DELETE") in recorder.calls()


def test_the_extension_publishes_every_page_service_bcsync_calls_and_no_other(used):
    services = web_services()
    assert set(services) == set(used), (f"published but unused: {sorted(set(services) - set(used))}; "
                                        f"used but not published: {sorted(set(used) - set(services))}")
    assert set(BASE) == set(used), f"base-pages.json must declare exactly the services bcsync uses: {sorted(used)}"
    extensions = page_extensions()
    for service, page in services.items():
        declared = BASE[service]
        assert page == declared["page"], f"{service} publishes page {page}, the declaration says {declared['page']}"
        if declared.get("own_page"):
            assert f'page {page} "{declared["page_name"]}"' in (EXT / declared["source"].split("bc-extension/")[1]) \
                .read_text(), f"{service}: {declared['source']} does not declare page {page}"
            continue
        assert declared["page_name"] in extensions, f"no page extension of {declared['page_name']} ({service})"


def test_every_field_bcsync_uses_is_published_or_a_known_gap(used):
    problems, gaps = [], {}
    for service, fields in sorted(used.items()):
        published = published_fields(service)
        missing = sorted(fields - set(published))
        known = BASE[service]["known_gaps"]
        gaps[service] = missing
        unexplained = [f for f in missing if f not in known]
        if unexplained:
            problems.append(f"{service} (page {BASE[service]['page']} {BASE[service]['page_name']}): {unexplained} "
                            f"are neither controls of the base page (contract/base-pages.json) nor added by the "
                            f"extension (bc-extension/src)")
        stale = sorted(set(known) - set(missing))
        if stale:
            problems.append(f"{service}: known gaps {stale} are no longer gaps; remove them from base-pages.json")
    assert not problems, "\n".join(problems)


def test_declared_control_names_give_the_declared_odata_names():
    for service, declared in BASE.items():
        for control, name in {**declared["controls"], **declared["primary_key"]}.items():
            assert odata_name(control) == name, f"{service}: control {control!r} is published as {odata_name(control)}"
        for key in declared["odata_key"]:
            published = {**declared["controls"], **declared["primary_key"]}.values()
            assert key in published or key == "SystemId", (service, key)


def test_every_page_extension_adds_the_change_tracking_fields_where_the_page_lacks_them():
    extensions, app = page_extensions(), json.loads((EXT / "app.json").read_text())
    extended = {service: d for service, d in BASE.items() if not d.get("own_page")}
    assert {d["page_name"] for d in extended.values()} == set(extensions)
    ranges = [(r["from"], r["to"]) for r in app["idRanges"]]
    ids, names = set(), set()
    for service, declared in extended.items():
        ext = extensions[declared["page_name"]]
        added = ext["controls"]
        base_names = {odata_name(c) for c in declared["controls"]}
        for tracking in ("SystemId", "SystemModifiedAt"):
            assert (tracking in added) != (tracking in base_names), (
                f"{ext['file']}: {tracking} must come from exactly one of the base page and the extension")
        clash = set(added) & set(declared["controls"])
        assert not clash, f"{ext['file']} adds controls the base page already has: {clash}"
        assert ext["anchors"] == [declared["anchor"]], (
            f"{ext['file']} adds to {ext['anchors']}, not {declared['anchor']}")
        assert any(lo <= ext["id"] <= hi for lo, hi in ranges), f"{ext['file']}: id {ext['id']} outside idRanges"
        assert ext["id"] not in ids and ext["name"] not in names and len(ext["name"]) <= 30, ext
        ids.add(ext["id"])
        names.add(ext["name"])


def test_app_json_is_a_per_tenant_cloud_extension():
    app = json.loads((EXT / "app.json").read_text())
    uuid.UUID(app["id"])
    assert app["publisher"] == "bcsync" and app["target"] == "Cloud"
    assert all(50000 <= r["from"] <= r["to"] <= 99999 for r in app["idRanges"])
    for key in ("name", "version", "platform", "application", "runtime"):
        assert app.get(key), key
    _, _, header = permission_set()
    assert any(r["from"] <= header["id"] <= r["to"] for r in app["idRanges"])


def test_the_simulator_serves_every_field_bcsync_uses(observed, used):
    _, metadata = observed
    problems = []
    for service in sorted(set(used) | set(web_services())):
        if service not in metadata:
            problems.append(f"the simulator publishes no {service}")
            continue
        properties, key = metadata[service]
        missing = sorted(used.get(service, set()) - properties)
        if missing:
            problems.append(f"the simulator's {service} lacks {missing}")
    assert not problems, "\n".join(problems)


def test_services_bcsync_writes_are_addressed_by_the_key_business_central_uses(observed):
    recorder, metadata = observed
    tables = {t.entity_set: t for t in declared_tables() if t.is_page}
    for m in builtin_mappings():
        if m.bc.companion:
            c = m.bc.companion
            tables[c.service] = BcTable.page(c.service, "", (*(k for k, _ in c.fixed_keys), c.key[1]))
    for kind, service, method in sorted(recorder.calls()):
        if kind == "pages" and method == "PATCH":
            client_key = list(tables[service].page_keys)
            assert client_key == BASE[service]["odata_key"], f"bcsync addresses {service} rows by {client_key}"
            assert metadata[service][1] == client_key, f"the simulator keys {service} by {metadata[service][1]}"


def test_the_permission_set_grants_what_bcsync_needs_and_no_more(observed):
    recorder, _ = observed
    tabledata, pages, header = permission_set()
    assert header["assignable"] and len(header["name"]) <= 20
    problems = []
    for kind, name, method in sorted(recorder.calls()):
        if TABLES[kind].get(name, {}).get(method) is None:
            problems.append(f"contract/tables.json has no {method} for {kind} {name}")
    for service, declared in BASE.items():
        assert declared["source_table"] in TABLES["pages"][service]["GET"], service
    for entries in (TABLES["api"], TABLES["pages"]):
        for methods in entries.values():
            for rights in methods.values():
                for table, letters in rights.items():
                    granted = set(tabledata.get(table, ""))
                    if not set(letters) <= granted:
                        problems.append(f"the permission set grants {table} {''.join(sorted(granted)) or 'nothing'}, "
                                        f"needs {letters}")
    declared_needs: dict[str, set[str]] = defaultdict(set)
    for entries in (TABLES["api"], TABLES["pages"]):
        for methods in entries.values():
            for rights in methods.values():
                for table, letters in rights.items():
                    declared_needs[table] |= set(letters)
    for table, letters in tabledata.items():
        extra = set(letters) - declared_needs.get(table, set())
        if extra:
            problems.append(f"the permission set grants {table} {''.join(sorted(extra))} that no request needs")
    if set(pages) != {d["page_name"] for d in BASE.values()}:
        problems.append(f"the permission set must give X on exactly the published pages, not {sorted(pages)}")
    assert not problems, "\n".join(problems)


def test_every_page_action_bcsync_calls_is_a_service_enabled_procedure_the_simulator_serves():
    """run_action(<table>, ..., "<name>") in the sync package: a [ServiceEnabled] procedure of the extension of the
    table's companion page (API v2.0 orders have no Reopen or Release), served by the simulator's page."""
    tables = {name: value for module in pkgutil.walk_packages(sync.__path__, "sync.")
              for name, value in vars(importlib.import_module(module.name)).items() if isinstance(value, BcTable)}
    calls = set()
    for path in (ROOT / "sync").rglob("*.py"):
        calls |= set(re.findall(r"run_action\((\w+), [^,]+, \"(\w+)\"\)", path.read_text()))
    assert calls, "no page action found in the sync package"
    bases = {service: declared["page_name"] for service, declared in BASE.items()}
    served = build_catalog().pages
    for table_name, action in sorted(calls):
        page = tables[table_name].companion.service
        text = re.sub(r"//[^\n]*", "", (EXT / "src" / page_extensions()[bases[page]]["file"]).read_text())
        assert re.search(rf"\[ServiceEnabled\]\s*procedure\s+{action}\(var ActionContext: WebServiceActionContext\)",
                         text), f"{page}: no [ServiceEnabled] procedure {action}"
        assert action in served[page].actions, f"the simulator's {page} has no action {action}"
