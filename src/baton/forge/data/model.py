"""The forge room's vocabulary: what happened on a forge (:class:`ForgeEvent`) and what a forge can be
asked (:class:`ForgeClient`, one module per forge kind); the records the store keeps of it all (the
thread bound to a conversation, :class:`~baton.forge.data.records.Binding`, its events, the deliveries) are
in :mod:`baton.forge.data.records`. Pure data and Protocols: every other module of the room builds on these.

A forge conversation is ``(forge, repo, number)``: ``forge`` the operator's name for a configured forge
(``[forge.<name>]`` in ``config.toml``), ``repo`` the forge's full name (``acme/api``), ``number`` the
issue's or pull request's number. An issue and the pull request baton opened for it share one binding
(``pr`` holds the PR's number), so one conversation goes from the issue to the merge.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from baton.errors import BatonError
from baton.forge.data.records import FeedbackKind
from baton.models import Access


class ForgeKind(StrEnum):
    """The names of the forge kinds baton ships (the ``kind`` of ``[forge.<name>]``). A kind is any name
    the registry holds (:data:`baton.forge.kinds.registry.IMPLEMENTATIONS`), so a configured forge's
    ``kind`` is a ``str``; what a kind is like is its facts (:class:`baton.forge.data.kind.KindFacts`)."""

    GITHUB = "github"  # github.com or GitHub Enterprise Server (REST v3)
    GITEA = "gitea"  # Gitea or Forgejo (Gitea's REST API v1)
    GITLAB = "gitlab"  # gitlab.com or self-managed GitLab (REST API v4)


class Trigger(StrEnum):
    """How an actor starts (or steers) a thread."""

    MENTION = "mention"  # the mention (``@baton``) in an issue or PR comment
    LABEL = "label"  # one of the repo's trigger labels added to an issue
    ASSIGN = "assign"  # the issue assigned to baton's own user
    FEEDBACK = "feedback"  # not a trigger: feedback on a thread that is bound already


@dataclass(frozen=True)
class Actor:
    """Who did something on the forge."""

    login: str
    bot: bool = False  # the forge says so (GitHub ``type: Bot``, a ``[bot]`` login; Gitea's bot flag)
    association: str | None = None  # GitHub's ``author_association`` (OWNER, MEMBER, ...), when given


@dataclass(frozen=True)
class ReviewComment:
    """One inline comment of a review."""

    id: int
    path: str
    line: int | None
    diff_hunk: str
    body: str
    url: str = ""


@dataclass(frozen=True)
class FailedCheck:
    """One failing check run, workflow job or commit status on a head commit."""

    name: str  # "CI / test (3.11)": the workflow's and job's names, or the status context
    conclusion: str  # failure, timed_out, cancelled, action_required, error
    url: str  # the whole log or run, linked (never pasted in full)
    steps: tuple[str, ...] = ()  # the failing steps' names
    annotations: tuple[str, ...] = ()  # "path:line: message"
    log_tail: str = ""  # the last lines of its log (bounded by the client)
    job_id: int | None = None  # the forge's id for fetching the log


@dataclass(frozen=True)
class ForgeEvent:
    """One thing that happened on a forge, read from a webhook or found by the reconcile.

    ``identity`` names the event itself, so it is acted on once however it arrives (a redelivery, a
    second webhook, the reconcile): ``comment:<id>``, ``review:<sha256 of its sorted comment ids and
    review id>``, ``ci:<head sha>:<sha256 of the sorted failing names>``, ``conflict:<head sha>:<base
    sha>``, ``label:<issue>:<label>:<delivery>``, ``assign:<issue>:<login>``, ``task:<number>``."""

    forge: str  # the configured forge's name
    repo: str  # the forge's full name of the repository: "acme/api"
    number: int  # the issue or pull request
    kind: FeedbackKind
    identity: str
    actor: Actor
    trigger: Trigger = Trigger.FEEDBACK
    url: str = ""  # where a person sees it (the comment, the review, the check run)
    is_pr: bool = False
    head_sha: str | None = None  # for PR events: the head commit it is about (stale if no longer head)
    from_fork: bool = False  # a PR whose head lives in another repository
    title: str = ""  # the or PR's title
    body: str = ""  # the comment's, review's or issue's text
    comments: tuple[ReviewComment, ...] = ()  # a review's inline comments
    checks: tuple[FailedCheck, ...] = ()  # a CI failure's failing checks
    signature: str | None = None  # a CI failure's failure signature (the failing set, not the sha)
    at: float = 0.0  # when the forge says it happened (seconds since the epoch)
    source: str = ""  # where it was said: "" the forge itself, else an intake's "<name>:<place>"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ForgeEvent:
        data = dict(data)
        data["kind"], data["trigger"] = FeedbackKind(data["kind"]), Trigger(data["trigger"])
        data["actor"] = Actor(**data["actor"])
        data["comments"] = tuple(ReviewComment(**c) for c in data.get("comments", ()))
        data["checks"] = tuple(
            FailedCheck(**{**c, "steps": tuple(c["steps"]), "annotations": tuple(c["annotations"])})
            for c in data.get("checks", ())
        )
        return cls(**data)


@dataclass(frozen=True)
class ThreadInfo:
    """An issue or PR as the forge describes it now."""

    number: int
    is_pr: bool
    state: str  # open | closed
    title: str
    body: str
    url: str
    author: Actor
    merged: bool = False
    head_sha: str | None = None
    head_ref: str | None = None
    base_ref: str | None = None
    from_fork: bool = False
    head_clone_url: str | None = None  # where the head branch lives (a fork's own repository)
    mergeable: bool | None = None  # None: the forge has not computed it yet
    labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class Comment:
    """An issue or PR comment."""

    id: int
    author: Actor
    body: str
    url: str
    at: float = 0.0


@dataclass(frozen=True)
class Review:
    """A submitted PR review with its inline comments."""

    id: int
    author: Actor
    state: str  # APPROVED, CHANGES_REQUESTED, COMMENTED
    body: str
    commit: str | None
    url: str
    comments: tuple[ReviewComment, ...] = ()
    at: float = 0.0


@dataclass(frozen=True)
class Changed:
    """A conditional read: ``changed`` False means the forge answered 304 (nothing new since ``etag``)."""

    changed: bool
    etag: str | None


class ForgeError(Exception):
    """The forge refused or failed a request; ``status`` is its HTTP status (0: no answer)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status

    @property
    def transient(self) -> bool:
        """Worth retrying: no answer, a timeout, 429 or a 5xx."""
        return self.status == 0 or self.status == 429 or self.status >= 500


