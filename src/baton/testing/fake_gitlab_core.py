"""The fake GitLab's core (:class:`GitLabCore`): its state under one lock — users and their tokens,
projects (a bare git repository each) and members' access levels — what git says of a merge request
(its head, ``diff_refs``, conflicts through ``git merge-tree``, its diffs) and the project hooks; the
deliveries are :mod:`fake_gitlab_outbox`'s, what happens on it :mod:`fake_gitlab_drive`'s.
"""

from __future__ import annotations

import itertools
import re
import secrets
import subprocess
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from baton.testing.fake_forge_state import Repo, init_bare
from baton.testing.fake_gitlab_hooks import EVENTS
from baton.testing.fake_gitlab_outbox import Outbox
from baton.testing.fake_gitlab_payloads import ThreadPayloads
from baton.testing.fake_gitlab_render_threads import ThreadsRender
from baton.testing.fake_gitlab_state import (
    ACCESS,
    ApiRequest,
    Hook,
    MergeRequest,
    Project,
    Token,
    User,
    Violation,
)


class GitLabRefused(Exception):
    """What GitLab answers with an error: the status and its JSON body (``{"message": …}``)."""

    def __init__(self, status: int, message: Any = None, body: dict[str, Any] | None = None) -> None:
        super().__init__(str(message if body is None else body))
        self.status = status
        self.body = body if body is not None else {"message": message}


