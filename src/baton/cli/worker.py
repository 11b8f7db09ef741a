"""``baton worker``: a Celery worker that runs the jobs ``baton serve`` and ``baton submit`` queue on
the broker (``BATON_BROKER_URL``). Needs the ``celery`` extra (the exact install command otherwise).
Its log, Celery's included, is configured by :mod:`baton.cli.logsetup` (``BATON_LOG_LEVEL``, which
``--loglevel`` overrides, and ``BATON_LOG_FORMAT``)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from baton.files import make_private_dir
from baton.settings import load_settings


class Pool(StrEnum):
    PREFORK = "prefork"  # a process per slot (Celery's default): a run cannot take the others down
    THREADS = "threads"  # a thread per slot in one process: lighter; runs are agent processes anyway


def worker_cmd(
    concurrency: Annotated[
        int | None,
        typer.Option("--concurrency", "-c", min=1, help="runs at once (default: setting concurrency)"),
    ] = None,
    queues: Annotated[
        str | None,
        typer.Option(
            "--queues",
            "-Q",
            help="comma-separated queues to take runs from (default: $BATON_QUEUE, else the store's own "
            "queue baton.<store id>)",
        ),
    ] = None,
    pool: Annotated[
        Pool, typer.Option(help="prefork: a process per slot; threads: one process")
    ] = Pool.PREFORK,
    hostname: Annotated[
        str | None, typer.Option("--hostname", "-n", help="the worker's node name (default baton-PID@HOST)")
    ] = None,
    loglevel: Annotated[
        str | None, typer.Option(help="DEBUG, INFO, WARNING, ERROR (default: setting log_level, INFO)")
    ] = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="start nothing: exit 0 if the worker of this BATON_HOME is ready (its store and broker "
            "answer), else 1 with the reason (an exec readiness probe)",
        ),
    ] = False,
    live: Annotated[
        bool,
        typer.Option("--live", help="with --check: only that the worker is running, ready or not (liveness)"),
    ] = False,
) -> None:
    """Run the jobs queued on the broker (BATON_BROKER_URL): runs of one key in submission order, never
    two at once, on whichever worker is free. SIGTERM drains: no new job, running turns finish, and
    past BATON_DRAIN_TIMEOUT (240 s) they are stopped and handed back for another worker to resume; a
    killed worker's jobs are taken over by the others. Exits non-zero when it stops on an error."""
    if check or live:
        _check(live)
        return
    # lazy: cold CLI
    from baton.cli.logsetup import announce, setup_logging
    from baton.fleet.celery import make_app, run_worker

    settings = load_settings({"log_level": loglevel})
    make_app(settings)  # the broker URL and the extra are checked before anything starts
    setup_logging(settings.log_level, settings.log_format)  # Celery's loggers go through it too
    make_private_dir(settings.home)  # 0700 if this is what makes it
    names = [q.strip() for q in (queues or "").split(",") if q.strip()] or None
    announce(f"baton worker: home {settings.home}", settings.log_format)
    # lazy: cold CLI
    from baton.forge.kinds.configured import load_forges
    from baton.forge.writes.publish import install_per_process

    forges = load_forges(settings.home)  # a bad forge table fails here, named, before the worker starts
    if forges.forges:
        install_per_process(settings, forges)  # the forge turns this worker runs are published by it
    status = run_worker(settings, concurrency, names, pool.value, hostname, settings.log_level.upper())
    if status:  # stopped on an error: a supervisor that restarts on failure must see one
        raise typer.Exit(status)


def _check(live: bool) -> None:
    """The probe: reads the file the worker keeps fresh (:mod:`baton.fleet.health`), nothing else."""
    # lazy: cold CLI
    from baton.fleet.health import verdict

    found = verdict(load_settings(), live=live)
    typer.echo(found.message, err=not found.ok)
    if not found.ok:
        raise typer.Exit(1)
