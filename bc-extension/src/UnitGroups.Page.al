namespace bcsync.Integration;

using Microsoft.Foundation.UOM;

// The unit groups of items and resources together (table 5400; the base pages 5400 and 5403 each show one
// kind), published as UnitGroups for unit-group mode. Code is the group's code, ITEM <No.> UOM GR or
// RESOURCE <No.> UOM GR, which names its Sales unit group.
page 50115 "BCS Unit Groups"
{
    Caption = 'bcsync Unit Groups';
    PageType = List;
    SourceTable = "Unit Group";
    Editable = false;
    UsageCategory = None;

    layout
    {
        area(Content)
        {
            repeater(Groups)
            {
                field(Code; GroupCode)
                {
                    ApplicationArea = All;
                    Caption = 'Code';
                    ToolTip = 'Specifies the code of the unit group, which names its unit group in Sales.';
                }
                field("Source Type"; Rec."Source Type")
                {
                    ApplicationArea = All;
                    ToolTip = 'Specifies whether the unit group is an item''s or a resource''s.';
                }
                field("Source Id"; Rec."Source Id")
                {
                    ApplicationArea = All;
                    ToolTip = 'Specifies the SystemId of the item or resource.';
                }
                field("Source No."; Rec."Source No.")
                {
                    ApplicationArea = All;
                    ToolTip = 'Specifies the number of the item or resource.';
                }
                field(SystemId; Rec.SystemId)
                {
                    ApplicationArea = All;
                    Caption = 'System ID';
                    ToolTip = 'Specifies the unique, immutable ID of the record. bcsync reads it through the OData web service.';
                }
                field(SystemModifiedAt; Rec.SystemModifiedAt)
                {
                    ApplicationArea = All;
                    Caption = 'System Modified At';
                    ToolTip = 'Specifies when the record was last changed. bcsync reads the changes since its last run by this field.';
                }
            }
        }
    }

    trigger OnAfterGetRecord()
    begin
        GroupCode := Rec.GetCode();
    end;

    var
        GroupCode: Code[50];
}
