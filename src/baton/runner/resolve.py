"""A request checked once, before anything is written: :func:`check_request` and what it returns.

Everything about a request that needs neither the store nor the lease is decided here, once, into a
frozen :class:`Resolved`: the branch in short form, the key, the agent, the sync and access defaults
from the settings, the instruction measured against the agent CLI's limit, the agent's credentials
present. Later steps read these values and never decide them again. Refusals that need the key's
session (a branch that differs from it, a fork source, a hand-off source) wait for the lease
(:mod:`baton.runner.prepare`): an earlier run of the key may still change them.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass

from baton import allowlist
from baton.agents import AGENTS, Agent, get_agent
from baton.agents.base import check_limit, check_text
from baton.caps.model import NAMES, Measure, check_cap
from baton.errors import BadInput, GitError
from baton.keys import Key, make_key, validate_thread
from baton.models import Access, Mode, OnConflict, SyncHow
from baton.runner.request import RunRequest
from baton.sandbox.enclosure import Limits, check_confine, limits_of
from baton.settings import Settings, check_memory, check_on_limit, parse_size
from baton.sync.handoff import check_source_agent
from baton.workspace.keyspace import agent_for
from baton.workspace.workdirs import run_git

MAX_SECONDS = 7 * 86400.0  # a timeout or a wait: a week at most (and never infinite or NaN)
MAX_RETRIES = 100


@dataclass(frozen=True)
class Resolved:
    """A request as :func:`check_request` decided it."""

    request: RunRequest  # branch in short form; sync and on_conflict filled in (a job stores it so)
    key: Key
    agent: Agent
    sync: SyncHow  # the request's, else the setting's
    on_conflict: OnConflict  # the request's, else the setting's
    instruction: str  # context and prompt as the agent gets them, checked against its CLI's limit
    access: Access  # the request's, else the setting's
    timeout: float | None  # wall seconds: the request's, else the setting run_timeout (None: no limit)
    idle_timeout: float | None  # seconds without output: the setting idle_timeout (None: no limit)
    limits: Limits  # the run's memory, processes and CPU: the request's, else the settings'


def check_request(
    request: RunRequest,
    settings: Settings,
    credentials: bool = True,
    environ: Mapping[str, str] | None = None,
) -> Resolved:
    """Everything about a request that needs neither the store nor the lease (nothing is written);
    BadInput for anything wrong. The service calls it before it stores a job, so a bad request is
    refused with the CLI's message. ``credentials``: the agent runs here, with this environment
    (``environ``, default ``os.environ``), so it must hold the agent's credentials
    (:func:`check_credentials`); a service that queues for workers elsewhere leaves that to them."""
    request = validate(request)
    sync, on_conflict = (
        request.sync or SyncHow(settings.sync),
        request.on_conflict or OnConflict(settings.on_conflict),
    )
    access = request.access or Access(settings.access)
    on_limit = request.on_limit or settings.on_limit
    _check_fallback(request.agent, on_limit)
    request = dataclasses.replace(
        request, sync=sync, on_conflict=on_conflict, access=access, on_limit=on_limit
    )
    key = make_key(request.agent, request.repo, request.thread, AGENTS)
    agent = agent_for(key, settings)  # the key's own home (nothing is created here)
    if request.mode != Mode.AUTO and not agent.capabilities.supports(request.mode):
        raise BadInput(f"agent {key.agent!r} cannot run in mode {request.mode.value!r}")
    agent.command  # noqa: B018 -- a missing CLI is an error now, before anything is written
    if credentials:
        check_credentials(key.agent, settings, os.environ if environ is None else environ)
    check_confine(settings)  # BATON_CONFINE=required where agents cannot be walled in: refused now
    if request.egress is not None:
        allowlist.parse(request.egress, "egress")  # a malformed allow-list is refused now, named
    instruction = "\n".join(filter(None, [request.context, request.prompt]))
    check_limit(agent.name, agent.capabilities, instruction)  # its text was checked in validate()
    timeout = request.timeout or settings.run_timeout or None
    idle = settings.idle_timeout or None
    memory = parse_size(request.memory, "memory") if request.memory is not None else None
    limits = limits_of(settings, memory, request.pids, request.cpu)
    return Resolved(request, key, agent, sync, on_conflict, instruction, access, timeout, idle, limits)


def _check_fallback(agent: str, on_limit: str) -> None:
    """``on_limit``: ``wait``, or ``fallback:`` another known agent."""
    fallback = check_on_limit(on_limit, "on_limit")
    if fallback is not None and (fallback not in AGENTS or fallback == agent):
        others = ", ".join(sorted(a for a in AGENTS if a != agent))
        raise BadInput(f"on_limit names {fallback!r}: the fallback must be another agent ({others})")


def check_credentials(agent: str, settings: Settings, environ: Mapping[str, str]) -> None:
    """BadInput, naming what to set, when none of the agent's credentials is here: its CLI would only
    answer ``Not logged in · Please run /login`` (advice for a home baton does not use), after baton
    made the key's worktree and session. Read on the operator's base home (whose login files each
    key's home is given copies of, and whose config.toml chooses Codex's provider), as doctor does."""
    operators = get_agent(agent, settings)
    auth = operators.auth()
    if auth.needed and auth.found(environ) is None:
        raise BadInput(auth.message(operators.name))


MAX_PIDS = 4_194_304  # the kernel's own ceiling of pid_max

MAX_CPU = 4096.0


def _check_limits(request: RunRequest) -> None:
    """A run's own limits: a size, a process count, a number of cores (0: unbounded)."""
    if request.memory is not None:
        check_memory(parse_size(request.memory, "memory"), "memory")
    if request.pids is not None and not 0 <= request.pids <= MAX_PIDS:
        raise BadInput(f"pids must be 0 to {MAX_PIDS}, not {request.pids}")
    if request.cpu is not None and not 0 <= request.cpu <= MAX_CPU:  # NaN fails too
        raise BadInput(f"cpu must be 0 to {MAX_CPU:g} cores, not {request.cpu}")
    for measure in Measure:  # spending caps: finite, 0 (none) up to the measure's maximum
        check_cap(measure, getattr(request, NAMES[measure]))


