"""The Business Central and Dataverse tables the built-in mappings use."""

from __future__ import annotations

from .model import BcTable, Companion, CrmLookup, CrmTable

# Business Central, API v2.0 entity sets.
BC_SALESPERSON = BcTable("salespeoplePurchasers", "Salesperson/Purchaser", key_field="code")
BC_CUSTOMER = BcTable("customers", "Customer", key_field="number", enum_fields=frozenset({"blocked", "type"}),
                      companion=Companion("CustomerCard", ("number", "No"),
                                          {"shippingAgentCode": "Shipping_Agent_Code"}))
BC_PAYMENT_TERMS = BcTable("paymentTerms", "Payment Terms", key_field="code")
BC_SHIPMENT_METHOD = BcTable("shipmentMethods", "Shipment Method", key_field="code")
BC_CURRENCY = BcTable("currencies", "Currency", key_field="code")

# Business Central, published pages (API v2.0 has no such entity sets).
BC_SHIPPING_AGENT = BcTable.page("ShippingAgents", "Shipping Agent", ("Code",))

# Dataverse.
CRM_SYSTEMUSER = CrmTable("systemuser", "systemusers", "systemuserid", "fullname")
CRM_CURRENCY = CrmTable("transactioncurrency", "transactioncurrencies", "transactioncurrencyid", "currencyname")
CRM_ACCOUNT = CrmTable(
    "account", "accounts", "accountid", "name",
    lookups={
        "ownerid": CrmLookup("ownerid", "systemusers"),
        "transactioncurrencyid": CrmLookup("transactioncurrencyid", "transactioncurrencies"),
        "primarycontactid": CrmLookup("primarycontactid", "contacts"),
    },
)
