namespace bcsync.Integration;

using Microsoft.Foundation.UOM;
using Microsoft.Inventory.Item;

// The SystemId of the item a unit of measure belongs to: its unit group (table 5400) names the item
// by it (Source Id), so that bcsync finds the Sales unit group a unit goes to.
tableextension 50110 "BCS Item Unit of Measure" extends "Item Unit of Measure"
{
    fields
    {
        field(50110; "Item System Id"; Guid)
        {
            Caption = 'Item System ID';
            FieldClass = FlowField;
            CalcFormula = lookup(Item.SystemId where("No." = field("Item No.")));
            Editable = false;
        }
    }
}
