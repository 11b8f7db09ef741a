"""A webhook delivery read once, into a typed value: what it asks of baton (:class:`Delivery`, whose
parts each have a :class:`DeliveryKind`: a cleanup, feedback events, an issue or PR closed, a branch
pushed to) or why it asks nothing (:class:`Ignored`). One :class:`Reader` per forge (GitHub; Gitea, whose
payloads Forgejo sends too) reads the signed payload, and the worker
(:mod:`baton.forge.background.delivery_pool`) acts on the typed parts. A payload is hostile even when signed:
every field a part keeps is type- and length-checked here, and one its event needs but lacks raises
:class:`~baton.forge.reading.webhook.Malformed` (the route's 400).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar, Protocol, TypeGuard

from baton.forge.data.config import ForgeConfig, ForgeSettings, MergePolicy
from baton.forge.data.model import ForgeEvent
from baton.forge.reading import events
from baton.forge.reading.webhook import Forge, Ignored, Target, classify

MAX_NAME = 255  # a repository's owner/name and a branch, as the intake's reading bounds them


class DeliveryKind(StrEnum):
    """What a part of a delivery is."""

    CLEANUP = "cleanup"  # a branch is gone (deleted, or its PR closed): the sessions on it close
    FEEDBACK = "feedback"  # comments, reviews, CI failures, conflicts for bound threads
    CLOSED = "closed"  # an issue or PR closed: its binding closes
    BASE_PUSHED = "base_pushed"  # a branch pushed to: the bound PRs onto it are checked for conflicts
    SETTLED = "settled"  # an approval, or a check that succeeded: the merge policy looks at the PR
    FORGE = "forge"  # a part only its forge acts on (a GitHub App's installation changed)


class ForgePart(Protocol):
    """A part of a delivery that only one forge sends and acts on (a GitHub App's installation changed:
    :mod:`baton.forge.kinds.github.app_events`), stored with a pending delivery under its ``key`` and read
    back by its forge's reader (:attr:`DeliveryReader.parts`)."""

    key: ClassVar[str]

    def to_json(self) -> dict[str, Any]: ...

    def act(self, config: ForgeSettings) -> dict[str, Any]:
        """Do what it asks; what the delivery's result says of it."""
        ...


PartReaders = Mapping[str, Callable[[Mapping[str, Any]], ForgePart]]  # a stored part's key: its reading


@dataclass(frozen=True)
class Closed:
    """An issue or pull request closed on the forge ``forge`` (a configured forge's name)."""

    kind: ClassVar[DeliveryKind] = DeliveryKind.CLOSED
    forge: str
    repo: str
    number: int
    merged: bool = False  # a pull request merged (the forge's ``pull_request.merged``)
    pr: bool = False  # ``number`` is a pull request's (told apart where a forge numbers them apart)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"forge": self.forge, "repo": self.repo, "number": self.number}
        data |= {"merged": True} if self.merged else {}
        return {**data, "pr": True} if self.pr else data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Closed:
        merged, pr = data.get("merged") is True, data.get("pr") is True
        return cls(str(data["forge"]), str(data["repo"]), int(data["number"]), merged, pr)


@dataclass(frozen=True)
class BasePushed:
    """A branch of ``repo`` pushed to (not deleted) by someone other than baton."""

    kind: ClassVar[DeliveryKind] = DeliveryKind.BASE_PUSHED
    forge: str
    repo: str
    branch: str

    def to_json(self) -> dict[str, Any]:
        return {"forge": self.forge, "repo": self.repo, "branch": self.branch}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BasePushed:
        return cls(str(data["forge"]), str(data["repo"]), str(data["branch"]))


@dataclass(frozen=True)
class Settled:
    """A delivery that may have made a PR ready: a review submitted, or a check or status that
    succeeded. ``numbers``: the pull requests it names (none: a commit status, found by ``head_sha``)."""

    kind: ClassVar[DeliveryKind] = DeliveryKind.SETTLED
    forge: str
    repo: str
    numbers: tuple[int, ...] = ()
    head_sha: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"forge": self.forge, "repo": self.repo, "numbers": list(self.numbers), "head": self.head_sha}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Settled:
        head = data.get("head")
        numbers = tuple(int(n) for n in data.get("numbers") or ())
        return cls(str(data["forge"]), str(data["repo"]), numbers, str(head) if head else None)


