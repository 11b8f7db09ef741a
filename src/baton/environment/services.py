"""The services a repository's tests need (a PostgreSQL, a Redis), as it declares them in
``.baton/services.toml`` (:func:`read_services`) or in its dev container's ``dockerComposeFile``
(:func:`compose_services`): read once into :class:`Service` values, every field checked. The files are
the agent's to write: what they say is data (an image name, variables, a command run inside the
service's own container), never a shell on baton's host; a bad field is an :class:`Unreadable` naming
the file and the field. Running them is :mod:`baton.environment.containers`'.
"""

from __future__ import annotations

import posixpath
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from baton.environment import SERVICES
from baton.environment.discover import Unreadable

MAX_SERVICES = 8
NAME = re.compile(r"[a-z][a-z0-9-]{0,30}\Z")
VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}\Z")
IMAGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@-]{0,254}\Z")
TEMPLATE = re.compile(r"\$\{([^}]*)\}")
PLACES = ("port", "host")  # what a value may name: ${port}, ${host}
HOST = "127.0.0.1"
# Variables a service may not give the agent or its setup: baton's own, the key's home and temp dir,
# the program path and loader, git's and ssh's, the proxies, and anything that points an agent CLI at
# another model API or carries a credential.
DENIED = re.compile(
    r"(BATON_.*|HOME|TMPDIR|TMP|TEMP|PATH|SHELL|USER|LOGNAME|LD_.*|GIT_.*|SSH_.*|NODE_OPTIONS|"
    r"PYTHON(PATH|STARTUP|HOME)|.*_PROXY|.*_BASE_URL|.*_API_KEY|.*_TOKEN|ANTHROPIC_.*|OPENAI_.*|"
    r"GEMINI_.*|GOOGLE_.*|CLAUDE_.*|CODEX_.*|AWS_.*|AZURE_.*)\Z",
    re.IGNORECASE,
)
FIELDS = {"image", "port", "port_env", "env", "data", "ready", "ready_timeout", "export"}


@dataclass(frozen=True)
class Service:
    """One service of a key: its container's image and environment, how it is told (``port_env``:
    host networking) or listens on (``port``: a published port) its port, where its data lives in the
    container (kept in the key's space), its readiness check, and what the agent and setup get."""

    name: str
    image: str
    source: str  # the file it was read from
    port: int | None = None  # the port it listens on in its container (published ports)
    port_env: str | None = None  # the variable that tells it the port to listen on (host networking)
    env: dict[str, str] = field(default_factory=dict)  # the container's, ${port} filled in
    data: str | None = None  # an absolute path in the container, kept in the key's space
    ready: tuple[str, ...] = ()  # run in the container until it exits 0 (else: a TCP connection)
    ready_timeout: float = 60.0
    export: dict[str, str] = field(default_factory=dict)  # the agent's and setup's, ${port} filled in


def fill(value: str, port: int) -> str:
    """A value with ``${port}`` and ``${host}`` filled in."""
    return TEMPLATE.sub(lambda m: str(port) if m[1] == "port" else HOST, value)


def read_services(text: str, source: str = SERVICES) -> tuple[Service, ...]:
    """The services of a ``services.toml``; :class:`Unreadable` for anything malformed."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise Unreadable(f"{source} is not TOML: {exc}") from exc
    unknown = sorted(set(data) - {"services"})
    if unknown:
        raise Unreadable(f"{source}: unknown table or key {unknown[0]!r} (only [services.NAME])")
    table = data.get("services", {})
    if not isinstance(table, dict):
        raise Unreadable(f"{source}: services must be a table of [services.NAME] tables")
    if len(table) > MAX_SERVICES:
        raise Unreadable(f"{source}: at most {MAX_SERVICES} services, not {len(table)}")
    return tuple(_service(source, name, body) for name, body in table.items())


def _service(source: str, name: str, body: Any) -> Service:
    where = f"{source}: services.{name}"
    if not NAME.match(name):
        raise Unreadable(f"{source}: service name {name!r} must be lower-case letters, digits and '-'")
    if not isinstance(body, dict):
        raise Unreadable(f"{where} must be a table")
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise Unreadable(f"{where}: unknown field {unknown[0]!r} (known: {', '.join(sorted(FIELDS))})")
    port, port_env = _port(where, body.get("port")), body.get("port_env")
    if port_env is not None:
        _variable(f"{where}.port_env", port_env, deny=False)
    env = _variables(f"{where}.env", body.get("env", {}), deny=False)
    if port is None and port_env is None and not any("${port}" in v for v in env.values()):
        why = "port (its port in the container), port_env or a ${port} in its env"
        raise Unreadable(f"{where}: needs {why}")
    return Service(
        name=name,
        image=_image(f"{where}.image", body.get("image")),
        source=source,
        port=port,
        port_env=port_env,
        env=env,
        data=_data(f"{where}.data", body.get("data")),
        ready=_ready(f"{where}.ready", body.get("ready", [])),
        ready_timeout=_timeout(f"{where}.ready_timeout", body.get("ready_timeout", 60)),
        export=_variables(f"{where}.export", body.get("export", {}), deny=True),
    )


def _image(where: str, value: Any) -> str:
    if not isinstance(value, str) or not IMAGE.match(value):
        raise Unreadable(f"{where} must be an image name (letters, digits, ._/:@-), not {value!r}")
    return value


def _port(where: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise Unreadable(f"{where}.port must be a TCP port (1-65535), not {value!r}")
    return value


def _variable(where: str, name: Any, deny: bool) -> str:
    if not isinstance(name, str) or not VARIABLE.match(name):
        raise Unreadable(f"{where}: {name!r} is not a variable name (letters, digits, _)")
    if deny and DENIED.match(name):
        raise Unreadable(f"{where}: {name} is not a variable a service may set (baton's or the agent's)")
    return name


def _value(where: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise Unreadable(f"{where} must be a string, not {type(value).__name__}")
    text = str(value)
    if not text.isprintable():
        raise Unreadable(f"{where} must be one printable line (no newline, no control character)")
    for place in TEMPLATE.findall(text):
        if place not in PLACES:
            raise Unreadable(f"{where}: ${{{place}}} is not one of ${{port}}, ${{host}}")
    return text


def _variables(where: str, table: Any, deny: bool) -> dict[str, str]:
    if not isinstance(table, dict):
        raise Unreadable(f'{where} must be a table of NAME = "value"')
    return {_variable(where, n, deny): _value(f"{where}.{n}", v) for n, v in table.items()}


def _data(where: str, value: Any) -> str | None:
    if value is None:
        return None
    path = PurePosixPath(value) if isinstance(value, str) else None
    if path is None or not path.is_absolute() or ".." in path.parts or re.search(r"[:,\s]", str(value)):
        raise Unreadable(
            f"{where} must be an absolute path in the container (no '..', ':' or ','), not {value!r}"
        )
    return str(path)


def _ready(where: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(a, str) and a.isprintable() for a in value):
        raise Unreadable(f"{where} must be a list of strings (a command run in the service's container)")
    if value and value[0].startswith("-"):
        raise Unreadable(f"{where}: the command may not start with '-'")
    return tuple(_value(f"{where}[{i}]", a) for i, a in enumerate(value))


def _timeout(where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 600:
        raise Unreadable(f"{where} must be seconds (more than 0, at most 600), not {value!r}")
    return float(value)


# -- a dev container's compose file ---------------------------------------------------------------------

COMPOSE_MAX = 256 * 1024


@dataclass(frozen=True)
class Compose:
    """The services a dev container's ``dockerComposeFile`` declares, and the ones set aside (why)."""

    services: tuple[Service, ...]
    skipped: tuple[str, ...] = ()


