"""Plans: an ordered list of tasks run as successive turns of ONE conversation (one key, thread
``plan-<id>``), so each task knows what the earlier ones did. Task 1 starts the conversation (full prompt
with the plan's context); each later task is a resumed turn carrying only its own prompt — the runner's
decision matrix does this on its own, including hydration and recovery. Progress is stored per task
after every change, so running the plan again continues at its first unfinished task, in the same
conversation (:func:`run_plan`; what people see of it: docs/cli.md, Plans).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from baton.agents import AGENTS
from baton.errors import BadInput, BatonError
from baton.keys import make_key
from baton.models import Fence, Outcome, RunRecord
from baton.plans.file import Plan, Task
from baton.plans.records import PlanRecord, PlanStatus, TaskState, TaskStatus
from baton.plans.tables import plan_store
from baton.runner.request import RunRequest, RunResult
from baton.runner.run import run
from baton.settings import Settings
from baton.store.base import Store
from baton.store.leases import held, key_lease

Progress = Callable[[PlanRecord, str | None], None]  # the record, and the id of the task now running


@dataclass
class PlanResult:
    record: PlanRecord

    @property
    def ok(self) -> bool:
        return self.record.status == PlanStatus.SUCCEEDED


def _reconcile(plan: Plan, record: PlanRecord | None, from_task: str | None) -> list[TaskState]:
    """The tasks' states for this run of the plan file: stored progress matched by task id."""
    if from_task is not None and from_task not in {t.id for t in plan.tasks}:
        raise BadInput(
            f"--from {from_task!r}: the plan has no such task ({', '.join(t.id for t in plan.tasks)})"
        )
    stored = {t.id: t for t in record.tasks} if record else {}
    states: list[TaskState] = []
    changed: list[str] = []
    reached = from_task is None
    for task in plan.tasks:
        reached = reached or task.id == from_task
        state = stored.get(task.id) or TaskState(task.id, task.prompt_sha)
        if from_task is not None and reached:
            state = TaskState(task.id, task.prompt_sha)  # re-run from here on
        elif state.status == TaskStatus.SUCCEEDED and state.prompt_sha != task.prompt_sha:
            changed.append(task.id)
        elif from_task is not None and state.status != TaskStatus.SUCCEEDED:
            state.status = TaskStatus.SKIPPED
        if state.status != TaskStatus.SUCCEEDED:
            state.prompt_sha = task.prompt_sha
        states.append(state)
    if changed:
        raise BadInput(
            f"the prompt of finished task(s) {', '.join(changed)} changed in the plan file; "
            f"re-run from there with --from {changed[0]}, or restore the old prompt"
        )
    return states


def run_plan(
    plan: Plan,
    settings: Settings,
    store: Store,
    from_task: str | None = None,
    on_progress: Progress | None = None,
    wait_quota: Callable[[str], None] | None = None,
) -> PlanResult:
    """Run the plan's unfinished tasks in order; returns the stored record at the end. ``wait_quota``:
    a task that meets a spent usage quota waits for its reset and goes on, told why and until when
    (None: the task ends ``rate_limited`` and the plan stops, to be re-run after the reset).

    A task left ``running`` by a killed runner is re-run, and the runner gives it the "you were
    interrupted" note. A task whose run raised before its turn ended (a remote that cannot be reached)
    is stored ``failed`` with the reason, and so is the plan. A finished task whose prompt changed in
    the file is reported, and re-run only when asked (``from_task``). A plan is held by one runner at a
    time: its own lease (``plan:<id>``), kept alive by :func:`baton.store.leases.held` for as long as
    the plan runs, on top of the key's lease each task's run takes."""
    key = make_key(plan.agent, plan.repo, plan.thread, AGENTS)
    record = plan_store(store).get_plan(plan.id)
    if record is not None and (record.agent, record.repo) != (key.agent, key.repo.slug):
        raise BadInput(
            f"plan {plan.id!r} already exists for {record.agent} on {record.repo}; give this plan another id"
        )
    states = _reconcile(plan, record, from_task)
    now = time.time()
    record = record or PlanRecord(
        plan.id, key.agent, key.repo.slug, key.thread, plan.file, PlanStatus.PENDING, [], created_at=now
    )
    record.tasks, record.file = states, plan.file
    lease = key_lease(settings, store, f"plan:{plan.id}")
    with held(lease, 0, settings.heartbeat):
        fence = Fence(lease.key, lease.fence)  # a runner that lost the plan's lease writes nothing more
        record.status = PlanStatus.RUNNING
        _save(store, record, on_progress, None, fence)
        tasks = {t.id: t for t in plan.tasks}
        for state in record.tasks:
            if state.status in (TaskStatus.SUCCEEDED, TaskStatus.SKIPPED):
                continue
            if record.status in (PlanStatus.FAILED, PlanStatus.WAITING):
                break
            _run_task(plan, tasks[state.id], state, record, settings, store, on_progress, fence, wait_quota)
        record.status = _status(record)
        _save(store, record, on_progress, None, fence)
        return PlanResult(record)


