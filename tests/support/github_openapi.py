"""GitHub's own machine-readable descriptions, as the fake forge's referee: every REST request and
response and every webhook delivery it makes is checked against them (:class:`RestDescription`,
:class:`WebhookDescription`). They come from npm, pinned in ``package.json`` and used where ``make
setup`` installed them (``node_modules/@octokit/…``), never copied into the tree: ``@octokit/openapi``'s
``generated/ghes-3.19.json`` for the REST API (GitHub Enterprise Server's, because its server is
``{protocol}://{hostname}/api/v3``: the fake's own ``http://127.0.0.1:PORT/api/v3`` matches it as it
is, and a baton configured with an ``api_url`` is exactly a GHES client; ``description="api.github.com"``
works too), and ``@octokit/openapi-webhooks`` with ``@octokit/webhooks-examples`` for the webhooks.
The referee's checkers (openapi-core, jsonschema-rs) are the ``test`` extra's: without them
(``unchecked``) the fake still answers from the same descriptions, checking nothing.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NODE_MODULES_ENV = "BATON_NODE_MODULES"
CHECKERS = ("openapi_core", "jsonschema_rs")  # the test extra's (openapi-core, jsonschema-rs)


def missing_checkers() -> list[str]:
    """The referee's modules this Python cannot import (a plain ``pip install '.[server]'``)."""
    missing = []
    for name in CHECKERS:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    return missing


def node_modules() -> Path:
    """Where npm installed the descriptions: ``$BATON_NODE_MODULES`` or the checkout's ``node_modules``."""
    if env := os.environ.get(NODE_MODULES_ENV):
        return Path(env)
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "node_modules" / "@octokit").is_dir():
            return parent / "node_modules"
    raise FileNotFoundError(
        "GitHub's OpenAPI descriptions are not installed: run `npm ci` in the checkout (or `make setup`), "
        f"or point ${NODE_MODULES_ENV} at a node_modules holding @octokit/openapi"
    )


