"""The merge policy against the fake GitHub and the fake Gitea, through baton's real clients: the
webhook the fake sends for an approval is read into its ``settled`` part, and an approved, green PR
baton opened is marked ready (GitHub: out of draft through GraphQL; Gitea: its ``WIP:`` title prefix
dropped) and, with ``merge = "auto"``, handed to the forge's own auto-merge (GitHub: enabled, waiting;
Gitea: ``merge_when_checks_succeed``, which merges a green PR at once) — once, however often it is
asked; an untrusted approval, a red or a required-but-missing check, a refusal do nothing more than
say so. Every request and answer is checked against the forge's own description (``fake.violations``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from baton.forge.background import feedback
from baton.forge.background.reconcile import reconcile
from baton.forge.data.model import ForgeKind
from baton.forge.data.records import Binding
from baton.forge.data.tables import forge_store
from baton.forge.kinds import registry
from baton.forge.kinds.configured import load_forges
from baton.forge.reading.delivery import Delivery
from baton.forge.turn.loop import ForgeLoop
from baton.forge.turn.threads import bind_thread
from baton.forge.writes import publish
from baton.settings import Settings
from baton.store import Store
from baton.testing.fake_forge import FakeForge
from tests.forge_fixtures import REPO, configure, fake_fixture, forge_kind_fixture, kind_of  # noqa: F401

BRANCH = "baton/claude/issue-1"


@pytest.fixture
def policy(settings: Settings, store: Store, fake: FakeForge, monkeypatch: pytest.MonkeyPatch) -> Iterator[
    Callable[[str], ForgeLoop]
]:  # fmt: skip
    """A forge loop on the fake, its repository's ``merge`` set to what the test asks."""
    monkeypatch.setenv("BATON_GIT_TOKEN", fake.token("baton-bot"))
    made: list[ForgeLoop] = []

    def make(value: str, extra: str = "") -> ForgeLoop:
        configure(settings, fake, "claude")
        config = settings.home / "config.toml"
        config.write_text(config.read_text() + f'merge = "{value}"\n{extra}')  # the repo's table is the last
        made.append(publish.compose(settings, store, load_forges(settings.home), lambda _job: None))
        return made[-1]

    yield make
    for loop in made:
        loop.close()


def baton_pr(loop: ForgeLoop, fake: FakeForge) -> tuple[Binding, int, str]:
    """An issue bound to a thread, and the draft PR baton opened for it (as a turn's publish does)."""
    kind = kind_of(fake)
    issue = fake.open_issue(REPO, "alice", "Add a greeting", "@baton please")
    head = fake.commit(REPO, BRANCH, {"hello.txt": "hi\n"}, login="baton-bot")
    title = "WIP: Add a greeting" if kind == "gitea" else "Add a greeting"
    pr = fake.open_pr(REPO, "baton-bot", BRANCH, "main", title, f"Closes #{issue}.", draft=True)
    binding = bind_thread(loop, kind, REPO, issue, "claude", actor="test")
    binding.pr, binding.head_sha, binding.branch = pr, head, BRANCH
    forge_store(loop.store).save_binding(binding)
    return binding, pr, head


def approve(loop: ForgeLoop, fake: FakeForge, pr: int, login: str = "alice") -> dict[str, Any]:
    """``login`` approves the PR; the delivery the fake made of it, read as baton's webhook reads it,
    acted on."""
    fake.review(REPO, pr, login, "", state="APPROVED")
    delivery = fake.deliveries[-1]
    read = registry.reader(ForgeKind(kind_of(fake))).read(loop.config, delivery.event, delivery.payload)
    assert isinstance(read, Delivery) and read.settled is not None, read
    return feedback.act_on_settled(loop, read.settled)


