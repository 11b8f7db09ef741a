"""Properties of plan parsing (hypothesis): any text is either a Plan or a BadInput naming the file
and, where there is one, the line — never a TypeError, KeyError or YAML error escaping — and a valid
plan dumped to YAML comes back with the same tasks."""

from __future__ import annotations

import math
import re
from typing import Any

import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st

from baton.errors import BadInput
from baton.keys import validate_thread
from baton.plans.file import ON_FAILURE, Plan, parse_plan

SETTINGS = settings(max_examples=200, deadline=None, database=None)
FILE = "plan.yaml"
WHOLE_FILE = {f"{FILE}: the plan is empty", f"{FILE}: the YAML is nested too deeply"}
GOOD_HEAD = "id: p\nagent: claude\nrepo: r\ntasks:\n  - id: a\n"

# Lines built from YAML's own syntax (tags, anchors, flow collections, special floats) and the
# plan's keys, so the parser gets past the first line often and the validation is exercised.
_TOKENS = st.sampled_from(
    [
        *("id:", "agent:", "repo:", "tasks:", "prompt:", "on_failure:", "retries:", "timeout:", "context:"),
        *("- ", "  ", "    ", "? ", ": ", "[", "]", "{", "}", ",", "|", ">", "'", '"', "#", "---", "..."),
        *("!!float", "!!int", "!!bool", "!!str", "!!binary", "!!timestamp", "!!set", "!!null", "!foo"),
        *("&a", "*a", "*b", "<<:", ".nan", ".inf", "-.inf", "~", "null", "0x", "1e999", "-1", "0", "2"),
        *("retry", "stop", "x.lock", "..", "a", "b", "2020-01-01", "yes", "\t", "\x85", "\ufeff"),
    ]
)
yamlish = st.one_of(
    st.text(),
    st.lists(st.lists(_TOKENS, max_size=8).map(" ".join), max_size=10).map("\n".join),
    st.lists(st.lists(_TOKENS, max_size=8).map(" ".join), max_size=6).map(
        lambda ls: GOOD_HEAD + "\n".join(ls)
    ),
)

_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20), st.binary(max_size=8)
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
_task_keys = st.sampled_from(["id", "prompt", "on_failure", "retries", "timeout", "other"])
_plan_keys = st.sampled_from(["id", "agent", "repo", "branch", "base", "context", "tasks", "other"])
_ids = st.builds(
    "{}{}".format,
    st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,20}", fullmatch=True),
    st.sampled_from(["", ".", ".lock", "..x", "/x", " "]),
)
_any_task = st.dictionaries(_task_keys, _values | _ids, max_size=5)
_any_plan = st.dictionaries(
    _plan_keys, _values | _ids | st.lists(_any_task, max_size=3), min_size=0, max_size=7
)


def _parse(text: str) -> Plan | None:
    """parse_plan's result, or None when it refused the text with a BadInput that says where."""
    try:
        return parse_plan(text, FILE)
    except BadInput as exc:
        message = str(exc)
        assert message.startswith(f"{FILE}:"), message
        # a line, unless the problem is the file as a whole
        assert re.match(rf"{re.escape(FILE)}:\d+: ", message) or message in WHOLE_FILE, message
        return None


def _check_plan(plan: Plan) -> None:
    """What every accepted plan guarantees to the runner."""
    validate_thread(plan.thread)  # its conversation's thread is a valid one
    assert plan.tasks and len({t.id for t in plan.tasks}) == len(plan.tasks)
    for task in plan.tasks:
        validate_thread(task.id)
        assert isinstance(task.prompt, str) and task.prompt.strip()
        assert task.on_failure in ON_FAILURE and isinstance(task.retries, int) and task.retries >= 0
        assert task.timeout is None or (math.isfinite(task.timeout) and task.timeout > 0)


@SETTINGS
@given(yamlish)
@example(GOOD_HEAD + "    prompt: !!float abc\n")
@example(GOOD_HEAD + "    prompt: !foo b\n")
@example(GOOD_HEAD + "    prompt: !!bool x\n")
@example(GOOD_HEAD + "    prompt: !!binary x\n")
@example(GOOD_HEAD + "    prompt: !!timestamp x\n")
@example(GOOD_HEAD + "    prompt: hi\n    timeout: .nan\n")
@example(GOOD_HEAD + "    prompt: hi\n    timeout: .inf\n")
@example("[" * 2000)
@example("id: x.lock\nagent: a\nrepo: r\ntasks: [{id: a, prompt: b}]")
def test_any_text_is_a_plan_or_bad_input_naming_the_line(text: str) -> None:
    plan = _parse(text)
    if plan is not None:
        _check_plan(plan)


@SETTINGS
@given(_any_plan)
def test_any_dumped_mapping_is_a_plan_or_bad_input_naming_the_line(data: dict[str, Any]) -> None:
    plan = _parse(yaml.safe_dump(data, allow_unicode=True))
    if plan is not None:
        _check_plan(plan)


_texts = st.text(min_size=1, max_size=200).filter(lambda s: s.strip())
_valid_ids = st.from_regex(r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,30}[A-Za-z0-9_])?", fullmatch=True)


@st.composite
def _valid_tasks(draw: st.DrawFn) -> list[dict[str, Any]]:
    ids = draw(st.lists(_valid_ids, min_size=1, max_size=5, unique=True))
    tasks = []
    for task_id in ids:
        task: dict[str, Any] = {"id": task_id, "prompt": draw(_texts)}
        on_failure = draw(st.sampled_from([None, *ON_FAILURE]))
        if on_failure is not None:
            task["on_failure"] = on_failure
        if on_failure == "retry" and draw(st.booleans()):
            task["retries"] = draw(st.integers(0, 10))
        if draw(st.booleans()):
            task["timeout"] = draw(
                st.integers(1, 10**6) | st.floats(min_value=1e-3, max_value=1e9, allow_nan=False)
            )
        tasks.append(task)
    return tasks


@SETTINGS
@given(
    plan_id=_valid_ids,
    agent=_texts,
    repo=_texts,
    context=st.none() | _texts,
    tasks=_valid_tasks(),
)
def test_a_valid_plan_round_trips(
    plan_id: str, agent: str, repo: str, context: str | None, tasks: list[dict[str, Any]]
) -> None:
    data: dict[str, Any] = {"id": plan_id, "agent": agent, "repo": repo, "tasks": tasks}
    if context is not None:
        data["context"] = context
    # ASCII output, non-ASCII escaped: with allow_unicode PyYAML's emitter writes U+0085 (NEL) bare
    # inside a quoted scalar, where its own reader takes it for a line break (PyYAML's bug, not ours)
    plan = parse_plan(yaml.safe_dump(data), FILE)
    assert (plan.id, plan.agent, plan.repo, plan.context, plan.file) == (plan_id, agent, repo, context, FILE)
    assert [(t.id, t.prompt) for t in plan.tasks] == [(t["id"], t["prompt"]) for t in tasks]
    for task, given_task in zip(plan.tasks, tasks, strict=True):
        on_failure = given_task.get("on_failure", "stop")
        assert task.on_failure == on_failure
        assert task.retries == given_task.get("retries", 2 if on_failure == "retry" else 0)
        assert task.timeout == (float(given_task["timeout"]) if "timeout" in given_task else None)
    _check_plan(plan)