def validate(request: RunRequest) -> RunRequest:
    """The request with its branch in short form; BadInput for anything malformed."""
    check_text("prompt", request.prompt)
    check_text("context", request.context or "")
    if not request.prompt.strip():
        raise BadInput("prompt is empty")
    if request.timeout is not None and not 0 < request.timeout <= MAX_SECONDS:
        raise BadInput(f"timeout must be more than 0 and at most {MAX_SECONDS:g} s, not {request.timeout}")
    _check_limits(request)
    if not 0 <= request.retries <= MAX_RETRIES:
        raise BadInput(f"retries must be 0 to {MAX_RETRIES}, not {request.retries}")
    if not 0 <= request.wait <= MAX_SECONDS:
        raise BadInput(f"wait must be 0 to {MAX_SECONDS:g} seconds, not {request.wait}")
    if request.fork_from is not None:
        validate_thread(request.fork_from)
        if request.mode != Mode.FORK:
            raise BadInput("fork_from needs mode fork")
    _check_lineage(request)
    if request.branch is None:
        return request
    return dataclasses.replace(request, branch=_short_branch(request.branch))


def _check_lineage(request: RunRequest) -> None:
    """Stacking and hand-off options that cannot go together, or name nothing valid."""
    if request.base_thread is not None:
        validate_thread(request.base_thread)
        if request.base is not None:
            raise BadInput("give --base or --base-thread, not both")
    if request.handoff_from is None:
        return
    check_source_agent(request.agent, request.handoff_from)
    if request.mode not in (Mode.AUTO, Mode.FRESH):
        raise BadInput(f"a hand-off starts a new conversation: it cannot run in mode {request.mode.value!r}")


def _short_branch(branch: str) -> str:
    """``refs/heads/x`` and ``x`` name the same branch; any other ``refs/`` name is no branch."""
    short = branch.removeprefix("refs/heads/")
    if short.startswith("refs/") or short.startswith("-") or not short:
        raise BadInput(f"branch {branch!r} is not a valid branch name")
    try:
        normal = run_git(["check-ref-format", "--branch", short])
    except GitError:
        normal = ""
    if normal != short:
        raise BadInput(f"branch {branch!r} is not a valid branch name")
    return short
