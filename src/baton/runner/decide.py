"""The decision matrix: how one attempt of a run starts its conversation (:func:`decide`): ``fresh``,
``resume`` (after hydrating the transcript from its snapshot where the local copy is missing, behind or
unreadable), or ``recover`` (fresh, with a recap of earlier runs) when it is gone everywhere; a fork
first gets a copy of its source in the key's own agent home (:func:`decide_fork`). It also says what a
turn is told of the key's last turn (:func:`follow_up`, :func:`told_new`): the bare delta, or the
"interrupted" prompt after a turn cut short or one whose instruction went unanswered.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from baton import tracing
from baton.errors import BadInput, BatonError
from baton.keys import Key
from baton.models import Mode, Outcome, PromptKind, RunRecord, SessionRecord, Snapshot
from baton.runner import instructions, quarantine, window
from baton.runner.state import KEPT, Attempt, Context, Decision, ForkSource, Prepared
from baton.sessions.marks import confirmed, out_of_step
from baton.sessions.snapshots import hydrate
from baton.workspace import nofollow
from baton.workspace.keyspace import copy_conversation


@dataclass(frozen=True)
class Local:
    """Whether a conversation can be resumed from local disk, and what it took to get there."""

    ok: bool
    note: str | None = None


JSON_TEXT = (".jsonl", ".json")  # transcripts as JSON lines (Claude, Codex, Gemini, Copilot's events)
SQLITE = b"SQLite format 3\x00"  # the first bytes of a SQLite database (OpenCode's)


@tracing.traced("run.decide")
def decide(ctx: Context, prepared: Prepared, attempt: Attempt) -> Decision:
    """How ``attempt`` starts its conversation. ``mode=auto``:

    - no session id for the key → ``fresh`` (with a pre-assigned id), full prompt;
    - transcript on local disk and intact → ``resume`` by id;
    - transcript missing locally, or shorter than the store's snapshot, or older than it (this
      machine's copy was in step with an earlier snapshot: another machine ran a turn since), or
      unreadable, or changed since the end of its last turn without a turn to explain it (rewritten;
      or damaged in place, its size, mtime and inode kept, found by the digest kept with its marks:
      :mod:`baton.sessions.marks`) → hydrate it from the snapshot, then ``resume``;
    - gone everywhere, or the snapshot itself is corrupt or missing blobs, or the agent says "not
      found", or the conversation is quarantined (its resume failed at once twice in a row:
      :mod:`baton.runner.quarantine`) → ``recover``: fresh, with a recap of earlier runs. The run's
      ``note`` says why.
    - resumable, but the agent's instruction files changed since the conversation last saw them
      (:mod:`baton.runner.instructions`) → ``resume`` told how, or with ``on_instructions_change =
      fresh`` → ``recover``.

    Everything here looks in the key's own agent home (:mod:`baton.workspace.keyspace`). A resumed turn
    after an interrupted one (crashed, timed out, cancelled, or a failed attempt being retried) gets
    the "you were interrupted" prompt instead of the bare delta; so does one after a turn that failed
    before the model answered (:func:`_after_unanswered`)."""
    mode, session = attempt.forced or ctx.request.mode, prepared.session
    if mode == Mode.FORK:
        assert prepared.fork is not None  # prepare looks up the source of every run in mode fork
        return decide_fork(ctx, session, prepared.fork)
    follow = follow_up(ctx, attempt)
    # a new conversation (fresh, recovered) has no turn to continue: it is told the interrupted
    # turns' instructions themselves, whether the agent had a conversation by then or not
    told = told_new(ctx, attempt, follow)
    if mode == Mode.FRESH:
        return Decision(Mode.FRESH, None, PromptKind.FULL, **told)
    if mode == Mode.RECOVER:
        return _recover(attempt, told)
    if mode == Mode.CONTINUE:
        kind = follow.kind if session.agent_session_id else PromptKind.FULL
        return Decision(Mode.CONTINUE, None, kind, **told)
    if not session.agent_session_id:
        return Decision(Mode.FRESH, None, PromptKind.FULL, note=follow.fresh_note, **told)
    held = quarantine.check(ctx, session.agent_session_id)
    if held:  # its resume failed at once twice in a row: never resumed again
        notes = _notes(held, follow.fresh_note)
        return Decision(Mode.RECOVER, None, PromptKind.RECAP, note=notes, lineage="quarantine", **told)
    # the conversation outgrew its model's window: a new one with a recap, before anything is hydrated
    # (or, where the CLI can, compacted in place first: the resume below says so)
    key = ctx.key  # its latest runs, read once for both looks back (the window's, the format's)
    recent = ctx.store.list_runs(key.agent, key.repo.slug, key.thread, limit=window.LOOK_BACK)
    full = window.rollover(ctx.settings, recent, key, session.agent_session_id)
    if full is not None and not full.compacts(ctx.agent.capabilities):
        notes = _notes(full.note, follow.fresh_note)
        return Decision(Mode.RECOVER, None, PromptKind.RECAP, note=notes, lineage=full.lineage, **told)
    decision = _resume(ctx, prepared, follow, told, recent[0] if recent else None)
    if full is None or decision.mode != Mode.RESUME:
        return decision
    note = f"compacting first: {full.held}"
    return replace(decision, compact=True, note=_notes(note, decision.note), lineage=window.COMPACTED)


def _resume(
    ctx: Context, prepared: Prepared, follow: FollowUp, told: dict[str, Any], last: RunRecord | None
) -> Decision:
    """Resume the key's conversation: from local disk (hydrated from the snapshot where it must be),
    or recover it with a recap when it is lost or in a format baton cannot read, or a new one when its
    agent's instruction files changed and the setting says so. ``last``: the key's last run."""
    session = prepared.session
    assert session.agent_session_id is not None
    local = ensure_local(ctx, ctx.key, session.agent_session_id, prepared.worktree)
    if not local.ok:
        notes = _notes(local.note, follow.fresh_note)
        return Decision(Mode.RECOVER, None, PromptKind.RECAP, note=notes, lineage="lost", **told)
    unreadable = unreadable_format(ctx, session.agent_session_id, last)
    if unreadable:
        notes = _notes(local.note, unreadable, follow.fresh_note)
        return Decision(Mode.RECOVER, None, PromptKind.RECAP, note=notes, lineage="unreadable", **told)
    resume = Decision(
        Mode.RESUME,
        session.agent_session_id,
        follow.kind,
        follow.reason,
        follow.previous,
        _notes(local.note, follow.note),
        follow.told,
    )
    if follow.kind == PromptKind.DELTA and not follow.told:  # (a carried instruction is not asked again)
        resume = _after_unanswered(ctx, resume)
    return _instructions(ctx, prepared, resume, _notes(local.note, follow.fresh_note), told)


def _instructions(
    ctx: Context, prepared: Prepared, resume: Decision, fresh_note: str | None, told: dict[str, Any]
) -> Decision:
    """A resumed turn whose agent's instruction files changed since its conversation last saw them
    (:mod:`baton.runner.instructions`): told how, or (``on_instructions_change = fresh``) a new
    conversation with a recap, which reads them itself."""
    assert resume.session_id is not None
    checked = instructions.check(ctx, prepared.worktree, resume.session_id)
    if checked.change is None:
        return resume
    said = f"the instruction files changed since the conversation last saw them ({checked.change.summary})"
    if checked.fresh:
        fresh = f"{said}: on_instructions_change is fresh, so a new conversation starts with a recap"
        notes = _notes(fresh, fresh_note)
        return Decision(Mode.RECOVER, None, PromptKind.RECAP, note=notes, lineage="instructions", **told)
    note = _notes(resume.note, f"{said}: this turn is told how")
    return replace(resume, instructions=checked.change.text, note=note)


def _recover(attempt: Attempt, told: dict[str, Any]) -> Decision:
    """A recovery this run was forced into — its conversation lost, quarantined, or refused by the
    model as longer than its window (a rollover, once) — or one the request asked for."""
    if attempt.cause == Outcome.CONTEXT_FULL:
        note = f"rolled over: {attempt.lost or 'the conversation was too long'}"
        return Decision(Mode.RECOVER, None, PromptKind.RECAP, note=note, lineage=window.TOO_LONG, **told)
    note = attempt.lost or "the agent could not find the conversation"
    lineage = "lost" if attempt.cause == Outcome.SESSION_LOST else "quarantine"  # (it failed at once)
    lineage = "asked" if attempt.cause is None else lineage
    return Decision(Mode.RECOVER, None, PromptKind.RECAP, note=note, lineage=lineage, **told)


# bytes of a transcript's end read for its last turn: every resume pays for them, not for the whole
# file; a last turn longer than this is not seen, and the turn goes on without the note
TAIL = 4 * 1024 * 1024


def _after_unanswered(ctx: Context, resume: Decision) -> Decision:
    """A turn that failed before the model answered can leave its instruction in the conversation
    (Claude writes it first), and the CLI sends it again with the next one: a dispatcher that resubmits
    would deliver it twice without a word. Then this turn gets the "interrupted" prompt, saying that
    the instruction above went unanswered (and that this one repeats it, when it does)."""
    assert resume.session_id is not None
    agent, unanswered = ctx.agent, None
    if not agent.capabilities.prompt_before_answer:
        return resume  # its CLI writes an instruction with its answer: nothing to read
    for path in agent.transcript_files(resume.session_id):
        try:  # the agent's to write: read without following a link, only the end (a cut line is skipped)
            transcript = nofollow.read_beneath(agent.home, path.relative_to(agent.home), tail=TAIL)
            unanswered = agent.unanswered_prompt(transcript)
        except (OSError, ValueError):  # unreadable: the agent judges its own transcript
            return resume
    if unanswered is None:
        return resume
    repeated = unanswered.strip() == ctx.request.prompt.strip()
    previous = "That turn's instruction is the last message above; it was never answered" + (
        ", and this instruction repeats it.\n" if repeated else ".\n"
    )
    note = "the last turn's instruction is in the conversation unanswered (it failed before the model"
    note += " answered)"
    return replace(
        resume,
        kind=PromptKind.INTERRUPTED,
        reason="it failed before you answered",
        previous=previous,
        note=_notes(resume.note, note + ("; this run repeats it" if repeated else "")),
    )


# bytes of a transcript read for its format: the end, where a newer release's entries are; a file
# longer than this is judged by its last part (the first, cut line skipped)
FORMAT_TAIL = 16 * 1024 * 1024


def unreadable_format(ctx: Context, session_id: str, last: RunRecord | None) -> str | None:
    """Why the conversation's transcript is in a format baton cannot read, as the run's note, or None.
    A CLI that meets entries of another release's format skips them and resumes half a history with
    exit 0; baton recovers with a recap instead, and keeps the transcript where it is
    (:mod:`baton.agents.formats`).

    Only a change of release can change the format, so the transcript is read (up to its last 16 MiB,
    a JSON parse of every line: tens of ms for a long Gemini chat) only when the CLI about to resume
    is not the release that ran the last turn, or either is unknown; a turn under the same release
    costs one look at the version cache. The installed CLI is never run for its version here (a
    ``--version`` costs up to 2 s, before the agent starts): one not remembered yet is unknown.
    ``last``: the key's last run (None: none yet)."""
    agent = ctx.agent
    wrote = last.cli_version if last else None
    if wrote is not None and wrote == agent.known_version():
        return None
    for path in agent.transcript_files(session_id):
        try:  # the agent's to write: read without following a link
            data = nofollow.read_beneath(agent.home, path.relative_to(agent.home), tail=FORMAT_TAIL)
        except (OSError, ValueError):
            continue  # unreadable bytes: the agent judges (and a "not found" recovers)
        problem = agent.transcript_problem(data)
        if problem:
            by = f"; its last turn ran on {ctx.key.agent} {wrote}" if wrote else ""
            return (
                f"the transcript of conversation {session_id} is in a format baton cannot read ({problem}"
                f"{by}): another release of the CLI changed it, and resuming would lose part of the history, "
                f"so this run starts a new conversation with a recap; the old transcript is kept at {path}"
            )
    return None


