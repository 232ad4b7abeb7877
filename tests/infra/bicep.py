"""Reading infra/ for the tests: pycep parses every Bicep file into its JSON-like tree, and a small
evaluator works out what a deployment would set, from parameter defaults or given values.

pycep writes identifiers and string literals alike (`tenantId` and `'managedidentity'` are both plain
strings), so a string that names a parameter or variable in scope is taken as a reference to it.
Values only Azure knows at deployment time (resource properties, uniqueString, environment()) come
out as RUNTIME.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

from pycep import BicepParser

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
MAIN = INFRA / "main.bicep"
PARAMETERS_FILE = INFRA / "main.parameters.json"


class _Runtime:
    def __repr__(self) -> str:
        return "RUNTIME"


RUNTIME = _Runtime()


class Symbol(str):
    """A value Azure fills in at deployment, kept as its expression, e.g. identity.outputs.clientId."""


class Ref(str):
    """The value of a parameter that has none yet (tracing where a setting comes from)."""

    @property
    def param(self) -> str:
        return self[len("<param:"):-1]


def ref(name: str) -> Ref:
    return Ref(f"<param:{name}>")


def bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


@lru_cache(maxsize=None)
def _parser() -> BicepParser:
    return BicepParser()


@lru_cache(maxsize=None)
def _parse_cached(path: str) -> dict:
    return _parser().parse(file_path=Path(path))


def parse(path: Path) -> dict:
    return _parse_cached(str(path.resolve()))


def unwrap(entry: dict) -> tuple[Any, dict]:
    """A module's or resource's (condition, config): pycep nests a conditional one's config."""
    config = entry["config"]
    if "condition" in config and "config" in config:
        return config["condition"], config["config"]
    return None, config


def resources(tree: dict, type_: str | None = None, *, existing: bool = False) -> dict[str, dict]:
    return {name: res for name, res in tree.get("resources", {}).items()
            if (type_ is None or res["type"] == type_) and bool(res.get("existing")) == existing}


def parameter_defaults(tree: dict, given: Mapping[str, Any] | None = None, *, trace: bool = False) -> dict:
    """Every parameter's value: given, else its default, else a Ref naming it (or, with trace, a Ref
    for every parameter so that values can be followed back to where they come from)."""
    given = dict(given or {})
    values = {}
    for name, param in tree.get("parameters", {}).items():
        if name in given:
            values[name] = given[name]
        elif trace or param.get("default") is None:
            values[name] = ref(name)
        else:
            values[name] = evaluate(param["default"], {}, tree)
    return values


_INTERPOLATION = re.compile(r"\$\{([^}]*)\}")


def evaluate(expr: Any, scope: Mapping[str, Any], tree: dict) -> Any:
    """What a Bicep expression comes to with these parameter values; RUNTIME when Azure decides."""
    if expr is None or isinstance(expr, (bool, int, float)):
        return expr
    if isinstance(expr, str):
        if expr in scope:
            return scope[expr]
        if expr in tree.get("variables", {}):
            return evaluate(tree["variables"][expr]["value"], scope, tree)
        if "${" in expr:
            return _interpolate(expr, scope, tree)
        return expr
    if isinstance(expr, list):
        return [evaluate(item, scope, tree) for item in expr]
    if isinstance(expr, dict):
        if set(expr) == {"operator"}:
            return _operator(expr["operator"], scope, tree)
        if set(expr) == {"function"}:
            return _function(expr["function"], scope, tree)
        return {_key(key, scope, tree): evaluate(value, scope, tree) for key, value in expr.items()}
    return RUNTIME


def _key(key: str, scope: Mapping[str, Any], tree: dict) -> str:
    """Keys are names, not references; only a quoted key may interpolate ('${identityId}')."""
    text = unquote(key)
    return _interpolate(text, scope, tree) if text != key and "${" in text else text


def unquote(key: str) -> str:
    """An object key as written: pycep keeps the quotes of 'quoted-keys'."""
    return key[1:-1] if len(key) >= 2 and key[0] == key[-1] == "'" else key


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _interpolate(text: str, scope: Mapping[str, Any], tree: dict) -> str:
    """'a${name}b' with known names filled in; other expressions stay as they are written."""
    parts, symbolic = [], False
    for piece in re.split(r"(\$\{[^}]*\})", text):
        match = _INTERPOLATION.fullmatch(piece)
        expression = match.group(1).strip() if match else None
        value = evaluate(expression, scope, tree) if expression and _IDENTIFIER.fullmatch(expression) else RUNTIME
        if not match:
            parts.append(piece)
        elif value is RUNTIME:
            parts.append(piece)
            symbolic = True
        else:
            symbolic = symbolic or isinstance(value, Symbol)
            parts.append(str(value))
    joined = "".join(parts)
    return Symbol(joined) if symbolic else joined


def _render(expr: Any) -> str | None:
    """The text of an accessor chain (a.b.c), None when it holds something else."""
    if isinstance(expr, str):
        return expr
    if isinstance(expr, dict) and set(expr) == {"operator"} and expr["operator"]["type"] == "property_accessor":
        left, right = (_render(v) for v in expr["operator"]["operands"].values())
        return f"{left}.{right}" if left is not None and right is not None else None
    return None


