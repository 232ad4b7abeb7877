namespace bcsync.Integration;

using Microsoft.Sales.Pricing;

// Page 7002 "Sales Prices", published as SalesPrices. The base page already has a SystemId control (and
// ODataKeyFields = SystemId), so only SystemModifiedAt is added: a second SystemId control would not compile.
pageextension 50105 "BCS Sales Prices" extends "Sales Prices"
{
    layout
    {
        addlast(Control1)
        {
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
