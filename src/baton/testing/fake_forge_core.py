"""The fake forge's core (:class:`ForgeCore`): its state under one lock, users and their roles,
repositories and the branch updates pushed to them, the webhook deliveries a change sends, and the
faults a test injects. :class:`~baton.testing.fake_forge_threads.ForgeThreads` adds issues, pull
requests, reviews and checks; :class:`~baton.testing.fake_forge.FakeForge` serves it all over HTTP.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import queue
import secrets
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from baton.testing.fake_forge_hooks import Delivery, Payloads, new_delivery, post
from baton.testing.fake_forge_openapi import rest_description, webhook_description
from baton.testing.fake_forge_render import Render
from baton.testing.fake_forge_state import ROLES, Issue, IssueComment, Push, Repo, Review, User, init_bare


class ForgeRefused(Exception):
    """What GitHub would answer with an error (the REST layer turns it into that status)."""

    def __init__(self, status: int, message: str, resource: str = "") -> None:
        super().__init__(message)
        self.status, self.message, self.resource = status, message, resource


@dataclass(frozen=True)
class ApiRequest:
    """One request the API answered (git requests are in :attr:`FakeForge.git`'s ``requests``)."""

    method: str
    path: str  # without the /api/v3 prefix and the query
    status: int
    query: str = ""


@dataclass(frozen=True)
class Violation:
    """A request, response or delivery that GitHub's description rejects."""

    kind: str  # request | response | webhook | fake (a handler of the fake raised: a bug in it)
    what: str  # "GET /repos/{owner}/{repo}", "issue_comment.created"
    errors: tuple[str, ...]


class _Pending:
    """API requests in flight (until their deliveries are sent), for :meth:`FakeForge.settle`."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._count = 0

    def __enter__(self) -> None:
        with self._cond:
            self._count += 1

    def __exit__(self, *exc: object) -> None:
        with self._cond:
            self._count -= 1
            self._cond.notify_all()

    def wait(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._count == 0, timeout)


class ForgeCore:
    """State, users, repositories, deliveries and faults; the URLs come from the server's ports."""

    port: int = 0
    git_port: int = 0

    def __init__(
        self,
        root: Path,
        *,
        secret: str = "",
        deliver_to: str | None = None,
        description: str = "ghes-3.19",
        clock: Callable[[], float] = time.time,
        checked: bool = True,
    ) -> None:
        self.root, self.secret, self.deliver_to = Path(root), secret, deliver_to
        self.description, self.clock = description, clock
        self.rest = rest_description(description, checked)
        self.hooks = webhook_description(description, checked)
        self.lock = threading.RLock()
        self.users: dict[str, User] = {}
        self.repos: dict[str, Repo] = {}
        self.requests: list[ApiRequest] = []
        self.violations: list[Violation] = []
        self.deliveries: list[Delivery] = []
        # the events of the repositories' one webhook (to ``deliver_to``), as GET .../hooks shows them
        self.hook_events: list[str] = [
            *("issues", "issue_comment", "pull_request", "pull_request_review"),
            *("pull_request_review_comment", "check_run", "check_suite", "workflow_run"),
            *("status", "delete", "push"),
        ]
        self.pushes: list[Push] = []
        self._comments: dict[int, IssueComment] = {}
        self._reviews: dict[int, Review] = {}
        self.resolved_threads: set[tuple[str, int]] = set()  # (repo, a thread's first comment id)
        self.graphql_refuses: str | None = None  # a GraphQL error type (FORBIDDEN) it answers everything with
        self.without_inline_threads = False  # the fake Gitea: replying and resolving answer 404 (before 1.27)
        self.log_key = secrets.token_hex(8)  # the "pre-signed" part of log download URLs
        self._ids = itertools.count(1001)
        self._faults: list[tuple[str, float]] = []  # ("fail", status) | ("stall", seconds), in order
        self._local = threading.local()
        self.pending = _Pending()
        self.hold = False  # True: deliveries wait in ``held`` until flush()
        self._queue: queue.Queue[list[Delivery] | None] = queue.Queue()
        self._sender: threading.Thread | None = None
        self.held: list[Delivery] = []
        self.render = Render(self.rest, self.api_url, self.web_url, self.clone_url, self.user, self.repo)
        self.payloads = Payloads(self.render, self.hooks)

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        """The REST base a client is configured with (GHES-style)."""
        return f"{self.web_url}/api/v3"

    def clone_url(self, repo: Repo | str) -> str:
        full_name = repo.full_name if isinstance(repo, Repo) else repo
        return f"http://127.0.0.1:{self.git_port}/{full_name}.git"

    # -- users ---------------------------------------------------------------------------------------

    def add_user(self, login: str, type: str = "User", token: str | None = None) -> User:
        """A user (``type`` User or Bot); its token authenticates the API and git."""
        with self.lock:
            user = User(login, next(self._ids), type, token or f"ghp_{login}_{secrets.token_hex(4)}")
            self.users[login] = user
            return user

    def user(self, login: str) -> User:
        with self.lock:
            if login not in self.users:
                self.add_user(login, "Bot" if login.endswith("[bot]") else "User")
            return self.users[login]

    def user_by_token(self, token: str) -> User | None:
        with self.lock:
            return next((u for u in self.users.values() if secrets.compare_digest(u.token, token)), None)

    def token(self, login: str) -> str:
        return self.user(login).token

    def set_permission(self, repo: str, login: str, role: str) -> None:
        """``role``: admin, maintain, write, triage, read or none."""
        if role not in ROLES:
            raise ValueError(f"role {role!r} is not one of {', '.join(ROLES)}")
        with self.lock:
            self.user(login)
            self.repo(repo).permissions[login] = role

    # -- repositories ----------------------------------------------------------------------------------

    def create_repo(
        self, full_name: str, files: dict[str, str] | None = None, default_branch: str = "main"
    ) -> Repo:
        """A repository whose default branch holds one commit of ``files``; its owner is an admin."""
        owner, _, name = full_name.partition("/")
        with self.lock:
            self.user(owner)
            path = self.root / "git" / owner / f"{name}.git"
            init_bare(path, default_branch, files or {"README.md": f"# {name}\n"}, owner, self.clock())
            repo = Repo(owner, name, next(self._ids), path, default_branch, self.clock(), {owner: "admin"})
            self.install_hook(repo)
            self.repos[full_name] = repo
            return repo

    def create_fork(self, source: str, owner: str) -> Repo:
        """``owner``'s fork of ``source`` (same name, all its branches), for pull requests whose head is
        in another repository: ``open_pr(source, owner, f"{owner}:branch")``."""
        with self.lock:
            src, full_name = self.repo(source), f"{owner}/{source.partition('/')[2]}"
            self.user(owner)
            path = self.root / "git" / owner / src.path.name
            subprocess.run(["git", "clone", "-q", "--bare", str(src.path), str(path)], check=True)
            fork = Repo(
                owner, src.name, next(self._ids), path, src.default_branch, self.clock(), {owner: "admin"}
            )
            fork.fork_of = source
            self.install_hook(fork)
            self.repos[full_name] = fork
            return fork

    def install_hook(self, repo: Repo) -> None:
        """The post-receive hook that reports a push to the git server (again when its port changes)."""
        repo.report_pushes_to(
            f"http://127.0.0.1:{self.git_port}/_fake/pushed/{repo.full_name}?key={self.log_key}"
        )

    def repo(self, full_name: str) -> Repo:
        with self.lock:
            if full_name not in self.repos:
                raise ForgeRefused(404, "Not Found")
            return self.repos[full_name]

    def commit(
        self,
        repo: str,
        branch: str,
        files: dict[str, str],
        message: str = "change",
        base: str | None = None,
        login: str | None = None,
    ) -> str:
        """A commit of ``files`` by ``login`` (default: the repo's owner) on ``branch`` (created from
        ``base``, default the default branch, when new), made in the bare repository as a push would:
        recorded in :attr:`pushes`, ``synchronize`` sent to the branch's open PRs. Its sha."""
        r = self.repo(repo)
        author = login or r.owner
        old = r.head(branch)
        parent = old or r.head(base or r.default_branch)
        env = {
            **os.environ,
            "GIT_INDEX_FILE": str(r.path / f"index-{secrets.token_hex(4)}"),
            "GIT_AUTHOR_NAME": author,
            "GIT_AUTHOR_EMAIL": f"{author}@users.noreply.fake",
            "GIT_COMMITTER_NAME": author,
            "GIT_COMMITTER_EMAIL": f"{author}@users.noreply.fake",
        }
        try:
            subprocess.run(["git", "-C", str(r.path), "read-tree", parent or "--empty"], env=env, check=True)
            for name, content in files.items():
                blob = _blob(r, content)
                subprocess.run(
                    [
                        "git",
                        "-C",
                        str(r.path),
                        "update-index",
                        "--add",
                        "--cacheinfo",
                        f"100644,{blob},{name}",
                    ],
                    env=env,
                    check=True,
                )
            tree = subprocess.run(
                ["git", "-C", str(r.path), "write-tree"], env=env, capture_output=True, text=True, check=True
            ).stdout.strip()
        finally:
            Path(env["GIT_INDEX_FILE"]).unlink(missing_ok=True)
        args = ["commit-tree", tree, "-m", message, *(["-p", parent] if parent else [])]
        sha = subprocess.run(
            ["git", "-C", str(r.path), *args], env=env, capture_output=True, text=True, check=True
        ).stdout.strip()
        r.git("update-ref", f"refs/heads/{branch}", sha, *([old] if old else []))  # unless it moved meanwhile
        self._moved(r, branch, old, sha, author)
        return sha

    def refuse_check_runs(self, repo: str, refused: bool = True) -> None:
        """Answer the repository's check-run reads 403, as GitHub may for a fine-grained token on a
        private repository (it has no Checks permission); commit statuses stay readable."""
        self.repo(repo).check_runs_refused = refused

    def protect(self, repo: str, branch: str, *, allow_push: bool = False) -> None:
        """Protect a branch as GitHub's branch protection does: a push to it over git is refused with
        GitHub's words (``GH006: Protected branch update failed``), or, with ``allow_push``, only a
        force push is (``Cannot force-push to this branch``). A pre-receive hook in the bare repo."""
        self.repo(repo).protect(branch, allow_push=allow_push)

    def branches(self, repo: str) -> dict[str, str]:
        return self.repo(repo).branches()

    def pushed(self, full_name: str, login: str, updates: list[tuple[str, str, str]]) -> None:
        """What the repo's post-receive hook reports of a push over git (``(old, new, ref)`` each, git's
        zeros for none): the moved branches are recorded, and their open PRs synchronized. The hook
        runs inside the push, so this is done before the pusher's ``git push`` returns."""
        zero = "0" * 40
        with self._change():
            repo = self.repos.get(full_name)
            if repo is None:
                return
            for old, new, ref in updates:
                if ref.startswith("refs/heads/"):
                    branch = ref.removeprefix("refs/heads/")
                    self._moved(
                        repo, branch, None if old == zero else old, None if new == zero else new, login
                    )

    def hook_reported(self, full_name: str, login: str, updates: list[tuple[str, str, str]]) -> None:
        """:meth:`pushed`, for the post-receive hook's report: its deliveries go from the delivery
        thread (the push waits for the hook; a receiver must not hold it up), :meth:`settle` waits."""
        self._local.deferred = []
        with self.pending:
            try:
                self.pushed(full_name, login, updates)
            finally:
                deferred, self._local.deferred = self._local.deferred, None
                self.send_later(deferred)

    def _moved(self, repo: Repo, branch: str, old: str | None, new: str | None, login: str) -> None:
        """A branch moved: recorded, and the open PRs whose head it is (here, or in the repository this
        one is a fork of) synchronized, their ``refs/pull/N/head`` moved as GitHub moves it."""
        with self._change():
            self.pushes.append(Push(repo.full_name, branch, old, new, login))
            base = self.repos.get(repo.fork_of) if repo.fork_of else repo
            if base is None or not new:
                return
            head_repo = repo.full_name if repo.fork_of else None
            for issue in base.issues.values():
                pr = issue.pr
                if pr and issue.state == "open" and pr.head_ref == branch and pr.head_repo == head_repo:
                    before = base.pr_head(issue) if head_repo else old
                    self.track_pr_head(base, issue)
                    self._touch(issue)
                    payload = self.payloads.pull_request("synchronize", base, issue, login, before=before)
                    self._emit("pull_request", "synchronize", payload)

    def track_pr_head(self, base: Repo, issue: Issue) -> None:
        """Point the base repository's ``refs/pull/N/head`` at the PR's head (fetched from a fork)."""
        assert issue.pr is not None
        ref = f"refs/pull/{issue.number}/head"
        if issue.pr.head_repo is None:
            sha = base.head(issue.pr.head_ref)
            if sha:
                base.git("update-ref", ref, sha)
            return
        fork = self.repo(issue.pr.head_repo)
        base.git("fetch", "-q", "--no-tags", str(fork.path), f"+refs/heads/{issue.pr.head_ref}:{ref}")

    def _touch(self, issue: Issue) -> None:
        issue.updated_at = max(self.clock(), issue.updated_at)

    def issue(self, repo: str, number: int) -> Issue:
        with self.lock:
            issue = self.repo(repo).issues.get(number)
            if issue is None:
                raise ForgeRefused(404, "Not Found")
            return issue

    # -- faults ------------------------------------------------------------------------------------------

    def fail_next(self, n: int = 1, status: int = 500) -> None:
        """The next ``n`` API requests are answered ``status`` (a GitHub-shaped error)."""
        with self.lock:
            self._faults.extend([("fail", float(status))] * n)

    def stall_next(self, n: int = 1, seconds: float = 30.0) -> None:
        """The next ``n`` API requests are held ``seconds`` before they are handled (client timeouts)."""
        with self.lock:
            self._faults.extend([("stall", seconds)] * n)

    def take_fault(self) -> tuple[str, float] | None:
        with self.lock:
            return self._faults.pop(0) if self._faults else None

    # -- webhooks ----------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _change(self) -> Iterator[None]:
        """Hold the lock for a change; the deliveries it makes go once the lock is released (a
        receiver that calls the API back while handling one must not wait on this change's lock)."""
        outer = getattr(self._local, "outbox", None) is None
        if outer:
            self._local.outbox = []
        try:
            with self.lock:
                yield
        finally:
            if outer:
                outbox, self._local.outbox = self._local.outbox, None
                self._dispatch(outbox)

    def _dispatch(self, deliveries: list[Delivery]) -> None:
        deferred = getattr(self._local, "deferred", None)
        if deferred is not None:  # inside an API request: sent once its response has gone
            deferred.extend(deliveries)
        elif self.hold:
            with self.lock:
                self.held.extend(deliveries)
        else:
            for delivery in deliveries:
                self.send(delivery)

    def _emit(self, event: str, action: str | None, payload: dict[str, Any]) -> None:
        errors = self.payloads.check(event, action, payload)
        if errors:
            self.violations.append(Violation("webhook", f"{event}.{action}", errors))
        delivery = new_delivery(event, action, payload)
        with self.lock:
            self.deliveries.append(delivery)
        self._enqueue(delivery)

    def _enqueue(self, delivery: Delivery) -> None:
        """Send ``delivery`` when it should go: after the change making it has released the lock (and,
        inside an API request, after its response). A dialect's ``_emit`` ends with this."""
        outbox = getattr(self._local, "outbox", None)
        if outbox is not None:
            outbox.append(delivery)
        else:
            self._dispatch([delivery])

    def send_later(self, deliveries: list[Delivery]) -> None:
        """Send an API request's deliveries from the fake's delivery thread, in order: not from the
        request's own connection thread, which a client's pooled keep-alive connection may be waiting
        on (as GitHub's deliveries come from elsewhere than its API). :meth:`settle` waits for them."""
        if not deliveries:
            return
        self.pending.__enter__()
        with self.lock:
            if self._sender is None:
                self._sender = threading.Thread(
                    target=self._send_queued, name="fake-forge-deliveries", daemon=True
                )
                self._sender.start()
        self._queue.put(deliveries)

    def _send_queued(self) -> None:
        while (batch := self._queue.get()) is not None:
            try:
                if self.hold:
                    with self.lock:
                        self.held.extend(batch)
                else:
                    for delivery in batch:
                        self.send(delivery)
            finally:
                self.pending.__exit__()

    def stop_deliveries(self) -> None:
        """End the delivery thread (after what is queued)."""
        if self._sender is not None:
            self._queue.put(None)
            self._sender.join(timeout=30)
            self._sender = None

    def flush(self) -> list[int]:
        """Send the deliveries held back (``hold = True``), in order; the receiver's statuses."""
        with self.lock:
            held, self.held = self.held, []
        return [self.send(d) for d in held]

    def send(self, delivery: Delivery, *, forged: bool = False) -> int:
        """One attempt at ``delivery`` (nothing is sent without ``deliver_to``); the receiver's status."""
        if not self.deliver_to:
            return 0
        status = post(self.deliver_to, delivery, self.secret, forged=forged)
        with self.lock:
            delivery.statuses.append(status)
        return status

    def settle(self, timeout: float = 10.0) -> None:
        """Wait until every API request in flight has answered and the deliveries it caused are sent
        (they go after the response, from the delivery thread, as GitHub's come after its API answered)."""
        if not self.pending.wait(timeout):
            raise TimeoutError(f"API requests still in flight after {timeout} s")

    def redeliver(self, delivery: Delivery | str) -> int:
        """Send a delivery again, same id and body (GitHub's "Redeliver")."""
        if isinstance(delivery, str):
            delivery = next(d for d in self.deliveries if d.id == delivery)
        return self.send(delivery)

    def deliver_forged(self, delivery: Delivery | None = None) -> int:
        """Send a delivery (the last one by default) signed with the wrong secret."""
        return self.send(delivery or self.deliveries[-1], forged=True)

    def last_delivery(self, event: str | None = None) -> Delivery:
        with self.lock:
            return next(d for d in reversed(self.deliveries) if event in (None, d.event))


def _blob(repo: Repo, content: str) -> str:
    proc = subprocess.run(
        ["git", "-C", str(repo.path), "hash-object", "-w", "--stdin"],
        input=content,
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stdout.strip()
