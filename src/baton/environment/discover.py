"""Finding a key's setup in its worktree (:func:`discover`), in this order: a configured ``setup``
(``[repo."owner/name"] setup``, a request's), which overrides the rest; ``.baton/setup.sh`` (with
``.baton/maintain.sh`` as its maintenance); a devcontainer's lifecycle commands (``onCreateCommand``,
``updateContentCommand``, ``postCreateCommand``; ``containerEnv``/``remoteEnv``); the ``run:`` steps
of copilot-setup-steps' job. The worktree is the agent's to write: every file is read without
following a link (:mod:`baton.workspace.nofollow`), and what a source says is data, run only inside
the agent's walls. The inputs the preparation key hashes (:func:`is_input`: the lock files, their
manifests, pip's requirements) are found at the root and two levels below it (:func:`lock_inputs`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path
from typing import Any

from baton.environment import (
    BATON_INPUTS,
    BATON_MAINTAIN,
    BATON_SETUP,
    CONFIG,
    COPILOT,
    DEVCONTAINER,
    DEVCONTAINER_ROOT,
    SOURCES,
    jsonc,
    named,
)
from baton.environment.plan import Command, SetupPlan
from baton.workspace import nofollow

LOCK_FILES = (
    "package-lock.json",
    "npm-shrinkwrap.json",
    "pnpm-lock.yaml",
    "yarn.lock",
    "uv.lock",
    "poetry.lock",
    "Pipfile.lock",
    "Cargo.lock",
    "go.sum",
    "Gemfile.lock",
    "composer.lock",
)
# the manifests the lock files come from: a change to one is a change of the environment's inputs
MANIFESTS = ("pyproject.toml", "Pipfile", "package.json", "go.mod", "Gemfile", "Cargo.toml")
REQUIREMENTS_DIRS = ("requirements", "reqs")  # a project's pip requirements, one file per purpose
LOCK_DEPTH = 3  # the root, and two levels of directories below it
MAX_LOCKS = 64
# what a setup makes or a package manager keeps: never where a project's own lock files are
NOT_SOURCE = frozenset(
    {"node_modules", "vendor", "target", "dist", "build", "venv", "__pycache__", "site-packages"}
)
MAX_FILE = 1 << 20  # a setup's own file: larger is refused (a lock file is hashed whatever its size)
LIFECYCLE = ("onCreateCommand", "updateContentCommand", "postCreateCommand")
NOT_RUN = {
    "initializeCommand": "runs on the host before a container is made",
    "postStartCommand": "runs at each container start",
    "postAttachCommand": "runs when a tool attaches",
    "features": "Dev Container Features install into an image, which baton does not build from them",
    "remoteUser": "the commands run as baton's own user",
    "containerUser": "the commands run as baton's own user",
}
IN_IMAGE = ("features", "remoteUser", "containerUser")  # in a container, its image spec says them
COPILOT_JOB = "copilot-setup-steps"
CONTAINER_SKIPPED = "the container itself (image, build, compose: run on this host, in the walls)"
BASH = ("bash", "--noprofile", "--norc", "-eo", "pipefail", "-c")  # GitHub Actions' default shell
SH = ("/bin/sh", "-c")


class Unreadable(ValueError):
    """A setup file that exists but cannot be used (a link, not UTF-8, malformed): said on the run."""


def discover(worktree: Path, configured: str | None = None, image: str | None = None) -> SetupPlan | None:
    """The key's setup, or None when neither its configuration nor its repository has one; ``image``:
    it runs in that container (environment container), which is then part of its preparation key."""
    plan = _discover(worktree, configured)
    if plan is None or image is None:
        return plan
    skipped = tuple(s for s in plan.skipped if s != CONTAINER_SKIPPED and s.split(" ", 1)[0] not in IN_IMAGE)
    return dataclasses.replace(plan, skipped=skipped, text=plan.text + b"\0image " + image.encode())


def _discover(worktree: Path, configured: str | None) -> SetupPlan | None:
    found = [name for name in SOURCES if _exists(worktree, name)]
    inputs = lock_inputs(worktree)
    if configured is not None and configured.strip():
        why = "the configured setup" + (f" (over the repository's {', '.join(found)})" if found else "")
        command = Command("setup", (*SH, configured))
        return SetupPlan(CONFIG, why, (command,), text=configured.encode(), inputs=inputs)
    if not found:
        return None
    source = found[0]
    why = f"{source}, the first baton looks for" + (
        f" (set aside: {', '.join(found[1:])})" if found[1:] else ""
    )
    if source == BATON_SETUP:
        return _baton(worktree, why, inputs)
    if source in (DEVCONTAINER, DEVCONTAINER_ROOT):
        return _devcontainer(worktree, source, why, inputs)
    return _copilot(worktree, why, inputs)


def _exists(worktree: Path, name: str) -> bool:
    return os.path.lexists(worktree / name)


def read(worktree: Path, name: str, limit: int = MAX_FILE) -> bytes:
    """A setup file's bytes; :class:`Unreadable` for a link, a non-file or one over ``limit``."""
    try:
        data = nofollow.read_beneath(worktree, name)
    except OSError as exc:
        raise Unreadable(f"{name} cannot be read ({exc.strerror or exc}): it must be a regular file") from exc
    if len(data) > limit:
        raise Unreadable(f"{name} is larger than {limit // 1024} KiB")
    return data


