"""The API's models of a run, derived from the runner's one schema (:mod:`baton.runner.request`).

- :func:`body_model`: the body of ``POST /v1/runs``, one field per option of a queued run
  (:class:`~baton.runner.request.RunRequest`'s fields with an ``Option``): its name, type, default
  and description (the option's ``doc``, else its help). Pydantic checks the types, once: the route
  builds the request from the validated body.
- :func:`view_model`: a run as the API shows it, a job's own fields (``base``) and then every field
  of ``baton run --json`` (:class:`~baton.runner.request.RunJson`), each ``null`` (a list: empty)
  until the run ran. A nested ``TypedDict`` (an attempt) becomes a model of its own.
"""

from __future__ import annotations

from typing import Annotated, Any, get_args, get_origin, get_type_hints, is_typeddict

from pydantic import BaseModel, ConfigDict, Field, create_model

from baton.runner.request import Doc, RunJson, RunRequest, request_fields


def body_model(name: str, doc: str, schema: type[RunRequest] = RunRequest) -> type[BaseModel]:
    """The request body of a queued run: unknown fields are refused (422)."""
    fields: dict[str, Any] = {
        f.name: (f.type, Field(... if f.required else f.default, description=f.option.description))
        for f in request_fields(schema, queued=True)
    }
    return create_model(name, __config__=ConfigDict(extra="forbid"), __doc__=doc, **fields)


def view_model(name: str, doc: str, base: type[BaseModel], shape: type = RunJson) -> type[BaseModel]:
    """``base`` and then every field of ``shape`` that ``base`` does not have, unset until known."""
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
