"""Hand-off between agents: ``--handoff-from AGENT`` starts a key's conversation from another agent's
work on the same repo and thread (one provider's quota or outage, or a second opinion).

Two things carry over, and the source keeps both:

- **The work.** Before the target's worktree is built, :func:`seed_worktree` creates the target's
  branch at the source's branch tip and the target's checkpoint ref at the source's *state*: its
  uncommitted and untracked files as a commit on that tip. :meth:`Workdirs.prepare_worktree` then
  checks the branch out and re-applies the checkpoint, exactly as it rebuilds a lost worktree. The
  state comes from the source's worktree when this machine has it (staged into a throw-away index: the
  source's index, files and refs are never written, since we do not hold its lease), else from the
  source's branch and checkpoint in the cache clone, else from the store's shared checkpoint of another
  machine (:mod:`baton.portable`). When the store holds a newer state than this machine last shared,
  another machine ran the source since, and the store's state wins (it is what the recap describes).
  Two branches, because git checks a branch out in one worktree only, and from here on each agent's
  commits are its own. A worktree of the target without a session (left by a hand-off refused at
  launch) would be reused as it is, so it is archived (:mod:`baton.archives`) and replaced.
- **The conversation**, as text, since no agent can read another's transcript: :func:`handoff_recap`
  of the source's instructions and answers, oldest first, and the files it changed against its base
  (:func:`changed_files`), cut to the target's prompt limit (:func:`recap_budget`). A long history is
  summarised by section: the newest turns verbatim while they fit, older ones one clipped line each,
  the oldest as one "N earlier turns" line; the last resort clips the newest turn in its middle.

The source's conversation, worktree, branch and store records are only read: it stays resumable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from baton import portable
from baton.agents import AGENTS, Agent
from baton.archives import archive_stamp, archive_worktree
from baton.errors import BadInput, BatonError, GitError
from baton.gitcmd import commit_of, ref_exists, run_git, worktree_status, worktree_tree
from baton.keys import Key
from baton.locks import file_lock
from baton.models import CheckpointRecord, RunRecord, SessionRecord, SessionStatus
from baton.sessions import local_actor
from baton.store.base import Store
from baton.workdirs import Workdirs

__all__ = [
    "DEFAULT_BUDGET",
    "changed_files",
    "handoff_recap",
    "handoff_source",
    "recap_budget",
    "seed_worktree",
]

DEFAULT_BUDGET = 60_000  # characters of recap (~15k tokens): enough for many turns, cheap to send
TEMPLATE_ROOM = 2_000  # handoff.txt's own words with the repo, thread, branch and worktree in them
MAX_FILES = 200  # changed files listed; the rest are counted
LINE_CHARS = 240  # one summarised turn
ASKED_CHARS = 60  # one instruction inside the "N earlier turns" line
GROUP_CHARS = 1_500  # the "N earlier turns" lines
GROUPS = 10  # at most this many of them, each for a stretch of the oldest turns
FILES_SHARE = 5  # the changed-file list takes at most 1/5 of the budget
# Gemini 0.61.0 takes 256,000 bytes on stdin but gives no reply (the request reaches the model; no
# `result`, exit 0) to 240 KB of non-ASCII text: 🎉 x 60,000, é x 120,000 and 中 x 80,000 fail, where
# 🎉 x 45,000 (180 KB) and x x 240,000 work. A recap (any history's text) keeps to half a byte limit.
BYTES_SHARE = 2


# -- who hands off ----------------------------------------------------------------------------------------


def handoff_source(store: Store, key: Key, source_agent: str) -> tuple[Key, SessionRecord]:
    """The source key (``source_agent``, same repo, same thread) and its session. BadInput (nothing
    written) when the agent is unknown or is the key's own, or the source has no conversation."""
    if source_agent not in AGENTS:
        raise BadInput(f"cannot hand off from {source_agent!r}: no such agent (known: {', '.join(AGENTS)})")
    if source_agent == key.agent:
        raise BadInput(
            f"{key} cannot hand off from its own agent: a run without --handoff-from continues its "
            "conversation"
        )
    source = Key(source_agent, key.repo, key.thread)
    session = store.get_session(source.agent, source.repo.slug, source.thread)
    if session is None:
        raise BadInput(
            f"{source} has no session to hand off: run {source_agent} on this repo and thread first"
        )
    if not session.agent_session_id:
        raise BadInput(f"{source} has no conversation to hand off")
    return source, session