def settle_checks(loop: ForgeLoop, fake: FakeForge, since: int) -> list[dict[str, Any]]:
    """The deliveries the fake made since ``since`` (a check's webhooks), read as baton's webhook reads
    them; what the policy did for each that says a check settled."""
    done = []
    for delivery in fake.deliveries[since:]:
        read = registry.reader(ForgeKind(kind_of(fake))).read(loop.config, delivery.event, delivery.payload)
        if isinstance(read, Delivery) and read.settled is not None:
            done.append(feedback.act_on_settled(loop, read.settled))
    return done


def writes(fake: FakeForge) -> list[str]:
    return [f"{r.method} {r.path}" for r in fake.requests if r.method != "GET"]


def audited(loop: ForgeLoop, action: str) -> list[dict[str, Any]]:
    return [a for a in loop.store.list_audit(200) if a["action"] == action]


@pytest.mark.parametrize("forge_kind", ["github", "gitea"])
def test_an_approved_green_pr_is_marked_ready_and_auto_merged_once(
    policy: Callable[[str], ForgeLoop], fake: FakeForge, forge_kind: str
) -> None:
    loop = policy("auto")
    _binding, pr, head = baton_pr(loop, fake)
    fake.add_check_run(REPO, head, "test", "success")
    if forge_kind == "github":  # GitHub enables auto-merge only while something is left to wait for
        fake.require_approvals(REPO, 2)
    asked = len(fake.requests)
    done = approve(loop, fake, pr)
    made = [f"{r.method} {r.path.split('/')[-1]}" for r in fake.requests[asked:]]
    if forge_kind == "github":  # the PR, its head's checks and statuses, reviews, base branch and rules;
        # the approver's permission; ready, the repository's merge settings, auto-merge (GraphQL)
        assert len(made) == 10 and made[-3:] == ["POST graphql"] * 3, made
    else:  # the PR, the head's statuses, reviews, branch protections; the permission; the title; the
        # repository's merge styles, the merge
        assert len(made) == 8 and made[-3:] == ["PATCH 2", "GET api", "POST merge"], made
    delivery = next(d for d in reversed(fake.deliveries) if d.event != "pull_request" and d.event != "push")
    [result] = done["merge"]
    assert result["merge"] == "ready" and result["ready"].startswith("done"), result
    assert result["auto_merge"].startswith("done: the forge's auto-merge enabled (merge)"), result
    issue = fake.issue(REPO, pr)
    assert issue.pr is not None and issue.pr.draft is False
    if forge_kind == "github":  # enabled, waiting for the second approval GitHub requires
        assert issue.pr.auto_merge == "merge" and issue.pr.auto_merge_by == "baton-bot"
        assert issue.state == "open"
        # ready; the repository's merge settings; auto-merge with its default method
        assert writes(fake).count("POST /api/graphql") == 3
    else:  # Gitea merges a PR whose statuses all succeeded at once, through its own merge
        assert issue.title == "Add a greeting"
        assert issue.state == "closed" and issue.pr.merged
    assert len(audited(loop, "forge.ready")) == 1 and len(audited(loop, "forge.auto_merge")) == 1
    # asked again (a redelivery, another green check): the store says it is done; the forge is not asked
    before = len(fake.requests)
    read = registry.reader(ForgeKind(forge_kind)).read(loop.config, delivery.event, delivery.payload)
    assert isinstance(read, Delivery) and read.settled is not None
    again = feedback.act_on_settled(loop, read.settled)
    assert again["merge"][0]["merge"] in ("done for this head", "the thread is closed")
    assert len(fake.requests) == before


