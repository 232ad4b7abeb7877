namespace bcsync.Integration;

using System.Utilities;

// The notes attached to records (table 2000000068 "Record Link", Type = Note), published as RecordLinks:
// API v2.0 has no record links, and no base page lists them. bcsync copies a Sales order's notes to the
// Business Central order as record links and back. A link's record is shown as its table number and SystemId
// (RecordTableNo, RecordSystemId), and its note, a BLOB, as text (NoteText); a new note takes both to find the
// record it is attached to.
page 50130 "BCS Record Links"
{
    PageType = List;
    SourceTable = "Record Link";
    SourceTableView = where(Type = const(Note));
    ODataKeyFields = "Link ID";
    DelayedInsert = true;
    DeleteAllowed = false;
    Caption = 'bcsync Record Links';
    UsageCategory = None;

    layout
    {
        area(Content)
        {
            repeater(Links)
            {
                field("Link ID"; Rec."Link ID")
                {
                    ApplicationArea = All;
                    Editable = false;
                    ToolTip = 'Specifies the number of the note.';
                }
                field(Description; Rec.Description)
                {
                    ApplicationArea = All;
                    ToolTip = 'Specifies the title of the note.';
                }
                field(NoteText; NoteText)
                {
                    ApplicationArea = All;
                    Caption = 'Note';
                    ToolTip = 'Specifies the text of the note.';

                    trigger OnValidate()
                    begin
                        RecordLinkManagement.WriteNote(Rec, NoteText);
                    end;
                }
                field(RecordTableNo; RecordTableNo)
                {
                    ApplicationArea = All;
                    Caption = 'Record Table No.';
                    ToolTip = 'Specifies the table of the record the note is attached to.';
                }
                field(RecordSystemId; RecordSystemId)
                {
                    ApplicationArea = All;
                    Caption = 'Record SystemId';
                    ToolTip = 'Specifies the SystemId of the record the note is attached to.';
                }
                field(Created; Rec.Created)
                {
                    ApplicationArea = All;
                    Editable = false;
                    ToolTip = 'Specifies when the note was made.';
                }
                field(SystemId; Rec.SystemId)
                {
                    ApplicationArea = All;
                    Editable = false;
                    ToolTip = 'Specifies the unique, immutable ID of the note.';
                }
                field(SystemModifiedAt; Rec.SystemModifiedAt)
                {
                    ApplicationArea = All;
                    Editable = false;
                    ToolTip = 'Specifies when the note was last changed.';
                }
            }
        }
    }

    var
        RecordLinkManagement: Codeunit "Record Link Management";
        NoteText: Text;
        RecordTableNo: Integer;
        RecordSystemId: Guid;

    trigger OnAfterGetRecord()
    var
        RecRef: RecordRef;
    begin
        NoteText := RecordLinkManagement.ReadNote(Rec);
        Clear(RecordSystemId);
        RecordTableNo := Rec."Record ID".TableNo();
        if RecRef.Get(Rec."Record ID") then
            RecordSystemId := RecRef.Field(RecRef.SystemIdNo()).Value();
    end;

    trigger OnInsertRecord(BelowxRec: Boolean): Boolean
    var
        RecRef: RecordRef;
    begin
        RecRef.Open(RecordTableNo);
        RecRef.GetBySystemId(RecordSystemId);
        Rec."Record ID" := RecRef.RecordId();
        Rec.Type := Rec.Type::Note;
        Rec.Company := CopyStr(CompanyName(), 1, MaxStrLen(Rec.Company));
        Rec.Created := CurrentDateTime();
        Rec."User ID" := CopyStr(UserId(), 1, MaxStrLen(Rec."User ID"));
        RecordLinkManagement.WriteNote(Rec, NoteText);
    end;
}
