"""Which version of an agent CLI ran a turn, cheaply, and whether this baton was tested with it. Asking
costs 0.1-0.4 s (``claude --version``) to about 2 s (``gemini --version``), too much for every turn:
Claude reports its version in its own ``system/init`` event, and for the others :func:`cached_version`
asks the CLI once per binary, keyed by its :func:`fingerprint`. ``tested.json`` beside this module lists,
per agent, the CLI versions whose compatibility matrix passed (``make compat`` writes it with
``docs/compat.md``; the pinned version is always among them); ``baton doctor`` warns, and does not fail,
on a version that is not listed (:func:`tested_note`).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterable
from functools import cache
from importlib import resources
from pathlib import Path

from baton.files import make_private_dir, write_json

Probe = Callable[[tuple[str, ...]], str | None]
KEEP = 64  # fingerprints kept in the cache file: enough for every binary a machine has had lately
TESTED_FILE = "tested.json"


def fingerprint(command: Iterable[str]) -> str | None:
    """What identifies the installed CLI behind ``command``: each argument that is a file (the binary,
    a script run by an interpreter), by real path, inode, size, mtime and ctime. None when no argument
    is a file (nothing to key a cache on). npm gives every file of a package the same fixed mtime, so
    mtime and size alone could not tell two releases apart; an upgrade writes new files, which get a new
    inode and change time, so the fingerprint moves and the next turn asks the CLI again."""
    parts = []
    for arg in command:
        try:
            real = os.path.realpath(arg)
            st = os.stat(real)
        except (OSError, ValueError):
            continue
        if os.path.isfile(real):
            parts.append(f"{real}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}")
    return "|".join(parts) or None


def cached_version(command: tuple[str, ...], probe: Probe, cache_file: Path | None) -> str | None:
    """The CLI's version: from ``cache_file`` (a small JSON file under ``BATON_HOME/cache``) when this
    binary was asked before, else ``probe(command)`` (kept in the file when it answered). A cache that
    cannot be read or written is only a slower turn, never an error; a failed probe is not kept, so the
    next turn asks again."""
    known = known_version(command, cache_file)
    if known is not None:
        return known
    version = probe(command)
    if version is not None:
        remember_version(command, cache_file, version)
    return version


def known_version(command: tuple[str, ...], cache_file: Path | None) -> str | None:
    """The version remembered for this binary, without ever running it (None: not known yet)."""
    key = fingerprint(command)
    if cache_file is None or key is None:
        return None
    found = _read(cache_file).get(key)
    return found if isinstance(found, str) else None


def remember_version(command: tuple[str, ...], cache_file: Path | None, version: str) -> None:
    """Keep ``version`` for this binary (one the CLI reported itself, e.g. in Claude's init event)."""
    key = fingerprint(command)
    if cache_file is None or key is None:
        return
    known = _read(cache_file)
    if known.get(key) == version:
        return
    known.pop(key, None)
    known[key] = version
    kept = dict(list(known.items())[-KEEP:])
    with contextlib.suppress(OSError):  # a read-only or full disk: right, only not remembered
        make_private_dir(cache_file.parent)  # BATON_HOME 0700 when this cache is what makes it
        write_json(cache_file, kept)


def _read(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


@cache
def tested_versions() -> dict[str, tuple[str, ...]]:
    """Per agent, the CLI versions this baton's compatibility matrix passed with, pinned one first."""
    text = resources.files("baton.agents").joinpath(TESTED_FILE).read_text(encoding="utf-8")
    data = json.loads(text)
    return {
        agent: tuple(str(v) for v in entry.get("versions", []))
        for agent, entry in data.get("agents", {}).items()
        if isinstance(entry, dict)
    }


def pinned(agent: str) -> str | None:
    """The CLI version this baton pins for ``agent`` (None for an agent without a pin)."""
    versions = tested_versions().get(agent, ())
    return versions[0] if versions else None


def is_tested(agent: str, version: str) -> bool:
    return version in tested_versions().get(agent, ())


def tested_note(agent: str, version: str) -> str | None:
    """None for a tested version; otherwise what to tell the operator (``baton doctor`` warns)."""
    versions = tested_versions().get(agent)
    if not versions or version in versions:
        return None
    return (
        f"{agent} {version} is not a version this baton was tested with ({', '.join(versions)}; pinned "
        f"{versions[0]}): conversations may not resume across the change; see docs/compat.md"
    )