@pytest.mark.parametrize("forge_kind", ["github", "gitea"])
def test_an_auto_pr_approved_before_any_check_reported_waits_for_its_checks(
    policy: Callable[[str], ForgeLoop], fake: FakeForge
) -> None:
    """A new head CI has not spoken on yet: no check run or status is *waiting*, not green — the
    approval that lands first merges nothing; the green check that comes later does."""
    loop = policy("auto")
    _binding, pr, head = baton_pr(loop, fake)
    [result] = approve(loop, fake, pr)["merge"]
    assert result["merge"] == "not ready" and "none has reported on the head" in result["why"], result
    issue = fake.issue(REPO, pr)
    assert issue.pr is not None and issue.pr.draft is True and not issue.pr.merged and issue.state == "open"
    assert not audited(loop, "forge.ready") and not audited(loop, "forge.auto_merge")
    assert all("graphql" not in w and "merge" not in w and "PATCH" not in w for w in writes(fake))
    # CI reports: its green check's webhook asks the policy again, which merges it now
    since = len(fake.deliveries)
    fake.add_check_run(REPO, head, "test", "success")
    done = [r for d in settle_checks(loop, fake, since) for r in d["merge"] if r["merge"] == "ready"]
    assert done and done[0]["auto_merge"].startswith("done"), done
    assert issue.pr.merged and issue.state == "closed"
    assert len(audited(loop, "forge.auto_merge")) == 1


@pytest.mark.parametrize("forge_kind", ["github", "gitea"])
def test_a_repository_without_ci_says_so_and_an_approval_merges_its_checkless_head(
    policy: Callable[..., ForgeLoop], fake: FakeForge
) -> None:
    """``checks = "none"``: the repository has no CI, so a head with no check has nothing to wait for."""
    loop = policy("auto", 'checks = "none"\n')
    _binding, pr, _head = baton_pr(loop, fake)
    [result] = approve(loop, fake, pr)["merge"]
    assert result["merge"] == "ready" and result["auto_merge"].startswith("done"), result
    issue = fake.issue(REPO, pr)  # GitHub merged it; Gitea's merge_when_checks_succeed is scheduled
    assert issue.pr is not None and (issue.pr.merged or issue.pr.auto_merge == "merge"), issue.pr
    assert len(audited(loop, "forge.auto_merge")) == 1


@pytest.mark.parametrize("forge_kind", ["github", "gitea"])
def test_untrusted_approvals_and_red_or_missing_checks_do_nothing(
    policy: Callable[[str], ForgeLoop], fake: FakeForge, forge_kind: str
) -> None:
    loop = policy("ready")
    _binding, pr, head = baton_pr(loop, fake)
    fake.add_check_run(REPO, head, "test", "success")
    [result] = approve(loop, fake, pr, login="mallory")["merge"]  # read access only
    assert result["merge"] == "not ready" and "mallory, not trusted" in result["why"], result
    fake.add_check_run(REPO, head, "lint", "failure")
    [result] = approve(loop, fake, pr)["merge"]
    assert result["merge"] == "not ready" and "failing: lint" in result["why"], result
    fake.add_check_run(REPO, head, "lint", "success")  # a run again, green
    fake.require_checks(REPO, ["build"] if forge_kind == "github" else ["build*"])
    [result] = approve(loop, fake, pr)["merge"]
    assert result["merge"] == "not ready" and "waiting for the required check build" in result["why"], result
    issue = fake.issue(REPO, pr)
    assert issue.pr is not None and issue.pr.draft is True and not audited(loop, "forge.ready")
    assert all("graphql" not in w and "PATCH" not in w for w in writes(fake))
    # the required check reports green: ready now
    if forge_kind == "github":
        fake.add_check_run(REPO, head, "build", "success")
    else:
        fake.set_status(REPO, head, "build (push)", "success")
    [result] = approve(loop, fake, pr)["merge"]
    assert result["merge"] == "ready" and issue.pr.draft is False, result


def test_auto_on_a_github_pr_with_nothing_left_to_wait_for_merges_it_through_githubs_merge(
    policy: Callable[[str], ForgeLoop], fake: FakeForge
) -> None:
    """GitHub refuses to enable auto-merge on a PR it could merge now (approved and green, nothing more
    required: "clean status"): with ``auto`` baton then asks GitHub to merge it, at the approved head,
    as `gh pr merge --auto` does — once."""
    loop = policy("auto")
    _binding, pr, head = baton_pr(loop, fake)
    fake.add_check_run(REPO, head, "test", "success")
    [result] = approve(loop, fake, pr)["merge"]
    assert result["ready"].startswith("done") and "GitHub merged it at once" in result["auto_merge"], result
    issue = fake.issue(REPO, pr)
    assert issue.pr is not None and issue.pr.merged and issue.state == "closed"
    assert writes(fake).count(f"PUT /repos/{REPO}/pulls/{pr}/merge") == 1
    assert len(audited(loop, "forge.auto_merge")) == 1


