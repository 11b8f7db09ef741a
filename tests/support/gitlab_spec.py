"""GitLab's published types as the fake GitLab's referee: each answer and webhook body is checked against
JSON Schemas made from ``@gitbeaker/core`` (REST resources; webhook events) and ``gitlab-event-types``
(webhook events), both pinned in package.json, by ``ts-json-schema-generator`` once per version set into
``node_modules/.cache`` (:func:`types`). Not covered by either: error bodies (GitLab's documented
``{"message"}``/``{"error"}``: :data:`ERROR`), a job's log (text), paging headers; where a type contradicts
GitLab's documentation (``detailed_merge_status`` lacks ``conflict``, positions' lines are strings, nulls
GitLab sends), :data:`AMENDMENTS` says what was changed and why. Objects the types close stay closed
(a misspelt key fails); gitlab-event-types is older than GitLab's payloads, so its objects are open.
``install()`` makes every FakeGitLab check itself (tests/conftest.py).
"""

from __future__ import annotations

import copy
import fcntl
import functools
import hashlib
import json
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import jsonschema_rs

from baton.testing.fake_forge_openapi import node_modules
from baton.testing.fake_gitlab import install_checker
from tests.support.gitlab_amendments import AMENDMENTS, Amendment

ENTRY = Path(__file__).with_name("gitlab_types.ts")
PACKAGES = ("@gitbeaker/core", "gitlab-event-types", "ts-json-schema-generator", "typescript")
GENERATOR = ["--type", "Types", "--no-type-check"]

# GitLab's error bodies (its REST documentation, "Data validation and error reporting"): a message
# (a string, a list, or the attributes' messages) or an OAuth-style error; no published type has them.
ERROR: dict[str, Any] = {
    "type": "object",
    "anyOf": [
        {
            "required": ["message"],
            "properties": {"message": {"type": ["string", "array", "object"]}},
            "additionalProperties": False,
        },
        {
            "required": ["error"],
            "properties": {
                "error": {"type": "string"},
                "error_description": {"type": "string"},
                "scope": {"type": "string"},
            },
            "additionalProperties": False,
        },
    ],
}

# What each route answers on success: its status and type ("[]": a list of it).
ROUTES: dict[tuple[str, str], tuple[int, str]] = {
    ("GET", "/user"): (200, "gitbeaker:ExpandedUserSchema"),
    ("GET", "/personal_access_tokens/self"): (200, "gitbeaker:PersonalAccessTokenSchema"),
    ("GET", "/users"): (200, "gitbeaker:SimpleUserSchema[]"),
    ("GET", "/projects/:id"): (200, "gitbeaker:ProjectSchema"),
    ("GET", "/projects/:id/members/all/:user_id"): (200, "gitbeaker:MemberSchema"),
    ("GET", "/projects/:id/hooks"): (200, "gitbeaker:ProjectHookSchema[]"),
    ("GET", "/projects/:id/issues"): (200, "gitbeaker:IssueSchemaWithBasicLabels[]"),
    ("GET", "/projects/:id/issues/:issue_iid"): (200, "gitbeaker:IssueSchemaWithBasicLabels"),
    ("GET", "/projects/:id/issues/:issue_iid/notes"): (200, "gitbeaker:IssueNoteSchema[]"),
    ("POST", "/projects/:id/issues/:issue_iid/notes"): (201, "gitbeaker:IssueNoteSchema"),
    ("PUT", "/projects/:id/issues/:issue_iid/notes/:note_id"): (200, "gitbeaker:IssueNoteSchema"),
    ("GET", "/projects/:id/merge_requests"): (200, "gitbeaker:MergeRequestSchemaWithBasicLabels[]"),
    ("POST", "/projects/:id/merge_requests"): (201, "gitbeaker:ExpandedMergeRequestSchema"),
    ("GET", "/projects/:id/merge_requests/:merge_request_iid"): (200, "gitbeaker:ExpandedMergeRequestSchema"),
    ("PUT", "/projects/:id/merge_requests/:merge_request_iid"): (200, "gitbeaker:ExpandedMergeRequestSchema"),
    ("GET", "/projects/:id/merge_requests/:merge_request_iid/notes"): (
        200,
        "gitbeaker:MergeRequestNoteSchema[]",
    ),
    ("POST", "/projects/:id/merge_requests/:merge_request_iid/notes"): (
        201,
        "gitbeaker:MergeRequestNoteSchema",
    ),
    ("PUT", "/projects/:id/merge_requests/:merge_request_iid/notes/:note_id"): (
        200,
        "gitbeaker:MergeRequestNoteSchema",
    ),
    ("GET", "/projects/:id/merge_requests/:merge_request_iid/discussions"): (200, "MergeRequestDiscussion[]"),
    ("POST", "/projects/:id/merge_requests/:merge_request_iid/discussions/:discussion_id/notes"): (
        201,
        "gitbeaker:MergeRequestDiscussionNoteSchema",
    ),
    ("PUT", "/projects/:id/merge_requests/:merge_request_iid/discussions/:discussion_id"): (
        200,
        "MergeRequestDiscussion",
    ),
    ("GET", "/projects/:id/merge_requests/:merge_request_iid/diffs"): (
        200,
        "gitbeaker:MergeRequestDiffSchema[]",
    ),
    ("GET", "/projects/:id/merge_requests/:merge_request_iid/approvals"): (
        200,
        "gitbeaker:MergeRequestLevelMergeRequestApprovalSchema",
    ),
    ("GET", "/projects/:id/merge_requests/:merge_request_iid/reviewers"): (
        200,
        "gitbeaker:MergeRequestReviewerSchema[]",
    ),
    ("PUT", "/projects/:id/merge_requests/:merge_request_iid/merge"): (
        200,
        "gitbeaker:ExpandedMergeRequestSchema",
    ),
    ("GET", "/projects/:id/pipelines"): (200, "gitbeaker:PipelineSchema[]"),
    ("GET", "/projects/:id/pipelines/:pipeline_id/jobs"): (200, "gitbeaker:JobSchema[]"),
}

