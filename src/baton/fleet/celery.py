"""The Celery executor (the ``celery`` extra): runs go through a broker (``BATON_BROKER_URL``,
``redis://`` or ``amqp://``) to ``baton worker`` processes on any machine that shares the store. A
message is plain data, the job id and its store's tag (task ``baton.run_job``, JSON), sent to the
store's own queue (:mod:`baton.fleet.routing`) once the job is stored ``queued``; what a worker does
with it, and why doing it twice is harmless, is :mod:`baton.fleet.queued`. The API's side,
:class:`CeleryExecutor`, only sends messages; the worker's, :func:`run_worker`, sets Celery up for long
runs (:func:`make_app`) and adds the janitor (:class:`_Janitor`), the health monitor
(:mod:`baton.fleet.health`), the drain on SIGTERM (:mod:`baton.fleet.drain`) and, for Redis, a guarded
transport (:mod:`baton.fleet.redis_transport`). What a fleet's operator sees of it: docs/fleet.md.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from baton import tracing
from baton.errors import BadInput, BatonError
from baton.fleet import drain, queued
from baton.fleet.health import BrokerCheck, Monitor
from baton.fleet.routing import StoreTag, bounce_delay, job_queue, misrouted, queue_for, store_tag
from baton.housekeeping.sweep import sweep_periodically
from baton.install import extra_hint
from baton.models import JobRecord, WorkerRecord
from baton.settings import Settings, load_settings
from baton.store import Store, store_for
from baton.store.duties import Duty
from baton.store.engine import after_fork
from baton.store.redis import safe_url

if TYPE_CHECKING:
    from celery import Celery  # type: ignore[import-untyped]

log = logging.getLogger("baton.worker")

TASK = "baton.run_job"
SCHEMES = ("redis", "rediss", "amqp", "amqps", "pyamqp")


@dataclass(frozen=True)
class BrokerOptions:
    url: str
    visibility_timeout: float

    @property
    def redis(self) -> bool:
        return urlsplit(self.url).scheme in ("redis", "rediss")


def broker_options(settings: Settings) -> BrokerOptions:
    """The broker's URL (checked) and Redis's visibility timeout (``BATON_VISIBILITY_TIMEOUT``: a
    message unacknowledged this long is delivered again). The queue depends on the store:
    :func:`baton.fleet.routing.queue_for`."""
    url = settings.broker_url
    if not url:
        raise BadInput("no broker is configured: set BATON_BROKER_URL to a redis:// or amqp:// URL")
    if urlsplit(url).scheme not in SCHEMES:
        raise BadInput(f"setting 'broker_url' must be a redis:// or amqp:// URL, not {safe_url(url)!r}")
    if not settings.visibility_timeout > 0:
        raise BadInput("setting 'visibility_timeout' must be positive (seconds)")
    return BrokerOptions(url, settings.visibility_timeout)


def make_app(settings: Settings) -> Celery:
    """A Celery app for the configured broker; BadInput naming the install command without the extra."""
    try:
        # lazy: the celery extra
        from celery import Celery
    except ImportError:
        hint = extra_hint("celery")
        raise BadInput(f"running through a broker needs the celery extra: {hint}") from None
    options = broker_options(settings)
    app = Celery("baton", broker=options.url, set_as_current=False)
    # Long runs are safe: a message is acknowledged when its run has ended, and a worker killed mid-run
    # gives it back (acks_late, reject_on_worker_lost); a worker holds no more messages than it has
    # slots (prefetch 1); for Redis the visibility timeout outlasts the longest run (_transport_options).
    # RabbitMQ closes a channel whose delivery stays unacknowledged past its consumer_timeout (30 min by
    # default): the server's configuration must raise it above the longest run; a run cut that way is
    # still finished by its worker, and the copy redelivered meanwhile finds the job held and is dropped.
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,  # the process's own handlers stay (see run_worker)
        worker_cancel_long_running_tasks_on_connection_loss=False,  # a run outlives a broker blip
        broker_connection_retry_on_startup=True,
        broker_transport_options=_transport_options(options),
    )
    if options.redis:  # kombu's, guarded: a broker restart mid-run no longer ends the worker
        # lazy: the redis extra
        from baton.fleet.redis_transport import TRANSPORT

        app.conf.broker_transport = TRANSPORT
    return app


def _transport_options(options: BrokerOptions) -> dict[str, Any]:
    if not options.redis:
        return {}
    every = min(10.0, max(1.0, options.visibility_timeout / 10))
    # kombu scans for expired unacknowledged messages every interval x throttle seconds (100 s by
    # default); every `every` seconds instead, so a dead worker's message comes back soon after its timeout
    return {
        "visibility_timeout": options.visibility_timeout,
        "unacked_restore_interval": every,
        "unacked_restore_throttle": 1,
    }


def enqueue(
    app: Celery, job_id: str, queue: str, tag: StoreTag | None, countdown: float = 0.0, bounces: int = 0
) -> None:
    """Send the message for ``job_id`` of the store ``tag`` names (None: unknown, a bounced message of
    an older baton); ``bounces``: how often workers of other stores sent it back. BatonError when the
    broker cannot take it."""
    kwargs: dict[str, Any] = {"bounces": bounces} if bounces else {}
    if tag is not None:
        kwargs["store"] = tag.to_json()
    try:
        app.send_task(TASK, args=[job_id], kwargs=kwargs, queue=queue, countdown=countdown or None)
    except Exception as exc:  # kombu's OperationalError, a refused connection, ...
        broker = safe_url(str(app.conf.broker_url))
        raise BatonError(f"the broker at {broker} did not take run {job_id}: {exc}") from exc


class CeleryExecutor:
    """The API's side: :class:`baton.fleet.executor.Executor` over a broker, chosen by ``baton serve``
    when a broker is set and used by ``baton submit``. It only sends messages and sets cancel flags (a
    cancel never revokes a task: the worker running the job watches the store's flag, and Redis's with
    ``BATON_REDIS_URL``); it needs no task code."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings, self.store = settings, store
        self.options = broker_options(settings)
        self.app = make_app(settings)
        self.tag = store_tag(settings, store)
        self.queue = queue_for(settings, self.tag)

    def start(self) -> None:
        log.info("runs go to the broker at %s, queue %s", safe_url(self.options.url), self.queue)

    def submit(self, job_id: str) -> None:
        enqueue(self.app, job_id, self.queue, self.tag)

    def cancel(self, job_id: str) -> bool:
        return queued.cancel(self.settings, self.store, job_id, self._kick)

    def stop(self) -> None:
        self.app.close()

    def _kick(self, job_id: str, countdown: float) -> None:
        enqueue(self.app, job_id, self.queue, self.tag, countdown)