def _run_task(
    plan: Plan,
    task: Task,
    state: TaskState,
    record: PlanRecord,
    settings: Settings,
    store: Store,
    on_progress: Progress | None,
    fence: Fence,
    wait_quota: Callable[[str], None] | None,
) -> None:
    state.status, state.started_at, state.ended_at = TaskStatus.RUNNING, time.time(), None
    state.run_id = state.outcome = state.result = state.error = None
    _save(store, record, on_progress, task.id, fence)

    def started(run_record: RunRecord) -> None:
        state.run_id = run_record.run_id
        _save(store, record, on_progress, task.id, fence)

    try:
        result = _run(plan, task, settings, store, started, wait_quota)
    except BatonError as exc:  # refused or unreachable before the turn ended: the task did not run
        state.status, state.error, state.ended_at = TaskStatus.FAILED, str(exc), time.time()
        record.status = PlanStatus.FAILED  # not left "running": nothing runs it now
        _save(store, record, on_progress, None, fence)
        raise
    last = result.run
    state.run_id, state.outcome, state.result, state.error = (
        result.run_id,
        last.outcome.value,
        last.result,
        last.error,
    )
    state.usage, state.ended_at = last.usage, time.time()
    state.status = STATUS_OF.get(last.outcome, TaskStatus.FAILED)
    if state.status == TaskStatus.WAITING:  # the plan parks with it: run again once it is answered
        record.status = PlanStatus.WAITING
    if result.session.agent == plan.agent:  # (a turn its on_limit fallback carried is that agent's)
        record.session_id = result.session.agent_session_id  # updated whenever the agent reports a new one
    if state.status == TaskStatus.FAILED and task.on_failure != "continue":
        record.status = PlanStatus.FAILED
    _save(store, record, on_progress, None, fence)


# how a task's run ending becomes its status (any other ending: failed)
STATUS_OF = {Outcome.SUCCEEDED: TaskStatus.SUCCEEDED, Outcome.NEEDS_INPUT: TaskStatus.WAITING}


def _status(record: PlanRecord) -> PlanStatus:
    """The plan's status after a run of it: waiting on a person, failed (or left unfinished), or done."""
    statuses = {t.status for t in record.tasks}
    if TaskStatus.WAITING in statuses:
        return PlanStatus.WAITING
    if statuses & {TaskStatus.FAILED, TaskStatus.PENDING, TaskStatus.RUNNING}:
        return PlanStatus.FAILED
    return PlanStatus.SUCCEEDED


def _run(
    plan: Plan,
    task: Task,
    settings: Settings,
    store: Store,
    started: Callable[[RunRecord], None],
    wait_quota: Callable[[str], None] | None,
) -> RunResult:
    return run(
        RunRequest(
            agent=plan.agent,
            repo=plan.repo,
            thread=plan.thread,
            prompt=task.prompt,
            branch=plan.branch,
            base=plan.base,
            context=plan.context,
            on_limit=plan.on_limit,
            timeout=task.timeout,
            retries=task.retries,
            access=task.access,
            memory=task.memory,
            pids=task.pids,
            cpu=task.cpu,
            wait=settings.lease_ttl,
            **plan.caps.as_fields(),
            on_start=started,
            wait_quota=wait_quota is not None,
            on_wait=wait_quota,
        ),
        settings=settings,
        store=store,
    )


def _save(
    store: Store, record: PlanRecord, on_progress: Progress | None, current: str | None, fence: Fence
) -> None:
    record.updated_at = time.time()
    plan_store(store).save_plan(record, fence=fence)
    if on_progress is not None:
        on_progress(record, current)
