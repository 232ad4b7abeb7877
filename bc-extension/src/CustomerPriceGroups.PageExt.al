namespace bcsync.Integration;

using Microsoft.Sales.Pricing;

// Page 7 "Customer Price Groups", published as CustomerPriceGroups.
pageextension 50104 "BCS Customer Price Groups" extends "Customer Price Groups"
{
    layout
    {
        addlast(Control1)
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
