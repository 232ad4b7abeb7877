"""A realistic sample company on both sides, with the awkward cases a real one has, for every mapping.

Dataverse: licensed users, a disabled and an unlicensed one, one in integration mode; customer
accounts, vendors, a prospect, an inactive customer, and two accounts that Business Central already
has as customers; contacts with and without a parent account; a product and an opportunity entered
in Sales. Business Central: salespeople (one matches a Dataverse user by e-mail, one has no user at
all); currencies with exchange rates and one that is not an ISO code; payment terms, shipment
methods and shipping agents, some without an option in Sales; customers with and without
salespeople, blocked ones, foreign-currency ones; person contacts of customers and of a company
that is no customer; units, items (one blocked, the write-in item), resources; customer price
groups and their prices, and price lists of the new pricing experience (read with BCSYNC_PRICING=extended: one in
the local currency with items, a resource and a quantity price, one in euros); opportunities; posted invoices,
paid, partly paid and open.

`seed(dataverse, business_central)` takes the simulators themselves (in-process) or
`AdminClient`s (a running stack): anything with seed/update/post_document/apply_payment.
"""

from __future__ import annotations

from typing import Protocol

import requests

EMPTY = "00000000-0000-0000-0000-000000000000"


class Seeder(Protocol):
    def seed(self, entity: str, rows: list[dict]) -> list[str]: ...

    def rows(self, entity: str) -> list[dict]: ...

    def update(self, entity: str, id_: str, values: dict) -> object: ...


class AdminClient:
    """Drives a simulator running in another process through its admin endpoints."""

    def __init__(self, base_url: str, ca_file: str):
        self.base_url = base_url.rstrip("/")
        self.ca_file = ca_file

    def _post(self, path: str, body: dict) -> dict:
        response = requests.post(f"{self.base_url}/_sim/{path}", json=body, verify=self.ca_file, timeout=60)
        response.raise_for_status()
        return response.json()

    def seed(self, entity: str, rows: list[dict]) -> list[str]:
        return self._post("seed", {"entity": entity, "rows": rows})["ids"]

    def rows(self, entity: str) -> list[dict]:
        response = requests.get(f"{self.base_url}/_sim/rows/{entity}", verify=self.ca_file, timeout=60)
        response.raise_for_status()
        return response.json()["value"]

    def update(self, entity: str, id_: str, values: dict) -> dict:
        return self._post("update", {"entity": entity, "id": id_, "values": values})

    def post_document(self, entity: str, id_: str) -> str:
        return self._post("post", {"entity": entity, "id": id_})["posted_invoice_id"]

    def apply_payment(self, invoice: str, amount: float) -> dict:
        return self._post("payment", {"invoice": invoice, "amount": amount})


USERS = [
    ("Alicia", "Thornber", "alicia.thornber@contoso.com", "+1 425 555 0101", {}),
    ("Bernd", "Kaiser", "bernd.kaiser@contoso.com", "+49 89 555 0102", {}),
    ("Chen", "Li", "chen.li@contoso.com", "+86 21 5555 0103", {}),
    ("Dana", "Ruiz", "dana.ruiz@contoso.com", "+34 91 555 0104", {}),
    ("Emeka", "Obi", "emeka.obi@contoso.com", "+234 1 555 0105", {}),
    ("Olga", "Retired", "olga.retired@contoso.com", "", {"isdisabled": True}),
    ("Una", "Unlicensed", "una.unlicensed@contoso.com", "", {"islicensed": False}),
    ("Ivan", "Integration", "svc-integration@contoso.com", "", {"isintegrationuser": True}),
]


def _user(first, last, email, phone, extra) -> dict:
    return {"firstname": first, "lastname": last, "fullname": f"{first} {last}", "internalemailaddress": email,
            "domainname": email, "mobilephone": phone, "islicensed": True, "isdisabled": False, **extra}


def _account(name, city, country, *, kind=3, state=0, email="", phone="", terms=None, freight=None, owner=None):
    row = {"name": name, "address1_city": city, "address1_country": country, "customertypecode": kind,
           "statecode": state, "statuscode": 1 if state == 0 else 2, "emailaddress1": email or None,
           "telephone1": phone or None}
    if terms:
        row["paymenttermscode"] = terms
    if freight:
        row["address1_freighttermscode"] = freight
    if owner:
        row["ownerid"] = owner
    return row


