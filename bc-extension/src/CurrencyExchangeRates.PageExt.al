namespace bcsync.Integration;

using Microsoft.Finance.Currency;

// Page 483 "Currency Exchange Rates", published as CurrencyExchangeRates.
pageextension 50106 "BCS Currency Exchange Rates" extends "Currency Exchange Rates"
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
