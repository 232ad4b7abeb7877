namespace bcsync.Integration;

using Microsoft.Foundation.UOM;
using Microsoft.Projects.Resources.Resource;

// The SystemId of the resource a unit of measure belongs to: its unit group (table 5400) names the resource
// by it (Source Id), so that bcsync finds the Sales unit group a unit goes to.
tableextension 50111 "BCS Resource Unit of Measure" extends "Resource Unit of Measure"
{
    fields
    {
        field(50111; "Resource System Id"; Guid)
        {
            Caption = 'Resource System ID';
            FieldClass = FlowField;
            CalcFormula = lookup(Resource.SystemId where("No." = field("Resource No.")));
            Editable = false;
        }
    }
}