# -- the worker side --------------------------------------------------------------------------------


@dataclass
class _Process:
    """What the task needs in this process: opened again in each forked pool process."""

    pid: int
    settings: Settings
    store: Store
    tag: StoreTag


_settings: Settings | None = None
_process: _Process | None = None


def _here() -> _Process:
    global _process
    if _process is None or _process.pid != os.getpid():
        settings = _settings
        if settings is None:
            settings = load_settings()
        tracing.configure(settings)  # in each worker process: BatchSpanProcessor's thread is its own
        store = store_for(settings)
        _process = _Process(os.getpid(), settings, store, store_tag(settings, store))
    return _process


def run_job(task: Any, job_id: str, store: Any = None, bounces: int = 0) -> str:
    """The task: handle one message (``store``: the sender's :class:`StoreTag`); a store that cannot be
    reached sends the message again later, and so does a job this worker's store does not have."""
    here = _here()
    info = getattr(task.request, "delivery_info", None) or {}
    queue = str(info.get("routing_key") or queue_for(here.settings, here.tag))

    def kick(target: str, countdown: float) -> None:
        enqueue(task.app, target, queue, here.tag, countdown)

    try:
        what = queued.handle(job_id, here.settings, here.store, kick)
    except BatonError as exc:
        log.error("job %s: %s; trying again in %.0f s", job_id, exc, here.settings.lease_ttl)
        kick(job_id, here.settings.lease_ttl)
        return "retry"
    if what == queued.UNKNOWN:
        return _send_back(task, job_id, queue, here.tag, StoreTag.from_json(store), bounces)
    log.info("job %s: %s%s", job_id, what, " (redelivered)" if info.get("redelivered") else "")
    return what


