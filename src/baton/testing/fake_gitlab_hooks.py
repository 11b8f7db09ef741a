"""The fake GitLab's webhooks: their delivery with the headers GitLab's WebHookService sends
(:func:`headers`, :func:`post`) — ``X-Gitlab-Event``, ``X-Gitlab-Token`` (the hook's secret token, as it
is), ``X-Gitlab-Event-UUID`` (one per event, shared by its hooks), ``X-Gitlab-Webhook-UUID`` (a new one
per request), ``X-Gitlab-Instance``, ``Idempotency-Key`` (one per delivery, kept by a resend: the one
to deduplicate on), ``User-Agent: GitLab/<version>`` — and the parts every body shares, with the
Pipeline and Push Hook bodies (:class:`Payloads`); notes, issues and MRs are :mod:`fake_gitlab_payloads`'.
"""

from __future__ import annotations

import http.client
import json
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from baton.testing.fake_gitlab_render_threads import SHARED_RUNNER, ThreadsRender
from baton.testing.fake_gitlab_state import (
    ZERO_SHA,
    Hook,
    Job,
    MergeRequest,
    Pipeline,
    Project,
    hook_time,
    iso,
)

VERSION = "17.11.0"  # the GitLab release the fake says it is (User-Agent, GET /version)
# the hook setting each event needs (a project hook's push_events, note_events, …)
EVENTS = {
    "Push Hook": "push",
    "Note Hook": "note",
    "Issue Hook": "issues",
    "Merge Request Hook": "merge_requests",
    "Pipeline Hook": "pipeline",
    "Job Hook": "job",
}
_STATE_ID = {"opened": 1, "closed": 2, "merged": 3, "locked": 4}


@dataclass(frozen=True)
class Event:
    """Something that happened and the webhook body it makes (whether or not a hook wants it)."""

    uuid: str  # X-Gitlab-Event-UUID
    event: str  # X-Gitlab-Event: "Note Hook"
    body: dict[str, Any]


@dataclass
class Delivery:
    """One webhook request to one hook: each attempt's headers and the receiver's status (0: no
    answer). A resend is a new Delivery with the same body and ``Idempotency-Key`` (``resent``: the
    ``X-Gitlab-Event-UUID`` it repeats)."""

    event_uuid: str  # X-Gitlab-Event-UUID
    event: str  # the X-Gitlab-Event header: "Note Hook"
    hook: Hook
    body: bytes
    idempotency_key: str
    url: str = ""  # where it went (the hook's URL when it was made)
    resent: str | None = None
    statuses: list[int] = field(default_factory=list)
    sent: list[dict[str, str]] = field(default_factory=list)  # each attempt's headers

    @property
    def payload(self) -> dict[str, Any]:
        return json.loads(self.body)  # type: ignore[no-any-return]

    @property
    def status(self) -> int | None:
        return self.statuses[-1] if self.statuses else None


def headers(delivery: Delivery, instance: str, secret: str) -> dict[str, str]:
    """The request headers GitLab sends with ``delivery`` and its hook's ``secret`` token."""
    sent = {
        "Content-Type": "application/json",
        "User-Agent": f"GitLab/{VERSION}",
        "Idempotency-Key": delivery.idempotency_key,
        "X-Gitlab-Event": delivery.event,
        "X-Gitlab-Webhook-UUID": str(uuid.uuid4()),
        "X-Gitlab-Instance": instance,
        "X-Gitlab-Event-UUID": delivery.event_uuid,
    }
    if secret:
        sent["X-Gitlab-Token"] = secret
    return sent


def post(delivery: Delivery, sent: dict[str, str], *, timeout: float = 10.0) -> int:
    """One attempt at ``delivery`` with the headers ``sent``; the receiver's HTTP status (0 when it did
    not answer). Sent with ``http.client``: it keeps the headers' case as GitLab writes them."""
    url = urlsplit(delivery.url)
    kind = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    try:
        connection = kind(url.hostname or "127.0.0.1", url.port, timeout=timeout)
        try:
            connection.request("POST", path, body=delivery.body, headers=sent)
            response = connection.getresponse()
            response.read()
            return int(response.status)
        finally:
            connection.close()
    except (OSError, TimeoutError, ValueError, http.client.HTTPException):
        return 0


