"""The rows `make bench` and `make soak` seed through the simulators' admin routes: customers and accounts,
person contacts of those, items and products, with names that never match across the sides."""

from __future__ import annotations

import random

from .stack import BenchStack

FIRST = ("Ada", "Bruno", "Chloé", "Dmitri", "Esther", "Farid", "Greta", "Hiro", "Ines", "Jonas", "Kemal", "Lena")
LAST = ("Achterberg", "Baptiste", "Castellano", "Dubois", "Eriksen", "Fontaine", "Gallo", "Haddad", "Ivanova")
TRADE = ("Trading", "Logistics", "Foods", "Engineering", "Textiles", "Optics", "Marine", "Timber", "Pharma")
CITIES = ("Lyon", "Porto", "Ghent", "Turin", "Bergen", "Kraków", "Seville", "Aarhus", "Graz", "Nantes")
GOODS = ("bolt", "valve", "bracket", "gasket", "hinge", "spring", "washer", "bearing", "sprocket", "flange")


def person(i: int) -> tuple[str, str]:
    return FIRST[i % len(FIRST)], f"{LAST[(i // len(FIRST)) % len(LAST)]}-{i}"


class Dataset:
    """Distinct rows on each side (no name on one side matches one on the other, so nothing is coupled by
    matching: every row is created on the other side), and the ids of the seeded rows per table."""

    def __init__(self, stack: BenchStack, mappings: list[str], size: int):
        self.stack = stack
        self.per_mapping = size // len(mappings)
        self.seeded: dict[tuple[str, str], list[str]] = {}
        if "CUSTOMER" in mappings:
            self.customers()
        if "CONTACT" in mappings:
            self.contacts()
        if "ITEM-PRODUCT" in mappings:
            self.items()

    def add(self, service: str, entity: str, rows: list[dict]) -> list[str]:
        self.seeded[(service, entity)] = ids = self.stack.seed(service, entity, rows)
        return ids

    def customers(self) -> None:
        n = self.per_mapping
        self.add("Business Central", "customers", [
            {"number": f"C{i:06d}", "displayName": f"{LAST[i % len(LAST)]} {TRADE[i % len(TRADE)]} {i}",
             "city": CITIES[i % len(CITIES)], "phoneNumber": f"+33 4 {i:08d}", "email": f"orders{i}@bc.example"}
            for i in range(n)])
        self.add("Dataverse", "account", [
            {"name": f"{TRADE[i % len(TRADE)]} {FIRST[i % len(FIRST)]} Holdings {i}", "customertypecode": 3,
             "address1_city": CITIES[(i + 3) % len(CITIES)], "telephone1": f"+49 30 {i:08d}",
             "emailaddress1": f"buying{i}@sales.example"} for i in range(n)])

    def contacts(self) -> None:
        n = self.per_mapping
        companies = [c["number"] for c in self.stack.rows("Business Central", "contacts") if c["type"] == "Company"]
        accounts = self.seeded[("Dataverse", "account")]
        rows = []
        for i in range(n):
            first, last = person(i)
            rows.append({"type": "Person", "displayName": f"{first} {last}",
                         "companyNumber": companies[i % len(companies)],
                         "email": f"{first.lower()}.{i}@bc.example", "phoneNumber": f"+33 6 {i:08d}"})
        self.add("Business Central", "contacts", rows)
        rows = []
        for i in range(n):
            first, last = person(i + n)
            rows.append({"firstname": first, "lastname": last, "parentcustomerid": accounts[i % len(accounts)],
                         "emailaddress1": f"{first.lower()}.{i}@sales.example", "telephone1": f"+49 171 {i:08d}"})
        self.add("Dataverse", "contact", rows)

    def items(self) -> None:
        n = self.per_mapping
        self.stack.seed("Business Central", "unitsOfMeasure", [{"code": "PCS", "displayName": "Piece"}])
        [group] = self.stack.seed("Dataverse", "uomschedule", [{"name": "NAV PCS", "baseuomname": "PCS"}])
        unit = next(u for u in self.stack.rows("Dataverse", "uom") if u["uomscheduleid"] == group)["uomid"]
        self.add("Business Central", "items", [
            {"number": f"I{i:06d}", "displayName": f"{GOODS[i % len(GOODS)]} M{i % 40} type {i}",
             "baseUnitOfMeasureCode": "PCS", "unitPrice": 1 + i % 500, "unitCost": 0.5 + i % 300}
            for i in range(n)])
        self.add("Dataverse", "product", [
            {"productnumber": f"P{i:06d}", "name": f"{GOODS[(i + 5) % len(GOODS)]} kit {i}", "producttypecode": 1,
             "defaultuomscheduleid": group, "defaultuomid": unit, "statecode": 0, "statuscode": 1}
            for i in range(n)])

    def change(self, count: int) -> None:
        """Change `count` seeded rows per side (all coupled after the full synchronisation), spread over the
        tables."""
        changes = {"customers": {"city": "Marseille"}, "account": {"telephone1": "+33 1 99 99 99 99"},
                   "contacts": {"phoneNumber": "+33 6 99 99 99 99"}, "contact": {"mobilephone": "+49 170 9999"},
                   "items": {"displayName": "renamed item"}, "product": {"name": "renamed product"}}
        for service in ("Business Central", "Dataverse"):
            tables = [(entity, ids) for (s, entity), ids in self.seeded.items() if s == service]
            for i, (entity, ids) in enumerate(tables):
                for row in random.sample(ids, count // len(tables) + (i < count % len(tables))):
                    self.stack.admin(service, "update", {"entity": entity, "id": row, "values": changes[entity]})

    def posted_invoices(self, count: int, lines: int) -> list[str]:
        """`count` invoices posted in Business Central to the seeded customers, each with `lines` lines of seeded
        items; their ids."""
        n = self.per_mapping
        drafts = self.stack.seed("Business Central", "salesInvoices",
                                 [{"customerNumber": f"C{i % n:06d}"} for i in range(count)])
        self.stack.seed("Business Central", "salesInvoiceLines", [
            {"documentId": draft, "lineType": "Item", "lineObjectNumber": f"I{(i * lines + j) % n:06d}",
             "quantity": 1 + j} for i, draft in enumerate(drafts) for j in range(lines)])
        post = [{"entity": "salesInvoices", "id": draft} for draft in drafts]
        return [self.stack.admin("Business Central", "post", body)["posted_invoice_id"] for body in post]
