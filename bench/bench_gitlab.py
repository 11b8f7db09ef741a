"""Benchmarks 21a-21c, the ``gitlab`` group: the forge loop against the fake GitLab
(:class:`baton.testing.fake_gitlab.FakeGitLab`: REST v4, git over HTTP, GitLab's webhooks), measured as
:mod:`bench_forge` measures 15b-15d against the fake GitHub, with its helpers.

The fake GitLab runs in a process of its own (a :mod:`multiprocessing` manager holding it), ``baton
serve`` in its own too, with ``config.toml``'s ``[forge.gitlab]`` and ``[repo."acme/api"]`` pointing at
the fake (the fake agent, ``BATON_FORGE_RECONCILE=0``).

- **21a** from an accepted note to the agent's start, on an idle bound issue: a Developer's note made
  in the fake, its Note Hook delivery (the fake's body and headers, ``X-Gitlab-Token`` its secret) sent
  by the bench; from its 202 to the ``started_at`` of the run it caused, interleaved with a plain
  ``POST /v1/runs`` of the same key (its 202 to its run's start); everything settled between. Goal
  ≤ 1 s: the row is the median ÷ 1 s (≤ 1); the note gives the ratio to the baseline.
- **21b/21c** the reconcile of 1,000 bound threads with nothing new: 500 issues and 500 merge requests
  (each from its own branch with its own head commit and one successful pipeline), all last updated an
  hour ago on the fake's clock, bound in the store as the loop binds them, last looked at a minute ago;
  ``reconcile(loop)`` in this process with a real ``GitLabClient``. baton keys a thread by its number,
  so issue #3 and MR !3 cannot both be bound: the MRs are !1-!500, the bound issues #501-#1000 (#1-#500
  exist, unbound, untouched). The first pass knows no ETag (each MR's pipelines come back 200 and are
  read as a possible CI failure, which ``dispatch`` re-reads — the MR's head, its pipelines — and
  drops): the baseline. Then the steady passes, which must find nothing and ask GitLab for the issues
  and the MRs updated since (two lists: GitLab keeps them apart) plus one conditional pipelines request
  per MR head (304). 21b: a steady pass's median time ÷ 30 s (≤ 1); 21c: its requests ÷ the 1,000
  threads (≤ 1; the first pass's count in the row's name).
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from multiprocessing.managers import BaseManager
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
from bench_forge import (
    GOAL_RECONCILE_S,
    PASSES,
    STARTS,
    THREADS,
    CountRow,
    one_pass,
    request_kinds,
    start_latency,
    start_row,
)
from bench_webhooks import SECRET
from common import TIMES, Group, Repos, Row, Suite, baton_serve, fmt_seconds, log, median

from baton import load_settings, open_store
from baton.forge.data.records import Binding
from baton.forge.data.tables import forge_store
from baton.forge.kinds.configured import load_forges
from baton.forge.kinds.gitlab.client import GitLabClient
from baton.forge.turn.loop import ForgeLoop
from baton.forge.turn.threads import bind_thread
from baton.keys import parse_repo
from baton.service.auth import create_token
from baton.service.records import TokenScope
from baton.settings import Settings
from baton.store import Store
from baton.testing.fake import register_fake
from baton.testing.fake_gitlab import FakeGitLab
from baton.testing.fake_gitlab_hooks import headers

register_fake()
REPO = "acme/api"
BOT = "baton"
FORGE = "gitlab"


# -- the fake GitLab in a process of its own ----------------------------------------------------------


class GitLabHost:
    """A :class:`FakeGitLab` and the drive calls the benchmarks make, in the manager's process. ``age``
    seconds are taken off the fake's clock: what it makes was last updated that long ago."""

    def __init__(self, root: str, age: float = 0.0) -> None:
        self.fake = FakeGitLab(Path(root), secret=SECRET, clock=lambda: time.time() - age).start()

    def setup(self, users: dict[str, str]) -> dict[str, str]:
        """The project and its members (login: access level); the API, web and clone URLs, the bot's
        token. Webhooks are made, not sent (``hold``): :meth:`note` hands its delivery to the bench."""
        self.fake.add_project(REPO, {"README.md": "# api\n", "app.py": "print('hi')\n"})
        for login, access in users.items():
            self.fake.add_user(login, access)
        self.fake.deliver_to, self.fake.hold = "http://127.0.0.1:9/webhooks/gitlab", True
        return {
            "api_url": self.fake.api_url,
            "web_url": self.fake.web_url,
            "clone_url": self.fake.clone_url(REPO),
            "token": self.fake.token(BOT),
        }

    def open_issues(self, login: str, n: int) -> list[int]:
        return [self.fake.open_issue(REPO, f"Issue {i}", f"Fix {i}.", author=login).iid for i in range(n)]

    def note(self, iid: int, login: str, body: str) -> tuple[dict[str, str], bytes]:
        """A note on issue ``iid``; its Note Hook delivery's headers (GitLab's) and body."""
        note = self.fake.comment(REPO, iid, body, author=login)
        with self.fake.lock:
            held, self.fake.held = self.fake.held, []
        [delivery] = [
            d for d in held if d.event == "Note Hook" and d.payload["object_attributes"]["id"] == note.id
        ]
        return headers(delivery, self.fake.web_url, SECRET), delivery.body

    def open_mrs(self, login: str, n: int) -> list[tuple[int, str, str]]:
        """``n`` merge requests, each from its own branch holding one commit of its own over main (one
        ``git fast-import``), each head with one successful pipeline; (iid, branch, head sha)."""
        repo = self.fake.project(REPO).repo
        lines = []
        for i in range(n):
            data = f"change {i}\n"
            lines += [
                f"commit refs/heads/b{i}",
                f"committer {login} <{login}@example.com> {int(time.time())} +0000",
            ]
            lines += ["data 7", "change", "from refs/heads/main", f"M 100644 inline f{i}.txt"]
            lines += [f"data {len(data)}", data]
        git = ["git", "-C", str(repo.path)]
        subprocess.run([*git, "fast-import", "--quiet"], input="\n".join(lines), text=True, check=True)
        subprocess.run([*git, "pack-refs", "--all"], check=True)  # one packed-refs file to read
        heads = repo.branches()
        for i in range(n):
            self.fake.add_pipeline(REPO, heads[f"b{i}"], ref=f"b{i}", status="success")
        iids = [self.fake.open_mr(REPO, f"b{i}", f"Change {i}", author=login).iid for i in range(n)]
        with self.fake.lock:
            self.fake.held.clear()
        return [(iid, f"b{i}", heads[f"b{i}"]) for i, iid in enumerate(iids)]

    def request_count(self) -> int:
        return len(self.fake.requests)

    def requests_since(self, start: int) -> list[tuple[str, str, int]]:
        return [(r.method, r.path, r.status) for r in self.fake.requests[start:]]

    def violations(self) -> list[str]:
        return [f"{v.kind} {v.what}: {'; '.join(v.errors)[:200]}" for v in self.fake.violations]

    def stop(self) -> None:
        self.fake.stop()