# -- the work ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _State:
    """The source's work: the branch tip it is on and its state (a checkpoint commit on that tip, or the
    tip itself when nothing is uncommitted), and where it was found, for the run's note."""

    head: str
    commit: str
    where: str


def seed_worktree(
    store: Store, workdirs: Workdirs, source: Key, source_session: SessionRecord, target: Key, branch: str
) -> str | None:
    """Before the target's worktree is prepared (it has no session yet): point ``refs/heads/<branch>``
    at the source's branch tip and the target's checkpoint ref at the source's state, so that
    :meth:`Workdirs.prepare_worktree` builds the target's worktree holding the source's committed,
    uncommitted and untracked work. A worktree of the target left without a session (a hand-off
    refused at launch) is archived and removed first. Returns a note for the run (where the work came
    from); BadInput, before anything is written, when ``branch`` is the source's, is checked out
    elsewhere, or exists at a commit that is not behind the source's tip."""
    if branch == source_session.branch:
        raise BadInput(
            f"{target} cannot work on branch {branch!r}: it is {source}'s, and git checks a branch out in "
            "one worktree only; leave --branch out (or name a new branch)"
        )
    cache = workdirs.ensure_cache(source.repo, source.agent, fetch=False)
    state, notes = _source_state(store, workdirs, source, source_session, cache)
    if state is not None:
        _check_branch(workdirs, target, branch, state, cache)
    replaced = _replace_leftover(store, workdirs, target, branch)
    if state is None:
        notes.append(f"no work of {source} was found on this machine or in the store: started from the base")
        return "; ".join([*notes, *replaced])
    _point_refs(workdirs, target, branch, state, cache)
    count = _count_changes(cache, state.head, state.commit)
    uncommitted = f"{count} uncommitted file{'' if count == 1 else 's'}" if count else "nothing uncommitted"
    notes.insert(0, f"handed off from {state.where} at {state.head[:12]} with {uncommitted}")
    if source_session.status == SessionStatus.RUNNING:
        notes.append(f"{source.agent} was running: its work was taken as it was at that moment")
    return "; ".join([*notes, *replaced])


def _replace_leftover(store: Store, workdirs: Workdirs, target: Key, branch: str) -> list[str]:
    """Archive and remove a worktree of the target that has no session (the runner calls this module
    only for a key without one, under its lease): reused, it would not hold the source's work."""
    path = workdirs.worktree_path(target)
    if not (path / ".git").is_file():
        return []
    archive = archive_worktree(workdirs, target, branch, archive_stamp())
    workdirs.remove_worktree_dir(target)
    ref = archive.ref if archive else None
    store.audit("handoff-replace", str(target), local_actor(), {"worktree": str(path), "archive": ref})
    return [f"the worktree {target} had without a session was replaced; it is archived at {ref}"]


def _source_state(
    store: Store, workdirs: Workdirs, source: Key, session: SessionRecord, cache: Path
) -> tuple[_State | None, list[str]]:
    """The source's state (see :class:`_State`) and notes on what could not be used."""
    notes: list[str] = []
    record = _store_record(store, source, session.branch, notes)
    newer_elsewhere = record is not None and record.commit_sha != workdirs.read_ref(
        cache, workdirs.shared_ref(source)
    )
    if record is not None and newer_elsewhere:
        found = _store_state(store, workdirs, source, record, cache, notes)
        if found is not None:
            return found, notes
    found = _worktree_state(workdirs, source) or _cache_state(workdirs, source, session.branch, cache)
    if found is None and record is not None and not newer_elsewhere:
        found = _store_state(store, workdirs, source, record, cache, notes)
    return found, notes