@dataclass(frozen=True)
class FollowUp:
    """What a turn is told of the key's last turn (:func:`follow_up`)."""

    kind: PromptKind  # for a resumed conversation: the bare delta, or the "interrupted" prompt
    reason: str = ""  # how the last turn ended, when it was cut short
    previous: str = ""  # its instruction, when this turn's differs
    told: str = ""  # what became of its instruction instead (the on_limit fallback carried it)
    note: str | None = None  # for the run's record

    @property
    def fresh_note(self) -> str | None:
        """The record's note when a new conversation is told the interrupted turn's instruction."""
        if not self.reason:
            return self.note
        return (
            "the last turn was cut short and left no conversation to resume: this one is told its instruction"
        )


def follow_up(ctx: Context, attempt: Attempt) -> FollowUp:
    """The prompt of a turn after the key's last: the bare delta, or after a turn cut short the
    "interrupted" one, with how it ended and (when it differs) its instruction. A turn stopped by a
    spent usage quota whose instruction the ``on_limit`` fallback carried (this run takes its work
    back: ``catch_up_from``) is not asked again: a non-idempotent instruction must run once. Its
    prompt says who did it; what it answered and changed comes before it (the catch-up's text)."""
    interrupted = attempt.interrupted
    if interrupted is None:
        return FollowUp(PromptKind.DELTA)
    carrier = _carried_by(ctx, interrupted)
    if carrier is not None:
        told = (
            f"Your previous turn was stopped by your usage limit before you could do it; {carrier} carried "
            "out its instruction instead (what it answered and changed is above). It is done: do not do it "
            "again.\n\n"
        )
        note = f"the last turn's instruction was carried by {carrier} (on_limit fallback): not asked again"
        return FollowUp(PromptKind.DELTA, told=told, note=note)
    reason, previous = interrupted.outcome.value.replace("_", " "), ""
    if interrupted.outcome == Outcome.LIMITED and interrupted.error:  # which limit, in baton's words
        reason = "stopped: " + interrupted.error.removesuffix(f"; {KEPT}")
    if interrupted.outcome == Outcome.RATE_LIMITED:
        reason = "stopped by a usage limit, which has reset since"
    if interrupted.prompt.strip() != ctx.request.prompt.strip():
        previous = f"That turn's instruction was:\n\n{interrupted.prompt.strip()}\n"
    return FollowUp(PromptKind.INTERRUPTED, reason, previous)


