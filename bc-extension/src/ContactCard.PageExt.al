namespace bcsync.Integration;

using Microsoft.CRM.Contact;

// Page 5050 "Contact Card", published as ContactCard. The card shows the name parts only in the Name
// Details dialog and has no Pager, so they are added here with the change-tracking fields.
pageextension 50101 "BCS Contact Card" extends "Contact Card"
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
            field("First Name"; Rec."First Name")
            {
                ApplicationArea = All;
                ToolTip = 'Specifies the first name of the contact person. bcsync reads and writes it through the OData web service.';
                Visible = false;
            }
            field("Middle Name"; Rec."Middle Name")
            {
                ApplicationArea = All;
                ToolTip = 'Specifies the middle name of the contact person. bcsync reads and writes it through the OData web service.';
                Visible = false;
            }
            field(Surname; Rec.Surname)
            {
                ApplicationArea = All;
                ToolTip = 'Specifies the surname of the contact person. bcsync reads and writes it through the OData web service.';
                Visible = false;
            }
            field(Pager; Rec.Pager)
            {
                ApplicationArea = All;
                ToolTip = 'Specifies the pager number of the contact. bcsync reads and writes it through the OData web service.';
                Visible = false;
            }
        }
    }
}