def _send_back(
    task: Any, job_id: str, queue: str, ours: StoreTag, theirs: StoreTag | None, bounces: int
) -> str:
    """A job this worker's store does not have: never acknowledged without a copy back on the queue,
    for a worker of its own store (see :mod:`baton.fleet.routing`)."""
    bounces = max(0, int(bounces)) if isinstance(bounces, int) else 0
    delay = bounce_delay(bounces)
    log.error("%s", misrouted(job_id, ours, theirs, queue, delay))
    try:
        enqueue(task.app, job_id, queue, theirs, delay, bounces + 1)
    except BatonError as exc:
        # lazy: the celery extra
        from celery.exceptions import Reject  # type: ignore[import-untyped]

        log.error("job %s: %s; giving the message back to the broker", job_id, exc)
        raise Reject(str(exc), requeue=True) from exc
    return "sent back"


def _after_fork(**_: Any) -> None:
    """A forked pool process must not use its parent's pooled database connections."""
    global _process

    after_fork()
    _process = None


class _Janitor:
    """The worker's heartbeat into the store's ``workers`` every ``heartbeat`` seconds (``baton
    doctor`` lists the workers seen) and
    :func:`baton.fleet.queued.heal` every ``lease_ttl`` seconds in the one worker holding the duty
    ``janitor`` (:mod:`baton.store.duties`), in the worker's main process,
    and the sweeper of this worker's own ``BATON_HOME`` (its worktrees, transcripts and quota, which
    no other machine sees) every ``sweep_interval``, as ``baton serve`` sweeps its own."""

    def __init__(self, app: Celery, settings: Settings, queues: list[str], name: str, tag: StoreTag) -> None:
        self.app, self.settings, self.queues, self.tag = app, settings, queues, tag
        self.name = name  # the worker's node name (``baton-<pid>@<host>``): its row in the store's workers
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="baton-janitor", daemon=True)
        self.sweeper = threading.Thread(
            target=sweep_periodically,
            args=(settings, self.stop, name, ",".join(queues)),
            name="baton-sweeper",
            daemon=True,
        )
        self.kicked: dict[str, float] = {}

    def start(self, **_: Any) -> None:
        self.thread.start()
        self.sweeper.start()

    def halt(self, **_: Any) -> None:
        self.stop.set()

    def close(self, timeout: float = 2.0) -> None:
        """The worker stopped (drained, or on an error): end the threads, the janitor's duty released."""
        self.stop.set()
        for thread in (self.thread, self.sweeper):
            if thread.is_alive():
                thread.join(timeout)

    def _loop(self) -> None:
        store = store_for(self.settings)
        duty = Duty(self.settings, "janitor", store)  # one worker of the fleet heals at a time
        started = healed = time.time()
        tick = max(0.5, min(self.settings.heartbeat, self.settings.lease_ttl))
        try:
            self._beat(store, started)
            while not self.stop.wait(tick):
                self._beat(store, started)
                if time.time() - healed >= self.settings.lease_ttl and duty.mine():
                    healed = time.time()
                    self._heal(store)
        finally:
            duty.release()
            store.close()

    def _beat(self, store: Store, started: float) -> None:
        """This worker's row in the store's ``workers``: who, where, which queues, seen now."""
        queues = ",".join(self.queues)
        record = WorkerRecord(self.name, socket.gethostname(), os.getpid(), queues, started, time.time())
        try:
            store.worker_seen(record)
        except BatonError as exc:
            log.warning("janitor: heartbeat: %s", exc)

    def _heal(self, store: Store) -> None:
        try:
            sent = queued.heal(self.settings, store, self._kick, self.kicked)
        except BatonError as exc:
            log.warning("janitor: %s", exc)
            return
        if sent:
            log.warning("janitor: sent %d lost job(s) again: %s", len(sent), sent)

    def _kick(self, job: JobRecord, countdown: float) -> None:
        """To the job's own queue: this worker's may be another credential's."""
        enqueue(self.app, job.id, job_queue(job.queue, self.tag), self.tag, countdown)


def _drain(janitor: _Janitor, settings: Settings) -> None:
    """The worker was told to stop: the janitor stops, the running turns get their deadline."""
    janitor.halt()
    drain.begin(settings)


def _stopping() -> bool:
    """Whether Celery's SIGTERM/SIGINT handler asked the worker to stop (its own flags, read from the
    health monitor's thread: nothing of baton runs in the signal handler, where a write could wait
    on a lock the interrupted code holds)."""
    # lazy: the celery extra
    from celery.worker import state  # type: ignore[import-untyped]

    # Celery's own test (state.maybe_shutdown): a flag is set when it is neither None nor False; a
    # warm shutdown's is 0 (EX_OK), which `in (None, False)` would take for False
    return any(flag is not None and flag is not False for flag in (state.should_stop, state.should_terminate))