# turns cut short in a row whose instructions a new conversation is told, at most
CHAIN = 10


def told_new(ctx: Context, attempt: Attempt, follow: FollowUp) -> dict[str, Any]:
    """What a new conversation (its prompt ``full``, ``recap`` or ``handoff``) is told of the turns
    cut short before it, as :class:`Decision` fields: every instruction of the key's turns cut short
    in a row up to the last (up to :data:`CHAIN`), oldest first, each once and whole: a turn after
    one stopped before it left a conversation may be stopped the same way (OpenCode under a memory
    limit it cannot even start in), and no conversation holds any of them."""
    told: dict[str, Any] = {"reason": follow.reason, "previous": follow.previous, "told": follow.told}
    interrupted = attempt.interrupted
    if interrupted is None or not follow.reason:
        return told
    chain = _cut_short(ctx, interrupted)
    asked, texts, left_out = ctx.request.prompt.strip(), list[str](), list[RunRecord]()
    for record in reversed(chain):  # the newest first, while they fit the CLI's prompt limit
        text = record.prompt.strip()
        if text == asked or text in texts:
            continue
        if left_out or not _fits(ctx, [*texts, text]):  # and every older one: no gap in the story
            left_out.append(record)
            continue
        texts.insert(0, text)
    if len(texts) > 1:
        listed = "\n\n".join(f"{n}. {text}" for n, text in enumerate(texts, 1))
        told["previous"] = f"The instructions of the turns cut short in a row, oldest first:\n\n{listed}\n"
    else:
        told["previous"] = f"That turn's instruction was:\n\n{texts[0]}\n" if texts else ""
    if left_out:  # never silently: the run's record says where they are
        ids = ", ".join(r.id for r in reversed(left_out))
        told["previous"] += (
            f"(The instructions of earlier turns cut short, runs {ids}, do not fit in this prompt.)\n"
        )
    told["cut_short"] = tuple(record.id for record in chain if record not in left_out)
    return told


