"""An intake added as docs/architecture.md (Adding an intake) says: a place that is not a forge where people
talk to a thread — here a chat held in memory, registered with one line of ``registry.INTAKES``. Its
messages are the thread's events (``source`` names the chat and its room) through the forge's own door;
the thread's start, question, answer and outcome are told back in the room, while the push, the pull
request and the status comment stay on the forge (the in-memory forge of ``test_forge_loop``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import pytest

from baton.forge.data.model import ForgeEvent
from baton.forge.data.tables import forge_store
from baton.forge.kinds import registry
from baton.forge.kinds.intake import Message, Said, source
from baton.forge.turn import dispatch
from baton.forge.turn.loop import ForgeLoop
from tests.forge.turn import test_forge_loop as core
from tests.forge.turn.test_forge_loop import ASK, MemoryForge, comment, idle

origin, forge, loop = core.origin, core.forge, core.loop  # its fixtures


@dataclass
class Chat:
    """The new intake: rooms of messages, and what baton told each."""

    told: dict[str, list[Message]] = field(default_factory=dict)
    down: bool = False

    def tell(self, place: str, message: Message) -> str:
        if self.down:
            return "failed: the chat is down"
        self.told.setdefault(place, []).append(message)
        return "posted"

    def said(self, place: str) -> list[Said]:
        return [m.said for m in self.told.get(place, [])]


@pytest.fixture
def chat(monkeypatch: pytest.MonkeyPatch) -> Chat:
    made = Chat()
    monkeypatch.setitem(registry.INTAKES, "chat", made)  # its one registry line
    return made


def said_in(room: str, identity: int, body: str, login: str = "alice") -> ForgeEvent:
    """A chat message about the forge's issue 42, as the chat's reading delivers it."""
    return dataclasses.replace(comment(identity, body, login), source=source("chat", room))


def test_a_thread_started_in_a_chat_answers_there_and_its_code_goes_to_the_forge(
    loop: ForgeLoop, forge: MemoryForge, chat: Chat
) -> None:
    assert dispatch.handle(loop, said_in("room-7", 1, "@baton add a greeting")).status == "accepted"
    idle(loop)
    assert chat.said("room-7") == [Said.STARTED, Said.ANSWER, Said.OUTCOME]
    started, answer, outcome = chat.told["room-7"]
    assert answer.text.startswith("<sub>`fake` on thread `issue-42`") and started.job_id in answer.text
    assert answer.conversation == "gh:acme/api#42" and answer.job_id == started.job_id
    assert outcome.outcome == "succeeded" and "opened #" in outcome.text  # the status, with its PR
    assert forge.prs and len(forge.statuses()) == 1  # the code and the status comment: on the forge
    assert forge.answers() == []  # the answer was told where it was asked, not on the forge
    job = loop.store.get_job(started.job_id)
    assert job is not None and "acme/api issue #42 (said in chat: room-7)" in job.request["prompt"]


def test_a_question_asked_in_a_chat_is_answered_there_and_the_reply_resumes_the_thread(
    loop: ForgeLoop, forge: MemoryForge, chat: Chat
) -> None:
    assert dispatch.handle(loop, said_in("room-7", 1, f"@baton add a greeting {ASK}")).status == "accepted"
    idle(loop)
    assert chat.said("room-7")[-2:] == [Said.QUESTION, Said.OUTCOME]
    assert "Which greeting" in chat.told["room-7"][-2].text
    assert dispatch.handle(loop, said_in("room-7", 2, "hi, please")).status == "accepted"  # the reply
    idle(loop)
    assert chat.said("room-7")[-3:] == [Said.STARTED, Said.ANSWER, Said.OUTCOME]
    assert forge.prs and forge.answers() == []


def test_what_is_said_on_the_forge_is_answered_on_the_forge_and_an_untrusted_chat_user_is_refused(
    loop: ForgeLoop, forge: MemoryForge, chat: Chat
) -> None:
    assert dispatch.handle(loop, said_in("room-7", 1, "@baton add a greeting", login="mallory")).status == (
        "dropped"  # the same trust policy: the chat's person is refused as the forge's would be
    )
    assert dispatch.handle(loop, comment(2, "@baton add a greeting")).status == "accepted"
    idle(loop)
    assert len(forge.answers()) == 1 and chat.told == {}


def test_a_chat_that_is_down_or_not_registered_loses_nothing(
    loop: ForgeLoop, forge: MemoryForge, chat: Chat, monkeypatch: pytest.MonkeyPatch
) -> None:
    chat.down = True
    assert dispatch.handle(loop, said_in("room-7", 1, "@baton add a greeting")).status == "accepted"
    idle(loop)
    [job] = loop.store.list_jobs(limit=1)
    published = forge_store(loop.store).published(job.id) or {}
    assert published["reply"] == "failed: the chat is down" and published["told"] == published["reply"]
    assert forge.prs
    monkeypatch.delitem(registry.INTAKES, "chat")  # a process without the chat: told on the forge
    assert dispatch.handle(loop, said_in("room-7", 2, "and a farewell")).status == "accepted"
    idle(loop)
    assert len(forge.answers()) == 1


def test_an_intake_that_raises_fails_its_place_and_never_the_publish(
    loop: ForgeLoop, forge: MemoryForge, chat: Chat, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(place: str, message: Message) -> str:
        raise RuntimeError("the chat's client broke")

    monkeypatch.setattr(chat, "tell", broken)
    assert dispatch.handle(loop, said_in("room-7", 1, "@baton add a greeting")).status == "accepted"
    idle(loop)  # published all the same: no turn left unpublished
    [job] = loop.store.list_jobs(limit=1)
    published = forge_store(loop.store).published(job.id) or {}
    assert published["reply"] == "failed: the chat's client broke" and forge.prs
    assert len(forge.statuses()) == 1  # the status comment, kept and saved with the binding
