namespace bcsync.Integration;

using Microsoft.Pricing.PriceList;

// The lines of those price lists (table 7001 "Price List Line"), published as PriceListLines. Base page 7001
// "Price List Lines" is a list part (a price list's subpage) without controls for the price type and status; this
// page lists every line with the fields bcsync reads, read only.
page 50141 "BCS Price List Lines"
{
    Caption = 'bcsync Price List Lines';
    PageType = List;
    SourceTable = "Price List Line";
    Editable = false;
    UsageCategory = None;

    layout
    {
        area(Content)
        {
            repeater(Lines)
            {
                field("Price List Code"; Rec."Price List Code")
                {
                    ApplicationArea = All;
                    ToolTip = 'Specifies the price list the line belongs to.';
                }
                field("Line No."; Rec."Line No.")
                {
                    ApplicationArea = All;
                    ToolTip = 'Specifies the number of the line in its price list.';
                }
                field("Price Type"; Rec."Price Type")
                {
                    ApplicationArea = All;
                    ToolTip = 'Specifies whether the line is a sales or a purchase price.';
                }
                field("Amount Type"; Rec."Amount Type")
                {
                    ApplicationArea = All;
                    ToolTip = 'Specifies whether the line is a price, a discount or both.';
                }
                field("Asset Type"; Rec."Asset Type")
                {
                    ApplicationArea = All;
                    ToolTip = 'Specifies the type of the product the price is for.';
                }
                field("Asset No."; Rec."Asset No.")
                {
                    ApplicationArea = All;
                    ToolTip = 'Specifies the number of the item or resource the price is for.';
                }
                field("Variant Code"; Rec."Variant Code")
                {
                    ApplicationArea = All;
                    ToolTip = 'Specifies the item variant the price is for.';
                }
                field("Currency Code"; Rec."Currency Code")
                {
                    ApplicationArea = All;
                    ToolTip = 'Specifies the currency of the price.';
                }
                field("Starting Date"; Rec."Starting Date")
                {
                    ApplicationArea = All;
                    ToolTip = 'Specifies the date from which the price is valid.';
                }
                field("Ending Date"; Rec."Ending Date")
                {
                    ApplicationArea = All;
                    ToolTip = 'Specifies the last date on which the price is valid.';
                }
                field("Unit of Measure Code"; Rec."Unit of Measure Code")
                {
                    ApplicationArea = All;
                    ToolTip = 'Specifies the unit of measure the price is for.';
                }
                field("Minimum Quantity"; Rec."Minimum Quantity")
                {
                    ApplicationArea = All;
                    ToolTip = 'Specifies the minimum quantity the price is for.';
                }
                field("Unit Price"; Rec."Unit Price")
                {
                    ApplicationArea = All;
                    ToolTip = 'Specifies the unit price.';
                }
                field(Status; Rec.Status)
                {
                    ApplicationArea = All;
                    ToolTip = 'Specifies whether the line is a draft, active or inactive.';
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
