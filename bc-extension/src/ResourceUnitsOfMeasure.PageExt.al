namespace bcsync.Integration;

using Microsoft.Projects.Resources.Resource;

// Page 210 "Resource Units of Measure", published as ResourceUnitsOfMeasure (unit-group mode: resource units of measure with their quantity).
pageextension 50114 "BCS Resource Units of Measure" extends "Resource Units of Measure"
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
            field("Resource System Id"; Rec."Resource System Id")
            {
                ApplicationArea = All;
                ToolTip = 'Specifies the SystemId of the resource, which its unit group names. bcsync reads it through the OData web service.';
                Visible = false;
            }
        }
    }
}