class GitLabCore(Outbox):
    """State, users, tokens, projects, what git says; the URLs come from the server's port."""

    port: int = 0

    def __init__(
        self, root: Path, *, secret: str = "", deliver_to: str | None = None, clock: Any = time.time
    ) -> None:
        super().__init__(secret, deliver_to)
        self.root, self.clock = Path(root), clock
        self.lock = threading.RLock()
        self._ids = itertools.count(1001)
        self.users: dict[str, User] = {}
        self.tokens: dict[str, Token] = {}
        self.projects: dict[str, Project] = {}
        self.requests: list[ApiRequest] = []
        self.violations: list[Violation] = []
        self.default_hook.id = next(self._ids)
        self.log_key = secrets.token_hex(8)  # what the repositories' git hooks report to the fake with
        self._conflicts: dict[tuple[str, str], bool] = {}
        self.render = ThreadsRender(
            lambda: self.web_url, self.user, self.mergeability, self.diff_refs, self.mr_sha, self._project_id
        )
        self.payloads = ThreadPayloads(self.render)
        self.users["root"] = User(1, "root", "Administrator", created_at=self.clock())

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.web_url}/api/v4"

    def clone_url(self, project: str) -> str:
        """The project's ``http_url_to_repo`` (git over HTTP, a token as the password)."""
        return f"{self.web_url}/{self.project(project).path}.git"

    # -- users and tokens ---------------------------------------------------------------------------------

    def add_user(
        self,
        username: str,
        access: int | str | None = None,
        *,
        name: str | None = None,
        bot: bool = False,
        scopes: tuple[str, ...] = ("api",),
        token: str | None = None,
    ) -> User:
        """A user with a personal access token (``scopes``; :meth:`token` gives it); ``access`` makes
        it a member of every project there is now (a level, or guest, reporter, developer, …)."""
        with self.lock:
            user = self.users.get(username)
            if user is None:
                title = name or username.replace("-", " ").replace("_", " ").title()
                user = User(next(self._ids), username, title, bot=bot, created_at=self.clock())
                self.users[username] = user
            self.add_token(username, scopes=scopes, value=token, name=f"{username}-token")
            for project in self.projects.values():
                if access is not None:
                    project.members[username] = _level(access)
            return user

    def user(self, username: str) -> User:
        """The user of that name (made, with no token and no membership, when unknown)."""
        with self.lock:
            if username not in self.users:
                title = username.replace("-", " ").title()
                self.users[username] = User(next(self._ids), username, title, created_at=self.clock())
            return self.users[username]

    def user_by_id(self, user_id: int) -> User | None:
        with self.lock:
            return next((u for u in self.users.values() if u.id == user_id), None)

    def add_token(
        self,
        username: str,
        *,
        scopes: tuple[str, ...] = ("api",),
        expires_at: float | None = None,
        name: str = "token",
        value: str | None = None,
    ) -> Token:
        """A personal access token of ``username`` (``expires_at``: seconds since the epoch)."""
        with self.lock:
            self.user(username)
            token = Token(
                next(self._ids),
                value or f"glpat-{secrets.token_urlsafe(15)}",
                username,
                name,
                tuple(scopes),
                self.clock(),
                expires_at,
            )
            self.tokens[token.value] = token
            return token

    def add_project_token(
        self,
        project: str,
        *,
        name: str = "baton",
        access: int | str = "maintainer",
        scopes: tuple[str, ...] = ("api",),
        expires_at: float | None = None,
    ) -> Token:
        """A project access token: a bot user (``project_<id>_bot_<hex>``), member of the project at
        ``access``, and its token."""
        with self.lock:
            proj = self.project(project)
            username = f"project_{proj.id}_bot_{secrets.token_hex(16)}"
            self.users[username] = User(next(self._ids), username, name, bot=True, created_at=self.clock())
            proj.members[username] = _level(access)
            return self.add_token(username, scopes=scopes, expires_at=expires_at, name=name)

    def token(self, username: str) -> str:
        """The value of ``username``'s first token (the one :meth:`add_user` made; :meth:`add_token`
        returns the others)."""
        with self.lock:
            found = [t for t in self.tokens.values() if t.username == username]
            if not found:
                raise KeyError(f"{username} has no token")
            return found[0].value

    def revoke(self, value: str) -> None:
        with self.lock:
            self.tokens[value].revoked = True

    def expire(self, value: str, at: float | None = None) -> None:
        """The token expires at ``at`` (default: now)."""
        with self.lock:
            self.tokens[value].expires_at = self.clock() if at is None else at

    def authenticate(self, value: str) -> Token:
        """The token's record; :class:`GitLabRefused` 401 with GitLab's words when it cannot be used."""
        with self.lock:
            token = self.tokens.get(value) if value else None
            if token is None:
                raise GitLabRefused(401, "401 Unauthorized")
            if token.revoked:
                raise GitLabRefused(
                    401, body=_invalid("Token was revoked. You have to re-authorize from the user.")
                )
            if not token.active(self.clock()):
                raise GitLabRefused(
                    401,
                    body=_invalid("Token is expired. You can either do re-authorization or token refresh."),
                )
            token.last_used_at = self.clock()
            return token

    # -- projects -----------------------------------------------------------------------------------------

    def add_project(
        self,
        path: str,
        files: dict[str, str] | None = None,
        *,
        default_branch: str = "main",
        description: str = "",
        visibility: str = "private",
    ) -> Project:
        """A project at ``path`` (``group/name``, nested groups allowed) whose default branch holds one
        commit of ``files``; the default branch is protected as GitLab protects it (maintainers push
        and merge, no one force-pushes)."""
        with self.lock:
            if path in self.projects or "/" not in path:
                raise ValueError(f"cannot make a project at {path!r}")
            now = self.clock()
            where = self.root / f"{path}.git"
            init_bare(
                where, default_branch, files or {"README.md": f"# {path.rpartition('/')[2]}\n"}, "root", now
            )
            pid = next(self._ids)
            repo = Repo(path.rpartition("/")[0], path.rpartition("/")[2], pid, where, default_branch, now)
            project = Project(pid, path, repo, now, description=description, visibility=visibility)
            project.protected[default_branch] = (ACCESS["maintainer"], ACCESS["maintainer"])
            self.projects[path] = project
            self.install_hooks(project)
            return project

    def project(self, ref: str | int) -> Project:
        """A project by its path or its id; 404 as GitLab says it."""
        with self.lock:
            text = str(ref)
            if text.isdigit():
                found = next((p for p in self.projects.values() if p.id == int(text)), None)
            else:
                found = self.projects.get(text)
            if found is None:
                raise GitLabRefused(404, "404 Project Not Found")
            return found

    def _project_id(self, path: str) -> int:
        return self.project(path).id

    def set_access(self, project: str, username: str, access: int | str | None) -> None:
        """``username``'s access level on ``project`` (None: not a member)."""
        with self.lock:
            self.user(username)
            members = self.project(project).members
            if access is None:
                members.pop(username, None)
            else:
                members[username] = _level(access)

    def access(self, project: Project, username: str) -> int:
        return project.members.get(username, 0)

    def protect(self, project: str, branch: str, *, push: int | str = 40, merge: int | str = 40) -> None:
        """Protect ``branch``: who may push to it and merge into it (force pushes are refused)."""
        with self.lock:
            self.project(project).protected[branch] = (_level(push), _level(merge))

    def unprotect(self, project: str, branch: str) -> None:
        with self.lock:
            self.project(project).protected.pop(branch, None)

    def add_hook(
        self, project: str, url: str, token: str = "", events: tuple[str, ...] | None = None
    ) -> Hook:
        """A project hook posting ``events`` (push, note, issues, merge_requests, pipeline, job: all by
        default) to ``url`` with ``token`` as its ``X-Gitlab-Token``."""
        with self.lock:
            hook = Hook(next(self._ids), url, token, frozenset(events or EVENTS.values()))
            self.project(project).hooks.append(hook)
            return hook

    def install_hooks(self, project: Project) -> None:
        """The repository's git hooks, which ask the fake before a push and tell it after (again once
        the server has its port)."""
        if not self.port:
            return

        def where(kind: str) -> str:
            return f"{self.web_url}/_fake/{kind}/{quote(project.path, safe='')}?key={self.log_key}"

        project.repo.report_pushes_to(where("pushed"))
        hook = project.repo.path / "hooks" / "pre-receive"
        hook.write_text(_PRE_RECEIVE.format(python=_python(), url=where("pre-receive")))
        hook.chmod(0o755)

    # -- what git says of a merge request ---------------------------------------------------------------

    def source_of(self, project: Project, mr: MergeRequest) -> Project:
        return project if mr.source_project is None else self.project(mr.source_project)

    def mr_sha(self, project: Project, mr: MergeRequest) -> str:
        """The MR's head: its source branch's (so a push moves it) while open, else the one it kept."""
        if mr.state == "opened":
            sha = self.source_of(project, mr).head(mr.source_branch)
            if sha:
                return sha
        return mr.sha_at_close or project.repo.ref(f"refs/merge-requests/{mr.iid}/head") or "0" * 40

    def track_head(self, project: Project, mr: MergeRequest) -> None:
        """``refs/merge-requests/<iid>/head`` in the target project follows the head (fetched from a
        fork), as GitLab keeps it, so git can compare the two there."""
        ref = f"refs/merge-requests/{mr.iid}/head"
        if mr.source_project is None:
            sha = project.head(mr.source_branch)
            if sha:
                project.repo.git("update-ref", ref, sha)
            return
        fork = self.project(mr.source_project)
        project.repo.git(
            "fetch", "-q", "--no-tags", str(fork.repo.path), f"+refs/heads/{mr.source_branch}:{ref}"
        )

    def diff_refs(self, project: Project, mr: MergeRequest) -> dict[str, str]:
        if mr.frozen_refs is not None:
            return dict(mr.frozen_refs)
        head = self.mr_sha(project, mr)
        start = project.head(mr.target_branch) or head
        base = project.repo.git("merge-base", start, head, check=False) or start
        return {"base_sha": base, "head_sha": head, "start_sha": start}

    def has_conflicts(self, project: Project, target: str, source: str) -> bool:
        key = (target, source)
        if key not in self._conflicts:
            proc = subprocess.run(
                [
                    "git",
                    "-C",
                    str(project.repo.path),
                    "merge-tree",
                    "--write-tree",
                    "--no-messages",
                    target,
                    source,
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            self._conflicts[key] = proc.returncode == 1
        return self._conflicts[key]

    def mergeability(self, project: Project, mr: MergeRequest) -> tuple[str, str, bool]:
        """``(merge_status, detailed_merge_status, has_conflicts)`` as GitLab computes them: the first
        failing check in GitLab's order (open, draft, conflict, discussions, pipeline, approvals)."""
        if mr.state != "opened":
            return "can_be_merged" if mr.state == "merged" else "cannot_be_merged", "not_open", False
        head, target = self.mr_sha(project, mr), project.head(mr.target_branch)
        if not self.source_of(project, mr).head(mr.source_branch) or target is None:
            return "cannot_be_merged", "commits_status", False
        conflicts = self.has_conflicts(project, target, head)
        status = "cannot_be_merged" if conflicts else "can_be_merged"
        if mr.draft:
            return status, "draft_status", conflicts
        if conflicts:
            return status, "conflict", True
        if project.only_allow_merge_if_all_discussions_are_resolved and not self.render.discussions_resolved(
            project, mr
        ):
            return status, "discussions_not_resolved", False
        latest = self.head_pipeline(project, head)
        if project.only_allow_merge_if_pipeline_succeeds and (latest is None or latest.status != "success"):
            running = latest is not None and latest.status in ("created", "pending", "running", "preparing")
            return status, "ci_still_running" if running else "ci_must_pass", False
        if len(mr.approved_by) < mr.approvals_required:
            return status, "not_approved", False
        return status, "mergeable", False

    def head_pipeline(self, project: Project, sha: str) -> Any:
        found = [p for p in project.pipelines.values() if p.sha == sha]
        return max(found, key=lambda p: p.id) if found else None

    def diffs(self, project: Project, mr: MergeRequest) -> list[dict[str, Any]]:
        """The MR's changes, one entry a file, as ``GET …/merge_requests/:iid/diffs`` lists them."""
        refs = self.diff_refs(project, mr)
        text = project.repo.git("diff", "-M", "--full-index", refs["base_sha"], refs["head_sha"], check=False)
        return [_file_diff(chunk) for chunk in re.split(r"^diff --git ", text, flags=re.MULTILINE) if chunk]


def _level(access: int | str) -> int:
    return access if isinstance(access, int) else ACCESS[access]


def _invalid(description: str) -> dict[str, str]:
    return {"error": "invalid_token", "error_description": description}


def _python() -> str:
    import sys

    return sys.executable


def _file_diff(chunk: str) -> dict[str, Any]:
    """One file of ``git diff --full-index`` (after its ``diff --git`` line's start) as GitLab's diff."""
    head, _, hunks = chunk.partition("\n@@")
    lines = head.splitlines()
    a_path, _, b_path = lines[0].partition(" b/")
    old, new = a_path.removeprefix("a/"), b_path
    info = {"old_path": old, "new_path": new, "a_mode": "100644", "b_mode": "100644"}
    flags = {"new_file": False, "renamed_file": False, "deleted_file": False}
    for line in lines[1:]:
        if line.startswith("new file mode "):
            flags["new_file"], info["a_mode"], info["b_mode"] = True, "0", line.split()[-1]
        elif line.startswith("deleted file mode "):
            flags["deleted_file"], info["a_mode"], info["b_mode"] = True, line.split()[-1], "0"
        elif line.startswith("rename from "):
            flags["renamed_file"], info["old_path"] = True, line.removeprefix("rename from ")
        elif line.startswith("rename to "):
            info["new_path"] = line.removeprefix("rename to ")
        elif line.startswith("index ") and len(line.split()) == 3:
            info["a_mode"] = info["b_mode"] = line.split()[-1]
    diff = ("@@" + hunks + "\n") if hunks else ""
    return {**info, **flags, "diff": diff, "too_large": False, "collapsed": False, "generated_file": False}


# the fake GitLab's say on a push, from inside it: protected branches, members who may not push
_PRE_RECEIVE = """#!{python} -IS
import os, sys, urllib.error, urllib.request
data = sys.stdin.buffer.read()
headers = {{"X-Fake-Forge-User": os.environ.get("REMOTE_USER", "")}}
request = urllib.request.Request("{url}", data=data, headers=headers, method="POST")
try:
    urllib.request.urlopen(request, timeout=60).read()
except urllib.error.HTTPError as exc:
    for line in exc.read().decode().splitlines():
        print(f"GitLab: {{line}}", file=sys.stderr)
    sys.exit(1)
except Exception as exc:
    print(f"GitLab: the fake did not answer: {{exc}}", file=sys.stderr)
    sys.exit(1)
"""
