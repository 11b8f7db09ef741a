"""After a forge turn: baton does the forge's writes, never the agent, which holds no forge token (its
walls and environment allow-list are unchanged). When a turn of a bound thread ends, :func:`after_job`
(called by the executor that ran it, before the run is recorded as ended, so the thread's next turn
cannot start meanwhile) commits what the agent left (after a turn that succeeded, and never a merge with
a conflict left: :mod:`baton.forge.turn.open_merge`), pushes the thread's branch from baton's own cache clone,
opens the issue's pull request the first time, posts or edits the thread's one status comment, marks
the turn published and starts the events that waited as the next turn (none: the merge policy looks
at the PR again, :mod:`baton.forge.writes.merge_policy`). Each step and why:
:func:`publish` and docs/forge.md (What baton writes on the forge).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from functools import partial
from pathlib import Path
from typing import Any

from baton import tracing
from baton.asking.questions import Question
from baton.errors import BatonError, BranchBusy, BranchConflict, Busy, GitError
from baton.fleet import orphans
from baton.fleet.execute import AFTER_JOB
from baton.fleet.executor import make_executor
from baton.forge.data.config import ForgeSettings, Reply
from baton.forge.data.model import ForgeError, ForgeEvent, ForgeKind
from baton.forge.data.records import Binding, BindingStatus
from baton.forge.data.tables import forge_store
from baton.forge.kinds.intake import Message, Said
from baton.forge.kinds.registry import facts
from baton.forge.turn import open_merge, places, start
from baton.forge.turn.loop import ForgeLoop
from baton.forge.turn.threads import STATUS_HEAD, status_comment_of
from baton.forge.turn.trust import is_own
from baton.forge.writes import agent_answer, gitauth, merge_policy, pushed, refusal, replies, setup_failed
from baton.forge.writes.pushed import SAFE_GIT
from baton.keys import Key, parse_repo
from baton.models import Access, JobRecord, Outcome
from baton.runner.crashed import stop_left_running
from baton.runner.setup import WENT_ON, setup_results
from baton.settings import Settings
from baton.store import Store, store_for
from baton.store.base import LeaseBackend
from baton.store.branchlease import branch_lease
from baton.store.leases import LeaseHolder, held, lease_backend
from baton.sync.sharing import take_branch
from baton.workspace import scrub
from baton.workspace.gitcmd import WorktreeGit, commit_of, redact, run_git, worktree_status
from baton.workspace.workdirs import Workdirs

log = logging.getLogger("baton.forge")
ASKED = "the agent asked a question and waits for an answer"  # a parked thread's note
CAPPED = "the thread is at a spending cap and waits for a raise"  # the note of one parked at a cap
# the status line of a turn whose process died as often as it may run again (baton.fleet.orphans)
STOPPED = (
    "baton stopped working on this on its own: the turn was interrupted each time it ran; a comment "
    "from someone with write access resumes it"
)
NO_CHANGE = "no change: the turn left nothing to push"  # the status line of a turn that changed nothing
# the status line of a run of the thread's key no forge event made (baton answer at the command line)
ELSEWHERE = "run off the forge: what it changed is pushed with the thread's next turn"
CLAIM = "publish:"  # the lease a turn's publisher holds before its first write to the forge


def compose(
    settings: Settings,
    store: Store,
    config: ForgeSettings,
    submit: Callable[[str], None],
    *,
    publishing: bool = False,
    cancel: Callable[[str], bool] | None = None,
) -> ForgeLoop:
    """The one place a :class:`ForgeLoop` is composed (the service, ``baton forge`` commands and a
    worker's processes call it): the operator's forge configuration, the store, how a turn is
    submitted, and with ``publishing`` the forge turns this process's executor ends are published
    (:func:`install`). A loop that only reads and stores (``baton forge ls``, a reconcile whose turns
    the service runs) publishes nothing. ``cancel``: the executor's, which stops a closed PR's turns."""
    loop = ForgeLoop(settings, store, config, submit, cancel=cancel)
    gitauth.provide(config)  # a GitHub App's repositories are cloned with its installation tokens
    if publishing:
        loop.identify()  # a GitHub App's own login, before the first webhook is read
        install(loop)
    return loop


def install(loop: ForgeLoop) -> None:
    """Publish every forge turn this process's executor ends (:data:`baton.fleet.execute.AFTER_JOB`)."""

    def hook(job_id: str, outcome: str, fields: dict[str, Any]) -> None:
        after_job(loop, job_id, outcome, fields)

    AFTER_JOB["forge"] = hook


def install_per_process(settings: Settings, config: ForgeSettings) -> None:
    """Like :func:`install`, for a worker whose jobs run in forked processes: each process opens its
    own store (a connection must not cross a fork) and submits next turns through the fleet's queue."""
    loops: dict[int, ForgeLoop] = {}
    gitauth.provide(config)  # before the first turn's clone: each process then mints its own tokens

    def hook(job_id: str, outcome: str, fields: dict[str, Any]) -> None:
        loop = loops.get(os.getpid())
        if loop is None:
            store = store_for(settings)
            # this hook is the publisher already: installing another would replace it with itself
            loop = loops[os.getpid()] = compose(
                settings, store, config, make_executor(settings, store).submit
            )
        after_job(loop, job_id, outcome, fields)

    AFTER_JOB["forge"] = hook


@tracing.traced("run.publish")
def after_job(
    loop: ForgeLoop,
    job_id: str,
    outcome: str,
    fields: dict[str, Any],
    again: bool = False,
    within: Callable[[], AbstractContextManager[object]] | None = None,
) -> dict[str, Any] | None:
    """Publish a forge turn that ended with ``outcome`` (``fields``: the job's ``result`` and
    ``error``); what was written (also kept with the turn in the store), or None when the job is not a
    forge turn. Never raises: a failure is what it returns. The turn is **claimed** in the store before
    any write to the forge (the lease ``publish:<job>``, renewed while it publishes; one that died
    lets it expire), and published by the one process holding the claim only if it is not published
    yet: one status comment, one PR, one push, whoever heals. It is marked published once, and only
    then are the events that waited for it started as the next turn (:func:`baton.forge.turn.start.kick`).
    ``again``: the heal publishes a turn whose publisher died, which may have posted its answer already.
    A turn another process is publishing now is theirs: what it wrote, or None while it writes.
    ``within``: what the writes run in, under the claim
    (:func:`baton.forge.background.adopt.from_checkpoint`); what it raises is raised, and the turn stays
    unpublished."""
    events = forge_store(loop.store).events_of_job(job_id)
    job = loop.store.get_job(job_id)
    if job is None:
        return None
    job.outcome, job.error = outcome, fields.get("error")
    job.result = fields.get("result") if isinstance(fields.get("result"), dict) else None
    if events:
        first = events[0]
        binding = loop.binding(first.forge, first.repo, first.number, first.on_pr)
        if binding is None:
            return {"error": f"{first.forge}:{first.repo}#{first.number} is no longer bound"}
    elif (binding := _answer_turn(loop, job)) is None:
        _elsewhere(loop, job)  # a run of a bound thread's key submitted off the forge, not its turn
        return None
    lease = LeaseHolder(loop.store, CLAIM + job.id, loop.settings.lease_ttl, backend=backend(loop))
    try:
        with held(lease, 0.0, loop.settings.heartbeat):
            return _claimed(loop, binding, job, outcome, again, within or nullcontext)
    except Busy:  # another process publishes it now (a heal beside its executor): it is theirs
        return forge_store(loop.store).published(job.id)


def _answer_turn(loop: ForgeLoop, job: JobRecord) -> Binding | None:
    """The thread whose turn ``job`` is though no forge event made it: an answer given through the API
    or the dashboard (:func:`baton.forge.writes.answered_elsewhere.answered_elsewhere` recorded it as the
    turn)."""
    store = forge_store(loop.store)
    binding = store.binding_for_key(job.agent, job.repo, job.thread)
    if binding is None:
        return None
    turns = store.forge_turns(binding.forge, binding.repo, binding.number, job.submitted_at, pr=binding.on_pr)
    return binding if any(turn["job_id"] == job.id for turn in turns) else None


def _elsewhere(loop: ForgeLoop, job: JobRecord) -> None:
    """A submitted run of a bound thread's key that no forge event made has ended: the thread's status
    comment says so (:func:`told_elsewhere`), and what the forge said meanwhile, which waited for it,
    starts now."""
    try:
        binding = forge_store(loop.store).binding_for_key(job.agent, job.repo, job.thread)
        if binding is not None and binding.status == BindingStatus.ACTIVE:
            told_elsewhere(loop, binding, job)
            start.kick(loop, binding, finishing=job.id)
    except Exception:  # the run's end is recorded whatever: the reconcile or the next event kicks it
        log.exception("forge: starting what waited after run %s failed", job.id)


def told_elsewhere(loop: ForgeLoop, binding: Binding, job: JobRecord) -> str:
    """The thread's one status comment after a run of its key that no forge event made (an answer given
    with ``baton answer``, a run submitted on the key) — ``job`` ended, its outcome and ``result`` set:
    its last turn is that run, which pushed nothing (the thread's next turn pushes what it left), and
    it no longer says the thread waits for an answer. Only for an active thread: one parked for another
    reason keeps its comment. What the forge's write did ("edited", "failed: <the forge's words>");
    BadInput when this process cannot reach the forge (its token's variable unset)."""
    if binding.status != BindingStatus.ACTIVE or binding.status_comment is None:
        return "no status comment to edit"
    result = {"outcome": job.outcome, "why": ELSEWHERE}
    return _status_comment(loop, binding, _status_body(loop, binding, job, result, False))


def _claimed(
    loop: ForgeLoop,
    binding: Binding,
    job: JobRecord,
    outcome: str,
    again: bool,
    within: Callable[[], AbstractContextManager[object]],
) -> dict[str, Any]:
    """Publish under the turn's claim: once, whoever claims it (one published before the claim was
    taken is left as it is), then mark it published and start what waited."""
    done = forge_store(loop.store).published(job.id)
    if done is not None:
        return done
    with within():
        try:
            result = publish(loop, binding, job, outcome, again)
        except Exception as exc:  # the run's end must be recorded whatever the forge did
            log.exception("forge %s: publishing turn %s failed", binding.conversation, job.id)
            result = {"error": f"{type(exc).__name__}: {redact(str(exc))}"}
    published = forge_store(loop.store).mark_published(job.id, result, loop.clock())
    if published and start.kick(loop, binding, finishing=job.id) is None:  # no next turn: the PR
        merge_policy.consider(loop, binding, "a turn", finishing=job.id)  # may be ready now
    return result


def backend(loop: ForgeLoop) -> LeaseBackend:
    """Where the claims of this loop's turns are granted: where the keys' leases are."""
    return lease_backend(loop.settings, loop.store)


def publish(
    loop: ForgeLoop, binding: Binding, job: JobRecord, outcome: str, again: bool = False
) -> dict[str, Any]:
    """Commit, push, open or move the PR, update the status comment; what happened, as data.

    1. What the agent left uncommitted in the worktree is committed on the thread's branch (the agent
       may have committed too, at ``full`` access) — only after a turn that succeeded; otherwise the
       work stays in the worktree and its checkpoint, and the status comment says what happened. A
       merge whose conflicts the agent did not resolve (a marker left) is never concluded, whatever the
       outcome: nothing is committed or pushed, the status comment says where the conflict is, and the
       thread's note tells its next turn.
    2. The branch is pushed from baton's own cache clone (not from the worktree, whose git files the
       agent could write), with the forge's token through ``GIT_ASKPASS`` (never in a URL, an argv or a
       log); a push the forge refuses (protected branch, rules, a non-fast-forward) is reported with
       the forge's words and nothing is lost. A branch with no commit its base lacks, or where baton
       last pushed it, is not pushed: the status says :data:`NO_CHANGE`.
    3. An issue's thread gets its pull request (draft by default, closing the issue) the first time it
       pushes, so never an empty one; a PR's thread just moves the PR's head.
    4. The thread's **one** status comment (run id, outcome, what changed, cost) is posted or edited.
    5. The agent's answer (its final message) is posted as a reply of its own, attributed and bounded
       (:mod:`baton.forge.writes.agent_answer`), or shown in the status comment, or nowhere: the repository's
       ``reply`` (``comment``, ``status``, ``none``).
    6. After a review turn, each inline comment's thread gets a reply with the agent's account of it,
       and the threads it did are resolved where the repository says so
       (:mod:`baton.forge.writes.replies`)."""
    result: dict[str, Any] = {"outcome": outcome}
    if binding.access == Access.READ:  # a PR from a fork: its thread reads, and pushes nothing
        result.update({"pushed": False, "why": "a read-only thread pushes nothing"})
    elif (still := _open_merge(loop, binding)) is not None:
        result.update({"pushed": False, "conflict": still.where(), "unmerged": list(still.unmerged)})
        binding.note = still.note()
        loop.store.audit("forge.conflict_open", binding.conversation, "baton", {"where": still.where()})
    elif outcome == Outcome.SUCCEEDED.value:
        if binding.note and binding.note.startswith(open_merge.OPEN):
            binding.note = None  # resolved now: the commit below concludes the merge
        result.update(_push(loop, binding, job, again))
    if result.get("pushed") and binding.pr is None:
        result.update(_open_pr(loop, binding))
    repo = loop.repo(binding.forge, binding.repo)
    reply = repo.reply if repo is not None else Reply.COMMENT
    question = agent_answer.question_of(job) if outcome == Outcome.NEEDS_INPUT.value else None
    if question is not None:
        result["asked"] = True
    if outcome == Outcome.CRASHED.value and (job.error or "").startswith(orphans.GAVE_UP):
        result["stopped"] = STOPPED  # run again as often as it may be: a person decides what next
        binding.status, binding.note = BindingStatus.NEEDS_HUMAN, job.error
        loop.store.audit("forge.needs_human", binding.conversation, "baton", {"reason": job.error})
    if again and binding.status_comment is None:  # its publisher may have posted it and died
        binding.status_comment = status_comment_of(
            loop, binding.forge, binding.repo, binding.number, binding.on_pr
        )
    status = _status_body(loop, binding, job, result, reply is Reply.STATUS)
    result["comment"] = _status_comment(loop, binding, status)
    where = places.places(loop, binding, _events(loop, job))
    _reply(loop, binding, job, result, reply, question, again, where)
    if others := places.beside_the_forge(where):  # on the forge, the status comment says it
        result["told"] = places.tell(others, _message(Said.OUTCOME, status, binding, job, outcome))
    binding.updated_at = loop.clock()
    forge_store(loop.store).save_binding(binding)
    return result


def _reply(
    loop: ForgeLoop,
    binding: Binding,
    job: JobRecord,
    result: dict[str, Any],
    reply: Reply,
    question: Question | None,
    again: bool,
    where: list[places.Place],
) -> None:
    """What people read of the turn besides its status: its question (whatever ``reply`` says: a question
    unread is a thread stuck), else its answer where ``reply`` puts it, then, after a review turn, a reply
    in each inline comment's thread (a turn that asked answers them after the answer)."""
    if question is not None:
        result["question"] = _ask(loop, binding, job, question, again, where)
        return
    answer = agent_answer.answer_of(job)
    if reply is Reply.COMMENT and answer is not None:
        posted = again and _answered(loop, binding, job)
        result["reply"] = (
            "posted before"
            if posted
            else places.tell(
                where, _message(Said.ANSWER, agent_answer.answer_text(binding, job, answer), binding, job)
            )
        )
    elif reply is Reply.STATUS and answer and not result["comment"].startswith("failed"):
        result["reply"] = "in the status comment"  # an answer, for the outcomes (forge/data/outcomes.py)
    if (threads := replies.answer_threads(loop, binding, job, result, again)) is not None:
        result["threads"] = threads


# -- git -----------------------------------------------------------------------------------------------


def _open_merge(loop: ForgeLoop, binding: Binding) -> open_merge.OpenMerge | None:
    """The merge in the thread's worktree that must not be concluded (its conflicts left), if any."""
    workdirs = Workdirs(loop.settings)
    wt = workdirs.worktree_git(Key(binding.agent, parse_repo(binding.repo_url), binding.thread))
    if wt is None:
        return None
    return open_merge.open_merge(wt, workdirs.process_env(binding.agent), binding.head_sha)


def _push(loop: ForgeLoop, binding: Binding, job: JobRecord, again: bool = False) -> dict[str, Any]:
    """Commit and push under the lease of the branch the thread's worktree is on, the branch taken back
    first if another key of this machine wrote it since (:func:`baton.sync.sharing.take_branch`): the
    turn's run has released that lease, and a run of another key on the same branch (a manual
    ``baton run --branch`` on the PR's head) may hold it now; then this turn's work stays in the
    worktree, and the thread's next turn commits and pushes it with its own."""
    workdirs = Workdirs(loop.settings)
    key = Key(binding.agent, parse_repo(binding.repo_url), binding.thread)
    session = loop.store.get_session(binding.agent, binding.repo_slug, binding.thread)
    if session is None or workdirs.worktree_git(key) is None:
        return {"pushed": False, "why": "the thread has no worktree"}
    lease = branch_lease(loop.settings, loop.store, key.repo.slug, session.branch, key.id, job.id)
    try:
        with held(lease, 0.0, loop.settings.heartbeat):
            take_branch(workdirs, loop.store, key, session.branch, partial(stop_left_running, loop.store))
            return _commit_and_push(loop, binding, job, workdirs, key, session.branch, again, session.base)
    except (BranchBusy, BranchConflict) as exc:
        return {"pushed": False, "why": f"{exc} (the work stays in the thread's worktree)"}


def _commit_and_push(
    loop: ForgeLoop,
    binding: Binding,
    job: JobRecord,
    workdirs: Workdirs,
    key: Key,
    local: str,
    again: bool,
    base: str | None = None,
) -> dict[str, Any]:
    """Commit what the turn left and push the branch, unless it holds no change: no commit ``base``
    (the session's; None: the repository's default branch) lacks, or where baton last pushed it."""
    wt = workdirs.worktree_git(key)
    if wt is None:
        return {"pushed": False, "why": "the thread has no worktree"}
    env = workdirs.process_env(binding.agent)
    results = setup_results(loop.settings, key, wt.path)
    committed = _commit(wt, env, binding, job, results)
    head = wt.commit_of("HEAD")
    cache = workdirs.cache_path(key.repo)
    start = _base_of(cache, base or workdirs.default_base(cache), head)
    branch = binding.branch or local
    scrubbed = _scrubbed(wt, env, cache, head, [start, binding.head_sha], branch, results)
    head = scrubbed.head if scrubbed is not None else head
    if head is None or head == binding.head_sha or head == start:
        # nothing the base lacks: no branch pushed at the base, no empty PR that would close the issue
        return {"pushed": False, "committed": committed, "why": NO_CHANGE}
    try:
        gitauth.with_push_env(
            loop.forge(binding.forge),
            binding.repo,
            env,
            lambda push_env: run_git(
                [*SAFE_GIT, "push", "--porcelain", binding.repo_url, f"{head}:refs/heads/{branch}"],
                cwd=cache,
                env=push_env,
            ),
        )
    except GitError as exc:
        theirs = _pushed_before(loop, binding, wt, cache, branch, head, env) if again else None
        if theirs is None:
            refused = refusal.Refusal.of(exc, branch)
            detail = {"branch": branch, "error": refused.said, "git": refused.git}
            loop.store.audit("forge.push_refused", binding.conversation, "baton", detail)
            said = {"refused": refused.said, "git": refused.git}
            return {"pushed": False, "committed": committed, **said, "branch": branch, "head": head}
        head = theirs
    stat = _diffstat(wt, env, binding.head_sha or start, head)
    binding.head_sha, binding.branch = head, branch
    said = {"scrubbed": scrubbed.said()} if scrubbed is not None else {}
    return {"pushed": True, "committed": committed, "branch": branch, "head": head, "changes": stat, **said}


def _scrubbed(
    wt: WorktreeGit,
    env: dict[str, str],
    cache: Path,
    head: str | None,
    known: list[str | None],
    branch: str,
    results: list[str],
) -> scrub.Scrubbed | None:
    """The branch without what the repository's setup made, in the commits the forge does not have yet
    (:func:`baton.workspace.scrub.scrub`): whoever committed it, it never leaves in a push."""
    if head is None or not results:
        return None
    known = [*known, commit_of(cache, f"refs/remotes/origin/{branch}")]
    scrubbed = scrub.scrub(wt, env, head, [k for k in known if k], results)
    if scrubbed is not None:
        log.info("forge: %s", scrubbed.said())
    return scrubbed


def _base_of(cache: Path, base: str, head: str | None) -> str | None:
    """Where ``head`` left ``base`` (the remote's branch of that name as last fetched, else the ref or
    commit it names in the cache): their merge base, which is ``head`` itself when the branch has no
    commit the base lacks; None when that cannot be told (the base unknown here)."""
    if head is None or base.startswith("-"):
        return None
    tip = commit_of(cache, f"refs/remotes/origin/{base}") or commit_of(cache, base)
    if tip is None:
        return None
    try:
        return run_git(["merge-base", head, tip], cwd=cache) or None
    except GitError:  # unrelated histories
        return None


def _pushed_before(
    loop: ForgeLoop,
    binding: Binding,
    wt: WorktreeGit,
    cache: Path,
    branch: str,
    head: str,
    env: dict[str, str],
) -> str | None:
    """The commit its dead publisher pushed of this turn, when the forge's branch holds it
    (:func:`baton.forge.writes.pushed.twin`); None when the refusal stands."""

    def fetch(args: list[str]) -> str:
        return gitauth.with_push_env(
            loop.forge(binding.forge), binding.repo, env, lambda e: run_git(args, cwd=cache, env=e)
        )

    return pushed.twin(wt, cache, binding.repo_url, branch, head, fetch)


def _commit(wt: WorktreeGit, env: dict[str, str], binding: Binding, job: JobRecord, setup: list[str]) -> bool:
    """Commit what the agent left in the worktree, without what the repository's ``setup`` made there
    (its ``.venv``, ``node_modules``: paths the worktree's commit does not track); whether there was
    anything."""
    if not worktree_status(wt):
        return False
    message = (
        f"baton: {binding.agent} on {binding.conversation}\n\nTurn {job.id} of thread {binding.thread}.\n"
    )
    wt.run([*SAFE_GIT, "add", "-A"], env=env)
    _unstage_untracked(wt, env, setup)
    if not wt.run([*SAFE_GIT, "diff", "--cached", "--name-only"], env=env).strip():
        return False
    wt.run([*SAFE_GIT, "commit", "--no-verify", "--quiet", "-F", "-"], env=env, stdin=message)
    return True


def _unstage_untracked(wt: WorktreeGit, env: dict[str, str], paths: list[str]) -> None:
    """Take ``paths`` that HEAD does not track out of the index again (literal pathspecs)."""
    if not paths:
        return
    literal = {**env, "GIT_LITERAL_PATHSPECS": "1"}
    tracked = set(wt.run(["ls-tree", "-z", "--name-only", "HEAD", "--", *paths], env=literal).split("\0"))
    new = [p for p in paths if p not in tracked]
    if new:
        wt.run(["rm", "-r", "-q", "--cached", "--ignore-unmatch", "--", *new], env=literal)


def _diffstat(wt: WorktreeGit, env: dict[str, str], old: str | None, new: str) -> str:
    base = old if old and wt.commit_of(old) else f"{new}~1" if wt.commit_of(f"{new}~1") else None
    if base is None:
        return ""
    try:
        return wt.run(["diff", "--shortstat", base, new], env=env)
    except GitError:
        return ""


# -- the forge -----------------------------------------------------------------------------------------


def _open_pr(loop: ForgeLoop, binding: Binding) -> dict[str, Any]:
    client, repo = loop.client(binding.forge), loop.repo(binding.forge, binding.repo)
    assert binding.branch is not None
    try:
        issue = client.thread(binding.repo, binding.number, pr=binding.on_pr)
        base = (repo.base if repo else None) or client.default_branch(binding.repo)
        body = (
            f"Closes #{binding.number}.\n\nOpened by baton for {binding.agent}'s thread `{binding.thread}`."
        )
        draft = repo.draft if repo else True
        number, url = client.open_pr(binding.repo, binding.branch, base, issue.title[:250], body, draft)
    except (ForgeError, BatonError) as exc:
        return {"pr_error": redact(str(exc))}
    binding.pr = number
    loop.store.audit("forge.pr_opened", binding.conversation, "baton", {"pr": number, "url": url})
    forge_store(loop.store).mark_pr_opened(
        binding.forge, binding.repo, binding.number, loop.clock(), pr=binding.on_pr
    )
    return {"pr": number, "pr_url": url}


def _answered(loop: ForgeLoop, binding: Binding, job: JobRecord) -> bool:
    """Whether baton's answer of ``job`` is on the thread already (its publisher died after posting it):
    asked only when a turn is published again, so a turn's answer is posted once."""
    forge = loop.forge(binding.forge)
    mark = agent_answer.attribution(binding, job)
    try:
        said = loop.client(binding.forge).comments(
            binding.repo, binding.number, since=job.started_at, pr=binding.on_pr
        )
    except ForgeError:
        return False  # cannot tell: post it (twice at worst, never lost)
    return any(is_own(c.author.login, forge) and c.body.startswith(mark) for c in said)


def _ask(
    loop: ForgeLoop,
    binding: Binding,
    job: JobRecord,
    question: Question,
    again: bool,
    where: list[places.Place],
) -> str:
    """Put the turn's question to the people the work is for, once, and park the thread."""
    capped = agent_answer.cap_of(job)  # baton's question: the thread is at a spending cap
    if again and _answered(loop, binding, job):
        said = "posted before"
    elif capped is not None:
        mention, asked_by = loop.forge(binding.forge).mention, _asked_by(loop, binding, job)
        text = agent_answer.cap_text(binding, job, capped, mention, asked_by)
        said = places.tell(where, _message(Said.QUESTION, text, binding, job))
    else:
        text = agent_answer.question_text(binding, job, question, _asked_by(loop, binding, job))
        said = places.tell(where, _message(Said.QUESTION, text, binding, job))
    _park(loop, binding, question.text, CAPPED if capped is not None else ASKED)
    return said


def _asked_by(loop: ForgeLoop, binding: Binding, job: JobRecord) -> list[str]:
    """The people a question of ``job``'s turn is put to: the trusted people (never a bot, never an
    untrusted actor whose words were only quoted) whose events made the turn, else the one who started
    the thread (a CI failure's turn)."""
    store = forge_store(loop.store)
    for records in (
        store.events_of_job(job.id),
        store.forge_events(binding.forge, binding.repo, binding.number, limit=1, pr=binding.on_pr),
    ):
        people = [
            event.actor.login
            for event in (ForgeEvent.from_json(r.event) for r in records if r.reason != "quoted")
            if not event.actor.bot
        ]
        if people:
            return people
    return []


def _park(loop: ForgeLoop, binding: Binding, question: str, note: str = ASKED) -> None:
    """The thread waits for a person's answer: as a thread that needs a human, which a trusted comment
    resumes (:func:`baton.forge.turn.dispatch.handle`) with the question and the answer as its prompt (at a
    spending cap: the capped turn's instruction, :mod:`baton.forge.turn.budget`)."""
    binding.status, binding.note = BindingStatus.NEEDS_HUMAN, note
    loop.store.audit("forge.needs_input", binding.conversation, "baton", {"question": question[:500]})


def _events(loop: ForgeLoop, job: JobRecord) -> list[ForgeEvent]:
    return [ForgeEvent.from_json(r.event) for r in forge_store(loop.store).events_of_job(job.id)]


def _message(said: Said, text: str, binding: Binding, job: JobRecord, outcome: str = "") -> Message:
    return Message(said, text, binding.conversation, job.id, outcome)


def _status_body(
    loop: ForgeLoop, binding: Binding, job: JobRecord, result: dict[str, Any], with_answer: bool
) -> str:
    """The turn's status as its status comment says it (``with_answer``: and the agent's answer)."""
    text = status_text(binding, job, result, loop.settings.public_url, loop.forge(binding.forge).kind)
    if with_answer and (lines := agent_answer.section(job)):
        text += "\n".join(lines) + "\n"
    return text


def _status_comment(loop: ForgeLoop, binding: Binding, text: str) -> str:
    """The thread's one status comment posted, or edited to ``text``: what happened."""
    client = loop.client(binding.forge)
    try:
        if binding.status_comment is not None:
            client.edit_comment(
                binding.repo, binding.status_comment, text, number=binding.number, pr=binding.on_pr
            )
            return "edited"
        binding.status_comment = client.post_comment(binding.repo, binding.number, text, pr=binding.on_pr)
        return "posted"
    except ForgeError as exc:
        log.warning("forge %s: status comment failed: %s", binding.conversation, exc)
        return f"failed: {exc}"


def status_text(
    binding: Binding,
    job: JobRecord,
    result: dict[str, Any],
    public_url: str = "",
    kind: str = ForgeKind.GITHUB,
) -> str:
    """The one status comment of a thread, as it reads after this turn (its PR named as ``kind``'s
    forge writes it: GitLab's ``!N``)."""
    cost = (job.result or {}).get("cost_usd")
    lines = [
        f"{STATUS_HEAD}`{binding.agent}` on thread `{binding.thread}`",
        "",
        f"- last turn: `{job.id}` — **{result.get('outcome')}**"
        + (" — **the merge conflict is still open**" if result.get("conflict") else ""),
    ]
    lines += _pushed(result)
    lines += _waiting(job, result) + _went_on(job)
    if result.get("pr"):
        lines.append(f"- opened {facts(kind).ref(int(result['pr']), pr=True)}")
    if isinstance(cost, (int, float)):
        lines.append(f"- cost: ${cost:.4f}")
    if (setup := setup_failed.status_lines(job.error)) is not None:
        lines += setup
    elif job.error:
        lines.append(f"- error: {job.error[:500]}")
    if public_url:
        lines.append(f"- [the run on the dashboard]({public_url.rstrip('/')}/runs/{job.id})")
    lines += refusal.folded(str(result.get("git") or ""))  # a refused push: git's own lines, whole
    return "\n".join(lines) + "\n"


def _pushed(result: dict[str, Any]) -> list[str]:
    """The status comment's lines saying what this turn pushed, or why nothing."""
    if result.get("pushed"):
        head, branch = str(result.get("head"))[:12], result.get("branch")
        lines = [f"- pushed `{head}` to `{branch}` {result.get('changes', '')}"]
        return lines + ([f"- {result['scrubbed']}"] if result.get("scrubbed") else [])
    if result.get("refused"):
        return [f"- the push was refused: {result['refused'][:500]}"]
    if result.get("conflict"):
        return [
            f"- conflict markers are left in {result['conflict']}."
            " Nothing was committed or pushed; the work stays in baton's worktree, and the next turn is"
            " told to resolve them first"
        ]
    return [f"- {result['why']}"] if result.get("why") else []


def _went_on(job: JobRecord) -> list[str]:
    """The status comment's line saying the turn's setup or maintenance failed and the agent went on
    in the thread's last good environment, told why (:data:`baton.runner.setup.WENT_ON`)."""
    note = str((job.result or {}).get("note") or "")
    if WENT_ON not in note:
        return []
    return [
        "- **the repository's setup failed before this turn**: the agent went on in the thread's last good"
        " environment and was told what failed (the run's note has the command and how it ended)"
    ]


def _waiting(job: JobRecord, result: dict[str, Any]) -> list[str]:
    """The status comment's line saying the thread waits for a person, and why (if it does)."""
    if result.get("asked"):
        return [f"- {CAPPED if agent_answer.cap_of(job) else ASKED}: its question is below"]
    return [f"- {result['stopped']}"] if result.get("stopped") else []
