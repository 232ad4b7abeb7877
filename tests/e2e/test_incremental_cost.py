"""What a scheduled run costs in API requests once 1,000 + 1,000 customers are coupled: the Sales change
feed and the Business Central watermark each cost one read, so a quiet run is about two requests, and a
run with a few changes per side four per direction (three reads and one write), however large the tables are."""

from __future__ import annotations

import datetime as dt
import os
import time

from .conftest import job

ROWS, CHANGED = int(os.environ.get("BCSYNC_TEST_ROWS", 1000)), 10


class RequestCount:
    """API requests (and the writes among them) per job direction and per schedule check, counted at
    both services' HTTP clients; each request is listed when measured."""

    def __init__(self, env):
        self.apis = [env.services.dataverse.api, env.services.business_central.api]
        self.engine = env.services.engine
        self.requests: dict[str, int] = {}
        self.writes: dict[str, int] = {}
        self.sent: list[str] = []
        self.current = ""
        for session in {id(api.session): api.session for api in self.apis}.values():  # the two may share one
            self._log(session)
        self._wrap("run", lambda args: args[1].value)
        self._wrap("has_work", lambda args: "schedule check")

    def _log(self, session) -> None:
        request = session.request

        def logged(method, url, **kwargs):
            if url.startswith(tuple(api.base_url for api in self.apis)):  # not sign-in, which a cold worker does
                self.sent.append(f"{self.current}: {method} {url.split('?')[0][-50:]}")
                if method != "GET":
                    self.writes[self.current] = self.writes.get(self.current, 0) + 1
            return request(method, url, **kwargs)
        session.request = logged

    def _wrap(self, name: str, key) -> None:
        original = getattr(self.engine, name)

        def counted(*args, **kwargs):
            before, self.current = self.total(), key(args)
            try:
                return original(*args, **kwargs)
            finally:
                self.requests[self.current] = self.requests.get(self.current, 0) + self.total() - before
        setattr(self.engine, name, counted)

    def total(self) -> int:
        return sum(api.requests_sent for api in self.apis)

    def measure(self, what: str, action):
        self.requests, self.writes, self.sent = {}, {}, []
        started = time.perf_counter()
        result = action()
        print(f"\n{what}: {self.requests} requests, of which writes {self.writes}, "
              f"in {time.perf_counter() - started:.2f} s")
        print("\n".join(f"    {line}" for line in self.sent))
        return result


def test_a_scheduled_run_costs_a_few_requests_per_direction_after_a_full_sync(env):
    # Scheduled runs are minutes apart, and watermarks stay a minute behind a job's start (the margin);
    # here runs are seconds apart, so without a margin rows are not read again only for being that recent.
    env.configure(BCSYNC_WATERMARK_MARGIN_SECONDS=0)
    env.bc.seed("customers", [{"number": f"C{i:05d}", "displayName": f"Customer {i}", "city": "Lyon"}
                              for i in range(ROWS)])
    env.dv.seed("account", [{"name": f"Customer {i}", "customertypecode": 3, "address1_city": "Lyon"}
                            for i in range(ROWS)])
    # the simulator stamps seeded rows some milliseconds apart, into the next seconds: the full
    # synchronisation starts once they are past, as it would minutes after the rows were made
    newest = max(c["lastModifiedDateTime"] for c in env.bc.rows("customers"))
    time.sleep(max(0.0, (newest - dt.datetime.now(dt.timezone.utc)).total_seconds()) + 1)
    full = env.full_sync(["CUSTOMER"])
    assert job(full, "CUSTOMER:to-crm").counts.coupled == ROWS and len(env.couplings("CUSTOMER")) == ROWS
    count = RequestCount(env)

    # the full synchronisation left the change feed and the deletion baseline: nothing is checked again
    quiet = count.measure("first scheduled run after the full synchronisation", lambda: env.sync(["CUSTOMER"]))
    assert quiet.to_dict()["totals"]["modified"] == 0
    assert set(count.requests) == {"to-crm", "from-crm"}
    assert all(n <= 2 for n in count.requests.values()), count.requests

    customers = [c["id"] for c in env.bc.rows("customers")][:CHANGED]
    accounts = [a["accountid"] for a in env.dv.rows("account")][-CHANGED:]
    for customer in customers:
        env.bc.update("customers", customer, {"city": "Marseille"})
    for account in accounts:
        env.dv.update("account", account, {"telephone1": "+33 1 23 45 67 89"}, as_user=env.stack.ids.user_systemuser_id)

    # held after the quiet run, the mapping is woken by the schedule's look: one read
    assert count.measure("schedule check", lambda: env.services.engine.has_work("CUSTOMER"))
    assert count.requests["schedule check"] <= 2

    # each scheduled run may start in a worker that ran nothing before (Flex Consumption scales to zero):
    # the facts about the services' set-up that earlier runs kept are not read again
    env.configure()
    count = RequestCount(env)
    busy = count.measure(f"scheduled run, {CHANGED} changes per side, in a cold worker", lambda: env.sync(["CUSTOMER"]))
    assert job(busy, "CUSTOMER:to-crm").counts.modified == CHANGED
    assert job(busy, "CUSTOMER:from-crm").counts.modified == CHANGED
    assert sum(1 for a in env.dv.rows("account") if a.get("address1_city") == "Marseille") == CHANGED
    assert sum(1 for c in env.bc.rows("customers") if c.get("phoneNumber") == "+33 1 23 45 67 89") == CHANGED
    # per direction: the changed rows with their companion page rows (Business Central) or the change feed,
    # the coupled rows on the other side (and their companion page rows), and one $batch of updates whose
    # answers carry the new versions, so nothing is read back after it
    assert count.writes == {"to-crm": 1, "from-crm": 1}, count.writes
    assert count.requests == {"to-crm": 4, "from-crm": 4}, count.requests
    assert [line.split(": ", 1)[0] for line in count.sent if line.split(" ")[1] == "POST"] == ["to-crm", "from-crm"]
    assert all(line.endswith("$batch") for line in count.sent if " POST " in line), count.sent
