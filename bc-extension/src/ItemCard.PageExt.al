namespace bcsync.Integration;

using Microsoft.Inventory.Item;

// Page 30 "Item Card", published as ItemCard (gross weight, unit volume, vendor and vendor item no.
// are on the base page).
pageextension 50102 "BCS Item Card" extends "Item Card"
{
    layout
    {
        addlast(Item)
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
