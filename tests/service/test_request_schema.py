"""One definition of a run request, RunRequest's fields: the options of ``baton run`` and ``baton submit``,
the body of ``POST /v1/runs`` and a queued job's plain form all come from it. A field added to the schema
shows up in all of them (typed, described, defaulted) with no second edit anywhere; a field only a run
started here takes (``wait``) stays out of the queued forms. The result's shape likewise: RunJson is what
``RunResult.to_json`` fills and what the API's RunView shows. And the API's body is type-checked once,
by pydantic: the route hands the job core a typed request, not plain data to check again."""

from __future__ import annotations

import functools
import operator
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import hypothesis
import pytest
import typer
from fastapi import BackgroundTasks
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError
from typer.testing import CliRunner

from baton.cli.options import request_command
from baton.cli.run import run_cmd
from baton.cli.submit import submit_cmd
from baton.errors import BadInput
from baton.fleet import jobs
from baton.models import JobStatus, Mode, PromptKind, RunRecord, SessionRecord
from baton.runner.request import RunJson, RunRequest, RunResult, option, request_fields
from baton.service import runs
from baton.service.auth import Actor
from baton.service.records import TokenScope
from baton.service.schemas import RULES, body_model, view_model
from baton.settings import SIZE_PATTERN, Settings, parse_size
from baton.store import Store

BASE = {"agent": "fake", "repo": "https://github.com/acme/api", "thread": "issue-43", "prompt": "go on"}
KEY = ["-a", "fake", "-r", "https://github.com/acme/api", "-t", "issue-43"]


@dataclass
class WithPriority(RunRequest):
    """The schema with two more options: one for every run, one for a run started here only."""

    priority: int = field(default=0, metadata=option("run this sooner", doc="higher runs sooner"))
    label: str | None = field(default=None, metadata=option("a label for this terminal", queued=False))


def bare(kind: Any) -> Any:
    """A type without its ``Annotated`` metadata, inside a union too."""
    if typing.get_origin(kind) is typing.Annotated:
        return typing.get_args(kind)[0]
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        return functools.reduce(operator.or_, map(bare, typing.get_args(kind)))
    return kind


def cli_params(command: Callable[..., None]) -> dict[str, Any]:
    """The click parameters Typer builds for ``command``, by name."""
    app = typer.Typer(add_completion=False)
    app.command()(command)
    return {p.name: p for p in typer.main.get_command(app).params if p.name}


def test_the_cli_the_http_body_and_the_plain_form_have_the_schemas_fields() -> None:
    queued = {f.name: f for f in request_fields(queued=True)}
    everything = {f.name: f for f in request_fields()}
    assert set(everything) - set(queued) == {"wait"}
    assert {"cancel", "on_event", "on_start", "wait_quota", "on_wait"}.isdisjoint(everything)  # Python's only

    # the command line: the argument's file option and the commands' own options aside
    run_params, submit_params = cli_params(run_cmd), cli_params(submit_cmd)
    assert set(run_params) - {"prompt_file", "as_json", "wait_quota"} == set(everything)
    assert set(submit_params) - {"prompt_file", "as_json", "follow"} == set(queued)
    for name, f in everything.items():
        param = run_params[name]
        assert param.help == f.option.help
        assert param.required == (f.required and name != "prompt")  # the prompt may come from a file
        if not f.required:
            assert param.default == f.default, name
    for name in queued:
        assert submit_params[name].help == run_params[name].help

    # the API's body: names, types, defaults, descriptions
    body = runs.RunBody.model_fields
    assert set(body) == set(queued)
    for name, f in queued.items():
        assert bare(body[name].annotation) == f.type, name  # its rule (service.fields) aside
        assert body[name].description == f.option.description
        assert body[name].is_required() == f.required
        if not f.required:
            assert body[name].default == f.default

    # a job's plain form
    assert set(jobs.plain_request(jobs.build_request(dict(BASE)))) == set(queued)


