"""Benchmark 12: a turn that syncs with upstream first (``--sync rebase``) when nothing moved there, against a
plain turn (goal: at most 1.05 times, as fetching an unchanged remote must be cheap); and, for information,
the same when one new commit came in.

Set-up, untimed: a bare copy of a generated repository (``git clone --bare --local``, so nothing here
touches the copy the other groups use), given to baton as a local path or served over git smart HTTP on
127.0.0.1 (token auth answered through ``BATON_GIT_TOKEN``, as benchmark 3c); one ``BATON_HOME``; the fake
agent. Each key has an untimed first turn, so every timed turn resumes its own conversation in an
existing worktree. Each row interleaves two keys (rotating order, two warm-up rounds, medians; the added
cost is the median of the per-repetition differences):

- ``plain`` (the baseline): ``baton.run(RunRequest(agent="fake", repo=R, thread="sync-plain",
  prompt="X", sync=SyncHow.OFF))``: the worktree fast path, no fetch;
- the candidate, thread ``sync-candidate`` with ``sync=SyncHow.REBASE``, either
  - on the same repository, where nothing moves: every repetition must record
    ``run.sync["result"] == "unchanged"`` and, over HTTP, must have sent requests to the server (it
    really looked upstream); or
  - (``incoming``, a row for information) on a second bare copy, to which a person pushes one commit
    (a new file on ``main``) before each turn, untimed: the turn must record ``"integrated"`` and the
    new file must be in the worktree after it.

Row 12f runs both keys with the real Claude Code CLI against the mock Anthropic API (``agent="claude"``)
instead of the fake agent: what a real turn pays for looking upstream.

Every turn must succeed as a resume whose request carried two more messages than the key's previous
turn (the fake agent's reply counts them).

The HTTP server is ``baton.testing.git_http.GitHttpServer`` with ``TCP_NODELAY`` on its sockets, as real
git hosts have it. Python's ``http.server`` leaves Nagle's algorithm on, and a reply it writes in pieces
(git http-backend's streamed output) then waits for the client's delayed ACK: about 40 ms on the POST
of every fetch, which made a fetch of an unchanged remote take ~79 ms instead of ~34 ms on the machine
this was written on. That stall belongs to the test server, not to git or baton.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import (
    Group,
    History,
    Plan,
    Repos,
    Row,
    Suite,
    clean_environ,
    clock,
    interleave,
    median,
    pair_differences,
    patched_environ,
    row_order,
    sh,
)
from repogen import RepoShape

from baton import Mode, RunRequest, RunResult, load_settings, run
from baton.models import SyncHow
from baton.settings import Settings
from baton.testing.fake import register_fake
from baton.testing.git_http import GitHttpServer, _Handler
from baton.testing.mock_anthropic import MockAnthropic

register_fake()
GOAL = 1.05
REPS = Plan(full=21, quick=5)
# The rows: (step title, tag, the large repository, over HTTP, an incoming commit per turn, agent).
CASES = (
    ("12a synced turn vs plain turn, small repo as a local path", "a", False, False, False, "fake"),
    ("12b synced turn vs plain turn, small repo over HTTP", "b", False, True, False, "fake"),
    ("12c synced turn vs plain turn, large repo as a local path", "c", True, False, False, "fake"),
    ("12d synced turn, an incoming commit, vs plain turn, over HTTP", "d", False, True, True, "fake"),
    ("12e synced turn, an incoming commit, vs plain turn, local path", "e", False, False, True, "fake"),
    ("12f synced turn vs plain turn, small repo over HTTP, Claude Code", "f", False, True, False, "claude"),
)
PROMPT = "X"
CANDIDATE = "sync-candidate"  # the synced key's thread (the plain key's is "sync-plain")
PERSON = {
    "GIT_AUTHOR_NAME": "Upstream Person",
    "GIT_AUTHOR_EMAIL": "person@example.com",
    "GIT_COMMITTER_NAME": "Upstream Person",
    "GIT_COMMITTER_EMAIL": "person@example.com",
}


class NoDelayHandler(_Handler):
    disable_nagle_algorithm = True  # TCP_NODELAY, as a real git host: see the module's docstring


class HostLikeGitServer(GitHttpServer):
    """:class:`GitHttpServer` without the Nagle stall."""

    def handler_class(self) -> type[_Handler]:
        return NoDelayHandler


@dataclass
class InfoRow(Row):
    """A row shown for information: no goal, never a miss."""

    @property
    def met(self) -> bool:
        return True

    def cells(self) -> list[str]:
        cells = super().cells()
        cells[5], cells[6] = "— (information)", "info"
        return cells

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "goal": None, "met": None, "informational": True}


@dataclass
class Turns:
    """One ``BATON_HOME`` and the keys' turns, each checked; the HTTP server when the repo is served."""

    settings: Settings
    server: GitHttpServer | None
    agent: str = "fake"
    hist: dict[str, History] = field(default_factory=dict)
    requests: dict[str, list[int]] = field(default_factory=dict)  # per thread: HTTP requests of each turn

    def served(self) -> int:
        return len(self.server.requests) if self.server else 0

    def turn(self, repo: str, thread: str, sync: SyncHow) -> tuple[RunResult, float]:
        request = RunRequest(agent=self.agent, repo=repo, thread=thread, prompt=PROMPT, sync=sync)
        before = self.served()
        result, elapsed = clock(lambda: run(request, settings=self.settings))
        self.requests.setdefault(thread, []).append(self.served() - before)
        rec = result.run
        if not result.ok:
            raise RuntimeError(f"sync bench, {thread}: {rec.outcome.value}, {rec.error}")
        hist = self.hist.setdefault(thread, History(f"sync bench {thread}"))
        if hist.count is not None and rec.mode != Mode.RESUME:
            raise RuntimeError(f"sync bench, {thread}: {rec.mode.value}, not a resume")
        hist.check(rec.result)
        return result, elapsed


