"""The merge policy on GitHub (:class:`~baton.forge.kinds.readiness.MergeClient`): what a pull request's
readiness is read from, and the two writes baton may make — taking it out of draft and enabling
GitHub's own auto-merge. Both writes exist only in GitHub's GraphQL API
(``markPullRequestReadyForReview``, ``enablePullRequestAutoMerge``), at ``https://api.github.com/graphql``
(GitHub Enterprise Server: ``https://HOST/api/graphql``), with the same token.

What a readiness costs, in REST requests: the PR, its reviews (one page a hundred), the head's check runs
and its combined status, and the base branch and its rules (the required checks, from branch
protection and from rulesets; a refusal of either leaves that source out, and with none named every
check on the head must be green).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from baton.forge.data.model import ForgeError, Review
from baton.forge.kinds.github.client import actor
from baton.forge.kinds.http import ForgeHTTP
from baton.forge.kinds.readiness import GREEN, PENDING, RED, CheckState, PullState
from baton.forge.kinds.rest import epoch, repo_path

PER_PAGE = 100
GREEN_CONCLUSIONS = frozenset({"success", "neutral", "skipped"})
STATUS_STATES = {"success": GREEN, "pending": PENDING, "failure": RED, "error": RED}
METHODS = ("MERGE", "SQUASH", "REBASE")  # GraphQL's PullRequestMergeMethod

READY = """mutation($id: ID!) {
  markPullRequestReadyForReview(input: {pullRequestId: $id}) { pullRequest { isDraft } }
}"""
REPO = """query($owner: String!, $name: String!) {
  repository(owner: $owner, name: $name) {
    autoMergeAllowed viewerDefaultMergeMethod mergeCommitAllowed squashMergeAllowed rebaseMergeAllowed
  }
}"""
AUTO = """mutation($id: ID!, $method: PullRequestMergeMethod!, $head: GitObjectID) {
  enablePullRequestAutoMerge(input: {pullRequestId: $id, mergeMethod: $method, expectedHeadOid: $head}) {
    pullRequest { autoMergeRequest { mergeMethod } }
  }
}"""


def graphql_url(api_url: str) -> str:
    """GitHub's GraphQL endpoint beside its REST ``api_url``: ``https://api.github.com/graphql``, or a
    GitHub Enterprise Server's ``https://HOST/api/graphql`` for ``https://HOST/api/v3``."""
    base = api_url.rstrip("/")
    return base.removesuffix("/v3") + "/graphql" if base.endswith("/api/v3") else base + "/graphql"


