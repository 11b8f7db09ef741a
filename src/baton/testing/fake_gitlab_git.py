"""Pushes on the fake GitLab (:class:`GitLabGit`): a test's commit or a push over git (the repository's
hooks ask :meth:`GitLabGit.pre_receive` first — members below Developer, protected branches, force
pushes refused with GitLab's words — and tell :meth:`GitLabGit.pushed` after), each a Push Hook, the
open merge requests of the moved branch updated (``oldrev``); branches deleted; forks.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path

from baton.testing.fake_forge_state import Repo
from baton.testing.fake_gitlab_core import GitLabCore, GitLabRefused
from baton.testing.fake_gitlab_state import ACCESS, ZERO_SHA, Issue, MergeRequest, Project


class GitLabGit(GitLabCore):
    """Commits, pushes, branch deletions and forks; every push sends its webhooks."""

    def _touch(self, target: Issue | MergeRequest) -> float:
        """Move ``updated_at`` (at least a millisecond: two changes never share one); the old value."""
        old = target.updated_at
        target.updated_at = max(self.clock(), old + 0.001)
        return old

    # -- git -------------------------------------------------------------------------------------------------

    def commit(
        self,
        project: str,
        branch: str,
        files: dict[str, str],
        message: str = "change",
        *,
        author: str = "root",
        base: str | None = None,
    ) -> str:
        """A commit of ``files`` by ``author`` on ``branch`` (made from ``base``, default the default
        branch, when new), as a push of it would be: Push Hook, open MRs of the branch updated. Its sha."""
        proj = self.project(project)
        repo = proj.repo
        old = repo.head(branch)
        parent = old or repo.head(base or proj.default_branch)
        user = self.user(author)
        env = {
            **os.environ,
            "GIT_INDEX_FILE": str(repo.path / f"index-{secrets.token_hex(4)}"),
            "GIT_AUTHOR_NAME": user.name,
            "GIT_AUTHOR_EMAIL": user.email,
            "GIT_COMMITTER_NAME": user.name,
            "GIT_COMMITTER_EMAIL": user.email,
        }
        try:
            _git(repo.path, env, "read-tree", parent or "--empty")
            for name, content in files.items():
                blob = _git(repo.path, env, "hash-object", "-w", "--stdin", stdin=content)
                _git(repo.path, env, "update-index", "--add", "--cacheinfo", f"100644,{blob},{name}")
            tree = _git(repo.path, env, "write-tree")
        finally:
            Path(env["GIT_INDEX_FILE"]).unlink(missing_ok=True)
        sha = _git(repo.path, env, "commit-tree", tree, "-m", message, *(["-p", parent] if parent else []))
        repo.git("update-ref", f"refs/heads/{branch}", sha, *([old] if old else []))
        self.pushed(proj.path, author, [(old or ZERO_SHA, sha, f"refs/heads/{branch}")])
        return sha

    def delete_branch(self, project: str, branch: str, *, by: str = "root") -> None:
        """A branch deleted (Push Hook with ``after`` 40 zeros)."""
        proj = self.project(project)
        old = proj.head(branch)
        if old is None:
            raise GitLabRefused(404, "404 Branch Not Found")
        proj.repo.git("update-ref", "-d", f"refs/heads/{branch}", old)
        self.pushed(proj.path, by, [(old, ZERO_SHA, f"refs/heads/{branch}")])

    def pre_receive(self, path: str, username: str, updates: list[tuple[str, str, str]]) -> str | None:
        """What GitLab says to a push before it takes it (None: taken): members below Developer and
        protected branches refuse it."""
        with self.lock:
            proj = self.project(path)
            level = self.access(proj, username)
            if level < ACCESS["developer"]:
                return "You are not allowed to push code to this project."
            for old, new, ref in updates:
                branch = ref.removeprefix("refs/heads/")
                rule = proj.protected.get(branch) if ref.startswith("refs/heads/") else None
                if rule is None:
                    continue
                if new == ZERO_SHA:
                    return "You can only delete protected branches using the web interface."
                if level < rule[0]:
                    return "You are not allowed to push code to protected branches on this project."
                if old != ZERO_SHA and not _ancestor(proj, old, new):
                    return "You are not allowed to force push code to a protected branch on this project."
            return None

    def pushed(self, path: str, username: str, updates: list[tuple[str, str, str]]) -> None:
        """Branches moved (a push over git, reported from inside it, or a test's commit): a Push Hook
        each, and the open merge requests whose source they are updated (``oldrev``)."""
        with self.change():
            proj = self.projects.get(path)
            if proj is None:
                return
            for old, new, ref in updates:
                if not ref.startswith("refs/heads/"):
                    continue
                shas = [] if new == ZERO_SHA else self._new_commits(proj, old, new)
                self.emit(
                    proj, "Push Hook", self.payloads.push(proj, ref, old, new, username or "root", shas)
                )
                if new != ZERO_SHA:
                    self._source_moved(proj, ref.removeprefix("refs/heads/"), old, username or "root")

    def _new_commits(self, proj: Project, old: str, new: str) -> list[str]:
        span = new if old == ZERO_SHA else f"{old}..{new}"
        others = (
            [f"^{sha}" for b, sha in proj.repo.branches().items() if sha != new] if old == ZERO_SHA else []
        )
        out = proj.repo.git("rev-list", span, *others, check=False)
        return [line for line in out.splitlines() if line]

    def _source_moved(self, proj: Project, branch: str, old: str, by: str) -> None:
        """The open MRs whose source branch moved (here, or upstream of this fork) are updated."""
        for target in self.projects.values():
            for mr in target.mrs.values():
                source = mr.source_project or target.path
                if mr.state == "opened" and source == proj.path and mr.source_branch == branch:
                    self.track_head(target, mr)
                    self._touch(mr)
                    body = self.payloads.merge_request(
                        target, mr, "update", by, {}, oldrev=None if old == ZERO_SHA else old
                    )
                    self.emit(target, "Merge Request Hook", body)

    def fork(self, project: str, namespace: str) -> Project:
        """``namespace``'s fork of ``project`` (every branch), for merge requests from a fork."""
        with self.lock:
            source = self.project(project)
            path = f"{namespace}/{source.name}"
            where = self.root / f"{path}.git"
            subprocess.run(["git", "clone", "-q", "--bare", str(source.repo.path), str(where)], check=True)
            fork = self.add_project_at(path, where, source.default_branch)
            fork.forked_from = source.path
            return fork

    def add_project_at(self, path: str, where: Path, default_branch: str) -> Project:
        """A project over a bare repository that already exists at ``where``."""
        now = self.clock()
        pid = next(self._ids)
        repo = Repo(path.rpartition("/")[0], path.rpartition("/")[2], pid, where, default_branch, now)
        project = Project(pid, path, repo, now)
        project.members[path.partition("/")[0]] = ACCESS["owner"]
        self.user(path.partition("/")[0])
        self.projects[path] = project
        self.install_hooks(project)
        return project


def _git(where: Path, env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    proc = subprocess.run(
        ["git", "-C", str(where), *args], input=stdin, env=env, capture_output=True, text=True, check=True
    )
    return proc.stdout.strip()


def _ancestor(proj: Project, old: str, new: str) -> bool:
    proc = subprocess.run(
        ["git", "-C", str(proj.repo.path), "merge-base", "--is-ancestor", old, new], check=False
    )
    return proc.returncode == 0
