"""One settings object, resolved once: explicit overrides > environment (``BATON_*``) > config file >
defaults.

The config file is ``$BATON_HOME/config.toml`` (flat keys, the same names as the fields below; its
``[forge.*]`` and ``[repo.*]`` tables are :mod:`baton.forge.config`'s, ``[prune.*]``
:mod:`baton.housekeeping.prune`'s, skipped here). Parsing is
strict: an unknown key or a value of the wrong type is an error naming the key and where it came from,
never a silent default.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

from baton.errors import BadInput
from baton.models import Access, Confine, OnConflict, SyncHow


@dataclass(frozen=True)
class Settings:
    """Everything baton reads from its environment; built by :func:`load_settings`."""

    home: Path
    ttl_days: float = 30.0  # a session expires this long after its last use
    lease_ttl: float = 30.0  # seconds a lease lives without a heartbeat
    heartbeat: float = 5.0  # seconds between heartbeats of a running run
    retry_backoff: float = 2.0  # first retry waits this long, doubling each time
    kill_grace: float = 3.0  # seconds between SIGTERM and SIGKILL of a timed-out agent
    run_timeout: float = 3600.0  # seconds an agent may run (a run's --timeout wins); 0: no limit
    idle_timeout: float = 900.0  # seconds an agent may go without output before it is stopped; 0: no limit
    unreachable_grace: float = 20.0  # seconds the model API may not be reached before a turn fails; 0: off
    min_free: str = "100M"  # bytes or 100M/5G: runs refuse to start below it, /readyz fails, eviction
    disk_quota: str = ""  # bytes or 50G: above it, idle worktrees are evicted (LRU); empty: no quota
    key_disk: str = ""  # bytes or 5G: a run growing its key's files past it is stopped; empty: no budget
    run_memory: str = "8G"  # bytes or 4G: the memory of one run's processes (a cgroup's); 0: unbounded
    run_pids: int = 2048  # processes and threads one run may have at once (a cgroup's); 0: unbounded
    run_cpu: float = 0.0  # cores' worth of CPU one run may use (a cgroup's); 0: unbounded
    on_limit: str = (
        "wait"  # a spent usage quota: wait for its reset, or fallback:<agent> carries on meanwhile
    )
    quota_wait: float = 900.0  # seconds to wait for a spent quota whose reset the agent did not say
    quota_max_wait: float = 691200.0  # seconds at most to wait for a reset (8 days: a weekly window)
    cgroups: str = "auto"  # auto (a cgroup per run where the host allows: limits, nothing outlives it) or off
    concurrency: int = 4  # runs the service executes at once
    closed_grace_days: float = 7.0  # a closed session's snapshot and checkpoint are kept this long
    sweep_interval: float = 86400.0  # seconds between the service's sweeps (0: never)
    prune_kinds: str = "default"  # NAME,NAME: ignored untracked dirs pruned first under disk pressure
    forge_reconcile: float = 300.0  # seconds between the service's forge reconciles (0: webhooks only)
    public_url: str = ""  # where people reach `baton serve` (https://baton.example): links in forge comments
    store_url: str = ""  # empty: SQLite at $BATON_HOME/baton.db; postgresql+psycopg://... for many machines
    redis_url: str = ""  # redis://...: Redis leases, fast cancel flags (optional)
    broker_url: str = ""  # redis://... or amqp://...: runs go through Celery workers (baton worker)
    lease_backend: str = "sql"  # sql (the store) or redis (needs redis_url)
    queue: str = ""  # the Celery queue runs go to and workers read; empty: the store's own, baton.<store id>
    visibility_timeout: float = 86400.0  # seconds (Redis broker): longer than the longest run
    queued_notice: float = 30.0  # seconds until `baton submit --follow` says no worker took it; 0: never
    drain_timeout: float = 240.0  # seconds a stopping worker's turns run on, then are handed back; 0: wait
    claude_bin: str = ""  # empty: the claude-agent-sdk's bundled CLI, else `claude` on PATH
    codex_bin: str = ""  # empty: `codex` on PATH, else next to this Python
    gemini_bin: str = ""  # empty: `gemini` on PATH, else next to this Python
    copilot_bin: str = ""  # empty: `copilot` on PATH, else next to this Python (its native binary beside)
    opencode_bin: str = ""  # empty: `opencode` on PATH, else next to this Python (its native binary beside)
    sync: str = "off"  # off, merge or rebase: bring upstream changes into the worktree before each turn
    on_conflict: str = "stop"  # stop (outcome conflict, worktree untouched) or agent (markers + a note)
    git_user_name: str = "baton ({agent})"
    git_user_email: str = "{agent}@baton.invalid"
    log_level: str = "INFO"  # DEBUG, INFO, WARNING, ERROR or CRITICAL: baton serve's and baton worker's log
    log_format: str = "text"  # text (time level logger: message) or json (one object per line)
    access: str = "edit"  # read, edit or full: what an agent may do in its worktree (a run's --access wins)
    confine: str = "auto"  # auto, required or off: wall each agent into its key (Landlock)
    agent_env: str = ""  # NAME,NAME: more environment variables passed to agents (never BATON_* secrets)
    agent_ports: str = ""  # PORT,PORT: more TCP ports a confined agent may connect to
    mount_ns: str = "auto"  # auto (a walled agent gets its own mount namespace where the host allows) or off
    shared_caches: str = "on"  # on (a repo's threads share npm, pip, uv, cargo, Go caches) or off
    reflink: str = "auto"  # auto (reflinked worktrees where the file system clones files) or off
    warm: str = "auto"  # auto (`baton run` handed to a pre-imported server: baton.cli.warm) or off
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def min_free_bytes(self) -> int:
        return parse_size(self.min_free, "min_free")

    @property
    def disk_quota_bytes(self) -> int | None:
        return parse_size(self.disk_quota, "disk_quota") if self.disk_quota else None

    @property
    def run_memory_bytes(self) -> int | None:
        """The memory limit of one run; None: unbounded."""
        size = parse_size(self.run_memory, "run_memory") if self.run_memory else 0
        check_memory(size, "setting 'run_memory'")
        return size or None

    @property
    def key_disk_bytes(self) -> int | None:
        """The disk budget of one key (worktree, temp dir, agent home) during a run; None: no budget."""
        return parse_size(self.key_disk, "key_disk") if self.key_disk else None

    @property
    def agent_env_names(self) -> tuple[str, ...]:
        """The names of ``agent_env`` (comma-separated); BadInput for a ``BATON_*`` name (baton's own
        variables never reach agents) or one that is no variable name."""
        names = tuple(n.strip() for n in self.agent_env.split(",") if n.strip())
        for name in names:
            if name.upper().startswith("BATON_"):
                raise BadInput(f"setting agent_env names {name!r}: baton's own variables never reach agents")
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise BadInput(f"setting agent_env names {name!r}, which is no environment variable name")
        return names

    @property
    def agent_port_numbers(self) -> tuple[int, ...]:
        """The TCP ports of ``agent_ports`` (comma-separated); BadInput for anything but 1-65535."""
        ports = []
        for word in (w.strip() for w in self.agent_ports.split(",") if w.strip()):
            if not word.isdigit() or not 0 < int(word) < 65536:
                raise BadInput(f"setting agent_ports: {word!r} is not a TCP port (1-65535)")
            ports.append(int(word))
        return tuple(ports)

    @property
    def prune_kind_names(self) -> frozenset[str]:
        """The directory names of ``prune_kinds`` (comma-separated; ``default`` stands for
        :data:`PRUNE_KINDS`, ``none`` for nothing); BadInput for one that is no plain directory name."""
        names: set[str] = set()
        for word in (w.strip() for w in self.prune_kinds.split(",") if w.strip()):
            if word in ("default", "none"):
                names |= set(PRUNE_KINDS) if word == "default" else set()
            elif not prune_kind_ok(word):
                raise BadInput(f"setting prune_kinds names {word!r}, which is no plain directory name")
            else:
                names.add(word)
        return frozenset(names)

    @property
    def db_path(self) -> Path:
        return self.home / "baton.db"

    @property
    def resolved_store_url(self) -> str:
        return self.store_url or f"sqlite:///{self.db_path}"

    def with_(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")  # log_level, in any case
LOG_FORMATS = ("text", "json")
FORGE_TABLES = ("forge", "repo")  # config.toml's [forge.<name>] and [repo."owner/name"]: baton.forge.config
_FIELDS = {f.name: f for f in dataclasses.fields(Settings) if f.name not in ("home", "extra")}


PRUNE_TABLE = "prune"  # config.toml's [prune."<repo slug>"]: baton.housekeeping.prune
# the rebuildable kinds of ``prune_kinds = "default"``: ignored, untracked directories a build makes again
PRUNE_KINDS = (
    *("node_modules", "bower_components", ".next", ".nuxt", ".svelte-kit", ".angular", ".turbo"),
    *(".parcel-cache", ".venv", "venv", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"),
    *(".tox", ".nox", "target", ".gradle", ".dart_tool", "build", "dist"),
)


def prune_kind_ok(name: str) -> bool:
    """A kind is one plain directory name: no separator, glob, ``.``, ``..`` or ``.git``."""
    return bool(re.fullmatch(r"[A-Za-z0-9._+-]{1,100}", name)) and name not in (".", "..", ".git")


_UNITS = {"": 1, "B": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def parse_size(text: str, name: str = "size") -> int:
    """``1073741824``, ``512M``, ``50G`` (binary units; ``KiB``/``GB`` spellings too) as bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*", str(text), re.IGNORECASE)
    if not match:
        raise BadInput(f"setting {name!r} must be a size such as 1073741824, 512M or 50G, not {text!r}")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


