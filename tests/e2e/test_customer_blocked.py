"""CUSTOMER: account Inactive <-> customer Blocked, end to end."""

from __future__ import annotations

from .conftest import job


def account_of(env, name):
    return next(a for a in env.dv.rows("account") if a["name"] == name)


def customer_of(env, number):
    return next(c for c in env.bc.rows("customers") if c["number"] == number)


def test_inactive_account_blocks_its_customer_and_blocked_customer_deactivates_its_account(env):
    env.bc.seed("customers", [{"number": "10000", "displayName": "Adatum"},
                              {"number": "20000", "displayName": "Fabrikam"},
                              {"number": "30000", "displayName": "Closed Co", "blocked": "All"}])
    env.full_sync()
    assert sorted(a["name"] for a in env.dv.rows("account")) == ["Adatum", "Fabrikam"]  # an uncoupled blocked one: no

    # deactivated in Sales: the customer is blocked for everything
    adatum = account_of(env, "Adatum")
    env.dv.update("account", adatum["accountid"], {"statecode": 1, "statuscode": 2})
    report = env.sync()
    assert customer_of(env, "10000")["blocked"] == "All", report.to_dict()
    assert job(report, "CUSTOMER:from-crm").counts.modified == 1
    # unblocked in Business Central: the account is active again
    env.bc.update("customers", customer_of(env, "10000")["id"], {"blocked": " "})
    env.sync()
    assert (account_of(env, "Adatum")["statecode"], account_of(env, "Adatum")["statuscode"]) == (0, 1)

    # blocked for everything in Business Central: the account is deactivated; Ship leaves it active
    env.bc.update("customers", customer_of(env, "20000")["id"], {"blocked": "All"})
    env.bc.update("customers", customer_of(env, "10000")["id"], {"blocked": "Ship"})
    report = env.sync()
    assert job(report, "CUSTOMER:to-crm").counts.failed == 0, report.to_dict()
    assert (account_of(env, "Fabrikam")["statecode"], account_of(env, "Fabrikam")["statuscode"]) == (1, 2)
    assert account_of(env, "Adatum")["statecode"] == 0

    # re-activated in Sales while the customer stays blocked: Business Central leaves the customer blocked,
    # and the next change of the customer makes the account inactive again (Blocked decides)
    env.dv.update("account", account_of(env, "Fabrikam")["accountid"], {"statecode": 0, "statuscode": 1})
    env.sync()
    assert customer_of(env, "20000")["blocked"] == "All"
    env.bc.update("customers", customer_of(env, "20000")["id"], {"phoneNumber": "555-0100"})
    env.sync()
    fabrikam = account_of(env, "Fabrikam")
    assert (fabrikam["statecode"], fabrikam["telephone1"]) == (1, "555-0100")
    assert [f for f in env.errors() if f.mapping == "CUSTOMER"] == []
