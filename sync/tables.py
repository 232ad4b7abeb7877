"""The Business Central and Dataverse tables the built-in mappings use."""

from __future__ import annotations

from .model import BcTable, Companion, CrmLookup, CrmTable

# Business Central, API v2.0 entity sets.
BC_SALESPERSON = BcTable("salespeoplePurchasers", "Salesperson/Purchaser", key_field="code")
BC_CUSTOMER = BcTable("customers", "Customer", key_field="number", enum_fields=frozenset({"blocked", "type"}),
                      companion=Companion("CustomerCard", ("number", "No"), {
                          "shippingAgentCode": "Shipping_Agent_Code", "faxNo": "Fax_No", "contact": "ContactName",
                          "primaryContactNo": "Primary_Contact_No", "genBusPostingGroup": "Gen_Bus_Posting_Group",
                          "vatBusPostingGroup": "VAT_Bus_Posting_Group",
                          "customerPostingGroup": "Customer_Posting_Group"}),
                      template_fields=(("Gen. Bus. Posting Group", "genBusPostingGroup"),
                                       ("Customer Posting Group", "customerPostingGroup"),
                                       ("VAT Bus. Posting Group", "vatBusPostingGroup"),
                                       ("Shipping Agent Code", "shippingAgentCode")),
                      posting_groups=2)
BC_PAYMENT_TERMS = BcTable("paymentTerms", "Payment Terms", key_field="code")
BC_SHIPMENT_METHOD = BcTable("shipmentMethods", "Shipment Method", key_field="code")
BC_CURRENCY = BcTable("currencies", "Currency", key_field="code")
BC_UNIT_OF_MEASURE = BcTable("unitsOfMeasure", "Unit of Measure", key_field="code")
BC_CONTACT = BcTable("contacts", "Contact", key_field="number", enum_fields=frozenset({"type", "contactBusinessRelation"}),
                     companion=Companion("ContactCard", ("number", "No"), {
                         "firstName": "First_Name", "middleName": "Middle_Name", "surname": "Surname",
                         "salespersonCode": "Salesperson_Code", "currencyCode": "Currency_Code", "faxNo": "Fax_No",
                         "pager": "Pager"}),
                     template_fields=(("Salesperson Code", "salespersonCode"), ("Currency Code", "currencyCode")))
BC_OPPORTUNITY = BcTable("opportunities", "Opportunity", key_field="number", enum_fields=frozenset({"status"}))
# API v2.0 invoices lack the shipping agent, shipment date and work description: page 132 "Posted Sales
# Invoice", published as PostedSalesInvoice, has them.
BC_SALES_INVOICE = BcTable("salesInvoices", "Posted Sales Invoice", key_field="number",
                           enum_fields=frozenset({"status"}),
                           companion=Companion("PostedSalesInvoice", ("number", "No"), {
                               "shippingAgentCode": "Shipping_Agent_Code", "shipmentDate": "Shipment_Date",
                               "workDescription": "GetWorkDescription"}))
BC_SALES_INVOICE_LINE = BcTable("salesInvoiceLines", "Posted Sales Invoice Line", key_field="sequence",
                                enum_fields=frozenset({"lineType"}), modified_field=None)
# what pages 41 "Sales Quote" and 42 "Sales Order" have alike that API v2.0 quotes and orders lack, or publish
# read-only (the bill-to address)
_DOCUMENT_PAGE = {"yourReference": "Your_Reference", "workDescription": "WorkDescription",
                  "shippingAgentCode": "Shipping_Agent_Code", "billToOptions": "BillToOptions",
                  "billToAddressLine1": "Bill_to_Address", "billToAddressLine2": "Bill_to_Address_2",
                  "billToCity": "Bill_to_City", "billToState": "Bill_to_County", "billToPostCode": "Bill_to_Post_Code",
                  "billToCountry": "Bill_to_Country_Region_Code"}
# API v2.0 orders lack Your Reference, the shipping agent, payment discount % and work description, and
# publish the bill-to address read-only: page 42 "Sales Order", published as SalesOrder, has them all. Its
# bill-to address controls are editable once BillToOptions (a page variable) says Custom Address.
BC_SALES_ORDER = BcTable("salesOrders", "Sales Order", key_field="number", enum_fields=frozenset({"status"}),
                         companion=Companion("SalesOrder", ("number", "No"),
                                             {**_DOCUMENT_PAGE,
                                              "paymentDiscountPercent": "Payment_Discount_Percent",
                                              # what posting left on the order (added by bcsync's extension)
                                              "lastShipmentDate": "Last_Shipment_Date",
                                              "lastShippingNumber": "Last_Shipping_No",
                                              "lastPostingNumber": "Last_Posting_No",
                                              # table 36 keeps Quote No. not editable: bcsync's extension adds
                                              # a control that sets it
                                              "quoteNumber": "QuoteNo"},
                                             fixed_keys=(("Document_Type", "Order"),),
                                             enum_fields=frozenset({"BillToOptions"})))
