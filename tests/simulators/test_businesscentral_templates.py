"""The Business Central simulator's configuration templates and posting groups over real HTTPS: templates
and their lines on the pages they are published as, the posting groups a template fills through the
Customer Card, and posting refused for a customer without them, as Business Central refuses it."""

from __future__ import annotations

import test_businesscentral_simulator as base
from test_businesscentral_simulator import error_of

from simulators.sample import seed_templates

env = base.env
bc = base.bc


def ok(response, status: int = 200) -> dict:
    assert response.status_code == status, response.text
    return response.json()


def new_customer_with_an_invoice(env, bc, name: str) -> tuple[dict, str]:
    """A customer created over API v2.0 (no template: no posting groups) with a draft invoice for one item."""
    if not env.sim.rows("unitsOfMeasure"):
        env.sim.seed("unitsOfMeasure", [{"code": "PCS", "displayName": "Pieces"}])
    item = env.sim.get("items", env.sim.seed("items", [{"displayName": "Chair", "unitPrice": 50,
                                                          "baseUnitOfMeasureCode": "PCS", "inventory": 5}])[0])
    customer = ok(bc.post(f"{env.company}/customers", json={"displayName": name}), 201)
    draft = ok(bc.post(f"{env.company}/salesInvoices", json={
        "customerId": customer["id"], "salesInvoiceLines": [{"lineObjectNumber": item["number"], "quantity": 1}]}), 201)
    return customer, draft["id"]


def test_templates_and_their_lines_are_read_from_their_pages(env, bc):
    seed_templates(env.sim)
    templates = ok(bc.get(f"{env.odata}/ConfigTemplates", params={"$filter": "Code eq 'BCICUST'"}))["value"]
    assert [(t["Code"], t["Table_ID"], t["Table_Name"]) for t in templates] == [("BCICUST", 18, "Customer")]
    lines = ok(bc.get(f"{env.odata}/ConfigTemplateLines", params={
        "$filter": "Data_Template_Code eq 'BCICUST'", "$select": "Line_No,Type,Field_Name,Default_Value"}))["value"]
    assert [(line["Type"], line["Field_Name"], line["Default_Value"]) for line in lines] == [
        ("Field", "Gen. Bus. Posting Group", "DOMESTIC"), ("Field", "VAT Bus. Posting Group", "DOMESTIC"),
        ("Field", "Customer Posting Group", "DOMESTIC")]
    one = ok(bc.get(f"{env.odata}/ConfigTemplateLines(Data_Template_Code='BCIITEM',Line_No=20000)"))
    assert (one["Field_Name"], one["Default_Value"]) == ("Inventory Posting Group", "RESALE")


def test_a_customer_gets_posting_groups_from_its_template_values_on_the_customer_card(env, bc):
    customer, _ = new_customer_with_an_invoice(env, bc, "Fresh from the API")
    card_url = f"{env.odata}/CustomerCard('{customer['number']}')"
    card = ok(bc.get(card_url))
    assert (card["Gen_Bus_Posting_Group"], card["Customer_Posting_Group"]) == ("", "")   # created over the wire
    applied = ok(bc.patch(card_url, headers={"If-Match": "*"}, json={
        "Gen_Bus_Posting_Group": "DOMESTIC", "VAT_Bus_Posting_Group": "DOMESTIC", "Customer_Posting_Group": "DOMESTIC"}))
    assert (applied["Gen_Bus_Posting_Group"], applied["Customer_Posting_Group"]) == ("DOMESTIC", "DOMESTIC")
    # a customer a user makes in the client picks a template: the in-process API stands for that
    seeded = env.sim.seed("customers", [{"displayName": "Made by hand"}])[0]
    assert env.sim.get("CustomerCard", seeded)["Customer_Posting_Group"] == "DOMESTIC"


def test_posting_is_refused_for_a_customer_without_posting_groups(env, bc):
    customer, draft = new_customer_with_an_invoice(env, bc, "No groups yet")
    post = f"{env.company}/salesInvoices({draft})/Microsoft.NAV.post"
    assert error_of(bc.post(post)) == (
        400, "Application_FieldValidationException",
        f"Customer Posting Group must have a value in Customer: No.={customer['number']}. It cannot be zero or empty.")
    card_url = f"{env.odata}/CustomerCard('{customer['number']}')"
    ok(bc.patch(card_url, headers={"If-Match": "*"}, json={"Customer_Posting_Group": "DOMESTIC"}))
    assert error_of(bc.post(post))[2].startswith("Gen. Bus. Posting Group must have a value in Customer")
    ok(bc.patch(card_url, headers={"If-Match": "*"}, json={"Gen_Bus_Posting_Group": "DOMESTIC"}))
    assert bc.post(post).status_code == 204
    assert ok(bc.get(f"{env.company}/salesInvoices({draft})"))["status"] == "Open"


def test_shipping_and_invoicing_an_order_is_refused_the_same_way(env, bc):
    customer, _ = new_customer_with_an_invoice(env, bc, "Orders without groups")
    item = env.sim.rows("items")[0]
    order = ok(bc.post(f"{env.company}/salesOrders", json={
        "customerId": customer["id"], "salesOrderLines": [{"lineObjectNumber": item["number"], "quantity": 1}]}), 201)
    answer = error_of(bc.post(f"{env.company}/salesOrders({order['id']})/Microsoft.NAV.shipAndInvoice"))
    assert answer[:2] == (400, "Application_FieldValidationException") and "Customer Posting Group" in answer[2]
    assert ok(bc.get(f"{env.company}/salesOrders({order['id']})"))["id"] == order["id"]       # nothing was posted
