"""A run request's options on the command line, derived from :class:`~baton.runner.request.RunRequest`:
``baton run`` and ``baton submit`` (run here, or queued for a worker) are each written
``command(request, *own options)``, and :func:`request_command` gives Typer one flat signature, the
request's options (its fields' :class:`~baton.runner.request.Option`) in the schema's order, then the
command's own, and hands the command the request built. A field Typer has not seen cannot be forgotten
here: a new run option is a new field of ``RunRequest``. The key's options (``--agent``, ``--repo``,
``--thread``) are the request's too, for every command that names a key (:func:`key_option`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Annotated, Any

import typer

from baton.errors import BadInput
from baton.runner.request import Option, RequestField, RunRequest, request_fields

Command = Callable[..., None]
KEYWORD = inspect.Parameter.KEYWORD_ONLY


def key_option(name: str) -> Any:
    """The Typer option of a request field (``agent``, ``repo``, ``thread``) for ``Annotated``."""
    return _option(next(f for f in request_fields() if f.name == name))


def _option(f: RequestField) -> Any:
    return typer.Option(*f.option.flags, help=f.option.help)


def request_command(
    queued: bool = False,
    schema: type[RunRequest] = RunRequest,
    omit: tuple[str, ...] = (),
    says: Mapping[str, Option] | None = None,
) -> Callable[[Command], Command]:
    """Decorate ``command(request, *own)``: the command Typer sees takes the request's options (only
    a queued run's with ``queued``; none named in ``omit``, which keep their defaults; flags, help, type,
    default from each field's ``Option``, or from ``says`` where the command words one its own way) and
    then the command's own, and hands the request over built, its instruction read from the argument or
    the file (``-``: standard input, :mod:`baton.cli.inputs`)."""
    unknown = (set(omit) | set(says or {})) - {f.name for f in request_fields(schema, queued)}
    assert not unknown, f"no such option of a run: {sorted(unknown)}"
    fields = tuple(
        replace(f, option=(says or {}).get(f.name, f.option))
        for f in request_fields(schema, queued)
        if f.name not in omit
    )

    def wrap(command: Command) -> Command:
        own = [p.replace(kind=KEYWORD) for p in inspect.signature(command, eval_str=True).parameters.values()]

        def cli(**values: Any) -> None:
            given = {f.name: _take(f, values) for f in fields}
            command(schema(**given), **values)

        cli.__signature__ = inspect.Signature([p for f in fields for p in _parameters(f)] + own[1:])  # type: ignore[attr-defined]
        cli.__name__, cli.__qualname__, cli.__doc__ = command.__name__, command.__qualname__, command.__doc__
        cli.__module__, cli.__annotations__ = command.__module__, {}
        return cli

    return wrap


def _parameters(f: RequestField) -> list[inspect.Parameter]:
    """One option; or for the field read from a file, the argument and ``--NAME-file``."""
    if f.option.from_file is None:
        default = inspect.Parameter.empty if f.required else f.default
        return [inspect.Parameter(f.name, KEYWORD, default=default, annotation=Annotated[f.type, _option(f)])]
    nullable: Any = f.kind | None
    argument = Annotated[nullable, typer.Argument(help=f.option.help)]
    # the path as typed, not a Path: Path("./-") would be "-", standard input, not the file named "-"
    path = Annotated[
        str | None, typer.Option(_file_flag(f), help=f"{f.option.from_file} (-: standard input)")
    ]
    return [
        inspect.Parameter(f.name, KEYWORD, default=None, annotation=argument),
        inspect.Parameter(f"{f.name}_file", KEYWORD, default=None, annotation=path),
    ]


def _file_flag(f: RequestField) -> str:
    return f"--{f.name.replace('_', '-')}-file"


def _take(f: RequestField, values: dict[str, Any]) -> Any:
    """The field's value out of what Typer parsed (read from its file when it has one)."""
    value = values.pop(f.name)
    if f.option.from_file is None:
        return value
    return _read_text(f, value, values.pop(f"{f.name}_file"))


def _read_text(f: RequestField, value: str | None, path: str | None) -> str:
    """The argument, or the text of the file (``-``: standard input, see :mod:`baton.cli.inputs`);
    BadInput for both, neither or input that cannot be read."""
    # lazy: cold CLI
    from baton.cli.inputs import read_input

    flag = _file_flag(f)
    if (value is None) == (path is None):
        raise BadInput(f"give {f.option.help} either as an argument or with {flag}, not both or neither")
    if path is None:
        assert value is not None
        return value
    return read_input(path, f.name, flag)
