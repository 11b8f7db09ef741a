"""The ``config.toml`` of a Codex home (:mod:`baton.agents.codex`): the keys baton forces merged in
with tomlkit, so a user's other keys, comments and layout survive; the model providers it names read
back with tomllib (the environment variables and endpoints they need).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import tomlkit
import tomlkit.exceptions
import tomlkit.items
from tomlkit.container import Container

from baton.errors import AgentError
from baton.files import atomic_write_text

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def merge_toml(path: Path, forced: dict[str, Any]) -> bool:
    """Set ``forced`` (nested tables as dicts) in the TOML file at ``path``, keeping every other key,
    comment and the layout (tomlkit); written atomically, and only when something changed or the file
    is new. True if it was written."""
    if _already_set(path, forced):  # the common case, every run: tomllib reads ~10x faster than tomlkit
        return False
    doc, exists = _load_toml(path)
    changed = _merge_into(doc, forced)
    if changed or not exists:
        atomic_write_text(path, tomlkit.dumps(doc))
    return changed or not exists


def _already_set(path: Path, forced: dict[str, Any]) -> bool:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False  # missing or unreadable: the full path below writes it or says what is wrong
    return _contains(data, forced)


def _contains(data: dict[str, Any], forced: dict[str, Any]) -> bool:
    for key, value in forced.items():
        current = data.get(key)
        if isinstance(value, dict):
            if not isinstance(current, dict) or not _contains(current, value):
                return False
        elif current != value or type(current) is not type(value):
            return False
    return True


def provider_env_names(path: Path) -> list[str]:
    """The environment variables the model providers of the config.toml at ``path`` name (sorted);
    none when the file is missing or not TOML (Codex then says what is wrong)."""
    found: list[Any] = []
    for provider in providers(path):
        headers = provider.get("env_http_headers")
        found += [provider.get("env_key"), *(headers.values() if isinstance(headers, dict) else [])]
    # a variable's name, never a pattern, and never one of baton's own
    return sorted(
        {n for n in found if isinstance(n, str) and ENV_NAME.fullmatch(n) and not n.startswith("BATON_")}
    )


def providers(path: Path) -> list[dict[str, Any]]:
    """The model provider tables of the config.toml at ``path``; none when it is missing or not TOML."""
    providers = config(path).get("model_providers")
    return [p for p in providers.values() if isinstance(p, dict)] if isinstance(providers, dict) else []


def config(path: Path) -> dict[str, Any]:
    """The config.toml at ``path`` as plain data; empty when it is missing or not TOML."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {}


def read_toml(path: Path) -> dict[str, Any]:
    """The file as plain data (tests and the mock read what baton wrote); empty when it is missing."""
    return _load_toml(path)[0].unwrap()


def _load_toml(path: Path) -> tuple[tomlkit.TOMLDocument, bool]:
    """The parsed file and whether it exists; AgentError naming the file when it is unreadable."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return tomlkit.document(), False
    except (OSError, UnicodeDecodeError) as exc:
        raise AgentError(f"cannot read {path}: {exc}") from exc
    try:
        return tomlkit.parse(text), True
    except tomlkit.exceptions.TOMLKitError as exc:
        raise AgentError(f"{path} is not valid TOML ({exc}); fix or remove it") from exc


def _merge_into(table: Container | dict[str, Any], forced: dict[str, Any]) -> bool:
    changed = False
    for key, value in forced.items():
        current = table.get(key)
        if isinstance(value, dict):
            if not isinstance(current, dict):
                table[key] = current = tomlkit.table()
            changed = _merge_into(current, value) or changed
        else:
            plain = current.unwrap() if isinstance(current, tomlkit.items.Item) else current
            if plain != value or type(plain) is not type(value):  # 0 == False, but not for Codex
                table[key] = value
                changed = True
    return changed
