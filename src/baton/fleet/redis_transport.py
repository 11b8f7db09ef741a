"""kombu's Redis transport with one guard: a broker restart must not end a worker. kombu's own ended a
worker holding an unacknowledged message (a run in flight, ``acks_late``) when its Redis broker
restarted: the consumer detaches the transport from the broken connection (``transport.client =
None``), then closes its channel, whose restoring of its unacknowledged messages reads the new Redis
client's parameters from that ``None`` (``AttributeError ... 'hostname'``; measured, versions and
path: docs/fleet.md, "A broker restart"). The guard is :class:`Channel`: it remembers the parameters
it reached Redis with and uses them once its transport is detached.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError


class Channel(kombu_redis.Channel):
    """kombu's channel, which remembers how it reached Redis: once its transport has lost its client,
    it reaches Redis the same way (the acknowledgement of a run that ended after the restart then
    lands, instead of Celery's ``Couldn't ack`` and a redelivery after the visibility timeout), and
    before it ever reached it, it says so with a connection error.

    With Redis still down, that attempt fails with redis-py's own ``ConnectionError``, one of the
    errors the consumer ignores while it throws the connection away and reconnects. Nothing is lost by
    not restoring there: the message stays in the broker's unacknowledged set (if the broker kept its
    data) and the worker, still running the job, ends it as usual and acknowledges it through the old
    channel once Redis answers; a copy that the broker gives back finds the job ended or held and does
    nothing (:mod:`baton.fleet.queued`), and a message the restart lost is sent again by the janitor."""

    _known: dict[bool, dict[str, Any]]

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        known = self.__dict__.setdefault("_known", {})
        if self.connection is None or self.connection.client is None:
            if asynchronous not in known:
                raise RedisConnectionError("the broker connection was closed (a new one is being made)")
            return dict(known[asynchronous])
        params: dict[str, Any] = super()._connparams(asynchronous=asynchronous)  # type: ignore[no-untyped-call]
        known[asynchronous] = dict(params)
        return params


class Transport(kombu_redis.Transport):
    """kombu's Redis transport with :class:`Channel`; :func:`baton.fleet.celery.make_app` selects it
    for ``redis://`` and ``rediss://`` brokers (kombu reads TLS from the connection's options, not from
    the class)."""

    Channel = Channel

    @property
    def supports_batch_publish(self) -> bool:
        # the same read of ``client.hostname`` as _connparams: a detached transport batches nothing
        if self.client is None:
            return False
        return bool(super().supports_batch_publish)


# An alias of its own: kombu logs a connection as ``<transport>://host``, and an operator should read
# "baton-redis://127.0.0.1:6379/0" there, not a class path.
TRANSPORT = "baton-redis"
TRANSPORT_ALIASES.setdefault(TRANSPORT, f"{__name__}:Transport")
