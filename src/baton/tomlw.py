"""A small TOML writer for the config files baton manages (Codex's ``config.toml``), and the reader
that goes with it.

``tomllib`` reads TOML but the standard library cannot write it, and baton needs only the plain types
a config holds, so :func:`dumps_toml` writes exactly what :func:`tomllib.loads` produces: tables,
arrays (of tables), strings, numbers, booleans and dates, with no third-party dependency.
:func:`write_toml` replaces the file atomically (:func:`baton.files.atomic_write_text`), so an agent
starting meanwhile reads either the old config or the new one. Errors are
:class:`~baton.errors.AgentError` and name the file: the config belongs to an agent's home.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import tomllib
from pathlib import Path
from typing import Any

from baton.errors import AgentError
from baton.files import atomic_write_text


def read_toml(path: Path) -> dict[str, Any]:
    """The file as a dict; empty when it does not exist."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise AgentError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise AgentError(f"{path} is not valid TOML ({exc}); fix or remove it") from exc


def write_toml(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as TOML atomically (a temp file in the same directory, then rename)."""
    atomic_write_text(path, dumps_toml(data))


def dumps_toml(data: dict[str, Any]) -> str:
    """TOML for the types ``tomllib`` produces: tables, arrays (of tables), strings, numbers,
    booleans and dates. Plain keys first, then sub-tables as ``[a.b]``, then ``[[a.b]]``."""
    lines: list[str] = []
    _table(data, [], lines)
    return "\n".join(lines).lstrip("\n") + "\n"


_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else _string(key)


def _string(value: str) -> str:
    escaped = json.dumps(value, ensure_ascii=False)  # JSON escapes are valid in TOML basic strings
    return escaped.replace("\x7f", "\\u007f")


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _table(table: dict[str, Any], prefix: list[str], lines: list[str]) -> None:
    scalars = {k: v for k, v in table.items() if not isinstance(v, dict) and not _is_table_array(v)}
    for key, value in scalars.items():
        lines.append(f"{_key(key)} = {_value(value)}")
    for key, value in table.items():
        if isinstance(value, dict):
            path = [*prefix, key]
            subs = [v for v in value.values() if isinstance(v, dict) or _is_table_array(v)]
            if not value or len(subs) < len(value):  # a header only when the table has plain keys
                lines += ["", f"[{'.'.join(_key(k) for k in path)}]"]
            _table(value, path, lines)
    for key, value in table.items():
        if _is_table_array(value):
            path = [*prefix, key]
            for item in value:
                lines += ["", f"[[{'.'.join(_key(k) for k in path)}]]"]
                _table(item, path, lines)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + "}"
    raise AgentError(f"cannot write {type(value).__name__} {value!r} to TOML")
