"""The fake GitHub's referee: every REST request and response and every webhook delivery the fake makes
checked against GitHub's own descriptions (:mod:`baton.testing.fake_forge_openapi`, which only answers
from them), with the test extra's checkers, openapi-core and jsonschema-rs. :func:`install` (the
tests' conftest calls it) makes every fake forge made from then on answer from :class:`CheckedRest`
and :class:`CheckedWebhooks`, whose violations the fake records (``fake.violations``).
"""

from __future__ import annotations

import json
import threading
from typing import Any

import jsonschema_rs
from openapi_core import Config, OpenAPI
from openapi_core.testing import MockRequest
from werkzeug.datastructures import ImmutableMultiDict

from baton.testing.fake_forge_openapi import Checked, RestDescription, WebhookDescription, install_checker


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


class CheckedRest(RestDescription):
    """The REST description with its checks: request validation by openapi-core, response bodies by
    jsonschema_rs (compiled per operation and status, on first use). Measured on 2 cores:

    - Requests: ``openapi-core`` (parameters deserialised by their style, enums, the JSON body's
      schema), told the operation's path template so it never searches the thousand paths. Loading the
      11 MB description takes ~0.2 s plus ~0.65 s to import openapi-core, once per process; a request
      then costs a few milliseconds (~0.1 s for the first of each operation).
    - Responses: openapi-core takes ~3 ms an issue, too slow for the hostile tests (a review of 10,000
      comments); jsonschema_rs against the operation's schema, translated from OpenAPI 3.0 with only
      the components it reaches: ~2 ms for a page of 100 issues, ~10-90 ms to compile each schema once.
    """

    checked = True

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._openapi = OpenAPI.from_dict(self.doc, config=Config(spec_validator_cls=None))
        self._schemas = self.doc["components"]["schemas"]
        self._compiled: dict[tuple[str, str, str], Any] = {}
        self._lock = threading.Lock()

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
            response = self.resolve(responses[str(status)])
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
            validator = jsonschema_rs.Draft4Validator(root)
        with self._lock:
            self._compiled[key] = validator
        return validator

    def check_response(self, template: str, method: str, status: int, body: bytes) -> Checked:
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


class CheckedWebhooks(WebhookDescription):
    """The webhooks' description with its check (its schemas are JSON Schema 2020-12)."""

    checked = True

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._compiled: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _validator(self, key: str) -> Any:
        with self._lock:
            if key in self._compiled:
                return self._compiled[key]
        body = self.doc["webhooks"][key]["post"]["requestBody"]["content"]["application/json"]["schema"]
        schemas = self.doc["components"]["schemas"]
        root = {**body, "components": {"schemas": _reachable(body, schemas)}}
        validator = jsonschema_rs.Draft202012Validator(root)
        with self._lock:
            self._compiled[key] = validator
        return validator

    def check(self, event: str, action: str | None, payload: Any) -> Checked:
        return Checked(tuple(_errors(self._validator(self.key(event, action)), payload)))


def install() -> None:
    """Every fake forge made from now on checks its answers and deliveries against GitHub's descriptions."""
    install_checker(CheckedRest, CheckedWebhooks)
