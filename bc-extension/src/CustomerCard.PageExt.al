namespace bcsync.Integration;

using Microsoft.Sales.Customer;

// Page 21 "Customer Card", published as CustomerCard. The base page already has No., Fax No.,
// Shipping Agent Code and Primary Contact No.; this adds the change-tracking fields.
pageextension 50100 "BCS Customer Card" extends "Customer Card"
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