BC_SALES_ORDER_LINE = BcTable("salesOrderLines", "Sales Line", key_field="sequence", enum_fields=frozenset({"lineType"}),
                              modified_field=None)
# API v2.0 quotes lack what orders lack, and the requested delivery date: page 41 "Sales Quote", published as
# SalesQuote, has them all.
BC_SALES_QUOTE = BcTable("salesQuotes", "Sales Quote", key_field="number", enum_fields=frozenset({"status"}),
                         companion=Companion("SalesQuote", ("number", "No"),
                                             {**_DOCUMENT_PAGE, "requestedDeliveryDate": "Requested_Delivery_Date"},
                                             fixed_keys=(("Document_Type", "Quote"),),
                                             enum_fields=frozenset({"BillToOptions"})))
BC_SALES_QUOTE_LINE = BcTable("salesQuoteLines", "Sales Line", key_field="sequence", enum_fields=frozenset({"lineType"}),
                              modified_field=None)
# API v2.0 vendors lack the purchaser, fax and posting groups: page 26 "Vendor Card", published as VendorCard.
BC_VENDOR = BcTable("vendors", "Vendor", key_field="number", enum_fields=frozenset({"blocked"}),
                    companion=Companion("VendorCard", ("number", "No"), {
                        "purchaserCode": "Purchaser_Code", "faxNo": "Fax_No",
                        "genBusPostingGroup": "Gen_Bus_Posting_Group", "vatBusPostingGroup": "VAT_Bus_Posting_Group",
                        "vendorPostingGroup": "Vendor_Posting_Group"}),
                    template_fields=(("Gen. Bus. Posting Group", "genBusPostingGroup"),
                                     ("Vendor Posting Group", "vendorPostingGroup"),
                                     ("VAT Bus. Posting Group", "vatBusPostingGroup")),
                    posting_groups=2)
BC_ITEM_LEDGER_ENTRY = BcTable("itemLedgerEntries", "Item Ledger Entry", key_field="entryNumber",
                               enum_fields=frozenset({"entryType"}))
BC_ITEM = BcTable("items", "Item", key_field="number", enum_fields=frozenset({"type"}),
                  companion=Companion("ItemCard", ("number", "No"),
                                      {"unitVolume": "Unit_Volume", "grossWeight": "Gross_Weight",
                                       "vendorNo": "Vendor_No", "vendorItemNo": "Vendor_Item_No",
                                       "vatProdPostingGroup": "VAT_Prod_Posting_Group",
                                       "vatBusPostingGrPrice": "VAT_Bus_Posting_Gr_Price"}),
                  template_fields=(("Gen. Prod. Posting Group", "generalProductPostingGroupCode"),
                                   ("Inventory Posting Group", "inventoryPostingGroupCode"),
                                   ("Tax Group Code", "taxGroupCode")),
                  posting_groups=2)

# Business Central, published pages (API v2.0 has no such entity sets).
BC_SHIPPING_AGENT = BcTable.page("ShippingAgents", "Shipping Agent", ("Code",))
BC_RESOURCE = BcTable.page("Resources", "Resource", ("No",), enum_fields=frozenset({"Type"}),
                           template_fields=(("Gen. Prod. Posting Group", "Gen_Prod_Posting_Group"),
                                            ("VAT Prod. Posting Group", "VAT_Prod_Posting_Group")),
                           posting_groups=1)
# page 472 "VAT Posting Setup": the VAT % of a business and product posting group (API v2.0 has no VAT setup)
BC_VAT_POSTING_SETUP = BcTable.page("VATPostingSetup", "VAT Posting Setup",
                                    ("VAT_Bus_Posting_Group", "VAT_Prod_Posting_Group"))
