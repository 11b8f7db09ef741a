"""The fake GitLab's state: plain records, kept in memory under one lock by
:class:`~baton.testing.fake_gitlab.FakeGitLab`. Ids come from one counter per fake (they never collide);
issues and merge requests each have their own ``iid`` sequence per project, as on GitLab (issue #1 and
merge request !1 are two things). Times are seconds since the epoch from the fake's clock, written as
GitLab's API writes them (:func:`iso`) or as its webhooks do (:func:`hook_time`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from baton.testing.fake_forge_state import Repo

# GitLab's access levels (the member API's ``access_level``)
ACCESS = {"guest": 10, "planner": 15, "reporter": 20, "developer": 30, "maintainer": 40, "owner": 50}
ZERO_SHA = "0" * 40
# the scopes that let a token read the API (GET) and write it, read and write a repository over git
READ_API = frozenset({"api", "read_api"})
WRITE_API = frozenset({"api"})
READ_GIT = frozenset({"api", "read_repository", "write_repository"})
WRITE_GIT = frozenset({"api", "write_repository"})


def iso(at: float) -> str:
    """GitLab's API time: ``2026-11-26T10:00:00.000Z`` (milliseconds, UTC)."""
    moment = datetime.fromtimestamp(at, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def hook_time(at: float) -> str:
    """The time in GitLab's webhook bodies: ``2026-11-26 10:00:00 UTC`` (as its "Webhook events"
    examples write a note's, a pipeline's and a ``changes`` entry's times)."""
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))


