"""A stateful fake GitHub for the forge tests: a real HTTP server on 127.0.0.1 speaking GitHub's REST
API (GHES-style, at ``http://127.0.0.1:PORT/api/v3``), serving each repository's git over smart HTTP
with token auth, and sending signed webhook deliveries when a test drives a change.

- **State** (:mod:`fake_forge_state`): users and their role per repository, repositories (a bare git
  repository each, under ``root``), issues and pull requests on one number sequence, comments, reviews
  with inline comments, check runs (which are also the Actions jobs whose logs can be fetched) and
  commit statuses. One lock guards it; a PR's head is read from its branch in the bare repository,
  so a push moves it (and sends ``pull_request.synchronize``, as GitHub does).
- **REST** (:mod:`fake_forge_api`): the endpoints baton's client calls, with GitHub's paths, shapes,
  pagination (``Link``), ETags (``If-None-Match`` → 304) and errors (401, 404, 422). Every request and
  response is checked against GitHub's OpenAPI description (:mod:`fake_forge_openapi`): a request that
  violates it is answered 400, and both kinds are kept in :attr:`FakeForge.violations` — a test's
  fixture asserts it is empty.
- **git**: a :class:`~baton.testing.git_http.GitHttpServer` beside the API (its own port), serving
  ``<owner>/<name>.git``; HTTP Basic with any user's token as the password.
- **Webhooks** (:mod:`fake_forge_hooks`): payloads built from GitHub's examples, validated, signed and
  delivered synchronously to ``deliver_to``; :meth:`FakeForge.redeliver` and
  :meth:`FakeForge.deliver_forged` for the dedupe and signature tests.
- **Faults**: :meth:`FakeForge.fail_next` and :meth:`FakeForge.stall_next` (the API only).

Run it by hand for the README's offline tour: ``python -m baton.testing.fake_forge --help``.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import os
import secrets
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from baton.testing._http import BackgroundServer, QuietHandler, QuietServer
from baton.testing.fake_forge_hooks import Delivery, Payloads, new_delivery, post
from baton.testing.fake_forge_openapi import rest_description, webhook_description
from baton.testing.fake_forge_render import Render
from baton.testing.fake_forge_state import (
    ROLES,
    Annotation,
    CheckRun,
    Issue,
    IssueComment,
    PullPart,
    Push,
    Repo,
    Review,
    ReviewComment,
    Status,
    User,
    init_bare,
)
from baton.testing.git_http import GitHttpRequest, GitHttpServer

__all__ = ["ApiRequest", "Delivery", "FakeForge", "ForgeRefused", "Violation"]


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

    kind: str  # request | response | webhook
    what: str  # "GET /repos/{owner}/{repo}", "issue_comment.created"
    errors: tuple[str, ...]


def serve_quickly(server: BackgroundServer) -> None:
    """:meth:`BackgroundServer.start` with a 50 ms poll, so :meth:`~BackgroundServer.stop` returns at
    once instead of after up to half a second (it adds up over a test suite's fakes)."""
    if server._server is not None:
        return
    bound = type(f"{type(server).__name__}Handler", (server.handler_class(),), {"owner": server})
    server._server = QuietServer(server.port, bound)
    server._server.block_on_close = server.block_on_close
    server.port = server._server.server_address[1]
    server._thread = threading.Thread(
        target=functools.partial(server._server.serve_forever, 0.05),
        name=f"{server.thread_name}-{server.port}",
        daemon=True,
    )
    server._thread.start()


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


class _ForgeGit(GitHttpServer):
    """The git server: any user's token is a password; a push may move pull requests' heads."""

    forge: FakeForge | None = None

    def start(self) -> Self:
        self.root = Path(self.root).resolve()
        serve_quickly(self)
        return self

    def check(self, authorization: str | None) -> str | None:
        from baton.testing.git_http import _basic_credentials

        creds = _basic_credentials(authorization)
        if creds is None or self.forge is None:
            return None
        user = self.forge.user_by_token(creds[1])
        return None if user is None else user.login

    def record(self, request: GitHttpRequest) -> None:
        super().record(request)
        if request.path.endswith("/git-receive-pack") and request.status == 200 and self.forge is not None:
            full_name = request.path.strip("/").removesuffix("/git-receive-pack").removesuffix(".git")
            self.forge.pushed(full_name, request.username or "")


class FakeForge(BackgroundServer):
    """The fake GitHub; ``with FakeForge(tmp_path) as fake:`` or :meth:`start`/:meth:`stop`."""

    thread_name = "fake-forge"
    block_on_close = False

    def __init__(
        self,
        root: Path,
        *,
        secret: str = "",
        deliver_to: str | None = None,
        port: int = 0,
        git_port: int = 0,
        description: str = "ghes-3.19",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.root, self.port, self.secret, self.deliver_to = Path(root), port, secret, deliver_to
        self.description, self.clock = description, clock
        self.rest = rest_description(description)
        self.hooks = webhook_description(description)
        self.lock = threading.RLock()
        self.users: dict[str, User] = {}
        self.repos: dict[str, Repo] = {}
        self.requests: list[ApiRequest] = []
        self.violations: list[Violation] = []
        self.deliveries: list[Delivery] = []
        self.pushes: list[Push] = []
        self._comments: dict[int, IssueComment] = {}
        self._reviews: dict[int, Review] = {}
        self.log_key = secrets.token_hex(8)  # the "pre-signed" part of log download URLs
        self._ids = itertools.count(1001)
        self._faults: list[tuple[str, float]] = []  # ("fail", status) | ("stall", seconds), in order
        self._local = threading.local()
        self.pending = _Pending()
        self.git = _ForgeGit(root=self.root / "git", token="", port=git_port)
        self.git.forge = self
        self.render = Render(self.rest, self.hooks, self.api_url, self.web_url, self.clone_url, self.user)
        self.payloads = Payloads(self.render)

    # -- server ---------------------------------------------------------------------------------------

    def handler_class(self) -> type[QuietHandler]:
        from baton.testing.fake_forge_api import ApiHandler

        return ApiHandler

    def start(self) -> Self:
        (self.root / "git").mkdir(parents=True, exist_ok=True)
        self.git.start()
        serve_quickly(self)
        self.render.api_url, self.render.web_url = self.api_url, self.web_url
        return self

    def stop(self) -> None:
        # each server's loop notices its shutdown within half a second: wait for both at once
        git = threading.Thread(target=self.git.stop, name="fake-forge-git-stop")
        git.start()
        super().stop()
        git.join()

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        """The REST base a client is configured with (GHES-style)."""
        return f"{self.web_url}/api/v3"

    def clone_url(self, repo: Repo | str) -> str:
        full_name = repo.full_name if isinstance(repo, Repo) else repo
        return f"http://127.0.0.1:{self.git.port}/{full_name}.git"

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
            repo.known = repo.branches()
            self.repos[full_name] = repo
            return repo

    def repo(self, full_name: str) -> Repo:
        with self.lock:
            if full_name not in self.repos:
                raise ForgeRefused(404, "Not Found")
            return self.repos[full_name]

    def commit(
        self, repo: str, branch: str, files: dict[str, str], message: str = "change", base: str | None = None
    ) -> str:
        """A commit of ``files`` on ``branch`` (created from ``base``, default the default branch, when
        new), made in the bare repository as a push would; sends ``synchronize`` to its open PRs."""
        r = self.repo(repo)
        parent = r.head(branch) or r.head(base or r.default_branch)
        env = {**os.environ, "GIT_INDEX_FILE": str(r.path / f"index-{secrets.token_hex(4)}")}
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
        sha = r.git(*args)
        r.git("update-ref", f"refs/heads/{branch}", sha)
        self._moved(r, branch, parent, sha, r.owner)
        return sha

    def branches(self, repo: str) -> dict[str, str]:
        return self.repo(repo).branches()

    def pushed(self, full_name: str, login: str) -> None:
        """After a push over git: record the moved branches, and synchronize their open PRs."""
        with self.lock:
            repo = self.repos.get(full_name)
            if repo is None:
                return
            known = repo.known
            now = repo.branches()
            for branch in sorted(set(known) | set(now)):
                if known.get(branch) != now.get(branch):
                    self._moved(repo, branch, known.get(branch), now.get(branch), login)

    def _moved(self, repo: Repo, branch: str, old: str | None, new: str | None, login: str) -> None:
        with self.lock:
            self.pushes.append(Push(repo.full_name, branch, old, new, login))
            repo.known = repo.branches()
            for issue in repo.issues.values():
                if issue.pr and issue.state == "open" and issue.pr.head_ref == branch and new:
                    self._touch(issue)
                    self._emit(
                        "pull_request",
                        "synchronize",
                        self.payloads.pull_request("synchronize", repo, issue, login, before=old),
                    )

    # -- issues and pull requests ------------------------------------------------------------------------

    def _touch(self, issue: Issue) -> None:
        issue.updated_at = max(self.clock(), issue.updated_at)

    def issue(self, repo: str, number: int) -> Issue:
        with self.lock:
            issue = self.repo(repo).issues.get(number)
            if issue is None:
                raise ForgeRefused(404, "Not Found")
            return issue

    def open_issue(
        self,
        repo: str,
        login: str,
        title: str,
        body: str = "",
        labels: Sequence[str] = (),
        assignees: Sequence[str] = (),
    ) -> int:
        """An open issue; sends ``issues.opened``. Its number."""
        with self.lock:
            r = self.repo(repo)
            now = self.clock()
            issue = Issue(
                r.next_number,
                next(self._ids),
                title,
                body,
                self.user(login).login,
                now,
                now,
                labels=list(labels),
                assignees=list(assignees),
            )
            r.issues[issue.number] = issue
            r.next_number += 1
            self._emit("issues", "opened", self.payloads.issue("opened", r, issue, login))
            return issue.number

    def label(self, repo: str, number: int, login: str, name: str) -> None:
        """Add a label; sends ``issues.labeled`` (``pull_request.labeled`` is not sent)."""
        with self.lock:
            r, issue = self.repo(repo), self.issue(repo, number)
            if name not in issue.labels:
                issue.labels.append(name)
            self._touch(issue)
            self._emit("issues", "labeled", self.payloads.issue("labeled", r, issue, login, label=name))

    def assign(self, repo: str, number: int, login: str, assignee: str) -> None:
        """Assign a user; sends ``issues.assigned``."""
        with self.lock:
            r, issue = self.repo(repo), self.issue(repo, number)
            self.user(assignee)
            if assignee not in issue.assignees:
                issue.assignees.append(assignee)
            self._touch(issue)
            self._emit(
                "issues", "assigned", self.payloads.issue("assigned", r, issue, login, assignee=assignee)
            )

    def comment(self, repo: str, number: int, login: str, body: str) -> int:
        """A new issue or PR comment; sends ``issue_comment.created``. Its id."""
        with self.lock:
            r, issue = self.repo(repo), self.issue(repo, number)
            now = self.clock()
            c = IssueComment(next(self._ids), repo, number, self.user(login).login, body, now, now)
            self._comments[c.id] = c
            issue.comments.append(c.id)
            self._touch(issue)
            self._emit("issue_comment", "created", self.payloads.issue_comment(r, issue, c))
            return c.id

    def edit_comment(self, comment_id: int, body: str) -> IssueComment:
        with self.lock:
            c = self._comments.get(comment_id)
            if c is None:
                raise ForgeRefused(404, "Not Found")
            c.body, c.updated_at = body, self.clock()
            self._touch(self.issue(c.repo, c.number))
            return c

    def comments(self, repo: str, number: int | None = None, login: str | None = None) -> list[IssueComment]:
        """The comments on a repo's issues and PRs (of one, of one author), in order."""
        with self.lock:
            return [
                c
                for c in self._comments.values()
                if c.repo == repo and number in (None, c.number) and login in (None, c.author)
            ]

    def open_pr(
        self,
        repo: str,
        login: str,
        head: str,
        base: str | None = None,
        title: str = "",
        body: str = "",
        draft: bool = False,
    ) -> int:
        """A pull request from ``head`` (a branch of the repo, or ``owner:branch``) onto ``base``; refused
        (:class:`ForgeRefused` 422) as GitHub does when it has no commits over base or one is open for
        it. Sends ``pull_request.opened``. Its number."""
        with self.lock:
            r = self.repo(repo)
            ref = head.partition(":")[2] or head
            base = base or r.default_branch
            if r.head(ref) is None:
                raise ForgeRefused(422, f"head {head!r} does not exist", "PullRequest")
            if r.head(base) is None:
                raise ForgeRefused(422, f"base {base!r} does not exist", "PullRequest")
            if r.ahead(base, ref) == 0:
                raise ForgeRefused(422, f"No commits between {base} and {ref}", "PullRequest")
            for other in r.issues.values():
                if (
                    other.pr
                    and other.state == "open"
                    and other.pr.head_ref == ref
                    and other.pr.base_ref == base
                ):
                    raise ForgeRefused(
                        422, f"A pull request already exists for {r.owner}:{ref}.", "PullRequest"
                    )
            now = self.clock()
            issue = Issue(
                r.next_number,
                next(self._ids),
                title or ref,
                body,
                self.user(login).login,
                now,
                now,
                pr=PullPart(ref, base, draft),
            )
            r.issues[issue.number] = issue
            r.next_number += 1
            r.known = r.branches()
            self._emit("pull_request", "opened", self.payloads.pull_request("opened", r, issue, login))
            return issue.number

    def pulls(self, repo: str) -> list[Issue]:
        with self.lock:
            return [i for i in self.repo(repo).issues.values() if i.pr is not None]

    def set_mergeable(self, repo: str, number: int, mergeable: bool | None) -> None:
        with self.lock:
            issue = self.issue(repo, number)
            assert issue.pr is not None, f"#{number} is not a pull request"
            issue.pr.mergeable = mergeable
            self._touch(issue)

    def close(self, repo: str, number: int, login: str, merged: bool = False) -> None:
        """Close (or merge) an issue or PR; sends ``pull_request.closed`` or ``issues.closed``."""
        with self.lock:
            r, issue = self.repo(repo), self.issue(repo, number)
            now = self.clock()
            issue.state, issue.closed_at = "closed", now
            self._touch(issue)
            if issue.pr is None:
                self._emit("issues", "closed", self.payloads.issue("closed", r, issue, login))
                return
            issue.pr.merged, issue.pr.merged_at = merged, now if merged else None
            issue.pr.head_sha_at_close = r.pr_head(issue)
            self._emit("pull_request", "closed", self.payloads.pull_request("closed", r, issue, login))

    def review(
        self,
        repo: str,
        pr: int,
        login: str,
        body: str = "",
        comments: Iterable[tuple[str, int, str]] = (),
        state: str = "COMMENTED",
    ) -> int:
        """A submitted review with inline ``(path, line, body)`` comments; sends
        ``pull_request_review.submitted`` and one ``pull_request_review_comment.created`` each. Its id."""
        with self.lock:
            r, issue = self.repo(repo), self.issue(repo, pr)
            sha, now = r.pr_head(issue), self.clock()
            review = Review(next(self._ids), repo, pr, self.user(login).login, body, state, sha, now)
            for path, line, text in comments:
                hunk = f"@@ -{max(1, line - 2)},3 +{max(1, line - 2)},3 @@\n line {line}"
                review.comments.append(
                    ReviewComment(next(self._ids), review.id, path, line, text, hunk, sha, login, now)
                )
            self._reviews[review.id] = review
            issue.reviews.append(review.id)
            self._touch(issue)
            self._emit("pull_request_review", "submitted", self.payloads.review(r, issue, review))
            for c in review.comments:
                self._emit(
                    "pull_request_review_comment", "created", self.payloads.review_comment(r, issue, c)
                )
            return review.id

    def reviews(self, repo: str, pr: int) -> list[Review]:
        with self.lock:
            return [self._reviews[i] for i in self.issue(repo, pr).reviews]

    # -- checks and statuses ------------------------------------------------------------------------------

    def add_check_run(
        self,
        repo: str,
        sha: str,
        name: str,
        conclusion: str | None = "failure",
        *,
        status: str = "completed",
        log: bytes | str | Path = b"",
        annotations: Iterable[Annotation | tuple[str, int, str]] = (),
        title: str | None = None,
        summary: str | None = None,
        sender: str = "github-actions[bot]",
    ) -> int:
        """A check run (and the Actions job of the same id, whose log it holds) on ``sha``; a completed
        one sends ``check_run.completed`` and ``check_suite.completed``. Its id (the job id)."""
        with self.lock:
            r = self.repo(repo)
            now = self.clock()
            notes = [a if isinstance(a, Annotation) else Annotation(a[0], a[1], a[2]) for a in annotations]
            run = CheckRun(
                next(self._ids),
                repo,
                sha,
                name,
                status,
                conclusion if status == "completed" else None,
                now,
                now if status == "completed" else None,
                next(self._ids),
                title,
                summary,
                notes,
                log.encode() if isinstance(log, str) else log,
            )
            r.check_runs.append(run)
            prs = self.prs_at(repo, sha)
            for pr in prs:
                self._touch(pr)
            if status == "completed":
                self._emit("check_run", "completed", self.payloads.check_run(r, run, prs, sender))
                self._emit("check_suite", "completed", self.payloads.check_suite(r, run, prs, sender))
            return run.id

    def prs_at(self, repo: str, sha: str) -> list[Issue]:
        """The open pull requests whose head is ``sha``."""
        with self.lock:
            r = self.repo(repo)
            return [i for i in r.issues.values() if i.pr and i.state == "open" and r.pr_head(i) == sha]

    def check_run(self, repo: str, run_id: int) -> CheckRun:
        with self.lock:
            run = next((c for c in self.repo(repo).check_runs if c.id == run_id), None)
            if run is None:
                raise ForgeRefused(404, "Not Found")
            return run

    def set_status(
        self,
        repo: str,
        sha: str,
        context: str,
        state: str,
        description: str | None = None,
        target_url: str | None = None,
        sender: str = "ci-bot[bot]",
    ) -> int:
        """A commit status (error, failure, pending, success); sends ``status``. Its id."""
        with self.lock:
            r = self.repo(repo)
            s = Status(next(self._ids), repo, sha, context, state, description, target_url, self.clock())
            r.statuses.append(s)
            for pr in self.prs_at(repo, sha):
                self._touch(pr)
            self._emit("status", None, self.payloads.status(r, s, sender))
            return s.id

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

    def _emit(self, event: str, action: str | None, payload: dict[str, Any]) -> None:
        errors = self.payloads.check(event, action, payload)
        if errors:
            self.violations.append(Violation("webhook", f"{event}.{action}", errors))
        delivery = new_delivery(event, action, payload)
        with self.lock:
            self.deliveries.append(delivery)
        deferred = getattr(self._local, "deferred", None)
        if deferred is not None:  # inside an API request: sent once its response has gone
            deferred.append(delivery)
        else:
            self.send(delivery)

    def send(self, delivery: Delivery, *, forged: bool = False) -> int:
        """One attempt at ``delivery`` (nothing is sent without ``deliver_to``); the receiver's status."""
        if not self.deliver_to:
            return 0
        status = post(self.deliver_to, delivery, self.secret, forged=forged)
        with self.lock:
            delivery.statuses.append(status)
        return status

    def settle(self, timeout: float = 10.0) -> None:
        """Wait until every API request in flight has answered and sent the deliveries it caused (they
        go after the response, as GitHub's arrive after its API answered)."""
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


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m baton.testing.fake_forge",
        description="A fake GitHub on 127.0.0.1 (REST at /api/v3, git over HTTP, signed webhooks), "
        "for trying baton's forge loop offline. Prints the API URL, each repo's clone URL and each "
        "user's token, then serves until interrupted.",
    )
    parser.add_argument("--port", type=int, default=0, help="the API's port (default: any free one)")
    parser.add_argument(
        "--git-port", type=int, default=0, help="the git server's port (default: any free one)"
    )
    parser.add_argument("--secret", default="", help="the webhook secret deliveries are signed with")
    parser.add_argument("--deliver-to", metavar="URL", help="where webhook deliveries are POSTed")
    parser.add_argument(
        "--repo",
        action="append",
        default=[],
        metavar="OWNER/NAME",
        help="a repository to create (repeatable)",
    )
    parser.add_argument(
        "--user",
        action="append",
        default=[],
        metavar="LOGIN:ROLE[:TOKEN]",
        help="a user with that role (admin, maintain, write, triage, read, none) on every "
        "repo, and optionally its token (repeatable); a login ending in [bot] is a Bot",
    )
    parser.add_argument("--root", type=Path, help="where the bare repositories live (default: a temp dir)")
    args = parser.parse_args(argv)
    root = args.root or Path(tempfile.mkdtemp(prefix="fake-forge-"))
    fake = FakeForge(
        root, secret=args.secret, deliver_to=args.deliver_to, port=args.port, git_port=args.git_port
    )
    fake.start()
    for full_name in args.repo:
        fake.create_repo(full_name)
    for spec in args.user:
        login, _, rest = spec.partition(":")
        role, _, token = rest.partition(":")
        fake.add_user(login, "Bot" if login.endswith("[bot]") else "User", token or None)
        for full_name in args.repo:
            fake.set_permission(full_name, login, role or "write")
    print(f"api: {fake.api_url}", flush=True)
    for full_name in args.repo:
        print(f"clone: {fake.clone_url(full_name)}", flush=True)
    for login, user in fake.users.items():
        print(f"token: {login} {user.token}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