def seed(dataverse: Seeder, business_central: Seeder) -> dict[str, int]:
    user_ids = dataverse.seed("systemuser", [_user(*u) for u in USERS])
    alicia, bernd = user_ids[0], user_ids[1]
    accounts = [
        _account("Adatum Corporation", "Atlanta", "US", email="info@adatum.example", terms=1),
        _account("Trey Research", "Chicago", "US", email="hello@treyresearch.example", owner=alicia),
        _account("Fourth Coffee", "Seattle", "US", phone="+1 206 555 0140", terms=3, freight=1, owner=bernd),
        _account("Wide World Importers", "Rotterdam", "NL", terms=1, freight=2),
        _account("Northwind Traders", "London", "GB", email="orders@northwind.example"),
        _account("Contoso Pharmaceuticals", "Basel", "CH", terms=4, owner=alicia),
        _account("Litware, Inc.", "Boston", "US"),
        _account("Proseware, Inc.", "Denver", "US", phone="+1 303 555 0188"),
        _account("Alpine Ski House", "Innsbruck", "AT", kind=11),             # a vendor: not a customer
        _account("Blue Yonder Airlines", "Madrid", "ES", kind=11),            # a vendor
        _account("Coho Winery", "Napa", "US", kind=8),                        # a prospect
        _account("Old Mill Bakery", "Leeds", "GB", state=1),                  # an inactive customer
    ]
    dataverse.seed("account", accounts)

    business_central.seed("salespeoplePurchasers", [
        {"code": "AT", "displayName": "Alicia T.", "email": "ALICIA.THORNBER@contoso.com", "phoneNo": ""},
        {"code": "JR", "displayName": "Jim Rowe", "email": "jim.rowe@contoso.com", "phoneNo": "+1 425 555 0190"},
    ])
    terms = dict(zip(["NET 30", "NET 45", "COD", "14 DAYS"], business_central.seed("paymentTerms", [
        {"code": "NET 30", "displayName": "Net 30 days", "dueDateCalculation": "30D"},
        {"code": "NET 45", "displayName": "Net 45 days", "dueDateCalculation": "45D"},
        {"code": "COD", "displayName": "Cash on delivery", "dueDateCalculation": "0D"},
        {"code": "14 DAYS", "displayName": "14 days", "dueDateCalculation": "14D"},
    ])))
    methods = dict(zip(["FOB", "EXW", "CIF"], business_central.seed("shipmentMethods", [
        {"code": "FOB", "displayName": "Free on board"},
        {"code": "EXW", "displayName": "Ex works"},
        {"code": "CIF", "displayName": "Cost, insurance and freight"},
    ])))

    def customer(number, name, city, country, **extra) -> dict:
        row = {"number": number, "displayName": name, "type": "Company", "city": city, "country": country,
               "paymentTermsId": EMPTY, "shipmentMethodId": EMPTY}
        row.update(extra)
        return row

    eur, gbp, _ = business_central.seed("currencies", [
        {"code": "EUR", "displayName": "Euro", "symbol": "€"},
        {"code": "GBP", "displayName": "British pound", "symbol": "£"},
        {"code": "LOY", "displayName": "Loyalty points", "symbol": ""},       # not an ISO 4217 code
    ])
    business_central.seed("CurrencyExchangeRates", [
        {"Currency_Code": "EUR", "Starting_Date": "2025-01-01", "Exchange_Rate_Amount": 1, "Relational_Exch_Rate_Amount": 1.08},
        {"Currency_Code": "GBP", "Starting_Date": "2025-01-01", "Exchange_Rate_Amount": 1, "Relational_Exch_Rate_Amount": 1.27},
    ])
    business_central.seed("ShippingAgents", [{"Code": "DHL", "Name": "DHL Express"}, {"Code": "UPS", "Name": "UPS"},
                                             {"Code": "OWN LOG.", "Name": "Own logistics"}])
    business_central.seed("customers", [
        customer("10000", "Adatum Corporation", "Atlanta", "US", salespersonCode="AT", paymentTermsId=terms["NET 30"],
                 email="info@adatum.example", shippingAgentCode="DHL"),
        customer("20000", "Trey Research", "Chicago", "US", salespersonCode="AT"),
        customer("30000", "School of Fine Art", "Miami", "US", salespersonCode="AT", paymentTermsId=terms["NET 45"],
                 shipmentMethodId=methods["FOB"], phoneNumber="+1 305 555 0117", creditLimit=25000),
        customer("40000", "Alpine Ski House", "Salzburg", "AT", salespersonCode="JR"),  # JR has no Sales user
        customer("50000", "Relecloud", "Seattle", "US", paymentTermsId=terms["COD"], shipmentMethodId=methods["EXW"]),
        customer("60000", "Graphic Design Institute", "Phoenix", "US", paymentTermsId=terms["14 DAYS"],
                 website="www.graphicdesign.example"),
        customer("70000", "Woodgrove Bank", "Dublin", "IE", salespersonCode="AT", creditLimit=100000,
                 email="treasury@woodgrove.example"),
        customer("80000", "Tailspin Toys", "Dallas", "US", blocked="All"),             # blocked: not synchronised
        customer("90000", "Wingtip Toys", "Bristol", "GB", blocked="Ship", salespersonCode="AT"),  # blocked too
        customer("95000", "Lamna Healthcare", "Oslo", "NO", shipmentMethodId=methods["CIF"]),
        customer("96000", "Europa Handel GmbH", "Hamburg", "DE", currencyId=eur, salespersonCode="AT",
                 shippingAgentCode="OWN LOG."),
        customer("97000", "Thames Supplies Ltd", "London", "GB", currencyId=gbp, shippingAgentCode="UPS"),
    ])
    counts = {"systemuser": len(user_ids), "account": len(accounts), "customers": 12, "salespeoplePurchasers": 2}
    counts.update(_seed_people(dataverse, business_central, alicia))
    counts.update(_seed_catalogue(dataverse, business_central))
    counts.update(_seed_invoices(business_central))
    counts.update(_seed_templates(business_central))
    return counts