class Payloads:
    """Webhook bodies of the fake's state (``render`` knows the URLs and the users): the shared parts,
    Pipeline and Push Hook."""

    def __init__(self, render: ThreadsRender) -> None:
        self.render = render

    # -- the parts every event shares -------------------------------------------------------------------

    def user(self, name: str) -> dict[str, Any]:
        """A webhook's ``user``: no public email shows as ``[REDACTED]`` (GitLab's note on the page)."""
        basic = self.render.user_basic(name)
        return {k: basic[k] for k in ("id", "name", "username", "avatar_url")} | {"email": "[REDACTED]"}

    def short_user(self, name: str) -> dict[str, Any]:
        """An assignee or reviewer: ``id``, ``name``, ``username``, ``avatar_url``."""
        basic = self.render.user_basic(name)
        return {k: basic[k] for k in ("id", "name", "username", "avatar_url")}

    def project(self, project: Project) -> dict[str, Any]:
        web = f"{self.render.web}/{project.path}"
        ssh = f"git@127.0.0.1:{project.path}.git"
        return {
            "id": project.id,
            "name": project.name,
            "description": project.description,
            "web_url": web,
            "avatar_url": None,
            "git_ssh_url": ssh,
            "git_http_url": f"{web}.git",
            "namespace": project.namespace.rpartition("/")[2],
            "visibility_level": {"private": 0, "internal": 10, "public": 20}[project.visibility],
            "path_with_namespace": project.path,
            "default_branch": project.default_branch,
            "homepage": web,
            "url": f"{web}.git",
            "ssh_url": ssh,
            "http_url": f"{web}.git",
        }

    def repository(self, project: Project, *, full: bool = False) -> dict[str, Any]:
        """The event's ``repository``; ``full`` adds the git URLs and visibility (push and MR events)."""
        proj = self.project(project)
        short = {
            "name": project.name,
            "url": proj["url"],
            "description": project.description,
            "homepage": proj["homepage"],
        }
        if not full:
            return short
        return short | {k: proj[k] for k in ("git_http_url", "git_ssh_url", "visibility_level")}

    def label(self, project: Project, title: str) -> dict[str, Any]:
        label_id = project.labels.get(title, 0)
        created = iso(project.created_at)
        return {
            "id": label_id,
            "title": title,
            "color": "#6699cc",
            "project_id": project.id,
            "created_at": created,
            "updated_at": created,
            "template": False,
            "description": "",
            "type": "ProjectLabel",
            "group_id": None,
        }

    def commit(self, project: Project, sha: str) -> dict[str, Any]:
        """A commit as push, merge request and pipeline events show it."""
        out = project.repo.git("log", "-1", "--format=%B%x00%s%x00%cI%x00%an%x00%ae", sha, check=False)
        message, title, when, name, email = (out.split("\x00") + [""] * 5)[:5]
        return {
            "id": sha,
            "message": message.strip("\n") + "\n" if message else "",
            "title": title,
            "timestamp": when,
            "url": f"{self.render.web}/{project.path}/-/commit/{sha}",
            "author": {"name": name, "email": email},
        }

    # -- pipelines -------------------------------------------------------------------------------------------

    def pipeline(
        self, project: Project, pipeline: Pipeline, jobs: list[Job], mr: MergeRequest | None
    ) -> dict[str, Any]:
        started, finished = pipeline.started_at, pipeline.finished_at
        detailed = self.render.detailed_status(project, pipeline)["label"]
        stages = list(dict.fromkeys(j.stage for j in jobs))
        merge_request = None
        if mr is not None:
            merge_status, detailed_merge, _ = self.render.mergeability(project, mr)
            merge_request = {
                "id": mr.id,
                "iid": mr.iid,
                "title": mr.title,
                "source_branch": mr.source_branch,
                "source_project_id": project.id,
                "target_branch": mr.target_branch,
                "target_project_id": project.id,
                "state": mr.state,
                "merge_status": merge_status,
                "detailed_merge_status": detailed_merge,
                "url": f"{self.render.web}/{project.path}/-/merge_requests/{mr.iid}",
            }
        return {
            "object_kind": "pipeline",
            "object_attributes": {
                "id": pipeline.id,
                "iid": pipeline.iid,
                "name": None,
                "ref": pipeline.ref,
                "tag": False,
                "sha": pipeline.sha,
                "before_sha": pipeline.before_sha,
                "source": pipeline.source,
                "status": pipeline.status,
                "detailed_status": detailed,
                "stages": stages,
                "created_at": hook_time(pipeline.created_at),
                "finished_at": None if finished is None else hook_time(finished),
                "duration": None if started is None or finished is None else int(finished - started),
                "variables": [],
                "url": f"{self.render.web}/{project.path}/-/pipelines/{pipeline.id}",
            },
            "merge_request": merge_request,
            "user": self.user(pipeline.user),
            "project": self.project(project),
            "commit": self._pipeline_commit(project, pipeline.sha),
            "builds": [self._build(pipeline, job) for job in jobs],
        }

    def _pipeline_commit(self, project: Project, sha: str) -> dict[str, Any]:
        commit = self.commit(project, sha)
        commit.pop("title")
        return commit

    def _build(self, pipeline: Pipeline, job: Job) -> dict[str, Any]:
        started, finished = job.started_at, job.finished_at
        return {
            "id": job.id,
            "stage": job.stage,
            "name": job.name,
            "status": job.status,
            "created_at": hook_time(job.created_at),
            "started_at": None if started is None else hook_time(started),
            "finished_at": None if finished is None else hook_time(finished),
            "duration": None if started is None or finished is None else float(finished - started),
            "queued_duration": 0.5 if started is not None else None,
            "failure_reason": (job.failure_reason or "script_failure") if job.status == "failed" else None,
            "when": "on_success",
            "manual": False,
            "allow_failure": job.allow_failure,
            "user": self.user(pipeline.user),
            "runner": None if started is None else {k: SHARED_RUNNER[k] for k in _RUNNER_KEYS},
            "artifacts_file": {"filename": None, "size": None},
            "environment": None,
        }

    # -- pushes ----------------------------------------------------------------------------------------------

    def push(
        self, project: Project, ref: str, before: str, after: str, pusher: str, shas: list[str]
    ) -> dict[str, Any]:
        """A Push Hook; ``after`` is 40 zeros when the branch was deleted, ``shas`` the new commits
        (newest first; the body carries at most 20, ``total_commits_count`` all of them)."""
        user = self.render.user(pusher)
        commits = []
        for sha in shas[:20]:
            commit = self.commit(project, sha)
            changes = project.repo.git(
                "diff-tree", "--no-commit-id", "--name-status", "-r", "--root", sha, check=False
            )
            status: dict[str, list[str]] = {"A": [], "M": [], "D": []}
            for line in changes.splitlines():
                kind, _, path = line.partition("\t")
                status.setdefault(kind[:1], []).append(path)
            commits.append(commit | {"added": status["A"], "modified": status["M"], "removed": status["D"]})
        return {
            "object_kind": "push",
            "event_name": "push",
            "before": before,
            "after": after,
            "ref": ref,
            "ref_protected": ref == f"refs/heads/{project.default_branch}",
            "checkout_sha": None if after == ZERO_SHA else after,
            "user_id": user.id,
            "user_name": user.name,
            "user_username": user.username,
            "user_email": "[REDACTED]",
            "user_avatar": self.render.avatar(user),
            "project_id": project.id,
            "project": self.project(project),
            "commits": commits,
            "total_commits_count": len(shas),
            "repository": self.repository(project, full=True),
        }


_RUNNER_KEYS = ("id", "description", "runner_type", "active", "is_shared", "tags")