def _store_record(store: Store, source: Key, branch: str, notes: list[str]) -> CheckpointRecord | None:
    try:
        record = store.get_checkpoint(source.agent, source.repo.slug, source.thread)
    except (BatonError, TypeError, ValueError) as exc:
        notes.append(f"the store's checkpoint of {source} is unreadable ({exc})")
        return None
    return record if record is not None and record.branch == branch else None


def _store_state(
    store: Store, workdirs: Workdirs, source: Key, record: CheckpointRecord, cache: Path, notes: list[str]
) -> _State | None:
    """The store's checkpoint of the source, fetched into the cache (best effort: None with a note)."""
    try:
        portable.fetch_commit(store, workdirs, source, record, cache)
        head = portable.branch_sha(cache, record)
    except (BatonError, OSError, ValueError) as exc:
        notes.append(f"the store's checkpoint {record.commit_sha[:12]} of {source} is unusable ({exc})")
        return None
    return _State(head, record.commit_sha, f"{source.agent}'s checkpoint in the store (another machine's)")


def _worktree_state(workdirs: Workdirs, source: Key) -> _State | None:
    """The state of the source's worktree on this machine, committed with a throw-away index (its own
    index and its checkpoint ref untouched); None when there is no worktree."""
    path = workdirs.worktree_path(source)
    if not (path / ".git").is_file():
        return None
    head = commit_of(path, "HEAD")
    if head is None:
        return None
    where = f"{source.agent}'s worktree"
    status = worktree_status(path)
    if not status:
        return _State(head, head, where)
    env = {**os.environ, **workdirs.git_env(source.agent)}
    tree = worktree_tree(path, env, status)
    message = f"baton hand-off of {source}"
    commit = run_git(["commit-tree", tree, "-p", head, "-m", message], cwd=path, env=env)
    return _State(head, commit, where)


def _cache_state(workdirs: Workdirs, source: Key, branch: str, cache: Path) -> _State | None:
    """The source's branch in the cache with its last checkpoint when that is on the branch's tip."""
    head = commit_of(cache, f"refs/heads/{branch}")
    if head is None:
        return None
    checkpoint = workdirs.read_ref(cache, workdirs.checkpoint_ref(source))
    commit = checkpoint if checkpoint and commit_of(cache, f"{checkpoint}^") == head else head
    return _State(head, commit, f"{source.agent}'s branch {branch!r} (its worktree is not on this machine)")


def _check_branch(workdirs: Workdirs, target: Key, branch: str, state: _State, cache: Path) -> None:
    """An existing branch is taken at the source's tip, or behind it when no other worktree has it (a
    fast-forward loses nothing: a hand-off refused at launch, asked again after the source moved on)."""
    current = commit_of(cache, f"refs/heads/{branch}")
    if current in (None, state.head):
        return
    own = workdirs.worktree_path(target)
    elsewhere = [p for p in workdirs.branch_worktrees(target.repo, branch) if p != own]
    if elsewhere or not _is_ancestor(cache, current, state.head):
        raise BadInput(
            f"branch {branch!r} already exists at {current[:12]}, not at the hand-off's "
            f"{state.head[:12]}: name a new branch with --branch"
        )


def _point_refs(workdirs: Workdirs, target: Key, branch: str, state: _State, cache: Path) -> None:
    """The target's branch at the source's tip, its checkpoint ref at the source's state."""
    ref = f"refs/heads/{branch}"
    current = commit_of(cache, ref)
    checkpoint = workdirs.checkpoint_ref(target)
    with file_lock(workdirs.home, f"repo:{target.repo.slug}"):
        run_git(["update-ref", ref, state.head, current or ""], cwd=cache)
        if state.commit != state.head:
            run_git(["update-ref", checkpoint, state.commit], cwd=cache)
        elif workdirs.read_ref(cache, checkpoint) is not None:
            run_git(["update-ref", "-d", checkpoint], cwd=cache)  # an old session's: not this work


