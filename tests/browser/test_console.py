"""Each page of the status page in headless Chromium against the local stack with the sample company: its actions
clicked, their results checked on both services and in bcsync's tables, a screenshot of each page, the keyboard,
and a phone's width."""

from __future__ import annotations

from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from sync.model import Side
from sync.runs import RunStatus


def by_name(rows, key, value):
    return next(r for r in rows if r[key] == value)


def customer_coupling(env, name):
    """The coupling of the sample's Business Central customer `name`."""
    bc_id = by_name(env.bc.rows("customers"), "displayName", name)["id"]
    return next(c for c in env.couplings("CUSTOMER") if c.bc_id == bc_id)


def test_run_now_from_the_mappings_page_shows_the_run_progressing_to_done(console):
    env = console.env
    pair = customer_coupling(env, "Trey Research")
    env.bc.update("customers", pair.bc_id, {"displayName": "Trey Research Europe"})

    console.open("mappings")
    row = console.find('tr[data-mapping="CUSTOMER"]')
    assert [c.text for c in row.find_elements("css selector", "td")][:2] == ["enabled", "bidirectional"]
    console.screenshot("mappings")
    row.find_element("css selector", 'button[aria-label="Run CUSTOMER now"]').click()

    run_id, seen = console.run_from_page()
    assert seen[0] == "running" and seen[-1] == "done", seen     # updated live, without reloading the page
    report = env.services.report(run_id)
    assert report.run.status is RunStatus.DONE and report.run.kind.value == "scheduled"
    assert {j.mapping for j in report.jobs} == {"CUSTOMER"}
    # the page's job rows carry the counts of the tables, and the change reached Sales
    shown = {r.get_attribute("data-job"): r.find_element("css selector", "[data-count=modified]").text
             for r in console.all("tr[data-job]")}
    assert shown == {j.job_id: str(j.counts.modified) for j in report.jobs} and shown["CUSTOMER:to-crm"] == "1"
    # each job's start time filled in live (the page was rendered before the jobs started)
    assert all(cell.text != "—" for cell in console.all("tr[data-job] [data-field=started]"))
    assert by_name(env.dv.rows("account"), "accountid", pair.crm_id)["name"] == "Trey Research Europe"
    console.screenshot("job-log-run")

    console.open("jobs")
    assert console.find(f'section.run[data-run="{run_id}"] [data-field=run-status]').text == "done"
    console.screenshot("job-log")


def test_full_synchronisation_from_the_review_page(console):
    env = console.env
    [new] = env.bc.seed("customers", [{"number": "BT-001", "displayName": "Browser Test Bikes", "city": "Graz"}])

    console.open("review")
    recommendations = {c.get_attribute("data-recommendation"): c.text for c in console.all("[data-recommendation]")}
    assert "CUSTOMER" in recommendations and all(recommendations.values())
    console.screenshot("review")
    for box in console.all("#review-form input[name=mappings]"):
        if box.get_attribute("value") != "CUSTOMER":
            box.click()
    console.find("#start").click()

    run_id, seen = console.run_from_page()
    assert seen[-1] == "done", seen
    report = env.services.report(run_id)
    assert report.run.kind.value == "full" and {j.mapping for j in report.jobs} == {"CUSTOMER"}
    crm_id = next(c.crm_id for c in env.couplings("CUSTOMER") if c.bc_id == new)
    assert by_name(env.dv.rows("account"), "accountid", crm_id)["name"] == "Browser Test Bikes"


