"""Facts about the services' set-up kept across runs: a worker starting cold (a new process, as Flex
Consumption starts after scaling to zero) reads none of them again while they are fresh, reads them
again once their time to live has passed, and drops one a service refuses."""

from __future__ import annotations

import re
import time

from sync.runs import RunStatus

from .conftest import job
from .test_incremental_cost import RequestCount
from .test_products_and_prices import seed_catalogue

# request paths (their last 50 characters, as RequestCount lists them) that read a fact
FACT_READS = {
    "WhoAmI": re.compile(r"/WhoAmI$"),
    "company": re.compile(r"companies\([0-9a-f-]+\)$"),
    "companyInformation": re.compile(r"/companyInformation$"),
    "SalesReceivablesSetup": re.compile(r"/SalesReceivablesSetup$"),
    "transactioncurrencies": re.compile(r"/transactioncurrencies$"),
    "pricelevels": re.compile(r"/pricelevels$"),
}


def fact_reads(count: RequestCount) -> dict[str, list[str]]:
    """Per job direction (over all mappings), the facts its requests read."""
    found: dict[str, list[str]] = {}
    for line in count.sent:
        job_name, request = line.split(": ", 1)
        direction = job_name.rsplit(":", 1)[-1]
        found.setdefault(direction, []).extend(name for name, path in FACT_READS.items()
                                               if path.search(request.split(" ", 1)[1]))
    return found


def cold_worker(env, **settings) -> RequestCount:
    """bcsync built anew from its settings, as a worker process starting cold, its requests counted."""
    env.configure(**settings)
    return RequestCount(env)


def change_rows(env, tag: str) -> None:
    for customer in env.bc.rows("customers"):
        env.bc.update("customers", customer["id"], {"city": f"Lyon {tag}"})
    for item in env.bc.rows("items"):
        env.bc.update("items", item["id"], {"unitPrice": (item.get("unitPrice") or 0) + 1})
    for account in env.dv.rows("account"):
        env.dv.update("account", account["accountid"], {"telephone1": f"+33 1 {tag}"},
                      as_user=env.stack.ids.user_systemuser_id)


def test_a_cold_worker_uses_the_facts_kept_by_an_earlier_run_until_they_expire(env):
    env.configure(BCSYNC_WATERMARK_MARGIN_SECONDS=0)
    seed_catalogue(env)
    env.bc.seed("customers", [{"number": f"C{i:02d}", "displayName": f"Customer {i}"} for i in range(3)])
    full = env.full_sync()
    assert full.run.status is RunStatus.DONE, full.to_dict()
    mappings = ["CUSTOMER", "ITEM-PRODUCT"]

    change_rows(env, "1")
    count = cold_worker(env, BCSYNC_FACTS_TTL_SECONDS=3600)
    report = count.measure("cold worker, facts kept", lambda: env.sync(mappings))
    assert report.run.status is RunStatus.DONE, report.to_dict()
    assert job(report, "CUSTOMER:to-crm").counts.modified == 3
    assert job(report, "ITEM-PRODUCT:to-crm").counts.modified == 2
    assert all(not facts for facts in fact_reads(count).values()), count.sent
    # every job read the kept facts in one storage query at most: they came from the state table
    assert set(env.services.state.facts()) >= {"dataverse.integration-user", "bc.company-name",
                                               "bc.company-information", "bc.write-in-product",
                                               "dataverse.lcy-currency", "dataverse.default-price-list"}

    change_rows(env, "2")
    count = cold_worker(env, BCSYNC_FACTS_TTL_SECONDS=1)
    time.sleep(1.1)
    report = count.measure("cold worker, facts expired", lambda: env.sync(mappings))
    assert report.run.status is RunStatus.DONE, report.to_dict()
    reads = fact_reads(count)
    assert set(reads["to-crm"]) == {"company", "companyInformation", "transactioncurrencies",
                                    "SalesReceivablesSetup", "pricelevels"}, reads
    assert "WhoAmI" in reads["from-crm"], reads


