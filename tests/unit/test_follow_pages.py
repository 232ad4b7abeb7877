"""follow_pages reads the next page while the caller works on the current one: pages in order, one page
ahead at most, errors when the caller reaches the page, nothing left running when the caller stops."""

from __future__ import annotations

import json
import threading
import tracemalloc

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace

from shared.businesscentral import BusinessCentralClient, BusinessCentralEndpoint
from shared import odata
from shared.odata import follow_pages
from sync.errors import ServiceUnavailableError
from sync.model import BcTable


class FakeApi:
    """Pages "p0".."p{n-1}" linked by nextLink; `fail_at` raises on that page, `loop_at` links to itself;
    requests from page `held_from` on wait until `release` is set. Records the requests, their threads
    and the span current in each."""

    service = "Test"

    def __init__(self, pages: int, fail_at: int | None = None, loop_at: int | None = None, held_from: int = 0):
        self.pages, self.fail_at, self.loop_at, self.held_from = pages, fail_at, loop_at, held_from
        self.sent: list[tuple[str, dict | None, dict]] = []
        self.threads: set[str] = set()
        self.contexts: list[object] = []
        self.answered = threading.Event()
        self.release = threading.Event()
        self.release.set()
        self.held = threading.Event()

    def get_text(self, url, params=None, headers=None):
        return json.dumps(self.body(url, params, headers))

    def body(self, url, params=None, headers=None):
        self.sent.append((url, params, headers))
        self.threads.add(threading.current_thread().name)
        self.contexts.append(trace.get_current_span())
        index = int(url.rsplit("p", 1)[1])
        if index >= self.held_from:
            self.held.set()
            self.release.wait(5)
        if index == self.fail_at:
            self.answered.set()
            raise ServiceUnavailableError(f"page {index} failed")
        body = {"value": [f"row {index}.{i}" for i in range(2)]}
        if index + 1 < self.pages:
            body["@odata.nextLink"] = f"https://svc/p{index + 1}"
        if index == self.loop_at:
            body["@odata.nextLink"] = f"https://svc/p{index}"
        self.answered.set()
        return body


def test_pages_come_in_order_with_the_first_request_carrying_the_query():
    api = FakeApi(4)
    pages = list(follow_pages(api, "p0", {"$top": "2"}, {"Prefer": "x"}))
    assert pages == [[f"row {i}.0", f"row {i}.1"] for i in range(4)]
    assert [url for url, _, _ in api.sent] == ["p0", "https://svc/p1", "https://svc/p2", "https://svc/p3"]
    assert api.sent[0][1] == {"$top": "2"} and all(params is None for _, params, _ in api.sent[1:])
    assert all(headers == {"Prefer": "x"} for _, _, headers in api.sent)


def test_the_next_page_is_read_while_the_caller_works_but_never_two_ahead():
    api = FakeApi(5)
    pages = follow_pages(api, "p0", None, {})
    first = next(pages)
    api.answered.clear()
    assert api.answered.wait(5)                     # page 1 was fetched while the caller holds page 0
    assert first == ["row 0.0", "row 0.1"] and len(api.sent) == 2
    threading.Event().wait(0.05)
    assert len(api.sent) == 2                       # and nothing further until the caller takes page 1
    next(pages)
    api.answered.clear()
    assert api.answered.wait(5) and len(api.sent) == 3
    assert api.threads == {"next-page_0"}           # one background reader, not one per page
    pages.close()


def test_a_failed_page_raises_when_the_caller_reaches_it():
    api = FakeApi(5, fail_at=2)
    pages = follow_pages(api, "p0", None, {})
    assert next(pages) == ["row 0.0", "row 0.1"]
    assert next(pages) == ["row 1.0", "row 1.1"]   # page 2 has failed in the background meanwhile
    with pytest.raises(ServiceUnavailableError, match="page 2 failed"):
        next(pages)
    assert len(api.sent) == 3


def test_a_repeated_next_link_fails_after_the_page_that_sent_it():
    api = FakeApi(5, loop_at=1)
    pages = follow_pages(api, "p0", None, {})
    assert next(pages) and next(pages) == ["row 1.0", "row 1.1"]
    with pytest.raises(ServiceUnavailableError, match="same next page link twice"):
        next(pages)


def test_a_caller_that_stops_early_waits_for_the_request_in_flight_and_leaves_no_thread():
    api = FakeApi(10, held_from=1)
    api.release.clear()                             # the read of page 1 will be held mid-request
    pages = follow_pages(api, "p0", None, {})
    next(pages)
    assert api.held.wait(5)                         # the read-ahead of page 1 is in flight
    api.answered.clear()
    closer = threading.Thread(target=pages.close)
    closer.start()
    closer.join(0.2)
    assert closer.is_alive()                        # close waits for the answer rather than abandoning it
    api.release.set()
    closer.join(5)
    assert not closer.is_alive() and api.answered.is_set()
    assert len(api.sent) == 2                       # page 2 was never asked for
    assert not [t for t in threading.enumerate() if t.name.startswith("next-page")]


def test_the_background_reads_run_in_the_callers_telemetry_context():
    api = FakeApi(3)
    span = trace.NonRecordingSpan(trace.SpanContext(trace_id=1, span_id=2, is_remote=False))
    token = otel_context.attach(trace.set_span_in_context(span))
    try:
        list(follow_pages(api, "p0", None, {}))
    finally:
        otel_context.detach(token)
    assert api.contexts == [span, span, span]


