namespace bcsync.Integration;

using Microsoft.Sales.Setup;

// Page 459 "Sales & Receivables Setup", published as SalesReceivablesSetup (bcsync reads the write-in
// product and the freight account from its Dynamics 365 Sales group).
pageextension 50107 "BCS Sales & Receivables Setup" extends "Sales & Receivables Setup"
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
