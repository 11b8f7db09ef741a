"""Plan files: YAML, validated strictly, with errors that name the field and its line.

```yaml
id: billing-api              # the plan's id; its conversation is the thread `plan-<id>`
agent: claude
repo: https://github.com/acme/api
branch: feature/billing      # optional (default baton/<agent>/plan-<id>)
base: main                   # optional
context: |                   # optional: shared context, in the first prompt only
  We are adding invoices to the billing service.
tasks:
  - id: models
    prompt: Add the Invoice model.
  - id: api
    prompt: Add the /invoices endpoints.
    on_failure: retry          # stop (default) | continue | retry
    retries: 2                 # with retry: how many extra attempts (default 2)
    timeout: 900               # seconds, optional
```

The YAML is composed into nodes (not just loaded) so every error can point at a line.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from baton.errors import BadInput
from baton.keys import THREAD_RE

ON_FAILURE = ("stop", "continue", "retry")
PLAN_KEYS = {"id", "agent", "repo", "branch", "base", "context", "tasks"}
TASK_KEYS = {"id", "prompt", "on_failure", "retries", "timeout"}


@dataclass(frozen=True)
class Task:
    id: str
    prompt: str
    on_failure: str = "stop"
    retries: int = 0
    timeout: float | None = None

    @property
    def prompt_sha(self) -> str:
        return hashlib.sha256(self.prompt.encode()).hexdigest()


@dataclass(frozen=True)
class Plan:
    id: str
    agent: str
    repo: str
    tasks: list[Task]
    branch: str | None = None
    base: str | None = None
    context: str | None = None
    file: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def thread(self) -> str:
        return f"plan-{self.id}"


class _Where:
    """Names a place in the file for error messages."""

    def __init__(self, file: str) -> None:
        self.file = file

    def fail(self, node: yaml.Node | None, message: str) -> BadInput:
        line = f":{node.start_mark.line + 1}" if node is not None else ""
        return BadInput(f"{self.file}{line}: {message}")


def _scalar(where: _Where, node: yaml.Node, name: str, kind: str) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        raise where.fail(
            node,
            f"{name} must be a {kind}, not a {'list' if isinstance(node, yaml.SequenceNode) else 'mapping'}",
        )
    value = yaml.safe_load(yaml.serialize(node))
    if kind == "string":
        if not isinstance(value, str) and value is not None:
            value = str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
        if not isinstance(value, str) or not value.strip():
            raise where.fail(node, f"{name} must be a non-empty string")
        return value
    if kind == "integer":
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise where.fail(node, f"{name} must be a whole number ≥ 0, not {node.value!r}")
        return value
    if kind == "number":
        if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
            raise where.fail(node, f"{name} must be a positive number of seconds, not {node.value!r}")
        return float(value)
    raise AssertionError(kind)


def _mapping(where: _Where, node: yaml.Node, name: str, allowed: set[str]) -> dict[str, yaml.Node]:
    if not isinstance(node, yaml.MappingNode):
        raise where.fail(node, f"{name} must be a mapping of keys to values")
    out: dict[str, yaml.Node] = {}
    for key_node, value_node in node.value:
        key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
        if key not in allowed:
            raise where.fail(
                key_node, f"unknown key {key!r} in {name} (allowed: {', '.join(sorted(allowed))})"
            )
        if key in out:
            raise where.fail(key_node, f"key {key!r} appears twice in {name}")
        out[key] = value_node
    return out


def _identifier(where: _Where, node: yaml.Node, name: str) -> str:
    value = str(_scalar(where, node, name, "string"))
    if len(value) > 100 or not THREAD_RE.fullmatch(value) or ".." in value or value.endswith("."):
        raise where.fail(
            node,
            f"{name} {value!r} must be 1-100 letters, digits, '.', '_' or '-', not starting with '.' or '-'",
        )
    return value


def parse_plan(text: str, file: str = "<plan>") -> Plan:
    """Parse and validate a plan; raises BadInput naming the field and line of the first problem."""
    where = _Where(file)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise BadInput(f"{file}{line}: not valid YAML: {getattr(exc, 'problem', None) or exc}") from exc
    if root is None:
        raise BadInput(f"{file}: the plan is empty")
    top = _mapping(where, root, "the plan", PLAN_KEYS)
    for required in ("id", "agent", "repo", "tasks"):
        if required not in top:
            raise where.fail(root, f"missing required key {required!r}")
    values: dict[str, Any] = {
        "id": _identifier(where, top["id"], "id"),
        "agent": _scalar(where, top["agent"], "agent", "string"),
        "repo": _scalar(where, top["repo"], "repo", "string"),
    }
    for optional in ("branch", "base", "context"):
        if optional in top:
            values[optional] = _scalar(where, top[optional], optional, "string")
    tasks_node = top["tasks"]
    if not isinstance(tasks_node, yaml.SequenceNode) or not tasks_node.value:
        raise where.fail(tasks_node, "tasks must be a non-empty list")
    tasks: list[Task] = []
    seen: dict[str, int] = {}
    for index, task_node in enumerate(tasks_node.value, 1):
        name = f"task {index}"
        fields = _mapping(where, task_node, name, TASK_KEYS)
        for required in ("id", "prompt"):
            if required not in fields:
                raise where.fail(task_node, f"{name} is missing required key {required!r}")
        task_id = _identifier(where, fields["id"], f"{name} id")
        if task_id in seen:
            raise where.fail(
                fields["id"], f"duplicate task id {task_id!r} (first used by task {seen[task_id]})"
            )
        seen[task_id] = index
        on_failure = "stop"
        if "on_failure" in fields:
            on_failure = _scalar(where, fields["on_failure"], f"{name} on_failure", "string")
            if on_failure not in ON_FAILURE:
                raise where.fail(
                    fields["on_failure"], f"{name} on_failure must be one of {', '.join(ON_FAILURE)}"
                )
        retries = 2 if on_failure == "retry" else 0
        if "retries" in fields:
            if on_failure != "retry":
                raise where.fail(fields["retries"], f"{name} retries needs on_failure: retry")
            retries = _scalar(where, fields["retries"], f"{name} retries", "integer")
        timeout = (
            _scalar(where, fields["timeout"], f"{name} timeout", "number") if "timeout" in fields else None
        )
        prompt = _scalar(where, fields["prompt"], f"{name} prompt", "string")
        tasks.append(Task(task_id, prompt, on_failure, retries, timeout))
    return Plan(tasks=tasks, file=file, **values)


def load_plan(path: Path) -> Plan:
    try:
        text = path.read_text()
    except OSError as exc:
        raise BadInput(f"cannot read plan file {path}: {exc.strerror}") from exc
    return parse_plan(text, str(path))
