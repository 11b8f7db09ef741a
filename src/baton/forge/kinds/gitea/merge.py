"""The merge policy on Gitea and Forgejo (:class:`~baton.forge.kinds.readiness.MergeClient`). Gitea has no
draft flag: a PR is a work in progress while its title starts with a WIP prefix (``WIP:``, ``[WIP]``,
``Draft:``), so it is marked ready by editing its title (``PATCH …/pulls/{index}``); its own auto-merge is
a merge asked with ``merge_when_checks_succeed`` (``POST …/pulls/{index}/merge``), which merges at once
when the statuses have succeeded. Checks are commit statuses; the required ones are the base branch
protection's ``status_check_contexts`` (globs, read from ``branch_protections``, which Gitea shows a
repository admin); refused, every status on the head must succeed.
"""

from __future__ import annotations

import fnmatch
import re
from typing import Any

from baton.forge.data.model import ForgeError, Review
from baton.forge.kinds.gitea.client import GiteaClient, actor
from baton.forge.kinds.readiness import GREEN, PENDING, RED, CheckState, PullState
from baton.forge.kinds.rest import epoch, repo_path

# "warning" is no success: Gitea's own merge check does not take it for one
STATUS_STATES = {"success": GREEN, "pending": PENDING}
REVIEW_STATES = {"APPROVED": "APPROVED", "REQUEST_CHANGES": "CHANGES_REQUESTED", "COMMENT": "COMMENTED"}
_WIP = re.compile(r"^\s*(?:wip:|\[wip\]|draft:|\[draft\])\s*", re.IGNORECASE)
STYLES = ("merge", "rebase", "rebase-merge", "squash", "fast-forward-only")
ALLOWS = {
    "merge": "allow_merge_commits",
    "rebase": "allow_rebase",
    "rebase-merge": "allow_rebase_explicit",
    "squash": "allow_squash_merge",
    "fast-forward-only": "allow_fast_forward_only_merge",
}


def ready_title(title: str) -> str:
    """The title without its work-in-progress prefixes (every one, in any case)."""
    while (match := _WIP.match(title)) is not None and match.end() > 0:
        title = title[match.end() :]
    return title.strip() or "Untitled"


def is_wip(title: str) -> bool:
    return _WIP.match(title) is not None


class GiteaMerge:
    """:class:`~baton.forge.kinds.readiness.MergeClient` over a :class:`GiteaClient` (its paging and HTTP)."""

    def __init__(self, client: GiteaClient) -> None:
        self.client, self.http = client, client.http
        self._titles: dict[tuple[str, int], str] = {}  # (repo, number) -> the PR's title, as read

    def pull_state(self, repo: str, number: int) -> PullState:
        path = repo_path(repo, "Gitea")
        pull = self.http.json("GET", f"{path}/pulls/{int(number)}")
        head = str((pull.get("head") or {}).get("sha") or "")
        base = str((pull.get("base") or {}).get("ref") or "")
        checks = self._checks(path, head)
        self._titles[(repo, int(number))] = str(pull.get("title") or "")
        return PullState(
            number=int(number),
            open=pull.get("state") == "open" and not pull.get("merged"),
            draft=bool(pull.get("draft")) or is_wip(str(pull.get("title") or "")),
            head_sha=head,
            base_ref=base,
            reviews=tuple(self._reviews(path, number)),
            checks=tuple(checks),
            required=self._required(path, base, checks),
        )

    def _reviews(self, path: str, number: int) -> list[Review]:
        found = []
        for r in self.client.pages(f"{path}/pulls/{int(number)}/reviews"):
            state = "DISMISSED" if r.get("dismissed") else REVIEW_STATES.get(str(r.get("state") or ""))
            if state is None:  # PENDING (a draft review), REQUEST_REVIEW (a request): no word given
                continue
            found.append(
                Review(
                    id=int(r["id"]),
                    author=actor(r.get("user")),
                    state=state,
                    body=str(r.get("body") or ""),  # an approval's words are a turn the policy waits for
                    commit=r.get("commit_id") or None,
                    url=str(r.get("html_url") or ""),
                    at=epoch(r.get("submitted_at")),
                )
            )
        return found

    def _checks(self, path: str, sha: str) -> list[CheckState]:
        combined = self.http.json("GET", f"{path}/commits/{sha}/status", params={"limit": 50}) or {}
        return [
            CheckState(str(s.get("context") or "status"), STATUS_STATES.get(str(s.get("status")), RED))
            for s in combined.get("statuses") or ()
        ]

    def _required(self, path: str, base: str, checks: list[CheckState]) -> tuple[str, ...] | None:
        """The head's statuses that match the base's protection rule's required patterns, and each
        pattern no status matches yet (it is waited for); None when no rule requires any."""
        try:
            rules = self.http.json("GET", f"{path}/branch_protections")  # one list, unpaged
        except ForgeError as exc:
            if exc.transient:
                raise
            return None
        rule = next((r for r in rules or () if _rule_matches(r, base)), None)
        patterns = [str(p) for p in (rule or {}).get("status_check_contexts") or ()]
        if not rule or not rule.get("enable_status_check") or not patterns:
            return None
        names = {c.name for c in checks if any(fnmatch.fnmatchcase(c.name, p) for p in patterns)}
        waiting = {p for p in patterns if not any(fnmatch.fnmatchcase(c.name, p) for c in checks)}
        return tuple(sorted(names | waiting))

    def mark_ready(self, repo: str, number: int) -> None:
        path = f"{repo_path(repo, 'Gitea')}/pulls/{int(number)}"
        title = self._titles.get((repo, int(number)))
        if title is None:
            title = str(self.http.json("GET", path).get("title") or "")
        if is_wip(title):
            self.http.request("PATCH", path, json={"title": ready_title(title)})

    def enable_auto_merge(self, repo: str, number: int, head_sha: str) -> str:
        path = repo_path(repo, "Gitea")
        style = _style(self.http.json("GET", path) or {})
        if style is None:
            raise ForgeError(f"{repo} allows no merge style baton can ask for", 422)
        body = {"do": style, "merge_when_checks_succeed": True, "head_commit_id": head_sha}
        self.http.request("POST", f"{path}/pulls/{int(number)}/merge", json=body)
        return style


def _rule_matches(rule: Any, branch: str) -> bool:
    if not isinstance(rule, dict):
        return False
    name = str(rule.get("rule_name") or rule.get("branch_name") or "")
    return bool(name) and (name == branch or fnmatch.fnmatchcase(branch, name))


def _style(repository: dict[str, Any]) -> str | None:
    """The repository's default merge style when it allows it, else the first it allows."""
    default = str(repository.get("default_merge_style") or "")
    if default in ALLOWS and repository.get(ALLOWS[default], default == "merge"):
        return default
    return next((s for s in STYLES if repository.get(ALLOWS[s])), None)
