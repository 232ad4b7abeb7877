namespace bcsync.Integration;

using Microsoft.Sales.Document;

// Page 42 "Sales Order", published as SalesOrder (Your Reference, shipping agent, payment discount % and work
// description, which API v2.0 orders lack, and the bill-to address, which they publish read-only). The extension
// adds what posting leaves on the order (last shipment date and number, last invoice number), which bcsync
// reports back to the Sales order; a control that sets Quote No. (table 36 makes the field itself not
// editable, so the base page's control is read-only): bcsync names the quote a Sales order was made from; and in
// two-way order mode the order's Reopen and Release, which API v2.0 orders lack: bcsync reopens an order to update
// it from Sales and releases it again, as Business Central's bidirectional sales order integration does
// (POST SalesOrder(Document_Type='Order',No='...')/NAV.Reopen, NAV.Release).
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


    [ServiceEnabled]
    procedure Reopen(var ActionContext: WebServiceActionContext)
    var
        ReleaseSalesDocument: Codeunit "Release Sales Document";
    begin
        ReleaseSalesDocument.PerformManualReopen(Rec);
        SetUpdated(ActionContext);
    end;

    [ServiceEnabled]
    procedure Release(var ActionContext: WebServiceActionContext)
    var
        ReleaseSalesDocument: Codeunit "Release Sales Document";
    begin
        ReleaseSalesDocument.PerformManualRelease(Rec);
        SetUpdated(ActionContext);
    end;

    local procedure SetUpdated(var ActionContext: WebServiceActionContext)
    begin
        ActionContext.SetObjectType(ObjectType::Page);
        ActionContext.SetObjectId(Page::"Sales Order");
        ActionContext.AddEntityKey(Rec.FieldNo("Document Type"), Rec."Document Type");
        ActionContext.AddEntityKey(Rec.FieldNo("No."), Rec."No.");
        ActionContext.SetResultCode(WebServiceActionResultCode::Updated);
    end;

    var
        QuoteNo: Code[20];
}
