"""What a scheduled run costs in API requests once 1,000 + 1,000 customers are coupled: the Sales change
feed and the Business Central watermark each cost one read, so a quiet run is about two requests, and a
run with a few changes per side four per direction (three reads and one write), however large the tables are.
The same holds for contacts (whose parent takes a read of business relations only where the company changed)
and for items and products (whose unit and price list item take reads only where the unit or price changed)."""

from __future__ import annotations

import datetime as dt
import os
import time
from collections import Counter

from .conftest import job

ROWS, CHANGED = int(os.environ.get("BCSYNC_TEST_ROWS", 1000)), 10


class RequestCount:
    """API requests (and the writes among them) per job ("<mapping>:<direction>") and per schedule check,
    counted at both services' HTTP clients; each request is listed when measured."""

    def __init__(self, env):
        self.apis = [env.services.dataverse.api, env.services.business_central.api]
        self.engine = env.services.engine
        self.requests: dict[str, int] = {}
        self.writes: dict[str, int] = {}
        self.sent: list[str] = []
        self.current = ""
        for session in {id(api.session): api.session for api in self.apis}.values():  # the two may share one
            self._log(session)
        self._wrap("run", lambda args: f"{args[0]}:{args[1].value}")
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


class StorageCount:
    """Table Storage requests per job ("<mapping>:<direction>"), from its claim to the end of its bookkeeping (its
    end saved, the mapping's schedule, the jobs it makes ready), counted at the storage client; by purpose too."""

    def __init__(self, env):
        self.storage = env.services.storage
        self.requests: dict[str, int] = {}
        self.purposes: dict[str, Counter] = {}
        coordinator = env.services.coordinator
        take = coordinator._take

        def counted(run, job, *args, **kwargs):
            before, purposes = self.storage.requests_sent, Counter(self.storage.requests_by_purpose)
            try:
                return take(run, job, *args, **kwargs)
            finally:
                self.requests[job.job_id] = self.requests.get(job.job_id, 0) + self.storage.requests_sent - before
                self.purposes.setdefault(job.job_id, Counter()).update(self.storage.requests_by_purpose - purposes)
        coordinator._take = counted

    def bookkeeping(self) -> dict[str, int]:
        """Requests per job but the couplings of its rows (the partitions of a side's buckets)."""
        return {job: sum(n for (_, table, partition), n in self.purposes[job].items()
                         if not (table.endswith("couplings") and partition.endswith(("|bc", "|crm"))))
                for job in self.requests}