def _is_ancestor(cache: Path, commit: str, of: str) -> bool:
    try:
        run_git(["merge-base", "--is-ancestor", commit, of], cwd=cache)
    except GitError:
        return False
    return True


def _count_changes(cache: Path, old: str, new: str) -> int:
    if old == new:
        return 0
    out = run_git(["diff-tree", "-r", "-z", "--no-renames", "--name-only", old, new], cwd=cache, raw=True)
    return sum(1 for name in out.split("\0") if name)


# -- what changed -----------------------------------------------------------------------------------------


def changed_files(
    workdirs: Workdirs,
    source: Key,
    source_session: SessionRecord,
    store: Store | None = None,
    limit: int = MAX_FILES,
) -> list[str]:
    """Files the source changed: its state (branch tip and uncommitted work) against the merge-base with
    its base (``source_session.base``, else the default branch), as ``"M path"``, ``"A path"`` or
    ``"D path"``; at most ``limit`` of them, then ``"... and N more"``. ``store``: also look at the
    store's checkpoint when another machine ran the source since (it must be in the cache already, as
    :func:`seed_worktree` leaves it). Empty when the source's work is nowhere to be found."""
    cache = workdirs.cache_path(source.repo)
    if not (cache / "HEAD").is_file():
        return []
    state = _local_state(workdirs, source, source_session, store, cache)
    if state is None:
        return []
    old = _merge_base(workdirs, cache, source_session.base, state)
    out = run_git(["diff-tree", "-r", "-z", "--no-renames", "--name-status", old, state], cwd=cache, raw=True)
    fields = out.split("\0")
    lines = [f"{status} {_printable(path)}" for status, path in zip(fields[0::2], fields[1::2], strict=False)]
    lines = [line for line in lines if line.strip()]
    if len(lines) > limit:
        return [*lines[:limit], f"... and {len(lines) - limit} more"]
    return lines


def _local_state(
    workdirs: Workdirs, source: Key, session: SessionRecord, store: Store | None, cache: Path
) -> str | None:
    """The source's state as far as this machine's cache knows it, without fetching anything."""
    if store is not None:
        notes: list[str] = []
        record = _store_record(store, source, session.branch, notes)
        shared = workdirs.read_ref(cache, workdirs.shared_ref(source))
        if record is not None and record.commit_sha != shared and commit_of(cache, record.commit_sha):
            return record.commit_sha
    found = _worktree_state(workdirs, source) or _cache_state(workdirs, source, session.branch, cache)
    return found.commit if found else None


def _merge_base(workdirs: Workdirs, cache: Path, base: str | None, state: str) -> str:
    """Where the source's work forked from its base; the empty tree when they share no history."""
    candidates = [f"refs/remotes/origin/{base}", base] if base else []
    resolved = next((ref for ref in candidates if ref_exists(cache, ref)), None)
    try:
        return run_git(["merge-base", resolved or workdirs.default_base(cache), state], cwd=cache)
    except GitError:
        return run_git(["hash-object", "-t", "tree", "--stdin"], cwd=cache, stdin="")


def _printable(path: str) -> str:
    """A path on one line: control characters (a newline in a file name) escaped."""
    return path if path.isprintable() else path.encode("unicode_escape").decode("ascii")


# -- the conversation ---------------------------------------------------------------------------------------


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
    summarised (see the module's docstring), the file list cut with "... and N more"."""
    if budget <= 0:
        return ""
    runs = [_clean_run(run) for run in runs]
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


def _clean_run(run: RunRecord) -> RunRecord:
    return replace(
        run,
        prompt=_clean(run.prompt),
        result=_clean(run.result) if run.result else run.result,
        error=_clean(run.error) if run.error else run.error,
    )
