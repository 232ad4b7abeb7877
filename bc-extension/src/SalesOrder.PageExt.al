namespace bcsync.Integration;

using Microsoft.Sales.Document;

// Page 42 "Sales Order", published as SalesOrder (Your Reference, shipping agent, payment discount % and work
// description, which API v2.0 orders lack, and the bill-to address, which they publish read-only). The extension
// adds what posting leaves on the order (last shipment date and number, last invoice number), which bcsync
// reports back to the Sales order, and a control that sets Quote No. (table 36 makes the field itself not
// editable, so the base page's control is read-only): bcsync names the quote a Sales order was made from.
pageextension 50108 "BCS Sales Order" extends "Sales Order"
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
            field("Last Shipment Date"; Rec."Last Shipment Date")
            {
                ApplicationArea = All;
                Caption = 'Last Shipment Date';
                ToolTip = 'Specifies the posting date of the last shipment posted for the order. bcsync writes it to the Sales order as its date fulfilled.';
                Editable = false;
                Visible = false;
            }
            field("Last Shipping No."; Rec."Last Shipping No.")
            {
                ApplicationArea = All;
                Caption = 'Last Shipping No.';
                ToolTip = 'Specifies the number of the last shipment posted for the order. bcsync posts on the Sales order when it changes.';
                Editable = false;
                Visible = false;
            }
            field("Last Posting No."; Rec."Last Posting No.")
            {
                ApplicationArea = All;
                Caption = 'Last Posting No.';
                ToolTip = 'Specifies the number of the last invoice posted for the order. bcsync posts on the Sales order when it changes.';
                Editable = false;
                Visible = false;
            }
            field(QuoteNo; QuoteNo)
            {
                ApplicationArea = All;
                Caption = 'Quote No.';
                ToolTip = 'Specifies the number of the sales quote the order was made from. bcsync sets it for orders made from a won Sales quote.';
                Visible = false;

                trigger OnValidate()
                begin
                    Rec."Quote No." := QuoteNo;
                end;
            }
        }
    }

    trigger OnAfterGetRecord()
    begin
        QuoteNo := Rec."Quote No.";
    end;

    var
        QuoteNo: Code[20];
}