def _openapi30_to_jsonschema(node: Any) -> Any:
    """OpenAPI 3.0's schema dialect as plain JSON Schema: ``nullable: true`` becomes a ``null`` type."""
    if isinstance(node, list):
        return [_openapi30_to_jsonschema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {
        k: _openapi30_to_jsonschema(v)
        for k, v in node.items()
        if k not in ("nullable", "example", "discriminator", "xml", "externalDocs", "readOnly", "writeOnly")
    }
    if node.get("nullable") is True:
        if "type" in out:
            kind = out["type"]
            out["type"] = [kind, "null"] if isinstance(kind, str) else [*kind, "null"]
            if "enum" in out and None not in out["enum"]:
                out["enum"] = [*out["enum"], None]
        else:
            out = {"anyOf": [{"type": "null"}, out]}
    return out


def _refs(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            found.add(ref.rsplit("/", 1)[1])
        for value in node.values():
            _refs(value, found)
    elif isinstance(node, list):
        for value in node:
            _refs(value, found)


def _reachable(schema: Any, schemas: dict[str, Any]) -> dict[str, Any]:
    """The component schemas ``schema`` reaches through ``$ref``, transitively."""
    todo: set[str] = set()
    _refs(schema, todo)
    seen: dict[str, Any] = {}
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen[name] = schemas[name]
        more: set[str] = set()
        _refs(schemas[name], more)
        todo |= more - seen.keys()
    return seen


def _errors(validator: Any, instance: Any, limit: int = 3) -> list[str]:
    errors = []
    for error in validator.iter_errors(instance):
        where = "/".join(str(p) for p in error.instance_path)
        errors.append(f"at /{where}: {error.message[:300]}")
        if len(errors) >= limit:
            break
    return errors


@dataclass(frozen=True)
class Checked:
    """A validation's verdict: ``errors`` empty when it conforms."""

    errors: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.errors


class RestDescription:
    """One REST description, loaded once: request validation by openapi-core, response bodies by
    jsonschema_rs (compiled per operation and status, on first use). Measured on 2 cores:

    - Requests: ``openapi-core`` (parameters deserialised by their style, enums, the JSON body's
      schema), told the operation's path template so it never searches the thousand paths. Loading the
      11 MB description takes ~0.2 s (``json.load``) plus ~0.65 s to import openapi-core, once per
      process; a request then costs a few milliseconds (~0.1 s for the first of each operation).
    - Responses: openapi-core validates a page of 100 issues in ~0.3 s (3 ms an issue), too slow for
      the hostile tests (a review of 10,000 comments). So a response body is checked with
      ``jsonschema_rs`` against the operation's schema for its status, translated from OpenAPI 3.0
      (``nullable``) to JSON Schema with only the components it reaches: ~2 ms for the same page,
      ~10-90 ms to compile each operation's schema once per process.
    """

    def __init__(self, name: str, checked: bool = True) -> None:
        self.name, self.checked = name, checked
        self.path = node_modules() / "@octokit" / "openapi" / "generated" / f"{name}.json"
        self.doc: dict[str, Any] = json.loads(self.path.read_bytes())
        self.ghes = not name.startswith("api.github.com")  # GHES and GHEC-style bases under /api/v3
        self._openapi: Any = None
        if checked:
            from openapi_core import Config, OpenAPI

            self._openapi = OpenAPI.from_dict(self.doc, config=Config(spec_validator_cls=None))
        self._schemas = self.doc["components"]["schemas"]
        self._compiled: dict[tuple[str, str, str], Any] = {}
        self._lock = threading.Lock()

    def operation(self, template: str, method: str) -> dict[str, Any]:
        return self.doc["paths"][template][method.lower()]  # type: ignore[no-any-return]

    def example(self, name: str) -> Any:
        """A copy of one of the description's named examples (``components/examples``)."""
        return json.loads(json.dumps(self.doc["components"]["examples"][name]["value"]))

    def _resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            target: Any = self.doc
            for part in node["$ref"][2:].split("/"):
                target = target[part]
            node = target
        return node

    def check_request(
        self,
        template: str,
        method: str,
        *,
        host_url: str,
        path: str,
        params: dict[str, str],
        query: dict[str, list[str]],
        headers: dict[str, str],
        body: bytes,
        content_type: str,
    ) -> Checked:
        if not self.checked:
            return Checked()
        from openapi_core.testing import MockRequest
        from werkzeug.datastructures import ImmutableMultiDict

        prefix = "/api/v3" if self.ghes else ""
        request = MockRequest(
            host_url if self.ghes else "https://api.github.com",
            method,
            prefix + path,
            path_pattern=prefix + template,
            view_args=dict(params),
            headers=headers,
            data=body or None,
            content_type=content_type or "application/json",
        )
        # several values of one parameter (``labels=a&labels=b``) kept as the request sent them
        request.parameters.query = ImmutableMultiDict([(k, v) for k, vs in query.items() for v in vs])
        try:
            self._openapi.validate_request(request)
        except Exception as exc:  # openapi-core's errors carry the schema error as their cause
            cause = exc.__cause__
            detail = f"{exc}" + (f": {cause}" if cause is not None else "")
            return Checked((detail[:1000],))
        return Checked()

    def _validator(self, template: str, method: str, status: int) -> Any:
        """The compiled schema of an answer. An error status the description does not list for the
        operation (GitHub's descriptions leave out 401, and most 404s and 5xx) is checked only for being
        a ``basic-error``-shaped JSON object."""
        key = (template, method.lower(), str(status))
        with self._lock:
            if key in self._compiled:
                return self._compiled[key]
        responses = self.operation(template, method)["responses"]
        if str(status) in responses:
            response = self._resolve(responses[str(status)])
            content = response.get("content") or {}
            media = content.get("application/json") or next(iter(content.values()), None)
            schema = None if media is None else media.get("schema")
        elif status >= 400:
            schema = {"$ref": "#/components/schemas/basic-error"}
        else:
            schema = False  # a success status the operation does not have: a bug in the fake
        validator: Any = schema
        if isinstance(schema, dict):
            components = {
                k: _openapi30_to_jsonschema(v) for k, v in _reachable(schema, self._schemas).items()
            }
            root = {**_openapi30_to_jsonschema(schema), "components": {"schemas": components}}
            import jsonschema_rs

            validator = jsonschema_rs.Draft4Validator(root)
        with self._lock:
            self._compiled[key] = validator
        return validator

    def check_response(self, template: str, method: str, status: int, body: bytes) -> Checked:
        if not self.checked:
            return Checked()
        validator = self._validator(template, method, status)
        if validator is False:
            return Checked((f"status {status} is not a response of {method.upper()} {template}",))
        if validator is None:
            return Checked() if not body else Checked((f"status {status} has no body, but one was sent",))
        try:
            instance = json.loads(body)
        except ValueError as exc:
            return Checked((f"the body is not JSON: {exc}",))
        return Checked(tuple(_errors(validator, instance)))


class WebhookDescription:
    """The webhooks' description (OpenAPI 3.1, so its schemas are JSON Schema 2020-12) and GitHub's
    example payloads."""

    def __init__(self, name: str, checked: bool = True) -> None:
        self.checked = checked
        base = node_modules() / "@octokit"
        self.doc: dict[str, Any] = json.loads(
            (base / "openapi-webhooks" / "generated" / f"{name}.json").read_bytes()
        )
        examples = json.loads((base / "webhooks-examples" / "api.github.com" / "index.json").read_bytes())
        self._examples: dict[str, list[dict[str, Any]]] = {e["name"]: e["examples"] for e in examples}
        self._compiled: dict[str, Any] = {}
        self._lock = threading.Lock()

    @staticmethod
    def key(event: str, action: str | None) -> str:
        """The description's name of a delivery: ``pull-request-review-submitted``, ``status``."""
        return event.replace("_", "-") + (f"-{action.replace('_', '-')}" if action else "")

    def examples(self, event: str, action: str | None) -> list[dict[str, Any]]:
        """Copies of GitHub's example payloads of the event (with that action, unless None)."""
        found = [e for e in self._examples[event] if action is None or e.get("action") == action]
        return json.loads(json.dumps(found))  # type: ignore[no-any-return]

    def example(self, event: str, action: str | None) -> dict[str, Any]:
        """A copy of GitHub's first example payload of the event with that action."""
        found = self.examples(event, action)
        if not found:
            raise KeyError(f"no example of {event}.{action} in @octokit/webhooks-examples")
        return found[0]

    def _validator(self, key: str) -> Any:
        with self._lock:
            if key in self._compiled:
                return self._compiled[key]
        body = self.doc["webhooks"][key]["post"]["requestBody"]["content"]["application/json"]["schema"]
        schemas = self.doc["components"]["schemas"]
        root = {**body, "components": {"schemas": _reachable(body, schemas)}}
        import jsonschema_rs

        validator = jsonschema_rs.Draft202012Validator(root)
        with self._lock:
            self._compiled[key] = validator
        return validator

    def check(self, event: str, action: str | None, payload: Any) -> Checked:
        if not self.checked:
            return Checked()
        return Checked(tuple(_errors(self._validator(self.key(event, action)), payload)))


def rest_description(name: str = "ghes-3.19", checked: bool = True) -> RestDescription:
    """The REST description, loaded once per process (a second fake starts in well under a millisecond
    of validation cost); ``checked=False``: it answers, checking nothing."""
    return _rest(name, checked)


def webhook_description(name: str = "ghes-3.19", checked: bool = True) -> WebhookDescription:
    """The webhooks' description and examples, loaded once per process."""
    return _webhooks(name, checked)


# cached on (name, checked), always passed both: functools.cache keys f() and f("ghes-3.19") apart
_rest = functools.cache(RestDescription)
_webhooks = functools.cache(WebhookDescription)