# The notes attached to records (table "Record Link"): API v2.0 has none; bcsync's extension publishes its own page
# RecordLinks, with the record a note belongs to as its table number and SystemId, and the note as text.
BC_RECORD_LINK = BcTable.page("RecordLinks", "Record Link", ("Link_ID",))
# Unit-group mode: the units of measure of items (page 5404) and resources (page 210), and the unit groups
# (table 5400, the bcsync extension's list page over items' and resources' groups). A unit's *_System_Id is the
# SystemId of its item or resource, which its unit group names as Source_Id; a group's Code is computed.
BC_ITEM_UNIT = BcTable.page("ItemUnitsOfMeasure", "Item Unit of Measure", ("Item_No", "Code"), key_field="Code")
BC_RESOURCE_UNIT = BcTable.page("ResourceUnitsOfMeasure", "Resource Unit of Measure", ("Resource_No", "Code"),
                                key_field="Code")
BC_UNIT_GROUP = BcTable.page("UnitGroups", "Unit Group", ("Source_Type", "Source_Id"), key_field="Code",
                             enum_fields=frozenset({"Source_Type"}))
# Configuration templates (page 8620) and their lines (page 8619), which a table mapping's template code names.
BC_CONFIG_TEMPLATE = BcTable.page("ConfigTemplates", "Config. Template Header", ("Code",))
BC_CONFIG_TEMPLATE_LINE = BcTable.page("ConfigTemplateLines", "Config. Template Line",
                                       ("Data_Template_Code", "Line_No"), enum_fields=frozenset({"Type"}))
BC_CUSTOMER_PRICE_GROUP = BcTable.page("CustomerPriceGroups", "Customer Price Group", ("Code",))
BC_SALES_PRICE = BcTable.page(
    "SalesPrices", "Sales Price",
    ("Item_No", "Sales_Type", "Sales_Code", "Starting_Date", "Currency_Code", "Variant_Code", "Unit_of_Measure_Code",
     "Minimum_Quantity"), enum_fields=frozenset({"Sales_Type"}))
# Extended pricing (the new sales pricing experience): price lists (table 7000 Price List Header) and their lines (table
# 7001 Price List Line). No base page publishes them for a service (the line pages are list parts without the
# price type or status), so bcsync's extension publishes a list page of its own over each.
BC_PRICE_LIST_HEADER = BcTable.page("PriceListHeaders", "Price List Header", ("Code",),
                                    enum_fields=frozenset({"Price_Type", "Amount_Type", "Status"}))
BC_PRICE_LIST_LINE = BcTable.page("PriceListLines", "Price List Line", ("Price_List_Code", "Line_No"),
                                  key_field="Asset_No",
                                  enum_fields=frozenset({"Price_Type", "Amount_Type", "Asset_Type", "Status"}))
BC_SALES_SETUP = BcTable.page("SalesReceivablesSetup", "Sales & Receivables Setup", ("Primary_Key",),
                              enum_fields=frozenset({"Write_in_Product_Type"}))

# Dataverse.
CRM_SYSTEMUSER = CrmTable("systemuser", "systemusers", "systemuserid", "fullname")
# Business Central's integration solution: its companies, which rows belong to when several share the environment
CRM_COMPANY = CrmTable("bcbi_company", "bcbi_companies", "bcbi_companyid", "bcbi_name")
CRM_CURRENCY = CrmTable("transactioncurrency", "transactioncurrencies", "transactioncurrencyid", "currencyname")
CRM_CONTACT = CrmTable("contact", "contacts", "contactid", "fullname", lookups={
    "parentcustomerid": CrmLookup("parentcustomerid_account", "accounts", type_field="parentcustomeridtype"),
    "ownerid": CrmLookup("ownerid", "systemusers", type_field="owneridtype"),
    "transactioncurrencyid": CrmLookup("transactioncurrencyid", "transactioncurrencies")})
CRM_OPPORTUNITY = CrmTable("opportunity", "opportunities", "opportunityid", "name", lookups={
    "parentaccountid": CrmLookup("parentaccountid", "accounts"),
    "parentcontactid": CrmLookup("parentcontactid", "contacts"),
    "customerid": CrmLookup("customerid_account", "accounts", type_field="customeridtype"),
    "ownerid": CrmLookup("ownerid", "systemusers", type_field="owneridtype"),
    "transactioncurrencyid": CrmLookup("transactioncurrencyid", "transactioncurrencies")})
