namespace bcsync.Integration;

using Microsoft.Projects.Resources.Resource;

// Page 76 "Resource Card", published as Resources. Vendor No. and Capacity (a FlowField over the
// resource's capacity entries) are not on the card, so they are added with the change-tracking fields.
pageextension 50103 "BCS Resource Card" extends "Resource Card"
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
            field("Vendor No."; Rec."Vendor No.")
            {
                ApplicationArea = All;
                ToolTip = 'Specifies the vendor of the resource. bcsync reads it through the OData web service.';
                Visible = false;
            }
            field(Capacity; Rec.Capacity)
            {
                ApplicationArea = All;
                ToolTip = 'Specifies the capacity of the resource (its capacity entries, all dates). bcsync reads it through the OData web service.';
                Editable = false;
                Visible = false;
            }
        }
    }
}