def _logging_as_configured(app: Celery) -> Callable[..., None]:
    """Celery's ``setup_logging`` receiver: with one, Celery installs no handler or format of its own,
    so its loggers propagate to the process's (``baton worker`` configures them first:
    :mod:`baton.cli.logsetup`). What Celery would still have done is done here: its pool's logger
    (billiard's, ERROR and up) joins them, and stray writes to stdout/stderr become log lines."""

    def receiver(loglevel: int | str | None = None, **_: Any) -> None:
        # lazy: the celery extra
        from celery.utils.log import get_multiprocessing_logger  # type: ignore[import-untyped]

        root = logging.getLogger()
        if not root.handlers:  # started without `baton worker`, which configures the log first
            logging.basicConfig(level=loglevel or logging.INFO)
        pool = get_multiprocessing_logger()
        if pool is not None:
            pool.setLevel(logging.ERROR)
            pool.propagate = True
        if app.conf.worker_redirect_stdouts:
            app.log.redirect_stdouts(app.conf.worker_redirect_stdouts_level)

    return receiver


def run_worker(
    settings: Settings,
    concurrency: int | None = None,
    queues: list[str] | None = None,
    pool: str = "prefork",
    hostname: str | None = None,
    loglevel: str = "INFO",
) -> int:
    """Run a Celery worker for baton's runs in this process; returns its exit status when it stops:
    0 after a warm shutdown (SIGTERM, SIGINT), non-zero when it stopped on an error, so a supervisor
    that restarts failed workers (``Restart=on-failure``, a pod's restart policy) restarts it.
    Celery drops that status (``worker_main`` returns None whatever happened): it is read from the
    worker itself."""
    global _settings
    # lazy: the celery extra
    from celery import signals
    from celery.utils.nodenames import host_format  # type: ignore[import-untyped]

    app = make_app(settings)
    options = broker_options(settings)
    app.task(name=TASK, bind=True)(run_job)
    _settings = settings
    tracing.configure(settings)  # before the pool forks: each child keeps the provider (the SDK re-arms it)
    store = store_for(settings)
    try:
        tag = store_tag(settings, store)
    finally:
        store.close()
    queues = queues or [queue_for(settings, tag)]
    name = host_format(hostname or f"baton-{os.getpid()}@%h")
    janitor = _Janitor(app, settings, queues, name, tag)
    monitor = Monitor(settings, BrokerCheck(app, queues[0]), _stopping, lambda: _drain(janitor, settings))
    signals.setup_logging.connect(_logging_as_configured(app), weak=False)
    signals.worker_process_init.connect(_after_fork, weak=False)
    signals.worker_ready.connect(janitor.start, weak=False)
    signals.worker_ready.connect(monitor.start, weak=False)  # `baton worker --check` reads what it writes
    drain.clear(settings)
    # Celery's own exit status (EX_FAILURE after "Unrecoverable error") is set on its WorkController,
    # which worker_main (and click, run without standalone mode) never hand back: kept to read it
    started: list[Any] = []
    signals.worker_init.connect(lambda sender, **_: started.append(sender), weak=False)
    argv = [
        "worker",
        f"--loglevel={loglevel}",
        f"--concurrency={concurrency or settings.concurrency}",
        f"--queues={','.join(queues)}",
        f"--pool={pool}",
        f"--hostname={name}",
        "--without-gossip",  # nothing here uses it (no revokes, no events) and it costs a start-up wait
        "--without-mingle",
    ]
    log.info(
        "baton worker: broker %s, queues %s, store %s, home %s",
        safe_url(options.url),
        queues,
        tag,
        settings.home,
    )
    app.worker_main(argv)
    # its threads ended: the process then exits without the interpreter's teardown (``baton.cli``'s
    # ``_leave``), which took 0.8-1.5 s of a stopping worker (measured), its pool's exit aside
    janitor.close()
    monitor.close()
    status = int(started[0].exitcode or 0) if started else 1  # no worker made: it failed to start
    if status:
        log.error("baton worker: stopped on an error (exit status %d)", status)
    return status
