"""The image a repository's dev container names, read from its ``devcontainer.json`` with the spec's own
fields: ``image`` (a reference the engine already has: nothing is pulled), or ``build.dockerfile`` with
``build.context`` (both relative to the file's folder, both inside the worktree) and ``build.args``;
``containerEnv`` (the container's variables). ``remoteUser``, ``workspaceFolder``, ``features``,
``mounts``, ``runArgs`` and a compose file are set aside, each said with why. Everything here is the
repository's, so data: a reference must look like one, a path must stay in the worktree, and no file is
read through a link (:mod:`baton.workspace.nofollow`). Used for ``environment = "container"`` only.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from baton.environment import DEVCONTAINER, DEVCONTAINER_ROOT
from baton.environment.discover import Unreadable, read, read_devcontainer
from baton.environment.plan import KEPT

# an image reference: registry/name:tag or @digest; never an option (no leading "-"), no spaces
REFERENCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@+-]{0,254}$")
BUILD_ARG = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
SET_ASIDE = {
    "remoteUser": "the agent runs as baton's own user, so what it writes in its worktree stays baton's",
    "containerUser": "the agent runs as baton's own user, so what it writes in its worktree stays baton's",
    "workspaceFolder": "the worktree is mounted at its own path: the conversation and git's links hold",
    "features": "features are downloaded: put what they install in the Dockerfile",
    "mounts": "only the key's own paths are mounted",
    "runArgs": "baton sets the container's options (its walls)",
    "dockerComposeFile": "compose is not run: name an image or a Dockerfile",
}


@dataclass(frozen=True)
class ImageSpec:
    """What a devcontainer.json says of its container."""

    source: str  # the file it was read from (DEVCONTAINER or DEVCONTAINER_ROOT)
    image: str | None = None  # a reference the engine has; None: built from ``dockerfile``
    dockerfile: Path | None = None  # absolute, inside the worktree
    context: Path | None = None  # absolute, inside the worktree
    args: dict[str, str] = field(default_factory=dict)  # build.args
    env: dict[str, str] = field(default_factory=dict)  # containerEnv, without baton's own names
    set_aside: tuple[str, ...] = ()  # fields not honoured, each with why
    digest: str = ""  # of the file, the Dockerfile and the args: the built image's tag

    @property
    def tag(self) -> str:
        """The image to run: the named one, or the one built from the Dockerfile."""
        return self.image or f"localhost/baton-env:{self.digest[:24]}"


def read_image(worktree: Path) -> ImageSpec:
    """The container the worktree's devcontainer.json names; :class:`Unreadable` when there is none or
    it cannot be used."""
    source = next((n for n in (DEVCONTAINER, DEVCONTAINER_ROOT) if os.path.lexists(worktree / n)), None)
    if source is None:
        raise Unreadable(f"no {DEVCONTAINER} or {DEVCONTAINER_ROOT} names the container to run in")
    text, data = read_devcontainer(worktree, source)
    aside = tuple(f"{name} ({why})" for name, why in SET_ASIDE.items() if name in data)
    env = _strings(data, "containerEnv", source)
    env = {k: v for k, v in env.items() if k not in KEPT and not k.startswith("BATON_")}
    digest = hashlib.sha256(text)
    if isinstance(data.get("image"), str) and "build" not in data:
        return ImageSpec(source, image=_reference(data["image"], source), env=env, set_aside=aside)
    build = data.get("build")
    if not isinstance(build, dict) or not isinstance(build.get("dockerfile"), str):
        raise Unreadable(f"{source} names neither an image nor a build.dockerfile")
    folder = posixpath.dirname(source)
    dockerfile = _inside(worktree, folder, build["dockerfile"], f"{source}: build.dockerfile")
    context = _inside(worktree, folder, build.get("context", "."), f"{source}: build.context")
    if not (worktree / context).is_dir() or os.path.realpath(worktree / context) != str(
        Path(os.path.realpath(worktree)) / context
    ):
        raise Unreadable(f"{source}: build.context must be a directory of the worktree, not a link")
    args = _strings(build, "args", f"{source}: build")
    if not all(BUILD_ARG.match(name) for name in args):
        raise Unreadable(f"{source}: build.args names must be plain variable names")
    digest.update(b"\0" + read(worktree, dockerfile))
    for name, value in sorted(args.items()):
        digest.update(f"\0{name}={value}".encode())
    return ImageSpec(
        source,
        dockerfile=worktree / dockerfile,
        context=worktree / context,
        args=args,
        env=env,
        set_aside=aside,
        digest=digest.hexdigest(),
    )


def _reference(value: str, source: str) -> str:
    if not REFERENCE.match(value):
        raise Unreadable(f"{source}: image {value[:80]!r} is not an image reference")
    return value


def _inside(worktree: Path, folder: str, value: Any, where: str) -> str:
    """``value`` (relative to ``folder``) as a path relative to the worktree, which it must not leave."""
    if not isinstance(value, str) or not value or posixpath.isabs(value):
        raise Unreadable(f"{where} must be a relative path")
    found = posixpath.normpath(posixpath.join(folder, value))
    if found == ".." or found.startswith("../"):
        raise Unreadable(f"{where} leaves the worktree")
    return found


def _strings(data: dict[str, Any], name: str, where: str) -> dict[str, str]:
    value = data.get(name) or {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise Unreadable(f"{where}: {name} must be an object of strings")
    return {str(k): v for k, v in value.items() if str(k).isprintable() and "=" not in str(k)}
