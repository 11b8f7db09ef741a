"""One trace per event, with OpenTelemetry, opt-in (``BATON_OTEL=on``; the ``otel`` extra): the one
module that knows OpenTelemetry. Off (the default) :func:`span` and :func:`traced` cost a flag test and
``opentelemetry`` is never imported. On, :func:`configure` installs a tracer provider (service
``baton``) exporting OTLP over HTTP in batches, to ``OTEL_EXPORTER_OTLP_ENDPOINT``. A trace crosses
threads and processes as a W3C ``traceparent``: kept under :data:`CARRIED` in a job's stored request
(:func:`carry`), handed over in memory to a webhook's handler (:func:`hand`), and given to the agent
as ``TRACEPARENT`` (:func:`agent_env`). docs/deploy.md lists the spans and their attributes.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from baton.errors import BadInput

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer

    from baton.settings import Settings

P = ParamSpec("P")
R = TypeVar("R")
Attrs = Mapping[str, str | int | float | bool]
CARRIED = "traceparent"  # the key of a job's stored request that holds its submitter's trace context
TRACEPARENT = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")
INSTALL = "pip install 'agent-baton[otel]'"
# the agent's variables: Claude Code (with its own telemetry on) and Codex read TRACEPARENT, the
# Copilot CLI COPILOT_TRACEPARENT (docs/deploy.md#tracing); the others read none
AGENT_VARIABLES = ("TRACEPARENT", "COPILOT_TRACEPARENT")
HANDED_MAX = 1000  # trace contexts kept for other threads at most (the oldest go first)
_OFF: contextlib.nullcontext[None] = contextlib.nullcontext()  # the span of tracing off: reused


class _State:
    tracer: Tracer | None = None  # None: tracing is off
    provider: TracerProvider | None = None
    handed: dict[str, str] = {}  # a key → the traceparent handed over under it
    lock = threading.Lock()


def on() -> bool:
    return _State.tracer is not None


def configure(settings: Settings) -> None:
    """Start tracing as ``settings.otel`` says, once per process (a later call changes nothing);
    BadInput with the install command when it is on and the ``otel`` extra is missing."""
    if settings.otel != "on" or _State.provider is not None:
        return
    try:
        # lazy: the otel extra
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise BadInput(f"BATON_OTEL=on needs OpenTelemetry: {INSTALL}") from exc
    provider = TracerProvider(resource=Resource.create({"service.name": "baton"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    install(provider)


def install(provider: TracerProvider | None) -> None:
    """Trace into ``provider`` from now on (None: stop tracing); tests give one with an in-memory
    exporter."""
    with _State.lock:
        _State.provider = provider
        _State.tracer = provider.get_tracer("baton") if provider is not None else None
        _State.handed.clear()


# -- spans --------------------------------------------------------------------------------------------


def span(
    name: str, attributes: Attrs | None = None, parent: str | None = None, start: float | None = None
) -> contextlib.AbstractContextManager[Any]:
    """A span around a block, child of the current one, or of ``parent`` (a traceparent: another
    thread's or process's) when given; ``start``: its start in epoch seconds (else now)."""
    tracer = _State.tracer
    if tracer is None:
        return _OFF
    context = _context(parent) if parent else None
    started = int(start * 1e9) if start is not None else None
    return tracer.start_as_current_span(name, context, attributes=attributes, start_time=started)


def traced(name: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """A decorator: each call of the function is a span ``name`` (a coroutine function's too)."""

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def awaited(*args: Any, **kwargs: Any) -> Any:
                with span(name):
                    return await func(*args, **kwargs)

            return awaited  # type: ignore[return-value]

        @functools.wraps(func)
        def called(*args: P.args, **kwargs: P.kwargs) -> R:
            if _State.tracer is None:
                return func(*args, **kwargs)
            with span(name):
                return func(*args, **kwargs)

        return called

    return decorate


@contextlib.contextmanager
def entered(name: str, manager: contextlib.AbstractContextManager[R]) -> Iterator[R]:
    """``manager``, entered inside a span ``name`` that ends once it is entered (a lease's wait)."""
    with span(name):
        value = manager.__enter__()
    try:
        yield value
    except BaseException as exc:
        if not manager.__exit__(type(exc), exc, exc.__traceback__):
            raise
    else:
        manager.__exit__(None, None, None)


def waited(name: str, since: float, parent: str | None, attributes: Attrs | None = None) -> None:
    """A span ``name`` from ``since`` (epoch seconds) to now, child of ``parent``: a job's wait in its
    queue, from its submission to its start."""
    with span(name, attributes, parent, start=min(since, time.time())):
        pass


def note(attributes: Attrs) -> None:
    """Attributes of the current span (nothing when off)."""
    if _State.tracer is not None:
        _current().set_attributes(attributes)


# GenAI semantic conventions: a turn's usage as the agent reported it
USAGE = {"input_tokens": "gen_ai.usage.input_tokens", "output_tokens": "gen_ai.usage.output_tokens"}


# an agent's model provider, as GenAI's gen_ai.provider.name names it (others: the agent's own name)
PROVIDERS = {"claude": "anthropic", "codex": "openai", "gemini": "gcp.gemini", "copilot": "github_copilot"}


def usage(agent: str, model: str | None, counts: Mapping[str, Any]) -> None:
    """The GenAI attributes of the current span (the agent's): its provider, model and token counts."""
    if _State.tracer is None:
        return
    provider = PROVIDERS.get(agent, agent)
    found: dict[str, str | int] = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": agent}
    found["gen_ai.provider.name"] = provider
    found["gen_ai.system"] = provider  # the older name of gen_ai.provider.name, which backends still read
    if model:
        found["gen_ai.request.model"] = model
    for key, attribute in USAGE.items():
        value = counts.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            found[attribute] = value
    _current().set_attributes(found)


# -- the trace context, carried -----------------------------------------------------------------------


def traceparent() -> str | None:
    """The current span's W3C traceparent (None: off, or no span)."""
    if _State.tracer is None:
        return None
    # lazy: the otel extra
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return carrier.get("traceparent")


def agent_env() -> dict[str, str]:
    """The agent's trace variables (:data:`AGENT_VARIABLES`), so its own spans join this trace."""
    value = traceparent()
    return dict.fromkeys(AGENT_VARIABLES, value) if value else {}


def carry(request: dict[str, Any]) -> dict[str, Any]:
    """A job's request as stored: with the current trace context under :data:`CARRIED` when on."""
    value = traceparent()
    return {**request, CARRIED: value} if value else request


def carried(request: Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
    """A stored request without its trace context, and that context (None: none, or malformed)."""
    fields = dict(request)
    value = fields.pop(CARRIED, None)
    return fields, incoming(value) if isinstance(value, str) else None


def incoming(value: str | None) -> str | None:
    """A caller's ``traceparent`` header when it is one (W3C, version 00, lowercase hex), else None:
    a malformed or hostile value starts a trace of baton's own instead of failing the request."""
    return value if value is not None and TRACEPARENT.fullmatch(value) else None


def hand(key: str) -> None:
    """Keep the current trace context for the thread that takes ``key`` over (:func:`handed`)."""
    value = traceparent()
    if value:
        with _State.lock:
            _State.handed[key] = value
            while len(_State.handed) > HANDED_MAX:
                del _State.handed[next(iter(_State.handed))]


def handed(key: str) -> str | None:
    """The trace context :func:`hand` kept under ``key``, once."""
    if _State.tracer is None:
        return None
    with _State.lock:
        return _State.handed.pop(key, None)


def _context(parent: str) -> Any:
    # lazy: the otel extra
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    return TraceContextTextMapPropagator().extract({"traceparent": parent})


def _current() -> Span:
    # lazy: the otel extra
    from opentelemetry import trace

    return trace.get_current_span()
