"""Table definitions: `EntityDefinitions` (what the SDK and our client read) and `$metadata` (CSDL).

Served shapes (apis.md A.13):
  EntityDefinitions?$select=..&$filter=LogicalName eq 'account'
  EntityDefinitions(LogicalName='account')                 [also by MetadataId]
  EntityDefinitions(LogicalName='account')/Attributes[/Microsoft.Dynamics.CRM.<Type>AttributeMetadata]
  EntityDefinitions(LogicalName='account')/Attributes(LogicalName='x')[/Microsoft.Dynamics.CRM.<Type>AttributeMetadata]
  ...?$expand=OptionSet | OptionSet($select=Options) | Attributes($select=..;$filter=..)
  EntityDefinitions(..)/Keys, /ManyToOneRelationships, /OneToManyRelationships
"""

from __future__ import annotations

import re
from xml.sax.saxutils import quoteattr

from simulators.odata import QueryError, UnknownProperty, compile_filter, split_select

from . import errors
from .query import split_top_level
from .schema import Attr, Entity, Schema, metadata_id
from .values import normalize_guid

ATTRIBUTE_TYPES = {
    # kind: (AttributeType, AttributeTypeName, metadata type)
    "string": ("String", "StringType", "StringAttributeMetadata"),
    "memo": ("Memo", "MemoType", "MemoAttributeMetadata"),
    "integer": ("Integer", "IntegerType", "IntegerAttributeMetadata"),
    "bigint": ("BigInt", "BigIntType", "BigIntAttributeMetadata"),
    "decimal": ("Decimal", "DecimalType", "DecimalAttributeMetadata"),
    "money": ("Money", "MoneyType", "MoneyAttributeMetadata"),
    "boolean": ("Boolean", "BooleanType", "BooleanAttributeMetadata"),
    "datetime": ("DateTime", "DateTimeType", "DateTimeAttributeMetadata"),
    "picklist": ("Picklist", "PicklistType", "PicklistAttributeMetadata"),
    "state": ("State", "StateType", "StateAttributeMetadata"),
    "status": ("Status", "StatusType", "StatusAttributeMetadata"),
    "lookup": ("Lookup", "LookupType", "LookupAttributeMetadata"),
    "owner": ("Owner", "OwnerType", "LookupAttributeMetadata"),
    "customer": ("Customer", "CustomerType", "LookupAttributeMetadata"),
    "uniqueidentifier": ("Uniqueidentifier", "UniqueidentifierType", "UniqueIdentifierAttributeMetadata"),
}
ENUM_TYPES = {"PicklistAttributeMetadata", "StateAttributeMetadata", "StatusAttributeMetadata"}
OWNERSHIP = {"user": "UserOwned", "organization": "OrganizationOwned", "business": "BusinessOwned", "none": "None"}

PATH_RE = re.compile(
    r"^EntityDefinitions(?:\((?P<ekey>[^)]*)\))?"
    r"(?:/(?P<nav>Attributes|Keys|ManyToOneRelationships|OneToManyRelationships|ManyToManyRelationships)"
    r"(?:\((?P<akey>[^)]*)\))?"
    r"(?:/Microsoft\.Dynamics\.CRM\.(?P<cast>\w+))?)?/?$")


def label(text: str | None, *, owner_id: str = "") -> dict:
    if not text:
        return {"LocalizedLabels": [], "UserLocalizedLabel": None}
    localized = {"Label": text, "LanguageCode": 1033, "IsManaged": True,
                 "MetadataId": metadata_id("label", owner_id, text), "HasChanged": None}
    return {"LocalizedLabels": [localized], "UserLocalizedLabel": dict(localized)}


def entity_metadata(entity: Entity) -> dict:
    return {
        "@odata.type": "#Microsoft.Dynamics.CRM.EntityMetadata",
        "MetadataId": entity.metadata_id,
        "LogicalName": entity.logical_name,
        "SchemaName": entity.schema_name,
        "EntitySetName": entity.entity_set,
        "LogicalCollectionName": entity.entity_set,
        "CollectionSchemaName": entity.schema_name + "s",
        "PrimaryIdAttribute": entity.primary_id,
        "PrimaryNameAttribute": entity.primary_name,
        "ObjectTypeCode": entity.object_type_code,
        "OwnershipType": OWNERSHIP.get(entity.ownership, "None"),
        "TableType": "Standard",
        "IsPrivate": False,
        "IsCustomEntity": False,
        "IsManaged": True,
        "IsActivity": False,
        "IsIntersect": False,
        "IsLogicalEntity": False,
        "IsValidForAdvancedFind": True,
        "ChangeTrackingEnabled": entity.change_tracking,
        "IsOptimisticConcurrencyEnabled": True,
        "HasNotes": entity.user_owned,
        "HasActivities": entity.user_owned,
        "DisplayName": label(entity.display_name, owner_id=entity.metadata_id),
        "DisplayCollectionName": label(entity.display_collection_name, owner_id=entity.metadata_id),
        "Description": label(None),
    }


