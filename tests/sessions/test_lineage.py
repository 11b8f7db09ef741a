"""Lineage: ``baton sessions show`` says which conversation came from which — forks (``from`` on the fork,
``to`` on its source, nearest ancestor first along a chain), stacking (``stacked_on`` / ``stacked_below``) and
the agent conversations a key went through.

Sessions come from real runs of the fake agent on a local repository, shown by ``baton``'s own ``main`` in
this process (what it prints is the point, not its start). The ``origin`` column is data: a value that is
not an object, lacks fields, has hostile types, is not JSON at all, or makes a cycle (A from B from A) must
never crash ``show`` nor make it loop; those are written straight into the SQLite file, as a damaged or
hostile store would hold them."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from baton import Mode, RunRequest, RunResult, open_store, run
from baton.sessions.lineage import MAX_DEPTH, lineage
from baton.settings import Settings

Cli = Callable[..., subprocess.CompletedProcess[str]]


def go(settings: Settings, repo: Path, thread: str, prompt: str = "work", **extra: object) -> RunResult:
    request = RunRequest(agent="fake", repo=str(repo), thread=thread, prompt=prompt, **extra)  # type: ignore[arg-type]
    result = run(request, settings=settings)
    assert result.ok, result.run.error
    return result


def show(cli: Cli, repo: Path, thread: str) -> dict[str, Any]:
    done = cli("sessions", "show", "-a", "fake", "-r", str(repo), "-t", thread, "--json", timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def set_origin(settings: Settings, thread: str, raw: str | None) -> None:
    """Write ``raw`` (text, as stored) into the origin column of the fake agent's session of ``thread``."""
    url = settings.resolved_store_url
    assert url.startswith("sqlite:///"), url
    with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
        changed = db.execute(
            "UPDATE sessions SET origin = ? WHERE agent = 'fake' AND thread = ?", (raw, thread)
        ).rowcount
    assert changed == 1


def lineage_of(settings: Settings, thread: str) -> dict[str, Any]:
    """The lineage computed in this process (what ``show`` prints), from a fresh store."""
    store = open_store(settings.resolved_store_url)
    try:
        [session] = [s for s in store.list_sessions(agent="fake") if s.thread == thread]
        return lineage(store, session)
    finally:
        store.close()


def test_a_fork_shows_where_it_came_from_and_its_source_where_it_went(
    settings: Settings, src_repo: Path, cli_here: Cli
) -> None:
    a = go(settings, src_repo, "A", "implement")
    b = go(settings, src_repo, "B", "review it", mode=Mode.FORK, fork_from="A")
    c = go(settings, src_repo, "C", "second opinion", mode=Mode.FORK, fork_from="B")
    sid_a, sid_b, sid_c = (r.session.agent_session_id for r in (a, b, c))
    assert len({sid_a, sid_b, sid_c}) == 3

    shown_b = show(cli_here, src_repo, "B")
    [origin] = shown_b["lineage"]["from"]
    assert (origin["kind"], origin["agent"], origin["thread"]) == ("fork", "fake", "A")
    assert origin["session_id"] == sid_a and isinstance(origin["at"], float)
    assert [(t["kind"], t["thread"], t["session_id"]) for t in shown_b["lineage"]["to"]] == [
        ("fork", "C", sid_c)
    ]
    assert [(c["session_id"], c["began"]) for c in shown_b["lineage"]["conversations"]] == [(sid_b, "fork")]

    shown_a = show(cli_here, src_repo, "A")
    assert shown_a["lineage"]["from"] == []
    assert [(t["kind"], t["agent"], t["thread"], t["session_id"]) for t in shown_a["lineage"]["to"]] == [
        ("fork", "fake", "B", sid_b)
    ]
    assert [(c["session_id"], c["began"]) for c in shown_a["lineage"]["conversations"]] == [(sid_a, "fresh")]

    # a chain: C came from B, which came from A — nearest first
    chain = show(cli_here, src_repo, "C")["lineage"]["from"]
    assert [(link["thread"], link["session_id"]) for link in chain] == [("B", sid_b), ("A", sid_a)]

    text = cli_here("sessions", "show", "-a", "fake", "-r", str(src_repo), "-t", "B", timeout=60)
    assert text.returncode == 0, text.stderr
    assert f"from: fork fake/A (conversation {sid_a})" in text.stdout
    assert f"to: fork fake/C (conversation {sid_c})" in text.stdout


def test_a_fork_in_place_lists_both_conversations_of_the_key(settings: Settings, src_repo: Path) -> None:
    first = go(settings, src_repo, "A", "implement")
    forked = go(settings, src_repo, "A", "try another way", mode=Mode.FORK)
    old, new = first.session.agent_session_id, forked.session.agent_session_id
    assert old != new
    family = lineage_of(settings, "A")
    assert [(c["session_id"], c["began"]) for c in family["conversations"]] == [(old, "fresh"), (new, "fork")]
    assert [(link["thread"], link["session_id"]) for link in family["from"]] == [("A", old)]
    assert family["to"] == []  # its own origin is not a descendant