# characters of a new conversation's prompt kept for its template's words and a recap's clipped runs
RESERVED = 16_000


def _fits(ctx: Context, texts: list[str]) -> bool:
    """Whether ``texts`` fit the agent CLI's prompt limits beside the instruction (its characters,
    or its UTF-8 bytes at 4 a reserved character)."""
    caps, instruction = ctx.agent.capabilities, ctx.resolved.instruction
    chars = sum(len(t) for t in texts) + len(instruction) + RESERVED
    if caps.max_prompt_chars is not None and chars > caps.max_prompt_chars:
        return False
    size = sum(len(t.encode("utf-8", "replace")) for t in [*texts, instruction]) + 4 * RESERVED
    return caps.max_prompt_bytes is None or size <= caps.max_prompt_bytes


def _cut_short(ctx: Context, interrupted: RunRecord) -> list[RunRecord]:
    """``interrupted`` and the key's turns cut short right before it, oldest first."""
    key, chain = ctx.key, list[RunRecord]()
    for record in ctx.store.list_runs(key.agent, key.repo.slug, key.thread, limit=CHAIN + 10):
        if not chain and record.id != interrupted.id:
            continue  # newer: this run's own attempts (a lost conversation's) come first
        if chain and not record.outcome.interrupted:
            break
        chain.append(record)
        if len(chain) == CHAIN:
            break
    return list(reversed(chain)) or [interrupted]