def attribute_metadata(entity: Entity, attr: Attr) -> dict:
    attribute_type, type_name, odata_type = ATTRIBUTE_TYPES[attr.kind]
    mid = metadata_id(entity.logical_name, attr.name)
    out = {
        "@odata.type": f"#Microsoft.Dynamics.CRM.{odata_type}",
        "MetadataId": mid,
        "LogicalName": attr.name,
        "SchemaName": attr.schema_name,
        "EntityLogicalName": entity.logical_name,
        "AttributeType": attribute_type,
        "AttributeTypeName": {"Value": type_name},
        "AttributeOf": f"{attr.name[:-5]}" if attr.name.endswith("_base") else None,
        "IsPrimaryId": attr.name == entity.primary_id,
        "IsPrimaryName": attr.name == entity.primary_name,
        "IsCustomAttribute": False,
        "IsManaged": True,
        "IsValidForCreate": not attr.read_only,
        "IsValidForUpdate": not (attr.read_only or attr.create_only),
        "IsValidForRead": True,
        "IsLogical": False,
        "RequiredLevel": {"Value": "SystemRequired" if attr.required else "None", "CanBeChanged": not attr.required,
                          "ManagedPropertyLogicalName": "canmodifyrequirementlevelsettings"},
        "DisplayName": label(attr.display_name, owner_id=mid),
        "Description": label(None),
    }
    if attr.kind in ("string", "memo"):
        out.update({"MaxLength": attr.max_length, "DatabaseLength": (attr.max_length or 0) * 2,
                    "Format": "Text" if attr.kind == "string" else "TextArea"})
    elif attr.kind in ("integer", "bigint"):
        out.update({"MinValue": attr.min_value, "MaxValue": attr.max_value, "Format": "None"})
    elif attr.kind in ("decimal", "money"):
        out.update({"MinValue": attr.min_value, "MaxValue": attr.max_value, "Precision": attr.precision})
        if attr.kind == "money":
            out.update({"PrecisionSource": 2, "IsBaseCurrency": attr.name.endswith("_base")})
    elif attr.kind == "datetime":
        out.update({"Format": "DateOnly" if attr.date_only else "DateAndTime",
                    "DateTimeBehavior": {"Value": "DateOnly" if attr.date_only else "UserLocal"}})
    elif attr.kind == "picklist":
        out["DefaultFormValue"] = attr.default if attr.default is not None else -1
    elif attr.kind == "boolean":
        out["DefaultValue"] = bool(attr.default)
    elif attr.is_lookup:
        out.update({"Targets": list(attr.targets), "Format": "None"})
    return out


def option_set(entity: Entity, attr: Attr) -> dict:
    mid = metadata_id(entity.logical_name, attr.name, "optionset")
    if attr.kind == "boolean":
        def option(value: int) -> dict:
            text = attr.bool_labels[value]
            return {"Value": value, "Color": None, "IsManaged": True, "ExternalValue": None, "IsHidden": False,
                    "MetadataId": None, "HasChanged": None, "Label": label(text, owner_id=mid),
                    "Description": label(None)}

        return {"MetadataId": mid, "Name": f"{entity.logical_name}_{attr.name}", "OptionSetType": "Boolean",
                "IsGlobal": False, "IsCustomOptionSet": False, "IsManaged": True,
                "DisplayName": label(attr.display_name, owner_id=mid), "Description": label(None),
                "TrueOption": option(1), "FalseOption": option(0)}
    options = []
    for value, text in attr.options.items():
        item = {"Value": value, "Color": None, "IsManaged": True, "ExternalValue": "", "ParentValues": [],
                "Tag": None, "IsHidden": False, "MetadataId": None, "HasChanged": None,
                "Label": label(text, owner_id=mid), "Description": label(None)}
        if attr.kind == "status":
            item["State"] = attr.status_state[value]
            item["@odata.type"] = "#Microsoft.Dynamics.CRM.StatusOptionMetadata"
        if attr.kind == "state":
            item["DefaultStatus"] = attr.default_status[value]
            item["InvariantName"] = text
            item["@odata.type"] = "#Microsoft.Dynamics.CRM.StateOptionMetadata"
        options.append(item)
    kind = {"picklist": "Picklist", "state": "State", "status": "Status"}[attr.kind]
    return {"MetadataId": mid, "Name": f"{entity.logical_name}_{attr.name}", "OptionSetType": kind,
            "IsGlobal": False, "IsCustomOptionSet": False, "IsManaged": True,
            "DisplayName": label(attr.display_name, owner_id=mid), "Description": label(None), "Options": options}


