"""``baton doctor``: is this machine set up so conversations survive? Each check is ``ok``, ``warn``
(works, but something a person should know) or ``error`` (baton's promises do not hold here: doctor
exits 1). :func:`run_doctor` makes them in order: the data dir's filesystem, who else can read it
(:mod:`baton.housekeeping.privacy`; ``baton doctor --fix`` is :func:`fix`), its free space, worktrees,
git, the store, the fleet's checks when a broker or Redis is configured (:mod:`baton.fleet.checks`),
transcripts that no stored session owns, spent usage quotas, confinement and containment, and each
agent (its CLI and version, its home, its retention, how it authenticates under baton).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from baton import allowlist
from baton.agents import AGENTS, get_agent
from baton.agents.acp import AcpAgent
from baton.agents.base import Agent
from baton.agents.versions import tested_note
from baton.environment import servicerun
from baton.errors import BatonError
from baton.housekeeping import privacy
from baton.housekeeping.quotas import held_lines
from baton.install import agents_hint
from baton.models import SessionRecord
from baton.sandbox import contain, container, egress, toolchains, trywalls
from baton.sandbox.agentenv import without_baton
from baton.sandbox.confine import describe
from baton.sandbox.walls import SYSTEM
from baton.settings import Settings
from baton.store import store_for
from baton.store.migrations import MIGRATIONS
from baton.workspace.cow import reflink
from baton.workspace.keyspace import key_spaces
from baton.workspace.workdirs import run_git

MIN_GIT = (2, 25)  # worktrees (2.5), --filter=blob:none (2.19), git restore (2.23), stable since 2.25
VOLATILE_FS = {"tmpfs", "ramfs"}
MIN_FREE = 1 << 30  # below 1 GiB free, worktrees and snapshots soon fail with "disk full"
# Where each CLI keeps its transcripts, inside its home (the adapters find one session's files; doctor
# needs all of them, to spot the ones no session owns).
TRANSCRIPT_GLOBS = {
    "claude": "projects/*/*.jsonl",
    "codex": "sessions/*/*/*/rollout-*.jsonl",
    "gemini": "**/chats/session-*.json*",
}
REAL_AGENTS = [a for a in AGENTS if a != "fake"]


class CheckStatus(StrEnum):
    """How one doctor check came out."""

    OK = "ok"  # fine
    WARN = "warn"  # works, but something will bite (no credentials, little free space)
    ERROR = "error"  # conversations would not survive here: doctor exits 1


@dataclass
class Check:
    name: str
    status: CheckStatus
    detail: str


def mount_of(path: Path, mounts_file: Path = Path("/proc/mounts")) -> tuple[str, str]:
    """(mount point, filesystem type) of the mount holding ``path`` (its nearest existing parent)."""
    probe, rest = path.absolute(), Path()
    while not probe.exists() and probe != probe.parent:
        probe, rest = probe.parent, Path(probe.name) / rest
    real = str(probe.resolve() / rest)
    best = ("/", "unknown")
    try:
        lines = mounts_file.read_text().splitlines()
    except OSError:
        return best
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        inside = real == point or real.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best[0]):
            best = (point, fields[2])
    return best


def check_home(settings: Settings) -> Check:
    point, fstype = mount_of(settings.home)
    where = f"{settings.home} is on {fstype} (mounted at {point})"
    if fstype in VOLATILE_FS:
        return Check(
            "data dir persistent",
            CheckStatus.ERROR,
            f"{where}: it is lost on reboot; put BATON_HOME on a volume",
        )
    if fstype == "overlay" and point == "/":
        return Check(
            "data dir persistent",
            CheckStatus.WARN,
            f"{where}: a container's writable layer is lost on redeploy; mount a volume for BATON_HOME",
        )
    return Check("data dir persistent", CheckStatus.OK, where)


def check_private(settings: Settings) -> Check:
    """A warning when other users can reach what BATON_HOME holds (:mod:`baton.housekeeping.privacy`)."""
    private, detail = privacy.describe(settings)
    return Check("data dir private", CheckStatus.OK if private else CheckStatus.WARN, detail)


def fix(settings: Settings) -> list[privacy.Tightened]:
    """``baton doctor --fix``: the group and other permissions taken off BATON_HOME, the store's files
    and the logs (:func:`baton.housekeeping.privacy.tighten`); what it changed, or could not."""
    return privacy.tighten(settings)


def check_worktrees(settings: Settings) -> Check:
    """Whether new worktrees are reflinked copies of a pristine checkout (BATON_HOME's volume clones
    files) or full checkouts: never a failure, only what the disk will hold."""
    name = "copy-on-write worktrees"
    if settings.reflink == "off":
        return Check(name, CheckStatus.OK, "off (BATON_REFLINK=off): every worktree is a full checkout")
    try:
        clones = reflink.supported(settings.home, settings.home)
    except OSError as exc:
        return Check(name, CheckStatus.WARN, f"not checked ({exc}): worktrees are full checkouts")
    if clones:
        shared = "keys of one commit share its blocks"
        return Check(name, CheckStatus.OK, f"{settings.home}'s volume clones files: {shared}")
    return Check(
        name,
        CheckStatus.OK,
        f"{settings.home}'s volume does not clone files: every worktree is a full checkout "
        "(on XFS or btrfs, keys of one commit would share its blocks)",
    )


def check_git() -> Check:
    try:
        text = run_git(["--version"])
    except BatonError as exc:
        return Check("git", CheckStatus.ERROR, str(exc))
    match = re.search(r"(\d+)\.(\d+)", text)
    version = (int(match.group(1)), int(match.group(2))) if match else (0, 0)
    if version < MIN_GIT:
        return Check("git", CheckStatus.ERROR, f"{text}: baton needs git ≥ {MIN_GIT[0]}.{MIN_GIT[1]}")
    return Check("git", CheckStatus.OK, f"{text} (worktrees, partial clone, restore)")


def check_store(settings: Settings) -> Check:
    try:
        store = store_for(settings)
    except BatonError as exc:
        return Check("store", CheckStatus.ERROR, str(exc))
    try:
        version = getattr(store, "schema_version", lambda: -1)()
    finally:
        store.close()
    latest = MIGRATIONS[-1][0]
    if version != latest:
        return Check("store", CheckStatus.ERROR, f"schema version {version}, expected {latest}")
    return Check(
        "store",
        CheckStatus.OK,
        f"{settings.resolved_store_url.split('://')[0]} reachable, schema version {version}",
    )


def check_agents(settings: Settings, environ: Mapping[str, str]) -> list[Check]:
    checks: list[Check] = []
    found = 0
    for name in REAL_AGENTS:
        try:
            said = check_agent(name, settings, environ)
        except BatonError as exc:
            said = [Check(f"{name} CLI", CheckStatus.WARN, str(exc))]
        except Exception as exc:  # doctor reports every agent: a bug in one check is a line, not a traceback
            said = [
                Check(f"{name} CLI", CheckStatus.ERROR, f"could not be checked: {type(exc).__name__}: {exc}")
            ]
        found += any(check.name == f"{name} home" for check in said)  # only a CLI with a version has one
        checks.extend(said)
    if not found:
        checks.insert(
            0, Check("agents", CheckStatus.ERROR, f"no agent CLI found: {agents_hint()}, or set BATON_*_BIN")
        )
    return checks


def check_agent(name: str, settings: Settings, environ: Mapping[str, str]) -> list[Check]:
    """One agent's checks: its CLI and version, its home inside BATON_HOME, its retention, its
    credentials. A CLI that is missing or reports no version gets one warning and nothing else."""
    agent = get_agent(name, settings)
    command = agent.command
    version = agent.version()
    if version is None:
        return [Check(f"{name} CLI", CheckStatus.WARN, f"{' '.join(command)} did not report a version")]
    untested = tested_note(name, version)
    said = untested or f"{version}, a version this baton was tested with"
    checks = [
        Check(
            f"{name} CLI", CheckStatus.WARN if untested else CheckStatus.OK, f"{said} ({' '.join(command)})"
        )
    ]
    home = settings.home.resolve() if settings.home.exists() else settings.home
    agent_home = agent.home.resolve() if agent.home.exists() else agent.home
    inside = home in agent_home.parents
    detail = f"{agent_home}" + ("" if inside else f" is outside BATON_HOME {home}")
    checks.append(Check(f"{name} home", CheckStatus.OK if inside else CheckStatus.ERROR, detail))
    if agent.home.exists():
        ok, detail = agent.retention(settings.ttl_days)
    else:
        ok, detail = True, "set on first run (home not created yet)"
    checks.append(Check(f"{name} retention", CheckStatus.OK if ok else CheckStatus.ERROR, detail))
    checks.append(check_credentials(agent, environ))
    model = agent.model_check(environ) if isinstance(agent, AcpAgent) else None
    if model is not None:  # what an ACP agent needs to reach a model, offline too
        checks.append(Check(f"{name} model", CheckStatus.OK if model[0] else CheckStatus.WARN, model[1]))
    return checks


def check_free_space(settings: Settings, minimum: int = MIN_FREE) -> Check:
    """Free bytes on the volume that holds ``BATON_HOME`` (its nearest existing parent)."""
    probe = settings.home.absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    detail = f"{free / (1 << 30):.1f} GiB free on the volume of {settings.home}"
    if free < minimum:
        return Check("free space", CheckStatus.WARN, f"{detail}: runs fail with 'disk full' when it runs out")
    return Check("free space", CheckStatus.OK, detail)


def check_credentials(agent: Agent, environ: Mapping[str, str]) -> Check:
    """Warn when nothing the agent authenticates with is here (:meth:`~baton.agents.base.Agent.auth`,
    which the runner also checks): under baton the agent's home is relocated, so a login made with the
    plain CLI (``~/.claude``, ``~/.codex``) is not seen."""
    auth = agent.auth()
    found = auth.found(environ)
    if found or not auth.needed:
        return Check(f"{agent.name} credentials", CheckStatus.OK, f"{found} set" if found else "not needed")
    hint = f" ({auth.hint})" if auth.hint else ""
    return Check(
        f"{agent.name} credentials",
        CheckStatus.WARN,
        f"none of {', '.join(auth.names)} is set{hint}: runs are refused as not authenticated (baton "
        "relocates the agent home, so a login in your own home is not used)",
    )


def check_orphans(settings: Settings) -> Check:
    """Transcripts that no stored session owns: in a key's home, those of no conversation of that key
    (all of them for a key the store does not know); in the agents' base homes (from before key
    spaces), those with an id no session has."""
    try:
        store = store_for(settings)
    except BatonError as exc:
        return Check("orphan transcripts", CheckStatus.WARN, f"not checked: {exc}")
    try:
        sessions = store.list_sessions()
    finally:
        store.close()
    orphans = 0
    for name, pattern in TRANSCRIPT_GLOBS.items():
        base = get_agent(name, settings)
        orphans += _orphans(base, pattern, [s for s in sessions if s.agent == name])
        by_key = {(s.repo, s.thread): s for s in sessions if s.agent == name}
        for space in key_spaces(settings, name):
            session = by_key.get((space.repo, space.thread))
            orphans += _orphans(base.with_home(space.home), pattern, [session] if session else [])
    if orphans:
        return Check(
            "orphan transcripts",
            CheckStatus.WARN,
            f"{orphans} transcripts on disk belong to no session: the store was deleted or replaced "
            f"(runs of those keys start new conversations; `baton sessions import` restores an export)",
        )
    return Check("orphan transcripts", CheckStatus.OK, "every transcript on disk belongs to a session")


def _orphans(agent: Agent, pattern: str, sessions: list[SessionRecord]) -> int:
    """Transcripts in ``agent``'s home that belong to none of ``sessions``' conversations (nor to the
    conversation a fork was copied from): the base home against every session of the agent, a key's
    home against the key's own session."""
    files = _transcripts(agent.home, pattern)
    if not files:
        return 0
    ids = {s.agent_session_id for s in sessions} | {(s.origin or {}).get("session_id") for s in sessions}
    owned = {
        path.resolve()
        for sid in ids
        if isinstance(sid, str) and sid
        for path in [*agent.transcript_files(sid), *agent.leftover_files(sid)]
    }
    return sum(p.resolve() not in owned for p in files)