def test_a_read_of_one_page_costs_one_request():
    api = FakeApi(1)
    assert list(follow_pages(api, "p0", {"$top": "2"}, {})) == [["row 0.0", "row 0.1"]]
    threading.Event().wait(0.05)
    assert [url for url, _, _ in api.sent] == ["p0"]


class RowsApi(FakeApi):
    """Pages of two customers each, as Business Central answers them; keeps every answer it gave."""

    def __init__(self, pages: int):
        super().__init__(pages)
        self.answers: list[dict] = []

    def body(self, url, params=None, headers=None):
        body = super().body(url if "svc" in url else "p0", params, headers)  # the first asks for the collection
        body["value"] = [{"id": row, "number": row, "@odata.etag": "W/\"1\""} for row in body["value"]]
        self.answers.append(body)
        return body


def test_a_page_of_records_comes_in_parts_read_as_the_caller_asks(monkeypatch):
    monkeypatch.setattr(odata, "WORK_ROWS", 1)
    api = RowsApi(3)
    endpoint = BusinessCentralEndpoint(BusinessCentralClient(api, "company"))
    pages = endpoint.read_changed(BcTable("customers", "Customer", modified_field=None), ["number"], since=None)
    assert [r.values["number"] for r in next(pages)] == ["row 0.0"]
    assert [[r.id for r in page] for page in pages] == [["row 0.1"], ["row 1.0"], ["row 1.1"], ["row 2.0"],
                                                         ["row 2.1"]]
    assert len(api.sent) == 3


def _held_at_peak(read) -> int:
    """Bytes Python held at most while `read` ran, beyond what it held before."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        read()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


class LargePageApi(FakeApi):
    """One page of 20,000 customers, as Business Central sends its largest pages; its text made beforehand."""

    def __init__(self):
        super().__init__(1)
        self.text = json.dumps({"value": [
            {"id": f"{i:08d}-0000-0000-0000-000000000000", "number": f"C{i:06d}", "displayName": f"Customer {i}",
             "@odata.etag": f"W/\"{i}\""} for i in range(20_000)]})

    def get_text(self, url, params=None, headers=None):
        self.sent.append((url, params, headers))
        return self.text


def test_a_large_page_is_held_as_text_and_parsed_a_part_at_a_time():
    api = LargePageApi()
    parsed = _held_at_peak(lambda: json.loads(api.text))

    def read_all() -> None:
        for part in follow_pages(api, "p0", None, {}):
            assert len(part) <= odata.WORK_ROWS
            part.clear()  # as the endpoints do while they make records of the rows

    # one part of the rows at a time: well under the page parsed at once
    assert _held_at_peak(read_all) < parsed / 2


def _page(text: str) -> tuple[str | None, list[list[dict]]]:
    page = odata.CollectionPage("Business Central", text)
    return page.next_link, list(page.parts())


def test_the_next_link_is_found_before_the_rows_are_parsed_wherever_the_answer_puts_it(monkeypatch):
    monkeypatch.setattr(odata, "WORK_ROWS", 2)
    tricky = {"a": 2, "note": 'a text with "@odata.nextLink": "https://wrong" in it'}
    assert _page(json.dumps({"@odata.context": "c", "value": [{"a": 1}, tricky, {"a": 3}],
                             "@odata.nextLink": "https://next"})) == ("https://next", [[{"a": 1}, tricky], [{"a": 3}]])
    assert _page(' { "@odata.nextLink" : "https://first" ,\n "value" : [ {"a": 1} ] } ') == (
        "https://first", [[{"a": 1}]])
    assert _page('{"value": []}') == (None, [[]])


@pytest.mark.parametrize("text, link, rows", [
    # a row's value that is the annotation's name, on a last page and on a page with a next link
    ('{"value": [{"a": "@odata.nextLink"}, {"a": "x \\"@odata.nextLink"}]}', None,
     [{"a": "@odata.nextLink"}, {"a": 'x "@odata.nextLink'}]),
    ('{"value": [{"a": "@odata.nextLink"}], "@odata.nextLink": "https://next"}', "https://next",
     [{"a": "@odata.nextLink"}]),
    # a nested member of that name, in the last row of a last page and of a page with a next link
    ('{"value": [{"n": {"@odata.nextLink": "https://wrong"}}]}', None, [{"n": {"@odata.nextLink": "https://wrong"}}]),
    ('{"value": [{"n": {"@odata.nextLink": "https://wrong"}}],\n "@odata.nextLink" : "https://next" ,"x": 1 }\n',
     "https://next", [{"n": {"@odata.nextLink": "https://wrong"}}]),
])
def test_only_the_answer_s_own_next_link_counts_never_a_row_s(text, link, rows):
    assert _page(text) == (link, [rows])


def test_rows_share_their_field_names():
    first, second = _page(json.dumps({"value": [{"name" + "": 1}, {"name": 2}]}))[1][0]
    [a], [b] = first, second
    assert a is b


@pytest.mark.parametrize("text", ['{"value": [{"a": 1}', '{"value": [{"a": 1} {"a": 2}]}', "<html>busy</html>",
                                  '{"@odata.nextLink": "https://a", "value": [], "@odata.nextLink": "https://b"}',
                                  '{"value": [{"a": 1}]} and more', '{"value": [], "x": 1} {}'])
def test_an_unreadable_page_is_a_service_in_trouble(text):
    with pytest.raises(ServiceUnavailableError, match="not readable JSON"):
        _page(text)
