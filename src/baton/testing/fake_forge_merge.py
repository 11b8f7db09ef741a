"""The fake forge's merge settings and the writes of baton's merge policy (:class:`ForgeMerge`): a pull
request taken out of draft, the forge's auto-merge enabled, the required checks of the default branch
and the repository's "Allow auto-merge" — state a test reads (``issue.pr.draft``, ``issue.pr.auto_merge``)
and sets (:meth:`ForgeMerge.require_checks`, :meth:`ForgeMerge.allow_auto_merge`). GitHub does both
writes only through its GraphQL API: :func:`graphql` answers the three operations baton sends
(``markPullRequestReadyForReview``, the repository's merge settings, ``enablePullRequestAutoMerge``) at
``/api/graphql``, as a GitHub Enterprise Server does, with GraphQL's manners (200 with ``errors`` for a
refusal); anything else is answered with an error, never guessed at.
"""

from __future__ import annotations

import json
import re
from typing import Any

from baton.testing.fake_forge_core import ForgeRefused
from baton.testing.fake_forge_state import Issue
from baton.testing.fake_forge_threads import ForgeThreads

GRAPHQL_PATH = "/api/graphql"
_NODE = re.compile(r"I_(\d{8,})")


class ForgeMerge(ForgeThreads):
    """Drafts, auto-merge and required checks, on top of the conversations."""

    def require_checks(self, repo: str, names: list[str]) -> None:
        """The default branch's protection requires these checks (contexts) before a merge."""
        with self._change():
            self.repo(repo).required_checks = list(names)

    def require_approvals(self, repo: str, count: int) -> None:
        """The default branch's protection requires ``count`` approving reviews before a merge."""
        with self._change():
            self.repo(repo).required_approvals = count

    def allow_auto_merge(self, repo: str, allowed: bool = True) -> None:
        with self._change():
            self.repo(repo).allow_auto_merge = allowed

    def mark_ready(self, repo: str, number: int, login: str) -> None:
        """The PR out of draft (GitHub's "Ready for review"); 422 for a closed one."""
        with self._change():
            issue = self.open_pull(repo, number)
            assert issue.pr is not None
            issue.pr.draft = False
            self._touch(issue)

    def enable_auto_merge(
        self, repo: str, number: int, login: str, method: str, clean_refused: bool = True
    ) -> None:
        """The forge's auto-merge of the PR with ``method``: refused as GitHub does when the repository
        does not allow it, the PR is a draft, or there is nothing left to wait for (``clean_refused``:
        GitHub's "clean" or "unstable" merge state: it could be merged now)."""
        with self._change():
            if not self.repo(repo).allow_auto_merge:
                raise ForgeRefused(422, "Auto merge is not allowed for this repository")
            issue = self.open_pull(repo, number)
            assert issue.pr is not None
            if issue.pr.draft:
                raise ForgeRefused(422, "Can't enable auto-merge for this pull request: it is a draft")
            state = self.merge_state(repo, issue)
            if clean_refused and state in ("clean", "unstable"):
                raise ForgeRefused(422, f"Pull request Pull request is in {state} status")
            issue.pr.auto_merge, issue.pr.auto_merge_by = method.lower(), login
            self._touch(issue)

    def merge_state(self, repo: str, issue: Issue) -> str:
        """GitHub's ``mergeStateStatus``, as far as the fake models it: ``dirty`` (a conflict),
        ``blocked`` (a required check not green, or fewer approvals on the head than required),
        ``unstable`` (another check not green), else ``clean``."""
        assert issue.pr is not None
        r = self.repo(repo)
        if issue.pr.mergeable is False:
            return "dirty"
        head = r.pr_head(issue)
        green: dict[str, bool] = {}
        for run in r.check_runs:
            if run.head_sha == head:  # later runs of a name replace earlier ones
                green[run.name] = run.status == "completed" and run.conclusion in (
                    "success",
                    "neutral",
                    "skipped",
                )
        for status in r.statuses:
            if status.sha == head:
                green[status.context] = status.state == "success"
        latest = {v.author: v.state for v in self.reviews(repo, issue.number) if v.commit_id == head}
        approvals = sum(1 for state in latest.values() if state == "APPROVED")
        if approvals < r.required_approvals or not all(green.get(c, False) for c in r.required_checks):
            return "blocked"
        return "clean" if all(green.values()) else "unstable"

    def open_pull(self, repo: str, number: int) -> Issue:
        issue = self.issue(repo, number)
        if issue.pr is None:
            raise ForgeRefused(404, "Not Found")
        if issue.state != "open":
            raise ForgeRefused(422, "Pull request is closed")
        return issue

    def retitle(self, repo: str, number: int, title: str, draft: bool) -> None:
        """An open PR's title edited (Gitea: a work-in-progress prefix is its draft flag)."""
        with self._change():
            issue = self.open_pull(repo, number)
            assert issue.pr is not None
            issue.title, issue.pr.draft = title, draft
            self._touch(issue)

    def pull_by_node(self, node_id: str) -> tuple[str, Issue] | None:
        """The repository and pull request a GraphQL node id (the fake's ``I_<id>``) names."""
        match = _NODE.fullmatch(node_id)
        if match is None:
            return None
        with self.lock:
            for repo in self.repos.values():
                for issue in repo.issues.values():
                    if issue.id == int(match.group(1)) and issue.pr is not None:
                        return repo.full_name, issue
        return None


