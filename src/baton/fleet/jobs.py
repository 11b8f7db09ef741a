"""Jobs: runs submitted to the service, the core under ``POST /v1/runs``, ``baton submit`` and the
executors. :func:`submit` validates a request exactly as :func:`baton.run` does before its first write
and only then stores the job ``queued`` (a bad request writes nothing; a good one survives a restart);
:func:`finish` is the one way a job ends; and a job's event stream is its own JSONL file,
``$BATON_HOME/jobs/<job_id>.events.jsonl`` (through the store too, with a broker), which
:class:`EventLog` writes and :func:`read_events` tails, woken in this process by :func:`notify`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import Enum, StrEnum
from pathlib import Path
from typing import Any, TypeVar

from baton import tracing
from baton.errors import BadInput
from baton.files import make_private_dir, open_private_append
from baton.fleet.eventsink import StoreSink
from baton.models import JobRecord, JobStatus, RunRecord
from baton.runner.attempt import new_run_id
from baton.runner.request import RequestField, RunRequest, request_fields
from baton.runner.run import check_request
from baton.settings import Settings
from baton.store import Store
from baton.store.base import JobStore, LeaseBackend
from baton.store.leases import LeaseHolder

E = TypeVar("E", bound=StrEnum)
END = "end"  # the key of the last line of an event stream: the job's outcome


def job_lease(store: LeaseBackend, settings: Settings, job_id: str) -> LeaseHolder:
    """The lease whoever runs ``job_id`` holds while it does (always in the SQL store): a Celery
    worker or the in-process pool. A ``running`` job whose lease is free has lost its runner."""
    return LeaseHolder(store, f"job:{job_id}", settings.lease_ttl)


def submit(
    store: JobStore, settings: Settings, request: RunRequest | dict[str, Any], actor: str
) -> JobRecord:
    """Validate the request like ``baton run`` and store the job ``queued``; BadInput (nothing
    written) when anything is wrong. ``request`` is typed already (the API's body, the CLI's options)
    or plain data, checked here (:func:`build_request`). Refusals that depend on the key's session (a
    branch that differs from the session's, ``resume`` without a conversation, a missing fork source)
    are not checked here: an earlier job of the key may still change them. They end the job ``failed``
    with the runner's message."""
    typed = request if isinstance(request, RunRequest) else build_request(request)
    # the agent's credentials are checked where it runs: here without a broker, else on the worker
    resolved = check_request(typed, settings, credentials=not settings.broker_url)
    key = resolved.key
    job = JobRecord(
        id=new_run_id(),
        agent=key.agent,
        repo=key.repo.slug,
        thread=key.thread,
        # a local path resolved: the job runs the same repo whatever the service's cwd after a restart
        # with tracing on, the trace context of its submitter too: its run continues that trace
        request=tracing.carry(plain_request(dataclasses.replace(resolved.request, repo=key.repo.url))),
        status=JobStatus.QUEUED,
        actor=actor,
        submitted_at=time.time(),
        queue=settings.queue or None,  # where this side's executor sends it (None: the store's own queue)
    )
    store.add_job(job)
    return job


# -- a request as plain data ----------------------------------------------------------------------
# What a job stores and takes back: a queued run's options (RunRequest's, baton.runner.request), enums
# as their values. Plain data from outside (a stored job, a Python caller) has its types checked here;
# the API's body and the CLI's options arrive typed.


def plain_request(request: RunRequest) -> dict[str, Any]:
    """What a job stores of its request: the fields :func:`build_request` takes back."""
    data = {f.name: getattr(request, f.name) for f in request_fields(type(request), queued=True)}
    return {name: value.value if isinstance(value, Enum) else value for name, value in data.items()}


