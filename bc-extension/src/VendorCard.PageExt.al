namespace bcsync.Integration;

using Microsoft.Purchases.Vendor;

// Page 26 "Vendor Card", published as VendorCard. The base page already has No., Purchaser Code, Fax No.
// and the posting groups; this adds the change-tracking fields.
pageextension 50140 "BCS Vendor Card" extends "Vendor Card"
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