def _carried_by(ctx: Context, interrupted: RunRecord) -> str | None:
    """The ``on_limit`` fallback agent that carried ``interrupted``'s instruction (a turn of its own
    on the thread since, with the same instruction), when this run takes its work back; else None."""
    partner = ctx.request.catch_up_from
    if partner is None or interrupted.outcome != Outcome.RATE_LIMITED:
        return None
    key, asked = ctx.key, interrupted.prompt.strip()
    for record in ctx.store.list_runs(partner, key.repo.slug, key.thread, limit=200):
        if record.started_at >= interrupted.started_at and record.prompt.strip() == asked:
            return partner
    return None


def fork_source(ctx: Context, session: SessionRecord | None) -> ForkSource:
    """The key, conversation and directory a fork branches from; BadInput when there is none (looked
    up once, before anything is written)."""
    source_key, source_dir = ctx.key, ctx.workdirs.worktree_path(ctx.key)
    source_id = session.agent_session_id if session else None
    if ctx.request.fork_from:
        source_key = Key(ctx.key.agent, ctx.key.repo, ctx.request.fork_from)
        source = ctx.store.get_session(source_key.agent, source_key.repo.slug, source_key.thread)
        source_id = source.agent_session_id if source else None
        source_dir = Path(source.worktree) if source else source_dir
    if not source_id:
        raise BadInput(f"{source_key} has no conversation to fork")
    return ForkSource(source_key, source_id, source_dir)


def decide_fork(ctx: Context, session: SessionRecord, source: ForkSource) -> Decision:
    """A fork of ``source``; BadInput when its conversation is lost everywhere."""
    source_id = source.session_id
    if source.key == ctx.key and session.agent_session_id:
        # the key's own conversation as it is now: a retry forks what its first attempt made
        source_id = session.agent_session_id
    copied = _copy_source(ctx, source, source_id)
    # mapped to the SOURCE's directory in this key's home: Gemini keys sessions by directory, and the
    # fork's own conversation gets a project of its own (the key's worktree), apart from the copy
    local = ensure_local(ctx, source.key, source_id, source.cwd)
    if not local.ok:
        raise BadInput(f"the conversation of {source.key} is lost ({local.note}); cannot fork it")
    return Decision(Mode.FORK, source_id, PromptKind.DELTA, note=_notes(copied, local.note))