def _company_contact(business_central: Seeder, name: str) -> str:
    """The company contact Business Central made for a customer (its number)."""
    return next(c["number"] for c in business_central.rows("contacts") if c["displayName"] == name and c["type"] == "Company")


def _seed_people(dataverse: Seeder, business_central: Seeder, alicia: str) -> dict[str, int]:
    adatum, trey = _company_contact(business_central, "Adatum Corporation"), _company_contact(business_central, "Trey Research")
    business_central.seed("contacts", [{"type": "Company", "displayName": "Independent Consultants"}])
    loose = _company_contact(business_central, "Independent Consultants")
    people = business_central.seed("contacts", [
        {"type": "Person", "displayName": "Ann Lee", "companyNumber": adatum, "email": "ann.lee@adatum.example",
         "phoneNumber": "+1 404 555 0111", "jobTitle": "Purchasing"},
        {"type": "Person", "displayName": "Raj Patel", "companyNumber": trey, "email": "raj@treyresearch.example"},
        {"type": "Person", "displayName": "Freelance Fred", "companyNumber": loose},   # company is no customer
    ])
    business_central.update("ContactCard", people[0], {"Salesperson_Code": "AT"})
    ann = next(c["number"] for c in business_central.rows("contacts") if c["displayName"] == "Ann Lee")
    business_central.seed("opportunities", [
        {"contactNumber": ann, "description": "Office refit, 3 floors", "salespersonCode": "AT", "status": "In Progress",
         "estimatedValue": 125000, "estimatedClosingDate": "2027-06-30"},
        {"contactNumber": ann, "description": "Reception desk", "status": "Won"},        # closed: not synchronised
    ])
    fourth = next(a["accountid"] for a in dataverse.rows("account") if a["name"] == "Fourth Coffee")
    bob, _ = dataverse.seed("contact", [
        {"firstname": "Bob", "lastname": "Barista", "parentcustomerid": fourth, "emailaddress1": "bob@fourthcoffee.example",
         "telephone1": "+1 206 555 0142"},
        {"firstname": "Walk", "lastname": "In"},                                  # no parent account
    ])
    dataverse.seed("opportunity", [{"name": "Espresso machines, 40 units", "parentcontactid": bob,
                                    "customerid": fourth, "estimatedvalue": 38000}])
    return {"contacts": 3, "contact": 2, "opportunities": 2, "opportunity": 1}


