"""A realistic sample company on both sides, with the awkward cases a real one has.

Dataverse: licensed users, a disabled and an unlicensed one, one in integration mode; customer
accounts, vendors, a prospect, an inactive customer, and two accounts that Business Central already
has as customers. Business Central: salespeople (one matches a Dataverse user by e-mail, one has no
user at all), payment terms and shipment methods some of which have no option in Sales, customers
with and without salespeople, blocked customers.

`seed(dataverse, business_central)` takes anything with `seed(entity, rows) -> ids`: the
simulators themselves (in-process) or `AdminClient` (a running stack).
"""

from __future__ import annotations

from typing import Protocol

import requests

EMPTY = "00000000-0000-0000-0000-000000000000"


class Seeder(Protocol):
    def seed(self, entity: str, rows: list[dict]) -> list[str]: ...


class AdminClient:
    """Seeds a simulator running in another process through its admin endpoints."""

    def __init__(self, base_url: str, ca_file: str):
        self.base_url = base_url.rstrip("/")
        self.ca_file = ca_file

    def seed(self, entity: str, rows: list[dict]) -> list[str]:
        response = requests.post(f"{self.base_url}/_sim/seed", json={"entity": entity, "rows": rows},
                                 verify=self.ca_file, timeout=30)
        response.raise_for_status()
        return response.json()["ids"]


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

    business_central.seed("customers", [
        customer("10000", "Adatum Corporation", "Atlanta", "US", salespersonCode="AT", paymentTermsId=terms["NET 30"],
                 email="info@adatum.example"),
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
    ])
    return {"systemuser": len(user_ids), "account": len(accounts), "customers": 10, "salespeoplePurchasers": 2}