def _copy_source(ctx: Context, source: ForkSource, source_id: str) -> str | None:
    """Another key's conversation lives in that key's home: the fork's key gets a copy in its own (the
    agent may read nothing of another key's), from that thread's home on this machine (or the base
    home, for a conversation from before key spaces). None when it is the key's own, or this machine has
    no copy (then :func:`ensure_local` hydrates the source's snapshot); a failed copy says so, and
    hydration from the snapshot is tried the same way."""
    if source.key == ctx.key:
        return None
    try:
        found = copy_conversation(ctx.settings, source.key, ctx.agent, source_id, source.cwd)
    except (BatonError, OSError, ValueError) as exc:
        return f"could not copy the conversation of {source.key} on this machine: {exc}"
    return f"copied the conversation of {source.key} into this key's home" if found else None


def _notes(*notes: str | None) -> str | None:
    return "; ".join(n for n in notes if n) or None


def ensure_local(ctx: Context, key: Key, session_id: str, cwd: Path) -> Local:
    """Make the conversation resumable from local disk, hydrating it from the store's snapshot when the
    local transcript is missing, shorter than the snapshot, unreadable, older than the snapshot, or
    changed since its mark without a turn to explain it (:func:`baton.sessions.marks.out_of_step`:
    rewritten, or damaged in place with its size, mtime and inode kept). Never raises for a broken
    snapshot: that is a lost conversation (recover), not a wedged key."""
    agent, store = ctx.agent, ctx.store
    files = agent.transcript_files(session_id)
    try:
        snapshot = store.get_snapshot(key.agent, key.repo.slug, key.thread)
    except (BatonError, ValueError) as exc:
        return Local(
            bool(files), None if files else f"no local transcript and the snapshot is unreadable: {exc}"
        )
    if snapshot is not None and snapshot.agent_session_id != session_id:
        snapshot = None
    damage = _damage(files, snapshot)
    if damage is None and files and snapshot is not None:
        damage = out_of_step(agent, snapshot)  # older than the snapshot, or rewritten since
    if files and damage is None:
        return Local(True)
    if snapshot is None:  # nothing better to offer: the agent judges a damaged local transcript
        return Local(
            bool(files), None if files else "no transcript on this machine and no snapshot in the store"
        )
    checked = confirmed(agent, snapshot)  # the snapshot against the digests of the last turn's end
    try:
        hydrate(store, agent, key, session_id, cwd, overwrite=True)
    except (BatonError, OSError, ValueError) as exc:
        if files:
            return Local(
                True, f"the local transcript looks damaged ({damage}) and the snapshot is unusable: {exc}"
            )
        return Local(False, f"no local transcript and the snapshot is unusable: {exc}")
    if not agent.transcript_files(session_id):
        return Local(False, "the snapshot held no usable transcript")
    why = damage or "no transcript on this machine"
    return Local(True, f"hydrated from the store's snapshot ({why}{'; ' + checked if checked else ''})")


def _damage(files: list[Path], snapshot: Snapshot | None) -> str | None:
    """Why the local transcript cannot be trusted over the snapshot, or None. Cheap: sizes, and the
    first bytes of each file: a JSONL transcript's first line parses (a binary or rewritten file does
    not), a SQLite database (OpenCode's) starts with its header. Sizes only where every file is a JSON
    transcript, which only grows: a database shrinks when its WAL is merged, a YAML file is rewritten."""
    if not files:
        return None
    size = sum(p.stat().st_size for p in files)
    grows = all(p.suffix in JSON_TEXT for p in files)
    if grows and snapshot is not None and size < snapshot.total_bytes:
        return f"the local transcript has {size} bytes, the snapshot {snapshot.total_bytes}"
    for path in files:
        with path.open("rb") as fh:
            first = fh.readline() if path.suffix in JSON_TEXT else fh.read(len(SQLITE))
        if path.suffix == ".db" and first != SQLITE:
            return f"{path.name} is not a SQLite database"
        if path.suffix not in JSON_TEXT:
            continue
        try:
            json.loads(first)
        except ValueError:
            return f"{path.name} does not parse as JSONL"
    return None