def _seed_catalogue(dataverse: Seeder, business_central: Seeder) -> dict[str, int]:
    business_central.seed("unitsOfMeasure", [{"code": "PCS", "displayName": "Piece"}, {"code": "HOUR", "displayName": "Hour"},
                                             {"code": "BOX", "displayName": "Box"}])
    business_central.seed("items", [
        {"number": "1896-S", "displayName": "ATHENS Desk", "baseUnitOfMeasureCode": "PCS", "unitPrice": 1000.8,
         "unitCost": 780.7, "inventory": 12},
        {"number": "1900-S", "displayName": "PARIS Guest Chair, black", "baseUnitOfMeasureCode": "PCS",
         "unitPrice": 192.8, "unitCost": 150.4, "inventory": 40},
        {"number": "1920-S", "displayName": "ANTWERP Conference Table", "baseUnitOfMeasureCode": "PCS",
         "unitPrice": 1420.2, "unitCost": 1100, "inventory": -2},
        {"number": "1960-S", "displayName": "ROME Guest Chair, green", "baseUnitOfMeasureCode": "PCS",
         "unitPrice": 192.8, "blocked": True},
        {"number": "WRITE-IN", "displayName": "Write-in product", "baseUnitOfMeasureCode": "PCS", "unitPrice": 0},
    ])
    business_central.seed("accounts", [{"number": "6610", "displayName": "Freight charged", "accountType": "Posting"}])
    setup = business_central.rows("SalesReceivablesSetup")[0]["SystemId"]
    business_central.update("SalesReceivablesSetup", setup, {"Write_in_Product_Type": "Item",
                                                             "Write_in_Product_No": "WRITE-IN",
                                                             "Freight_G_L_Acc_No": "6610"})
    business_central.seed("Resources", [
        {"No": "R0010", "Name": "Installation", "Base_Unit_of_Measure": "HOUR", "Unit_Price": 85, "Unit_Cost": 60,
         "Capacity": 160},
        {"No": "R0020", "Name": "Design consultation", "Base_Unit_of_Measure": "HOUR", "Unit_Price": 120,
         "Unit_Cost": 90, "Capacity": 80},
    ])
    business_central.seed("CustomerPriceGroups", [{"Code": "RETAIL", "Description": "Retail customers"},
                                                  {"Code": "DEALER", "Description": "Dealers and resellers"}])
    business_central.seed("SalesPrices", [
        {"Item_No": "1896-S", "Sales_Type": "Customer Price Group", "Sales_Code": "RETAIL", "Unit_Price": 990},
        {"Item_No": "1896-S", "Sales_Type": "Customer Price Group", "Sales_Code": "DEALER", "Unit_Price": 880},
        {"Item_No": "1900-S", "Sales_Type": "Customer Price Group", "Sales_Code": "DEALER", "Unit_Price": 160},
        {"Item_No": "1900-S", "Sales_Type": "All Customers", "Sales_Code": "", "Unit_Price": 185},  # not a group price
    ])
    # the new sales pricing experience's price lists (legacy mode, the default, does not read them)
    business_central.seed("PriceListHeaders", [
        {"Code": "S00001", "Description": "Retail prices 2026", "Price_Type": "Sale", "Amount_Type": "Price",
         "Starting_Date": "2026-01-01", "Status": "Active"},
        {"Code": "S00002", "Description": "Euro export prices", "Price_Type": "Sale", "Amount_Type": "Price",
         "Currency_Code": "EUR", "Status": "Active"},
    ])
    line = {"Price_Type": "Sale", "Amount_Type": "Price", "Asset_Type": "Item"}
    business_central.seed("PriceListLines", [
        {**line, "Price_List_Code": "S00001", "Asset_No": "1896-S", "Unit_Price": 995},
        {**line, "Price_List_Code": "S00001", "Asset_No": "1896-S", "Unit_Price": 950, "Minimum_Quantity": 10},
        {**line, "Price_List_Code": "S00001", "Asset_No": "1900-S", "Unit_Price": 175},
        {**line, "Price_List_Code": "S00001", "Asset_Type": "Resource", "Asset_No": "R0010", "Unit_Price": 80},
        {**line, "Price_List_Code": "S00002", "Asset_No": "1896-S", "Unit_Price": 920},
    ])
    return {"items": 5, "Resources": 2, "SalesPrices": 4, "PriceListHeaders": 2, "PriceListLines": 5, "accounts": 1}


def _seed_invoices(business_central: Seeder) -> dict[str, int]:
    def invoice(customer: str, lines: list[dict]) -> str:
        [draft] = business_central.seed("salesInvoices", [{"customerNumber": customer}])
        business_central.seed("salesInvoiceLines", [{"documentId": draft, **line} for line in lines])
        return business_central.post_document("salesInvoices", draft)

    paid = invoice("10000", [{"lineType": "Item", "lineObjectNumber": "1896-S", "quantity": 2},
                             {"lineType": "Comment", "description": "Assembly included"}])
    partly = invoice("30000", [{"lineType": "Item", "lineObjectNumber": "1900-S", "quantity": 8, "discountAmount": 40},
                               {"lineType": "Resource", "lineObjectNumber": "R0010", "quantity": 4}])
    invoice("70000", [{"lineType": "Item", "lineObjectNumber": "1920-S", "quantity": 1}])
    business_central.apply_payment(paid, 2001.6)
    business_central.apply_payment(partly, 500)
    return {"posted invoices": 3}