MIN_MEMORY, MAX_MEMORY = 16 * 2**20, 2**50  # below 16 MiB no agent CLI starts; above 1 PiB, a typo


def check_memory(size: int, name: str) -> None:
    """A run's memory limit: 0 (none), or 16 MiB to 1 PiB (what a cgroup takes and a CLI survives)."""
    if size and not MIN_MEMORY <= size <= MAX_MEMORY:
        raise BadInput(f"{name} must be 0 (no limit) or from 16M to 1024T, not {size} bytes")


def format_size(n: int | None, missing: str = "-") -> str:
    """Bytes for people: ``512 B``, ``1.5 KiB``, ``20.0 GiB`` (``missing`` for None)."""
    if n is None:
        return missing
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024:
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def _coerce(name: str, value: Any, source: str) -> Any:
    kind = _FIELDS[name].type
    if kind == "int":
        if isinstance(value, bool) or not str(value).strip().isdigit():
            raise BadInput(f"setting {name!r} from {source} must be a whole number ≥ 0, not {value!r}")
        return int(value)
    try:
        if kind == "float":
            if isinstance(value, bool):
                raise ValueError
            number = float(value)
            if not number >= 0:  # also refuses NaN
                raise ValueError
            return number
    except (TypeError, ValueError):
        raise BadInput(
            f"setting {name!r} from {source} must be a non-negative number, not {value!r}"
        ) from None
    if not isinstance(value, str):
        raise BadInput(f"setting {name!r} from {source} must be a string, not {value!r}")
    return value