def hook_iso(at: float) -> str:
    """An issue's and a merge request's own times in their webhooks: ``2026-11-26T10:00:00Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


def parse_time(text: str) -> float:
    """The seconds of an ISO 8601 time (``…Z``, an offset or none: UTC), as ``updated_after`` takes it."""
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


@dataclass(frozen=True)
class ApiRequest:
    """One request the API answered: ``path`` without ``/api/v4`` and the query (git's are not here)."""

    method: str
    path: str
    status: int
    query: str = ""


@dataclass(frozen=True)
class Violation:
    """An answer or webhook body GitLab's published types reject, or a failure of the fake itself."""

    kind: str  # response | webhook | fake
    what: str  # "GET /projects/:id/issues/:issue_iid → 200", "Note Hook"
    errors: tuple[str, ...]


@dataclass
class User:
    id: int
    username: str
    name: str
    bot: bool = False
    state: str = "active"
    created_at: float = 0.0

    @property
    def email(self) -> str:
        return f"{self.username}@example.invalid"


@dataclass
class Token:
    """A personal, project or group access token (a project's or group's belongs to its bot user)."""

    id: int
    value: str
    username: str
    name: str
    scopes: tuple[str, ...]
    created_at: float
    expires_at: float | None = None  # seconds since the epoch; None: never
    revoked: bool = False
    last_used_at: float | None = None

    def active(self, now: float) -> bool:
        return not self.revoked and (self.expires_at is None or now < self.expires_at)

    def allows(self, scopes: frozenset[str]) -> bool:
        return bool(scopes & set(self.scopes))


@dataclass
class Hook:
    """A project webhook: where it posts, its secret token, the events it wants."""

    id: int
    url: str
    token: str
    events: frozenset[str]  # note, issues, merge_requests, pipeline, push, job


@dataclass
class Note:
    id: int
    noteable_type: str  # Issue | MergeRequest
    noteable_id: int
    noteable_iid: int
    author: str
    body: str
    created_at: float
    updated_at: float
    discussion_id: str
    type: str | None = None  # None | DiscussionNote | DiffNote
    system: bool = False
    position: dict[str, object] | None = None
    resolvable: bool = False
    resolved: bool = False
    resolved_by: str | None = None
    resolved_at: float | None = None


@dataclass
class Discussion:
    id: str  # 40 hex
    individual_note: bool
    notes: list[int] = field(default_factory=list)


@dataclass
class Issue:
    id: int
    iid: int
    title: str
    description: str
    author: str
    created_at: float
    updated_at: float
    state: str = "opened"  # opened | closed
    labels: list[str] = field(default_factory=list)
    assignees: list[str] = field(default_factory=list)
    closed_at: float | None = None
    closed_by: str | None = None
    discussions: list[str] = field(default_factory=list)  # in order; a lone note is its own discussion


@dataclass
class MergeRequest:
    id: int
    iid: int
    title: str
    description: str
    author: str
    source_branch: str
    target_branch: str
    created_at: float
    updated_at: float
    state: str = "opened"  # opened | closed | merged | locked
    labels: list[str] = field(default_factory=list)
    assignees: list[str] = field(default_factory=list)
    reviewers: list[str] = field(default_factory=list)
    review_states: dict[str, tuple[str, float]] = field(default_factory=dict)  # reviewer -> (state, since)
    source_project: str | None = None  # a fork's path: the source branch lives there (None: this project)
    remove_source_branch: bool = False
    merged_at: float | None = None
    merged_by: str | None = None
    merge_commit_sha: str | None = None
    closed_at: float | None = None
    closed_by: str | None = None
    sha_at_close: str | None = None  # the head a closed or merged MR keeps once its branch is gone
    frozen_refs: dict[str, str] | None = None  # diff_refs kept when it was merged or closed
    auto_merge: bool = False  # "set to auto-merge" (merge_when_pipeline_succeeds)
    auto_merge_by: str | None = None
    approved_by: list[str] = field(default_factory=list)
    approvals_required: int = 0
    discussions: list[str] = field(default_factory=list)

    @property
    def draft(self) -> bool:
        """GitLab derives draft from the title: ``Draft:``, ``[Draft]`` or ``(Draft)`` at its start."""
        lowered = self.title.lstrip().lower()
        return lowered.startswith(("draft:", "[draft]", "(draft)", "draft -"))


@dataclass
class Job:
    id: int
    pipeline_id: int
    name: str
    stage: str
    status: str  # created, pending, running, success, failed, canceled, skipped, manual
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    allow_failure: bool = False
    failure_reason: str | None = None  # script_failure, … (failed jobs)
    log: bytes | Path = b""  # a Path keeps a huge log on disk

    def log_size(self) -> int:
        return self.log.stat().st_size if isinstance(self.log, Path) else len(self.log)

    def log_slice(self, start: int, end: int) -> bytes:
        if isinstance(self.log, Path):
            with self.log.open("rb") as f:
                f.seek(start)
                return f.read(max(0, end - start))
        return self.log[start:end]


@dataclass
class Pipeline:
    id: int
    iid: int
    sha: str
    ref: str
    status: str
    source: str  # push | merge_request_event | web | …
    user: str
    created_at: float
    updated_at: float
    before_sha: str = ZERO_SHA
    started_at: float | None = None
    finished_at: float | None = None
    jobs: list[int] = field(default_factory=list)


@dataclass
class Project:
    """A project: a bare git repository (``repo``), members and their access levels, its issues, merge
    requests, notes, discussions, pipelines, labels and hooks."""

    id: int
    path: str  # the full path: group/sub/name
    repo: Repo
    created_at: float
    description: str = ""
    visibility: str = "private"
    members: dict[str, int] = field(default_factory=dict)  # username -> access level
    issues: dict[int, Issue] = field(default_factory=dict)
    mrs: dict[int, MergeRequest] = field(default_factory=dict)
    notes: dict[int, Note] = field(default_factory=dict)
    discussions: dict[str, Discussion] = field(default_factory=dict)
    pipelines: dict[int, Pipeline] = field(default_factory=dict)
    jobs: dict[int, Job] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)  # title -> label id
    hooks: list[Hook] = field(default_factory=list)
    forked_from: str | None = None
    next_issue: int = 1
    next_mr: int = 1
    next_pipeline: int = 1
    # protected branches: branch -> (access level allowed to push, to merge); force pushes refused
    protected: dict[str, tuple[int, int]] = field(default_factory=dict)
    only_allow_merge_if_pipeline_succeeds: bool = False
    only_allow_merge_if_all_discussions_are_resolved: bool = False

    @property
    def name(self) -> str:
        return self.path.rpartition("/")[2]

    @property
    def namespace(self) -> str:
        return self.path.rpartition("/")[0]

    @property
    def default_branch(self) -> str:
        return self.repo.default_branch

    def head(self, branch: str) -> str | None:
        return self.repo.head(branch)
