"""Configuration templates, applied to the Business Central records a table mapping creates.

As Business Central's integration does: the mapping names a configuration template ("Table Config
Template Code"); each record it creates in Business Central gets the template's field values, the
posting groups above all, for the fields the synchronisation did not set itself. A template the
mapping names that does not exist, or that is made for another table, fails the record with an error
naming it. A mapping without a template still creates the record, and the job log says what the record
lacks to be invoiced.
"""

from __future__ import annotations

from typing import Any

from .errors import RecordError
from .model import TableMapping
from .rules import RuleContext
from .tables import BC_CONFIG_TEMPLATE, BC_CONFIG_TEMPLATE_LINE

CACHE_KEY = "config_template"


def template_values(ctx: RuleContext, mapping: TableMapping) -> dict[str, Any]:
    """Our field name -> value, of the template the mapping names ({} when it names none); read once a job."""
    code = mapping.template_code
    if not code:
        return {}
    if CACHE_KEY not in ctx.cache:
        ctx.cache[CACHE_KEY] = _read(ctx, mapping)
    found = ctx.cache[CACHE_KEY]
    if isinstance(found, RecordError):
        raise found
    return found


def _read(ctx: RuleContext, mapping: TableMapping) -> dict[str, Any] | RecordError:
    table, code = mapping.bc, mapping.template_code
    headers = ctx.bc.read_matching(BC_CONFIG_TEMPLATE, ["Code", "Table_Name"], "Code", [code])
    if not headers:
        return RecordError(f"The configuration template {code} that table mapping {mapping.name} names does not "
                           f"exist in Business Central; create it or change the mapping's template code.",
                           field="Table Config Template Code", code="TemplateNotFound")
    made_for = headers[0].values.get("Table_Name") or ""
    if made_for != table.caption:
        return RecordError(f"The configuration template {code} is made for table {made_for or '(none)'}, not "
                           f"{table.caption}; table mapping {mapping.name} cannot apply it.",
                           field="Table Config Template Code", code="TemplateForAnotherTable")
    ours = dict(table.template_fields)
    values: dict[str, Any] = {}
    for line in ctx.bc.read_matching(BC_CONFIG_TEMPLATE_LINE, ["Type", "Field_Name", "Default_Value"],
                                     "Data_Template_Code", [code]):
        name = line.values.get("Field_Name") or ""
        if line.values.get("Type") != "Field" or not name:
            continue
        if name not in ours:
            ctx.note(f"configuration template {code}: field {name} is not applied; bcsync fills only "
                     f"{', '.join(ours)} of a {table.caption.lower()}")
            continue
        values[ours[name]] = line.values.get("Default_Value") or ""
    return values


def without_template(mapping: TableMapping) -> str | None:
    """The job-log note about records created with no template, when their table needs posting groups."""
    groups = [name for name, _ in mapping.bc.template_fields[:mapping.bc.posting_groups]]
    if mapping.template_code or not groups:
        return None
    return (f"{mapping.bc.caption.lower()}s created without a template: no {' or '.join(groups)}, so they "
            f"cannot be invoiced; set {mapping.name}'s template code")