class GitHubMerge:
    """:class:`~baton.forge.kinds.readiness.MergeClient` over a GitHub client's :class:`ForgeHTTP`."""

    def __init__(self, http: ForgeHTTP) -> None:
        self.http = http
        self._nodes: dict[tuple[str, int], str] = {}  # (repo, number) -> the PR's GraphQL id, as read

    def pull_state(self, repo: str, number: int) -> PullState:
        path = repo_path(repo, "GitHub")
        pull = self.http.json("GET", f"{path}/pulls/{int(number)}")
        head = str((pull.get("head") or {}).get("sha") or "")
        base = str((pull.get("base") or {}).get("ref") or "")
        if pull.get("node_id"):
            self._nodes[(repo, int(number))] = str(pull["node_id"])
        checks, unknown = self._checks(path, head)
        return PullState(
            number=int(number),
            open=pull.get("state") == "open" and not pull.get("merged"),
            draft=bool(pull.get("draft")),
            head_sha=head,
            base_ref=base,
            reviews=tuple(self._reviews(path, number)),
            checks=tuple(checks),
            required=self._required(path, base) if base else None,
            auto_merge=pull.get("auto_merge") is not None,
            checks_unknown=unknown,
        )

    def _reviews(self, path: str, number: int) -> list[Review]:
        return [
            Review(
                id=int(r["id"]),
                author=actor(r.get("user"), r.get("author_association")),
                state=str(r.get("state") or ""),
                body=str(r.get("body") or ""),  # an approval's words are a turn the policy waits for
                commit=r.get("commit_id"),
                url=str(r.get("html_url") or ""),
                at=epoch(r.get("submitted_at")),
            )
            for r in self.http.pages(f"{path}/pulls/{int(number)}/reviews", {"per_page": PER_PAGE})
            if r.get("state") != "PENDING"
        ]

    def _checks(self, path: str, sha: str) -> tuple[list[CheckState], str]:
        """Every check run and commit status on ``sha``; and why the check runs could not be read ("")."""
        found, unknown = [], ""
        ref = quote(sha, safe="")
        try:
            runs = self.http.pages(
                f"{path}/commits/{ref}/check-runs", {"per_page": PER_PAGE}, key="check_runs"
            )
            for run in runs:
                found.append(CheckState(str(run.get("name") or "check"), _run_state(run)))
        except ForgeError as exc:
            if exc.transient:
                raise
            unknown = str(exc)  # a fine-grained token on a private repository: check runs unseen
        combined = self.http.json("GET", f"{path}/commits/{ref}/status", params={"per_page": PER_PAGE})
        for status in combined.get("statuses") or ():
            state = STATUS_STATES.get(str(status.get("state")), RED)
            found.append(CheckState(str(status.get("context") or "status"), state))
        return found, unknown

    def _required(self, path: str, base: str) -> tuple[str, ...] | None:
        """The required checks' names on ``base``: branch protection's and the rulesets'; None when
        neither names one (or the forge refuses to say)."""
        names: set[str] = set()
        branch = quote(base, safe="")
        protection = self.http.optional(f"{path}/branches/{branch}")
        required = ((protection or {}).get("protection") or {}).get("required_status_checks") or {}
        names.update(str(c) for c in required.get("contexts") or ())
        names.update(str(c.get("context")) for c in required.get("checks") or () if isinstance(c, dict))
        for rule in self.http.optional(f"{path}/rules/branches/{branch}") or ():
            if isinstance(rule, dict) and rule.get("type") == "required_status_checks":
                checks = (rule.get("parameters") or {}).get("required_status_checks") or ()
                names.update(str(c.get("context")) for c in checks if isinstance(c, dict))
        names.discard("None")
        return tuple(sorted(names)) or None

    def mark_ready(self, repo: str, number: int) -> None:
        self._graphql(repo, READY, {"id": self._node_id(repo, number)})

    def enable_auto_merge(self, repo: str, number: int, head_sha: str) -> str:
        owner, _, name = repo.partition("/")
        found = self._graphql(repo, REPO, {"owner": owner, "name": name}).get("repository") or {}
        if not found.get("autoMergeAllowed"):
            raise ForgeError(f"auto-merge is not allowed on {repo} (the repository's settings)", 422)
        method = _method(found)
        try:
            self._graphql(repo, AUTO, {"id": self._node_id(repo, number), "method": method, "head": head_sha})
        except ForgeError as exc:
            if not CLEAN.search(str(exc)):
                raise
            # GitHub enables auto-merge only while something is left to wait for; a PR it could merge
            # now is merged now, through its own merge (branch protection still decides), at the head
            # that was approved and green — what `gh pr merge --auto` does
            path = f"{repo_path(repo, 'GitHub')}/pulls/{int(number)}/merge"
            self.http.json("PUT", path, json={"sha": head_sha, "merge_method": method.lower()})
            return f"{method.lower()}; nothing was left to wait for, so GitHub merged it at once"
        return method.lower()

    def _node_id(self, repo: str, number: int) -> str:
        """The PR's GraphQL id: as :meth:`pull_state` read it, else asked."""
        if (repo, int(number)) not in self._nodes:
            pull = self.http.json("GET", f"{repo_path(repo, 'GitHub')}/pulls/{int(number)}")
            self._nodes[(repo, int(number))] = str(pull["node_id"])
        return self._nodes[(repo, int(number))]

    def _graphql(self, repo: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        """One GraphQL request about ``repo`` (whose credentials it takes); its ``data``, or a ForgeError
        with GitHub's words (GraphQL answers 200 with ``errors`` for a refusal: read as a 422, not
        worth retrying)."""
        url, scope = graphql_url(str(self.http.api_url)), repo_path(repo, "GitHub")
        body = {"query": query, "variables": variables}
        answer = self.http.json("POST", url, json=body, scope=scope) or {}
        errors = answer.get("errors") if isinstance(answer, dict) else None
        if errors:
            words = "; ".join(str(e.get("message") if isinstance(e, dict) else e) for e in errors[:3])
            raise ForgeError(f"GitHub's GraphQL API refused: {words}", 422)
        data = answer.get("data") if isinstance(answer, dict) else None
        return data if isinstance(data, dict) else {}


CLEAN = re.compile(r"is in (clean|unstable|has_hooks) status", re.IGNORECASE)  # GitHub: "nothing to wait for"


def _run_state(run: dict[str, Any]) -> str:
    if run.get("status") != "completed":
        return PENDING
    return GREEN if run.get("conclusion") in GREEN_CONCLUSIONS else RED


def _method(repository: dict[str, Any]) -> str:
    """The merge method auto-merge uses: the viewer's default when the repository allows it, else the
    first allowed (merge commit, squash, rebase)."""
    allowed = {
        "MERGE": repository.get("mergeCommitAllowed"),
        "SQUASH": repository.get("squashMergeAllowed"),
        "REBASE": repository.get("rebaseMergeAllowed"),
    }
    preferred = str(repository.get("viewerDefaultMergeMethod") or "")
    if allowed.get(preferred):
        return preferred
    return next((m for m in METHODS if allowed[m]), "MERGE")
