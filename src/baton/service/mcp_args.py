"""How baton's MCP tools take their arguments (:mod:`baton.service.mcp`): as strictly as the HTTP API
takes a body. Each tool is the SDK's own ``Tool``, made from its function, with its arguments' model
closed, so an unknown argument is refused by name as the API refuses an unknown field; every refusal,
an unknown, missing, mistyped or out-of-range argument, comes back before anything is sent as ``baton
refused (422): …`` in the API's own words (:func:`baton.service.fields.error_words`), never pydantic's.
Its input schema leaves out what pydantic adds for itself (titles, a null beside each type, a null
default) and the patterns, checked here anyway. ``start_turn`` takes every option of ``POST /v1/runs``:
its signature is the run body's own fields (:func:`baton.service.schemas.run_fields`), not a copy.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Annotated, Any

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import FuncMetadata
from pydantic import Field, ValidationError, create_model
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

from baton.service.fields import error_words
from baton.service.mcp_api import Refused
from baton.service.schemas import run_fields

REFUSED = 422  # the status the API answers a body it refuses with


class Compact(GenerateJsonSchema):
    """A tool's input schema as a client reads it: each argument's type, enum, lengths and range, without
    pydantic's titles (a class's name among them), the null beside an optional argument's type (null is
    taken, as leaving it out is), a null default, or a pattern."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False

    def nullable_schema(self, schema: core_schema.NullableSchema) -> JsonSchemaValue:
        return self.generate_inner(schema["schema"])

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        stated = super().default_schema(schema)
        if "default" in stated and stated["default"] is None:
            del stated["default"]
        return stated

    def generate(self, schema: CoreSchema, mode: JsonSchemaMode = "validation") -> JsonSchemaValue:
        stated = super().generate(schema, mode)
        stated.pop("title", None)
        # an argument of an enum's type is stated in place, not as a $ref into $defs, which not every
        # client resolves; the enum class's title and docstring left out (the argument says what it is)
        defs = stated.pop("$defs", {})
        for argument in stated.get("properties", {}).values():
            # a pattern (a thread's, an instruction's, a branch's) is checked here before anything is
            # sent, in words that say what is wrong; stated, it was most of the schema's weight
            argument.pop("pattern", None)
            argument.pop("not", None)
            if ref := argument.pop("$ref", None):
                found = defs[ref.rpartition("/")[2]]
                argument |= {k: v for k, v in found.items() if k not in ("title", "description", *argument)}
        return stated


def refusal(exc: ValidationError) -> str:
    """What was wrong with a call's arguments, argument by argument, in the API's words."""
    return "; ".join(
        error_words(".".join(map(str, error["loc"])) or "the arguments", error) for error in exc.errors()
    )


class Verbatim(FuncMetadata):
    """A tool's arguments taken as sent: the SDK reads JSON out of a string given for an argument not
    typed ``str`` (a client that sends a list as text), and baton has no list or object argument, but a
    text one (a task's context, a setup command) may look like JSON and must stay text."""

    def pre_parse_json(self, data: dict[str, Any]) -> dict[str, Any]:
        return data


class CheckedTool(Tool):
    """A tool whose arguments are checked before it runs, a refusal said in baton's words."""

    async def run(
        self, arguments: dict[str, Any], context: Context[Any, Any], convert_result: bool = False
    ) -> Any:
        try:
            self.fn_metadata.validate_arguments(arguments)
        except ValidationError as exc:
            raise Refused(REFUSED, refusal(exc)) from None
        return await super().run(arguments, context, convert_result)


def checked(fn: Callable[..., Any]) -> Tool:
    """The tool of ``fn`` (its name, its docstring, its arguments), closed to unknown arguments and
    taking them as sent."""
    tool = CheckedTool.from_function(fn)
    model = tool.fn_metadata.arg_model
    closed = create_model(model.__name__, __base__=model, __cls_kwargs__={"extra": "forbid"})
    given = {name: getattr(tool.fn_metadata, name) for name in FuncMetadata.model_fields}
    tool.fn_metadata = Verbatim(**{**given, "arg_model": closed})
    tool.parameters = closed.model_json_schema(by_alias=True, schema_generator=Compact)
    if tool.fn_metadata.output_schema is not None:
        tool.fn_metadata.output_schema.pop("title", None)  # pydantic's name of a class
    return tool


def with_run_options(fn: Callable[..., Any], replaced: Mapping[str, Any]) -> Callable[..., Any]:
    """``fn`` (``(ctx, wait, **options)``) stated to take every field of a run's body as a keyword
    (the required ones first), its type as the body has it or as ``replaced`` says."""
    own = list(inspect.signature(fn, eval_str=True).parameters.values())
    fields = [
        inspect.Parameter(
            name,
            inspect.Parameter.KEYWORD_ONLY,
            default=inspect.Parameter.empty if info.is_required() else info.default,
            annotation=Annotated[replaced.get(name, kind), Field(description=info.description)],
        )
        for name, (kind, info) in run_fields().items()
    ]
    required = [p for p in fields if p.default is inspect.Parameter.empty]
    optional = [p for p in fields if p.default is not inspect.Parameter.empty]
    named = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own if p.kind != p.VAR_KEYWORD]
    signature = inspect.Signature([*required, *named, *optional], return_annotation=dict[str, Any])
    fn.__signature__ = signature  # type: ignore[attr-defined]
    return fn