@dataclass(frozen=True)
class Delivery:
    """What one delivery asks for: a cleanup, feedback events, a closed thread, a moved base — or
    several (a merged PR both cleans up and closes its binding).

    Nothing is passed on as a string to split again: a repository's ``full_name`` may hold any
    character a forge allows, so a marker such as ``closed:gh:owner/name#7`` could not be parsed back
    safely (:func:`_legacy_marker` reads only what an earlier version stored)."""

    target: Target | None = None
    events: tuple[ForgeEvent, ...] = ()
    closed: Closed | None = None
    pushed: BasePushed | None = None
    settled: Settled | None = None
    part: ForgePart | None = None

    @property
    def kinds(self) -> tuple[DeliveryKind, ...]:
        parts = (
            (self.target, DeliveryKind.CLEANUP),
            (self.events, DeliveryKind.FEEDBACK),
            (self.closed, DeliveryKind.CLOSED),
            (self.pushed, DeliveryKind.BASE_PUSHED),
            (self.settled, DeliveryKind.SETTLED),
            (self.part, DeliveryKind.FORGE),
        )
        return tuple(kind for part, kind in parts if part)

    @property
    def feedback(self) -> bool:
        """Whether the forge loop has work in it (events, a closed thread, a moved base, a PR that may be
        ready)."""
        return bool(self.events or self.closed or self.pushed or self.settled or self.part)

    def to_json(self) -> dict[str, Any]:
        """What a pending delivery stores, so a restarted service finds its work again."""
        data = self.target.to_json() if self.target else {}
        if self.events:
            data["feedback"] = [e.to_json() for e in self.events]
        if self.closed:
            data["closes"] = self.closed.to_json()
        if self.pushed:
            data["base_pushed"] = self.pushed.to_json()
        if self.settled:
            data["settled"] = self.settled.to_json()
        if self.part:
            data[self.part.key] = self.part.to_json()
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any], parts: PartReaders | None = None) -> Delivery:
        """Raises KeyError, TypeError or ValueError for a stored value that is not one. ``parts``: how
        each forge's own part is read back (:func:`baton.forge.kinds.registry.stored_parts`; without it, none
        is)."""
        target = None
        if "repos" in data:
            target = Target(tuple(data["repos"]), str(data["branch"]), data.get("merged") is True)
        events = tuple(ForgeEvent.from_json(e) for e in data.get("feedback", []))
        closed = Closed.from_json(data["closes"]) if "closes" in data else None
        pushed = BasePushed.from_json(data["base_pushed"]) if "base_pushed" in data else None
        settled = Settled.from_json(data["settled"]) if "settled" in data else None
        part = next((read(data[key]) for key, read in (parts or {}).items() if key in data), None)
        if "marker" in data:  # stored pending by an earlier version, as a string marker
            closed, pushed = _legacy_marker(str(data["marker"]))
        return cls(target, events, closed, pushed, settled, part)


def _legacy_marker(marker: str) -> tuple[Closed | None, BasePushed | None]:
    """``closed:<forge>:<repo>#<n>`` or ``pushed:<forge>:<repo>:<branch>``, as an earlier version
    stored a pending delivery's work (read only for rows written before this module)."""
    kind, _, rest = marker.partition(":")
    forge, _, rest = rest.partition(":")
    if kind == "closed":
        repo, _, number = rest.rpartition("#")
        return Closed(forge, repo, int(number)), None
    if kind == "pushed":
        repo, _, branch = rest.partition(":")
        return None, BasePushed(forge, repo, branch)
    raise ValueError(f"unknown marker {marker[:64]!r}")


def _repo(payload: Mapping[str, Any]) -> str | None:
    repository = payload.get("repository")
    name = repository.get("full_name") if isinstance(repository, dict) else None
    if not isinstance(name, str) or name.count("/") != 1 or len(name) > MAX_NAME:
        return None
    return None if any(c.isspace() or ord(c) < 32 for c in name) else name