def parse_expand(text: str | None) -> dict[str, dict]:
    """`OptionSet($select=Options),GlobalOptionSet` -> {"OptionSet": {"$select": "Options"}, "GlobalOptionSet": {}}."""
    out: dict[str, dict] = {}
    for item in split_top_level(text or ""):
        name, _, rest = item.partition("(")
        options = {}
        if rest:
            for part in split_top_level(rest.rstrip()[:-1], ";"):
                key, _, value = part.partition("=")
                options[key.strip()] = value.strip()
        out[name.strip()] = options
    return out


def _project(item: dict, select: list[str] | None, keep: tuple[str, ...] = ("MetadataId",)) -> dict:
    if select is None:
        return item
    return {k: v for k, v in item.items() if k in select or k in keep or k.startswith("@")}


def _filter(items: list[dict], text: str | None) -> list[dict]:
    if not text:
        return items
    known = set().union(*(item.keys() for item in items)) if items else set()
    try:
        predicate = compile_filter(text, resolver=lambda row, name: row.get(name), known=lambda n: n in known or not items)
    except UnknownProperty as exc:
        raise errors.bad_query(f"Could not find a property named '{exc.name}' on type "
                               f"'Microsoft.Dynamics.CRM.EntityMetadata'.") from None
    except QueryError as exc:
        raise errors.bad_query(str(exc)) from None
    return [item for item in items if predicate(item)]


