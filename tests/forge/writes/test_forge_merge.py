"""The merge policy and what a merged or closed PR does, through the forge loop with the fake agent and
an in-memory forge (fast): approved and green marks baton's PR ready (and enables the forge's
auto-merge with ``auto``) once per head; an untrusted approval, a red or missing check, a change
requested, ``merge = "off"`` do nothing; a refusal is said once, a forge that does not answer is asked
again; a webhook's approval or green check is read into the delivery's ``settled`` part. A closed PR
cancels the thread's queued turn (its events dropped, saying why, nothing published for it) and ends
its running one at once, the work kept in the run's checkpoint. The same policy against the fake GitHub
and the fake Gitea: test_forge_merge_fakes.py."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from baton.fleet.execute import AFTER_JOB
from baton.fleet.local import LocalExecutor
from baton.forge.background import delivery_pool, feedback
from baton.forge.background.reconcile import reconcile
from baton.forge.background.schedule import heal
from baton.forge.data.config import ForgeConfig, ForgeSettings, MergePolicy, RepoConfig
from baton.forge.data.model import Actor, Budget, ForgeError, ForgeKind, Review, ThreadInfo
from baton.forge.data.records import Binding, BindingStatus, EventStatus, FeedbackKind
from baton.forge.data.tables import forge_store
from baton.forge.kinds.gitea.forge import READER as GITEA_READER
from baton.forge.kinds.github.app_events import READER as GITHUB_READER
from baton.forge.kinds.readiness import GREEN, PENDING, RED, CheckState, PullState, not_ready
from baton.forge.reading.delivery import Closed, Delivery, Settled
from baton.forge.reading.webhook import Ignored, Target
from baton.forge.turn import dispatch, start
from baton.forge.turn.loop import ForgeLoop
from baton.forge.writes import merge_policy, publish
from baton.keys import Key, parse_repo
from baton.models import JobStatus
from baton.settings import Settings
from baton.store import Store
from baton.testing.fake import register_fake
from baton.workspace.workdirs import Workdirs
from tests.conftest import HELD, git, make_repo, wait_for
from tests.forge.turn.test_forge_loop import MemoryForge, comment, idle
from tests.forge_fixtures import open_gate

HEAD = "c0ffee" + "0" * 34


@dataclass
class MergingForge(MemoryForge):
    """The in-memory forge, with a PR's readiness: its reviews, checks, draft flag and auto-merge."""

    approvals: list[Review] = field(default_factory=list)
    checks: list[CheckState] = field(default_factory=list)
    required: tuple[str, ...] | None = None
    draft: bool = True
    auto: bool = False
    calls: list[str] = field(default_factory=list)
    refuse: dict[str, ForgeError] = field(default_factory=dict)
    closed: ThreadInfo | None = None  # what the reconcile's list says of a closed thread

    def pull_state(self, repo: str, number: int) -> PullState:
        self.calls.append("pull_state")
        return PullState(
            number, True, self.draft, self.head or "", "main", tuple(self.approvals), tuple(self.checks),
            self.required, self.auto,
        )  # fmt: skip

    def mark_ready(self, repo: str, number: int) -> None:
        self.calls.append("mark_ready")
        if "ready" in self.refuse:
            raise self.refuse.pop("ready")
        self.draft = False

    def enable_auto_merge(self, repo: str, number: int, head_sha: str) -> str:
        self.calls.append("enable_auto_merge")
        if "auto" in self.refuse:
            raise self.refuse["auto"]
        assert head_sha == self.head
        self.auto = True
        return "merge"

    def updated_since(self, repo: str, since: float) -> list[ThreadInfo]:
        return [self.closed] if self.closed else []


def approval(login: str, commit: str | None, state: str = "APPROVED") -> Review:
    return Review(len(login), Actor(login), state, "", commit, "u")


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    src = make_repo(tmp_path / "src", {"README.md": "hello\n"})
    bare = tmp_path / "origin.git"
    git(tmp_path, "clone", "--bare", "--quiet", str(src), str(bare))
    return bare