def _transcripts(home: Path, pattern: str) -> list[Path]:
    return [p for p in home.glob(pattern) if p.is_file() and p.stat().st_size]


def run_doctor(
    settings: Settings, environ: Mapping[str, str] | None = None, fleet: Sequence[Check] = ()
) -> list[Check]:
    """Every check, in order; ``fleet``: the fleet's checks (:func:`baton.fleet.checks.fleet_checks`,
    a layer above this one: the broker and Redis answer, the workers of this store seen recently),
    shown after the store's.

    The checks: ``BATON_HOME`` on a persistent filesystem (tmpfs/ramfs is an error, an overlay root, a
    container's writable layer, a warning); private to baton's user (a warning when its group or every
    local user can reach it, or a SQLite store outside it); free space on its volume; whether worktrees
    are reflinked; git new enough for worktrees, partial clone and ``git restore``; the store reachable
    and migrated; agent transcripts on disk that no stored session owns (in the key spaces of keys the
    store does not know, or in a base home: the store was deleted or replaced, and the next run of those
    keys would start a new conversation); the usage quotas spent (a warning per credential whose
    breaker holds: its runs wait until the reset); how agents are walled in and runs contained; and per
    agent, its CLI found and its version, its home inside ``BATON_HOME``, its own retention at least
    baton's TTL, and how it authenticates under baton (which relocates the agent homes, so a login in
    ``~/.claude`` is not used: an API key or token in the environment is)."""
    environ = os.environ if environ is None else environ
    agents = check_agents(settings, environ)
    return [
        check_home(settings),
        check_private(settings),
        check_free_space(settings),
        check_worktrees(settings),
        check_git(),
        check_store(settings),
        *fleet,
        check_orphans(settings),
        *check_quotas(settings),
        check_confinement(settings),
        check_egress(settings),
        check_model_gateway(settings, environ),
        check_containment(settings),
        check_toolchains(environ, settings),
        check_services(settings),
        *agents,
    ]