def lock_inputs(worktree: Path) -> tuple[tuple[str, str], ...]:
    """The lock files and ``requirements*.txt`` that are regular files, at the root and in directories
    down to :data:`LOCK_DEPTH` (a monorepo's ``web/package-lock.json``), with their sha256; then the
    paths the repository names in ``.baton/inputs`` (:mod:`.named`)."""
    found = []
    for name in _lock_names(worktree):
        try:
            found.append((name, hashlib.sha256(nofollow.read_beneath(worktree, name)).hexdigest()))
        except OSError:  # a link or a directory: not an input (never followed)
            continue
    known = {name for name, _sha in found}
    found += [(rel, named.digest(worktree, rel)) for rel in _named(worktree) if rel not in known]
    return tuple(found)


def _named(worktree: Path) -> list[str]:
    """The paths ``.baton/inputs`` names (none without one); :class:`Unreadable` for a bad one."""
    if not _exists(worktree, BATON_INPUTS):
        return []
    try:
        return named.names(read(worktree, BATON_INPUTS, named.LIMIT).decode("utf-8", "replace"))
    except named.BadNames as exc:
        raise Unreadable(str(exc)) from exc


def is_input(path: str) -> bool:
    """Whether the repository's file ``path`` is one of the environment's inputs: a lock file, a
    manifest, a pip requirements file (``requirements*.txt``, ``dev-requirements.txt``,
    ``constraints.txt``, any ``.txt`` or ``.in`` under ``requirements/``)."""
    parent, _, name = path.rpartition("/")
    if name in LOCK_FILES or name in MANIFESTS:
        return True
    if name.endswith((".txt", ".in")) and parent.rpartition("/")[2] in REQUIREMENTS_DIRS:
        return True
    stem = name.removesuffix(".txt")
    return stem != name and ("requirements" in stem or stem.startswith("constraints"))


def _searched(directory: str) -> bool:
    """Whether inputs are looked for in a directory of this name: never a dot-directory nor one of
    :data:`NOT_SOURCE` (what a setup makes)."""
    return not directory.startswith(".") and directory not in NOT_SOURCE


def is_lock_path(path: str) -> bool:
    """Whether the repository's file ``path`` is an input where :func:`lock_inputs` looks for them (down
    to :data:`LOCK_DEPTH`, in searched directories): for a reader of a commit's file list."""
    parts = path.split("/")
    return len(parts) <= LOCK_DEPTH and all(_searched(d) for d in parts[:-1]) and is_input(path)


def _lock_names(worktree: Path) -> list[str]:
    """The lock files' relative paths, breadth first, no link followed, none under a directory of
    :data:`NOT_SOURCE` or a dot-directory; at most :data:`MAX_LOCKS`."""
    found: list[str] = []
    level = [""]
    for _depth in range(LOCK_DEPTH):
        below = []
        for rel in level:
            try:
                entries = sorted(
                    os.scandir(worktree / rel) if rel else os.scandir(worktree), key=lambda e: e.name
                )
            except OSError:
                continue
            for entry in entries:
                path = f"{rel}/{entry.name}" if rel else entry.name
                if entry.is_dir(follow_symlinks=False):
                    if _searched(entry.name):
                        below.append(path)
                elif is_input(path):
                    found.append(path)
        level = below
    return sorted(found[:MAX_LOCKS])  # the shallowest first, when there are more


def _baton(worktree: Path, why: str, inputs: tuple[tuple[str, str], ...]) -> SetupPlan:
    text = read(worktree, BATON_SETUP)
    maintenance: tuple[Command, ...] = ()
    if _exists(worktree, BATON_MAINTAIN):
        text += b"\0" + read(worktree, BATON_MAINTAIN)
        maintenance = (Command("maintain.sh", ("bash", BATON_MAINTAIN)),)
    setup = Command("setup.sh", ("bash", BATON_SETUP))
    return SetupPlan(BATON_SETUP, why, (setup,), maintenance=maintenance, text=text, inputs=inputs)


def read_devcontainer(worktree: Path, source: str) -> tuple[bytes, dict[str, Any]]:
    """A devcontainer.json's bytes and its object; :class:`Unreadable` when it is no JSON object."""
    text = read(worktree, source)
    try:
        data = jsonc.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise Unreadable(f"{source} is not JSON with comments: {exc}") from exc
    if not isinstance(data, dict):
        raise Unreadable(f"{source} must hold a JSON object")
    return text, data


