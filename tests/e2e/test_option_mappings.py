"""PAYMENT TERMS, SHIPMENT METHOD and SHIPPING AGENT: Business Central code tables coupled to the
account's option sets, and the customer fields that use them."""

from __future__ import annotations

from .conftest import job


def test_shipping_agents_come_from_the_published_page_and_couple_to_options_by_label(env):
    env.bc.seed("ShippingAgents", [{"Code": "DHL", "Name": "DHL Express"}, {"Code": "FEDEX", "Name": "FedEx"},
                                   {"Code": "OWN LOG.", "Name": "Own logistics"}])
    [dhl_customer] = env.bc.seed("customers", [{"number": "10000", "displayName": "Adatum", "shippingAgentCode": "DHL"}])
    [own_customer] = env.bc.seed("customers", [{"number": "20000", "displayName": "Fabrikam",
                                                "shippingAgentCode": "OWN LOG."}])
    report = env.full_sync()
    agents = job(report, "SHIPPING AGENT:to-crm")
    assert agents.counts.coupled == 2 and agents.counts.skipped == 1
    assert any("OWN LOG." in n and "left blank" in n for n in agents.notes)
    accounts = {a["name"]: a for a in env.dv.rows("account")}
    assert accounts["Adatum"]["address1_shippingmethodcode"] == 2          # "DHL"
    assert accounts["Fabrikam"].get("address1_shippingmethodcode") is None  # no such option: left blank
    assert any("Shipping Agent Code 'OWN LOG.' has no Sales option" in n for n in job(report, "CUSTOMER:to-crm").notes)

    # Sales -> BC goes through the Customer Card page, the only place the field is published
    env.dv.update("account", accounts["Adatum"]["accountid"], {"address1_shippingmethodcode": 3})  # FedEx
    report = env.sync()
    assert job(report, "CUSTOMER:from-crm").counts.modified == 1
    assert env.bc.get("customers", dhl_customer)["shippingAgentCode"] == "FEDEX"
    card = next(r for r in env.bc.rows("CustomerCard") if r["No"] == "10000")
    assert card["Shipping_Agent_Code"] == "FEDEX"
    assert env.bc.get("customers", own_customer)["shippingAgentCode"] == "OWN LOG."   # untouched


def test_payment_terms_and_shipment_methods_both_ways(env):
    terms = dict(zip(["NET 30", "NET 60", "COD"], env.bc.seed("paymentTerms", [
        {"code": "NET 30", "displayName": "Net 30"}, {"code": "NET 60", "displayName": "Net 60"},
        {"code": "COD", "displayName": "Cash on delivery"}])))
    methods = dict(zip(["FOB", "EXW"], env.bc.seed("shipmentMethods", [
        {"code": "FOB", "displayName": "Free on board"}, {"code": "EXW", "displayName": "Ex works"}])))
    [customer] = env.bc.seed("customers", [{"number": "10000", "displayName": "Adatum",
                                            "paymentTermsId": terms["NET 30"], "shipmentMethodId": methods["EXW"]}])
    env.full_sync()
    [account] = env.dv.rows("account")
    assert account["paymenttermscode"] == 1 and account.get("address1_freighttermscode") is None
    env.dv.update("account", account["accountid"], {"paymenttermscode": 4, "address1_freighttermscode": 1})
    env.sync()
    bc = env.bc.get("customers", customer)
    assert bc["paymentTermsId"] == terms["NET 60"] and bc["shipmentMethodId"] == methods["FOB"]
    # an option without a Business Central code leaves the customer's value alone and says so
    env.dv.update("account", account["accountid"], {"paymenttermscode": 3})   # Net 45: no such code
    report = env.sync()
    assert env.bc.get("customers", customer)["paymentTermsId"] == terms["NET 60"]
    assert any("Sales option 3 of paymenttermscode is not coupled" in n and "kept" in n
               for n in job(report, "CUSTOMER:from-crm").notes)
