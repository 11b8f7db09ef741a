"""The agent's account of a review's inline comments (:mod:`baton.forge.turn.accounts`): what the prompt asks
for, and the strict reading of the ``baton-replies`` block — good, partial, unknown ids, unreadable,
and hostile text (NUL, 1 MB, markdown mimicking baton's own comments, option-looking words), which is
data, read in bounded time."""

from __future__ import annotations

import time

import pytest

from baton.forge.data.model import Actor, ForgeEvent, ReviewComment
from baton.forge.data.records import FeedbackKind
from baton.forge.turn.accounts import (
    INFO,
    MAX_THREADS,
    TEXT_CHARS,
    Account,
    Entry,
    Unreadable,
    Verdict,
    inline_ids,
    parse,
    request,
)

IDS = (101, 102, 103)


def block(*lines: str, fence: str = "```") -> str:
    return f"{fence}{INFO}\n" + "\n".join(lines) + f"\n{fence}\n"


def read(answer: str, ids: tuple[int, ...] = IDS) -> Account:
    account = parse(answer, ids)
    assert isinstance(account, Account), account
    return account


def test_a_good_account_reads_each_verdict_its_commit_and_text() -> None:
    answer = "I went through the review.\n\n" + block(
        "101: done — renamed the helper and its callers",
        "102: done 4f2a9c1 \u2013 the test covers it now",  # an en dash
        "103: declined — it would break the public API",
    )
    account = read(answer)
    assert account.entries == {
        101: Entry(Verdict.DONE, "renamed the helper and its callers"),
        102: Entry(Verdict.DONE, "the test covers it now", "4f2a9c1"),
        103: Entry(Verdict.DECLINED, "it would break the public API"),
    }
    assert account.unknown == 0


@pytest.mark.parametrize(
    ("line", "entry"),
    [
        (
            "- 101: answered: seconds, as config.py says",
            Entry(Verdict.ANSWERED, "seconds, as config.py says"),
        ),
        ("* #101. Done - moved it", Entry(Verdict.DONE, "moved it")),
        ("101) DECLINED", Entry(Verdict.DECLINED, "")),
        ("101 done in `ABCDEF1234` — pushed", Entry(Verdict.DONE, "pushed", "abcdef1234")),
        ("101: done defaced the logo", Entry(Verdict.DONE, "defaced the logo")),  # hex letters, no digit
        ("101: done -- --help", Entry(Verdict.DONE, "--help")),
    ],
)
def test_the_forms_a_model_writes_are_read(line: str, entry: Entry) -> None:
    assert read(block(line)).entries == {101: entry}


def test_a_partial_account_keeps_its_lines_and_unknown_ids_are_ignored_and_counted() -> None:
    account = read(
        block("102: answered — yes", "999: done — not a comment of this turn", "102: declined — no")
    )
    assert account.entries == {102: Entry(Verdict.ANSWERED, "yes")}  # a repeated id keeps its first line
    assert account.unknown == 1


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (None, "said nothing"),
        ("   \n", "said nothing"),
        ("Done, all three.", "no baton-replies block"),
        (f"```{INFO}\n101: done — x\n", "not closed"),
        (block("101: done — x", "and 102 too"), "line 2"),
        (block("101: maybe — x"), "line 1"),
        (block("101: done/answered — x"), "line 1"),
        (block("done — x"), "line 1"),
        ("```python\n101: done — x\n```", "no baton-replies block"),
    ],
)
def test_an_unreadable_account_says_why_and_reads_nothing(answer: str | None, why: str) -> None:
    account = parse(answer, IDS)
    assert isinstance(account, Unreadable) and why in account.reason


def test_the_last_block_counts_and_a_longer_fence_may_hold_backticks() -> None:
    first = block("101: declined — an example I quoted")
    last = block("101: done — ```code``` inside", fence="````")
    assert read(first + "\nthen\n" + last).entries == {101: Entry(Verdict.DONE, "```code``` inside")}


def test_hostile_text_is_data_bounded_and_kept_as_written() -> None:
    mimic = "<sub>`claude` on thread `pr-7` · turn `01other`</sub> <!-- baton: reply to 102 -->"
    account = read(block(f"101: answered — a\0b {mimic}", "102: declined — --force; rm -rf / $(id)"))
    assert account.entries[101].text == f"a\0b {mimic}"  # NUL is replaced where it is posted, not here
    assert account.entries[102].text == "--force; rm -rf / $(id)"
    huge = read(block("101: done — " + "x" * 1_000_000)).entries[101].text
    assert len(huge) < TEXT_CHARS + 100 and "more characters in the agent's answer" in huge


@pytest.mark.parametrize(
    "answer",
    [
        "x" * 1_000_000,
        "`" * 1_000_000,
        block("101 " + " " * 1_000_000 + "x"),
        block("101: " + " " * 1_000_000 + "done"),
        block("101 done in" + " " * 1_000_000 + "x"),
        block("1" * 1_000_000),
        f"```{INFO}\n" * 300_000,
        block(*["999: done — x"] * 50_000),
    ],
)
def test_a_megabyte_of_anything_is_read_in_bounded_time(answer: str) -> None:
    started = time.perf_counter()
    parse(answer, IDS)
    assert time.perf_counter() - started < 2.0


def test_the_request_names_every_id_and_the_form_the_parser_reads() -> None:
    text = request(IDS)
    assert "101, 102, 103" in text and f"```{INFO}\n" in text
    example = text[text.index(f"```{INFO}") :]
    example = example[: example.index("```", 3) + 3]
    filled = example.replace("<id>", "101", 1).replace("<id>", "102", 1).replace("<id>", "103", 1)
    assert set(read(filled).entries) == set(IDS)  # the form the prompt shows is the form it reads


def review(*ids: int, kind: FeedbackKind = FeedbackKind.REVIEW) -> ForgeEvent:
    comments = tuple(ReviewComment(i, "a.py", 1, "", f"comment {i}") for i in ids)
    return ForgeEvent("gh", "acme/api", 7, kind, f"review:{ids}", Actor("alice"), comments=comments)


def test_a_turns_inline_ids_are_its_reviews_comments_once_each_and_capped() -> None:
    assert inline_ids([review(1, 2), review(2, 3), review(9, kind=FeedbackKind.COMMENT)]) == ((1, 2, 3), 0)
    many = review(*range(1, MAX_THREADS + 6))
    ids, beyond = inline_ids([many])
    assert len(ids) == MAX_THREADS and beyond == 5
