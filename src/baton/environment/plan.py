"""What preparing a key's worktree runs: a :class:`SetupPlan` of :class:`Command` s from one source,
with the environment they get, the steps of the source that are not run (and why), the files the
preparation depends on, and its preparation key — a hash of the setup's own text and of the
repository's lock files, so a preparation is made again exactly when one of them changed."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Command:
    """One command of a setup: its argv (never through a shell unless it names one), run in the
    worktree's directory ``cwd`` (relative; "" the worktree), with ``env`` over the plan's."""

    name: str
    argv: tuple[str, ...]
    cwd: str = ""
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SetupPlan:
    """A repository's setup, as found in a key's worktree (:func:`baton.environment.discover.discover`)."""

    source: str  # CONFIG, BATON_SETUP, DEVCONTAINER, ... : where it came from
    why: str  # why this source applied (what else was found and set aside)
    commands: tuple[Command, ...]
    env: dict[str, str] = field(default_factory=dict)  # containerEnv/remoteEnv, a workflow's env
    skipped: tuple[str, ...] = ()  # steps of the source that are not run, each with why
    # run instead of ``commands`` when only the lock files changed since this key's last setup
    maintenance: tuple[Command, ...] = ()
    text: bytes = b""  # the setup's own text (its files' bytes, or the configured command)
    inputs: tuple[tuple[str, str], ...] = ()  # (lock file, its sha256), the ones that exist

    @property
    def text_key(self) -> str:
        """The hash of the setup itself: a change here makes the whole setup run again."""
        return hashlib.sha256(self.source.encode() + b"\0" + self.text).hexdigest()

    @property
    def key(self) -> str:
        """The preparation key: the setup's text and every input, hashed together."""
        digest = hashlib.sha256(self.text_key.encode())
        for name, sha in self.inputs:
            digest.update(f"\0{name}\0{sha}".encode())
        return digest.hexdigest()

    def summary(self, maintenance: bool = False) -> str:
        """One line: the source, its commands (``maintenance``: those of its maintenance, which ran)
        and what was skipped."""
        names = ", ".join(c.name for c in (self.maintenance if maintenance else self.commands))
        names = names or "nothing to run"
        skipped = f"; skipped: {'; '.join(self.skipped)}" if self.skipped else ""
        return f"{self.source} ({names}){skipped}"


# what a repository's setup may not set: baton's own variables and the key's home and temp dir
KEPT = frozenset({"HOME", "TMPDIR", "TMP", "TEMP"})
_VARIABLE = re.compile(
    r"\$\{(?P<kind>containerEnv|localEnv|remoteEnv):(?P<name>[A-Za-z_]\w*)(?::(?P<default>[^}]*))?\}"
)
_FOLDER = re.compile(r"\$\{(containerWorkspaceFolder|localWorkspaceFolder)\}")


def expand(value: str, env: dict[str, str], workspace: str) -> str:
    """A devcontainer value with its variables filled in from ``env`` (the setup's own, already an
    allow-list: ``${localEnv:X}`` never reaches baton's environment) and the worktree's path."""
    value = _FOLDER.sub(lambda _m: workspace, value)
    return _VARIABLE.sub(lambda m: env.get(m["name"], m["default"] or ""), value)


def setup_env(base: dict[str, str], extra: dict[str, str], workspace: str) -> dict[str, str]:
    """``base`` with a plan's or a command's ``extra`` variables over it, expanded; never one of
    :data:`KEPT` nor a ``BATON_*`` name."""
    env = dict(base)
    for name, value in extra.items():
        if name not in KEPT and not name.startswith("BATON_") and name.isprintable() and "=" not in name:
            env[name] = expand(value, env, workspace)
    return env
