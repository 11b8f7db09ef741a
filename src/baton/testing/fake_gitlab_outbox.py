"""The fake GitLab's webhook deliveries (:class:`Outbox`): each event checked (by the checker the tests
install: :func:`install_checker`), one delivery per hook that wants it, sent once the change making it
has released the fake's lock — from the delivery thread after the response, for an API request
(:meth:`Outbox.settle` waits for them); a resend repeats an event's UUIDs and body.
"""

from __future__ import annotations

import contextlib
import json
import queue
import threading
import uuid
from collections.abc import Iterator
from typing import Any, Protocol

from baton.testing.fake_gitlab_hooks import EVENTS, Delivery, Event, headers, post
from baton.testing.fake_gitlab_state import Hook, Project, Violation


class SpecViolation(AssertionError):
    """A body the fake made that GitLab's published types reject (raised by a checker)."""


class Checker(Protocol):
    """What checks the fake's answers and webhook bodies (the tests install GitLab's published types);
    each raises :class:`AssertionError` with the reasons when a body does not match."""

    def answer(self, method: str, template: str, status: int, body: Any) -> None: ...

    def webhook(self, event: str, body: dict[str, Any]) -> None: ...


_CHECKER: list[Checker] = []


def install_checker(checker: Checker | None) -> None:
    """Every fake GitLab made from now on checks its answers and webhooks with ``checker``."""
    _CHECKER[:] = [] if checker is None else [checker]