@pytest.fixture
def forge() -> MergingForge:
    return MergingForge()


def forge_config(origin: Path, policy: MergePolicy) -> ForgeSettings:
    gh = ForgeConfig(
        "gh", ForgeKind.GITHUB, "http://x/api/v3", "http://x", "TEST_FORGE_TOKEN", "baton-bot", "@baton"
    )
    repo = RepoConfig(
        name="acme/api", forge="gh", agent="fake", clone_url=str(origin), budget=Budget(2, 20), merge=policy
    )
    return ForgeSettings(forges={"gh": gh}, repos={("gh", "acme/api"): repo})


def make_loop(
    settings: Settings, store: Store, origin: Path, forge: MergingForge, executor: LocalExecutor
) -> ForgeLoop:
    loop = ForgeLoop(
        settings,
        store,
        forge_config(origin, MergePolicy.READY),
        executor.submit,
        clients={"gh": forge},
        cancel=executor.cancel,
    )
    publish.install(loop)
    return loop


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    register_fake()
    monkeypatch.setenv("FAKE_AGENT_WRITE", "notes.md")
    monkeypatch.setenv("TEST_FORGE_TOKEN", "secret-token")


@pytest.fixture
def loop(
    settings: Settings, store: Store, origin: Path, forge: MergingForge, env: None
) -> Iterator[ForgeLoop]:
    executor = LocalExecutor(settings, store)
    made = make_loop(settings, store, origin, forge, executor)
    executor.start()
    yield made
    executor.stop()
    AFTER_JOB.pop("forge", None)


@pytest.fixture
def stalled(
    settings: Settings, store: Store, origin: Path, forge: MergingForge, env: None
) -> Iterator[ForgeLoop]:
    """A loop whose executor never starts a job: its turns stay queued."""
    made = make_loop(settings, store, origin, forge, LocalExecutor(settings, store))
    yield made
    AFTER_JOB.pop("forge", None)


def policy(loop: ForgeLoop, merge_policy: MergePolicy) -> None:
    repo = loop.config.repos[("gh", "acme/api")]
    loop.config.repos[("gh", "acme/api")] = replace(repo, merge=merge_policy)


def opened(loop: ForgeLoop, forge: MergingForge) -> Binding:
    """A thread whose first turn pushed and opened its draft PR (#7); the forge's head is baton's push."""
    assert dispatch.handle(loop, comment(1, "@baton please add a greeting")).status == "accepted"
    idle(loop)
    binding = forge_store(loop.store).get_binding("gh", "acme/api", 42)
    assert binding is not None and binding.pr == 7 and binding.head_sha
    forge.head = binding.head_sha
    forge.calls.clear()
    return binding


def audited(loop: ForgeLoop, action: str) -> list[dict[str, Any]]:
    return [a for a in loop.store.list_audit(200) if a["action"] == action]


def records(loop: ForgeLoop) -> dict[str, str | None]:
    events = forge_store(loop.store).forge_events("gh", "acme/api", 42)
    return {e.identity: e.reason for e in events if e.identity.startswith("merge:")}


# -- the merge policy --------------------------------------------------------------------------------------


def test_approved_and_green_marks_the_pr_ready_once_per_head(loop: ForgeLoop, forge: MergingForge) -> None:
    binding = opened(loop, forge)
    forge.approvals, forge.checks = [approval("alice", forge.head)], [CheckState("ci", GREEN)]
    done = merge_policy.consider(loop, binding, "a test")
    assert done["merge"] == "ready" and done["ready"] == "done: marked ready for review", done
    assert forge.calls == ["pull_state", "mark_ready"] and forge.draft is False
    [row] = audited(loop, "forge.ready")
    assert row["detail"] == {"pr": 7, "head": forge.head, "after": "a test"}
    assert records(loop) == {f"merge:ready:{forge.head}": "merge policy: done: marked ready for review"}
    # a redelivery, a second webhook, the reconcile: the store says it is done, the forge is not asked
    forge.calls.clear()
    assert merge_policy.consider(loop, binding, "again") == {"merge": "done for this head"}
    assert feedback.act_on_settled(loop, Settled("gh", "acme/api", (7,)))["merge"] == [
        {"merge": "done for this head"}
    ]
    reconcile(loop)
    assert forge.calls == [] and len(audited(loop, "forge.ready")) == 1
    # the auto-merge step was never asked for: the policy is "ready"
    assert forge.auto is False


