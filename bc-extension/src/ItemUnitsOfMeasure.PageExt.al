namespace bcsync.Integration;

using Microsoft.Inventory.Item;

// Page 5404 "Item Units of Measure", published as ItemUnitsOfMeasure (unit-group mode: item units of measure with their quantity).
pageextension 50113 "BCS Item Units of Measure" extends "Item Units of Measure"
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
            field("Item System Id"; Rec."Item System Id")
            {
                ApplicationArea = All;
                ToolTip = 'Specifies the SystemId of the item, which its unit group names. bcsync reads it through the OData web service.';
                Visible = false;
            }
        }
    }
}
