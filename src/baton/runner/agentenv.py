"""The environment an agent process gets: an allow-list, never baton's own.

baton's environment holds secrets an agent must never see: the store's URL (with its password), the
broker's and Redis's URLs, the webhook secret, the git token, and the other agents' API keys. Prompts
come from strangers (issue bodies, PR comments), so a prompt injection that prints the environment
must find nothing of them. An agent gets only:

- what every program needs: ``PATH``, the locale, the terminal's kind, the time zone;
- how to reach the network: the proxy variables and the CA bundle variables;
- its own CLI's variables, as its adapter declares them (``Agent.env_names()``: credentials, base
  URLs, the CLI's switches), matched as shell patterns;
- the names an operator adds on purpose (``BATON_AGENT_ENV=NAME,NAME``: ``Settings.agent_env_names``);
- and what baton sets for it: the git identity, ``HOME`` and ``TMPDIR`` in the key's own space, the
  adapter's launch variables, ``BATON_RUN_ID`` and ``BATON_KEY`` (ids, not secrets).

git's ``GIT_ASKPASS`` is not among them: it hands out ``BATON_GIT_TOKEN``, which is baton's, not the
agent's (an agent that must push gets its own credentials from the operator, by name).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from pathlib import Path

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


def agent_env(
    environ: Mapping[str, str],
    agent_names: Iterable[str],
    operator: tuple[str, ...],
    baton_sets: Mapping[str, str],
    home: Path,
    tmp: Path,
) -> dict[str, str]:
    """The agent's whole environment (see the module docstring): ``environ`` filtered through the
    allow-list, then what baton sets (``baton_sets``: git identity, the adapter's launch variables,
    the run's ids), ``HOME`` and ``TMPDIR`` last."""
    env = allowed(environ, (*BASE_NAMES, *agent_names, *operator))
    env.update({k: v for k, v in baton_sets.items() if k not in NOT_FOR_AGENTS})
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env["HOME"] = str(home)
    for name in ("TMPDIR", "TMP", "TEMP"):
        env[name] = str(tmp)
    return env