def test_a_scheduled_run_costs_a_few_requests_per_direction_after_a_full_sync(env):
    # Scheduled runs are minutes apart, and watermarks stay a minute behind a job's start (the margin);
    # here runs are seconds apart, so without a margin rows are not read again only for being that recent.
    env.configure(BCSYNC_WATERMARK_MARGIN_SECONDS=0)
    env.bc.seed("customers", [{"number": f"C{i:05d}", "displayName": f"Customer {i}", "city": "Lyon"}
                              for i in range(ROWS)])
    env.dv.seed("account", [{"name": f"Customer {i}", "customertypecode": 3, "address1_city": "Lyon"}
                            for i in range(ROWS)])
    # the full synchronisation starts a second after the rows were made, as it would minutes after
    newest = max(c["lastModifiedDateTime"] for c in env.bc.rows("customers"))
    time.sleep(max(0.0, (newest - dt.datetime.now(dt.timezone.utc)).total_seconds()) + 1)
    full = env.full_sync(["CUSTOMER"])
    assert job(full, "CUSTOMER:to-crm").counts.coupled == ROWS and len(env.couplings("CUSTOMER")) == ROWS
    count = RequestCount(env)

    # the full synchronisation left the change feed and the deletion baseline: nothing is checked again
    quiet = count.measure("first scheduled run after the full synchronisation", lambda: env.sync(["CUSTOMER"]))
    assert quiet.to_dict()["totals"]["modified"] == 0
    assert set(count.requests) == {"CUSTOMER:to-crm", "CUSTOMER:from-crm"}
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
    count, storage = RequestCount(env), StorageCount(env)
    busy = count.measure(f"scheduled run, {CHANGED} changes per side, in a cold worker", lambda: env.sync(["CUSTOMER"]))
    # Table Storage per job, beside the couplings of the changed rows (looked up and saved by bucket, so their
    # count depends on how the rows spread): the job log, the mapping's lease (kept from the job to the next job
    # of the mapping, which does not renew it just after it was taken), the configuration (once per delivery of
    # jobs), the kept facts, failed records, the coupling journal; the mapping's state (watermark, cursors, pending
    # rows, known versions) read in one query and written in one transaction; the schedule
    assert storage.bookkeeping() == {"CUSTOMER:to-crm": 13, "CUSTOMER:from-crm": 14}, storage.purposes
    assert job(busy, "CUSTOMER:to-crm").counts.modified == CHANGED
    assert job(busy, "CUSTOMER:from-crm").counts.modified == CHANGED
    assert sum(1 for a in env.dv.rows("account") if a.get("address1_city") == "Marseille") == CHANGED
    assert sum(1 for c in env.bc.rows("customers") if c.get("phoneNumber") == "+33 1 23 45 67 89") == CHANGED
    # per direction: the changed rows with their companion page rows (Business Central) or the change feed,
    # the coupled rows on the other side (and their companion page rows), and one $batch of updates whose
    # answers carry the new versions, so nothing is read back after it
    assert count.writes == {"CUSTOMER:to-crm": 1, "CUSTOMER:from-crm": 1}, count.writes
    assert count.requests == {"CUSTOMER:to-crm": 4, "CUSTOMER:from-crm": 4}, count.requests
    assert [line.split(": ", 1)[0] for line in count.sent if line.split(" ")[1] == "POST"] == [
        "CUSTOMER:to-crm", "CUSTOMER:from-crm"]
    assert all(line.endswith("$batch") for line in count.sent if " POST " in line), count.sent



def seed_contacts(env, rows: int) -> list[str]:
    """`rows` customers and accounts, each with one person contact on its side; the company contacts' numbers."""
    env.bc.seed("customers", [{"number": f"C{i:05d}", "displayName": f"Customer {i}"} for i in range(rows)])
    accounts = env.dv.seed("account", [{"name": f"Account {i}", "customertypecode": 3} for i in range(rows)])
    companies = [c["number"] for c in env.bc.rows("contacts") if c["type"] == "Company"]
    env.bc.seed("contacts", [{"type": "Person", "displayName": f"Ann Lee {i}", "companyNumber": companies[i],
                              "email": f"ann{i}@bc.example"} for i in range(rows)])
    env.dv.seed("contact", [{"firstname": "Bob", "lastname": f"Smith {i}", "parentcustomerid": accounts[i],
                             "emailaddress1": f"bob{i}@sales.example"} for i in range(rows)])
    return companies