def test_auto_also_enables_the_forges_own_auto_merge_once(loop: ForgeLoop, forge: MergingForge) -> None:
    policy(loop, MergePolicy.AUTO)
    binding = opened(loop, forge)
    forge.approvals, forge.checks = [approval("alice", forge.head)], [CheckState("ci", GREEN)]
    done = merge_policy.consider(loop, binding, "a test")
    assert forge.calls == ["pull_state", "mark_ready", "enable_auto_merge"], done
    assert forge.auto is True and done["auto_merge"] == "done: the forge's auto-merge enabled (merge)"
    [row] = audited(loop, "forge.auto_merge")
    assert row["detail"]["method"] == "merge" and row["detail"]["head"] == forge.head
    forge.calls.clear()
    assert (
        merge_policy.consider(loop, binding, "again") == {"merge": "done for this head"} and forge.calls == []
    )


@pytest.mark.parametrize(
    ("case", "words"),
    [
        ("untrusted", "mallory, not trusted"),
        ("own", "baton-bot, not trusted"),
        ("stale", "no approval on the head"),
        ("changes", "changes are requested by bob"),
        ("red", "failing: ci"),
        ("pending", "waiting for the check ci"),
        ("required", "waiting for the required check build"),
    ],
)
def test_nothing_is_done_until_the_pr_is_ready(
    loop: ForgeLoop, forge: MergingForge, case: str, words: str
) -> None:
    policy(loop, MergePolicy.AUTO)
    binding = opened(loop, forge)
    forge.approvals, forge.checks = [approval("alice", forge.head)], [CheckState("ci", GREEN)]
    if case in ("untrusted", "own"):  # mallory has read access; baton's own approval counts for nothing
        forge.approvals = [approval("mallory" if case == "untrusted" else "baton-bot", forge.head)]
    elif case == "stale":  # approved before the last push
        forge.approvals = [approval("alice", "0" * 40)]
    elif case == "changes":  # bob asked for changes after alice approved: it holds, whoever bob is
        forge.approvals.append(approval("bob", forge.head, "CHANGES_REQUESTED"))
    elif case in ("red", "pending"):
        forge.checks = [CheckState("ci", RED if case == "red" else PENDING), CheckState("lint", GREEN)]
    else:  # a required check that has not reported yet
        forge.required = ("build",)
    done = merge_policy.consider(loop, binding, "a test")
    assert done["merge"] == "not ready" and words in done["why"], done
    assert forge.calls == ["pull_state"] and forge.draft is True and forge.auto is False
    assert not audited(loop, "forge.ready") and not audited(loop, "forge.auto_merge") and not records(loop)
    # nothing was recorded: once it is ready, it is marked
    forge.approvals, forge.checks, forge.required = (
        [approval("alice", forge.head)],
        [CheckState("ci", GREEN)],
        None,
    )
    assert merge_policy.consider(loop, binding, "later")["merge"] == "ready" and forge.auto is True


def test_merge_off_asks_the_forge_nothing(loop: ForgeLoop, forge: MergingForge) -> None:
    policy(loop, MergePolicy.OFF)
    binding = opened(loop, forge)
    forge.approvals, forge.checks = [approval("alice", forge.head)], [CheckState("ci", GREEN)]
    assert merge_policy.consider(loop, binding, "a test") == {"merge": "off"}
    assert feedback.act_on_settled(loop, Settled("gh", "acme/api", (7,)))["merge"] == [{"merge": "off"}]
    assert forge.calls == [] and forge.draft is True


def test_a_pr_baton_did_not_open_is_never_touched(loop: ForgeLoop, forge: MergingForge) -> None:
    binding = Binding("gh", "acme/api", 9, "fake", "x", "pr-9", "u", pr=9, head_sha=HEAD)  # bound on a PR
    assert merge_policy.consider(loop, binding, "a test") == {"merge": "not a pull request baton opened"}
    assert forge.calls == []


