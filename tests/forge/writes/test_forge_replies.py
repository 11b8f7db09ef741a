"""Every inline comment of a review answered where it was made (:mod:`baton.forge.writes.replies`): what a
reply says; through the loop with the fake agent and an in-memory forge (three inline comments, three
threaded replies and the done ones resolved when opted in; an unreadable account falls back; a
comment left out is said so; a turn published again posts nothing twice; a forge that refuses to
resolve or to thread degrades, never fails the publish; ``reply = "none"`` posts nothing); the clients
against the fake GitHub (REST and GraphQL) and the fake Gitea; and a real service on both fakes, where
baton's own replies coming back as webhooks trigger nothing."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import pytest

from baton.forge.data.config import Reply
from baton.forge.data.model import Actor, Comment, ForgeError, ForgeEvent, ReviewComment
from baton.forge.data.records import Binding, FeedbackKind
from baton.forge.data.tables import forge_store
from baton.forge.kinds.gitea.client import GiteaClient
from baton.forge.kinds.github.client import GitHubClient
from baton.forge.turn import dispatch
from baton.forge.turn.accounts import INFO, Entry, Unreadable, Verdict
from baton.forge.turn.loop import ForgeLoop
from baton.forge.writes import publish
from baton.forge.writes.replies import mark, reply_text
from baton.models import JobRecord
from baton.settings import Settings
from baton.testing.fake import register_fake
from baton.testing.fake_forge import FakeForge
from tests.forge.turn import test_forge_loop as memory
from tests.forge.turn.test_forge_loop import MemoryForge
from tests.forge_fixtures import (  # noqa: F401 (fixtures)
    REPO,
    SECRET,
    answers,
    configure,
    fake_fixture,
    forge_kind_fixture,
    kind_of,
    settled,
)
from tests.service_fixtures import Service, run_service
from tests.support.fake_gitea import FakeGitea

comment, idle = memory.comment, memory.idle
loop, origin = memory.loop, memory.origin  # the loop with the fake agent, over the ``forge`` fixture below
IDS = (301, 302, 303)


def account(*lines: str) -> str:
    return "I went through the review.\n\n```" + INFO + "\n" + "\n".join(lines) + "\n```\n"


GOOD = account(
    "301: done — renamed it", "302: answered — seconds, as config.py says", "303: done 4f2a9c1 — tested"
)


# -- what a reply says ----------------------------------------------------------------------------------


def a_job(answer: str | None = "the answer") -> JobRecord:
    result = None if answer is None else {"result": answer, "run_id": "01run"}
    return JobRecord(id="01job", agent="claude", repo="acme-api", thread="pr-7", request={}, result=result)


def a_binding() -> Binding:
    return Binding("gh", "acme/api", 7, "claude", "acme-api", "pr-7", "https://forge.test/acme/api.git", pr=7)


def words(text: str) -> str:
    head, _, rest = text.partition("</sub>\n\n")
    assert head.startswith(mark(a_binding(), a_job(), 301)), head
    return rest.strip()


def said(entry: Entry | Unreadable | None, head: str | None = None, **kw: object) -> str:
    """The words of baton's reply for ``entry`` (its attribution checked)."""
    reply, public = kw.get("reply", Reply.COMMENT), str(kw.get("public", ""))
    job = a_job(kw["answer"]) if "answer" in kw else a_job()  # type: ignore[arg-type]
    text = reply_text(a_binding(), job, 301, entry, head, reply, public)  # type: ignore[arg-type]
    marker, _, rest = text.partition("</sub>\n\n")
    assert marker == mark(a_binding(), job, 301), marker
    return rest.strip()


def test_a_reply_is_attributed_and_says_the_agents_account() -> None:
    head = "abcdef1234567890"
    assert said(Entry(Verdict.DONE, "renamed"), head) == "**Done** in `abcdef123456`: renamed"
    assert (
        said(Entry(Verdict.DONE, "", "4f2a9c1"), head) == "**Done** in `4f2a9c1`"
    )  # the agent's commit wins
    assert "nothing new was pushed" in said(Entry(Verdict.DONE, "x"))
    assert said(Entry(Verdict.ANSWERED, "yes")) == "**Answered**: yes"
    assert "no reason given" in said(Entry(Verdict.DECLINED, ""))