def test_every_option_that_is_not_a_choice_says_what_it_takes() -> None:
    """A text or number option of a queued run has a rule in the API (service.schemas.RULES: a pattern,
    a range, the registered agents), so /openapi.json says what the runner refuses; an enum says it by
    its members. A new option without one fails here rather than in a client."""
    for f in request_fields(queued=True):
        if not issubclass(f.kind, StrEnum):
            assert f.name in RULES, f"{f.name}: add what it takes to RULES in baton/service/schemas.py"
    stated = runs.RunBody.model_json_schema()["properties"]
    assert stated["thread"]["maxLength"] == 128 and "pattern" in stated["thread"]
    assert stated["retries"]["maximum"] == 100 and stated["timeout"]["anyOf"][0]["exclusiveMinimum"] == 0


def test_a_field_added_to_the_schema_shows_up_in_every_form() -> None:
    got: list[RunRequest] = []

    def here(request: RunRequest, as_json: bool = False) -> None:
        got.append(request)

    def queue(request: RunRequest) -> None:
        got.append(request)

    runner = CliRunner()
    run_here = typer.Typer()
    run_here.command()(request_command(schema=WithPriority)(here))
    ran = runner.invoke(run_here, [*KEY, "--priority", "3", "--label", "mine", "go"])
    assert ran.exit_code == 0, ran.output
    assert isinstance(got[0], WithPriority) and (got[0].priority, got[0].label) == (3, "mine")
    assert got[0].prompt == "go" and got[0].mode == Mode.AUTO
    shown = runner.invoke(run_here, ["--help"], env={"COLUMNS": "200"}).output
    assert "--priority" in shown and "run this sooner" in shown and "--label" in shown
    assert runner.invoke(run_here, [*KEY, "--priority", "soon", "go"]).exit_code == 2  # Typer's check

    submit = typer.Typer()
    submit.command()(request_command(queued=True, schema=WithPriority)(queue))
    assert runner.invoke(submit, [*KEY, "--priority", "2", "go"]).exit_code == 0
    assert isinstance(got[1], WithPriority) and got[1].priority == 2 and got[1].label is None
    assert runner.invoke(submit, [*KEY, "--label", "mine", "go"]).exit_code == 2  # not a queued option

    body = body_model("Body", "a body", WithPriority)
    priority = body.model_fields["priority"]
    assert (priority.annotation, priority.default, priority.description) == (int, 0, "higher runs sooner")
    assert "label" not in body.model_fields
    with pytest.raises(ValidationError, match="priority"):
        body.model_validate({**BASE, "priority": "soon"})
    with pytest.raises(ValidationError, match="label"):
        body.model_validate({**BASE, "label": "mine"})
    request = WithPriority(**dict(body.model_validate({**BASE, "priority": 4})))
    assert request.priority == 4

    stored = jobs.plain_request(request)
    assert stored["priority"] == 4 and "label" not in stored
    back = jobs.build_request(stored, WithPriority)
    assert isinstance(back, WithPriority) and back.priority == 4
    with pytest.raises(BadInput, match=r"priority has the wrong type \(str\)"):
        jobs.build_request({**BASE, "priority": "soon"}, WithPriority)
    with pytest.raises(BadInput, match="unknown field"):
        jobs.build_request({**BASE, "label": "mine"}, WithPriority)


def test_run_json_and_the_api_view_have_one_shape() -> None:
    record = RunRecord(
        id="r1", agent="fake", repo="acme/api", thread="t", attempt=1, mode=Mode.FRESH,
        prompt_kind=PromptKind.FULL, prompt="go",
    )  # fmt: skip
    session = SessionRecord(
        agent="fake", repo="acme/api", thread="t", repo_url="u", branch="b", worktree="/w",
        created_at=0.0, last_used_at=0.0, expires_at=0.0,
    )  # fmt: skip
    shape = typing.get_type_hints(RunJson)
    data = RunResult(run=record, attempts=[record], session=session).to_json()
    assert list(data) == list(shape)
    view = runs.RunView.model_fields
    assert set(shape) <= set(view)
    for name in set(shape) - set(runs.JobView.model_fields):  # null (or empty) until the run ran
        assert not view[name].is_required() and view[name].default in (None, []), name
    seen = runs.RunView.model_validate({**data, **_job()}).model_dump(mode="json")
    assert {name: seen[name] for name in shape} == {**data, "run_id": "j1"}

    class Wider(RunJson):
        queue_s: float

    wider = view_model("Wider", "a wider view", runs.JobView, Wider).model_fields
    assert wider["queue_s"].annotation == float | None and wider["queue_s"].default is None