def _operator(op: dict, scope: Mapping[str, Any], tree: dict) -> Any:
    kind, operands = op["type"], op.get("operands", {})
    if kind == "property_accessor":
        text = _render({"operator": op})
        return Symbol(text) if text else RUNTIME
    if kind == "minus" and set(operands) == {"integer_value"}:
        return -operands["integer_value"]
    if kind == "conditional":
        condition = evaluate(operands["condition"], scope, tree)
        if isinstance(condition, Ref):
            return condition  # the value depends on that parameter
        if condition is RUNTIME or isinstance(condition, Symbol):
            return RUNTIME
        return evaluate(operands["true_value" if condition else "false_value"], scope, tree)
    values = [evaluate(v, scope, tree) for v in operands.values()] if isinstance(operands, dict) else []
    if any(v is RUNTIME or isinstance(v, Symbol) for v in values):
        return RUNTIME
    if any(isinstance(v, Ref) for v in values):
        return next(v for v in values if isinstance(v, Ref))
    if kind == "equals":
        return values[0] == values[1]
    if kind == "not_equals":
        return values[0] != values[1]
    if kind == "not":
        return not values[0]
    if kind == "and":
        return all(values)
    if kind == "or":
        return any(values)
    return RUNTIME  # property access and the rest: known once deployed


def _function(fn: dict, scope: Mapping[str, Any], tree: dict) -> Any:
    kind = fn["type"]
    args = [evaluate(v, scope, tree) for v in (fn.get("parameters") or {}).values()]
    if any(a is RUNTIME for a in args):
        return RUNTIME
    if kind == "concat" and any(isinstance(a, Ref) and not isinstance(a, list) for a in args) \
            and any(isinstance(a, list) for a in args):
        return RUNTIME  # a list chosen by a parameter: give that parameter a value
    if kind == "string":
        value = args[0]
        return value if isinstance(value, (Ref, Symbol)) else ("True" if value is True else "False" if value is False
                                                     else str(value))
    if kind == "concat":
        if all(isinstance(a, list) for a in args):
            return [item for a in args for item in a]
        return "".join(str(a) for a in args)
    if kind == "union" and all(isinstance(a, dict) for a in args):
        merged: dict = {}
        for a in args:
            merged.update(a)
        return merged
    if kind == "empty":
        value = args[0]
        if isinstance(value, Symbol):
            return RUNTIME
        return value if isinstance(value, Ref) else not value
    return RUNTIME


# ---------------------------------------------------------------- what a deployment sets

def module_entry(tree: dict, module_path: str) -> tuple[str, dict]:
    """The (name, entry) of the module declaration that deploys `module_path`."""
    for name, module in tree.get("modules", {}).items():
        if module.get("detail", {}).get("path") == module_path:
            return name, module
    raise AssertionError(f"no module deploys {module_path}")


def function_app_file() -> Path:
    return INFRA / "app" / "functionapp.bicep"


def function_app_site(tree: dict) -> dict:
    sites = resources(tree, "Microsoft.Web/sites")
    assert len(sites) == 1, f"expected one function app, found {list(sites)}"
    return unwrap(next(iter(sites.values())))[1]


def function_app_scope(main_values: Mapping[str, Any] | None = None, *, trace: bool = False) -> dict:
    """The function app module's parameter values when main.bicep is deployed with `main_values`
    (missing ones: their defaults; required ones without a value: Refs)."""
    main = parse(MAIN)
    main_scope = parameter_defaults(main, main_values, trace=trace)
    _, module = module_entry(main, "app/functionapp.bicep")
    _, config = unwrap(module)
    passed = {name: evaluate(value, main_scope, main) for name, value in config["params"].items()}
    return parameter_defaults(parse(function_app_file()), passed)


def app_settings(main_values: Mapping[str, Any] | None = None, *, trace: bool = False) -> dict[str, Any]:
    """The function app's app settings, name -> value, as main.bicep would deploy them. With trace,
    parameters not in main_values are Refs, so that each value names the parameter it comes from."""
    tree = parse(function_app_file())
    site = function_app_site(tree)
    listed = evaluate(site["properties"]["siteConfig"]["appSettings"], function_app_scope(main_values, trace=trace),
                      tree)
    assert isinstance(listed, list), f"app settings must evaluate to a list, got {listed!r}"
    names = [item["name"] for item in listed]
    assert len(names) == len(set(names)), f"an app setting is set twice: {names}"
    return {item["name"]: item["value"] for item in listed}


def deployment_variants() -> list[dict[str, Any]]:
    """The shapes a deployment can take: sign-in and HTTP authorisation modes."""
    return [{"useKeyVaultCertificate": kv, "httpAuth": auth} for kv in (False, True) for auth in ("keys", "entra")]


def parameters_file() -> dict[str, str]:
    """main.parameters.json: parameter -> its value template (e.g. ${BCSYNC_PAGE_SIZE=500})."""
    data = json.loads(PARAMETERS_FILE.read_text())
    return {name: entry["value"] for name, entry in data["parameters"].items()}


_ENV_TEMPLATE = re.compile(r"^\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:=(?P<default>[^}]*))?\}$")


def env_template(value: str) -> tuple[str, str | None]:
    """(environment variable, default or None) of a `${NAME}` / `${NAME=default}` value."""
    match = _ENV_TEMPLATE.match(value)
    assert match, f"{value!r} is not ${{NAME}} or ${{NAME=default}}"
    return match.group("name"), match.group("default")