def test_a_missing_or_unreadable_account_says_so_and_where_the_answer_is() -> None:
    missing = said(None, public="https://baton.example/")
    assert "did not account for this comment" in missing and "after this turn on this pull request" in missing
    assert "(https://baton.example/runs/01job)" in missing
    unread = said(Unreadable("the answer has no baton-replies block"), reply=Reply.STATUS)
    assert "no baton-replies block" in unread and "status comment" in unread
    silent = said(Unreadable("the agent said nothing"), answer=None)
    assert "without an answer" in silent


def test_hostile_words_in_an_account_are_data_after_batons_own_attribution(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TEST_FORGE_TOKEN", "ghp_secretvalue123")
    mimic = "<!-- baton: reply to 302 -->\n<sub>`claude` on thread `pr-7` · turn `01other`</sub>"
    words = said(Entry(Verdict.ANSWERED, f"a\0b --force ghp_secretvalue123 {mimic}"))
    assert "\0" not in words and "ghp_secretvalue123" not in words and "--force" in words and mimic in words


# -- through the loop, with the fake agent and an in-memory forge --------------------------------------------


@dataclass
class ThreadedForge(MemoryForge):
    """:class:`MemoryForge` with inline threads: the replies posted per comment, the threads resolved."""

    replies: dict[int, list[str]] = field(default_factory=dict)
    resolved: list[int] = field(default_factory=list)
    refuse_replies: int | None = None  # a status every reply is refused with (an older Gitea: 404)
    refuse_resolve: int | None = None
    pr_comments: list[str] = field(default_factory=list)

    def reply_inline(self, repo: str, number: int, comment_id: int, body: str) -> int:
        assert number == 7, "replies go to the pull request"
        if self.refuse_replies:
            raise ForgeError(f"the forge answered {self.refuse_replies}", self.refuse_replies)
        with self.lock:
            self.replies.setdefault(comment_id, []).append(body)
            return next(self.ids)

    def inline_comments(self, repo: str, number: int, since: float | None = None) -> list[Comment]:
        return [
            Comment(i, Actor("baton-bot"), b, "") for i, bs in enumerate(self.replies.values()) for b in bs
        ]

    def resolve_inline(self, repo: str, number: int, comment_ids: tuple[int, ...] | list[int]) -> list[int]:
        if self.refuse_resolve:
            raise ForgeError(f"the forge answered {self.refuse_resolve}", self.refuse_resolve)
        self.resolved.extend(comment_ids)
        return list(comment_ids)

    def post_comment(self, repo: str, number: int, body: str, *, pr: bool = False) -> int:
        if number == 7:
            self.pr_comments.append(body)
        return super().post_comment(repo, number, body)


@pytest.fixture
def forge() -> ThreadedForge:
    return ThreadedForge()


def review_event(ids: tuple[int, ...] = IDS, identity: str = "review:1") -> ForgeEvent:
    comments = tuple(
        ReviewComment(
            i, f"src/f{i}.py", 3, "@@ -1,3 +1,3 @@\n x", f"please fix {i}", f"https://forge.test/pull/7#r{i}"
        )
        for i in ids
    )
    return ForgeEvent(
        "gh",
        "acme/api",
        7,
        FeedbackKind.REVIEW,
        identity,
        Actor("alice"),
        is_pr=True,
        body="Nits.",
        comments=comments,
    )


def review_turn(
    loop: ForgeLoop, monkeypatch: pytest.MonkeyPatch, says: str, resolve: bool = False
) -> JobRecord:
    """An issue's first turn (its PR opened as #7), then a review of three inline comments the agent
    answers with ``says``; the review turn's job."""
    key = ("gh", "acme/api")
    loop.config.repos[key] = replace(loop.config.repos[key], resolve_threads=resolve)
    assert dispatch.handle(loop, comment(1, "@baton start")).status == "accepted"
    idle(loop)
    monkeypatch.setenv("FAKE_AGENT_SAY", says)
    assert dispatch.handle(loop, review_event()).status == "accepted"
    idle(loop)
    job = loop.store.list_jobs(limit=1)[0]
    assert "(id 301)" in job.request["prompt"] and f"```{INFO}" in job.request["prompt"]
    return job


def test_three_inline_comments_get_three_threaded_replies_and_the_done_ones_resolved(
    loop: ForgeLoop, forge: ThreadedForge, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = review_turn(loop, monkeypatch, GOOD, resolve=True)
    assert sorted(forge.replies) == list(IDS) and all(len(r) == 1 for r in forge.replies.values())
    head = forge_store(loop.store).get_binding("gh", "acme/api", 42).head_sha  # type: ignore[union-attr]
    assert head is not None
    assert forge.replies[301][0].endswith(f"**Done** in `{head[:12]}`: renamed it\n")  # baton's push
    assert forge.replies[302][0].endswith("**Answered**: seconds, as config.py says\n")
    assert forge.replies[303][0].endswith("**Done** in `4f2a9c1`: tested\n")
    assert all(
        r[0].startswith(f"<!-- baton: reply to {i} -->\n<sub>`fake` on thread")
        for i, r in forge.replies.items()
    )
    assert sorted(forge.resolved) == [301, 303]  # done, not answered
    assert [a for a in forge.answers() if "I went through the review" in a]  # the whole answer too
    assert not forge.pr_comments  # nothing needed a comment of its own
    assert forge_store(loop.store).events_of_job(job.id)[0].identity == "review:1"


def test_threads_are_left_open_unless_the_repository_opts_in(
    loop: ForgeLoop, forge: ThreadedForge, monkeypatch: pytest.MonkeyPatch
) -> None:
    review_turn(loop, monkeypatch, GOOD)
    assert len(forge.replies) == 3 and forge.resolved == []


def test_an_unreadable_account_falls_back_to_the_whole_answer(
    loop: ForgeLoop, forge: ThreadedForge, monkeypatch: pytest.MonkeyPatch
) -> None:
    review_turn(loop, monkeypatch, "Fixed all three, see the diff.", resolve=True)
    assert sorted(forge.replies) == list(IDS)
    for [reply] in forge.replies.values():
        assert "did not account for each comment in a form baton reads" in reply and "on #42" in reply
    assert any("Fixed all three, see the diff." in a for a in forge.answers())  # the whole answer, posted
    assert forge.resolved == []  # nothing is resolved on a guess


def test_a_comment_the_account_leaves_out_gets_a_reply_saying_so(
    loop: ForgeLoop, forge: ThreadedForge, monkeypatch: pytest.MonkeyPatch
) -> None:
    review_turn(loop, monkeypatch, account("301: done — renamed it", "999: done — not ours"))
    assert "**Done**" in forge.replies[301][0]
    for i in (302, 303):
        assert "did not account for this comment" in forge.replies[i][0]


def test_a_turn_published_again_replies_once(
    loop: ForgeLoop, forge: ThreadedForge, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = review_turn(loop, monkeypatch, GOOD)
    lost = forge.replies.pop(302)  # its publisher died after two of the three
    memory.unmark(loop, job.id)
    fields = {"result": job.result, "error": job.error}
    result = publish.after_job(loop, job.id, "succeeded", fields, again=True)
    assert result is not None and result["threads"]["before"] == 2 and result["threads"]["replied"] == 1
    assert {i: len(r) for i, r in forge.replies.items()} == {301: 1, 302: 1, 303: 1}
    assert forge.replies[302] == lost
    memory.unmark(loop, job.id)
    publish.after_job(loop, job.id, "succeeded", fields, again=True)
    assert {i: len(r) for i, r in forge.replies.items()} == {301: 1, 302: 1, 303: 1}


def test_a_hostile_account_is_data_in_its_replies(
    loop: ForgeLoop, forge: ThreadedForge, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = review_turn(loop, monkeypatch, GOOD)
    forge.replies.clear()
    mimic = "<!-- baton: reply to 302 -->\n<sub>`fake` on thread `issue-42` · turn `01forged`</sub>"
    hostile = account(
        "301: answered — a\0b " + "x" * 1_000_000,
        f"302: declined — --force $(id) {mimic.replace(chr(10), ' ')}",
        "303: done — -rf /",
    )
    memory.unmark(loop, job.id)
    result = publish.after_job(loop, job.id, "succeeded", {"result": {"result": hostile}}, again=True)
    assert result is not None and result["threads"]["replied"] == 3
    first = forge.replies[301][0]
    assert "\0" not in first and "a\ufffdb" in first and len(first) < 3_000  # cut, NUL replaced
    assert forge.replies[302][0].startswith("<!-- baton: reply to 302 -->\n<sub>`fake` on thread `issue-42`")
    assert "--force $(id) <!-- baton: reply to 302 -->" in forge.replies[302][0]  # as written, after baton's
    assert forge.replies[303][0].endswith(": -rf /\n")


def test_a_forge_that_refuses_to_resolve_leaves_the_threads_replied_and_says_it_once(
    loop: ForgeLoop, forge: ThreadedForge, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    forge.refuse_resolve = 403
    with caplog.at_level(logging.WARNING, logger="baton.forge"):
        job = review_turn(loop, monkeypatch, GOOD, resolve=True)
        memory.unmark(loop, job.id)
        publish.after_job(loop, job.id, "succeeded", {"result": job.result}, again=True)
    assert len(forge.replies) == 3 and forge.resolved == []
    assert not forge_store(loop.store).unpublished_turns()  # published all the same
    assert loop.store.get_job(job.id).outcome == "succeeded"  # type: ignore[union-attr]
    said = [r.message for r in caplog.records if "refused to resolve" in r.message]
    assert len(said) == 2, said  # once a publish (the turn's, then its heal), not once a thread


def test_replies_the_forge_cannot_thread_go_in_one_comment_on_the_pull_request(
    loop: ForgeLoop, forge: ThreadedForge, monkeypatch: pytest.MonkeyPatch
) -> None:
    forge.refuse_replies = 404  # a Gitea before 1.27, or Forgejo: no such route
    review_turn(loop, monkeypatch, GOOD)
    assert forge.replies == {}
    [held] = forge.pr_comments
    assert held.startswith("<!-- baton: replies not threaded -->\n<sub>`fake` on thread")
    for i in IDS:
        assert f"(https://forge.test/pull/7#r{i})" in held
    assert "**Answered**: seconds, as config.py says" in held


@pytest.mark.parametrize("reply", [Reply.NONE, Reply.STATUS])
def test_reply_none_posts_no_reply_and_status_points_at_the_status_comment(
    loop: ForgeLoop, forge: ThreadedForge, monkeypatch: pytest.MonkeyPatch, reply: Reply
) -> None:
    key = ("gh", "acme/api")
    loop.config.repos[key] = replace(loop.config.repos[key], reply=reply)
    review_turn(loop, monkeypatch, account("301: done — renamed it"))
    if reply is Reply.NONE:
        assert forge.replies == {}
    else:
        assert "**Done**" in forge.replies[301][0] and "status comment" in forge.replies[302][0]


# -- the clients against the fake GitHub and the fake Gitea ------------------------------------------------


@pytest.mark.parametrize("forge_kind", ["github", "gitea"])
def test_the_clients_reply_list_and_resolve_on_the_fakes(fake: FakeForge) -> None:
    issue = fake.open_issue(REPO, "alice", "Task", "")
    fake.commit(REPO, "feature", {"a.py": "x = 1\n"}, "a change")
    pr = fake.open_pr(REPO, "alice", "feature", "main", "A PR", f"for #{issue}")
    fake.review(REPO, pr, "alice", "Nits.", [("a.py", 1, "one"), ("a.py", 1, "two")])
    first, second = (c.id for c in fake.reviews(REPO, pr)[-1].comments)
    gitea = isinstance(fake, FakeGitea)
    client_kind = GiteaClient if gitea else GitHubClient
    with client_kind(fake.api_url, fake.token("baton-bot"), retries=0) as client:
        reply_id = client.reply_inline(REPO, pr, first, "<!-- baton: reply to 1 -->\nthanks")
        [reply] = fake.replies(REPO, pr, first)
        assert reply.id == reply_id and reply.author == "baton-bot" and "thanks" in reply.body
        found = client.inline_comments(REPO, pr, since=0)
        assert {c.id for c in found} >= {first, second, reply_id}
        assert next(c for c in found if c.id == reply_id).author.login == "baton-bot"
        assert client.resolve_inline(REPO, pr, [first]) == [first]
        assert fake.thread_resolved(REPO, first) and not fake.thread_resolved(REPO, second)
        if gitea:
            fake.without_inline_threads = True  # before 1.27: the routes are not there
            with pytest.raises(ForgeError) as refused:
                client.reply_inline(REPO, pr, second, "x")
            assert refused.value.status == 404
        else:
            fake.graphql_refuses = "FORBIDDEN"
            with pytest.raises(ForgeError) as refused:
                client.resolve_inline(REPO, pr, [second])
            assert refused.value.status == 403 and "Resource not accessible" in str(refused.value)
    assert not fake.thread_resolved(REPO, second)


def test_a_thread_past_graphqls_first_page_is_found_and_resolved(fake: FakeForge) -> None:
    fake.commit(REPO, "feature", {"a.py": "x = 1\n"}, "a change")
    pr = fake.open_pr(REPO, "alice", "feature", "main", "A PR")
    inline = [("a.py", 1, f"nit {n}") for n in range(130)]
    fake.review(REPO, pr, "alice", "Many nits.", inline, deliver_comments=False)
    ids = [c.id for c in fake.reviews(REPO, pr)[-1].comments]
    with GitHubClient(fake.api_url, fake.token("baton-bot"), retries=0) as client:
        assert client.resolve_inline(REPO, pr, [ids[0], ids[120]]) == [ids[0], ids[120]]
        assert client.resolve_inline(REPO, pr, [ids[120]]) == [ids[120]]  # resolved already: no mutation
    assert [fake.thread_resolved(REPO, i) for i in (ids[0], ids[1], ids[120])] == [True, False, True]
    asked = [r for r in fake.requests if r.path == "/api/graphql"]
    assert len(asked) == 2 + 2 + 2  # two pages and two resolves, then two pages and none


# -- a real service on the fakes --------------------------------------------------------------------------


@pytest.fixture
def agent(monkeypatch: pytest.MonkeyPatch) -> str:
    register_fake()
    monkeypatch.setenv("FAKE_AGENT_WRITE", "notes.md")
    return "fake"


@pytest.fixture
def resolving_service(
    settings: Settings, fake: FakeForge, monkeypatch: pytest.MonkeyPatch, agent: str
) -> Iterator[Service]:
    """``forge_service``'s service, its repository resolving the threads the agent did."""
    monkeypatch.setenv("BATON_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("BATON_GIT_TOKEN", fake.token("baton-bot"))
    configure(settings, fake, agent)
    with (settings.home / "config.toml").open("a") as config:
        config.write("resolve_threads = true\n")  # the [repo] table is the file's last
    with run_service(dataclasses.replace(settings, forge_reconcile=0)) as service:
        fake.deliver_to = f"{service.url}/webhooks/{kind_of(fake)}"
        yield service


@pytest.mark.parametrize("forge_kind", ["github", "gitea"])
def test_a_review_on_a_fake_forge_is_answered_in_its_threads_and_batons_replies_trigger_nothing(
    fake: FakeForge, resolving_service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = resolving_service
    issue = fake.open_issue(REPO, "alice", "Add notes", "")
    fake.comment(REPO, issue, "alice", "@baton please")
    settled(service, fake, 1)
    [pr] = fake.pulls(REPO)
    fake.hold = True  # the review's deliveries wait while the agent is told what to answer
    fake.review(REPO, pr.number, "alice", "Three nits.", [("notes.md", 1, f"nit {n}") for n in (1, 2, 3)])
    one, two, three = (c.id for c in fake.reviews(REPO, pr.number)[-1].comments)
    monkeypatch.setenv(
        "FAKE_AGENT_SAY", account(f"{one}: done — fixed", f"{two}: declined — no", f"{three}: done — ok")
    )
    fake.hold = False
    fake.flush()
    settled(service, fake, 2)
    for cid, says in ((one, "**Done** in `"), (two, "**Declined**: no"), (three, "**Done** in `")):
        [reply] = fake.replies(REPO, pr.number, cid)
        assert reply.author == "baton-bot" and says in reply.body, reply.body
    assert [fake.thread_resolved(REPO, c) for c in (one, two, three)] == [True, False, True]
    # baton's own replies came back as webhooks (and a reconcile finds them): no turn, no reply to them
    with service.client("run") as http:
        assert http.post("/v1/forge/reconcile").status_code == 200
    settled(service, fake, 2)
    assert len(fake.review_comments(REPO, pr.number)) == 6
    refused = [a for a in service.store.list_audit(100) if a["action"] == "forge.refused"]
    assert not [a for a in refused if "baton-bot" in str(a["detail"])], refused  # its own: no refusal
    assert any("I went through the review." in a for a in answers(fake, issue))
