"""What a scheduled run costs in API requests once 1,000 + 1,000 customers are coupled: the Sales change
feed and the Business Central watermark each cost one read, so a quiet run is two requests and a run
with a few changes per side a handful per direction, however large the tables are."""

from __future__ import annotations

import time

from sync.model import Direction

from .conftest import job

ROWS, CHANGED = 1000, 10


class RequestCount:
    """API requests per job direction (and of schedule checks), counted at both services' HTTP clients."""

    def __init__(self, env):
        self.apis = [env.services.dataverse.api, env.services.business_central.api]
        self.engine = env.services.engine
        self.by_direction: dict[str, int] = {}
        self.sent: list[str] = []
        for api in self.apis:
            self._log(api)
        self._wrap("run", lambda args: args[1].value)
        self._wrap("has_work", lambda args: "has_work")

    def _log(self, api) -> None:
        request = api.session.request

        def logged(method, url, **kwargs):
            self.sent.append(f"{method} {url.split('?')[0][-70:]}")
            return request(method, url, **kwargs)
        api.session.request = logged

    def _wrap(self, name: str, key) -> None:
        original = getattr(self.engine, name)

        def counted(*args, **kwargs):
            before = self.total()
            try:
                return original(*args, **kwargs)
            finally:
                self.by_direction[key(args)] = self.by_direction.get(key(args), 0) + self.total() - before
        setattr(self.engine, name, counted)

    def total(self) -> int:
        return sum(api.requests_sent for api in self.apis)

    def measure(self, what: str, action):
        self.by_direction, self.sent = {}, []
        started = time.perf_counter()
        result = action()
        print(f"{what}: {self.by_direction} in {time.perf_counter() - started:.2f} s")
        for line in self.sent:
            print("   ", line)
        return result


def test_a_scheduled_run_costs_a_few_requests_per_direction_after_a_full_sync(env):
    env.bc.seed("customers", [{"number": f"B{i:05d}", "displayName": f"BC customer {i}", "city": "Lyon"}
                              for i in range(ROWS)])
    env.dv.seed("account", [{"name": f"Sales account {i}", "customertypecode": 3, "address1_city": "Paris"}
                            for i in range(ROWS)])
    env.full_sync(["CUSTOMER"])
    count = RequestCount(env)

    quiet = count.measure("first scheduled run after the full sync", lambda: env.sync(["CUSTOMER"]))
    assert quiet.to_dict()["totals"]["modified"] == 0
    assert set(count.by_direction) == {"to-crm", "from-crm"}
    assert all(n <= 2 for n in count.by_direction.values()), count.by_direction

    customers = [c["id"] for c in env.bc.rows("customers")][:CHANGED]
    accounts = [a["accountid"] for a in env.dv.rows("account") if a["name"].startswith("Sales")][:CHANGED]
    for customer in customers:
        env.bc.update("customers", customer, {"city": "Marseille"})
    for account in accounts:
        env.dv.update("account", account, {"telephone1": "+33 1 23 45 67 89"}, as_user=env.stack.ids.user_systemuser_id)

    # held after the quiet run: the schedule's look finds the changes
    assert count.measure("schedule check", lambda: env.services.engine.has_work("CUSTOMER"))
    assert count.by_direction["has_work"] <= 2
    busy = count.measure(f"scheduled run, {CHANGED} changes per side", lambda: env.sync(["CUSTOMER"]))
    assert job(busy, "CUSTOMER:to-crm").counts.modified == CHANGED
    assert job(busy, "CUSTOMER:from-crm").counts.modified == CHANGED
    # a write of ten rows takes one or two requests, depending on the write path
    assert all(n <= 4 for n in count.by_direction.values()), count.by_direction
    assert {a["accountid"] for a in env.dv.rows("account") if a.get("address1_city") == "Marseille"} != set()
    assert sum(1 for c in env.bc.rows("customers") if c.get("phoneNumber") == "+33 1 23 45 67 89") == CHANGED
    assert Direction.TO_CRM.value in count.by_direction