def compose_services(devcontainer: dict[str, Any], read: Callable[[str], bytes], base: str) -> Compose:
    """The services of the compose files a devcontainer.json names (``dockerComposeFile``, relative to
    its directory ``base``), but the dev container's own (``service``) and those ``runServices`` leaves
    out: each one's ``image``, ``environment`` and its first port (``ports``); given ``<NAME>_HOST``
    and ``<NAME>_PORT`` (its name upper-cased, ``-`` as ``_``). ``read`` reads a worktree file."""
    # lazy: cold CLI
    import yaml  # only for a repository whose dev container names a compose file

    found: dict[str, Service] = {}
    skipped: list[str] = []
    for path in compose_files(devcontainer, base):
        try:
            data = yaml.safe_load(read(path).decode("utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise Unreadable(f"{path} is not YAML: {exc}") from exc
        table = data.get("services") if isinstance(data, dict) else None
        for service, body in (table or {}).items() if isinstance(table, dict) else ():
            if service == devcontainer.get("service") or not _wanted(devcontainer, service):
                continue
            made = _compose_service(path, str(service), body)
            if isinstance(made, str):
                skipped.append(made)
            else:
                found[made.name] = made
    return Compose(tuple(found.values())[:MAX_SERVICES], tuple(skipped))


def compose_files(devcontainer: dict[str, Any], base: str) -> list[str]:
    """The worktree paths of the compose files a devcontainer.json in the directory ``base`` names."""
    files = devcontainer.get("dockerComposeFile")
    names = [files] if isinstance(files, str) else files if isinstance(files, list) else []
    return [posixpath.normpath(posixpath.join(base, str(name))) for name in names]  # "../x": the root's


def _wanted(devcontainer: dict[str, Any], service: str) -> bool:
    only = devcontainer.get("runServices")
    return not isinstance(only, list) or service in only


def _compose_service(path: str, name: str, body: Any) -> Service | str:
    """One compose service as a :class:`Service`, or why it is set aside."""
    if not isinstance(body, dict) or not isinstance(body.get("image"), str):
        return f"{name} in {path} (no image: a build is not run)"
    port = _compose_port(body.get("ports"))
    if port is None:
        return f"{name} in {path} (no port in its ports)"
    env = body.get("environment") or {}
    if isinstance(env, list):
        env = dict(str(item).partition("=")[::2] for item in env)
    if not isinstance(env, dict) or any("$" in str(v) for v in env.values()):
        return f"{name} in {path} (its environment is not plain NAME: value pairs)"
    key = re.sub(r"[^A-Za-z0-9]", "_", name).upper()
    text = {
        "image": body["image"],
        "port": port,
        "env": {str(k): "" if v is None else v for k, v in env.items()},
        "export": {f"{key}_HOST": "${host}", f"{key}_PORT": "${port}"},
    }
    try:
        return _service(path, name.lower().replace("_", "-"), text)
    except Unreadable as exc:
        return f"{name} in {path} ({exc})"


def _compose_port(ports: Any) -> int | None:
    """The container port of a service's first ``ports`` entry (``5432``, ``"127.0.0.1:5432:5432"``,
    ``"5432/tcp"``, ``{target: 5432}``)."""
    first = ports[0] if isinstance(ports, list) and ports else None
    if isinstance(first, dict):
        first = first.get("target")
    text = str(first).rpartition(":")[2].partition("/")[0] if first is not None else ""
    return int(text) if text.isdigit() and 0 < int(text) < 65536 else None
