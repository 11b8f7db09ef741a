"""GitLab's diff notes as threads (:mod:`baton.forge.kinds.gitlab.inline`): a reply goes into the note's
discussion, resolving resolves the discussion, against ``/discussions`` answers shaped as GitLab's
documentation shows them (``doc/api/discussions.md``: a 40-hex id, ``individual_note``, the notes with
``resolvable`` and ``resolved``)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from baton.forge.data.model import ForgeError
from baton.forge.kinds.inline import InlineThreads
from tests.forge.kinds.test_forge_gitlab_client import (
    REPO,
    T0_EPOCH,
    WEB,
    GitLab,
    P,
    diff_note,
    note,
    paged,
    user,
)

OPEN = "6a9c1750b37d513a43987b574953fceb50b03ce7"
SINGLE = "87805b7c09016a7058e91bdbe7b29d1f284a39e6"
DONE = "0b5f1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b"


def discussion(did: str, notes: list[dict[str, Any]], individual: bool = False) -> dict[str, Any]:
    return {"id": did, "individual_note": individual, "notes": notes}


def discussions() -> list[list[dict[str, Any]]]:
    """Two pages: a single comment (not resolvable), then an open diff discussion with a reply and a
    resolved one, and one whose id is no GitLab id."""
    single = note(1128, "a single comment", noteable_type="MergeRequest", resolvable=False)
    reply = diff_note(1140, "agreed", "src/paths.py", 2, minute=9, who=user("carol", 12))
    resolved = diff_note(1150, "fine now", "README.md", 1, resolved=True, resolved_by=user("bob", 4))
    return [
        [discussion(SINGLE, [single], individual=True)],
        [
            discussion(OPEN, [diff_note(1132, "why re?", "src/paths.py", 2), reply]),
            discussion(DONE, [resolved]),
            discussion("../../../../users", [diff_note(1160, "hostile", "x.py", 1)]),
        ],
    ]


@pytest.fixture
def gitlab() -> GitLab:
    gitlab = GitLab()
    gitlab.routes[("GET", f"{P}/merge_requests/7/discussions")] = paged(discussions())
    return gitlab


def test_the_client_offers_inline_threads(gitlab: GitLab) -> None:
    with gitlab.client() as client:
        assert isinstance(client, InlineThreads)


def test_a_reply_goes_into_the_notes_discussion_found_once(gitlab: GitLab) -> None:
    gitlab.routes[("POST", f"{P}/merge_requests/7/discussions/{OPEN}/notes")] = lambda r: httpx.Response(
        201, json=diff_note(1170 + len(gitlab.requests), json.loads(r.content)["body"], "src/paths.py", 2)
    )
    with gitlab.client() as client:
        first = client.reply_inline(REPO, 7, 1132, "**Done** in 9c5a3f0")
        second = client.reply_inline(REPO, 7, 1140, "**Answered**")
    assert first != second and first > 1170
    reads = [p for p in gitlab.paths() if p.endswith("/discussions")]
    assert reads == [f"{P}/merge_requests/7/discussions"] * 2  # two pages, read once for both replies
    posts = [r for r in gitlab.requests if r.method == "POST"]
    assert [json.loads(r.content) for r in posts] == [
        {"body": "**Done** in 9c5a3f0"},
        {"body": "**Answered**"},
    ]


def test_a_note_in_no_discussion_and_a_hostile_id_are_404(gitlab: GitLab) -> None:
    with gitlab.client() as client:
        for note_id in (9999, 1160):
            with pytest.raises(ForgeError) as caught:
                client.reply_inline(REPO, 7, note_id, "hello")
            assert caught.value.status == 404 and f"holds note {note_id}" in str(caught.value)
    assert all(r.method == "GET" for r in gitlab.requests) and all("users" not in p for p in gitlab.paths())


def test_resolving_resolves_each_open_discussion_once(gitlab: GitLab) -> None:
    gitlab.routes[("PUT", f"{P}/merge_requests/7/discussions/{OPEN}")] = lambda r: httpx.Response(
        200, json=discussion(OPEN, [diff_note(1132, "why re?", "src/paths.py", 2, resolved=True)])
    )
    with gitlab.client() as client:
        resolved = client.resolve_inline(REPO, 7, [1132, 1140, 1128, 1150, 9999])
        again = client.resolve_inline(REPO, 7, [1140])
    assert resolved == [1132, 1140, 1150] and again == [1140]
    puts = [r for r in gitlab.requests if r.method == "PUT"]
    assert len(puts) == 1 and puts[0].url.params["resolved"] == "true"


def test_a_refused_resolve_is_the_forges_words(gitlab: GitLab) -> None:
    gitlab.routes[("PUT", f"{P}/merge_requests/7/discussions/{OPEN}")] = httpx.Response(
        403, json={"message": "403 Forbidden"}
    )
    with gitlab.client() as client, pytest.raises(ForgeError) as caught:
        client.resolve_inline(REPO, 7, [1132])
    assert caught.value.status == 403 and "403 Forbidden" in str(caught.value)


def test_inline_comments_are_the_diff_notes_and_their_replies_since(gitlab: GitLab) -> None:
    gitlab.routes[("GET", f"{P}/merge_requests/7/notes")] = [
        diff_note(1140, "agreed", "src/paths.py", 2, minute=9, who=user("baton-bot", 9)),
        note(1139, "a comment", noteable_type="MergeRequest", minute=8),
        diff_note(1132, "why re?", "src/paths.py", 2, minute=7),
        diff_note(1120, "older", "README.md", 1, minute=1),
    ]
    with gitlab.client() as client:
        found = client.inline_comments(REPO, 7, since=T0_EPOCH + 5 * 60)
    assert [(c.id, c.author.login) for c in found] == [(1132, "bob"), (1140, "baton-bot")]
    assert found[1].url == f"{WEB}/{REPO}/-/merge_requests/7#note_1140"