def test_edit_a_mappings_direction_and_schedule_then_reset_it(console):
    env = console.env
    console.open("mappings/CONTACT")
    Select(console.find("#field-direction")).select_by_value("to-crm")
    interval = console.find("#field-interval_minutes")
    interval.clear()
    interval.send_keys("45")
    console.screenshot("mapping-edit")
    console.act(console.find("#save"))

    saved = by_name(env.services.mappings(), "name", "CONTACT")
    assert saved["direction"] == "to-crm" and saved["interval_minutes"] == 45
    assert "direction" in console.find("#overridden").text                  # the page reloads with what was saved
    assert Select(console.find("#field-direction")).first_selected_option.get_attribute("value") == "to-crm"
    assert console.find("#field-interval_minutes").get_attribute("value") == "45"
    console.open("mappings")
    row = console.find('tr[data-mapping="CONTACT"]')
    assert "to-crm" in row.text and "every 45 min" in row.text

    console.open("mappings/CONTACT")
    console.act(console.find('button[aria-label="Reset CONTACT to its built-in definition"]'), confirm=True)
    reset = by_name(env.services.mappings(), "name", "CONTACT")
    assert reset["direction"] == "bidirectional" and not reset["overridden"]
    assert Select(console.find("#field-direction")).first_selected_option.get_attribute("value") == "bidirectional"


def test_errors_page_retries_and_restores_skipped_records(console):
    env = console.env
    # the sample's Alpine Ski House (salesperson JR has no Sales user) failed once; a second run skips it, and
    # a new customer of JR's fails for the first time
    [fresh] = env.bc.seed("customers", [{"number": "BT-002", "displayName": "Browser Test Skis",
                                          "salespersonCode": "JR"}])
    env.full_sync(["CUSTOMER"])
    alpine = by_name(env.bc.rows("customers"), "displayName", "Alpine Ski House")["id"]
    assert {f.source_id: f.skipped for f in env.errors() if f.mapping == "CUSTOMER"} == {alpine: True, fresh: False}

    console.open("errors", mapping="CUSTOMER", direction="to-crm")
    rows = {r.get_attribute("data-source-id"): r for r in console.all("tr[data-source-id]")}
    assert set(rows) == {alpine, fresh} and "Salesperson Code" in rows[fresh].text
    links = [a.get_attribute("href") for a in rows[fresh].find_elements("css selector", "a[target=_blank]")]
    assert any(fresh in link for link in links), links       # opens the record in Business Central
    console.screenshot("errors")

    # Jim Rowe gets a Sales user, so JR's customers can go through
    env.dv.seed("systemuser", [{"fullname": "Jim Rowe", "islicensed": True,
                                "internalemailaddress": "jim.rowe@contoso.com"}])
    env.full_sync(["SALESPEOPLE"])
    console.act(rows[alpine].find_element("css selector", 'button[aria-label^="Restore"]'))
    assert not next(f for f in env.errors() if f.source_id == alpine).skipped
    assert console.all(f'tr[data-source-id="{alpine}"] button[aria-label^="Retry"]')     # failed, no longer skipped
    console.act(console.find(f'tr[data-source-id="{fresh}"] button[aria-label^="Retry"]'))

    env.sync(["CUSTOMER"])
    assert [f for f in env.errors() if f.mapping == "CUSTOMER"] == []
    for bc_id, name in ((alpine, "Alpine Ski House"), (fresh, "Browser Test Skis")):
        crm_id = next(c.crm_id for c in env.couplings("CUSTOMER") if c.bc_id == bc_id)
        assert by_name(env.dv.rows("account"), "accountid", crm_id)["name"] == name
    console.open("errors", mapping="CUSTOMER")
    assert console.all("#errors-empty")


def test_couplings_search_uncouple_and_couple(console):
    env = console.env
    pair = customer_coupling(env, "Adatum Corporation")
    console.open("couplings", mapping="CUSTOMER", search="Adatum")
    assert [r.get_attribute("data-bc-id") for r in console.all("tr[data-bc-id]")] == [pair.bc_id]
    console.screenshot("couplings")

    console.act(console.find(f'button[aria-label="Uncouple {pair.bc_id}"]'), confirm=True)
    assert all(c.bc_id != pair.bc_id for c in env.couplings("CUSTOMER"))
    assert console.all("#couplings-empty")                                   # the page reloads without it

    console.find("#couple-bc_id").send_keys(pair.bc_id)
    console.find("#couple-crm_id").send_keys(pair.crm_id)
    console.act(console.find("#couple"))
    assert any(c.bc_id == pair.bc_id and c.crm_id == pair.crm_id for c in env.couplings("CUSTOMER"))
    console.open("couplings", mapping="CUSTOMER", search=pair.crm_id)
    assert [r.get_attribute("data-bc-id") for r in console.all("tr[data-bc-id]")] == [pair.bc_id]
    assert env.services.uncouple("CUSTOMER", Side.CRM, pair.crm_id).bc_id == pair.bc_id   # one coupling, not two