def build_request(fields: dict[str, Any], schema: type[RunRequest] = RunRequest) -> RunRequest:
    """A request from plain data; BadInput for unknown fields, missing ones or wrong types."""
    known = {f.name: f for f in request_fields(schema, queued=True)}
    unknown = sorted(set(fields) - set(known))
    if unknown:
        raise BadInput(f"unknown field(s): {', '.join(unknown)}")
    missing = [f.name for f in known.values() if f.required and fields.get(f.name) is None]
    if missing:
        raise BadInput(f"missing field(s): {', '.join(missing)}")
    # None for a field that cannot be None is its default
    given = {k: v for k, v in fields.items() if v is not None or known[k].nullable}
    return schema(**{name: _value(known[name], value) for name, value in given.items()})


def _value(f: RequestField, value: Any) -> Any:
    """``value`` as field ``f`` takes it (an enum from its value); BadInput naming the field if it cannot."""
    kind = f.kind
    choice = issubclass(kind, StrEnum)
    allowed = str if choice else (int, float) if kind is float else kind
    if value is None:
        return None
    if isinstance(value, bool) != (kind is bool) or not isinstance(value, allowed):
        raise BadInput(f"{f.name} has the wrong type ({type(value).__name__})")
    return _choice(f.name, kind, value) if choice else value


def _choice(name: str, kind: type[E], value: Any) -> E:
    try:
        return kind(value)
    except ValueError as exc:
        raise BadInput(f"{name} must be one of {', '.join(m.value for m in kind)}") from exc


def finish(
    store: Store, settings: Settings, job_id: str, outcome: str, log: EventLog | None = None, **fields: Any
) -> None:
    """End a job: ``done`` with ``outcome`` (and ``result``/``error``) in the store, then the end
    marker of its event stream (through ``log`` when the caller has it open), in that order, so a
    reader that sees the marker also sees the final record."""
    if log is not None:
        log.flush()  # every event in the store before the job is seen ended (streams through the store)
    store.update_job(job_id, status=JobStatus.DONE, outcome=outcome, ended_at=time.time(), **fields)
    if log is not None:
        log.write({END: outcome})
        return
    with EventLog(settings, job_id, store) as opened:
        opened.write({END: outcome})


def events_path(settings: Settings, job_id: str) -> Path:
    return settings.home / "jobs" / f"{job_id}.events.jsonl"


# -- waking readers -------------------------------------------------------------------------------
# Readers are coroutines on the server's event loop (a waiting subscriber holds no thread); writers are
# executor threads, which wake them with call_soon_threadsafe.

_lock = threading.Lock()
_version = 0
_waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()


def notify() -> None:
    """Something was appended to some job's stream: wake this process's readers."""
    global _version
    with _lock:
        _version += 1
        waiters = list(_waiters)
    for loop, event in waiters:
        with contextlib.suppress(RuntimeError):  # its loop has closed: nobody is waiting any more
            loop.call_soon_threadsafe(event.set)


def version() -> int:
    with _lock:
        return _version


async def wait_change(seen: int, timeout: float) -> None:
    """Return once :func:`notify` was called after ``seen`` was read, or after ``timeout`` seconds."""
    waiter = (asyncio.get_running_loop(), asyncio.Event())
    with _lock:
        if _version != seen:
            return
        _waiters.add(waiter)
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(waiter[1].wait(), timeout)
    finally:
        with _lock:
            _waiters.discard(waiter)


# -- writing --------------------------------------------------------------------------------------


def shared(settings: Settings) -> bool:
    """Whether job streams go through the store: with a broker, the worker that runs a job and the
    API (or ``baton submit --follow``) that streams it are other machines with other homes."""
    return bool(settings.broker_url)


