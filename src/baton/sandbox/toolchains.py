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
from collections.abc import Mapping
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