def sync_result(result: RunResult) -> str:
    return str((result.run.sync or {}).get("result"))


def bench_sync(
    root: Path,
    source: Path,
    reps: int,
    tag: str,
    over_http: bool,
    incoming: bool = False,
    agent: str = "fake",
) -> Row:
    """Row 12``tag``: the synced turn (``incoming``: one new upstream commit each time) ÷ the plain turn;
    ``agent="claude"``: the real Claude Code CLI against the mock Anthropic API instead of the fake."""
    served = root / "served"
    names = ("repo.git", "incoming.git") if incoming else ("repo.git",)
    for name in names:
        sh(["git", "clone", "--bare", "--quiet", "--local", str(source), str(served / name)])
        sh(["git", "-C", str(served / name), "config", "uploadpack.allowFilter", "true"])
    settings = load_settings(overrides={"home": str(root / "baton-home")}, environ={})
    with serving(served, over_http) as (server, locate), model(agent):
        turns = Turns(settings, server, agent)
        repo, other = locate(names[0]), locate(names[-1])
        turns.turn(
            repo, "sync-plain", SyncHow.OFF
        )  # each key's first turn, untimed (a new key does not sync)
        turns.turn(other, CANDIDATE, SyncHow.OFF)
        candidate = (
            pushed(turns, other, root / "person", served / names[-1]) if incoming else synced(turns, repo)
        )
        turns.requests.clear()
        samples = interleave({"plain": plain(turns, repo), "candidate": candidate}, reps, warmup=2)
        errors = server.backend_errors if server else []
    if errors:
        raise RuntimeError(f"git http-backend failed: {errors[-1][-500:]}")
    return row(tag, source, over_http, samples, turns.requests, reps, incoming, agent)


@contextmanager
def model(agent: str) -> Iterator[None]:
    """The mock model server a real agent talks to (none for the fake agent)."""
    if agent == "fake":
        yield
        return
    with MockAnthropic() as mock, patched_environ(mock.env()):
        yield


Locate = Callable[[str], str]


@contextmanager
def serving(served: Path, over_http: bool) -> Iterator[tuple[GitHttpServer | None, Locate]]:
    """What baton is given for a served repository: its path, or its URL on a running server."""
    if not over_http:
        yield None, lambda name: str(served / name)
        return
    token = secrets.token_hex(16)
    with HostLikeGitServer(root=served, token=token) as server, patched_environ({"BATON_GIT_TOKEN": token}):
        yield server, server.url


def plain(turns: Turns, repo: str) -> Callable[[int], float]:
    def turn(_rep: int) -> float:
        result, elapsed = turns.turn(repo, "sync-plain", SyncHow.OFF)
        if result.run.sync:
            raise RuntimeError(f"sync bench: a plain turn synced: {result.run.sync}")
        return elapsed

    return turn


