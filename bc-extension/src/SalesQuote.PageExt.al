namespace bcsync.Integration;

using Microsoft.Sales.Document;

// Page 41 "Sales Quote", published as SalesQuote: Your Reference, the requested delivery date, the shipping
// agent and the work description, which API v2.0 quotes lack, and the bill-to address, which they publish
// read-only. bcsync writes them on the quotes it makes from Sales quotes.
pageextension 50116 "BCS Sales Quote" extends "Sales Quote"
{
    layout
    {
        addlast(General)
        {
            field(SystemId; Rec.SystemId)
            {
                ApplicationArea = All;
                Caption = 'System ID';
                ToolTip = 'Specifies the unique, immutable ID of the record. bcsync reads it through the OData web service.';
                Editable = false;
                Visible = false;
            }
            field(SystemModifiedAt; Rec.SystemModifiedAt)
            {
                ApplicationArea = All;
                Caption = 'System Modified At';
                ToolTip = 'Specifies when the record was last changed. bcsync reads the changes since its last run by this field.';
                Editable = false;
                Visible = false;
            }
        }
    }
}