def check_quotas(settings: Settings, now: float | None = None) -> list[Check]:
    """A warning per credential whose usage quota is spent (its breaker holds: its runs wait until the
    reset, :mod:`baton.housekeeping.quotas`), or one line saying none is."""
    try:
        store = store_for(settings)
    except BatonError as exc:
        return [Check("usage quotas", CheckStatus.WARN, f"not checked: {exc}")]
    try:
        held = held_lines(store, now)
    finally:
        store.close()
    if not held:
        return [Check("usage quotas", CheckStatus.OK, "none spent")]
    hint = "; its runs wait until then (`baton quota clear` if it was raised)"
    return [Check("usage quota", CheckStatus.WARN, line + hint) for line in held]


def check_confinement(settings: Settings) -> Check:
    """How agents are walled in (BATON_CONFINE and the kernel's Landlock): an error when ``required``
    cannot be met, a warning when agents run unconfined."""
    found = describe(settings)
    status = CheckStatus.OK if found.walled else CheckStatus.WARN if found.ok else CheckStatus.ERROR
    return Check("agent confinement", status, found.detail)


def check_egress(settings: Settings) -> Check:
    """Where a walled agent may connect (the setting ``egress``; a forge repository's or a run's wins):
    a warning, said loudly, while it is ``open``, or where no network namespace holds the agent."""
    policy = allowlist.parse(settings.egress)
    if policy.open:
        return Check(
            "agent egress",
            CheckStatus.WARN,
            "OPEN (egress = open): a walled agent connects to any host on ports 80, 443, 22, 9418 and its "
            "base URLs' — it can send what it reads anywhere; remove the setting (the default: registries, "
            "remote) or list hosts to let it out through baton's proxy only",
        )
    how = egress.describe(settings.net_ns, describe(settings).walled)
    status = CheckStatus.OK if how.startswith("own network namespace") else CheckStatus.WARN
    if settings.environment == "container":
        said, held = _container_egress(settings)
        how, status = f"{how}; {said}", status if held else CheckStatus.WARN
    return Check("agent egress", status, f"allow-list {policy.text}: {how}")