def synced(turns: Turns, repo: str) -> Callable[[int], float]:
    def turn(_rep: int) -> float:
        result, elapsed = turns.turn(repo, CANDIDATE, SyncHow.REBASE)
        if sync_result(result) != "unchanged":
            raise RuntimeError(f"sync bench: nothing moved upstream, yet the sync says {result.run.sync}")
        if turns.server is not None and turns.requests[CANDIDATE][-1] == 0:
            raise RuntimeError("sync bench: a synced turn over HTTP sent no request to the server")
        return elapsed

    return turn


def pushed(turns: Turns, repo: str, person: Path, upstream: Path) -> Callable[[int], float]:
    """The incoming variant: before each turn (untimed) a person pushes a new file to ``main``."""
    env = {**clean_environ(), **PERSON}
    sh(["git", "clone", "--quiet", str(upstream), str(person)], env=env)
    counter = iter(range(1_000_000))

    def turn(_rep: int) -> float:
        name = f"upstream-{next(counter)}.txt"
        (person / name).write_text(f"{name}: pushed upstream by a person\n")
        sh(["git", "-C", str(person), "add", name], env=env)
        sh(["git", "-C", str(person), "commit", "--quiet", "-m", f"Person adds {name}"], env=env)
        sh(["git", "-C", str(person), "push", "--quiet", "origin", "HEAD:main"], env=env)
        result, elapsed = turns.turn(repo, CANDIDATE, SyncHow.REBASE)
        if sync_result(result) != "integrated":
            raise RuntimeError(f"sync bench: a commit came in, yet the sync says {result.run.sync}")
        if not (Path(result.session.worktree) / name).is_file():
            raise RuntimeError(f"sync bench: {name}, pushed upstream, is not in the worktree after the sync")
        return elapsed

    return turn


def row(
    tag: str,
    source: Path,
    over_http: bool,
    samples: dict[str, list[float]],
    requests: dict[str, list[int]],
    reps: int,
    incoming: bool,
    agent: str,
) -> Row:
    files = sh(["git", "-C", str(source), "ls-tree", "-r", "--name-only", "main"]).count("\n")
    where = "over HTTP" if over_http else "as a local path"
    cand, base = samples["candidate"], samples["plain"]
    what = "with one incoming commit" if incoming else "(nothing upstream)"
    return (InfoRow if incoming else Row)(
        f"12{tag} synced turn {what} ÷ plain turn, {files}-file repo {where}",
        "ratio",
        median(cand),
        median(base),
        0.0 if incoming else GOAL,
        reps,
        samples={"candidate": cand, "baseline": base},
        extra={
            "files": files,
            "over_http": over_http,
            "incoming": incoming,
            "added_s": median(pair_differences(cand, base)),
            "http_requests_plain": median(requests["sync-plain"]),
            "http_requests_synced": median(requests[CANDIDATE]),
        },
        agent=agent,
    )


def sync_note(found: list[Row]) -> str:
    """What each row adds to a turn, in milliseconds."""
    parts = []
    for r in found:
        x = r.extra
        http = (
            f" ({x['http_requests_synced']:.0f} HTTP requests per synced turn, "
            f"{x['http_requests_plain']:.0f} per plain turn)"
            if x["over_http"]
            else ""
        )
        parts.append(
            f"{r.name.split()[0]} adds {x['added_s'] * 1000:+.0f} ms to a {r.baseline * 1000:.0f} ms "
            f"plain turn{http}"
        )
    return (
        "12: "
        + "; ".join(parts)
        + " (medians of per-repetition differences). The fake agent answers in tens of milliseconds; "
        "a real agent's turn (Claude Code's start-up alone is ~0.6 s, 1a) makes the same cost a smaller "
        "ratio."
    )


def run_group(suite: Suite, repos: Repos) -> None:
    """12a-12f, one step each so a failed one leaves the others' rows; one note for them all."""
    found: list[Row] = []
    for title, tag, large, over_http, incoming, agent in CASES:
        shape = repos.big if large else repos.small
        suite.step(title, functools.partial(record, suite, found, tag, shape, over_http, incoming, agent))
    suite.rows.extend(found)
    if found:
        suite.notes.append(sync_note(sorted(found, key=row_order)))


def record(
    suite: Suite, found: list[Row], tag: str, shape: RepoShape, over_http: bool, incoming: bool, agent: str
) -> None:
    root = suite.scratch / f"b12{tag}"
    found.append(bench_sync(root, shape.path, suite.pick(REPS), tag, over_http, incoming, agent))


GROUP = Group(
    "sync",
    "12a-12f: a turn with --sync rebase and nothing upstream vs a plain turn (small repo as a local "
    "path and over HTTP, large repo as a local path); with one incoming commit (information)",
    run_group,
    big=True,
)
