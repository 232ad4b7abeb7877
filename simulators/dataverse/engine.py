"""What the platform does on every write: validation, defaults, owners, currencies, system columns.

Both doors lead here: the Web API (payload in wire form, lookups bound with `@odata.bind`) and the
in-process API (values in attribute form, lookups as plain GUIDs). Callers hold `store.lock`.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import string as _string
import uuid
from typing import Callable
from urllib.parse import urlsplit

from . import errors
from .errors import DataverseError
from .rules import Change
from .schema import Attr, Entity, Schema
from .store import Event, Row, Store
from .values import check_value, normalize_guid, utc_seconds

# columns a client may send but the service silently ignores
SYSTEM_COLUMNS = frozenset({"createdon", "modifiedon", "createdby", "modifiedby", "versionnumber",
                            "createdonbehalfby", "modifiedonbehalfby", "owninguser", "owningteam",
                            "owningbusinessunit"})
AUTONUMBER_FIRST = 1000   # the first number handed out is 1001, as in a fresh organisation
AUTONUMBER_CHARS = _string.ascii_uppercase + _string.digits
ENTITY_REF_RE = re.compile(r"^/?(?P<set>[A-Za-z_][A-Za-z0-9_]*)\((?P<key>.*)\)$")


class Written:
    """A parsed write: stored-form values, polymorphic lookup targets, the row id if the body named one."""

    def __init__(self):
        self.values: dict = {}
        self.targets: dict = {}
        self.row_id: str | None = None
        self.overrides: dict = {}


class Engine:
    def __init__(self, schema: Schema, store: Store, clock: Callable[[], dt.datetime]):
        self.schema = schema
        self.store = store
        self.clock = clock
        self.base_currency_id: str | None = None
        self.default_team_id: str | None = None
        self.root_business_unit_id: str | None = None
        # webhooks go to ports 80 and 443 only; the local stack's receivers listen on others
        self.any_webhook_port = False

    def now(self) -> dt.datetime:
        return utc_seconds(self.clock())

    # ------------------------------------------------------------------ reading references

    def resolve_reference(self, text: str, *, root: str = "", content_refs: dict | None = None) -> tuple[Entity, str]:
        """`/accounts(<guid>)`, `accounts(accountid=<guid>)`, an absolute URL or `$1` -> (table, id)."""
        if content_refs is not None and text.startswith("$") and text[1:] in content_refs:
            logical_name, row_id = content_refs[text[1:]]
            return self.schema[logical_name], row_id
        path = text
        if "://" in path:
            path = urlsplit(path).path
        marker = path.find("/api/data/v")
        if marker >= 0:
            path = path[marker:].split("/", 4)[-1]
        match = ENTITY_REF_RE.match(path.strip())
        if not match:
            raise errors.bad_query(f"The URI '{text}' is not valid because it is not based on '{root or 'the service root'}'.")
        entity = self.schema.by_set.get(match["set"])
        if entity is None:
            raise errors.segment_not_found(match["set"])
        return entity, self.parse_key(entity, match["key"])

    def parse_key(self, entity: Entity, key: str) -> str:
        """The text between the parentheses of a key segment -> a primary id (alternate keys are looked up)."""
        key = key.strip()
        guid = normalize_guid(key)
        if guid is not None:
            return guid
        parts = split_key(key)
        if parts is None:
            raise self.bad_key(entity)
        if len(parts) == 1 and parts[0][0] == entity.primary_id:
            guid = normalize_guid(parts[0][1])
            if guid is None or not entity.named_key_allowed:
                raise self.bad_key(entity)
            return guid
        resolved = {}
        for name, literal in parts:
            attr = entity.attributes.get(name) or entity.wire.get(name)
            if attr is None:
                raise self.bad_key(entity)
            resolved[attr.name] = literal
        for alt in entity.alternate_keys:
            if sorted(alt) == sorted(resolved):
                return self.find_by_key(entity, resolved) or AltKeyMiss(resolved)
        raise self.bad_key(entity)

    @staticmethod
    def bad_key(entity: Entity) -> DataverseError:
        return errors.bad_query(
            f"The key in the request URI is not valid for resource '{entity.type_name}'. Ensure that the names and "
            f"number of key properties match the declared or alternate key properties for the resource "
            f"'{entity.type_name}'.")

    def find_by_key(self, entity: Entity, key: dict) -> str | None:
        wanted = {}
        for name, literal in key.items():
            attr = entity.attributes.get(name) or entity.wire.get(name)
            if attr is None:
                raise self.bad_key(entity)
            wanted[attr.name] = literal_value(attr, literal)
        columns = next(tuple(alt) for alt in entity.alternate_keys if sorted(alt) == sorted(wanted))
        return self.store.find_unique(entity.logical_name, columns, wanted)

    # ------------------------------------------------------------------ parsing writes

    def parse_wire(self, entity: Entity, body, *, root: str = "", content_refs: dict | None = None) -> Written:
        """A Web API JSON payload -> stored-form values. Raises the error the service would answer."""
        name = entity.logical_name
        if not isinstance(body, dict):
            raise errors.payload_error(name, "Microsoft.OData.ODataException: The payload is not a JSON object.")
        out = Written()
        for key, value in body.items():
            if key == "@odata.type":
                if not isinstance(value, str) or value.lstrip("#") != entity.type_name:
                    raise errors.payload_error(name, (
                        f"Microsoft.OData.ODataException: A resource with type '{str(value).lstrip('#')}' was found, "
                        f"but it is not assignable to the expected type '{entity.type_name}'."))
                continue
            if key.startswith("@"):
                continue  # instance annotations (@odata.etag, @odata.context, ...) carry no data
            if key.endswith("@odata.bind"):
                nav = key[: -len("@odata.bind")]
                attr = entity.navs.get(nav)
                if attr is None:
                    raise errors.undeclared_annotation_property(name, nav)
                if attr.read_only:
                    continue
                self._bind(entity, attr, nav, value, out, root, content_refs)
                continue
            if "@" in key:
                prop = key.split("@", 1)[0]
                if prop not in entity.attributes and prop not in entity.wire and prop not in entity.navs:
                    raise errors.undeclared_annotation_property(name, prop)
                continue  # a property annotation (formatted value and the like): ignored
            attr = entity.attributes.get(key)
            if attr is None:
                wire_attr = entity.wire.get(key)
                if wire_attr is not None:
                    raise errors.payload_error(name, (
                        "Microsoft.Crm.CrmException: CRM do not support direct update of Entity Reference "
                        "properties, Use Navigation properties instead."))
                raise errors.undeclared_property(name, key)
            if attr.is_lookup:
                raise errors.payload_error(name, (
                    f"Microsoft.OData.ODataException: A node of type 'PrimitiveValue' was read from the JSON reader "
                    f"when trying to read the contents of the navigation property '{key}'; however, a 'StartObject' "
                    f"node was expected."))
            if attr.name == entity.primary_id:
                guid = normalize_guid(value)
                if guid is None:
                    raise errors.wrong_type(name, key, value, "Edm.Guid")
                out.row_id = guid
                continue
            if attr.read_only or attr.name in SYSTEM_COLUMNS:
                check_value(entity, attr, value)  # the type is still checked by the OData reader
                continue
            out.values[attr.name] = check_value(entity, attr, value)
        return out

    def _bind(self, entity: Entity, attr: Attr, nav: str, value, out: Written, root: str,
              content_refs: dict | None) -> None:
        if value is None:
            out.values[attr.name] = None
            out.targets.pop(attr.name, None)
            return
        if not isinstance(value, str):
            raise errors.payload_error(entity.logical_name, (
                f"Microsoft.OData.ODataException: The value of the navigation link '{nav}' is not a valid entity "
                f"reference."))
        target, row_id = self.resolve_reference(value, root=root, content_refs=content_refs)
        allowed = attr.targets if attr.navs[nav] == "*" else (attr.navs[nav],)
        if target.logical_name not in allowed:
            raise errors.payload_error(entity.logical_name, (
                f"Microsoft.OData.ODataException: The entity set '{target.entity_set}' is not valid for the "
                f"navigation property '{nav}'."))
        if isinstance(row_id, AltKeyMiss):
            raise errors.does_not_exist(target.logical_name, row_id.describe())
        out.values[attr.name] = row_id
        out.targets[attr.name] = target.logical_name

    def parse_python(self, entity: Entity, values: dict) -> Written:
        """In-process form: attribute names, lookups as GUID strings (or (table, guid)), system columns allowed."""
        out = Written()
        for key, value in (values or {}).items():
            attr = entity.attributes.get(key) or entity.wire.get(key)
            if attr is None:
                raise errors.invalid_argument(f"'{entity.logical_name}' has no column '{key}'.")
            if attr.name == entity.primary_id:
                guid = normalize_guid(value)
                if guid is None:
                    raise errors.wrong_type(entity.logical_name, key, value, "Edm.Guid")
                out.row_id = guid
                continue
            if attr.is_lookup:
                self._python_lookup(entity, attr, value, out)
                continue
            if attr.name == "versionnumber":
                continue
            checked = check_value(entity, attr, value, lenient=True)
            if attr.name in SYSTEM_COLUMNS:
                out.overrides[attr.name] = checked
            else:
                out.values[attr.name] = checked
        return out

    def _python_lookup(self, entity: Entity, attr: Attr, value, out: Written) -> None:
        target_name = None
        if isinstance(value, (tuple, list)) and len(value) == 2:
            target_name, value = value
        elif isinstance(value, dict):
            target_name, value = value.get("logicalname"), value.get("id")
        if value is None:
            row_id = None
        else:
            row_id = normalize_guid(value)
            if row_id is None:
                raise errors.wrong_type(entity.logical_name, attr.name, value, "Edm.Guid")
            if target_name is None:
                target_name = next((t for t in attr.targets if self.store.get(t, row_id) is not None), None)
                if target_name is None:
                    raise errors.does_not_exist(attr.targets[0], row_id)
            elif target_name not in attr.targets:
                raise errors.invalid_argument(f"'{attr.name}' cannot point to a {target_name}.")
        store = out.overrides if attr.name in SYSTEM_COLUMNS else out.values
        store[attr.name] = row_id
        if row_id is not None:
            out.targets[attr.name] = target_name
        else:
            out.targets.pop(attr.name, None)

    # ------------------------------------------------------------------ writing

    def create(self, entity: Entity, written: Written, caller: str | None, *, web: bool = True) -> Row:
        table = self.store.table(entity.logical_name)
        row_id = written.row_id or str(uuid.uuid4())
        if row_id in table.rows:
            raise errors.duplicate_key()
        values = dict(entity.defaults)
        values[entity.primary_id] = row_id
        values.update(written.values)
        targets = dict(written.targets)
        self._check_lookups(entity, written.values, targets)
        if web:
            for attr in entity.required_attributes:
                if values.get(attr.name) is None:
                    if not (attr.name == "businessunitid" and self.root_business_unit_id):
                        raise self._required(entity, attr)
        if "businessunitid" in entity.attributes and values.get("businessunitid") is None:
            values["businessunitid"] = self.root_business_unit_id
            targets["businessunitid"] = "businessunit"
        if entity.user_owned:
            if values.get("ownerid") is None:
                if caller is not None:
                    values["ownerid"], targets["ownerid"] = caller, "systemuser"
                else:
                    values["ownerid"], targets["ownerid"] = self.default_team_id, "team"
            self._apply_owner(values, targets)
        if entity.self_owner:
            values["ownerid"] = row_id  # systemuser/team expose their own id as ownerid
        for attr in entity.autonumber_attributes:
            if values.get(attr.name) is None:
                values[attr.name] = self.next_number(entity, attr)
        change = Change(self, entity, values, targets, None, written.values, row_id, web, caller)
        self._prepare(change)
        now = self.now()
        overrides = written.overrides
        values["createdon"] = overrides.get("createdon") or values.get("overriddencreatedon") or now
        values["modifiedon"] = overrides.get("modifiedon") or now
        for column in ("createdby", "modifiedby"):
            values[column] = overrides[column] if column in overrides else caller
            if values[column] is not None:
                targets[column] = "systemuser"
        for column in ("createdonbehalfby", "modifiedonbehalfby"):
            values[column] = None
        return self._store(change)

    def update(self, entity: Entity, row_id: str, written: Written, caller: str | None, *, web: bool = True) -> Row:
        old = self.store.get(entity.logical_name, row_id)
        if old is None:
            raise errors.does_not_exist(entity.logical_name, row_id)
        if written.row_id is not None and written.row_id != row_id:
            raise errors.invalid_argument(
                f"The {entity.primary_id} in the payload does not match the key in the request URI.")
        changed = {k: v for k, v in written.values.items() if not entity.attributes[k].create_only}
        written.values = changed
        values = dict(old.values)
        values.update(changed)
        targets = dict(old.targets)
        targets.update(written.targets)
        for name, value in written.values.items():
            if value is None:
                targets.pop(name, None)
        self._check_lookups(entity, written.values, targets)
        if web:
            for name, value in written.values.items():
                attr = entity.attributes[name]
                if attr.required and value is None:
                    raise self._required(entity, attr)
        if entity.user_owned:
            if values.get("ownerid") is None:
                raise errors.invalid_argument("The owner of a record cannot be null.")
            self._apply_owner(values, targets)
        change = Change(self, entity, values, targets, old.values, written.values, row_id, web, caller)
        self._prepare(change)
        overrides = written.overrides
        values["modifiedon"] = overrides.get("modifiedon") or self.now()
        if "createdon" in overrides:
            values["createdon"] = overrides["createdon"]
        if "createdby" in overrides:
            values["createdby"] = overrides["createdby"]
        values["modifiedby"] = overrides["modifiedby"] if "modifiedby" in overrides else caller
        for column in ("createdby", "modifiedby"):
            if values.get(column) is not None:
                targets[column] = "systemuser"
        return self._store(change)

    def _prepare(self, change: Change) -> None:
        """What a create and an update do before the row is stamped: the entity's rules, its state, composed and
        money columns, then its unique columns checked."""
        entity, values = change.entity, change.values
        if entity.rules is not None:
            entity.rules.prepare(change)
        self._apply_state(entity, values, change.changed, change.old, change.row_id)
        if entity.compose:
            entity.compose(values)
        self._apply_money(entity, values, change.targets)
        self._check_unique(entity, values, change.row_id)

    def _store(self, change: Change) -> Row:
        """The row stored with a new version number, then the entity's rules told and the message noted for the
        post-operation steps."""
        change.values["versionnumber"] = self.store.next_version()
        row = Row(change.values, change.targets)
        self.store.put(change.entity.logical_name, change.row_id, row)
        if change.entity.rules is not None:
            change.entity.rules.after_write(change, row)
        self.store.note(Event("Create" if change.creating else "Update", change.entity.logical_name, change.row_id,
                              change.changed, row.targets, change.caller, row.version))
        return row

    def delete(self, entity: Entity, row_id: str, caller: str | None, *, web: bool = True,
               cascade: bool = False) -> None:
        """Delete a row. `cascade`: the row goes because its parent does (parental relationships)."""
        row = self.store.get(entity.logical_name, row_id)
        if row is None:
            raise errors.does_not_exist(entity.logical_name, row_id)
        if entity.logical_name == "transactioncurrency" and row_id == self.base_currency_id:
            raise errors.invalid_argument("The base currency of the organization cannot be deleted.")
        change = Change(self, entity, row.values, row.targets, row.values, {}, row_id, web, caller, cascade=cascade)
        if entity.rules is not None:
            entity.rules.before_delete(change)
        self.store.remove(entity.logical_name, row_id)
        # referential behaviour: children of a parental relationship go with the row ("Cascade"); other rows
        # pointing at it lose the reference ("Remove Link")
        for other, attr in self.schema.referencing(entity.logical_name):
            if attr.kind == "owner" or attr.read_only:
                continue
            table = self.store.table(other.logical_name)
            hits = [rid for rid, hit in table.rows.items() if hit.values.get(attr.name) == row_id]
            for rid in hits:
                if self.store.get(other.logical_name, rid) is None:
                    continue  # already gone with an earlier cascade
                if attr.on_delete == "cascade":
                    self.delete(other, rid, caller, web=web, cascade=True)
                    continue
                unlink = Written()
                unlink.values[attr.name] = None
                self.update(other, rid, unlink, caller, web=False)
        if entity.rules is not None:
            entity.rules.after_delete(change)
        self.store.note(Event("Delete", entity.logical_name, row_id, {}, {}, caller, None))

    # ------------------------------------------------------------------ what platform rules build on

    def row(self, logical_name: str, row_id: str | None) -> Row | None:
        return None if row_id is None else self.store.get(logical_name, row_id)

    def rows(self, logical_name: str):
        return self.store.table(logical_name).rows.values()

    def system_create(self, logical_name: str, values: dict, targets: dict | None = None,
                      caller: str | None = None) -> Row:
        """A row the platform itself creates (values in stored form; no Web API validation)."""
        written = Written()
        written.values = dict(values)
        written.targets = dict(targets or {})
        return self.create(self.schema[logical_name], written, caller, web=False)

    def system_update(self, logical_name: str, row_id: str, values: dict, targets: dict | None = None,
                      caller: str | None = None) -> Row:
        """A change the platform itself makes (read-only columns included; no Web API validation)."""
        written = Written()
        written.values = dict(values)
        written.targets = dict(targets or {})
        return self.update(self.schema[logical_name], row_id, written, caller, web=False)

    def next_number(self, entity: Entity, attr: Attr) -> str:
        """An auto-number as Dataverse composes it: prefix, sequence, random suffix (INV-01001-K7Q2ZD)."""
        key = (entity.logical_name, attr.name)
        number = self.store.sequences.get(key, AUTONUMBER_FIRST) + 1
        self.store.sequences[key] = number
        suffix = "".join(secrets.choice(AUTONUMBER_CHARS) for _ in range(6))
        return f"{attr.autonumber}-{number:05d}-{suffix}"

    def currency_places(self, currency_id: str | None) -> int:
        currency = self.row("transactioncurrency", currency_id)
        places = currency.values.get("currencyprecision") if currency is not None else None
        return places if isinstance(places, int) else 2

    # ------------------------------------------------------------------ platform rules

    def _check_lookups(self, entity: Entity, changed: dict, targets: dict) -> None:
        for name, value in changed.items():
            attr = entity.attributes[name]
            if not attr.is_lookup or value is None:
                continue
            target = targets.get(name) or attr.targets[0]
            targets[name] = target
            if self.store.get(target, value) is None:
                raise errors.does_not_exist(target, value)

    def _apply_owner(self, values: dict, targets: dict) -> None:
        owner_id, owner_type = values["ownerid"], targets.get("ownerid", "systemuser")
        owner = self.store.get(owner_type, owner_id)
        values["owninguser"] = owner_id if owner_type == "systemuser" else None
        values["owningteam"] = owner_id if owner_type == "team" else None
        values["owningbusinessunit"] = owner.values.get("businessunitid") if owner is not None else None
        for column in ("owninguser", "owningteam", "owningbusinessunit"):
            targets.pop(column, None)
        if values["owninguser"]:
            targets["owninguser"] = "systemuser"
        if values["owningteam"]:
            targets["owningteam"] = "team"
        if values["owningbusinessunit"]:
            targets["owningbusinessunit"] = "businessunit"

    def _apply_state(self, entity: Entity, values: dict, changed: dict, old: dict | None, row_id: str) -> None:
        state_attr, status_attr = entity.state_attr(), entity.status_attr()
        if state_attr is None or status_attr is None:
            return
        state = values.get("statecode")
        if state is None:
            state = values["statecode"] = next(iter(state_attr.options))
        status = values.get("statuscode")
        if "statecode" in changed and "statuscode" not in changed:
            if old is None or old.get("statecode") != state or status is None:
                status = values["statuscode"] = state_attr.default_status[state]
        if status is None:
            status = values["statuscode"] = state_attr.default_status[state]
        if status_attr.status_state.get(status) != state:
            raise errors.invalid_argument(
                f"{status} is not a valid status code for state code {entity.schema_name}State."
                f"{state_attr.options[state]} on {entity.logical_name} with Id {row_id}.")

    def _apply_money(self, entity: Entity, values: dict, targets: dict) -> None:
        money = entity.money_attributes
        if not money:
            return
        if values.get("transactioncurrencyid") is None and any(values.get(a.name) is not None for a in money):
            values["transactioncurrencyid"] = self.base_currency_id
            targets["transactioncurrencyid"] = "transactioncurrency"
        currency = None
        if values.get("transactioncurrencyid"):
            currency = self.store.get("transactioncurrency", values["transactioncurrencyid"])
        if currency is None:
            values["exchangerate"] = None
            for attr in money:
                values[f"{attr.name}_base"] = None
            return
        rate = currency.values.get("exchangerate") or 1.0
        places = currency.values.get("currencyprecision")
        places = places if isinstance(places, int) else 2
        values["exchangerate"] = rate
        for attr in money:
            amount = values.get(attr.name)
            if amount is not None:
                amount = values[attr.name] = round(amount, places)
            values[f"{attr.name}_base"] = None if amount is None else round(amount / rate, places)

    def _check_unique(self, entity: Entity, values: dict, row_id: str) -> None:
        store = self.store
        for attr in entity.unique_attributes:
            other = store.find_unique(entity.logical_name, (attr.name,), values)
            if other is not None and other != row_id:
                message = attr.unique_message.format(value=values[attr.name]) or (
                    f"A record with the same value for {attr.name} already exists.")
                raise DataverseError(400, attr.unique_code, message)
        for key in entity.unique_keys:
            other = store.find_unique(entity.logical_name, tuple(key.columns), values)
            if other is not None and other != row_id:
                raise DataverseError(400, key.code, key.message.format(**{c: values.get(c) for c in key.columns}))
        for columns in entity.alternate_keys:
            other = store.find_unique(entity.logical_name, tuple(columns), values)
            if other is not None and other != row_id:
                raise DataverseError(412, "0x80060892", (
                    f"Entity Key {entity.logical_name}_{'_'.join(columns)}_key violated. A record with the same value "
                    f"for {', '.join(columns)} already exists. A duplicate record cannot be created. Try again with "
                    f"different values."))

    @staticmethod
    def _required(entity: Entity, attr: Attr) -> DataverseError:
        if attr.required_error is not None:
            return DataverseError(400, *attr.required_error)
        return errors.invalid_argument(
            f"A value for the required attribute '{attr.name}' of the '{entity.logical_name}' entity was not "
            f"provided.")


class AltKeyMiss(str):
    """An alternate key that matched no row (an upsert may still create it)."""

    def __new__(cls, key: dict):
        obj = super().__new__(cls, "")
        obj.key = key
        return obj

    def describe(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.key.items())


def split_key(text: str) -> list[tuple[str, str]] | None:
    """`a='x',b=2` -> [("a", "'x'"), ("b", "2")], respecting quotes ('' escapes a quote)."""
    parts, i, n = [], 0, len(text)
    while i < n:
        eq = text.find("=", i)
        if eq < 0:
            return None
        name = text[i:eq].strip()
        j = eq + 1
        if j < n and text[j] == "'":
            j += 1
            while j < n:
                if text[j] == "'":
                    if j + 1 < n and text[j + 1] == "'":
                        j += 2
                        continue
                    break
                j += 1
            j += 1
        else:
            while j < n and text[j] != ",":
                j += 1
        parts.append((name, text[eq + 1:j].strip()))
        while j < n and text[j] in " ,":
            j += 1
        i = j
    return parts if parts else None


def literal_value(attr: Attr, literal: str):
    """A key-segment literal as a stored value (strings unquoted)."""
    literal = literal.strip()
    if literal.startswith("'") and literal.endswith("'"):
        return literal[1:-1].replace("''", "'")
    guid = normalize_guid(literal)
    if guid is not None:
        return guid
    if literal in ("true", "false"):
        return literal == "true"
    try:
        return int(literal)
    except ValueError:
        try:
            return float(literal)
        except ValueError:
            return literal