# Each webhook event: its object_kind and the types its body must match (a Note Hook's by its target).
WEBHOOKS: dict[str, tuple[str, tuple[str, ...]]] = {
    "Issue Hook": ("issue", ("gitbeaker:WebhookIssueEventSchema", "events:IssueEvent")),
    "Merge Request Hook": (
        "merge_request",
        ("gitbeaker:WebhookMergeRequestEventSchema", "events:MergeRequestEvent"),
    ),
    "Pipeline Hook": ("pipeline", ("gitbeaker:WebhookPipelineEventSchema", "events:PipelineEvent")),
    "Push Hook": ("push", ("gitbeaker:WebhookPushEventSchema", "events:PushEvent")),
    "Note Hook:issue": ("note", ("gitbeaker:WebhookIssueNoteEventSchema", "events:NoteEvent")),
    "Note Hook:merge_request": ("note", ("gitbeaker:WebhookMergeRequestNoteEventSchema", "events:NoteEvent")),
}


class SpecError(AssertionError):
    """An answer or a webhook body GitLab's published types do not allow."""


# -- the schemas ------------------------------------------------------------------------------------------


def _cache_file(modules: Path) -> Path:
    """Where the schemas of these package versions, this entry file and these options are kept."""
    digest = hashlib.sha256(ENTRY.read_bytes() + json.dumps(GENERATOR).encode())
    for package in PACKAGES:
        manifest = modules / package / "package.json"
        if not manifest.is_file():
            raise RuntimeError(f"{package} is not installed: run `npm ci` (or `make setup`) in the checkout")
        digest.update(json.loads(manifest.read_text())["version"].encode())
    return modules / ".cache" / "baton-gitlab-spec" / f"{digest.hexdigest()[:20]}.json"