def test_contacts_items_and_products_cost_four_requests_per_direction_too(env):
    env.configure(BCSYNC_WATERMARK_MARGIN_SECONDS=0)
    rows = max(ROWS // 5, 2 * CHANGED)  # one page either way: the count does not grow with the rows
    companies = seed_contacts(env, rows)
    env.bc.seed("unitsOfMeasure", [{"code": "PCS", "displayName": "Piece"}, {"code": "BOX", "displayName": "Box"}])
    env.bc.seed("items", [{"number": f"I{i:05d}", "displayName": f"Bolt {i}", "baseUnitOfMeasureCode": "PCS",
                           "unitPrice": 1 + i} for i in range(rows)])
    env.full_sync()
    group = next(g for g in env.dv.rows("uomschedule") if g["name"] == "NAV PCS")["uomscheduleid"]
    unit = next(u for u in env.dv.rows("uom") if u["name"] == "PCS")["uomid"]
    env.dv.seed("product", [{"productnumber": f"P{i:05d}", "name": f"Kit {i}", "producttypecode": 1,
                             "defaultuomscheduleid": group, "defaultuomid": unit, "statecode": 0, "statuscode": 1}
                            for i in range(rows)])
    env.full_sync(["ITEM-PRODUCT"])
    time.sleep(1)  # the rows the full synchronisations wrote are behind the next run's watermark
    people = [c["id"] for c in env.bc.rows("contacts") if c["type"] == "Person"][:CHANGED]
    for person in people:
        env.bc.update("contacts", person, {"phoneNumber": "+33 6 99 99 99 99"})
    sales_contacts = [c["contactid"] for c in env.dv.rows("contact")][-CHANGED:]
    for contact in sales_contacts:
        env.dv.update("contact", contact, {"mobilephone": "+49 170 9999"}, as_user=env.stack.ids.user_systemuser_id)
    items = [i["id"] for i in env.bc.rows("items")][:CHANGED]
    for item in items:
        env.bc.update("items", item, {"displayName": "Renamed item"})
    products = [p["productid"] for p in env.dv.rows("product")][-CHANGED:]
    for product in products:
        env.dv.update("product", product, {"name": "Renamed product"}, as_user=env.stack.ids.user_systemuser_id)

    env.configure(BCSYNC_WATERMARK_MARGIN_SECONDS=0)  # a cold worker, as for CUSTOMER
    count = RequestCount(env)
    busy = count.measure(f"scheduled run, {CHANGED} changes per side", lambda: env.sync(["CONTACT", "ITEM-PRODUCT"]))
    assert busy.to_dict()["totals"]["failed"] == 0, busy.to_dict()
    for job_id in ("CONTACT:to-crm", "CONTACT:from-crm", "ITEM-PRODUCT:to-crm", "ITEM-PRODUCT:from-crm"):
        assert job(busy, job_id).counts.modified == CHANGED, job_id
    # per direction: the changed rows (with their card page rows), the coupled rows on the other side (with
    # theirs), one $batch; no business relations, units of measure, unit groups or price list items, as no
    # company, parent, unit or price changed
    assert count.requests == {"CONTACT:to-crm": 4, "CONTACT:from-crm": 4, "ITEM-PRODUCT:to-crm": 4,
                              "ITEM-PRODUCT:from-crm": 4}, count.sent
    assert all(line.endswith("$batch") for line in count.sent if " POST " in line), count.sent
    # what was not read again still holds
    parent_of = {c["contactid"]: c["parentcustomerid"] for c in env.dv.rows("contact")}
    account_of = {a["name"]: a["accountid"] for a in env.dv.rows("account")}
    changed_in_sales = [c for c in env.dv.rows("contact") if c.get("telephone1") == "+33 6 99 99 99 99"]
    assert len(changed_in_sales) == CHANGED
    assert all(parent_of[c["contactid"]] == account_of[f"Customer {c['lastname'].split()[-1]}"]
               for c in changed_in_sales)
    assert sum(1 for c in env.bc.rows("contacts") if c.get("mobilePhoneNumber") == "+49 170 9999") == CHANGED
    renamed = [p for p in env.dv.rows("product") if p["name"] == "Renamed item"]
    assert len(renamed) == CHANGED and all(p["defaultuomid"] == unit for p in renamed)
    prices = {r["productid"]: r["amount"] for r in env.dv.rows("productpricelevel")}
    assert all(prices[p["productid"]] == p["price"] for p in renamed)
    assert sum(1 for i in env.bc.rows("items") if i["displayName"] == "Renamed product") == CHANGED

    # a contact moved to another company, an item given another unit and price: those are found again
    env.bc.update("contacts", people[0], {"companyNumber": companies[-1]})
    box = next(u for u in env.bc.rows("unitsOfMeasure") if u["code"] == "BOX")
    env.bc.update("items", items[0], {"baseUnitOfMeasureCode": "BOX", "unitPrice": 777})
    count.measure("a company, a unit and a price changed", lambda: env.sync(["CONTACT", "ITEM-PRODUCT"]))
    moved = next(c for c in env.dv.rows("contact") if c.get("telephone1") == "+33 6 99 99 99 99"
                 and c["lastname"] == env.bc.get("contacts", people[0])["displayName"].split()[-1])
    assert moved["parentcustomerid"] == account_of[f"Customer {rows - 1}"]
    number = env.bc.get("items", items[0])["number"]
    product = next(p for p in env.dv.rows("product") if p["productnumber"] == number)
    box_group = next(g for g in env.dv.rows("uomschedule") if g["name"] == "NAV BOX")["uomscheduleid"]
    box_unit = next(u for u in env.dv.rows("uom") if u["uomscheduleid"] == box_group)["uomid"]
    assert (product["defaultuomscheduleid"], product["defaultuomid"], product["price"]) == (box_group, box_unit, 777)
    assert {(r["uomid"], r["amount"]) for r in env.dv.rows("productpricelevel")
            if r["productid"] == product["productid"]} >= {(box_unit, 777)}
    assert box["code"] == "BOX"


def test_the_first_scheduled_run_finds_the_customers_whose_primary_contact_was_back_filled_unchanged(env):
    # The CONTACT jobs of a full synchronisation back-fill the primary contact of every customer, after the
    # CUSTOMER jobs ran: the customers' new versions are left to the next CUSTOMER BC -> Sales pass as known, so
    # it finds them unchanged without looking their couplings up (a range query per few dozen of them)
    env.configure(BCSYNC_WATERMARK_MARGIN_SECONDS=0)
    rows = 40
    seed_contacts(env, rows)
    full = env.full_sync(["CUSTOMER", "CONTACT"])
    assert full.to_dict()["totals"]["failed"] == 0, full.to_dict()
    person = {c["number"]: c["displayName"] for c in env.bc.rows("contacts") if c["type"] == "Person"}
    cards = env.bc.rows("CustomerCard")
    assert len(cards) == 2 * rows and all(c["Primary_Contact_No"] in person for c in cards)  # all back-filled
    accounts = {a["accountid"]: a for a in env.dv.rows("account")}
    assert all(a["primarycontactid"] for a in accounts.values())
    time.sleep(1)  # the rows the full synchronisation wrote are behind the next run's watermark

    env.configure(BCSYNC_WATERMARK_MARGIN_SECONDS=0)  # a cold worker
    count, storage = RequestCount(env), StorageCount(env)
    quiet = count.measure("first scheduled run after the full synchronisation", lambda: env.sync(["CUSTOMER"]))
    to_crm = job(quiet, "CUSTOMER:to-crm").counts
    assert (to_crm.unchanged, to_crm.modified, to_crm.failed) == (2 * rows, 0, 0)  # read, as changed since
    assert job(quiet, "CUSTOMER:from-crm").counts.modified == 0
    looked_up = {key: n for key, n in storage.purposes["CUSTOMER:to-crm"].items()
                 if key[1].endswith("couplings") and key[2].startswith(("CUSTOMER|bc", "CUSTOMER|crm"))}
    assert looked_up == {}, storage.purposes["CUSTOMER:to-crm"]
    assert count.writes == {}, count.sent
    assert {a["accountid"]: a for a in env.dv.rows("account")} == accounts  # nothing changed in Sales

    # a real change of such a customer still reaches Sales, and one of its account Business Central, with the
    # primary contacts as they were
    customer = next(c for c in env.bc.rows("customers") if c["displayName"] == "Customer 0")
    env.bc.update("customers", customer["id"], {"city": "Marseille"})
    account = next(a for a in accounts.values() if a["name"] == "Account 1")
    env.dv.update("account", account["accountid"], {"telephone1": "+33 1 23 45 67 89"},
                  as_user=env.stack.ids.user_systemuser_id)
    busy = env.sync(["CUSTOMER"])
    assert job(busy, "CUSTOMER:to-crm").counts.modified == 1 and job(busy, "CUSTOMER:from-crm").counts.modified == 1
    assert busy.to_dict()["totals"]["failed"] == 0, busy.to_dict()
    in_sales = next(a for a in env.dv.rows("account") if a["name"] == "Customer 0")
    assert in_sales["address1_city"] == "Marseille"
    assert in_sales["primarycontactid"] == accounts[in_sales["accountid"]]["primarycontactid"]
    assert next(c for c in env.bc.rows("customers") if c["displayName"] == "Account 1")["phoneNumber"] == \
        "+33 1 23 45 67 89"
    assert next(c for c in env.bc.rows("CustomerCard") if c["Name"] == "Account 1")["Primary_Contact_No"] == \
        next(c for c in cards if c["Name"] == "Account 1")["Primary_Contact_No"]