def graphql(fake: ForgeMerge, login: str, body: bytes) -> tuple[int, Any]:
    """GitHub's GraphQL endpoint, for the operations baton sends: ``(status, JSON body)``."""
    try:
        request = json.loads(body)
        query, variables = str(request["query"]), dict(request.get("variables") or {})
    except (ValueError, KeyError, TypeError):
        return 400, {"message": "Problems parsing JSON"}
    try:
        if "markPullRequestReadyForReview" in query:
            repo, issue = _pull(fake, variables)
            fake.mark_ready(repo, issue.number, login)
            return 200, {"data": {"markPullRequestReadyForReview": {"pullRequest": {"isDraft": False}}}}
        if "enablePullRequestAutoMerge" in query:
            repo, issue = _pull(fake, variables)
            head = variables.get("head")
            if head and head != fake.repo(repo).pr_head(issue):
                raise ForgeRefused(422, "The expected head OID does not match the pull request's head")
            method = str(variables.get("method") or "MERGE")
            if method not in ("MERGE", "SQUASH", "REBASE"):
                raise ForgeRefused(422, f"Argument 'mergeMethod' has an invalid value ({method})")
            fake.enable_auto_merge(repo, issue.number, login, method)
            merge = {"autoMergeRequest": {"mergeMethod": method}}
            return 200, {"data": {"enablePullRequestAutoMerge": {"pullRequest": merge}}}
        if "repository(" in query and "autoMergeAllowed" in query:
            full = f"{variables.get('owner')}/{variables.get('name')}"
            allowed = fake.repo(full).allow_auto_merge
            settings = {
                "autoMergeAllowed": allowed,
                "viewerDefaultMergeMethod": "MERGE",
                "mergeCommitAllowed": True,
                "squashMergeAllowed": True,
                "rebaseMergeAllowed": True,
            }
            return 200, {"data": {"repository": settings}}
    except ForgeRefused as exc:
        return 200, {"data": None, "errors": [{"type": "UNPROCESSABLE", "message": exc.message}]}
    except KeyError as exc:
        return 200, {"data": None, "errors": [{"type": "NOT_FOUND", "message": f"not found: {exc}"}]}
    return 200, {"errors": [{"message": "the fake forge does not know this GraphQL operation"}]}


def _pull(fake: ForgeMerge, variables: dict[str, Any]) -> tuple[str, Issue]:
    found = fake.pull_by_node(str(variables.get("id") or ""))
    if found is None:
        raise ForgeRefused(422, f"Could not resolve to a node with the global id of '{variables.get('id')}'")
    return found
