"""Both simulators enforce their service's protection limits per user, as the real services do:
requests in a sliding window and requests at once (and Dataverse's execution time), answered with the
service's own 429 (or 503 when a queued request waited too long). Tests lower the limits; the defaults
are the documented ones."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from simulators.businesscentral import AUDIENCE as BC_AUDIENCE
from simulators.businesscentral import errors as bc_errors
from simulators.dataverse import errors as dv_errors
from simulators.http import Limits


class Caller:
    """Raw HTTPS requests with the integration app's token, to one simulator."""

    def __init__(self, stack, service: str):
        self.stack = stack
        if service == "dataverse":
            self.sim, self.url, audience = stack.dataverse, f"{stack.dataverse_url}/api/data/v9.2/accounts", \
                stack.dataverse_url
        else:
            self.sim = stack.business_central
            self.url = f"{stack.bc_url}/api/v2.0/companies({stack.business_central.company_id})/customers"
            audience = BC_AUDIENCE
        client = stack.issuer.clients[stack.ids.integration_client_id]
        self.token = stack.issuer.access_token(audience, app_id=client.client_id, object_id=client.object_id)

    def limit(self, **limits) -> None:
        self.sim.faults.protection.reset(Limits(**limits))

    def post(self, url: str, **kwargs) -> requests.Response:
        return requests.post(url, headers={"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})},
                             verify=str(self.stack.ca.ca_file), timeout=30, **kwargs)

    def get(self) -> requests.Response:
        return requests.get(self.url, headers={"Authorization": f"Bearer {self.token}"},
                            verify=str(self.stack.ca.ca_file), timeout=30)

    def at_once(self, n: int) -> list[requests.Response]:
        with ThreadPoolExecutor(n) as pool:
            return list(pool.map(lambda _: self.get(), range(n)))


@pytest.fixture
def dataverse(stack, isolated):
    return Caller(stack, "dataverse")


@pytest.fixture
def business_central(stack, isolated):
    return Caller(stack, "business central")


def test_the_documented_limits_are_the_defaults():
    assert (dv_errors.LIMITS.requests, dv_errors.LIMITS.window_seconds, dv_errors.LIMITS.concurrent,
            dv_errors.LIMITS.execution_seconds) == (6000, 300, 52, 1200)
    assert (bc_errors.LIMITS.requests, bc_errors.LIMITS.window_seconds, bc_errors.LIMITS.concurrent,
            bc_errors.LIMITS.queue) == (6000, 300, 5, 95)


def test_dataverse_counts_requests_in_a_sliding_window_and_says_when_to_come_back(dataverse):
    dataverse.limit(requests=3, window_seconds=2)
    assert [dataverse.get().status_code for _ in range(3)] == [200, 200, 200]
    refused = dataverse.get()
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "0x80072322"
    wait = int(refused.headers["Retry-After"])
    assert 1 <= wait <= 2
    time.sleep(wait + 0.1)
    assert dataverse.get().status_code == 200


def test_dataverse_counts_a_bulk_action_and_a_batch_as_one_request_each(dataverse):
    """Learn, "Use bulk operation messages" (How are API limits applied?) and "Service protection API limits"
    (a batch avoids the number-of-requests limit): one request each, whatever they hold."""
    dataverse.limit(requests=3, window_seconds=60)
    targets = [{"name": f"Bulk {i}", "@odata.type": "Microsoft.Dynamics.CRM.account"} for i in range(20)]
    assert dataverse.post(f"{dataverse.url}/Microsoft.Dynamics.CRM.CreateMultiple",
                          json={"Targets": targets}).status_code == 200
    parts = "".join(f"--b\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
                    f"GET {dataverse.url}?$top=1 HTTP/1.1\r\nAccept: application/json\r\n\r\n" for _ in range(10))
    batch = dataverse.post(dataverse.url.replace("/accounts", "/$batch"), data=parts + "--b--\r\n",
                           headers={"Content-Type": "multipart/mixed; boundary=b"})
    assert batch.status_code == 200, batch.text
    assert dataverse.get().status_code == 200
    assert dataverse.get().status_code == 429


def test_dataverse_refuses_requests_over_its_concurrency_at_once(dataverse):
    dataverse.limit(requests=100, concurrent=1)
    dataverse.sim.faults.latency_ms = 400
    answers = sorted(r.status_code for r in dataverse.at_once(3))
    assert answers[0] == 200 and 429 in answers
    assert {r.json()["error"]["code"] for r in dataverse.at_once(3) if r.status_code == 429} == {"0x80072326"}


def test_dataverse_limits_the_execution_time_in_the_window(dataverse):
    dataverse.limit(requests=100, execution_seconds=0.5, window_seconds=30)
    dataverse.sim.faults.latency_ms = 300
    assert [dataverse.get().status_code for _ in range(2)] == [200, 200]
    refused = dataverse.get()
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "0x80072321"
    assert int(refused.headers["Retry-After"]) >= 1


def test_business_central_queues_requests_over_its_concurrency_then_refuses(business_central):
    business_central.limit(requests=100, concurrent=1, queue=1)
    business_central.sim.faults.latency_ms = 400
    answers = sorted(r.status_code for r in business_central.at_once(3))
    assert answers == [200, 200, 429]          # one served, one waited its turn, one found the queue full
    refused = [r for r in business_central.at_once(3) if r.status_code == 429][0]
    assert refused.json()["error"]["code"] == "Application_TooManyRequests"
    assert "Retry-After" not in refused.headers   # Business Central does not promise one


def test_business_central_answers_503_when_a_queued_request_waits_too_long(business_central):
    business_central.limit(requests=100, concurrent=1, queue=1, queue_timeout_seconds=0.1)
    business_central.sim.faults.latency_ms = 500
    assert sorted(r.status_code for r in business_central.at_once(2)) == [200, 503]


def test_business_central_counts_requests_in_a_window(business_central):
    business_central.limit(requests=2, window_seconds=60)
    assert [business_central.get().status_code for _ in range(3)] == [200, 200, 429]


def test_limits_are_per_user(stack, dataverse):
    dataverse.limit(requests=1, window_seconds=60)
    assert dataverse.get().status_code == 200 and dataverse.get().status_code == 429
    person = requests.get(dataverse.url, headers={"Authorization": f"Bearer {stack.user_token(stack.dataverse_url)}"},
                          verify=str(stack.ca.ca_file), timeout=30)
    assert person.status_code == 200


def test_business_central_counts_a_batch_as_one_request_whatever_it_holds(stack, business_central):
    business_central.limit(requests=2, window_seconds=60, concurrent=1, queue=0)
    company = f"companies({stack.business_central.company_id})"
    inner = [{"id": str(i), "method": "GET", "url": f"{company}/customers?$top=1"} for i in range(100)]
    batch = requests.post(f"{stack.bc_url}/api/v2.0/$batch", json={"requests": inner},
                          headers={"Authorization": f"Bearer {business_central.token}"},
                          verify=str(stack.ca.ca_file), timeout=30)
    assert batch.status_code == 200 and [r["status"] for r in batch.json()["responses"]] == [200] * 100
    # the hundred inner requests took one place in the window (and one of the concurrent places)
    assert [business_central.get().status_code for _ in range(2)] == [200, 429]