def test_a_refusal_is_said_once_and_never_raises(
    loop: ForgeLoop, forge: MergingForge, caplog: pytest.LogCaptureFixture
) -> None:
    policy(loop, MergePolicy.AUTO)
    binding = opened(loop, forge)
    forge.approvals, forge.checks = [approval("alice", forge.head)], [CheckState("ci", GREEN)]
    forge.refuse["auto"] = ForgeError("GitHub's GraphQL API refused: auto-merge is not allowed", 422)
    with caplog.at_level(logging.WARNING, "baton.forge"):
        done = merge_policy.consider(loop, binding, "a test")
        assert done["ready"].startswith("done") and done["auto_merge"].startswith("refused: GitHub's"), done
        forge.calls.clear()
        assert merge_policy.consider(loop, binding, "again") == {"merge": "done for this head"}
    assert forge.calls == []  # said once: not asked again for this head
    [row] = audited(loop, "forge.auto_merge")
    assert "auto-merge is not allowed" in row["detail"]["refused"]
    assert "refused: GitHub's GraphQL API refused" in str(records(loop)[f"merge:auto_merge:{forge.head}"])
    assert len([r for r in caplog.records if "auto_merge refused" in r.getMessage()]) == 1


def test_a_forge_that_does_not_answer_is_asked_again(loop: ForgeLoop, forge: MergingForge) -> None:
    binding = opened(loop, forge)
    forge.approvals, forge.checks = [approval("alice", forge.head)], [CheckState("ci", GREEN)]
    forge.refuse["ready"] = ForgeError("GitHub did not answer POST /api/graphql (ReadTimeout)", 0)
    done = merge_policy.consider(loop, binding, "a test")
    assert done["merge"] == "error" and "did not answer" in done["error"]
    assert not records(loop) and not audited(loop, "forge.ready")
    assert merge_policy.consider(loop, binding, "again")["ready"].startswith("done") and forge.draft is False


def test_a_turn_under_way_holds_the_policy_back(
    loop: ForgeLoop, forge: MergingForge, monkeypatch: pytest.MonkeyPatch
) -> None:
    binding = opened(loop, forge)
    forge.approvals, forge.checks = [approval("alice", forge.head)], [CheckState("ci", GREEN)]
    monkeypatch.setenv("FAKE_AGENT_RUN", HELD)  # the turn, until the policy was considered
    assert dispatch.handle(loop, comment(2, "one more thing")).status == "accepted"
    assert merge_policy.consider(loop, binding, "a test")["merge"].startswith(
        "a turn of the thread is under way"
    )
    assert forge.calls == []
    open_gate(loop.settings.home, 42)
    idle(loop)


def test_an_approval_with_words_is_looked_at_again_when_its_turn_is_published(
    loop: ForgeLoop, forge: MergingForge, monkeypatch: pytest.MonkeyPatch
) -> None:
    binding = opened(loop, forge)
    monkeypatch.delenv("FAKE_AGENT_WRITE")  # the review's turn answers and changes nothing
    monkeypatch.setenv("FAKE_AGENT_RUN", HELD)  # the review's turn, until the policy was considered
    forge.approvals, forge.checks = [approval("alice", forge.head)], [CheckState("ci", GREEN)]
    # an approval that says something: its words are a turn, and the policy waits for it
    assert dispatch.handle(loop, comment(2, "looks good, thanks")).status == "accepted"
    assert merge_policy.consider(loop, binding, "a review")["merge"].startswith(
        "a turn of the thread is under way"
    )
    assert forge.draft is True
    open_gate(loop.settings.home, 42)
    idle(loop)
    # the turn pushed nothing: the approval is on the head still, and the PR is ready now
    assert forge.draft is False and "mark_ready" in forge.calls
    [row] = audited(loop, "forge.ready")
    assert row["detail"]["after"] == "a turn"