def test_stacked_threads_show_on_both_sides(settings: Settings, src_repo: Path, cli_here: Cli) -> None:
    go(settings, src_repo, "A", "the parser")
    b = go(settings, src_repo, "B", "the CLI on the parser", base_thread="A")
    go(settings, src_repo, "C", "docs on the parser", base_thread="A")
    assert b.session.base_thread == "A"
    shown_b = show(cli_here, src_repo, "B")
    assert shown_b["base_thread"] == "A"
    assert shown_b["lineage"]["stacked_on"] == "A"
    assert shown_b["lineage"]["stacked_below"] == []
    shown_a = show(cli_here, src_repo, "A")
    assert shown_a["lineage"]["stacked_on"] is None
    assert shown_a["lineage"]["stacked_below"] == ["fake/B", "fake/C"]
    text = cli_here("sessions", "show", "-a", "fake", "-r", str(src_repo), "-t", "A", timeout=60)
    assert "stacked below it: fake/B, fake/C" in text.stdout


HOSTILE = {
    "a list": "[1, 2]",
    "a string": '"fork of A"',
    "a number": "42",
    "null": "null",
    "not JSON": "{not json",
    "empty object": "{}",
    "missing thread": '{"kind": "fork", "agent": "fake"}',
    "empty fields": '{"kind": "", "agent": "", "thread": ""}',
    "wrong types": '{"kind": 1, "agent": ["fake"], "thread": {"t": "A"}, "session_id": 5, "at": "now"}',
    "infinite time": '{"kind": "fork", "agent": "fake", "thread": "A", "at": 1e999}',
    "NaN time": '{"kind": "fork", "agent": "fake", "thread": "A", "at": NaN}',
    "huge integer time": '{"kind": "fork", "agent": "fake", "thread": "A", "at": 1' + "0" * 400 + "}",
    "boolean time": '{"kind": "fork", "agent": "fake", "thread": "A", "at": true}',
    "unknown agent": '{"kind": "fork", "agent": "nobody", "thread": "A"}',
    "markup": '{"kind": "[red]fork[/red]", "agent": "[bold]fake", "thread": "../../A"}',
    "deeply nested": "[" * 100_000 + "]" * 100_000,
}


@pytest.mark.parametrize("value", list(HOSTILE.values()), ids=list(HOSTILE))
def test_a_hostile_origin_never_crashes_lineage(settings: Settings, src_repo: Path, value: str) -> None:
    a = go(settings, src_repo, "A", "implement")
    go(settings, src_repo, "B", "review", mode=Mode.FORK, fork_from="A")
    set_origin(settings, "B", value)
    family = lineage_of(settings, "B")
    assert len(family["from"]) <= 1
    for link in family["from"]:
        assert all(isinstance(link[name], str) and link[name] for name in ("kind", "agent", "thread"))
        assert link["session_id"] is None or isinstance(link["session_id"], str)
        assert link["at"] is None or isinstance(link["at"], float)
    json.dumps(family)  # printable as JSON
    of_a = lineage_of(settings, "A")
    assert of_a["conversations"][0]["session_id"] == a.session.agent_session_id


def test_a_hostile_origin_never_crashes_show(settings: Settings, src_repo: Path, cli_here: Cli) -> None:
    """The same values through ``baton sessions show`` (JSON and text), each on B and on A."""
    go(settings, src_repo, "A", "implement")
    go(settings, src_repo, "B", "review", mode=Mode.FORK, fork_from="A")
    for name in ("a list", "not JSON", "wrong types", "huge integer time", "markup", "deeply nested"):
        set_origin(settings, "B", HOSTILE[name])
        shown = show(cli_here, src_repo, "B")
        assert shown["thread"] == "B", name
        for thread in ("A", "B"):
            text = cli_here("sessions", "show", "-a", "fake", "-r", str(src_repo), "-t", thread, timeout=60)
            assert text.returncode == 0 and "Traceback" not in text.stderr, (name, text.stderr)
        if name == "markup":  # printed as text, never read as Rich markup
            assert "from: [red]fork[/red] [bold]fake/../../A" in text.stdout


def test_an_origin_cycle_ends(settings: Settings, src_repo: Path, cli_here: Cli) -> None:
    """A from B from A (as a hostile store may say): each side lists the other once, nothing loops."""
    a = go(settings, src_repo, "A", "implement")
    b = go(settings, src_repo, "B", "review", mode=Mode.FORK, fork_from="A")
    sid_a, sid_b = a.session.agent_session_id, b.session.agent_session_id
    cycles = [
        (sid_b, sid_a),  # the true conversation ids
        ("made-up-1", "made-up-2"),  # ids that match no session: the walk cannot stop on a seen id
    ]
    for to_b, to_a in cycles:
        set_origin(
            settings, "A", json.dumps({"kind": "fork", "agent": "fake", "thread": "B", "session_id": to_b})
        )
        set_origin(
            settings, "B", json.dumps({"kind": "fork", "agent": "fake", "thread": "A", "session_id": to_a})
        )
        for thread, other in (("A", "B"), ("B", "A")):
            family = show(cli_here, src_repo, thread)["lineage"]
            assert 1 <= len(family["from"]) <= 2 < MAX_DEPTH
            assert family["from"][0]["thread"] == other
            assert [link["thread"] for link in family["to"]] == [other]
    # a key that names itself as its origin
    set_origin(settings, "A", json.dumps({"kind": "fork", "agent": "fake", "thread": "A", "session_id": "x"}))
    assert [link["thread"] for link in show(cli_here, src_repo, "A")["lineage"]["from"]] == ["A"]
