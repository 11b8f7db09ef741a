"""The API's models of a run, derived from the runner's one schema (:mod:`baton.runner.request`):
:func:`body_model`, the body of ``POST /v1/runs``, one field per option of a queued run; :func:`view_model`,
a run as the API shows it, a job's own fields and then every field of ``baton run --json``; and
:class:`QuotaOut`, a credential's usage-quota breaker (``GET /v1/quotas``), as ``baton quota --json``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args, get_origin, get_type_hints, is_typeddict

from pydantic import BaseModel, ConfigDict, Field, Strict, create_model

from baton.agents import AGENTS
from baton.caps.model import MAXIMA, Measure
from baton.runner.request import Doc, RequestField, RunJson, RunRequest, request_fields
from baton.runner.resolve import MAX_CPU, MAX_PIDS, MAX_RETRIES, MAX_SECONDS
from baton.service import fields as rule
from baton.settings import SIZE_PATTERN

# What an option of a run takes beyond its type, checked (or, for repo, stated) as the runner checks it;
# an option not named here takes any value of its type (an enum: its members).
RULES: dict[str, Any] = {
    "agent": rule.Agent,
    "repo": rule.RepoSpec,
    "thread": rule.Thread,
    "prompt": rule.Prompt,
    "branch": rule.Branch,
    "base": rule.Base,
    "context": rule.Context,
    "fork_from": rule.Thread,
    "base_thread": rule.Thread,
    "handoff_from": rule.Agent,
    "on_limit": rule.OnLimit,
    # a shell command, run by /bin/sh in the agent's walls (docs/environment.md): any text but NUL
    "setup": Annotated[str, Field(pattern=r"^[^\u0000]*$", max_length=16384)],
    "answers": Annotated[str, Field(pattern=r"^[0-9a-f]{1,64}$", max_length=64)],  # a run's id
    # numbers strictly (Strict, INTEGRAL): pydantic would take false for 0 and "3" for 3, which the schema's
    # integer and number refuse (Schemathesis: "retries": false accepted, a schema-violating body)
    "timeout": Annotated[float, Strict(), Field(gt=0, le=int(MAX_SECONDS))],
    "retries": Annotated[int, Strict(), Field(ge=0, le=MAX_RETRIES), rule.INTEGRAL],
    # a size as the settings take it (settings.parse_size): 1073741824, 512M, 4G, 1.5GiB; 0: no limit
    "memory": Annotated[str, Field(pattern=SIZE_PATTERN, max_length=32)],
    "pids": Annotated[int, Strict(), Field(ge=0, le=MAX_PIDS), rule.INTEGRAL],
    # an egress allow-list as the setting takes it (baton.allowlist): presets and hosts, comma-separated
    "egress": Annotated[str, Field(pattern=r"^[A-Za-z0-9.*:, -]+$", min_length=1, max_length=4096)],
    "cpu": Annotated[float, Strict(), Field(ge=0, le=MAX_CPU)],
    # spending caps: 0 (none) up to the caps' maxima (baton.caps.model), never NaN or infinite
    "max_usd": Annotated[float, Strict(), Field(ge=0, le=MAXIMA[Measure.USD])],
    "max_tokens": Annotated[int, Strict(), Field(ge=0, le=int(MAXIMA[Measure.TOKENS])), rule.INTEGRAL],
    "max_minutes": Annotated[float, Strict(), Field(ge=0, le=MAXIMA[Measure.MINUTES])],
    "max_turns": Annotated[int, Strict(), Field(ge=0, le=int(MAXIMA[Measure.TURNS])), rule.INTEGRAL],
}


def body_model(name: str, doc: str, schema: type[RunRequest] = RunRequest) -> type[BaseModel]:
    """The request body of a queued run: unknown fields are refused (422). One field per option of a
    queued run (:class:`~baton.runner.request.RunRequest`'s fields with an ``Option``): its name, type,
    default and description (the option's ``doc``, else its help), and what it takes beyond its type
    (:data:`RULES`: a thread's pattern, the registered agents, ranges; :mod:`baton.service.fields`),
    with the rules between options (``allOf``). Pydantic checks the types and the single fields' rules,
    once: the route builds the request from the validated body, and the runner's check refuses the rest
    in the same words as on the command line."""
    fields: dict[str, Any] = dict(run_fields(schema))

    def between(stated: dict[str, Any]) -> None:  # read when the schema is generated, as Agent's enum
        stated["allOf"] = rule.run_rules(list(AGENTS))

    config = ConfigDict(extra="forbid", json_schema_extra=between)
    return create_model(name, __config__=config, __doc__=doc, **fields)


def run_fields(schema: type[RunRequest] = RunRequest) -> dict[str, tuple[Any, Any]]:
    """The fields of a queued run's body, each ``(type with its rule, Field)``: its default and
    description; also the options of the MCP tool ``start_turn`` (:mod:`baton.service.mcp_args`)."""
    return {
        f.name: (_ruled(f), Field(... if f.required else f.default, description=f.option.description))
        for f in request_fields(schema, queued=True)
    }


def _ruled(f: RequestField) -> Any:
    """The field's type with its rule (:data:`RULES`), nullable if the field is."""
    kind = RULES.get(f.name)
    if kind is None:
        return f.type
    return kind | None if f.nullable else kind


def view_model(name: str, doc: str, base: type[BaseModel], shape: type = RunJson) -> type[BaseModel]:
    """``base`` and then every field of ``shape`` that ``base`` does not have, unset until known: a
    run's view is a job's own fields (``base``) and then every field of ``baton run --json``
    (:class:`~baton.runner.request.RunJson`), each ``null`` (a list: empty) until the run ran. A nested
    ``TypedDict`` (an attempt) becomes a model of its own."""
    hints = get_type_hints(shape, include_extras=True)
    fields: dict[str, Any] = {
        key: _unset(hint) for key, hint in hints.items() if key not in base.model_fields
    }
    return create_model(name, __base__=base, __doc__=doc, **fields)


def _unset(hint: Any) -> tuple[Any, Any]:
    """A field of the shape as the view has it before the run ran: ``None``, or an empty list."""
    docs = [m.text for m in getattr(hint, "__metadata__", ()) if isinstance(m, Doc)]
    kind = _model_types(get_args(hint)[0] if get_origin(hint) is Annotated else hint)
    description = docs[0] if docs else None
    if get_origin(kind) is list:
        return kind, Field([], description=description)
    return kind | None, Field(None, description=description)


def _model_types(kind: Any) -> Any:
    """``kind`` with a ``TypedDict`` (also as a list's items) as a pydantic model of the same fields,
    named without its ``Json`` suffix."""
    if get_origin(kind) is list:
        return list[_model_types(get_args(kind)[0])]  # type: ignore[misc]
    if not is_typeddict(kind):
        return kind
    fields: dict[str, Any] = {key: (hint, ...) for key, hint in get_type_hints(kind).items()}
    return create_model(kind.__name__.removesuffix("Json"), **fields)


class QuotaOut(BaseModel):
    """One credential's usage-quota breaker (``baton quota --json``): while it holds, no run of that
    credential starts; the first turn that goes through after the reset closes it."""

    credential: str = Field(description="a hash of the credential (never the secret)")
    agent: str = Field(description="the agent whose run met the limit")
    label: str = Field(description="for people: the agent, where the credential comes from, the hash's start")
    state: Literal["ok", "exhausted"] = Field(
        description="exhausted from the limit until a turn goes through"
    )
    held: bool = Field(description="runs of this credential wait now (exhausted and before resets_at)")
    resets_at: str | None = Field(description="when runs of it may start again (ISO 8601, UTC)")
    resets_in_s: float | None = Field(description="seconds until resets_at (0 once past)")
    scope: str = Field(description="which quota: five_hour, seven_day, daily… ('' unknown)")
    detail: str = Field(description="what the agent said, and how baton chose resets_at")
    refusals: int = Field(description="limits met in a row at or after a reset (a phantom limit backs off)")
    tripped_at: str | None
    run_id: str | None = Field(description="the run that met the limit last")
    updated_at: str | None


class QuotaCleared(QuotaOut):
    """A breaker closed by hand (audited ``quota-clear``)."""

    was: str = Field(description="its state before: exhausted, exhausted (reset passed) or ok")
    was_held: bool
    closed: bool = Field(description="whether it was open (exhausted) and is now closed")