class MetadataService:
    def __init__(self, schema: Schema):
        self.schema = schema

    def find_entity(self, key: str) -> Entity | None:
        key = key.strip()
        guid = normalize_guid(key)
        if guid is not None:
            return next((e for e in self.schema.entities.values() if e.metadata_id == guid), None)
        match = re.fullmatch(r"LogicalName\s*=\s*'([^']*)'", key)
        if match:
            return self.schema.get(match.group(1))
        return None

    def handle(self, path: str, args, root: str) -> dict:
        match = PATH_RE.match(path)
        if not match:
            raise errors.segment_not_found(path.split("/")[-1])
        if match["ekey"] is None:
            if match["nav"]:
                raise errors.segment_not_found(match["nav"])
            return self.entity_collection(args, root)
        entity = self.find_entity(match["ekey"])
        if entity is None:
            raise DataverseErrorNotFound(match["ekey"])
        nav = match["nav"]
        if nav is None:
            return self.entity_single(entity, args, root)
        if nav == "Attributes":
            return self.attributes(entity, match["akey"], match["cast"], args, root)
        if nav == "Keys":
            keys = [{"MetadataId": metadata_id(entity.logical_name, "key", *columns),
                     "LogicalName": f"{entity.logical_name}_{'_'.join(columns)}_key",
                     "SchemaName": f"{entity.schema_name}_{'_'.join(columns)}_key",
                     "EntityLogicalName": entity.logical_name, "KeyAttributes": list(columns),
                     "EntityKeyIndexStatus": "Active", "IsManaged": False}
                    for columns in entity.alternate_keys]
            return {"@odata.context": f"{root}/$metadata#EntityDefinitions('{entity.logical_name}')/Keys",
                    "value": keys}
        return {"@odata.context": f"{root}/$metadata#EntityDefinitions('{entity.logical_name}')/{nav}", "value": []}

    def _entity_item(self, entity: Entity, select: list[str] | None, expand: dict) -> dict:
        item = _project(entity_metadata(entity), select)
        item.pop("@odata.type", None)
        if "Attributes" in expand:
            options = expand["Attributes"]
            attrs = [self._attribute_item(entity, a, split_select(options.get("$select")),
                                          parse_expand(options.get("$expand")), cast=None)
                     for a in entity.attributes.values()]
            item["Attributes"] = _filter(attrs, options.get("$filter"))
        return item

    def entity_collection(self, args, root: str) -> dict:
        if args.get("$top") or args.get("$skip"):
            raise errors.bad_query("The query parameter $top/$skip is not supported on EntityDefinitions.")
        select = split_select(args.get("$select"))
        expand = parse_expand(args.get("$expand"))
        items = [entity_metadata(e) for e in self.schema.entities.values()]
        items = _filter(items, args.get("$filter"))
        by_id = {e.metadata_id: e for e in self.schema.entities.values()}
        value = [self._entity_item(by_id[item["MetadataId"]], select, expand) for item in items]
        shape = f"({','.join(select)})" if select else ""
        return {"@odata.context": f"{root}/$metadata#EntityDefinitions{shape}", "value": value}

    def entity_single(self, entity: Entity, args, root: str) -> dict:
        select = split_select(args.get("$select"))
        item = self._entity_item(entity, select, parse_expand(args.get("$expand")))
        shape = f"({','.join(select)})" if select else ""
        return {"@odata.context": f"{root}/$metadata#EntityDefinitions{shape}/$entity", **item}

    def _attribute_item(self, entity: Entity, attr: Attr, select: list[str] | None, expand: dict,
                        cast: str | None) -> dict:
        item = _project(attribute_metadata(entity, attr), select)
        if cast:
            item.pop("@odata.type", None)
        for name in ("OptionSet", "GlobalOptionSet"):
            if name not in expand:
                continue
            if attr.kind not in ("picklist", "state", "status", "boolean") or name == "GlobalOptionSet":
                item[name] = None
                continue
            item[name] = _project(option_set(entity, attr), split_select(expand[name].get("$select")))
        return item

    def attributes(self, entity: Entity, key: str | None, cast: str | None, args, root: str) -> dict:
        select = split_select(args.get("$select"))
        expand = parse_expand(args.get("$expand"))
        if cast is not None and cast not in {t[2] for t in ATTRIBUTE_TYPES.values()} | {"EnumAttributeMetadata"}:
            raise errors.segment_not_found(f"Microsoft.Dynamics.CRM.{cast}")

        def matches(attr: Attr) -> bool:
            odata_type = ATTRIBUTE_TYPES[attr.kind][2]
            return cast is None or odata_type == cast or (cast == "EnumAttributeMetadata" and odata_type in ENUM_TYPES)

        base = f"{root}/$metadata#EntityDefinitions('{entity.logical_name}')/Attributes"
        if cast:
            base += f"/Microsoft.Dynamics.CRM.{cast}"
        if key is not None:
            attr = self._find_attribute(entity, key)
            if attr is None or not matches(attr):
                raise errors.DataverseError(404, "0x80040217", (
                    f"Could not find attribute with key {key} on entity {entity.logical_name}."))
            return {"@odata.context": f"{base}/$entity", **self._attribute_item(entity, attr, select, expand, cast)}
        items = [self._attribute_item(entity, a, None, expand, cast)
                 for a in entity.attributes.values() if matches(a)]
        keep = ("MetadataId", *expand)
        items = [_project(i, select, keep) for i in _filter(items, args.get("$filter"))]
        return {"@odata.context": base, "value": items}

    @staticmethod
    def _find_attribute(entity: Entity, key: str) -> Attr | None:
        key = key.strip()
        match = re.fullmatch(r"LogicalName\s*=\s*'([^']*)'", key)
        if match:
            return entity.attributes.get(match.group(1))
        guid = normalize_guid(key)
        if guid is not None:
            return next((a for a in entity.attributes.values() if metadata_id(entity.logical_name, a.name) == guid), None)
        return None


FIRST_CUSTOM_OPTION = 100000000   # the default publisher's option value prefix (10000) × 10000
OPTION_MAX = 2147483647


def insert_option_value(schema: Schema, entity_name: str, attribute_name: str, label_text: str,
                        value: int | None = None) -> int:
    """InsertOptionValue on a table's local option set: adds `label` (with `value`, else the next free value from
    100000000) and returns the value. Labels and values must be new to the option set."""
    entity = schema.get(entity_name or "")
    if entity is None:
        raise DataverseErrorNotFound(f"LogicalName='{entity_name}'")
    attr = entity.attributes.get(attribute_name or "")
    if attr is None:
        raise errors.DataverseError(404, "0x80040217", (
            f"Could not find attribute with name {attribute_name} on entity {entity.logical_name}."))
    if attr.kind != "picklist":
        raise errors.invalid_argument(
            f"InsertOptionValue adds options to picklist attributes; '{entity.logical_name}.{attr.name}' is of type "
            f"{ATTRIBUTE_TYPES[attr.kind][0]} (status reasons take InsertStatusValue).")
    text = label_text.strip() if isinstance(label_text, str) else ""
    if not text:
        raise errors.invalid_argument("The Label of the new option is required.")
    if any(existing.casefold() == text.casefold() for existing in attr.options.values()):
        raise errors.DataverseError(400, "0x80047010", (
            f"An object with the specified name already exists: option set '{entity.logical_name}_{attr.name}' "
            f"already has an option labelled '{text}'."))
    if value is None:
        value = max((v for v in attr.options if v >= FIRST_CUSTOM_OPTION), default=FIRST_CUSTOM_OPTION - 1) + 1
    elif not isinstance(value, int) or isinstance(value, bool) or not -OPTION_MAX - 1 <= value <= OPTION_MAX:
        raise errors.invalid_argument(f"The option value {value!r} is not a valid Int32.")
    elif value in attr.options:
        raise errors.DataverseError(400, "0x80044310",
                                    "The picklist value already exists.  Picklist values must be unique.")
    attr.options[value] = text
    return value


