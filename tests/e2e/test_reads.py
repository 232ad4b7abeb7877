"""Reads cost what they return: a look at the first rows is one request, and a paged read asks for no page
beyond the last one."""

from __future__ import annotations

import time

from sync.tables import BC_CUSTOMER, CRM_ACCOUNT


def test_a_look_at_the_first_rows_is_one_request_and_a_paged_read_reads_nothing_past_its_end(env):
    env.bc.seed("customers", [{"number": f"C{i:03d}", "displayName": f"Customer {i}"} for i in range(5)])
    env.dv.seed("account", [{"name": f"Account {i}", "customertypecode": 3} for i in range(5)])
    engine = env.services.engine
    for endpoint, table, service in ((engine.bc, BC_CUSTOMER, env.bc), (engine.crm, CRM_ACCOUNT, env.dv)):
        list(endpoint.read_changed(table, [], since=None, limit=1))   # whatever a first request costs (a token)
        service.faults.requests.clear()
        pages = endpoint.read_changed(table, [], since=None, limit=2)
        assert len(next(pages)) == 2
        time.sleep(0.3)                                                        # the caller looks at them
        pages.close()                                                          # and reads no further
        assert len(service.faults.requests) == 1, service.faults.requests      # nothing read ahead
        service.faults.requests.clear()
        assert [len(page) for page in endpoint.read_changed(table, [], since=None, page_size=2)] == [2, 2, 1]
        assert len(service.faults.requests) == 3, service.faults.requests
        service.faults.requests.clear()
        assert [len(page) for page in endpoint.read_changed(table, [], since=None, page_size=10)] == [5]
        assert len(service.faults.requests) == 1, service.faults.requests