def _job() -> dict[str, Any]:
    return {
        "run_id": "j1",
        "status": "done",
        "actor": "me",
        "submitted_at": None,
        "started_at": None,
        "ended_at": None,
    }


def test_the_api_body_is_type_checked_once_by_pydantic(
    settings: Settings, store: Store, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The route builds the request from the validated body; the plain form's check is not run."""

    def not_again(fields: dict[str, Any], schema: type[RunRequest] = RunRequest) -> RunRequest:
        raise AssertionError("the body's types were checked again")

    class Executor:
        def submit(self, job_id: str) -> None:
            pass

    monkeypatch.setattr(jobs, "build_request", not_again)
    body: BaseModel = runs.RunBody.model_validate({**BASE, "repo": str(src_repo), "retries": 2})
    actor = Actor("ci", TokenScope.RUN)
    http = SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace()))  # no repository tables
    made = runs.submit_run(body, actor, store, settings, Executor(), BackgroundTasks(), http)  # type: ignore[arg-type]
    assert made["status"] == JobStatus.QUEUED
    job = store.get_job(made["run_id"])
    assert job is not None and job.request["retries"] == 2 and job.request["mode"] == "auto"
    with pytest.raises(ValidationError, match="retries"):
        runs.RunBody.model_validate({**BASE, "retries": "many"})


def test_plain_data_still_refuses_what_it_always_did() -> None:
    defaults = jobs.build_request({**BASE, "mode": None, "retries": None})  # None: the default
    assert (defaults.mode, defaults.retries) == (Mode.AUTO, 0)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"agent": "fake"}, "missing field(s): repo, thread, prompt"),
        ({**BASE, "wait": 5}, "unknown field(s): wait"),
        ({**BASE, "retries": True}, "retries has the wrong type (bool)"),
        ({**BASE, "timeout": "5"}, "timeout has the wrong type (str)"),
        ({**BASE, "mode": 3}, "mode has the wrong type (int)"),
        ({**BASE, "mode": "sideways"}, "mode must be one of auto, fresh, resume, continue, fork, recover"),
    ]
    for fields, words in cases:
        with pytest.raises(BadInput) as refused:
            jobs.build_request(fields)
        assert str(refused.value) == words
    assert jobs.build_request({**BASE, "timeout": 5}).timeout == 5  # an int is a number of seconds


SIZES = st.one_of(
    st.text(max_size=12),
    st.from_regex(SIZE_PATTERN, fullmatch=True).filter(lambda s: len(s) <= 32),
    st.sampled_from(["\x0b89.0913\x0c", "\x1c1G", "1\u212a", "1\u0131b", "\u06611G", " 1.5 GiB\t", "1G\n"]),
)


@hypothesis.given(SIZES)
def test_a_memory_size_is_read_alike_by_the_schema_the_api_and_the_runner(text: str) -> None:
    """The schema's pattern (as a Python JSON Schema validator reads it, the way Schemathesis makes its
    cases), pydantic's check of the body (Rust's regex) and the runner's parser take the same sizes:
    a schema-valid ``memory`` is never refused 422, and no size reaches the parser unchecked."""
    body = body_model("SizeProbe", "a probe")
    shape = {"agent": "claude", "repo": "r", "thread": "t", "prompt": "p"}
    try:
        body.model_validate({**shape, "memory": text})
        api = True
    except ValidationError:
        api = False
    try:
        parse_size(text)
        runner = True
    except BadInput:
        runner = False
    # JSON Schema's `$` is the text's end; Python's re.search also lets it match before a last newline
    schema = len(text) <= 32 and re.search(SIZE_PATTERN, text) is not None and not text.endswith("\n")
    assert api == runner == schema, (text, api, runner, schema)
