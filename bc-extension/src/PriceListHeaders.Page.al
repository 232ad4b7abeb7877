namespace bcsync.Integration;

using Microsoft.Pricing.PriceList;

// The price lists of the new sales pricing experience (table 7000 "Price List Header"), published as
// PriceListHeaders for extended pricing (BCSYNC_PRICING=extended): the fields bcsync reads, read only, for every
// price list in one list, with SystemId and SystemModifiedAt.
page 50140 "BCS Price List Headers"
{
    Caption = 'bcsync Price List Headers';
    PageType = List;
    SourceTable = "Price List Header";
    Editable = false;
    UsageCategory = None;

    layout
    {
        area(Content)
        {
            repeater(Headers)
            {
                field(Code; Rec.Code)
                {
                    ApplicationArea = All;
                    ToolTip = 'Specifies the code of the price list, which names its price list in Sales.';
                }
                field(Description; Rec.Description)
                {
                    ApplicationArea = All;
                    ToolTip = 'Specifies the description of the price list.';
                }
                field("Price Type"; Rec."Price Type")
                {
                    ApplicationArea = All;
                    ToolTip = 'Specifies whether the price list holds sales or purchase prices.';
                }
                field("Amount Type"; Rec."Amount Type")
                {
                    ApplicationArea = All;
                    ToolTip = 'Specifies whether the price list holds prices, discounts or both.';
                }
                field("Currency Code"; Rec."Currency Code")
                {
                    ApplicationArea = All;
                    ToolTip = 'Specifies the currency of the price list.';
                }
                field("Starting Date"; Rec."Starting Date")
                {
                    ApplicationArea = All;
                    ToolTip = 'Specifies the date from which the prices are valid.';
                }
                field("Ending Date"; Rec."Ending Date")
                {
                    ApplicationArea = All;
                    ToolTip = 'Specifies the last date on which the prices are valid.';
                }
                field(Status; Rec.Status)
                {
                    ApplicationArea = All;
                    ToolTip = 'Specifies whether the price list is a draft, active or inactive.';
                }
                field("Allow Updating Defaults"; Rec."Allow Updating Defaults")
                {
                    ApplicationArea = All;
                    ToolTip = 'Specifies whether the lines may have their own currency, dates and assign-to values.';
                }
                field(SystemId; Rec.SystemId)
                {
                    ApplicationArea = All;
                    Caption = 'System ID';
                    ToolTip = 'Specifies the unique, immutable ID of the record. bcsync reads it through the OData web service.';
                }
                field(SystemModifiedAt; Rec.SystemModifiedAt)
                {
                    ApplicationArea = All;
                    Caption = 'System Modified At';
                    ToolTip = 'Specifies when the record was last changed. bcsync reads the changes since its last run by this field.';
                }
            }
        }
    }
}