def test_a_changed_local_currency_counts_once_its_fact_expires(env):
    env.configure(BCSYNC_WATERMARK_MARGIN_SECONDS=0)
    env.dv.seed("transactioncurrency", [{"isocurrencycode": "EUR", "currencyname": "Euro", "currencysymbol": "€",
                                         "currencyprecision": 2, "exchangerate": 0.9}])
    env.bc.seed("customers", [{"number": "C01", "displayName": "First"}])
    assert env.full_sync(["CUSTOMER"]).run.status is RunStatus.DONE
    currencies = {c["isocurrencycode"]: c["transactioncurrencyid"] for c in env.dv.rows("transactioncurrency")}

    def currency_of(name: str) -> str:
        return next(a["transactioncurrencyid"] for a in env.dv.rows("account") if a["name"] == name)

    assert currency_of("First") == currencies["USD"]
    env.bc.store.companies[env.bc.company_id].lcy_code = "EUR"   # General Ledger Setup's LCY Code changed

    # within the time to live the kept local currency stands (a set-up fact, which hardly ever changes)
    env.bc.seed("customers", [{"number": "C02", "displayName": "Second"}])
    cold_worker(env, BCSYNC_FACTS_TTL_SECONDS=3600)
    assert env.full_sync(["CUSTOMER"]).run.status is RunStatus.DONE  # a scheduled run creates no new pairs
    assert currency_of("Second") == currencies["USD"]

    # past it, Company Information is read again, and the Sales currency row follows the new code
    env.bc.seed("customers", [{"number": "C03", "displayName": "Third"}])
    cold_worker(env, BCSYNC_FACTS_TTL_SECONDS=1)
    time.sleep(1.1)
    assert env.full_sync(["CUSTOMER"]).run.status is RunStatus.DONE
    assert currency_of("Third") == currencies["EUR"]
    assert env.services.state.facts()["dataverse.lcy-currency"].value == {"code": "EUR", "id": currencies["EUR"]}


def test_a_company_name_the_service_refuses_is_dropped_and_read_afresh_next_run(env):
    env.configure(BCSYNC_WATERMARK_MARGIN_SECONDS=0)
    env.bc.seed("customers", [{"number": "C01", "displayName": "First"}])
    assert env.full_sync(["CUSTOMER"]).run.status is RunStatus.DONE
    old = env.services.state.facts()["bc.company-name"].value

    rename_company(env, "CRONUS Renamed")
    env.bc.update("customers", env.bc.rows("customers")[0]["id"], {"city": "Nice"})
    cold_worker(env, BCSYNC_FACTS_TTL_SECONDS=3600)
    refused = env.sync(["CUSTOMER"])
    to_crm = job(refused, "CUSTOMER:to-crm")
    assert to_crm.status.value == "failed" and old in to_crm.message
    assert "bc.company-name" in to_crm.message and "read afresh" in to_crm.message
    assert "bc.company-name" not in env.services.state.facts()

    cold_worker(env, BCSYNC_FACTS_TTL_SECONDS=3600)
    again = env.sync(["CUSTOMER"])
    assert job(again, "CUSTOMER:to-crm").counts.modified == 1, again.to_dict()
    assert [a["address1_city"] for a in env.dv.rows("account")] == ["Nice"]
    assert env.services.state.facts()["bc.company-name"].value == "CRONUS Renamed"


def rename_company(env, name: str) -> None:
    """Rename the company as Business Central does (API v2.0 cannot): its record and where pages find it."""
    store, table = env.bc.store, env.bc.catalog.tables["Company"]
    store.companies[env.bc.company_id].name = name
    record = store.get(table, store.environment, env.bc.company_id)
    store.modify(table, store.environment, {**record, "Name": name}, "00000000-0000-0000-0000-000000000000")


def test_a_currency_job_that_wrote_drops_the_kept_local_currency_row_and_a_quiet_one_keeps_it(env):
    env.bc.seed("customers", [{"number": "C01", "displayName": "First"}])
    assert env.full_sync(["CUSTOMER"]).run.status is RunStatus.DONE
    assert "dataverse.lcy-currency" in env.services.state.facts()

    assert job(env.sync(["CURRENCY"]), "CURRENCY:to-crm").counts.inserted == 0
    assert "dataverse.lcy-currency" in env.services.state.facts()

    env.bc.seed("currencies", [{"code": "EUR", "displayName": "Euro", "symbol": "€"}])
    env.bc.seed("CurrencyExchangeRates", [{"Currency_Code": "EUR", "Starting_Date": "2024-01-01",
                                           "Exchange_Rate_Amount": 1, "Relational_Exch_Rate_Amount": 1.08}])
    assert job(env.full_sync(["CURRENCY"]), "CURRENCY:to-crm").counts.inserted == 1
    assert "dataverse.lcy-currency" not in env.services.state.facts()
