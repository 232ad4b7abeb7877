namespace bcsync.Integration;

using System.IO;

// Page 8620 "Config. Template List", published as ConfigTemplates: the configuration templates a table
// mapping's template code names.
pageextension 50120 "BCS Config. Template List" extends "Config. Template List"
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