def DataverseErrorNotFound(key: str) -> errors.DataverseError:  # noqa: N802 - reads like the error it builds
    match = re.fullmatch(r"LogicalName\s*=\s*'([^']*)'", key.strip())
    name = match.group(1) if match else key
    return errors.DataverseError(404, "0x80040217", f"Could not find entity with name {name}.")


# --------------------------------------------------------------------------- $metadata (CSDL)

EDM = {"string": "Edm.String", "memo": "Edm.String", "integer": "Edm.Int32", "bigint": "Edm.Int64",
       "decimal": "Edm.Decimal", "money": "Edm.Decimal", "boolean": "Edm.Boolean",
       "datetime": "Edm.DateTimeOffset", "picklist": "Edm.Int32", "state": "Edm.Int32", "status": "Edm.Int32",
       "uniqueidentifier": "Edm.Guid", "lookup": "Edm.Guid", "owner": "Edm.Guid", "customer": "Edm.Guid"}


def csdl(schema: Schema) -> str:
    """A CSDL document with the entity types, keys, properties and single-valued navigation properties."""
    out = ['<?xml version="1.0" encoding="utf-8"?>',
           '<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx">',
           "<edmx:DataServices>",
           '<Schema Namespace="Microsoft.Dynamics.CRM" Alias="mscrm" xmlns="http://docs.oasis-open.org/odata/ns/edm">',
           '<EntityType Name="crmbaseentity" Abstract="true"/>',
           '<EntityType Name="principal" BaseType="mscrm.crmbaseentity" Abstract="true">'
           '<Key><PropertyRef Name="ownerid"/></Key><Property Name="ownerid" Type="Edm.Guid"/></EntityType>',
           '<ComplexType Name="WhoAmIResponse"><Property Name="BusinessUnitId" Type="Edm.Guid" Nullable="false"/>'
           '<Property Name="UserId" Type="Edm.Guid" Nullable="false"/>'
           '<Property Name="OrganizationId" Type="Edm.Guid" Nullable="false"/></ComplexType>']
    for entity in schema.entities.values():
        principal = not entity.named_key_allowed
        base = "mscrm.principal" if principal else "mscrm.crmbaseentity"
        out.append(f'<EntityType Name="{entity.logical_name}" BaseType="{base}">')
        if not principal:
            out.append(f'<Key><PropertyRef Name="{entity.primary_id}"/></Key>')
        for attr in entity.attributes.values():
            if principal and attr.name == "ownerid":
                continue
            edm = "Edm.Date" if attr.kind == "datetime" and attr.date_only else EDM[attr.kind]
            out.append(f"<Property Name={quoteattr(attr.wire_name)} Type=\"{edm}\"/>")
        for nav, target in ((n, t) for a in entity.attributes.values() for n, t in a.navs.items()):
            type_name = "mscrm.principal" if target == "*" else f"mscrm.{target}"
            out.append(f"<NavigationProperty Name={quoteattr(nav)} Type=\"{type_name}\"/>")
        out.append("</EntityType>")
    out.append('<Function Name="WhoAmI"><ReturnType Type="mscrm.WhoAmIResponse" Nullable="false"/></Function>')
    out.append('<EntityContainer Name="System">')
    for entity in schema.entities.values():
        out.append(f'<EntitySet Name="{entity.entity_set}" EntityType="Microsoft.Dynamics.CRM.{entity.logical_name}"/>')
    out.append('<FunctionImport Name="WhoAmI" Function="Microsoft.Dynamics.CRM.WhoAmI"/>')
    out.append("</EntityContainer></Schema></edmx:DataServices></edmx:Edmx>")
    return "\n".join(out)
