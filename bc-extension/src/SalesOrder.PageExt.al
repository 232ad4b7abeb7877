namespace bcsync.Integration;

using Microsoft.Sales.Document;

// Page 42 "Sales Order", published as SalesOrder (Your Reference, shipping agent, payment discount % and work
// description, which API v2.0 orders lack, and the bill-to address, which they publish read-only).
pageextension 50108 "BCS Sales Order" extends "Sales Order"
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
