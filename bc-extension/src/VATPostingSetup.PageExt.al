namespace bcsync.Integration;

using Microsoft.Finance.VAT.Setup;

// Page 472 "VAT Posting Setup", published as VATPostingSetup (the VAT % that a price including VAT is converted by).
pageextension 50111 "BCS VAT Posting Setup" extends "VAT Posting Setup"
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
