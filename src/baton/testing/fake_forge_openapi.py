"""GitHub's own machine-readable descriptions, which the fake forge answers from: its REST bodies are
the description's examples filled in, its webhooks GitHub's example payloads (:class:`RestDescription`,
:class:`WebhookDescription`). They come from npm, pinned in ``package.json`` and used where ``make
setup`` (or ``npm ci``) installed them (``node_modules/@octokit/…``), never copied into the tree:
``@octokit/openapi``'s ``generated/ghes-3.19.json`` for the REST API (GitHub Enterprise Server's: its
server is ``{protocol}://{hostname}/api/v3``, as the fake's; ``"api.github.com"`` works too), and
``@octokit/openapi-webhooks`` with ``@octokit/webhooks-examples`` for the webhooks. Checking the fake's
answers against them is the tests' (``tests/support/github_openapi.py``, with the test extra's
checkers): they install checking descriptions with :func:`install_checker`; these check nothing.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NODE_MODULES_ENV = "BATON_NODE_MODULES"


def node_modules() -> Path:
    """Where npm installed the descriptions: ``$BATON_NODE_MODULES``, else the ``node_modules`` of the
    checkout this package (or the working directory) is in."""
    if env := os.environ.get(NODE_MODULES_ENV):
        return Path(env)
    here, cwd = Path(__file__).resolve(), Path.cwd().resolve()
    for parent in (*here.parents, cwd, *cwd.parents):
        if (parent / "node_modules" / "@octokit").is_dir():
            return parent / "node_modules"
    raise FileNotFoundError(
        "GitHub's OpenAPI descriptions are not installed: run `npm ci` in the checkout (or `make setup`) and "
        f"start the fake from there, or point ${NODE_MODULES_ENV} at a node_modules holding @octokit/openapi"
    )


@dataclass(frozen=True)
class Checked:
    """A validation's verdict: ``errors`` empty when it conforms."""

    errors: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.errors


class RestDescription:
    """One REST description, loaded once per process; its checks pass everything (a checking
    subclass overrides them)."""

    checked = False

    def __init__(self, name: str) -> None:
        self.name = name
        self.path = node_modules() / "@octokit" / "openapi" / "generated" / f"{name}.json"
        self.doc: dict[str, Any] = json.loads(self.path.read_bytes())
        self.ghes = not name.startswith("api.github.com")  # GHES and GHEC-style bases under /api/v3

    def operation(self, template: str, method: str) -> dict[str, Any]:
        return self.doc["paths"][template][method.lower()]  # type: ignore[no-any-return]

    def example(self, name: str) -> Any:
        """A copy of one of the description's named examples (``components/examples``)."""
        return json.loads(json.dumps(self.doc["components"]["examples"][name]["value"]))

    def resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        """``node`` with its ``$ref`` followed (within the description)."""
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
        return Checked()

    def check_response(self, template: str, method: str, status: int, body: bytes) -> Checked:
        return Checked()


class WebhookDescription:
    """The webhooks' description (OpenAPI 3.1) and GitHub's example payloads; its check passes
    everything (a checking subclass overrides it)."""

    checked = False

    def __init__(self, name: str) -> None:
        base = node_modules() / "@octokit"
        self.doc: dict[str, Any] = json.loads(
            (base / "openapi-webhooks" / "generated" / f"{name}.json").read_bytes()
        )
        examples = json.loads((base / "webhooks-examples" / "api.github.com" / "index.json").read_bytes())
        self._examples: dict[str, list[dict[str, Any]]] = {e["name"]: e["examples"] for e in examples}

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

    def check(self, event: str, action: str | None, payload: Any) -> Checked:
        return Checked()


_CHECKING: list[tuple[type[RestDescription], type[WebhookDescription]]] = []


def install_checker(
    rest: type[RestDescription] | None, hooks: type[WebhookDescription] | None = None
) -> None:
    """Every fake forge made from now on (unless ``checked=False``) answers from these checking
    descriptions; ``None``: from the plain ones again."""
    _CHECKING[:] = [] if rest is None or hooks is None else [(rest, hooks)]


def rest_description(name: str = "ghes-3.19", checked: bool = True) -> RestDescription:
    """The REST description, loaded once per process (a second fake starts at once); checking when
    ``checked`` and a checker is installed."""
    return _rest(name, _CHECKING[0][0] if checked and _CHECKING else RestDescription)


def webhook_description(name: str = "ghes-3.19", checked: bool = True) -> WebhookDescription:
    """The webhooks' description and examples, loaded once per process."""
    return _webhooks(name, _CHECKING[0][1] if checked and _CHECKING else WebhookDescription)


_LOADED: dict[tuple[str, type], Any] = {}
_LOADING = threading.Lock()


def _rest(name: str, kind: type[RestDescription]) -> RestDescription:
    with _LOADING:
        if (name, kind) not in _LOADED:
            _LOADED[name, kind] = kind(name)
        return _LOADED[name, kind]  # type: ignore[no-any-return]


def _webhooks(name: str, kind: type[WebhookDescription]) -> WebhookDescription:
    with _LOADING:
        if (name, kind) not in _LOADED:
            _LOADED[name, kind] = kind(name)
        return _LOADED[name, kind]  # type: ignore[no-any-return]