CRM_UNIT_GROUP = CrmTable("uomschedule", "uomschedules", "uomscheduleid", "name")
# what orders and quotes, and their lines, refer to alike
_DOCUMENT_LOOKUPS = {
    "customerid": CrmLookup("customerid_account", "accounts", type_field="customeridtype"),
    "ownerid": CrmLookup("ownerid", "systemusers", type_field="owneridtype"),
    "opportunityid": CrmLookup("opportunityid", "opportunities"),
    "transactioncurrencyid": CrmLookup("transactioncurrencyid", "transactioncurrencies"),
    "pricelevelid": CrmLookup("pricelevelid", "pricelevels")}


def _line_lookups(parent: str, parent_set: str) -> dict[str, CrmLookup]:
    return {parent: CrmLookup(parent, parent_set), "productid": CrmLookup("productid", "products"),
            "uomid": CrmLookup("uomid", "uoms")}


# a posted invoice refers to what its order did, and to the order
CRM_INVOICE = CrmTable("invoice", "invoices", "invoiceid", "name", lookups={
    **_DOCUMENT_LOOKUPS, "salesorderid": CrmLookup("salesorderid", "salesorders")})
CRM_INVOICE_DETAIL = CrmTable("invoicedetail", "invoicedetails", "invoicedetailid", "invoicedetailname", lookups={
    **_line_lookups("invoiceid", "invoices"),
    "transactioncurrencyid": CrmLookup("transactioncurrencyid", "transactioncurrencies")})
CRM_SALES_ORDER = CrmTable("salesorder", "salesorders", "salesorderid", "name",
                           lookups={**_DOCUMENT_LOOKUPS, "quoteid": CrmLookup("quoteid", "quotes")})
CRM_SALES_ORDER_DETAIL = CrmTable("salesorderdetail", "salesorderdetails", "salesorderdetailid", "salesorderdetailname",
                                  lookups=_line_lookups("salesorderid", "salesorders"))
CRM_QUOTE = CrmTable("quote", "quotes", "quoteid", "name", lookups=_DOCUMENT_LOOKUPS)
CRM_QUOTE_DETAIL = CrmTable("quotedetail", "quotedetails", "quotedetailid", "quotedetailname",
                            lookups=_line_lookups("quoteid", "quotes"))
# a note (annotation) of a sales order: read by the row it is attached to, written to an order
CRM_NOTE = CrmTable("annotation", "annotations", "annotationid", "subject", lookups={
    "objectid": CrmLookup("objectid_salesorder", "salesorders")})
# a post on an order's or an account's wall; its regarding row is bound by table (`regardingobjectid_<table>`),
# so each navigation is its own entry, and posts are only ever created
CRM_POST = CrmTable("post", "posts", "postid", "text", lookups={
    "regardingobjectid_salesorder": CrmLookup("regardingobjectid_salesorder", "salesorders"),
    "regardingobjectid_account": CrmLookup("regardingobjectid_account", "accounts")})
CRM_UNIT = CrmTable("uom", "uoms", "uomid", "name", lookups={
    "uomscheduleid": CrmLookup("uomscheduleid", "uomschedules"), "baseuom": CrmLookup("baseuom", "uoms")})
CRM_PRICE_LIST = CrmTable("pricelevel", "pricelevels", "pricelevelid", "name", lookups={
    "transactioncurrencyid": CrmLookup("transactioncurrencyid", "transactioncurrencies")})
CRM_PRODUCT = CrmTable("product", "products", "productid", "name", lookups={
    "defaultuomscheduleid": CrmLookup("defaultuomscheduleid", "uomschedules"),
    "defaultuomid": CrmLookup("defaultuomid", "uoms"),
    "pricelevelid": CrmLookup("pricelevelid", "pricelevels"),
    "transactioncurrencyid": CrmLookup("transactioncurrencyid", "transactioncurrencies")})
CRM_PRICE_LIST_ITEM = CrmTable("productpricelevel", "productpricelevels", "productpricelevelid", "productnumber", lookups={
    "pricelevelid": CrmLookup("pricelevelid", "pricelevels"), "productid": CrmLookup("productid", "products"),
    "uomid": CrmLookup("uomid", "uoms"), "transactioncurrencyid": CrmLookup("transactioncurrencyid", "transactioncurrencies")})
CRM_ACCOUNT = CrmTable(
    "account", "accounts", "accountid", "name",
    lookups={
        "ownerid": CrmLookup("ownerid", "systemusers", type_field="owneridtype"),
        "transactioncurrencyid": CrmLookup("transactioncurrencyid", "transactioncurrencies"),
        "primarycontactid": CrmLookup("primarycontactid", "contacts"),
    },
)