class _Manager(BaseManager):
    pass


_Manager.register("GitLabHost", GitLabHost)


@contextlib.contextmanager
def gitlab_process() -> Iterator[Any]:
    """A manager process in which :class:`GitLabHost` objects are made (``manager.GitLabHost(...)``)."""
    manager = _Manager(ctx=multiprocessing.get_context("spawn"))
    manager.start()
    try:
        yield manager
    finally:
        manager.shutdown()


# -- the service and the loop with GitLab configured --------------------------------------------------


def configure(home: Path, urls: dict[str, str]) -> None:
    """``config.toml`` of a home whose acme/api lives on the fake GitLab, run by the fake agent."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(
        f"""
[forge.gitlab]
kind = "gitlab"
api_url = "{urls["api_url"]}"
web_url = "{urls["web_url"]}"
token_env = "BATON_GIT_TOKEN"
user = "{BOT}"
mention = "@baton"

[repo."{REPO}"]
forge = "gitlab"
agent = "fake"
access = "edit"
daily_turns = 10000
clone_url = "{urls["clone_url"]}"
"""
    )


def make_loop(settings: Settings, store: Store, urls: dict[str, str]) -> ForgeLoop:
    """The loop as the service builds it, with a real GitLabClient against the fake; its submit does
    nothing (no turn is expected)."""
    client = GitLabClient(urls["api_url"], urls["token"])
    return ForgeLoop(settings, store, load_forges(settings.home), lambda _job: None, clients={FORGE: client})


def gitlab_request(port: int, sent: dict[str, str], body: bytes) -> bytes:
    """The HTTP request of a delivery (GitLab's headers), one per connection."""
    head = ["POST /webhooks/gitlab HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    head += [f"{name}: {value}" for name, value in sent.items()]
    head += [f"Content-Length: {len(body)}", "Connection: close"]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def note_request(port: int, host: Any, binding: Binding, rep: int) -> bytes:
    """21a's delivery: a Developer's note on the bound issue, as the fake GitLab made it."""
    sent, body = host.note(binding.number, "alice", f"And now step {rep}, please.")
    return gitlab_request(port, sent, body)


def bench_start(suite: Suite, root: Path, starts: int) -> None:
    """21a (see the module doc), its row and note into ``suite``."""
    settings = load_settings(overrides={"home": str(root / "home")}, environ={})
    with gitlab_process() as manager:
        host = manager.GitLabHost(str(root / "forge"))
        urls = host.setup({BOT: "developer", "alice": "developer"})
        configure(settings.home, urls)
        [issue] = host.open_issues("alice", 1)
        store = open_store(settings.resolved_store_url)
        env = {"BATON_WEBHOOK_SECRET": SECRET, "BATON_GIT_TOKEN": urls["token"], "BATON_FORGE_RECONCILE": "0"}
        try:
            with mock.patch.dict(os.environ, {"BATON_GIT_TOKEN": urls["token"]}):
                binding = bind_thread(make_loop(settings, store, urls), FORGE, REPO, issue, actor="bench")
            token = create_token(store, f"bench-{time.monotonic_ns()}", TokenScope.RUN)
            asked: list[int] = []
            with baton_serve(settings.home, env) as port:
                samples = start_latency(
                    port,
                    host,
                    store,
                    binding,
                    token,
                    starts,
                    asked,
                    lambda rep: note_request(port, host, binding, rep),
                )
            violations = host.violations()
        finally:
            store.close()
            host.stop()
    row = dataclasses.replace(
        start_row(samples),
        name="21a a GitLab note's 202 to the agent's start, idle bound issue, vs `POST /v1/runs` of the "
        "key: median",
    )
    suite.rows.append(row)
    b = row.extra
    suite.notes.append(
        f"21a: a Developer's note's 202 to the agent's start {b['median_ms']:.0f} ms (p90 "
        f"{b['p90_ms']:.0f} ms), a `POST /v1/runs` of the same key {b['plain_median_ms']:.0f} ms "
        f"({b['ratio_to_plain']:.2f}{TIMES}); between a delivery and its turn's start the service asked "
        f"the fake GitLab {median([float(a) for a in asked]):.0f} requests (median; {asked[0]} for the "
        "first, a warm-up: the user's id and access level, then cached)."
        + (f" The fake GitLab recorded {len(violations)} violations: {violations[:2]}" if violations else "")
    )


# -- 21b/21c: the reconcile ----------------------------------------------------------------------------


def bind_all(loop: ForgeLoop, issues: list[int], mrs: list[tuple[int, str, str]], seen_at: float) -> None:
    """Bind the issues and MRs as :func:`baton.forge.turn.threads.bind_thread` does (without asking the
    forge 1,000 times what each is: the set-up's answers are known), last reconciled at ``seen_at``."""
    config = loop.repo(FORGE, REPO)
    assert config is not None
    url = config.repo_url(loop.forge(FORGE))
    now = time.time()
    base = Binding(FORGE, REPO, 0, "fake", parse_repo(url).slug, "", url, access=config.access)
    base.seen_at, base.created_at, base.updated_at = seen_at, now, now
    made = [dataclasses.replace(base, number=n, thread=f"issue-{n}") for n in issues]
    made += [
        dataclasses.replace(base, number=n, thread=f"pr-{n}", pr=n, on_pr=True, head_sha=sha, branch=b)
        for n, b, sha in mrs
    ]
    for binding in made:
        forge_store(loop.store).bind(binding, loop.which(FORGE, binding.on_pr))
        forge_store(loop.store).save_binding(binding)


def bench_reconcile(suite: Suite, root: Path, threads: int, passes: int) -> None:
    """21b and 21c (see the module doc), their rows and note into ``suite``."""
    settings = load_settings(overrides={"home": str(root / "home")}, environ={})
    n_mrs = threads - threads // 2
    with gitlab_process() as manager:
        host = manager.GitLabHost(str(root / "forge"), 3600.0)  # everything last updated an hour ago
        urls = host.setup({BOT: "developer", "alice": "developer"})
        configure(settings.home, urls)
        set_up = time.perf_counter()
        issues = host.open_issues("alice", n_mrs + threads // 2)[n_mrs:]  # #1-#n_mrs: the MRs' numbers
        mrs = host.open_mrs("alice", n_mrs)
        store = open_store(settings.resolved_store_url)
        try:
            with mock.patch.dict(os.environ, {"BATON_GIT_TOKEN": urls["token"]}):
                loop = make_loop(settings, store, urls)
                bind_all(loop, issues, mrs, time.time() - 60)
                log(f"21b: {threads} threads made and bound in {time.perf_counter() - set_up:.1f} s")
                first, first_requests, first_report = one_pass(loop, host)
                steady: list[float] = []
                counts: list[int] = []
                for _ in range(passes):
                    elapsed, requests, report = one_pass(loop, host)
                    if report["found"] or report["threads"] != threads:
                        raise RuntimeError(f"a pass with nothing new found something: {report}")
                    if any(status != 304 for _m, path, status in requests if path.endswith("/pipelines")):
                        raise RuntimeError(
                            f"a steady pass's pipelines were not all 304: {request_kinds(requests)}"
                        )
                    steady.append(elapsed)
                    counts.append(len(requests))
                raw, raw_304 = raw_requests(urls, store)
            violations = host.violations()
        finally:
            store.close()
            host.stop()
    suite.rows.append(
        Row(
            f"21b GitLab reconcile of {threads:,} bound threads ({threads // 2} issues, {n_mrs} MRs) with "
            "nothing new: a pass vs the first pass (no ETags yet)",
            "overhead",
            median(steady),
            first,
            GOAL_RECONCILE_S,
            passes,
            overhead=median(steady),
            samples={"candidate": steady, "baseline": [first]},
            extra={"first_report": first_report},
        )
    )
    suite.rows.append(
        CountRow(
            f"21c GitLab requests of such a pass per bound thread ({len(first_requests)} in the first pass)",
            "ratio",
            float(max(counts)),
            float(threads),
            1.0,
            passes,
            samples={"candidate": [float(c) for c in counts]},
            extra={"first_requests": len(first_requests)},
        )
    )
    suite.notes.append(
        f"21b/21c: a GitLab pass with nothing new took {fmt_seconds(median(steady))} "
        f"({median(steady) / first:.2f}{TIMES} the first pass's {fmt_seconds(first)}, which had no ETag: "
        f"{request_kinds(first_requests)}; found {first_report['found']}, {first_report['outcomes']}); a "
        f"steady pass asks {request_kinds(requests)}. The same requests sent alone by plain httpx: "
        f"{raw:.1f} s ({raw_304} answered 304)."
        + (f" The fake GitLab recorded {len(violations)} violations: {violations[:2]}" if violations else "")
    )


def raw_requests(urls: dict[str, str], store: Store) -> tuple[float, int]:
    """A steady pass's requests alone, by plain httpx on one connection: the issues and MRs updated in
    the last three minutes and each MR head's pipelines with its stored ETag. Seconds, and the 304s."""
    bindings = forge_store(store).list_bindings(forge=FORGE, limit=10_000)
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 180))
    listed: dict[str, str | int] = {"updated_after": since, "scope": "all", "per_page": 100, "page": 1}
    project = f"/projects/{REPO.replace('/', '%2F')}"
    not_modified = 0
    with httpx.Client(base_url=urls["api_url"], headers={"Authorization": f"Bearer {urls['token']}"}) as http:
        start = time.perf_counter()
        http.get(f"{project}/issues", params=listed)
        http.get(f"{project}/merge_requests", params={**listed, "state": "all"})
        for b in bindings:
            if b.pr is not None and b.head_sha:
                answer = http.get(
                    f"{project}/pipelines",
                    params={"sha": b.head_sha, "per_page": 20},
                    headers={"If-None-Match": b.etag or ""},
                )
                not_modified += answer.status_code == 304
        return time.perf_counter() - start, not_modified


# -- the group -----------------------------------------------------------------------------------------


def run_group(suite: Suite, _repos: Repos) -> None:
    suite.step(
        "21a gitlab: a note's 202 to the agent's start",
        lambda: bench_start(suite, suite.scratch / "b21a", suite.pick(STARTS)),
    )
    suite.step(
        "21b/21c gitlab: reconcile of 1,000 bound threads",
        lambda: bench_reconcile(suite, suite.scratch / "b21b", suite.pick(THREADS), suite.pick(PASSES)),
    )


GROUP = Group(
    "gitlab",
    "21a-21c: the forge loop on the fake GitLab: a Developer's note's 202 to the agent's start for an "
    "idle thread (≤ 1 s, vs POST /v1/runs); the reconcile of 1,000 bound threads (500 issues, 500 MRs) "
    "with nothing new (≤ 30 s, ≤ 1 request a thread)",
    run_group,
)


if __name__ == "__main__":  # python bench/bench_gitlab.py [--quick] [start|reconcile]
    import sys

    from common import markdown_table

    what = next((a for a in sys.argv[1:] if a in ("start", "reconcile")), "all")
    with tempfile.TemporaryDirectory() as scratch:
        suite = Suite(Path(scratch), quick="--quick" in sys.argv, keep=False)
        if what in ("all", "start"):
            bench_start(suite, suite.scratch / "b21a", suite.pick(STARTS))
        if what in ("all", "reconcile"):
            bench_reconcile(suite, suite.scratch / "b21b", suite.pick(THREADS), suite.pick(PASSES))
        print(markdown_table(suite.rows))
        print("\n".join(f"- {n}" for n in suite.notes))