def test_githubs_refusal_of_auto_merge_is_said_once(
    policy: Callable[[str], ForgeLoop], fake: FakeForge
) -> None:
    """GitHub refuses auto-merge where the repository does not allow it: baton says so once and merges
    nothing."""
    loop = policy("auto")
    words = "auto-merge is not allowed on acme/api"
    fake.allow_auto_merge(REPO, False)
    _binding, pr, head = baton_pr(loop, fake)
    fake.add_check_run(REPO, head, "test", "success")
    [result] = approve(loop, fake, pr)["merge"]
    assert result["ready"].startswith("done") and words in result["auto_merge"], result
    [row] = audited(loop, "forge.auto_merge")
    assert words in row["detail"]["refused"]
    fake.add_check_run(REPO, head, "other", "success")
    [result] = approve(loop, fake, pr, login="alice")["merge"]
    assert result == {"merge": "done for this head"}
    assert len(audited(loop, "forge.auto_merge")) == 1
    issue = fake.issue(REPO, pr)
    assert issue.pr is not None and issue.pr.auto_merge is None and issue.state == "open"


@pytest.mark.parametrize("forge_kind", ["github", "gitea"])
def test_the_reconcile_finds_an_approval_the_webhooks_missed(
    policy: Callable[[str], ForgeLoop], fake: FakeForge
) -> None:
    loop = policy("ready")
    _binding, pr, head = baton_pr(loop, fake)
    fake.add_check_run(REPO, head, "test", "success")
    fake.review(REPO, pr, "alice", "", state="APPROVED")  # its delivery lost
    report = reconcile(loop)
    assert report.outcomes["merge_policy"] == 1 and not report.errors, report.to_json()
    issue = fake.issue(REPO, pr)
    assert issue.pr is not None and issue.pr.draft is False
    [row] = audited(loop, "forge.ready")
    assert row["detail"]["after"] == "reconcile" and row["detail"]["head"] == head
    reconcile(loop)  # the next pass: done for this head, nothing written
    assert len(audited(loop, "forge.ready")) == 1


@pytest.mark.parametrize("forge_kind", ["github", "gitea"])
def test_an_approval_with_words_is_a_turn_the_policy_waits_for(
    policy: Callable[[str], ForgeLoop], fake: FakeForge
) -> None:
    """An approval that says something is an instruction: the PR is not handed to the forge's auto-merge
    before its words are on the thread (however the policy is asked first) nor while their turn is
    queued; the forge's list and its webhook agree on which review it is."""
    loop = policy("auto")
    _binding, pr, head = baton_pr(loop, fake)
    fake.add_check_run(REPO, head, "test", "success")
    fake.review(REPO, pr, "alice", "LGTM, but rename it to greet()", state="APPROVED")
    delivery = fake.deliveries[-1]
    read = registry.reader(ForgeKind(kind_of(fake))).read(loop.config, delivery.event, delivery.payload)
    assert isinstance(read, Delivery) and read.settled is not None and read.events, read
    # the settled part (or a reconcile, a green check) looks before the events are handled
    [result] = feedback.act_on_settled(loop, read.settled)["merge"]
    assert result["merge"] == "not ready" and "its turn comes first" in result["why"], result
    assert "error" not in feedback.act(loop, list(read.events), "d1")
    [result] = feedback.act_on_settled(loop, read.settled)["merge"]
    assert result["merge"].startswith(("a turn of the thread is under way", "an event of the thread waits"))
    issue = fake.issue(REPO, pr)
    assert issue.pr is not None and issue.pr.draft is True and issue.state == "open"
    assert not audited(loop, "forge.ready") and not audited(loop, "forge.auto_merge")