def _devcontainer(worktree: Path, source: str, why: str, inputs: tuple[tuple[str, str], ...]) -> SetupPlan:
    text, data = read_devcontainer(worktree, source)
    commands: list[Command] = []
    for name in LIFECYCLE:
        if name in data:
            commands += lifecycle(name, data[name], source)
    skipped = [f"{name} ({why})" for name, why in NOT_RUN.items() if name in data]
    if "image" in data or "build" in data or "dockerComposeFile" in data:
        skipped.append(CONTAINER_SKIPPED)
    env = {**_env(data, "containerEnv", source), **_env(data, "remoteEnv", source)}
    update = (
        lifecycle("updateContentCommand", data["updateContentCommand"], source)
        if "updateContentCommand" in data
        else []
    )
    return SetupPlan(source, why, tuple(commands), env, tuple(skipped), tuple(update), text, inputs)


def lifecycle(name: str, value: Any, source: str) -> list[Command]:
    """One lifecycle command in the spec's three forms: a string (run by ``/bin/sh``), an array (an
    argv, no shell) or an object of named commands, each a string or an array (run in order here)."""
    if isinstance(value, str):
        return [Command(name, (*SH, value))] if value.strip() else []
    if isinstance(value, list):
        return [Command(name, _argv(value, f"{source}: {name}"))] if value else []
    if isinstance(value, dict):
        found = []
        for label, item in value.items():
            found += [Command(f"{name}.{c.name}", c.argv) for c in lifecycle(str(label), item, source)]
        return found
    raise Unreadable(f"{source}: {name} must be a string, an array of strings or an object of them")


def _argv(value: list[Any], where: str) -> tuple[str, ...]:
    if not all(isinstance(item, str) for item in value):
        raise Unreadable(f"{where}: an array command must hold strings only")
    return tuple(value)


def _env(data: dict[str, Any], name: str, where: str) -> dict[str, str]:
    value = data.get(name) or {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise Unreadable(f"{where}: {name} must be an object of strings")
    return {str(k): v for k, v in value.items()}


def _copilot(worktree: Path, why: str, inputs: tuple[tuple[str, str], ...]) -> SetupPlan:
    # lazy: cold CLI
    import yaml  # only for a repository that has the workflow: the cold CLI's run path imports no YAML

    text = read(worktree, COPILOT)
    try:
        data = yaml.safe_load(text.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise Unreadable(f"{COPILOT} is not YAML: {exc}") from exc
    job = ((data or {}).get("jobs") or {}).get(COPILOT_JOB) if isinstance(data, dict) else None
    if not isinstance(job, dict):
        raise Unreadable(f"{COPILOT} has no job {COPILOT_JOB!r}")
    env = {**_workflow_env(data.get("env")), **_workflow_env(job.get("env"))}
    commands, skipped = [], []
    for number, step in enumerate(job.get("steps") or [], 1):
        command, why_not = _step(number, step)
        if command is not None:
            commands.append(command)
        else:
            skipped.append(why_not)
    return SetupPlan(COPILOT, why, tuple(commands), env, tuple(skipped), text=text, inputs=inputs)


def _step(number: int, step: Any) -> tuple[Command | None, str]:
    """A ``run:`` step as a command, or None and why it is skipped (``uses:``, another shell, an
    expression only GitHub can evaluate)."""
    if not isinstance(step, dict):
        return None, f"step {number} (not a mapping)"
    name = str(step.get("name") or f"step {number}")
    if "uses" in step:
        return None, f"{name} (uses: {step['uses']}; actions are not run)"
    run = step.get("run")
    if not isinstance(run, str):
        return None, f"{name} (no run:)"
    if "${{" in run:
        return None, f"{name} (a ${{{{ }}}} expression only GitHub evaluates)"
    shell = step.get("shell") or "bash"
    if shell not in ("bash", "sh"):
        return None, f"{name} (shell {shell}: only bash and sh are run)"
    cwd = step.get("working-directory") or ""
    if not isinstance(cwd, str) or "${{" in cwd:
        return None, f"{name} (a working-directory only GitHub evaluates)"
    argv = (*BASH, run) if shell == "bash" else ("/bin/sh", "-e", "-c", run)
    if not isinstance(step.get("env") or {}, dict):
        return None, f"{name} (env: is not a mapping)"
    return Command(name, argv, cwd, _workflow_env(step.get("env"))), ""


def _workflow_env(env: Any) -> dict[str, str]:
    """A workflow's ``env:``: YAML numbers and booleans as GitHub passes them (``true``, ``3``); an
    expression only GitHub evaluates is left out."""
    if not isinstance(env, dict):
        return {}
    found = {str(k): (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in env.items()}
    return {k: v for k, v in found.items() if "${{" not in v}
