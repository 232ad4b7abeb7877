"""The sync logic alone: records/s per core of a full synchronisation against in-memory fakes.

CUSTOMER, CONTACT and ITEM-PRODUCT, each in both directions.

No network, no storage: the engine, the rules and the fakes of tests/fakes.py, measured in CPU seconds
of this process, so the figure is per core whatever else the machine runs. The time spent inside the
fakes (filtering and copying rows, as the services would) is shown apart: "sync logic alone" leaves it out.

    python -m benchmarks.engine [--rows 5000] [--page-size 5000] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import inspect
import pstats
import time

from sync.config import StaticCatalog
from sync.engine import JobMode, SyncEngine
from sync.mappings import Catalog, builtin_mappings
from sync.model import Direction, Side
from sync.rules.contacts import BC_CONTACT_RELATIONS
from sync.rules.currency import BC_COMPANY_INFORMATION, CRM_ORGANIZATION
from sync.tables import BC_CONTACT, BC_CUSTOMER, BC_ITEM, BC_UNIT_OF_MEASURE, CRM_ACCOUNT, CRM_CONTACT, CRM_CURRENCY, \
    CRM_PRODUCT, CRM_SYSTEMUSER, CRM_UNIT, CRM_UNIT_GROUP
from tests.fakes import FakeClock, FakeCouplings, FakeEndpoint, FakeErrors, FakeState

TO, FROM = Direction.TO_CRM, Direction.FROM_CRM
BLANK_GUID = "00000000-0000-0000-0000-000000000000"


class Stopwatch:
    """CPU time spent inside the fakes (the services' and stores' stand-ins), so that it can be told
    apart from the sync logic's own."""

    def __init__(self):
        self.seconds = 0.0
        self.depth = 0

    def watch(self, fake) -> None:
        for name in dir(fake):
            method = getattr(fake, name)
            if not name.startswith("_") and inspect.ismethod(method):
                setattr(fake, name, self._timed(method))

    def _timed(self, method):
        def timed(*args, **kwargs):
            result = self._measure(method, *args, **kwargs)
            return self._pages(result) if inspect.isgenerator(result) else result
        return timed

    def _pages(self, generator):
        while True:
            try:
                yield self._measure(next, generator)
            except StopIteration:
                return

    def _measure(self, call, *args, **kwargs):
        if self.depth:  # a fake calling another: already timed
            return call(*args, **kwargs)
        self.depth += 1
        start = time.process_time()
        try:
            return call(*args, **kwargs)
        finally:
            self.depth -= 1
            self.seconds += time.process_time() - start


class Company:
    """`rows` customers, accounts, person contacts, items and products on each side, and what they refer to."""

    def __init__(self, rows: int, page_size: int, stopwatch: Stopwatch):
        self.clock = FakeClock()
        self.bc = FakeEndpoint(Side.BC, self.clock, user="bc-integration")
        self.crm = FakeEndpoint(Side.CRM, self.clock, user="crm-integration")
        self.couplings = FakeCouplings()
        self.engine = SyncEngine(StaticCatalog(Catalog(builtin_mappings())), self.bc, self.crm, self.couplings,
                                 FakeErrors(), FakeState(self.clock), self.clock, page_size=page_size)
        for fake in (self.bc, self.crm, self.couplings, self.engine.errors, self.engine.state):
            stopwatch.watch(fake)
        self.jobs = 0
        self.bc.put(BC_COMPANY_INFORMATION, {"displayName": "CRONUS", "currencyCode": "USD"})
        usd = self.crm.put(CRM_CURRENCY, {"isocurrencycode": "USD", "currencyname": "US Dollar", "exchangerate": 1.0})
        self.crm.put(CRM_ORGANIZATION, {"name": "org", "basecurrencyid": usd, "currencydecimalprecision": 2})
        self.crm.put(CRM_SYSTEMUSER, {"fullname": "Alicia Thornber", "internalemailaddress": "alicia@contoso.com",
                                      "mobilephone": "", "isdisabled": False, "islicensed": True,
                                      "isintegrationuser": False})
        for i in range(rows):
            customer = self.bc.put(BC_CUSTOMER, {
                "number": f"C{i:06d}", "displayName": f"Customer {i}", "blocked": " ", "salespersonCode": "",
                "email": f"c{i}@example.com", "city": "Lyon", "phoneNumber": f"+33 1 {i:08d}", "creditLimit": i,
                "paymentTermsId": BLANK_GUID, "shipmentMethodId": BLANK_GUID, "currencyId": BLANK_GUID})
            self.bc.put(BC_CONTACT, {"number": f"K{i:06d}", "type": "Company", "displayName": f"Customer {i}"})
            self.bc.put(BC_CONTACT_RELATIONS, {"contactNumber": f"K{i:06d}", "contactType": "Company",
                                               "relatedType": "Customer", "relatedId": customer})
            self.bc.put(BC_CONTACT, {"number": f"P{i:06d}", "type": "Person", "contactBusinessRelation": "Customer",
                                     "companyNumber": f"K{i:06d}", "firstName": "Ann", "surname": f"Lee {i}",
                                     "email": f"ann{i}@example.com", "salespersonCode": "", "currencyCode": ""})
        accounts = [self.crm.put(CRM_ACCOUNT, {"name": f"Account {i}", "statecode": 0, "customertypecode": 3,
                                               "emailaddress1": f"a{i}@example.com", "address1_city": "Paris"})
                    for i in range(rows)]
        for i, account in enumerate(accounts):
            self.crm.put(CRM_CONTACT, {"firstname": "Bob", "lastname": f"Smith {i}", "fullname": f"Bob Smith {i}",
                                       "emailaddress1": f"bob{i}@example.com", "statecode": 0,
                                       "parentcustomerid": account, "_parentcustomerid_value": account,
                                       "parentcustomeridtype": "account"})
        # one unit of measure, whose Sales unit group (and its base unit) UNIT OF MEASURE couples by name
        self.bc.put(BC_UNIT_OF_MEASURE, {"code": "PCS", "displayName": "Piece"})
        group = self.crm.put(CRM_UNIT_GROUP, {"name": "NAV PCS", "baseuomname": "PCS"})
        unit = self.crm.put(CRM_UNIT, {"name": "PCS", "quantity": 1, "isschedulebaseuom": True,
                                       "uomscheduleid": group, "_uomscheduleid_value": group})
        for i in range(rows):
            self.bc.put(BC_ITEM, {"number": f"I{i:06d}", "displayName": f"Bolt type {i}", "type": "Inventory",
                                  "blocked": False, "baseUnitOfMeasureCode": "PCS", "unitPrice": 1 + i % 500,
                                  "unitCost": 0.5 + i % 300, "inventory": i % 40})
            self.crm.put(CRM_PRODUCT, {"productnumber": f"P{i:06d}", "name": f"Valve kit {i}", "producttypecode": 1,
                                       "defaultuomscheduleid": group, "_defaultuomscheduleid_value": group,
                                       "defaultuomid": unit, "statecode": 0, "statuscode": 1})

    def relate_new_customers(self) -> None:
        """What Business Central does for a customer created from an account: a company contact related to
        it, which the accounts' Sales contacts are created under (the fakes do not do it themselves)."""
        related = {r["values"]["relatedId"] for r in self.bc.rows(BC_CONTACT_RELATIONS).values()}
        for customer in [c for c in self.bc.rows(BC_CUSTOMER) if c not in related]:
            number = f"KC{len(related):06d}"
            related.add(customer)
            self.bc.put(BC_CONTACT, {"number": number, "type": "Company", "displayName": number})
            self.bc.put(BC_CONTACT_RELATIONS, {"contactNumber": number, "contactType": "Company",
                                               "relatedType": "Customer", "relatedId": customer})

    def run(self, mapping: str, direction: Direction):
        self.jobs += 1
        self.clock.tick(120)
        return self.engine.run(mapping, direction, job_id=f"job{self.jobs}", mode=JobMode.FULL)


