"""``baton submit``: queue one instruction on one key for the workers (``baton worker``) and print its
run id; ``--follow`` then streams its agent events until the outcome, as the API's event stream does
(with ``--json``, as JSON Lines, line by line the same), and says once, after ``BATON_QUEUED_NOTICE``
seconds, that no worker has taken it yet. The run is stored ``queued`` (validated like ``baton run``,
nothing written when it is refused) before it is sent, and ended ``failed`` when the broker does not
take it. It needs a broker (``BATON_BROKER_URL``): without one it refuses rather than running here.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from baton.cli.common import cli_store, emit_json, err, esc, out, repository_egress
from baton.cli.options import request_command
from baton.errors import BadInput, BatonError, exit_code_of
from baton.models import JobStatus, Outcome
from baton.runner.request import RunRequest

if TYPE_CHECKING:
    from baton.models import JobRecord
    from baton.settings import Settings
    from baton.store import Store


@request_command(queued=True)
def submit_cmd(
    request: RunRequest,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="stream its events until it ends; exit as `baton run` does")
    ] = False,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help='print JSON: {"run_id", "status"}; with --follow, JSON Lines: '
            '{"seq", "run_id", "attempt", "attempt_id", "event"} per agent event, '
            'then {"outcome": the run as it ended}',
        ),
    ] = False,
) -> None:
    """Queue one instruction on one key for `baton worker`s and print its run id (runs of a key start in
    submission order). Needs BATON_BROKER_URL; `baton run` runs here instead."""
    with cli_store() as (settings, store):
        if not settings.broker_url:
            # refused rather than run here: a job stored with nobody to run it would wait silently, and
            # running it here and now is what `baton run` does
            raise BadInput(
                "baton submit queues runs for `baton worker`s and needs a broker: set BATON_BROKER_URL "
                "(redis://HOST:6379/0 or amqp://USER:PASSWORD@HOST:5672//), "
                "or use `baton run`, which runs here"
            )
        job = _submit(settings, store, request)
        if not follow:
            _print_queued(job, as_json)
            return
        err().print(esc(f"queued run {job.id}"), highlight=False)
        final = _follow(settings, store, job, as_json)
    raise typer.Exit(exit_code_of(final.outcome))


def _submit(settings: Settings, store: Store, request: RunRequest) -> JobRecord:
    # lazy: cold CLI
    from baton.fleet import jobs
    from baton.fleet.celery import CeleryExecutor
    from baton.sessions.manage import local_actor

    repository_egress(settings, request)
    executor = CeleryExecutor(settings, store)  # the extra and the URL are checked before writing
    try:
        job = jobs.submit(store, settings, request, local_actor())
        try:
            executor.submit(job.id)
        except BatonError as exc:
            jobs.finish(store, settings, job.id, Outcome.FAILED.value, error=str(exc))
            raise
    finally:
        executor.stop()
    return job


def _print_queued(job: JobRecord, as_json: bool) -> None:
    if as_json:
        emit_json({"run_id": job.id, "status": job.status.value})
    else:
        out().print(job.id, highlight=False, markup=False)


def _follow(settings: Settings, store: Store, job: JobRecord, as_json: bool) -> JobRecord:
    """Print the job's events until its end marker; the job as it ended. Ctrl-C stops following only:
    the run goes on (cancel it through the API). With ``as_json``, JSON Lines, printed as they come:
    ``{"seq", "run_id", "attempt", "attempt_id", "event"}`` per agent event (the API's ``event: agent``
    data: the run's id, the attempt's number and id, the agent's own event), then one
    ``{"outcome": {...}}`` (its ``event: outcome``): the run as it ended."""
    # lazy: cold CLI
    import asyncio  # here: `baton --help` imports this module, and asyncio costs it ~20 ms

    try:
        asyncio.run(_stream(settings, store, job, as_json))
    except KeyboardInterrupt:
        err().print(esc(f"stopped following; run {job.id} goes on"), highlight=False)
        raise typer.Exit(130) from None
    final = store.get_job(job.id) or job
    if as_json:
        sys.stdout.write(json.dumps({"outcome": final.to_json()}, default=str) + "\n")
    else:
        _print_outcome(final)
    return final


async def _stream(settings: Settings, store: Store, job: JobRecord, as_json: bool) -> None:
    # lazy: cold CLI
    import asyncio

    from baton.agents.events import LogRenderer
    from baton.cli.logs import print_entry
    from baton.fleet import jobs

    renderer = LogRenderer(job.agent)
    notice = asyncio.create_task(_notice_if_unclaimed(settings, store, job.id))
    try:
        async for item in jobs.read_events(store, settings, job.id):
            if item.end is not None:
                break
            if as_json:  # one line per event, as the API's `event: agent` data
                sys.stdout.write(json.dumps({"seq": item.seq, **item.data}, ensure_ascii=False) + "\n")
                sys.stdout.flush()
                continue
            for entry in renderer.feed([json.dumps(item.data.get("event", {}))]):
                print_entry(entry)
    finally:
        notice.cancel()
    if not as_json:
        for entry in renderer.flush():
            print_entry(entry)


async def _notice_if_unclaimed(settings: Settings, store: Store, job_id: str) -> None:
    """Once, after ``queued_notice`` seconds (0: never): say so on stderr if no worker has taken the
    run yet (which queue and store it waits for, which workers were seen); the wait goes on."""
    # lazy: cold CLI
    import asyncio

    from baton.fleet.presence import unclaimed_notice

    if not settings.queued_notice:
        return
    await asyncio.sleep(settings.queued_notice)
    job = store.get_job(job_id)
    if job is not None and job.status == JobStatus.QUEUED:
        text = unclaimed_notice(settings, store, job_id, settings.queued_notice)
        err().print(f"warning: {text}", highlight=False, markup=False)


def _print_outcome(job: JobRecord) -> None:
    result = job.result or {}
    # a spent usage quota is a state, not a failure: the thread waits for the reset
    colors = {Outcome.SUCCEEDED.value: "green", Outcome.RATE_LIMITED.value: "blue"}
    color = colors.get(job.outcome or "", "red")
    key = f"{job.agent}:{job.repo}:{job.thread}"
    out().print(
        f"[{color}]{esc(job.outcome)}[/{color}]  run {esc(job.id)}  {esc(key)}  "
        f"session={esc(result.get('session_id'))}",
        highlight=False,
    )
    if job.error:
        err().print(f"error: {job.error}", highlight=False, markup=False)