def _generate(modules: Path, out: Path) -> None:
    """Run ts-json-schema-generator over :data:`ENTRY` (a few seconds), once: under a lock, written
    whole (another pytest worker waits for it, then reads it)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with (out.parent / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if out.exists():
            return
        with tempfile.TemporaryDirectory(dir=out.parent) as scratch:
            config = Path(scratch) / "tsconfig.json"
            options = {
                "strict": True,
                "module": "nodenext",
                "moduleResolution": "nodenext",
                "skipLibCheck": True,
            }
            config.write_text(json.dumps({"compilerOptions": options, "files": [str(ENTRY)]}))
            made = Path(scratch) / "schemas.json"
            command = [
                str(modules / ".bin" / "ts-json-schema-generator"),
                "--path",
                str(ENTRY),
                "--tsconfig",
                str(config),
            ]
            proc = subprocess.run(
                [*command, *GENERATOR, "-o", str(made)],
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            if proc.returncode != 0:
                raise RuntimeError(f"ts-json-schema-generator failed: {proc.stderr[-2000:]}")
            os.replace(made, out)


def _inline(node: Any, definitions: dict[str, Any], seen: tuple[str, ...] = ()) -> Any:
    """``node`` with every ``$ref`` replaced by a copy of its definition (each type stands alone, so an
    amendment of one never reaches another), and without the TypeScript comments (``description``)."""
    if isinstance(node, list):
        return [_inline(n, definitions, seen) for n in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str):
        name = unquote(ref.removeprefix("#/definitions/"))
        if name in seen:
            raise RuntimeError(f"a recursive type: {' > '.join((*seen, name))}")
        return _inline(definitions[name], definitions, (*seen, name))
    out = {}
    for key, value in node.items():
        if key == "properties":
            out[key] = {name: _inline(schema, definitions, seen) for name, schema in value.items()}
        elif not (key == "description" and isinstance(value, str)):
            out[key] = _inline(value, definitions, seen)
    return out


def _open(node: Any) -> Any:
    """Every object of ``node`` allows more properties than it names."""
    if isinstance(node, list):
        return [_open(n) for n in node]
    if not isinstance(node, dict):
        return node
    return {k: _open(v) for k, v in node.items() if not (k == "additionalProperties" and v is False)}


@functools.cache
def types() -> dict[str, Any]:
    """Every published type of :data:`ENTRY`, as a standalone JSON Schema, amended (:data:`AMENDMENTS`)."""
    modules = node_modules()
    out = _cache_file(modules)
    if not out.exists():
        _generate(modules, out)
    generated = json.loads(out.read_text())
    definitions = generated["definitions"]
    found = {
        name: _inline(schema, definitions) for name, schema in definitions["Types"]["properties"].items()
    }
    for name in [n for n in found if n.startswith("events:")]:
        found[name] = _open(found[name])
    for amendment in AMENDMENTS:
        apply(found, amendment)
    discussion = copy.deepcopy(found["gitbeaker:DiscussionSchema"])
    discussion["properties"]["notes"]["items"] = copy.deepcopy(
        found["gitbeaker:MergeRequestDiscussionNoteSchema"]
    )
    found["MergeRequestDiscussion"] = discussion  # a merge request's discussions hold its discussion notes
    return found


# -- amendments ---------------------------------------------------------------------------------------------


def _object(node: dict[str, Any]) -> dict[str, Any]:
    if "properties" in node:
        return node
    for option in node.get("anyOf", []):
        if "properties" in option:
            return option  # type: ignore[no-any-return]
    raise KeyError("not an object")


def _items(node: dict[str, Any]) -> dict[str, Any]:
    if "items" in node:
        return node["items"]  # type: ignore[no-any-return]
    for option in node.get("anyOf", []):
        if "items" in option:
            return option["items"]  # type: ignore[no-any-return]
    raise KeyError("not an array")


def _walk(schema: dict[str, Any], path: str) -> list[tuple[dict[str, Any], str]]:
    """The objects holding the path's last property, and that property's name (``**.name``: every
    object of the schema that has the property)."""
    if path.startswith("**."):
        name = path.removeprefix("**.")
        return [(node, name) for node in _objects(schema) if name in node.get("properties", {})]
    node = schema
    *parents, last = path.split(".")
    for part in parents:
        name, arrays = part.rstrip("[]"), part.count("[]")
        node = _object(node)["properties"][name]
        for _ in range(arrays):
            node = _items(node)
    return [(_object(node), last)]


def _objects(node: Any) -> list[dict[str, Any]]:
    found = []
    if isinstance(node, dict):
        if "properties" in node:
            found.append(node)
        for value in node.values():
            found += _objects(value)
    elif isinstance(node, list):
        for value in node:
            found += _objects(value)
    return found


def apply(found: dict[str, Any], amendment: Amendment) -> None:
    """Change one published type as ``amendment`` says; an amendment that no longer changes anything
    (the package was fixed) or names what is not there fails, so the table stays true."""
    before = json.dumps(found[amendment.type], sort_keys=True)
    value = amendment.value
    if isinstance(value, str) and value in found:
        value = found[value]
    try:
        places = _walk(found[amendment.type], amendment.path) if amendment.path else [({}, "")]
        if not places:
            raise KeyError(amendment.path)
        for holder, name in places:
            _change(found[amendment.type] if not name else holder, name, amendment.change, value)
    except (KeyError, TypeError) as exc:
        raise RuntimeError(f"amendment {amendment} does not apply: {exc!r}") from exc
    if json.dumps(found[amendment.type], sort_keys=True) == before:
        raise RuntimeError(f"amendment {amendment} changes nothing: is the published type fixed?")


def _change(holder: dict[str, Any], name: str, change: str, value: Any) -> None:
    properties = holder.get("properties", {})
    if change == "optional":
        holder["required"] = [r for r in holder.get("required", []) if r != name]
    elif change == "nullable":
        prop = properties[name]
        if {"type": "null"} not in prop.get("anyOf", []) and "null" not in prop.get("type", []):
            properties[name] = {"anyOf": [prop, {"type": "null"}]}
    elif change in ("type", "add"):
        if change == "add" and name in properties:
            raise KeyError(f"{name} is already there")
        properties[name] = copy.deepcopy(value)
    elif change == "values":
        prop = properties[name]
        prop["enum"] = [*prop["enum"], *[v for v in value if v not in prop["enum"]]]
    elif change == "open":
        target = properties[name] if name else holder
        for option in [target, *target.get("anyOf", [])]:
            option.pop("additionalProperties", None)
    else:
        raise KeyError(f"no change {change!r}")


# -- checking -----------------------------------------------------------------------------------------------


@functools.cache
def _validator(type_name: str) -> Any:
    many = type_name.endswith("[]")
    schema = ERROR if type_name == "error" else types()[type_name.removesuffix("[]")]
    return jsonschema_rs.Draft202012Validator({"type": "array", "items": schema} if many else schema)


LIMIT = 5  # the errors a SpecError names


def check(type_name: str, value: Any, where: str = "") -> None:
    """``value`` is what the published type ``type_name`` (``gitbeaker:IssueNoteSchema[]``) allows."""
    many = type_name.endswith("[]")
    schema = ERROR if type_name == "error" else types()[type_name.removesuffix("[]")]
    errors = _errors({"type": "array", "items": schema} if many else schema, value, _validator(type_name))
    if errors:
        raise SpecError(f"{where or type_name} is not {type_name}: " + "; ".join(errors[:LIMIT]))


def _errors(schema: dict[str, Any], value: Any, validator: Any = None, at: str = "") -> list[str]:
    """What is wrong with ``value``; where a choice (``anyOf``: a type or null) fails as a whole, what
    is wrong inside the branch of the value's own kind."""
    found = []
    for error in (validator or jsonschema_rs.Draft202012Validator(schema)).iter_errors(value):
        path = [str(p) for p in error.instance_path]
        inner = _branch(schema, error.instance_path, value)
        if inner is not None:
            found += _errors(inner[0], inner[1], None, f"{at}/{'/'.join(path)}".rstrip("/"))
        else:
            found.append(f"at {at}/{'/'.join(path)}: {error.message[:200]}")
        if len(found) >= LIMIT:
            break
    return found


