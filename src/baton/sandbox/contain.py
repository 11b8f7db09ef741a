"""Nothing of a run outlives it: the run's containment, from the agent's start to its end. The runner is
the subreaper of everything its agents start (:mod:`baton.sandbox.reaper`), and each run gets a control
group with its limits where the host allows one (:mod:`baton.sandbox.cgroups`, ``BATON_CGROUPS``,
``BATON_RUN_MEMORY``/``PIDS``/``CPU``, a run's own override winning). :meth:`Containment.start` puts the
agent in its group as soon as it exists; :meth:`Containment.check`, at every supervision tick, says
whether a limit struck; :meth:`Containment.end`, on every outcome, ends every process of the run still
alive and says which. Without a group only the timeout bounds a run (why no rlimit stands in, and what
this host enforces: docs/security.md, ``baton doctor``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from baton.models import Outcome, RunRecord
from baton.sandbox import cgroups, reaper
from baton.sandbox.cgroups import Host, Limits, RunGroup
from baton.settings import Settings, format_size
from baton.store.leases import HOST

SHOWN = 10  # commands of ended processes kept on the run's record


@dataclass
class Reaped:
    """What a run's end ended."""

    count: int = 0  # processes ended after the agent's own process ended (or was stopped)
    commands: list[str] = field(default_factory=list)  # the first few, short
    limit: str | None = None  # a limit that struck during the run: the user-facing reason

    def summary(self) -> str | None:
        """``sleep 777; npm run dev (3 times)`` — what was stopped, for the record and the next prompt."""
        if not self.count:
            return None
        counts: dict[str, int] = {}
        for text in self.commands:
            counts[text] = counts.get(text, 0) + 1
        parts = [f"{text} ({n} times)" if n > 1 else text for text, n in counts.items()]
        more = self.count - len(self.commands)
        return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def limits_of(
    settings: Settings, memory: int | None = None, pids: int | None = None, cpu: float | None = None
) -> Limits:
    """The run's limits: its own (``memory``, ``pids``, ``cpu``) over the settings'; 0 is unbounded."""
    memory = settings.run_memory_bytes if memory is None else memory
    pids = settings.run_pids if pids is None else pids
    cpu = settings.run_cpu if cpu is None else cpu
    return Limits(memory or None, pids or None, cpu or None)


def host(settings: Settings) -> Host:
    """What this host lets baton do, under ``BATON_CGROUPS``."""
    if settings.cgroups == "off":
        return Host(reason="off (BATON_CGROUPS=off)")
    return cgroups.probe()


def describe(settings: Settings) -> tuple[bool, str]:
    """For ``baton doctor``: whether runs get a group here, what of the run limits is enforced, and the
    key's disk budget (a watch during the run wherever it is set: no quota on any host yet)."""
    found, limits = host(settings), limits_of(settings)
    asked = {
        "memory": format_size(limits.memory) if limits.memory else None,
        "pids": limits.pids,
        "cpu": limits.cpu,
    }
    wanted = {name: value for name, value in asked.items() if value}
    if not found.tracks:
        unenforced = f"; not enforced: {', '.join(f'{k} {v}' for k, v in wanted.items())}" if wanted else ""
        return False, (
            f"{found.describe()}: the runner's subreaper still ends what a run leaves running; only the "
            f"timeout bounds a run{unenforced}{_disk(settings)}"
        )
    how = found.enforces()
    said = [
        f"{name} {value} ({how[name]})" if name in how else f"{name} {value} (not enforced here)"
        for name, value in wanted.items()
    ]
    return True, f"{found.describe()}; run limits: {', '.join(said) or 'none set'}{_disk(settings)}"


def _disk(settings: Settings) -> str:
    budget = settings.key_disk_bytes
    return f"; a key's disk {format_size(budget)} (BATON_KEY_DISK, watched during each run)" if budget else ""