def _container_egress(settings: Settings) -> tuple[str, bool]:
    """What holds a container run's allow-list here, and whether one does: the agent's own network
    namespace, which only podman as root puts its container in (baton.sandbox.container)."""
    why = container.netns_refusal(settings.container_engine)
    if why is None and not egress.applies(settings.net_ns):
        why = egress.no_namespace(settings.net_ns)
    if why is not None:
        return f"environment = container: a container run is refused under an allow-list ({why})", False
    return "environment = container: its container in the agent's own network namespace too", True


def check_model_gateway(settings: Settings, environ: Mapping[str, str]) -> Check:
    """Whether each agent's model key stays outside its walls (``model_gateway``): per agent, the key
    baton's model gateway stands in for, or why the agent keeps its own (a login, a cloud's
    credentials, an agent the gateway does not cover yet); a warning, said loudly, when it is off, or
    when one keeps its own."""
    if settings.model_gateway != "on":
        off = (
            "OFF (model_gateway = off): each agent's model key is in its environment — an agent can read "
            "it and spend it past its caps; remove the setting to keep the key outside its walls"
        )
        return Check("model gateway", CheckStatus.WARN, off)
    said = [_gateway_says(name, settings, environ) for name in REAL_AGENTS]
    found = [(text, kept) for text, kept in said if text]
    detail = "; ".join(text for text, _ in found) or "no agent has credentials here"
    status = CheckStatus.WARN if any(kept for _, kept in found) else CheckStatus.OK
    return Check("model gateway", status, f"on: {detail}")