# Configuration templates for the records bcsync creates from Sales, as Business Central's integration set-up
# makes BCICUST: `bcsync mappings set CUSTOMER --template-code BCICUST` (and ITEM-PRODUCT BCIITEM,
# RESOURCE-PRODUCT BCIRES, VENDOR BCIVEND) applies them. Without one, a customer created from Sales cannot be invoiced.
TEMPLATES = {
    "BCICUST": ("Customer", 18, {"Gen. Bus. Posting Group": "DOMESTIC", "VAT Bus. Posting Group": "DOMESTIC",
                                 "Customer Posting Group": "DOMESTIC"}),
    "BCIITEM": ("Item", 27, {"Gen. Prod. Posting Group": "RETAIL", "Inventory Posting Group": "RESALE"}),
    "BCIRES": ("Resource", 156, {"Gen. Prod. Posting Group": "SERVICES", "VAT Prod. Posting Group": "STANDARD"}),
    "BCIVEND": ("Vendor", 23, {"Gen. Bus. Posting Group": "DOMESTIC", "VAT Bus. Posting Group": "DOMESTIC",
                               "Vendor Posting Group": "DOMESTIC"}),
}


def seed_templates(business_central: Seeder, templates: dict = TEMPLATES) -> None:
    """Configuration templates (page ConfigTemplates) with their field lines (page ConfigTemplateLines)."""
    business_central.seed("ConfigTemplates", [
        {"Code": code, "Description": f"New {table.lower()}s from Sales", "Table_ID": number, "Table_Name": table}
        for code, (table, number, _) in templates.items()])
    business_central.seed("ConfigTemplateLines", [
        {"Data_Template_Code": code, "Line_No": 10000 * n, "Type": "Field", "Field_Name": name, "Default_Value": value}
        for code, (_, _, values) in templates.items() for n, (name, value) in enumerate(values.items(), start=1)])


def _seed_templates(business_central: Seeder) -> dict[str, int]:
    business_central.seed("generalProductPostingGroups", [{"code": "RETAIL", "description": "Retail"},
                                                          {"code": "SERVICES", "description": "Services"}])
    business_central.seed("inventoryPostingGroups", [{"code": "RESALE", "description": "Resale items"}])
    seed_templates(business_central)
    return {"ConfigTemplates": len(TEMPLATES)}


def seed_orders(dataverse: Seeder) -> dict[str, int]:
    """Sales orders submitted in Sales, once the full synchronisation has made the products: one with a
    write-in, a long description and freight; one for a prospect, which Business Central refuses."""
    accounts = {a["name"]: a["accountid"] for a in dataverse.rows("account")}
    products = {p["productnumber"]: p for p in dataverse.rows("product")}
    usd = next(c["transactioncurrencyid"] for c in dataverse.rows("transactioncurrency") if c["isocurrencycode"] == "USD")

    def order(name: str, account: str, lines: list[dict], **header) -> str:
        [order_id] = dataverse.seed("salesorder", [{"name": name, "customerid": accounts[account],
                                                    "transactioncurrencyid": usd, **header}])
        dataverse.seed("salesorderdetail", [{"salesorderid": order_id, **line} for line in lines])
        dataverse.update("salesorder", order_id, {"statecode": 1, "statuscode": 3})
        return order_id

    def product(number: str, quantity: float, **more) -> dict:
        p = products[number]
        return {"productid": p["productid"], "uomid": p["defaultuomid"], "quantity": quantity,
                "priceperunit": p.get("price") or 0, "ispriceoverridden": True, **more}

    order("PO 7001", "Adatum Corporation", [
        product("1896-S", 2, description="Deliver to the 3rd floor reception; the lift takes 2 desks at a time."),
        {"isproductoverridden": True, "productdescription": (
            "Custom cable management tray, cut to the desk's width, powder-coated to match the desk frame, with "
            "two grommets and a cable spine for the monitor arms"), "quantity": 2, "priceperunit": 75},
        product("R0010", 3),
    ], freightamount=45, paymenttermscode=1, requestdeliveryby="2026-12-15")
    order("PO 7002", "Coho Winery", [product("1900-S", 6)])   # a prospect: not a customer in Business Central
    return {"submitted sales orders": 2}