class Containment:
    """One run's processes, from :meth:`start` to :meth:`end` (see the module)."""

    def __init__(self, settings: Settings, run_id: str, limits: Limits) -> None:
        reaper.become_subreaper()
        self.run_id = run_id
        self.limits = limits
        found = host(settings)
        group = RunGroup(found, run_id, limits) if found.tracks else None
        self.group = group if group is not None and group.made else None
        self.tree = reaper.Tree(run_id)  # without a group, what the run is; with one, a safety net
        self._placing: threading.Thread | None = None
        self._born = False  # the agent entered the tracking group before its exec (doors)
        self.agent = 0
        self.struck: str | None = None

    def doors(self) -> list[int]:
        """What the agent's child enters its run's groups through before its exec
        (:meth:`baton.sandbox.cgroups.RunGroup.doors`); none without a group. The caller closes them."""
        found = self.group.doors() if self.group is not None else []
        self._born = bool(found)
        return found

    def start(self, pid: int) -> None:
        """The agent exists (born in its group where the doors let it in): its tree walked into the
        group once more, from a thread of its own (:mod:`baton.sandbox.cgroups`: a move waits for the
        kernel's cgroup lock, which nothing of the run must wait for)."""
        self.agent = pid
        reaper.LIVE.add(pid)
        self.tree.add(pid)
        if self.group is not None:
            self._placing = threading.Thread(
                target=self.group.add, args=(pid, self._born), daemon=True, name="baton-cgroup"
            )
            self._placing.start()

    def check(self) -> str | None:
        """At each supervision tick: why the run must stop now (a limit struck), else None."""
        if self.group is None:
            self.tree.watch()
            return None
        self.struck = self.struck or self.group.tripped()
        return self._reason(self.struck) if self.struck else None

    def _reason(self, what: str) -> str:
        if what == "memory":
            size = format_size(self.limits.memory)
            return f"the agent's processes exceeded the run's memory limit of {size} (BATON_RUN_MEMORY)"
        return (
            f"the agent's processes reached the run's limit of {self.limits.pids} processes (BATON_RUN_PIDS)"
        )

    def end(self, killed: bool = False) -> Reaped:
        """End every process of the run still alive (the agent's own process has ended, or never
        started: then there is only the empty group to remove). ``killed``: the runner SIGKILLed the
        agent's process group (timeout, cancel, a limit): its members are not counted as left running."""
        if not self.agent:
            if self.group is not None:
                self.group.end()
            return Reaped()
        reaper.LIVE.discard(self.agent)
        count, shown, group = 0, [], self.agent if killed else 0  # the agent leads its process group
        if self.group is not None:
            if self._placing is not None:
                self._placing.join()
            self.struck = self.struck or self.group.tripped()
            # still running: not those the agent's process group took with it
            pids = [pid for pid in self.group.procs() if not reaper.ending(pid, group)]
            count, shown = len(pids), [reaper.command(pid) for pid in pids[:SHOWN]]
            self.group.end()
        # without a group, the run's tree; with one, what detached before the agent was moved into it
        if self.group is None:
            with reaper.STARTING:  # no agent starts while a run that may be alone ends what it left
                found = self.tree.end(alone=len(reaper.LIVE) == 0, killed=group)
        else:
            found = self.tree.end(alone=False, killed=group)
        count, shown = count + len(found), shown + [text for _, text in found[:SHOWN]]
        limit = self._reason(self.struck) if self.struck else None
        return Reaped(count, [text for text in shown if text], limit)


def end_unsupervised(run: Callable[[str], RunRecord | None]) -> dict[str, int]:
    """End what is left in the groups of runs no runner supervises here any more (``run``: the store's
    record of a run id): a run that ended, or whose runner on this host is gone. A group of a run this
    store does not know is another home's (its record is written before its group is made): left
    alone. The run id → how many processes were ended (for ``baton sweep``)."""
    # lazy: cold CLI
    import psutil  # (~20 ms of imports: the sweep's, never a run's)

    ended = {}
    for run_id in cgroups.run_groups():
        record = run(run_id)
        if record is None:
            continue
        if record.outcome == Outcome.RUNNING and (record.host != HOST or _runner_alive(psutil, record)):
            continue  # its runner is alive (here, or on another host sharing these groups)
        ended[run_id] = end_stale(run_id)
    return ended


def _runner_alive(psutil: Any, record: RunRecord) -> bool:
    """Whether the run's runner still runs here: its pid, held by a process started before the run (a
    killed runner's pid is soon another process's where pids cycle fast: 32768 of them here)."""
    try:
        started = psutil.Process(record.runner_pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return False
    return bool(started <= record.started_at + 1.0)


def end_stale(run_id: str) -> int:
    """End what a dead runner's run left in its group on this host: how many processes."""
    return len(cgroups.end_stale(run_id))