def _closed(forge: ForgeConfig, event: str, payload: Mapping[str, Any]) -> Closed | None:
    if event not in ("issues", "pull_request") or payload.get("action") != "closed":
        return None
    item = payload.get("issue") if event == "issues" else payload.get("pull_request")
    number = item.get("number") if isinstance(item, dict) else None
    repo = _repo(payload)
    if type(number) is not int or not 0 < number < 2**63 or repo is None:  # a store's BIGINT
        return None
    merged = event == "pull_request" and isinstance(item, dict) and item.get("merged") is True
    return Closed(forge.name, repo, number, merged, pr=event == "pull_request")


def _pushed(forge: ForgeConfig, event: str, payload: Mapping[str, Any]) -> BasePushed | None:
    """A push to a branch (not a deletion): a moved base is how a PR comes to conflict, and the forge
    sends no event when its mergeability changes."""
    if event != "push" or payload.get("deleted") is True:
        return None
    sender = payload.get("sender")
    login = sender.get("login") if isinstance(sender, dict) else None
    if isinstance(login, str) and login.casefold().removesuffix("[bot]") == forge.user.casefold():
        return None  # baton's own push to a thread's branch moves no base it works on
    ref, repo = payload.get("ref"), _repo(payload)
    if not isinstance(ref, str) or not ref.startswith("refs/heads/") or repo is None:
        return None
    branch = ref.removeprefix("refs/heads/")
    if not branch or len(branch) > MAX_NAME or any(ord(c) < 32 or c == "\x7f" for c in branch):
        return None
    return BasePushed(forge.name, repo, branch)


def joined(target: Target | None, cleanup: Target | Ignored, found: Delivery | Ignored) -> Delivery | Ignored:
    """A delivery's cleanup and its forge loop's part, one delivery (a branch deleted is cleaned up
    even when the loop finds nothing in it), or why it asks nothing."""
    if isinstance(found, Ignored):
        return Delivery(target) if target else Ignored(f"{cleanup}; {found}")
    if target or found.feedback:
        return Delivery(target, found.events, found.closed, found.pushed, found.settled, found.part)
    return Ignored(str(cleanup))


class DeliveryReader(Protocol):
    """A forge's reading of its webhook deliveries (:class:`Reader` for GitHub's and Gitea's): its
    headers and signature (``forge``), and what a delivery asks for."""

    @property
    def forge(self) -> Forge: ...

    @property
    def parts(self) -> PartReaders:
        """How the parts only this forge sends are read back from a stored delivery (none: ``{}``)."""
        ...

    def read(self, config: ForgeSettings | None, event: str, payload: dict[str, Any]) -> Delivery | Ignored:
        """What the delivery asks for, or why nothing (``config`` None: only its cleanup is read).
        Raises :class:`~baton.forge.reading.webhook.Malformed`."""
        ...


@dataclass(frozen=True)
class Reader:
    """One forge's reading of its deliveries: its headers (:class:`~baton.forge.reading.webhook.Forge`) and
    its kind, which picks its table of feedback events in :mod:`baton.forge.reading.events`."""

    forge: Forge
    kind: str

    @property
    def parts(self) -> PartReaders:
        return {}

    def read(self, config: ForgeSettings | None, event: str, payload: dict[str, Any]) -> Delivery | Ignored:
        """What the delivery asks for, or why nothing (with ``config`` None, no forge loop runs and
        only the cleanup is read). Raises :class:`~baton.forge.reading.webhook.Malformed`."""
        cleanup = classify(event, payload)
        target = cleanup if isinstance(cleanup, Target) else None
        found = self.feedback(config, event, payload) if config is not None else Delivery()
        return joined(target, cleanup, found)

    def feedback(self, config: ForgeSettings, event: str, payload: dict[str, Any]) -> Delivery | Ignored:
        """The forge loop's part of a delivery: a closed thread, a moved base, or feedback events.

        A closed or pushed-to part whose fields are missing or malformed is no such part (as before
        this module): the intake then reads the same payload and says why it asks nothing."""
        forge = config.forge_of_kind(self.kind, _html_url(payload))
        if forge is None:
            return Ignored(f"no {self.kind} forge is configured for this delivery")
        closed = _closed(forge, event, payload)
        pushed = None if closed else _pushed(forge, event, payload)
        if closed or pushed:
            return Delivery(closed=closed, pushed=pushed)
        events = admitted(config, forge, self.events(forge, event, payload))
        settled = _settled(config, forge, event, payload)
        if isinstance(events, Ignored):
            return Delivery(settled=settled) if settled else events
        return Delivery(events=tuple(events), settled=settled)

    def events(self, forge: ForgeConfig, event: str, payload: dict[str, Any]) -> list[ForgeEvent] | Ignored:
        return events.read_event(
            self.kind, forge.name, event, payload, mention=forge.mention, user=forge.user
        )