def _gateway_says(name: str, settings: Settings, environ: Mapping[str, str]) -> tuple[str, bool]:
    """What the gateway does for agent ``name`` (``""``: it has no credential here), and whether the
    agent keeps its own credential inside its walls."""
    try:
        agent = get_agent(name, settings)
        key = agent.gateway_key(environ)
        own = agent.auth().found(environ)
        upstream = settings.gateway_upstream(name) or agent.model_url(environ)
        found = agent.credential(environ) if key is not None and key.secret else None
    except BatonError as exc:
        return f"{name}: not checked ({exc})", False
    held = next((v for v, _ in key.keys if environ.get(v)), None) if key is not None else None
    held = found[0] if found is not None else held
    if held is not None and upstream is not None:
        return f"{name}: {held} held by the gateway (to {_origin(upstream)})", False
    if own is None:
        return "", False
    why = getattr(agent, "gateway_hint", "") or "a login, or a key the gateway cannot stand in for"
    return f"{name}: keeps its own credential ({own}: {why})", True


def _origin(url: str) -> str:
    """Where a base URL points, for people: its scheme, host and port (never a path's secrets)."""
    try:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    except ValueError:
        return "an unreadable URL"


def check_containment(settings: Settings) -> Check:
    """Whether each run gets a control group here (nothing outlives it; its memory, process and CPU
    limits), or only the subreaper: a warning, since then only the timeout bounds a run."""
    grouped, detail = contain.describe(settings)
    return Check("run containment", CheckStatus.OK if grouped else CheckStatus.WARN, detail)


def check_toolchains(environ: Mapping[str, str], settings: Settings | None = None) -> Check:
    """The toolchains an agent and a setup find on their ``PATH`` (baton's virtualenv taken off it) and
    their versions, each asked inside the walls where they apply (:mod:`baton.sandbox.trywalls`); a
    warning naming each that fails there, and each the walls would not open
    (:mod:`baton.sandbox.toolchains`)."""
    path = without_baton(environ.get("PATH") or "/usr/local/bin:/usr/bin:/bin")
    with contextlib.ExitStack() as stack:
        inside = stack.enter_context(trywalls.walled(settings)) if settings is not None else None
        tools = toolchains.seen(path, environ, SYSTEM, inside[0] if inside else None)
    said = "; ".join(f"{t.name}: {t.version}" for t in tools if t.works)
    said = said or "none of python3, node, npm, cargo, go, java answered"
    where = "inside the walls" if inside else "here (the walls do not apply)"
    failing = [f"{t.name} ({t.path}: {t.version})" for t in tools if not t.works]
    outside = [f"{t.name} ({t.path})" for t in tools if not t.walled]
    warned = ([f"fails {where}: {', '.join(failing)}"] if failing else []) + (
        [f"outside the walls: {', '.join(outside)}"] if outside else []
    )
    if warned:
        return Check("toolchains", CheckStatus.WARN, f"{said} ({where}); {'; '.join(warned)}")
    return Check("toolchains", CheckStatus.OK, f"{said} ({where})")


def check_services(settings: Settings) -> Check:
    """What starts the services a repository declares (``.baton/services.toml``): the container engine
    found, or a warning that a repository's services are skipped here (its turns run without them)."""
    found = servicerun.engine(settings)
    if found is not None:
        how = settings.services_network
        idle = f"stopped after {settings.services_idle_minutes:g} min idle"
        return Check("services", CheckStatus.OK, f"{found} (network {how}; per key, {idle})")
    if settings.services_engine == "off":
        said = "off (services_engine = off): a repository's services are skipped"
        return Check("services", CheckStatus.OK, said)
    wanted = "podman or docker" if settings.services_engine == "auto" else settings.services_engine
    return Check(
        "services",
        CheckStatus.WARN,
        f"no {wanted} on PATH: a repository's services (.baton/services.toml) are skipped, its turns run "
        "without them, saying so (apt-get install podman runc)",
    )


def to_json(checks: list[Check], settings: Settings) -> dict[str, Any]:
    return {
        "ok": all(c.status != CheckStatus.ERROR for c in checks),
        "baton_home": str(settings.home),
        "checks": [asdict(c) for c in checks],
    }
