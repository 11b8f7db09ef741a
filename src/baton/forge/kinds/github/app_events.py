"""A GitHub App's ``installation`` and ``installation_repositories`` webhooks, read into a typed
:class:`Installed` (:func:`read`), and what they change (:func:`act`): the repositories an installation
gained are known at once (no look-up before their first token), those it lost mint nothing more, a
deleted or suspended installation's token is dropped, and new permissions accepted make the next token
carry them. The payload is hostile even when signed: the installation's id, the action and each
repository's full name are type- and length-checked; one missing or malformed is a
:class:`~baton.forge.reading.webhook.Malformed` (the route's 400). GitHub's reader (:data:`READER`) reads
them; the service's process acts on them; other processes find the same within the hour they keep an
installation (:mod:`baton.forge.kinds.github.app`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from baton.forge.data.config import ForgeSettings
from baton.forge.data.model import ForgeKind
from baton.forge.kinds.github.app import app_of
from baton.forge.kinds.github.facts import HOOK
from baton.forge.reading.delivery import Delivery, PartReaders, Reader
from baton.forge.reading.webhook import Ignored, Malformed

EVENTS = ("installation", "installation_repositories")
ACTIONS = {
    "installation": ("created", "deleted", "suspend", "unsuspend", "new_permissions_accepted"),
    "installation_repositories": ("added", "removed"),
}
MAX_REPOS = 10_000  # a delivery's lists (GitHub sends an organisation's repositories in one)
_FULL_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}")


@dataclass(frozen=True)
class Installed:
    """What an installation delivery says: on the forge ``forge`` (a configured App's), the
    installation ``installation`` was ``action`` (created, deleted, suspend, unsuspend,
    new_permissions_accepted, added, removed), with the repositories it gained and lost: a delivery's
    :class:`~baton.forge.reading.delivery.ForgePart`."""

    key: ClassVar[str] = "installed"
    forge: str
    installation: int
    action: str
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "forge": self.forge,
            "installation": self.installation,
            "action": self.action,
            "added": list(self.added),
            "removed": list(self.removed),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Installed:
        return cls(
            str(data["forge"]),
            int(data["installation"]),
            str(data["action"]),
            tuple(str(r) for r in data.get("added") or ()),
            tuple(str(r) for r in data.get("removed") or ()),
        )

    def act(self, config: ForgeSettings) -> dict[str, Any]:
        """Tell this process's App what changed; the delivery's result."""
        forge = config.forges.get(self.forge)
        if forge is None or forge.app is None:
            return {"ignored": f"forge {self.forge} is no longer a configured GitHub App"}
        app = app_of(forge)
        if self.action in ("deleted", "suspend"):
            app.uninstalled(self.installation)
        if self.action == "new_permissions_accepted":
            app.renewed_permissions(self.installation)
        app.learned(self.installation, self.added, self.removed)
        return {"installation": self.to_json()}


def read(config: ForgeSettings, event: str, payload: Mapping[str, Any]) -> Installed | Ignored:
    """The delivery as an :class:`Installed`, or why it asks nothing; Malformed for a payload that
    lacks what its event needs."""
    action = payload.get("action")
    if not isinstance(action, str) or action not in ACTIONS[event]:
        return Ignored(f"{event} {str(action)[:40]!r}: nothing to do for baton")
    found = payload.get("installation")
    if not isinstance(found, dict):
        raise Malformed(f"{event}: payload.installation is not an object")
    installation = _positive(found.get("id"), f"{event}: payload.installation.id")
    app_id = found.get("app_id")
    apps = [f for f in config.forges.values() if f.app is not None]
    if app_id is not None:
        apps = [f for f in apps if f.app is not None and f.app.app_id == _positive(app_id, "app_id")]
    if len(apps) != 1:
        return Ignored(
            f"no configured GitHub App forge is App {app_id}" if apps == [] else "several App forges"
        )
    if event == "installation":
        listed = _names(payload, "repositories") if "repositories" in payload else ()
        added, removed = (listed, ()) if action in ("created", "unsuspend") else ((), listed)
    else:
        added, removed = _names(payload, "repositories_added"), _names(payload, "repositories_removed")
    return Installed(apps[0].name, installation, action, added, removed)


@dataclass(frozen=True)
class AppReader(Reader):
    """GitHub's reading of its deliveries: an App's installation delivery names no repository and goes
    to the App's forge as an :class:`Installed` part; every other is read as Gitea's are."""

    @property
    def parts(self) -> PartReaders:
        return {Installed.key: Installed.from_json}

    def feedback(self, config: ForgeSettings, event: str, payload: dict[str, Any]) -> Delivery | Ignored:
        if event in EVENTS:
            installed = read(config, event, payload)
            return Delivery(part=installed) if isinstance(installed, Installed) else installed
        return super().feedback(config, event, payload)


READER = AppReader(HOOK, ForgeKind.GITHUB)


def _positive(value: Any, where: str) -> int:
    if type(value) is not int or not 0 < value < 2**63:
        raise Malformed(f"{where} is not an id")
    return value


def _names(payload: Mapping[str, Any], key: str) -> tuple[str, ...]:
    """The full names of ``payload[key]`` (a list of repository objects), each checked."""
    listed = payload.get(key)
    if listed is None:
        return ()
    if not isinstance(listed, list) or len(listed) > MAX_REPOS:
        raise Malformed(f"payload.{key} is not a list of at most {MAX_REPOS} repositories")
    names = []
    for i, repo in enumerate(listed):
        name = repo.get("full_name") if isinstance(repo, dict) else None
        if not isinstance(name, str) or not _FULL_NAME.fullmatch(name) or ".." in name:
            raise Malformed(f"payload.{key}[{i}].full_name is not a repository's full name")
        names.append(name)
    return tuple(names)