def test_item_availability_lookup_shows_business_centrals_inventory(console):
    env = console.env
    desk = by_name(env.bc.rows("items"), "number", "1896-S")
    console.open("availability")
    field = console.find("#product")
    field.send_keys("1896-S", Keys.ENTER)
    console.wait(lambda: console.all("[data-field=inventory]"))
    assert console.find("[data-field=inventory]").text == str(desk["inventory"])
    console.screenshot("availability")

    env.bc.update("items", desk["id"], {"inventory": desk["inventory"] + 5})   # read live from Business Central
    console.open("availability", product="1896-S")
    assert console.find("[data-field=inventory]").text == str(by_name(env.bc.rows("items"), "number", "1896-S")
                                                                ["inventory"]) == str(desk["inventory"] + 5)
    console.open("availability", product="NO-SUCH")
    assert "There is no product" in console.find("#problem").text


def test_run_now_with_the_keyboard_only(console):
    console.open("mappings")
    target = 'button[aria-label="Run CUSTOMER now"]'
    for _ in range(80):
        ActionChains(console.driver).send_keys(Keys.TAB).perform()
        if console.driver.execute_script(f"return document.activeElement.matches('{target}')"):
            break
    else:
        raise AssertionError("Tab never reached the Run now button of CUSTOMER")
    focus = console.driver.execute_script(
        "const e = document.activeElement, s = getComputedStyle(e);"
        "return [e.matches(':focus-visible'), s.outlineStyle, parseFloat(s.outlineWidth)]")
    assert focus[0] and focus[1] != "none" and focus[2] >= 2, focus       # the focus is visible
    console.screenshot("keyboard-focus")
    ActionChains(console.driver).send_keys(Keys.ENTER).perform()
    run_id, seen = console.run_from_page()
    assert seen[-1] == "done" and console.env.services.report(run_id).run.status is RunStatus.DONE


def test_pages_fit_a_phones_width(console):
    driver = console.driver
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": 375, "height": 812, "deviceScaleFactor": 1, "mobile": True})
    try:
        for page, params in (("mappings", {}), ("mappings/PAYMENT TERMS", {}), ("review", {}), ("jobs", {}),
                             ("errors", {}), ("couplings", {"mapping": "CUSTOMER"}),
                             ("availability", {"product": "1900-S"})):
            console.open(page, **params)
            console.screenshot("phone-" + page.replace("/", "-").replace(" ", "-"))
            width = driver.execute_script("return [document.documentElement.scrollWidth,"
                                          " document.documentElement.clientWidth, window.innerWidth]")
            assert width[0] <= width[1] == 375, (page, width)            # no sideways scrolling of the page
            table = driver.execute_script(
                "const t = document.querySelector('main table'); if (!t) return null;"
                "const box = t.closest('.wrap') || t, r = box.getBoundingClientRect(),"
                " c = t.querySelector('tbody tr > *').getBoundingClientRect();"
                "return [r.left, r.right, c.left, c.right, parseFloat(getComputedStyle(t).fontSize)]")
            if table is not None:   # the main table scrolls inside its box; its first column is on screen, legible
                left, right, first_left, first_right, size = table
                assert 0 <= left and right <= 375 and 0 <= first_left < first_right <= 375 and size >= 14, \
                    (page, table)
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
