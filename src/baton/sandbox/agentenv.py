"""The environment an agent process gets: an allow-list, never baton's own. baton's environment holds
secrets an agent must never see (the store's, broker's and Redis's URLs, the webhook secret, the git
token, other agents' API keys), and a prompt injection that prints the environment must find none of
them. :func:`agent_env` passes every program's basics and the network's (:data:`BASE_NAMES`), the
agent CLI's own variables (``Agent.env_names()``), the names the operator adds (``BATON_AGENT_ENV``),
what baton sets (git identity, ``HOME`` and ``TMPDIR`` in the key's space, the run's ids; never
``GIT_ASKPASS``) and, unless off or at ``read``, the repository's shared package caches (:data:`CACHES`).
What that lets through and why: docs/security.md, "The agent's environment" and "Shared package caches".
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from pathlib import Path

from baton.sandbox.toolchains import toolchains
from baton.workspace import nofollow

# Every program's basics, and how to reach the network (proxies, CA bundles).
BASE_NAMES = (
    "PATH",
    "LANG",
    "LANGUAGE",
    "LC_*",
    "TZ",
    "TERM",
    "COLORTERM",
    "NO_COLOR",
    "FORCE_COLOR",
    "USER",
    "LOGNAME",
    "SHELL",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "all_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS",
    "GIT_SSL_CAINFO",
)

# The package managers' caches a repository's threads share, so ten threads of one repo download and
# unpack a dependency once: variable -> its subdirectory of the repo's cache dir
# (BATON_HOME/caches/<slug>/@shared). A variable the operator passes on purpose
# (BATON_AGENT_ENV=PIP_CACHE_DIR) wins. Go's build cache is shared too (content-addressed by its inputs,
# safe for concurrent use); cargo has no variable for its registry alone, so the whole CARGO_HOME is.
CACHES = {
    "npm_config_cache": "npm",  # npm's content-addressed cache (npx's packages too)
    "pnpm_config_store_dir": "pnpm",  # pnpm's store, for pnpm 11 and later; earlier: pnpm_rc
    "YARN_CACHE_FOLDER": "yarn",
    "PIP_CACHE_DIR": "pip",
    "UV_CACHE_DIR": "uv",
    "CARGO_HOME": "cargo",  # registry index, crate files and their sources; also config and `cargo install`
    "GOMODCACHE": "gomod",
    "GOCACHE": "gobuild",
}
# With shared caches, installs copy (or clone copy-on-write) out of them: uv and pnpm hard-link by
# default, and a hard-linked file edited in one worktree is edited in the cache.
COPY_OUT = {"UV_LINK_MODE": "copy", "pnpm_config_package_import_method": "clone-or-copy"}
# pnpm 10 and earlier read neither pnpm_config_* nor anything but npm's own npm_config_* variables,
# which npm warns of on every command ("Unknown env config"): they get the same two from pnpm's global
# rc file in the home ($XDG_CONFIG_HOME/pnpm/rc), which npm never reads
PNPM_RC = ".config/pnpm/rc"

# What baton sets for git that the agent must not inherit: the askpass program hands out baton's token.
NOT_FOR_AGENTS = ("GIT_ASKPASS",)


def allowed(environ: Mapping[str, str], patterns: Iterable[str]) -> dict[str, str]:
    """The variables of ``environ`` whose names match one of ``patterns`` (shell patterns, case
    sensitive), never a ``BATON_*`` one."""
    match = _matcher(tuple(patterns))
    return {name: value for name, value in environ.items() if not name.startswith("BATON_") and match(name)}


@lru_cache(maxsize=64)
def _matcher(patterns: tuple[str, ...]) -> Callable[[str], re.Match[str] | None]:
    return re.compile("|".join(fnmatch.translate(p) for p in patterns) or "(?!)").match


def without_baton(path: str) -> str:
    """``path`` without baton's own virtualenv's ``bin`` (an operator who activated it before starting
    baton): the setup's and the agent's ``python`` and ``pip`` are the machine's or the project's,
    never baton's (a ``pip install`` would write into baton's installation)."""
    if sys.prefix == sys.base_prefix:
        return path
    own = os.path.realpath(os.path.join(sys.prefix, "bin"))
    kept = [p for p in path.split(os.pathsep) if p and os.path.realpath(p) != own]
    return os.pathsep.join(kept) or "/usr/local/bin:/usr/bin:/bin"


def agent_env(
    environ: Mapping[str, str],
    agent_names: Iterable[str],
    operator: tuple[str, ...],
    baton_sets: Mapping[str, str],
    home: Path,
    tmp: Path,
    caches: Path | None = None,
) -> dict[str, str]:
    """The agent's whole environment: ``environ`` filtered through the allow-list, then what baton sets
    (``baton_sets``: git identity, the adapter's launch variables, the run's ids), ``HOME`` and
    ``TMPDIR`` last (the version managers its ``PATH`` uses told their roots:
    :mod:`baton.sandbox.toolchains`); with ``caches`` (the repo's shared cache dir), the package
    managers' cache variables where the operator passed none."""
    env = allowed(environ, (*BASE_NAMES, *agent_names, *operator))
    env.update({k: v for k, v in baton_sets.items() if k not in NOT_FOR_AGENTS})
    env["PATH"] = without_baton(env.get("PATH") or "/usr/local/bin:/usr/bin:/bin")
    for name, value in toolchains(env["PATH"], environ).env.items():  # a manager's root, not under HOME
        env.setdefault(name, value)
    env["HOME"] = str(home)
    env["PATH"] = _with_home_bins(env["PATH"], home)
    for name in ("TMPDIR", "TMP", "TEMP"):
        env[name] = str(tmp)
    if caches is not None:
        for name, sub in CACHES.items():
            env.setdefault(name, str(caches / sub))
        for name, value in COPY_OUT.items():
            env.setdefault(name, value)
        env.setdefault("npm_config_logs_dir", str(home / ".npm" / "_logs"))  # one thread's, not the repo's
        pnpm_rc(env, home)
    return env


HOME_BINS = (".local/bin", "go/bin")  # where user installs put their commands (pip --user, go install)


def _with_home_bins(path: str, home: Path) -> str:
    """``path`` with the home's :data:`HOME_BINS` that exist after it (what a setup installed there is
    found, never before the machine's own commands)."""
    extra = [str(home / sub) for sub in HOME_BINS if (home / sub).is_dir()]
    kept = path.split(os.pathsep)
    return os.pathsep.join([*kept, *(e for e in extra if e not in kept)])


def pnpm_rc(env: Mapping[str, str], home: Path) -> None:
    """pnpm 10's and earlier's settings of :data:`CACHES` and :data:`COPY_OUT` (see :data:`PNPM_RC`),
    written into ``home`` unless the operator moved its configuration elsewhere (``XDG_CONFIG_HOME``)."""
    if "XDG_CONFIG_HOME" in env or "pnpm_config_store_dir" not in env:
        return
    text = (
        f"store-dir={env['pnpm_config_store_dir']}\n"
        f"package-import-method={env.get('pnpm_config_package_import_method', 'clone-or-copy')}\n"
    )
    # the home is the agent's: nothing is written through a link it made there (Unsafe is an OSError);
    # one it made unwritable leaves pnpm its defaults
    with contextlib.suppress(OSError):
        nofollow.write_beneath(home, PNPM_RC, text.encode(), 0o644)


def cache_dirs(env: Mapping[str, str], root: Path) -> tuple[Path, ...]:
    """The shared cache directories ``env`` names below ``root`` (``BATON_HOME/caches``): the ones
    :func:`agent_env` set, which the agent's walls grant (an operator's own, elsewhere, are not)."""
    base = os.path.realpath(root) + os.sep
    return tuple(
        Path(env[name])
        for name in CACHES
        if name in env and os.path.isabs(env[name]) and os.path.realpath(env[name]).startswith(base)
    )
