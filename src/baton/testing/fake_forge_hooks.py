"""The fake forge's webhook deliveries: payloads built from GitHub's example deliveries
(``@octokit/webhooks-examples``) filled with the fake's state, checked against the webhook description
(``@octokit/openapi-webhooks``), signed as GitHub signs them and sent synchronously, so a test knows the
receiver's answer when the drive call returns.

A delivery carries ``X-GitHub-Event``, ``X-GitHub-Delivery`` (a uuid; a redelivery keeps it, as
GitHub's "Redeliver" does), ``X-GitHub-Hook-ID``, ``X-Hub-Signature-256: sha256=<HMAC-SHA256 of the
body under the secret>`` (and the legacy SHA-1 ``X-Hub-Signature``) and ``Content-Type:
application/json``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Any

from baton.testing.fake_forge_openapi import WebhookDescription
from baton.testing.fake_forge_render import Render
from baton.testing.fake_forge_state import (
    CheckRun,
    Issue,
    IssueComment,
    Repo,
    Review,
    ReviewComment,
    Status,
    iso,
)


@dataclass
class Delivery:
    """One webhook delivery (and what the receiver answered to each attempt)."""

    id: str
    event: str
    action: str | None
    body: bytes
    statuses: list[int] = field(default_factory=list)  # one per attempt; 0: no answer

    @property
    def payload(self) -> dict[str, Any]:
        return json.loads(self.body)  # type: ignore[no-any-return]

    @property
    def status(self) -> int | None:
        return self.statuses[-1] if self.statuses else None


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post(url: str, delivery: Delivery, secret: str, *, forged: bool = False, timeout: float = 10.0) -> int:
    """Send one attempt of ``delivery``; the receiver's HTTP status (0 when it did not answer)."""
    signature = sign(secret + ("-forged" if forged else ""), delivery.body)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/fake",
        "X-GitHub-Event": delivery.event,
        "X-GitHub-Delivery": delivery.id,
        "X-GitHub-Hook-ID": "1",
        "X-Hub-Signature-256": signature,
        "X-Hub-Signature": "sha1=" + hmac.new(secret.encode(), delivery.body, hashlib.sha1).hexdigest(),
    }
    request = urllib.request.Request(url, data=delivery.body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (OSError, TimeoutError):
        return 0


_REPAIRS: dict[str, Any] = {
    "has_discussions": False,
    "draft": False,
    "reactions": {
        "url": "",
        "total_count": 0,
        "+1": 0,
        "-1": 0,
        "laugh": 0,
        "hooray": 0,
        "confused": 0,
        "heart": 0,
        "rocket": 0,
        "eyes": 0,
    },
}


class Payloads:
    """Webhook payloads for one fake, each built from GitHub's example of its event and action.

    Some of GitHub's own examples do not pass GitHub's own schemas (a webhook example missing a newer
    required field such as ``auto_merge`` or ``has_discussions``). For each kind of delivery the example
    with the fewest errors is taken and the missing required fields are added (``null``, or the neutral
    value named in :data:`_REPAIRS`) until it passes; anything still wrong after the overlay is a
    violation."""

    def __init__(self, render: Render, hooks: WebhookDescription) -> None:
        self.render, self.hooks = render, hooks
        self._hook_templates: dict[tuple[str, str | None, str], str] = {}  # … and the API URL
        self._lock = threading.Lock()

    def hook_template(self, event: str, action: str | None, without: str | None = None) -> dict[str, Any]:
        """GitHub's example delivery for the event, repaired until it passes the webhook schema;
        ``without`` one of its top-level objects (one the caller supplies: less to copy)."""
        if without is not None:
            with self._lock:
                text = self._hook_templates.get((event, f"{action}-without-{without}", self.render.api_url))
            if text is None:
                whole = self.hook_template(event, action)
                whole.pop(without)
                text = json.dumps(whole)
                with self._lock:
                    self._hook_templates[(event, f"{action}-without-{without}", self.render.api_url)] = text
            return json.loads(text)  # type: ignore[no-any-return]
        key = (event, action, self.render.api_url)
        with self._lock:
            cached = self._hook_templates.get(key)
        if cached is None:
            candidates = self.hooks.examples(event, action) or [
                {**e, "action": action} for e in self.hooks.examples(event, None)
            ]  # an action without an example (issues.closed) borrows the event's others
            best = min(candidates, key=lambda c: len(self.hooks.check(event, action, c).errors))
            for _ in range(8):
                errors = self.hooks.check(event, action, best).errors
                if not errors or not _repair(best, errors):
                    break
            cached = self.render.rebased(json.dumps(best), "octocat/Hello-World")
            with self._lock:
                self._hook_templates[key] = cached
        return json.loads(cached)  # type: ignore[no-any-return]

    def _common(
        self, event: str, action: str | None, repo: Repo, sender: str, without: str | None = None
    ) -> dict[str, Any]:
        payload = self.hook_template(event, action, without)
        for key in ("installation", "organization", "enterprise"):
            payload.pop(key, None)
        self.render.repo_fields(payload["repository"], repo)
        self.render.user_fields(payload["sender"], sender)
        return payload

    def check(self, event: str, action: str | None, payload: dict[str, Any]) -> tuple[str, ...]:
        return self.hooks.check(event, action, payload).errors

    def issue(self, action: str, repo: Repo, issue: Issue, sender: str, **extra: str) -> dict[str, Any]:
        """``issues`` opened, labeled (``label=``), assigned (``assignee=``), closed."""
        payload = self._common("issues", action, repo, sender)
        base = f"{self.render.api_url}/repos/{repo.full_name}/issues/{issue.number}"
        self.render.issue_fields(payload["issue"], repo, issue, base)
        if "label" in extra:
            payload["label"] = self.render.label(repo, extra["label"])
        if "assignee" in extra:
            payload["assignee"] = self.render.user_fields(dict(payload["sender"]), extra["assignee"])
        return payload

    def issue_comment(self, repo: Repo, issue: Issue, comment: IssueComment) -> dict[str, Any]:
        payload = self._common("issue_comment", "created", repo, comment.author)
        base = f"{self.render.api_url}/repos/{repo.full_name}/issues/{issue.number}"
        self.render.issue_fields(payload["issue"], repo, issue, base)
        self.render.comment_fields(payload["comment"], repo, comment, issue.pr is not None)
        return payload

    def pull_request(
        self, action: str, repo: Repo, issue: Issue, sender: str, before: str | None = None, **extra: str
    ) -> dict[str, Any]:
        """``pull_request`` opened, synchronize (``before``: the old head), closed, labeled (``label=``),
        assigned (``assignee=``)."""
        payload = self._common("pull_request", action, repo, sender)
        payload["number"] = issue.number
        self.render.pull_fields(payload["pull_request"], repo, issue)
        if action == "synchronize":
            payload["before"] = before or "0" * 40
            payload["after"] = repo.pr_head(issue)
        if "label" in extra:
            payload["label"] = self.render.label(repo, extra["label"])
        if "assignee" in extra:
            payload["assignee"] = self.render.user_fields(dict(payload["sender"]), extra["assignee"])
        return payload

    def review(self, repo: Repo, issue: Issue, review: Review) -> dict[str, Any]:
        payload = self._common("pull_request_review", "submitted", repo, review.author)
        self.render.pull_fields(payload["pull_request"], repo, issue)
        self.render.review_fields(payload["review"], repo, review)
        payload["review"]["state"] = review.state.lower()  # webhooks say "changes_requested"
        return payload

    def review_comment(
        self, repo: Repo, issue: Issue, comment: ReviewComment, pull: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """``pull_request_review_comment.created``; ``pull``: the PR part, when the caller built it."""
        without = None if pull is None else "pull_request"
        payload = self._common("pull_request_review_comment", "created", repo, comment.author, without)
        if pull is not None:
            payload["pull_request"] = pull
        else:
            self.render.pull_fields(payload["pull_request"], repo, issue)
        self.render.review_comment_fields(payload["comment"], repo, issue.number, comment)
        return payload

    def _pr_refs(self, repo: Repo, prs: list[Issue]) -> list[dict[str, Any]]:
        """The ``pull_requests`` a check run or suite names: GitHub's open PRs whose head it is, those
        from forks left out (as GitHub leaves them out)."""
        refs = []
        for pr in prs:
            assert pr.pr is not None
            if pr.pr.head_repo is not None:
                continue
            short = {"id": repo.id, "url": f"{self.render.api_url}/repos/{repo.full_name}", "name": repo.name}
            refs.append(
                {
                    "url": f"{self.render.api_url}/repos/{repo.full_name}/pulls/{pr.number}",
                    "id": pr.id,
                    "number": pr.number,
                    "head": {"ref": pr.pr.head_ref, "sha": repo.pr_head(pr), "repo": short},
                    "base": {
                        "ref": pr.pr.base_ref,
                        "sha": repo.head(pr.pr.base_ref) or "0" * 40,
                        "repo": short,
                    },
                }
            )
        return refs

    def _suite(self, suite: dict[str, Any], repo: Repo, run: CheckRun, prs: list[Issue]) -> None:
        branch = next((pr.pr.head_ref for pr in prs if pr.pr is not None), None)
        suite.update(
            id=run.suite_id,
            head_sha=run.head_sha,
            head_branch=branch,
            status=run.status,
            conclusion=run.conclusion,
            url=f"{self.render.api_url}/repos/{repo.full_name}/check-suites/{run.suite_id}",
            after=run.head_sha,
            pull_requests=self._pr_refs(repo, prs),
        )

    def check_run(self, repo: Repo, run: CheckRun, prs: list[Issue], sender: str) -> dict[str, Any]:
        payload = self._common("check_run", "completed", repo, sender)
        self.render.check_run_fields(payload["check_run"], repo, run)
        payload["check_run"]["pull_requests"] = self._pr_refs(repo, prs)
        self._suite(payload["check_run"]["check_suite"], repo, run, prs)
        return payload

    def check_suite(self, repo: Repo, run: CheckRun, prs: list[Issue], sender: str) -> dict[str, Any]:
        payload = self._common("check_suite", "completed", repo, sender)
        self._suite(payload["check_suite"], repo, run, prs)
        payload["check_suite"]["latest_check_runs_count"] = 1
        return payload

    def status(self, repo: Repo, status: Status, sender: str) -> dict[str, Any]:
        payload = self._common("status", None, repo, sender)
        payload.update(
            id=status.id,
            sha=status.sha,
            name=repo.full_name,
            target_url=status.target_url,
            context=status.context,
            description=status.description,
            state=status.state,
            created_at=iso(status.created_at),
            updated_at=iso(status.created_at),
            branches=[],
        )
        payload["commit"]["sha"] = status.sha
        return payload


def new_delivery(event: str, action: str | None, payload: dict[str, Any]) -> Delivery:
    return Delivery(str(uuid.uuid4()), event, action, json.dumps(payload).encode())


def _repair(payload: dict[str, Any], errors: tuple[str, ...]) -> bool:
    """Add the required fields the errors name (``at /a/b: "x" is a required property``); whether any."""
    fixed = False
    for error in errors:
        where, _, message = error.partition(": ")
        if not message.endswith("is a required property") or not message.startswith('"'):
            continue
        name = message.split('"')[1]
        node: Any = payload
        for part in where.removeprefix("at /").split("/"):
            if part == "":
                continue
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, dict) and name not in node:
            node[name] = json.loads(json.dumps(_REPAIRS.get(name)))
            fixed = True
    return fixed
