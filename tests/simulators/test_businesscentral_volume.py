"""The Business Central simulator at volume: a page costs what the page holds, not what the table holds,
and a lookup by ids costs what the ids are. Cost is counted in rows the query looks at (`examined`),
which does not depend on how busy the machine is."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from simulators.businesscentral import BusinessCentralSimulator
from simulators.businesscentral.query import QueryOptions, parse_options, run_query
from simulators.token import TokenIssuer

ROWS = 5_000
PAGE = 200


@pytest.fixture(scope="module")
def sim():
    sim = BusinessCentralSimulator(TokenIssuer())
    seeded = dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc)  # before any write of a test (stamps of one tick tie)
    sim.ids = sim.seed("customers", [{"number": f"C{i:05d}", "displayName": f"Customer {i:05d}",
                                      "city": "Oslo" if i % 2 else "Bergen", "lastModifiedDateTime": seeded}
                                     for i in range(ROWS)])
    return sim


def query(sim, args: dict, page_size: int = PAGE, entity_set: str = "customers"):
    view = sim.catalog.view(entity_set)
    session = sim._session(view, None)
    return run_query(session, view, parse_options(view, args), page_size, sim.query_cache)


def token_of(page) -> str:
    assert page.next_token
    return page.next_token


def test_every_page_of_a_large_table_costs_its_own_rows_only(sim):
    first = query(sim, {})
    assert [r["No."] for r in first.records] == [f"C{i:05d}" for i in range(PAGE)]
    assert first.examined == PAGE + 1                 # the rows of the page, and one to know there is more
    seen, token, pages = [r["SystemId"] for r in first.records], token_of(first), 1
    while token:
        page = query(sim, {"$skiptoken": token})
        assert page.examined <= PAGE + 1
        seen += [r["SystemId"] for r in page.records]
        token, pages = page.next_token, pages + 1
    assert pages == ROWS // PAGE and len(seen) == len(set(seen)) == ROWS


def test_a_filtered_page_walks_only_as_far_as_it_must_and_a_write_between_pages_costs_nothing_more(sim):
    first = query(sim, {"$filter": "city eq 'Oslo'", "$orderby": "displayName desc"})
    assert [r["Name"] for r in first.records][:2] == [f"Customer {ROWS - 1:05d}", f"Customer {ROWS - 3:05d}"]
    assert first.examined <= 2 * PAGE + 2             # every second row matches
    sim.update("customers", sim.ids[0], {"displayName": "Customer 00000 (renamed)"})   # the store changes
    second = query(sim, {"$filter": "city eq 'Oslo'", "$orderby": "displayName desc", "$skiptoken": token_of(first)})
    assert second.records[0]["Name"] == f"Customer {ROWS - 1 - 2 * PAGE:05d}"
    assert second.examined <= 2 * PAGE + 2


def test_changes_since_a_time_start_where_that_time_is(sim):
    time.sleep(0.01)  # past the tick of any earlier test's write: writes within one 1/300 s tick share a stamp
    since = sim.update("customers", sim.ids[10], {"city": "Tromsø"})["lastModifiedDateTime"]
    stamp = since.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{since.microsecond // 1000:03d}Z"
    page = query(sim, {"$filter": f"lastModifiedDateTime ge {stamp}", "$orderby": "lastModifiedDateTime asc"})
    assert [r["SystemId"] for r in page.records] == [sim.ids[10]] and page.examined <= 2


def test_a_lookup_by_ids_or_numbers_costs_the_ids_not_the_table(sim):
    wanted = sim.ids[1000:1400]
    page = query(sim, {"$filter": f"id in ({','.join(wanted)})", "$schemaversion": "2.1"}, page_size=20_000)
    assert sorted(r["SystemId"] for r in page.records) == sorted(wanted) and page.examined == len(wanted)
    numbers = ",".join(f"'c{i:05d}'" for i in range(100, 150))           # codes match whatever the case
    page = query(sim, {"$filter": f"number in ({numbers}) and city eq 'Oslo'", "$schemaversion": "2.1"})
    assert [r["No."] for r in page.records] == [f"C{i:05d}" for i in range(101, 150, 2)] and page.examined == 50
    chain = " or ".join(f"number eq 'C{i:05d}'" for i in (7, 3, 5))     # `or` of eq on one field: the same
    page = query(sim, {"$filter": chain})
    assert [r["No."] for r in page.records] == ["C00003", "C00005", "C00007"] and page.examined == 3


def test_an_ordering_on_a_computed_field_still_answers_in_order(sim):
    page = query(sim, {"$orderby": "balanceDue desc,number asc", "$top": "3"})
    assert [r["No."] for r in page.records] == ["C00000", "C00001", "C00002"] and page.examined == ROWS
    assert query(sim, {"$filter": "city eq 'Oslo'", "$count": "true"}).count == ROWS // 2
    assert run_query(sim._session(sim.catalog.view("customers"), None), sim.catalog.view("customers"),
                     QueryOptions(top=1), PAGE, sim.query_cache).next_token is None