class _Pending:
    """API requests in flight (until their deliveries are sent), for :meth:`GitLabCore.settle`."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._count = 0

    def __enter__(self) -> None:
        with self._cond:
            self._count += 1

    def __exit__(self, *exc: object) -> None:
        with self._cond:
            self._count -= 1
            self._cond.notify_all()

    def wait(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._count == 0, timeout)


class Outbox:
    """Webhook events and their deliveries; ``deliver_to`` (with ``secret`` its token) is a hook on
    every project but forks, as a group's hook is."""

    lock: threading.RLock
    violations: list[Violation]

    def __init__(self, secret: str, deliver_to: str | None) -> None:
        self.secret, self.deliver_to = secret, deliver_to
        self.deliveries: list[Delivery] = []
        self.events: list[Event] = []  # every webhook event, sent to a hook or not
        self.checker: Checker | None = _CHECKER[0] if _CHECKER else None
        self.default_hook = Hook(0, "", "", frozenset(EVENTS.values()))
        self.hold = False  # True: deliveries wait in ``held`` until flush()
        self.held: list[Delivery] = []
        self._local = threading.local()
        self.pending = _Pending()
        self._queue: queue.Queue[list[Delivery] | None] = queue.Queue()
        self._sender: threading.Thread | None = None

    @property
    def web_url(self) -> str:
        raise NotImplementedError

    def hooks_of(self, project: Project, event: str) -> list[Hook]:
        wanted = EVENTS[event]
        hooks = [h for h in project.hooks if wanted in h.events]
        if self.deliver_to and wanted in self.default_hook.events and project.forked_from is None:
            hooks.append(self.default_hook)
        return hooks

    def emit(self, project: Project, event: str, body: dict[str, Any]) -> None:
        """A webhook event: checked (a body GitLab's types reject raises, loudly), then one delivery per
        hook that wants it, all with one ``X-Gitlab-Event-UUID``."""
        if self.checker is not None:
            try:
                self.checker.webhook(event, body)
            except AssertionError as exc:
                self.violations.append(Violation("webhook", event, (str(exc),)))
                raise SpecViolation(
                    f"the fake GitLab's {event} does not match GitLab's types: {exc}"
                ) from exc
        event_uuid, data = str(uuid.uuid4()), _json(body)
        with self.lock:
            self.events.append(Event(event_uuid, event, body))
        for hook in self.hooks_of(project, event):
            delivery = Delivery(
                event_uuid, event, hook, data, str(uuid.uuid4()), hook.url or self.deliver_to or ""
            )
            with self.lock:
                self.deliveries.append(delivery)
            outbox = getattr(self._local, "outbox", None)
            if outbox is not None:
                outbox.append(delivery)
            else:
                self._dispatch([delivery])

    @contextlib.contextmanager
    def change(self) -> Iterator[None]:
        """Hold the lock for a change; its deliveries go once the lock is released (a receiver that
        calls the API back while handling one must not wait on this change)."""
        outer = getattr(self._local, "outbox", None) is None
        if outer:
            self._local.outbox = []
        try:
            with self.lock:
                yield
        finally:
            if outer:
                outbox, self._local.outbox = self._local.outbox, None
                self._dispatch(outbox)

    def _dispatch(self, deliveries: list[Delivery]) -> None:
        deferred = getattr(self._local, "deferred", None)
        if deferred is not None:  # inside an API request: sent once its response has gone
            deferred.extend(deliveries)
        elif self.hold:
            with self.lock:
                self.held.extend(deliveries)
        else:
            for delivery in deliveries:
                self.send(delivery)

    def send_later(self, deliveries: list[Delivery]) -> None:
        """An API request's deliveries, sent in order from the fake's delivery thread (:meth:`settle`)."""
        if not deliveries:
            return
        self.pending.__enter__()
        with self.lock:
            if self._sender is None:
                self._sender = threading.Thread(
                    target=self._send_queued, name="fake-gitlab-hooks", daemon=True
                )
                self._sender.start()
        self._queue.put(deliveries)

    def _send_queued(self) -> None:
        while (batch := self._queue.get()) is not None:
            try:
                if self.hold:
                    with self.lock:
                        self.held.extend(batch)
                else:
                    for delivery in batch:
                        self.send(delivery)
            finally:
                self.pending.__exit__()

    def stop_deliveries(self) -> None:
        if self._sender is not None:
            self._queue.put(None)
            self._sender.join(timeout=30)
            self._sender = None

    def send(self, delivery: Delivery, *, token: str | None = None) -> int:
        """One attempt at ``delivery`` (``token``: another secret, a forged one); the receiver's status."""
        if not delivery.url:
            return 0
        sent = headers(
            delivery, self.web_url, token if token is not None else (delivery.hook.token or self.secret)
        )
        status = post(delivery, sent)
        with self.lock:
            delivery.sent.append(sent)
            delivery.statuses.append(status)
        return status

    def flush(self) -> list[int]:
        """Send the deliveries held back (``hold = True``), in order; the receiver's statuses."""
        with self.lock:
            held, self.held = self.held, []
        return [self.send(d) for d in held]

    def settle(self, timeout: float = 10.0) -> None:
        """Wait until every API request in flight has answered and its deliveries are sent."""
        if not self.pending.wait(timeout):
            raise TimeoutError(f"API requests still in flight after {timeout} s")

    def resend(self, event_uuid: str) -> list[int]:
        """Redeliver an event to each of its hooks, as GitLab's "Resend request" does: the same body and
        ``Idempotency-Key``, but a new ``X-Gitlab-Event-UUID`` (the resend is a request of its own) and
        ``X-Gitlab-Webhook-UUID``; the receiver's statuses."""
        with self.lock:
            first = [d for d in self.deliveries if d.event_uuid == event_uuid and d.resent is None]
            if not first:
                raise KeyError(f"no delivery of event {event_uuid}")
            again = [
                Delivery(
                    str(uuid.uuid4()), d.event, d.hook, d.body, d.idempotency_key, d.url, resent=event_uuid
                )
                for d in first
            ]
            self.deliveries.extend(again)
        return [self.send(d) for d in again]

    def deliver_forged(self, delivery: Delivery | None = None, token: str = "not-the-secret") -> int:
        """Send a delivery (the last one by default) with the wrong ``X-Gitlab-Token``."""
        return self.send(delivery or self.deliveries[-1], token=token)

    def last_delivery(self, event: str | None = None) -> Delivery:
        with self.lock:
            return next(d for d in reversed(self.deliveries) if event in (None, d.event))

    def last_event(self, event: str | None = None) -> Event:
        with self.lock:
            return next(e for e in reversed(self.events) if event in (None, e.event))


def _json(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()
