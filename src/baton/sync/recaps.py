"""A hand-off's recap: another agent's conversation on a key, as text for the new agent's first prompt
(no agent can read another's transcript): the source's instructions and answers, oldest first, and the
files it changed, cut to the target CLI's prompt limit (:func:`recap_budget`) and never over it
(:func:`handoff_recap`). Files are named by their path inside the repository, never by the source's
worktree path (:func:`repo_relative`): each key has its own worktree, and an absolute path into the
source's would send the new agent to work in the wrong directory.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path

from baton.agents import Agent
from baton.models import RunRecord

Rewrite = Callable[[str], str]
DEFAULT_BUDGET = 60_000  # characters of recap (~15k tokens): enough for many turns, cheap to send
TEMPLATE_ROOM = 2_000  # handoff.txt's own words with the repo, thread, branch and worktree in them
LINE_CHARS = 240  # one summarised turn
ASKED_CHARS = 60  # one instruction inside the "N earlier turns" line
GROUP_CHARS = 1_500  # the "N earlier turns" lines
GROUPS = 10  # at most this many of them, each for a stretch of the oldest turns
FILES_SHARE = 5  # the changed-file list takes at most 1/5 of the budget
# Gemini 0.61.0 takes 256,000 bytes on stdin but gives no reply (the request reaches the model; no
# `result`, exit 0) to 240 KB of non-ASCII text: 🎉 x 60,000, é x 120,000 and 中 x 80,000 fail, where
# 🎉 x 45,000 (180 KB) and x x 240,000 work. A recap (any history's text) keeps to half a byte limit.
BYTES_SHARE = 2


def recap_budget(agent: Agent, others: str = "") -> int:
    """Characters available for the recap in the target agent's first prompt: at most
    :data:`DEFAULT_BUDGET`, and within the CLI's limits after room for the template and ``others``
    (the instruction and context, when the caller knows them). A byte limit counts 4 bytes a character,
    and the recap keeps to half of it (see :data:`BYTES_SHARE`)."""
    caps = agent.capabilities
    limits = [DEFAULT_BUDGET]
    if caps.max_prompt_chars is not None:
        limits.append(caps.max_prompt_chars - TEMPLATE_ROOM - len(others))
    if caps.max_prompt_bytes is not None:
        used = 4 * TEMPLATE_ROOM + len(others.encode("utf-8", "replace"))
        limits.append(min(caps.max_prompt_bytes // BYTES_SHARE, caps.max_prompt_bytes - used) // 4)
    return max(0, min(limits))


def handoff_recap(runs: list[RunRecord], changed: list[str], source_agent: str, budget: int) -> str:
    """The recap of ``source_agent``'s conversation (``runs`` oldest first) and of the files it changed,
    in at most ``budget`` characters: the newest turns verbatim as far as they fit, older ones
    summarised, the file list cut with "... and N more". A long history is summarised by section: the
    newest turns verbatim while they fit, older ones one clipped line each, the oldest as "N earlier
    turns" lines; the last resort clips the newest turn in its middle. It never exceeds its budget,
    whatever the sizes or characters of the history."""
    if budget <= 0:
        return ""
    relative = repo_relative(runs)
    runs = [_clean_run(run, relative) for run in runs]
    head = f"{source_agent}'s conversation on this thread ({_turns(len(runs))}), oldest first:"
    if not runs:
        head = f"{source_agent} recorded no turns on this thread."
    files = _files_section([_clean(line) for line in changed], source_agent, budget // FILES_SHARE)
    room = budget - len(head) - len(files) - 4  # the blank lines between the sections
    body = _history(runs, room) if runs else ""
    text = "\n\n".join(part for part in (head, body, files) if part)
    return _clip(text, budget)


def _history(runs: list[RunRecord], room: int) -> str:
    """The turns in ``room`` characters: verbatim newest, summarised older (oldest first)."""
    blocks = [_verbatim(number, run) for number, run in enumerate(runs, 1)]
    if sum(len(b) + 2 for b in blocks) <= room:
        return "\n\n".join(blocks)
    reserve = min(room // 4, GROUP_CHARS + 20 * LINE_CHARS)  # room kept for the summaries of older turns
    kept: list[str] = []
    used = 0
    for block in reversed(blocks):
        if used + len(block) + 2 > room - reserve:
            break
        kept.insert(0, block)
        used += len(block) + 2
    older = len(runs) - len(kept)
    if not kept:  # the newest turn alone is too long: clipped in its middle, the rest summarised
        older -= 1
        kept = [_squeeze(len(runs), runs[-1], room - reserve if older else room)]
        used = len(kept[0]) + 2
    summary = _summaries(runs[:older], room - used) if older else ""
    return "\n\n".join(part for part in (summary, *kept) if part)


def _summaries(runs: list[RunRecord], room: int) -> str:
    """One clipped line per turn for the newest of ``runs`` that fit, after one line for the oldest."""
    lines: list[str] = []
    used = 0
    group_room = min(GROUP_CHARS, room // 2)
    for number in range(len(runs), 0, -1):
        line = _one_line(number, runs[number - 1])
        if used + len(line) + 1 > room - group_room:
            break
        lines.insert(0, line)
        used += len(line) + 1
    rest = len(runs) - len(lines)
    if rest:
        lines[:0] = _groups(runs[:rest], room - used)
    return "\n".join(line for line in lines if line)


def _verbatim(number: int, run: RunRecord) -> str:
    return f"--- Turn {number} ({run.outcome.value}) ---\nInstruction:\n{run.prompt.strip()}\n{_answer(run)}"


def _answer(run: RunRecord) -> str:
    if run.result:
        return f"Answer:\n{run.result.strip()}"
    if run.error:
        return f"Error:\n{run.error.strip()}"
    return "(no answer)"


def _squeeze(number: int, run: RunRecord, size: int) -> str:
    """The turn's block in ``size`` characters: instruction and answer each cut in their middle."""
    head = f"--- Turn {number} ({run.outcome.value}, shortened) ---\nInstruction:\n"
    answer = _answer(run)
    label, _, text = answer.partition("\n")
    share = max(0, size - len(head) - len(label) - 2)
    prompt = run.prompt.strip()
    # the answer is what the target most needs: it gets 2/3 of the room, and what it leaves unused
    cut_answer = min(len(text), share - min(len(prompt), share // 3))
    cut_prompt = min(len(prompt), share - cut_answer)
    return f"{head}{_middle(prompt, cut_prompt)}\n{label}\n{_middle(text, cut_answer)}"


def _middle(text: str, size: int) -> str:
    """``text`` in ``size`` characters, its middle replaced by a marker saying how much was cut."""
    if len(text) <= size:
        return text
    marker = f"\n[... {len(text) - size:,} characters cut ...]\n"
    if size <= len(marker) + 2:
        return text[: max(0, size - 1)] + "…" if size > 0 else ""
    keep = size - len(marker)
    marker = f"\n[... {len(text) - keep:,} characters cut ...]\n"
    keep = max(0, size - len(marker))
    return text[: keep // 2] + marker + text[len(text) - (keep - keep // 2) :]


def _one_line(number: int, run: RunRecord) -> str:
    answer = run.result or (f"error: {run.error}" if run.error else "no answer")
    line = f"Turn {number} ({run.outcome.value}): asked: {_flat(run.prompt)} → {_flat(answer)}"
    return _clip(line, LINE_CHARS)


def _groups(runs: list[RunRecord], room: int) -> list[str]:
    """Lines for the oldest turns, each for a stretch of them: how many, and the start of each
    instruction as far as the line's share of ``room`` allows (so every stretch of the history shows)."""
    groups = min(GROUPS, len(runs), max(1, room // 150))
    size = -(-len(runs) // groups)
    share = max(0, room // groups - 1)
    lines = []
    for start in range(0, len(runs), size):
        stretch = runs[start : start + size]
        asked = "; ".join(_clip(_flat(run.prompt), ASKED_CHARS) for run in stretch)
        first, last = start + 1, start + len(stretch)
        span = f"{first:,}" if first == last else f"{first:,}-{last:,}"
        turns = f"{len(stretch):,} earlier turn{'' if len(stretch) == 1 else 's'}"
        lines.append(_clip(f"{turns} ({span}): asked {asked}", share))
    return lines


def _files_section(changed: list[str], source_agent: str, room: int) -> str:
    """The changed files under a heading, as many as fit in ``room``, then "... and N more"."""
    if not changed:
        return ""
    head = f"Files {source_agent} changed against the base (A added, M modified, D deleted):"
    lines: list[str] = []
    used = len(head)
    extra = _extra(changed)
    listed = [line for line in changed if not line.startswith("... and ")]
    for number, line in enumerate(listed):
        more = f"... and {len(listed) - number - 1 + extra} more"
        if used + len(line) + 1 + len(more) + 1 > room:
            lines.append(f"... and {len(listed) - number + extra} more")
            break
        lines.append(line)
        used += len(line) + 1
    else:
        if extra:
            lines.append(f"... and {extra} more")
    return _clip("\n".join([head, *lines]), room) if room > len(head) else ""


def _extra(changed: list[str]) -> int:
    """How many files an ``"... and N more"`` line of :func:`changed_files` stands for."""
    last = changed[-1] if changed else ""
    words = last.split()
    if last.startswith("... and ") and len(words) >= 3 and words[2].isdigit():
        return int(words[2])
    return 0


def _turns(count: int) -> str:
    return f"{count:,} turn{'' if count == 1 else 's'}"


def _flat(text: str) -> str:
    """On one line; only its start is looked at (callers clip it to a line)."""
    return " ".join(text[: 4 * LINE_CHARS].split())


def _clip(text: str, size: int) -> str:
    if len(text) <= size:
        return text
    return text[: size - 1] + "…" if size > 0 else ""


def _clean(text: str) -> str:
    """Text any CLI takes: no NUL byte, valid UTF-8 (an agent's answer may hold lone surrogates)."""
    return text.replace("\0", "").encode("utf-8", "replace").decode("utf-8")


def _clean_run(run: RunRecord, relative: Rewrite) -> RunRecord:
    return replace(
        run,
        prompt=relative(_clean(run.prompt)),
        result=relative(_clean(run.result)) if run.result else run.result,
        error=relative(_clean(run.error)) if run.error else run.error,
    )


# -- paths into the runs' worktree, made relative to the repository -------------------------------------

# What ends a path in prose: white space, quotes, brackets, separators (a path rarely holds these)
_STOP = frozenset(" \t\n\r\f\v'\"`<>()[]{}|;,")
_AFTER_THREAD = r"(?![\w-]|\.[\w-])(?P<slash>/)?"  # the thread ends here (issue-4 is not issue-42)


def repo_relative(runs: Iterable[RunRecord]) -> Rewrite:
    """A function that rewrites, in a text, the absolute paths of ``runs``' worktree — their key's
    ``<BATON_HOME>/worktrees/<agent>/<slug>/<thread>``, in the home each run's log names (with or
    without a trailing slash, and its real path), or in any other home (a path ending in
    ``/worktrees/<agent>/<slug>/<thread>``) — to paths inside the repository: ``src/x.py``, and ``./``
    for the worktree itself. Linear in the text's length, whatever it holds. A recovered
    conversation's recap uses it too: its earlier runs may have run in a ``BATON_HOME`` at another path
    (another machine, a moved home)."""
    keys: set[tuple[str, str, str]] = set()
    exact: set[str] = set()
    for run in runs:
        tail = os.path.join("worktrees", run.agent, run.repo, run.thread)
        keys.add((run.agent, run.repo, run.thread))
        if os.path.isabs(run.log_path):
            path = os.path.join(str(Path(run.log_path).parent.parent), tail)
            exact.update((path, os.path.realpath(path)))
    if not keys:
        return lambda text: text
    literal = "|".join(re.escape(p) for p in sorted(exact, key=len, reverse=True))
    tails = "|".join(re.escape(f"/worktrees/{a}/{s}/{t}") for a, s, t in sorted(keys))
    exact_part = rf"(?<![\w.~-])(?P<exact>{literal})|" if literal else ""
    pattern = re.compile(f"(?:{exact_part}(?P<tail>{tails})){_AFTER_THREAD}")

    def rewrite(text: str) -> str:
        if "/worktrees/" not in text and not any(p in text for p in exact):
            return text
        out: list[str] = []
        done = 0  # the text before this is in ``out``
        for match in pattern.finditer(text):
            start = match.start() if match.group("exact") else _path_start(text, match.start(), done)
            out.append(text[done:start])
            following = text[match.end() : match.end() + 1]
            inside = match.group("slash") and following and following not in _STOP
            out.append("" if inside else "./")
            done = match.end()
        out.append(text[done:])
        return "".join(out)

    return rewrite


def _path_start(text: str, tail: int, floor: int) -> int:
    """Where the path whose ``/worktrees/...`` part starts at ``tail`` begins: after the last character
    before it that ends a path or separates one (``:``, ``=``: a ``file:line``, a ``PATH``-like list,
    ``cwd=...``), the whole of it (``~/...``, ``.baton/worktrees/...``); when the previous path
    rewritten (ending at ``floor``) runs into this one, at this one's first ``/``."""
    begin = tail
    while begin > floor and not _ends_path(text[begin - 1]):
        begin -= 1
    if begin == floor and begin > 0 and not _ends_path(text[begin - 1]):
        return text.index("/", begin, tail + 1)
    return begin


def _ends_path(char: str) -> bool:
    return char in _STOP or char in ":="