def _branch(schema: dict[str, Any], path: Any, value: Any) -> tuple[dict[str, Any], Any] | None:
    """The ``anyOf`` branch of the failing value's kind (an object's, an array's), if that is the choice
    that failed; None when the error is plain."""
    node, here = schema, value
    try:
        for part in path:
            node = _items(node) if isinstance(here, list) else _object(node)["properties"][part]
            here = here[part]
    except (KeyError, IndexError, TypeError):
        return None
    kind = "object" if isinstance(here, dict) else "array" if isinstance(here, list) else None
    for option in node.get("anyOf", []) if kind else []:
        if option.get("type") == kind or (kind == "object" and "properties" in option):
            return option, here
    return None


def check_answer(method: str, template: str, status: int, body: Any) -> None:
    """An answer of the fake: the route's success status with its type's body, 304 without one, or an
    error status with GitLab's error body."""
    expected = ROUTES.get((method, template))
    if expected is None:
        raise SpecError(f"{method} {template} is not a route the contract names")
    what = f"{method} {template} {status}"
    if status == 304:
        if body is not None:
            raise SpecError(f"{what} has a body")
    elif status >= 400:
        check("error", body, what)
    elif status != expected[0]:
        raise SpecError(f"{what}: GitLab answers {expected[0]} on success")
    else:
        check(expected[1], body, what)


def check_webhook(event: str, body: dict[str, Any]) -> None:
    """A webhook body of the ``X-Gitlab-Event`` ``event``: its ``object_kind`` and every type of it."""
    key = event
    if event == "Note Hook":
        key = f"{event}:{'issue' if 'issue' in body else 'merge_request'}"
    if key not in WEBHOOKS:
        raise SpecError(f"the fake sends no {event}")
    kind, names = WEBHOOKS[key]
    if body.get("object_kind") != kind:
        raise SpecError(f"a {event}'s object_kind is {kind!r}, not {body.get('object_kind')!r}")
    for name in names:
        check(name, body, event)


@dataclass
class Checker:
    """What a FakeGitLab calls (:class:`baton.testing.fake_gitlab.Checker`)."""

    def answer(self, method: str, template: str, status: int, body: Any) -> None:
        check_answer(method, template, status, body)

    def webhook(self, event: str, body: dict[str, Any]) -> None:
        check_webhook(event, body)


def install() -> None:
    """Every FakeGitLab made from now on checks its answers and webhooks against GitLab's types."""
    install_checker(Checker())