def load_settings(overrides: dict[str, Any] | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Resolve the settings; raises :class:`BadInput` naming a bad key or value."""
    env = os.environ if environ is None else environ
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    home_text = overrides.pop("home", None) or env.get("BATON_HOME") or platformdirs.user_data_dir("baton")
    home = Path(home_text).expanduser().absolute()
    values = _from_file(home / "config.toml")
    for name in _FIELDS:
        env_name = f"BATON_{name.upper()}"
        if env_name in env and env[env_name] != "":
            values[name] = _coerce(name, env[env_name], f"${env_name}")
    for name, value in overrides.items():
        if name not in _FIELDS:
            raise BadInput(f"unknown setting {name!r}")
        values[name] = _coerce(name, value, "the command line")
    settings = Settings(home=home, **values)
    # a malformed size, name or port fails here, named
    settings.min_free_bytes, settings.disk_quota_bytes, settings.key_disk_bytes  # noqa: B018
    settings.run_memory_bytes  # noqa: B018
    settings.agent_env_names, settings.agent_port_numbers  # noqa: B018
    settings.prune_kind_names  # noqa: B018
    _check_choice("sync", settings.sync, [m.value for m in SyncHow])
    _check_choice("on_conflict", settings.on_conflict, [c.value for c in OnConflict])
    if settings.log_level.upper() not in LOG_LEVELS:  # any case, as --loglevel takes it
        _check_choice("log_level", settings.log_level, list(LOG_LEVELS))
    _check_choice("log_format", settings.log_format, list(LOG_FORMATS))
    _check_choice("access", settings.access, [a.value for a in Access])
    _check_choice("confine", settings.confine, [c.value for c in Confine])
    _check_choice("reflink", settings.reflink, ["auto", "off"])
    _check_choice("warm", settings.warm, ["auto", "off"])
    _check_choice("shared_caches", settings.shared_caches, ["on", "off"])
    _check_choice("cgroups", settings.cgroups, ["auto", "off"])
    check_on_limit(settings.on_limit, "setting 'on_limit'")
    if settings.quota_wait < 1 or settings.quota_max_wait < settings.quota_wait:
        raise BadInput("settings quota_wait (at least 1 s) and quota_max_wait (at least quota_wait) disagree")
    _check_choice("mount_ns", settings.mount_ns, ["auto", "off"])
    return settings


def _from_file(config: Path) -> dict[str, Any]:
    """The settings of ``config.toml`` (none when there is no such file)."""
    if not config.is_file():
        return {}
    try:
        data = tomllib.loads(config.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(f"{config} is not valid TOML: {exc}") from exc
    values = {}
    for name, value in data.items():
        if name in (*FORGE_TABLES, PRUNE_TABLE) and isinstance(value, dict):
            continue  # baton.forge.config reads these, as strictly
        if name not in _FIELDS:
            raise BadInput(f"{config}: unknown setting {name!r} (known: {', '.join(sorted(_FIELDS))})")
        values[name] = _coerce(name, value, str(config))
    return values


def check_on_limit(value: str, what: str) -> str | None:
    """``on_limit``: ``wait`` or ``fallback:<agent>`` (an agent's name; whether it exists is checked
    when a run names it); the fallback agent's name, None for ``wait``."""
    if value == "wait":
        return None
    name = value.removeprefix("fallback:")
    if name == value or not re.fullmatch(r"[a-z][a-z0-9_-]{0,31}", name):
        raise BadInput(f"{what} must be 'wait' or 'fallback:<agent>' (as fallback:codex), not {value!r}")
    return name


def _check_choice(name: str, value: str, choices: list[str]) -> None:
    if value not in choices:
        raise BadInput(f"setting {name!r} must be one of {', '.join(choices)}, not {value!r}")