class EventLog:
    """The event stream of one job, opened for appending. Sequence numbers continue from what the
    file (and, when streams are shared, the store) already holds, so a stream is never renumbered,
    not even by a redelivery on another worker.

    The runner's raw per-attempt logs (``logs/<run-id>.jsonl``) are not replayed instead because they
    have no sequence numbers, hold lines that are not events (stderr, partial lines of a killed agent),
    and a job's attempts are only known once each starts; one file per job gives every event a stable
    sequence number (the SSE ``id``), survives a restart, and lets a late subscriber read from the
    start with one sequential read. Lines are appended whole under a lock and flushed, so a reader
    never sees half a line (it also ignores a trailing partial line, which only a crash can leave)."""

    def __init__(self, settings: Settings, job_id: str, store: Store | None = None) -> None:
        path = events_path(settings, job_id)
        make_private_dir(path.parent)
        self._lock = threading.Lock()
        self._job_id = job_id
        earlier = _lines(path, 0)[0]
        self._seq = int(earlier[-1]["seq"]) if earlier else 0
        self._sink: StoreSink | None = None
        if store is not None and shared(settings):
            self._seq = max(self._seq, store.last_job_event(job_id))
            self._sink = StoreSink(store, job_id)  # the store's writes off the agent's reader thread
        self._file = open_private_append(path)  # 0600: every event of the job's turns

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def on_event(self, record: RunRecord, event: dict[str, Any]) -> None:
        """The runner's ``on_event``: one agent event of one attempt."""
        self.write(
            {"run_id": self._job_id, "attempt": record.attempt, "attempt_id": record.id, "event": event}
        )

    def write(self, data: dict[str, Any]) -> None:
        with self._lock:
            self._seq += 1
            line = json.dumps({"seq": self._seq, **data}, ensure_ascii=False, default=str)
            self._file.write(line + "\n")
            self._file.flush()
            if self._sink is not None:
                self._sink.put(self._seq, line)
        notify()

    def flush(self) -> None:
        """Wait until the store holds every line written so far (when streams are shared)."""
        if self._sink is not None:
            self._sink.flush()

    def close(self) -> None:
        # No fsync: the store holds the outcome durably; a stream cut short by a crash loses at most
        # its tail (a reader skips a partial line and ends with the stored outcome).
        if self._sink is not None:
            self._sink.close()
        with self._lock:
            self._file.close()


# -- reading --------------------------------------------------------------------------------------


@dataclass
class StreamItem:
    """One line of a job's stream: an agent event (``end`` is None) or the end marker."""

    seq: int
    data: dict[str, Any]
    end: str | None = None


def _lines(path: Path, offset: int) -> tuple[list[dict[str, Any]], int]:
    """The whole lines of ``path`` after byte ``offset``, and the offset after them."""
    try:
        with path.open("rb") as f:
            f.seek(offset)
            chunk = f.read()
    except FileNotFoundError:
        return [], offset
    whole = chunk[: chunk.rfind(b"\n") + 1]
    return [json.loads(line) for line in whole.splitlines() if line.strip()], offset + len(whole)


async def read_events(
    store: JobStore, settings: Settings, job_id: str, after: int = 0, poll: float = 0.5
) -> AsyncIterator[StreamItem]:
    """Every line of the job's stream with a sequence number above ``after``, waiting for new ones
    until the end marker (the last item); from the store when streams are shared (a broker: the job
    runs on another machine), else from this home's file. The job is looked up only when nothing is new: a
    job it says is done whose stream has no end marker (the process died between :func:`finish`'s
    two writes) ends with its stored outcome. Reads are small and SQLite readers never wait for
    writers (WAL), so they run on the event loop. A reader in the process that writes the stream is
    woken by :func:`notify` (no polling delay); it also re-checks every ``poll`` seconds, which is all a
    reader needs when the executor runs elsewhere and shares ``BATON_HOME``."""
    path, offset = events_path(settings, job_id), 0
    while True:
        seen = version()
        if shared(settings):
            lines = [json.loads(line) for line in store.job_events(job_id, offset)]
            offset = int(lines[-1]["seq"]) if lines else offset
        else:
            lines, offset = _lines(path, offset)
        for line in lines:
            item = StreamItem(int(line.pop("seq")), line, line.get(END))
            if item.end is not None or item.seq > after:
                yield item
            if item.end is not None:
                return
        if lines:
            continue
        job = store.get_job(job_id)
        if job is None or job.status == JobStatus.DONE:
            more = store.job_events(job_id, offset, 1) if shared(settings) else _lines(path, offset)[0]
            if not more:  # the end marker may land between the two reads
                yield StreamItem(0, {}, (job.outcome if job else None) or "unknown")
                return
            continue
        await wait_change(seen, poll)