def test_an_approval_with_words_on_a_base_that_moved_never_merges_by_itself(
    loop: ForgeLoop, forge: MergingForge, origin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/forge.md (The merge policy, when the base moved): "approve, ship it" is a turn, whose own
    sync of the base pushes a new head the approval is not on — so the PR waits for another approval."""
    binding = opened(loop, forge)
    policy(loop, MergePolicy.AUTO)
    branch, approved = str(binding.branch), str(forge.head)
    base = tmp_path / "base"
    git(tmp_path, "clone", "--quiet", str(origin), str(base))
    (base / "later.md").write_text("the base moved\n")
    git(base, "add", "later.md")
    git(base, "commit", "--quiet", "-m", "the base moves")
    git(base, "push", "--quiet", "origin", "HEAD")
    asked = forge.pull_state

    def following(repo: str, number: int) -> PullState:  # the PR's head is the branch's, as pushed
        forge.head = git(origin, "rev-parse", branch)
        return asked(repo, number)

    monkeypatch.setattr(forge, "pull_state", following)
    monkeypatch.delenv("FAKE_AGENT_WRITE")  # the agent changes nothing: only the sync moves the head
    ship = Review(5, Actor("alice"), "APPROVED", "approve, ship it", approved, "u")
    forge.approvals, forge.checks = [ship], [CheckState("ci", GREEN)]
    review = replace(comment(5, ship.body), kind=FeedbackKind.REVIEW, identity="review:5", number=7)
    assert dispatch.handle(loop, review).status == "accepted"
    idle(loop)
    moved = git(origin, "rev-parse", branch)
    assert moved != approved and git(origin, "show", f"{moved}:later.md") == "the base moved"
    assert forge.draft is True and forge.auto is False and "mark_ready" not in forge.calls
    done = merge_policy.consider(loop, binding, "reconcile")
    assert done["merge"] == "not ready" and f"no approval on the head {moved[:12]}" in done["why"], done


def test_an_approval_with_words_read_before_its_webhook_waits_for_its_turn(
    loop: ForgeLoop, forge: MergingForge, monkeypatch: pytest.MonkeyPatch
) -> None:
    binding = opened(loop, forge)
    policy(loop, MergePolicy.AUTO)
    monkeypatch.delenv("FAKE_AGENT_WRITE")
    words = Review(5, Actor("alice"), "APPROVED", "LGTM, but rename it to greet()", forge.head, "u")
    forge.approvals, forge.checks = [words], [CheckState("ci", GREEN)]
    # the reconcile (or a green check's webhook) looks first: the approval's words are an instruction
    done = merge_policy.consider(loop, binding, "reconcile")
    assert done["merge"] == "not ready" and "says something: its turn comes first" in done["why"], done
    assert "mark_ready" not in forge.calls and "enable_auto_merge" not in forge.calls
    # its webhook comes: a turn answers it, pushes nothing, and the policy acts once it is published
    review = replace(comment(5, words.body), kind=FeedbackKind.REVIEW, identity="review:5", number=7)
    assert dispatch.handle(loop, review).status == "accepted"
    idle(loop)
    assert forge.draft is False and forge.auto is True
    assert [a["detail"]["after"] for a in audited(loop, "forge.auto_merge")] == ["a turn"]


def test_an_event_waiting_for_its_turn_holds_the_policy_back_and_is_started(
    loop: ForgeLoop, forge: MergingForge, monkeypatch: pytest.MonkeyPatch
) -> None:
    binding = opened(loop, forge)
    policy(loop, MergePolicy.AUTO)
    forge.approvals, forge.checks = [approval("alice", forge.head)], [CheckState("ci", GREEN)]
    kick = start.kick
    # the review's event is stored, and its turn not started yet (its kick comes a moment later)
    monkeypatch.setattr(dispatch, "kick", lambda *_a, **_k: None)
    assert dispatch.handle(loop, comment(2, "approved, and rename it please")).status == "coalesced"
    monkeypatch.setattr(dispatch, "kick", kick)
    done = merge_policy.consider(loop, binding, "a review")
    assert done["merge"].startswith("an event of the thread waits for its turn"), done
    assert "mark_ready" not in forge.calls and "enable_auto_merge" not in forge.calls
    assert forge.draft is True and forge.auto is False
    # ... and the policy started the turn the event waited for
    [event] = [
        e for e in forge_store(loop.store).forge_events("gh", "acme/api", 42) if e.identity == "comment:2"
    ]
    assert event.job_id is not None
    idle(loop)


def test_readiness_rules_read_the_latest_word_of_each_reviewer() -> None:
    def pull(*reviews: Review, checks: tuple[CheckState, ...] = (CheckState("ci", GREEN),)) -> PullState:
        return PullState(7, True, True, HEAD, "main", reviews, checks, None)

    def anyone(actor: Actor) -> bool:
        return True

    # changes requested, then approved: the approval is bob's word now
    assert not_ready(pull(approval("bob", HEAD, "CHANGES_REQUESTED"), approval("bob", HEAD)), anyone) is None
    # approved, then a dismissal: no approval left
    assert "no approval" in str(
        not_ready(pull(approval("bob", HEAD), approval("bob", HEAD, "DISMISSED")), anyone)
    )
    # a comment changes nobody's word
    assert not_ready(pull(approval("bob", HEAD), approval("bob", HEAD, "COMMENTED")), anyone) is None
    # a check that failed once and passed later (two entries of one name): the worst holds it back
    twice = (CheckState("ci", RED), CheckState("ci", GREEN))
    assert "failing: ci" in str(not_ready(pull(approval("bob", HEAD), checks=twice), anyone))
    # names from the forge are data, however they read
    hostile = (CheckState("<!-- baton:status -->\x00" + "x" * 1000, RED),)
    assert "failing:" in str(not_ready(pull(approval("bob", HEAD), checks=hostile), anyone))
    closed = replace(pull(approval("bob", HEAD)), open=False)
    assert not_ready(closed, anyone) == "the pull request is not open"


def test_a_head_no_check_has_reported_on_waits_unless_the_repository_has_no_ci() -> None:
    """An approval may land on a new head before CI has started there: no check run or status on the
    head is waiting, not green — unless the repository says it has no CI (``checks = "none"``)."""
    bare = PullState(7, True, True, HEAD, "main", (approval("bob", HEAD),), (), None)
    assert not_ready(bare, lambda _who: True) == (
        "waiting for the checks: none has reported on the head c0ffee000000 yet"
    )
    assert not_ready(bare, lambda _who: True, ci=False) is None
    # without CI a check that does report still counts, and a required one is still waited for
    running = replace(bare, checks=(CheckState("lint", PENDING),))
    assert not_ready(running, lambda _who: True, ci=False) == "waiting for the check lint"
    required = replace(bare, required=("build",))
    assert not_ready(required, lambda _who: True, ci=False) == "waiting for the required check build"


# -- what a webhook's approval or green check is read into ------------------------------------------------


def _gh(loop: ForgeLoop, event: str, payload: dict[str, Any]) -> Delivery | Ignored:
    return GITHUB_READER.feedback(loop.config, event, {"repository": {"full_name": "acme/api"}, **payload})


def test_an_approval_or_a_green_check_is_read_as_settled(stalled: ForgeLoop) -> None:
    review = {"id": 5, "state": "approved", "body": None, "user": {"login": "alice"}, "commit_id": HEAD}
    side = {"sha": HEAD, "repo": {"full_name": "acme/api"}}
    pr = {"number": 7, "title": "t", "head": side, "base": side}
    found = _gh(stalled, "pull_request_review", {"action": "submitted", "review": review, "pull_request": pr})
    assert (
        isinstance(found, Delivery) and found.settled == Settled("gh", "acme/api", (7,)) and not found.events
    )
    assert Delivery.from_json(found.to_json()) == found  # stored pending, read back after a restart
    run = {"id": 1, "name": "ci", "conclusion": "success", "head_sha": HEAD, "pull_requests": [{"number": 7}]}
    found = _gh(stalled, "check_run", {"action": "completed", "check_run": run})
    assert isinstance(found, Delivery) and found.settled == Settled("gh", "acme/api", (7,))
    found = _gh(stalled, "status", {"state": "success", "sha": HEAD, "context": "ci"})
    assert isinstance(found, Delivery) and found.settled == Settled("gh", "acme/api", head_sha=HEAD)
    # a failure, a request for changes, hostile numbers: nothing settled
    failed = {**run, "conclusion": "failure", "pull_requests": []}
    assert isinstance(_gh(stalled, "check_run", {"action": "completed", "check_run": failed}), Ignored)
    rejected = {**review, "state": "changes_requested", "body": "no"}
    found = _gh(
        stalled, "pull_request_review", {"action": "submitted", "review": rejected, "pull_request": pr}
    )
    assert isinstance(found, Delivery) and found.settled is None and found.events
    bad = {**run, "pull_requests": [{"number": "7"}, {"number": -1}, "x", {"number": True}, None]}
    assert isinstance(_gh(stalled, "check_run", {"action": "completed", "check_run": bad}), Ignored)
    # a repository whose merge policy is off: an approval asks nothing, as before
    policy(stalled, MergePolicy.OFF)
    found = _gh(stalled, "pull_request_review", {"action": "submitted", "review": review, "pull_request": pr})
    assert isinstance(found, Ignored) and "approval without words" in found.reason


def test_giteas_approval_is_read_as_settled(stalled: ForgeLoop) -> None:
    gitea = ForgeConfig(
        "gt", ForgeKind.GITEA, "http://g/api/v1", "http://g", "TEST_FORGE_TOKEN", "baton-bot", "@baton"
    )
    repo = RepoConfig("acme/api", "gt", agent="fake", merge=MergePolicy.READY)
    config = ForgeSettings(forges={"gt": gitea}, repos={("gt", "acme/api"): repo})
    payload = {
        "action": "reviewed",
        "review": {"type": "pull_request_review_approved", "content": ""},
        "pull_request": {"number": 7, "title": "WIP: t", "head": {"sha": HEAD}},
        "repository": {"full_name": "acme/api"},
    }
    found = GITEA_READER.feedback(config, "pull_request_approved", payload)
    assert isinstance(found, Delivery) and found.settled == Settled("gt", "acme/api", (7,))


# -- a merged or closed PR -----------------------------------------------------------------------------------


def test_a_closed_thread_cancels_its_queued_turn_and_drops_its_events(
    stalled: ForgeLoop, forge: MergingForge
) -> None:
    first = dispatch.handle(stalled, comment(1, "@baton start"))
    assert first.status == "accepted" and first.job_id is not None
    assert dispatch.handle(stalled, comment(2, "and this too")).status == "coalesced"  # waits behind it
    assert stalled.store.get_job(first.job_id).status == JobStatus.QUEUED  # type: ignore[union-attr]
    done = feedback.act_on_closed(stalled, Closed("gh", "acme/api", 42))
    assert done == {"closed": "gh:acme/api#42", "cancelled": [first.job_id], "dropped_events": 1}
    job = stalled.store.get_job(first.job_id)
    assert job is not None and job.status == JobStatus.DONE and job.outcome == "cancelled"
    events = {e.identity: e for e in forge_store(stalled.store).forge_events("gh", "acme/api", 42)}
    assert events["comment:1"].status == EventStatus.DROPPED
    assert events["comment:1"].reason == "its turn was cancelled: the thread is closed on the forge"
    assert events["comment:2"].status == EventStatus.DROPPED
    assert events["comment:2"].reason == "the thread is closed (closed on the forge)"
    binding = forge_store(stalled.store).get_binding("gh", "acme/api", 42)
    assert binding is not None and binding.status == BindingStatus.CLOSED
    [row] = audited(stalled, "forge.closed")
    assert row["detail"]["cancelled"] == [first.job_id]
    # nothing is written back for a turn that never ran, and nothing more starts
    assert forge_store(stalled.store).unpublished_turns() == []
    assert heal(stalled) == 0 and forge.posted == {}
    assert dispatch.handle(stalled, comment(3, "@baton again")).status == "ignored"
    assert feedback.act_on_closed(stalled, Closed("gh", "acme/api", 42)) == {
        "ignored": "gh:acme/api#42 is not an open bound thread"
    }


def test_the_reconciles_find_of_a_closed_issue_stops_its_thread_too(
    stalled: ForgeLoop, forge: MergingForge
) -> None:
    first = dispatch.handle(stalled, comment(1, "@baton start"))
    assert first.job_id is not None
    forge.closed = ThreadInfo(42, False, "closed", "Add a greeting", "", "u", Actor("alice"))
    reconcile(stalled)
    binding = forge_store(stalled.store).get_binding("gh", "acme/api", 42)
    assert (
        binding is not None
        and binding.status == BindingStatus.CLOSED
        and binding.note == "closed on the forge"
    )
    job = stalled.store.get_job(first.job_id)
    assert job is not None and job.outcome == "cancelled" and job.started_at is None
    assert audited(stalled, "forge.closed")[0]["actor"] == "reconcile"


def test_a_merged_pr_ends_its_running_turn_and_the_work_stays_checkpointed(
    loop: ForgeLoop, forge: MergingForge, settings: Settings, origin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    binding = opened(loop, forge)
    # the next turn writes half its work, then thinks for a minute
    monkeypatch.setenv("FAKE_AGENT_RUN", "echo 'half done' > wip.txt && sleep 60")
    running = dispatch.handle(loop, comment(2, "now the rest"))
    job_id = running.job_id
    assert running.status == "accepted" and job_id is not None
    key = Key(binding.agent, parse_repo(binding.repo_url), binding.thread)
    workdirs = Workdirs(settings)
    wait_for(lambda: (workdirs.worktree_path(key) / "wip.txt").exists(), timeout=60)
    started = time.monotonic()
    done = feedback.act_on_closed(loop, Closed("gh", "acme/api", 7))  # the PR's number finds the thread
    assert done == {"closed": "gh:acme/api#42", "stopping": [job_id]}

    def ended() -> bool:
        job = loop.store.get_job(job_id)
        return job is not None and job.status == JobStatus.DONE

    wait_for(ended, timeout=30)
    assert time.monotonic() - started < 30  # ended at once, not after the agent's minute
    job = loop.store.get_job(job_id)
    assert job is not None and job.outcome == "cancelled"
    # the work is in the run's checkpoint, never pushed, never deleted
    cache, ref = workdirs.cache_path(key.repo), workdirs.checkpoint_ref(key)
    assert git(cache, "show", f"{ref}:wip.txt").strip() == "half done"
    assert (workdirs.worktree_path(key) / "wip.txt").read_text() == "half done\n"
    assert "wip.txt" not in git(origin, "ls-tree", "--name-only", binding.branch or "baton/fake/issue-42")
    session = loop.store.get_session(binding.agent, binding.repo_slug, binding.thread)
    assert session is not None and session.agent_session_id  # the conversation is kept
    after = forge_store(loop.store).get_binding("gh", "acme/api", 42)
    assert after is not None and after.status == BindingStatus.CLOSED


def test_a_closed_prs_delivery_stops_the_turns_before_its_cleanup_waits_for_them(
    stalled: ForgeLoop, settings: Settings, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    order: list[str] = []

    def closing(*_args: object) -> dict[str, str]:
        order.append("closed")
        return {"closed": "x"}

    monkeypatch.setattr(delivery_pool, "close_target", lambda *_args: order.append("cleanup"))
    monkeypatch.setattr(feedback, "close_thread", closing)
    binding = Binding("gh", "acme/api", 42, "fake", "x", "issue-42", "u")
    forge_store(store).bind(binding)
    worker = delivery_pool.Worker(store, settings, 1, stalled)
    worker.start()
    work = Delivery(Target(("x",), "baton/fake/issue-42", True), closed=Closed("gh", "acme/api", 42))
    try:
        worker.submit("github", "d-1", work)
        wait_for(lambda: len(order) == 2, timeout=10)
    finally:
        worker.stop()
    assert order == ["closed", "cleanup"]
