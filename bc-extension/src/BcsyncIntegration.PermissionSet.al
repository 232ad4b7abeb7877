namespace bcsync.Integration;

using Microsoft.CRM.BusinessRelation;
using Microsoft.CRM.Contact;
using Microsoft.CRM.Opportunity;
using Microsoft.CRM.Setup;
using Microsoft.CRM.Team;
using Microsoft.Finance.Currency;
using Microsoft.Finance.VAT.Setup;
using Microsoft.Finance.GeneralLedger.Account;
using Microsoft.Foundation.Address;
using Microsoft.Foundation.Company;
using Microsoft.Foundation.NoSeries;
using Microsoft.Foundation.PaymentTerms;
using Microsoft.Foundation.Shipping;
using Microsoft.Foundation.UOM;
using Microsoft.Integration.Entity;
using Microsoft.Inventory.Item;
using Microsoft.Inventory.Ledger;
using Microsoft.Pricing.PriceList;
using Microsoft.Projects.Resources.Resource;
using Microsoft.Purchases.Vendor;
using Microsoft.Sales.Customer;
using Microsoft.Sales.Document;
using Microsoft.Sales.History;
using Microsoft.Sales.Pricing;
using Microsoft.Sales.Receivables;
using Microsoft.Sales.Setup;
using System.Integration;
using System.IO;

// What bcsync's Microsoft Entra application reads and writes, and nothing else: assign it on the
// application's card (Microsoft Entra Applications). bcsync deletes nothing but sales lines (of a quote that a new
// revision of its Sales quote replaces; in two-way order mode, of an order whose Sales line is gone), so only Sales
// Line has D.
// The extension adds four pages of its own (BCS Unit Groups, BCS Record Links, BCS Price List Headers and Lines); its page extensions run with the
// base pages below.
permissionset 50100 "BCS INTEGRATION"
{
    Assignable = true;
    Caption = 'bcsync integration';

    Permissions =
        // both ways (API v2.0 and the published cards)
        tabledata Customer = RIM,
        tabledata Vendor = RIM,
        tabledata Contact = RIM,
        tabledata Item = RIM,
        tabledata Resource = RIM,
        tabledata Opportunity = RIM,
        tabledata "Salesperson/Purchaser" = RIM,
        // written by Business Central itself when bcsync inserts the rows above: a customer's or vendor's
        // company contact and business relation, an item's or resource's base unit, an opportunity's first entry,
        // and the numbers from the number series
        tabledata "Contact Business Relation" = RIM,
        tabledata "Item Unit of Measure" = RIM,
        tabledata "Resource Unit of Measure" = RIM,
        tabledata "Opportunity Entry" = RIM,
        tabledata "No. Series" = R,
        tabledata "No. Series Line" = RM,
        // sales orders created from Sales (API v2.0 salesOrders with their lines, page 42 Sales Order), and sales
        // quotes (salesQuotes, salesQuoteLines), whose lines a new revision replaces
        tabledata "Sales Header" = RIM,
        tabledata "Sales Line" = RIMD,
        tabledata "Sales Order Entity Buffer" = RIM,
        tabledata "Sales Quote Entity Buffer" = RIM,
        // the notes of those orders, both ways (page BCS Record Links)
        tabledata "Record Link" = RIM,
        // read only
        tabledata Currency = R,
        tabledata "Currency Exchange Rate" = R,
        tabledata "Unit of Measure" = R,
        tabledata "Payment Terms" = R,
        tabledata "Shipment Method" = R,
        tabledata "Shipping Agent" = R,
        tabledata "Customer Price Group" = R,
        tabledata "Sales Price" = R,
        tabledata "Sales Invoice Header" = R,
        tabledata "Sales Invoice Line" = R,
        tabledata "Sales Invoice Entity Aggregate" = R,
        tabledata "Cust. Ledger Entry" = R,
        tabledata "Item Ledger Entry" = R,
        tabledata "Res. Capacity Entry" = R,
        tabledata "G/L Account" = R,
        tabledata "Sales & Receivables Setup" = R,
        tabledata "VAT Posting Setup" = R,
        tabledata "Marketing Setup" = R,
        tabledata "Company Information" = R,
        tabledata "Country/Region" = R,
        tabledata "Post Code" = R,
        // the configuration templates applied to the customers, items and resources bcsync creates
        tabledata "Config. Template Header" = R,
        tabledata "Config. Template Line" = R,
        // unit-group mode: the unit groups of items and resources
        tabledata "Unit Group" = R,
        // extended pricing: price lists and their lines
        tabledata "Price List Header" = R,
        tabledata "Price List Line" = R,
        // webhooks (bcsync webhooks register, and the timer's renewal): its own subscriptions, created, renewed and
        // removed through api/v2.0/subscriptions
        tabledata "API Webhook Subscription" = RIMD,
        // the pages published as web services (WebServices.xml)
        page "Customer Card" = X,
        page "Vendor Card" = X,
        page "Contact Card" = X,
        page "Item Card" = X,
        page "Resource Card" = X,
        page "Customer Price Groups" = X,
        page "Sales Prices" = X,
        page "Currency Exchange Rates" = X,
        page "Sales & Receivables Setup" = X,
        page "Sales Order" = X,
        page "Sales Quote" = X,
        page "Shipping Agents" = X,
        page "Config. Template List" = X,
        page "Config. Template Subform" = X,
        page "Posted Sales Invoice" = X,
        page "Item Units of Measure" = X,
        page "Resource Units of Measure" = X,
        page "BCS Unit Groups" = X,
        page "VAT Posting Setup" = X,
        page "BCS Record Links" = X,
        page "BCS Price List Headers" = X,
        page "BCS Price List Lines" = X;
}
