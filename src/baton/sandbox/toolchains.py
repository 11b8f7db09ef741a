"""The operator's toolchains inside the walls. A version manager puts a shim or a proxy on ``PATH`` and
keeps the real tool under a root of its own (pyenv's ``~/.pyenv/shims`` runs ``~/.pyenv/libexec/pyenv``
and a Python under ``~/.pyenv/versions``; rustup's ``~/.cargo/bin/cargo`` runs a toolchain under
``~/.rustup``); a prefix's ``bin`` links into the prefix's ``lib`` (nvm's ``npm``, uv's Pythons, SDKMAN's
candidates, Homebrew on Linux). The walls open each ``PATH`` entry, not those roots, so the setup and the
agent found ``python3`` and then failed inside it. :func:`toolchains` names the roots a ``PATH`` needs
(read-only in the walls) and the variables that tell a manager its root where it would look under
``$HOME`` (which the walls move to the key's own home). Never the home directory itself, ``~/.local``
or a system prefix: those would open what is beside the toolchains.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

# a PATH entry's parent of this name is a version manager's root; the variable that names it for the
# manager's own commands (None: its shims name it themselves)
MANAGERS: dict[str, str | None] = {
    ".pyenv": "PYENV_ROOT",
    ".rbenv": "RBENV_ROOT",
    ".nodenv": "NODENV_ROOT",
    ".goenv": "GOENV_ROOT",
    ".asdf": "ASDF_DATA_DIR",
    "mise": "MISE_DATA_DIR",  # ~/.local/share/mise/shims
    ".cargo": None,  # rustup's proxies in its bin: the toolchains are under RUSTUP_HOME
    ".sdkman": "SDKMAN_DIR",
}
ENTRIES = ("shims", "bin")


@dataclass(frozen=True)
class Toolchains:
    """What a ``PATH`` needs beyond its own entries."""

    roots: tuple[str, ...] = ()  # directories opened read-only
    env: dict[str, str] = field(default_factory=dict)  # variables naming the roots


def toolchains(path: str, environ: Mapping[str, str] = os.environ) -> Toolchains:
    """The roots and variables the entries of ``path`` need (see the module)."""
    home = os.path.realpath(Path.home())
    broad = {"/", "/usr", "/usr/local", "/opt", home, os.path.join(home, ".local")}
    roots: dict[str, None] = {}
    env: dict[str, str] = {}
    for entry in path.split(os.pathsep):
        if not os.path.isabs(entry):
            continue
        real = Path(os.path.realpath(entry))
        parent = real.parent
        if str(parent) in broad or real.name not in ENTRIES:
            continue
        name = parent.name
        if name in MANAGERS:
            if name != ".cargo":  # CARGO_HOME holds credentials.toml (a registry token): its bin only
                roots[str(parent)] = None
            variable = MANAGERS[name]
            if variable is not None:
                env.setdefault(variable, environ.get(variable) or str(parent))
            if name == ".cargo":
                rustup = Path(environ.get("RUSTUP_HOME") or parent.parent / ".rustup")
                if rustup.is_dir():
                    roots[os.path.realpath(rustup)] = None
                    env.setdefault("RUSTUP_HOME", str(rustup))
        elif real.name == "bin" and (parent / "lib").is_dir():
            roots[str(parent)] = None  # a prefix: nvm's node, uv's Python, Homebrew
    return Toolchains(tuple(roots), env)


# what `baton doctor` asks the agent's PATH for, and how each says its version
TOOLS = {"python3": "--version", "node": "--version", "npm": "--version", "cargo": "--version"}
TOOLS |= {"go": "version", "java": "--version", "rustc": "--version", "ruby": "--version"}


# runs argv with these variables (over an agent's) for at most so many seconds: (exit status, output)
Run = Callable[[list[str], dict[str, str], float], tuple[int, str]]


@dataclass(frozen=True)
class Seen:
    """One tool on the agent's ``PATH``, for ``baton doctor``."""

    name: str
    path: str  # what it resolves to
    version: str  # its first line, or why it said none (its status and last line)
    walled: bool  # the walls open it (a system directory, a PATH entry, a toolchain's root)
    works: bool = True  # it answered (inside the walls, when ``seen`` was given a run there)


def seen(
    path: str, environ: Mapping[str, str], system: tuple[str, ...], run: Run | None = None
) -> list[Seen]:
    """The tools of :data:`TOOLS` found on ``path`` (the agent's), each run for its version (by ``run``:
    inside the walls, with an agent's variables; else here, with this process's home) with the
    variables the walls' agents get, and whether the walls open what it resolves to (``system``: the
    walls' system directories)."""
    found = toolchains(path, environ)
    opened = [
        os.path.realpath(p) for p in (*system, *path.split(os.pathsep), *found.roots) if os.path.isabs(p)
    ]
    env = {**found.env, "PATH": path}
    tools = []
    for name, flag in TOOLS.items():
        where = shutil.which(name, path=path)
        if where is None:
            continue
        real = os.path.realpath(where)
        inside = any(real == root or real.startswith(root.rstrip("/") + "/") for root in opened)
        code, out = (run or _here(environ))([where, flag], env, 10.0)
        lines = out.strip().splitlines()
        answered = code == 0 and bool(lines)
        version = lines[0][:80] if answered else f"exit {code}{': ' + lines[-1][:160] if lines else ''}"
        tools.append(Seen(name, real, version, inside, answered))
    return tools


def _here(environ: Mapping[str, str]) -> Run:
    """A :data:`Run` in this process's environment's home, language and user."""
    base = {k: v for k, v in environ.items() if k in ("HOME", "LANG", "USER")}

    def run(argv: list[str], env: dict[str, str], timeout: float) -> tuple[int, str]:
        try:
            done = subprocess.run(
                argv,
                env={**base, **env},
                capture_output=True,
                text=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return 126, f"did not answer ({exc})"
        return done.returncode, done.stdout or done.stderr

    return run