def admitted(
    config: ForgeSettings, forge: ForgeConfig, events: list[ForgeEvent] | Ignored
) -> list[ForgeEvent] | Ignored:
    """The events a delivery carries, less the labels and assignments that are no trigger of their
    repository (:meth:`~baton.forge.data.config.RepoConfig.refuses`: ``bug`` where the label trigger names
    ``baton``): none left, the delivery is ignored with why. Every forge's reader filters its own."""
    if isinstance(events, Ignored):
        return events
    kept: list[ForgeEvent] = []
    refused: list[str] = []
    for found in events:
        repo = config.repo(forge.name, found.repo)
        why = repo.refuses(found.trigger, found.signature) if repo is not None else None
        if why is None:
            kept.append(found)
        elif why not in refused:
            refused.append(why)
    return kept if kept or not refused else Ignored("; ".join(refused))


APPROVALS = frozenset({"pull_request_approved", "pull_request_review_approved"})  # Gitea's event names
CHECK_EVENTS = ("check_run", "check_suite", "workflow_run")
SUCCEEDED = frozenset({"success", "neutral", "skipped"})


def _settled(
    config: ForgeSettings, forge: ForgeConfig, event: str, payload: Mapping[str, Any]
) -> Settled | None:
    """An approval (GitHub's ``pull_request_review`` approved; Gitea's approved review), a completed
    check run, check suite or workflow run that succeeded, or a commit status ``success``, on a
    repository whose merge policy is on: the merge policy asks whether the PRs it names are ready now
    (elsewhere such a delivery stays ignored, as it asks nothing). Anything malformed is no such part."""
    repo = _repo(payload)
    found = config.repo(forge.name, repo) if repo is not None else None
    if repo is None or found is None or found.merge is MergePolicy.OFF:
        return None
    if event == "pull_request_review" or event in APPROVALS:
        numbers = _approved(event, payload)
    elif event in CHECK_EVENTS:
        numbers = _succeeded(event, payload)
    elif event == "status" and payload.get("state") == "success":
        sha = payload.get("sha")
        if isinstance(sha, str) and 7 <= len(sha) <= 64 and all(c in "0123456789abcdefABCDEF" for c in sha):
            return Settled(forge.name, repo, head_sha=sha.lower())
        return None
    else:
        return None
    return Settled(forge.name, repo, numbers) if numbers else None


def _approved(event: str, payload: Mapping[str, Any]) -> tuple[int, ...]:
    """The PR an approval names (GitHub's review state, or Gitea's approved event)."""
    review = payload.get("review")
    state = str(review.get("state") or "") if isinstance(review, dict) else ""
    if event == "pull_request_review" and (
        payload.get("action") != "submitted" or state.lower() != "approved"
    ):
        return ()
    pr = payload.get("pull_request")
    number = pr.get("number") if isinstance(pr, dict) else None
    return (number,) if _number(number) else ()


def _succeeded(event: str, payload: Mapping[str, Any]) -> tuple[int, ...]:
    """The PRs a completed, succeeded check run, check suite or workflow run names."""
    run = payload.get(event)
    if payload.get("action") != "completed" or not isinstance(run, dict):
        return ()
    if run.get("conclusion") not in SUCCEEDED:
        return ()
    prs = run.get("pull_requests")
    listed = [p.get("number") for p in (prs if isinstance(prs, list) else [])[:100] if isinstance(p, dict)]
    return tuple(n for n in listed if _number(n))


def _number(value: Any) -> TypeGuard[int]:
    return type(value) is int and 0 < value < 2**63


def _html_url(payload: Mapping[str, Any]) -> str | None:
    """The repository's web address: which forge of a kind sent it, when several are configured."""
    repository = payload.get("repository")
    url = repository.get("html_url") if isinstance(repository, dict) else None
    return url if isinstance(url, str) else None