class ForgeUnreachable(BatonError):
    """A forge a command needed refused baton's token or failed (exit 4, as an unreachable remote);
    the message names the token's variable when it was refused."""

    exit_code = 4


class ForgeClient(Protocol):
    """What baton asks of a forge. Every method raises :class:`ForgeError` (after the client's own
    bounded retries of transient failures). ``repo`` is the forge's full name (``acme/api``)."""

    def permission(self, repo: str, login: str) -> str:
        """The actor's permission on the repo: admin, maintain, write, triage, read or none."""
        ...

    def thread(self, repo: str, number: int, *, pr: bool = False) -> ThreadInfo:
        """The issue (``pr`` False) or pull request ``number``; the flag matters where the two are
        numbered apart (``KindFacts.numbers_apart``), the other forges tell them by the number."""
        ...

    def updated_since(self, repo: str, since: float) -> list[ThreadInfo]:
        """Issues and PRs of the repo updated at or after ``since`` (every page): the reconcile's one
        request per repository that finds threads with new comments, reviews, labels or states."""
        ...

    def checks_changed(self, repo: str, sha: str, etag: str | None) -> Changed:
        """One conditional request for a head commit's checks (GitHub: check runs; Gitea: its combined
        status): False when the forge answers 304 Not Modified to ``etag``."""
        ...

    def comments(
        self, repo: str, number: int, since: float | None = None, *, pr: bool = False
    ) -> list[Comment]:
        """The comments on the issue or (``pr``) pull request, oldest first."""
        ...

    def reviews(self, repo: str, number: int, since: float | None = None) -> list[Review]:
        """Submitted reviews (those submitted at or after ``since`` when given), each with its inline
        comments."""
        ...

    def failed_checks(self, repo: str, sha: str, tail_bytes: int = 16_384) -> list[FailedCheck]:
        """The failing (and approval-waiting: ``action_required``) checks of a commit, each with a
        bounded tail of its log."""
        ...

    def open_pr(self, repo: str, head: str, base: str, title: str, body: str, draft: bool) -> tuple[int, str]:
        """Open a pull request; its number and URL."""
        ...

    def default_branch(self, repo: str) -> str: ...

    def post_comment(self, repo: str, number: int, body: str, *, pr: bool = False) -> int:
        """A new comment on the issue or (``pr``) PR; its id."""
        ...

    def edit_comment(
        self, repo: str, comment_id: int, body: str, *, number: int = 0, pr: bool = False
    ) -> None:
        """Edit a comment (GitLab names a note under its issue or MR: ``number``, ``pr``)."""
        ...


@dataclass(frozen=True)
class Budget:
    """How far a thread's loop may go on its own."""

    per_failure: int = 3  # turns for one CI failure signature
    per_day: int = 20  # feedback turns per thread per day


@dataclass(frozen=True)
class Decision:
    """What the trust policy decided about an event's actor."""

    accepted: bool  # it runs (as an instruction, or as quoted context at read access)
    access: Access | None  # the turn's access (None when refused)
    quoted: bool  # the text is context, not an instruction
    reason: str  # for the audit log: "write access (cached)", "bot not allowed", ...


@dataclass(frozen=True)
class Outcome:
    """What the dispatcher did with one event (returned to the webhook, recorded in the audit log)."""

    status: str  # accepted | coalesced | duplicate | dropped | held | ignored | resumed
    reason: str
    job_id: str | None = None
    binding: str | None = None  # the conversation "forge:repo#n"
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in (None, {})}