PREPARATION = [("SALESPEOPLE", FROM), ("CURRENCY", TO), ("PAYMENT TERMS", TO), ("SHIPMENT METHOD", TO),
               ("SHIPPING AGENT", TO), ("UNIT OF MEASURE", TO)]
MEASURED = [("CUSTOMER", TO), ("CUSTOMER", FROM), ("CONTACT", TO), ("CONTACT", FROM), ("ITEM-PRODUCT", TO),
            ("ITEM-PRODUCT", FROM)]


def measure(rows: int, page_size: int, profile: cProfile.Profile | None) -> list[dict]:
    stopwatch = Stopwatch()
    company = Company(rows, page_size, stopwatch)
    for mapping, direction in PREPARATION:
        company.run(mapping, direction)
    results = []
    for mapping, direction in MEASURED:
        if mapping == "CONTACT":
            company.relate_new_customers()
        # the fakes' tables stand for data the services hold in their own processes: kept out of the
        # collector's way, which would otherwise walk them over and over; frozen again before each job,
        # as the jobs before it added rows and couplings to them
        gc.collect()
        gc.freeze()
        if profile:
            profile.enable()
        cpu, wall, fakes = time.process_time(), time.perf_counter(), stopwatch.seconds
        outcome = company.run(mapping, direction)
        cpu, wall, fakes = time.process_time() - cpu, time.perf_counter() - wall, stopwatch.seconds - fakes
        if profile:
            profile.disable()
        c = outcome.counts
        records = c.inserted + c.modified + c.unchanged + c.skipped + c.failed
        results.append({"job": f"{mapping} {direction.value}", "records": records, "cpu_seconds": round(cpu, 3),
                        "fakes_cpu_seconds": round(fakes, 3), "records_per_cpu_second": round(records / cpu),
                        "sync_logic_records_per_cpu_second": round(records / (cpu - fakes)),
                        "wall_seconds": round(wall, 3), "counts": c.as_dict()})
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5000,
                        help="customers, accounts, contacts, items and products per side")
    parser.add_argument("--page-size", type=int, default=5000)
    parser.add_argument("--profile", action="store_true", help="print the top functions by own time")
    args = parser.parse_args()
    profile = cProfile.Profile() if args.profile else None
    results = measure(args.rows, args.page_size, profile)
    print(f"{'job':<22} {'records':>8} {'CPU s':>7} {'in fakes':>9} {'records/s per core':>19} "
          f"{'sync logic alone':>17}")
    for r in results:
        print(f"{r['job']:<22} {r['records']:>8} {r['cpu_seconds']:>7.2f} {r['fakes_cpu_seconds']:>9.2f} "
              f"{r['records_per_cpu_second']:>19,} {r['sync_logic_records_per_cpu_second']:>17,}")
    records, cpu, fakes = (sum(r[k] for r in results) for k in ("records", "cpu_seconds", "fakes_cpu_seconds"))
    print(f"{'all':<22} {records:>8} {cpu:>7.2f} {fakes:>9.2f} {round(records / cpu):>19,} "
          f"{round(records / (cpu - fakes)):>17,}")
    if profile:
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
