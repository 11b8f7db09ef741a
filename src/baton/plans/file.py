"""Plan files: YAML, validated strictly, with errors that name the field and its line (the YAML is
composed into nodes, not just loaded, so every error can point at a line). :func:`load_plan` reads one
into a :class:`Plan` (whose docstring shows every key) and makes a relative local ``repo:`` absolute
against the plan file's directory, as Compose reads a compose file's paths, so a plan works the same
from wherever it is run (:func:`_repo_path`). The format and the ``repo:`` rule, for people:
docs/cli.md (Plans).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from baton.caps.model import NAMES, Caps, check_cap
from baton.errors import BadInput
from baton.keys import THREAD_RE, is_scp_remote, parse_repo
from baton.models import Access
from baton.settings import check_on_limit, parse_size

ON_FAILURE = ("stop", "continue", "retry")
CAP_KEYS = {"max_usd", "max_tokens", "max_minutes", "max_turns"}  # the plan thread's spending caps
PLAN_KEYS = {"id", "agent", "repo", "branch", "base", "context", "on_limit", "tasks", *CAP_KEYS}
TASK_KEYS = {"id", "prompt", "on_failure", "retries", "timeout", "access", "memory", "pids", "cpu"}
STDIN = "<stdin>"  # the file name of a plan read from standard input (its paths: the current directory's)


@dataclass(frozen=True)
class Task:
    id: str
    prompt: str
    on_failure: str = "stop"
    retries: int = 0
    timeout: float | None = None
    access: Access | None = None
    memory: str | None = None  # the run's limits (None: the settings')
    pids: int | None = None
    cpu: float | None = None

    @property
    def prompt_sha(self) -> str:
        return hashlib.sha256(self.prompt.encode()).hexdigest()


@dataclass(frozen=True)
class Plan:
    """A plan file, every key of it:

    ```yaml
    id: billing-api              # the plan's id; its conversation is the thread `plan-<id>`
    agent: claude
    repo: https://github.com/acme/api
    branch: feature/billing      # optional (default baton/<agent>/plan-<id>)
    base: main                   # optional
    context: |                   # optional: shared context, in the first prompt only
      We are adding invoices to the billing service.
    on_limit: fallback:codex     # optional: wait (default: setting on_limit) or fallback:<agent>,
                                 #   which carries the plan's tasks while the agent's usage quota
                                 #   is spent
    max_usd: 5                   # optional spending caps of the plan's thread (also max_tokens,
                                 #   max_minutes, max_turns; the settings' hold too): a task that
                                 #   would start past one parks the plan (`baton budget` raises it)
    tasks:
      - id: models
        prompt: Add the Invoice model.
      - id: api
        prompt: Add the /invoices endpoints.
        on_failure: retry          # stop (default) | continue | retry
        retries: 2                 # with retry: how many extra attempts (default 2)
        timeout: 900               # seconds, optional
        access: full               # read | edit | full, optional (default: --access, else setting
                                   #   access)
        memory: 4G                 # the run's limits, optional (default: settings run_memory,
        pids: 512                  #   run_pids, run_cpu; 0: no limit); enforced where the host
        cpu: 2                     #   gives runs a cgroup
    ```
    """

    id: str
    agent: str
    repo: str
    tasks: list[Task]
    branch: str | None = None
    base: str | None = None
    context: str | None = None
    on_limit: str | None = None  # wait or fallback:<agent> (None: the setting on_limit)
    caps: Caps = field(default_factory=Caps)  # the plan thread's spending caps (max_usd, ...)
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
    value = _construct(where, node, name)
    if kind == "string":
        return _string(where, node, name, value)
    if kind == "integer":
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise where.fail(node, f"{name} must be a whole number ≥ 0, not {node.value!r}")
        return value
    if kind == "number":
        # not NaN or infinity: a timeout must be a real, finite number of seconds
        if not isinstance(value, int | float) or isinstance(value, bool) or not 0 < value < math.inf:
            raise where.fail(node, f"{name} must be a positive number of seconds, not {node.value!r}")
        return float(value)
    raise AssertionError(kind)


def _construct(where: _Where, node: yaml.ScalarNode, name: str) -> Any:
    """The scalar's Python value, as the SafeLoader would build it.

    A tag (``!!float abc``, ``!!bool x``, ``!!binary x``, ``!custom``) makes the constructor parse the
    text its own way, and each fails with its own exception — ValueError, KeyError, AttributeError,
    binascii.Error, ConstructorError — so all of them become one BadInput naming the field and line.
    """
    try:
        return yaml.safe_load(yaml.serialize(node))
    except Exception as exc:  # see above: the constructors' exceptions are not one family
        raise where.fail(node, f"{name}: {node.tag} cannot be read from {node.value!r}") from exc


def _string(where: _Where, node: yaml.Node, name: str, value: Any) -> str:
    # a number where a string is wanted (``id: 42``) is taken as its text
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise where.fail(node, f"{name} must be a non-empty string")
    return value


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


def _require(
    where: _Where, node: yaml.Node, fields: dict[str, yaml.Node], keys: tuple[str, ...], name: str
) -> None:
    """Fail naming the first of ``keys`` missing from ``fields`` (``name`` "" for the plan itself)."""
    for required in keys:
        if required not in fields:
            subject = f"{name} is missing" if name else "missing"
            raise where.fail(node, f"{subject} required key {required!r}")


def _identifier(where: _Where, node: yaml.Node, name: str) -> str:
    value = str(_scalar(where, node, name, "string"))
    # the same rules as a thread (the plan's thread is plan-<id>), which follow git's for branch names
    if len(value) > 100 or not THREAD_RE.fullmatch(value) or ".." in value or value.endswith((".", ".lock")):
        raise where.fail(
            node,
            f"{name} {value!r} must be 1-100 letters, digits, '.', '_' or '-', not starting with '.' or '-' "
            "and not ending with '.' or '.lock'",
        )
    return value


def _compose(text: str, file: str) -> yaml.Node:
    """The YAML's node tree (with line numbers), or BadInput naming the line of the syntax error."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.reader.ReaderError as exc:  # a character YAML forbids; it has a position, not a mark
        number = text.count("\n", 0, exc.position) + 1
        code = ord(exc.character) if isinstance(exc.character, str) else exc.character
        raise BadInput(f"{file}:{number}: not valid YAML: character U+{code:04X} is not allowed") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise BadInput(f"{file}{line}: not valid YAML: {getattr(exc, 'problem', None) or exc}") from exc
    except RecursionError as exc:  # PyYAML's composer recurses once per level of nesting
        raise BadInput(f"{file}: the YAML is nested too deeply") from exc
    if root is None:
        raise BadInput(f"{file}: the plan is empty")
    return root


def parse_plan(text: str, file: str = "<plan>", base: Path | None = None) -> Plan:
    """Parse and validate a plan; raises BadInput naming the field and line of the first problem.

    ``base``: the directory a relative local ``repo:`` is read from (:func:`load_plan` gives the plan
    file's); the repo is then made absolute here, and one that is no repository is refused. ``None``:
    the repo as written (a relative path is then read from the current directory when the plan runs)."""
    where = _Where(file)
    root = _compose(text, file)
    top = _mapping(where, root, "the plan", PLAN_KEYS)
    _require(where, root, top, ("id", "agent", "repo", "tasks"), "")
    repo = _scalar(where, top["repo"], "repo", "string")
    values: dict[str, Any] = {
        "id": _identifier(where, top["id"], "id"),
        "agent": _scalar(where, top["agent"], "agent", "string"),
        "repo": repo if base is None else _repo_path(where, top["repo"], repo, base),
    }
    for optional in ("branch", "base", "context", "on_limit"):
        if optional in top:
            values[optional] = _scalar(where, top[optional], optional, "string")
    if "on_limit" in values:
        try:
            check_on_limit(values["on_limit"], "on_limit")
        except BadInput as exc:
            raise where.fail(top["on_limit"], str(exc)) from None
    return Plan(tasks=_tasks(where, top["tasks"]), file=file, caps=_caps(where, top), **values)


def _caps(where: _Where, top: dict[str, yaml.Node]) -> Caps:
    """The plan's ``max_usd``, ``max_tokens``, ``max_minutes``, ``max_turns``, each read as a run's."""
    found: dict[str, float | None] = {}
    for measure, name in NAMES.items():
        if name not in top:
            continue
        node = top[name]
        if not isinstance(node, yaml.ScalarNode):
            raise where.fail(node, f"{name} must be a number")
        value = _construct(where, node, name)
        try:
            found[measure.value] = check_cap(measure, value, name)
        except BadInput as exc:
            raise where.fail(node, str(exc)) from None
    return Caps(**found)


def _tasks(where: _Where, node: yaml.Node) -> list[Task]:
    if not isinstance(node, yaml.SequenceNode) or not node.value:
        raise where.fail(node, "tasks must be a non-empty list")
    tasks: list[Task] = []
    seen: dict[str, int] = {}
    for index, task_node in enumerate(node.value, 1):
        task, id_node = _task(where, task_node, f"task {index}")
        if task.id in seen:
            raise where.fail(id_node, f"duplicate task id {task.id!r} (first used by task {seen[task.id]})")
        seen[task.id] = index
        tasks.append(task)
    return tasks


def _task(where: _Where, node: yaml.Node, name: str) -> tuple[Task, yaml.Node]:
    """One task, and the node of its id (for the duplicate-id error)."""
    fields = _mapping(where, node, name, TASK_KEYS)
    _require(where, node, fields, ("id", "prompt"), name)
    task_id = _identifier(where, fields["id"], f"{name} id")
    on_failure, retries = _failure_policy(where, fields, name)
    timeout = _scalar(where, fields["timeout"], f"{name} timeout", "number") if "timeout" in fields else None
    prompt = _scalar(where, fields["prompt"], f"{name} prompt", "string")
    access = _access(where, fields["access"], f"{name} access") if "access" in fields else None
    limits = _limits(where, fields, name)
    return Task(task_id, prompt, on_failure, retries, timeout, access, **limits), fields["id"]


def _limits(where: _Where, fields: dict[str, yaml.Node], name: str) -> dict[str, Any]:
    """A task's own ``memory`` (a size), ``pids`` and ``cpu`` (numbers ≥ 0), each checked here."""
    found: dict[str, Any] = {}
    if "memory" in fields:
        text = str(_scalar(where, fields["memory"], f"{name} memory", "string"))
        try:
            parse_size(text, f"{name} memory")
        except BadInput as exc:
            raise where.fail(fields["memory"], str(exc)) from None
        found["memory"] = text
    if "pids" in fields:
        found["pids"] = _scalar(where, fields["pids"], f"{name} pids", "integer")
    if "cpu" in fields:
        node = fields["cpu"]
        value = _construct(where, node, f"{name} cpu") if isinstance(node, yaml.ScalarNode) else None
        if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value < math.inf:
            raise where.fail(fields["cpu"], f"{name} cpu must be a number of cores ≥ 0, not {value!r}")
        found["cpu"] = float(value)
    return found


def _access(where: _Where, node: yaml.Node, name: str) -> Access:
    value = _scalar(where, node, name, "string")
    try:
        return Access(value)
    except ValueError:
        words = ", ".join(a.value for a in Access)
        raise where.fail(node, f"{name} must be one of {words}, not {value!r}") from None


def _failure_policy(where: _Where, fields: dict[str, yaml.Node], name: str) -> tuple[str, int]:
    """``on_failure`` (default stop) and ``retries`` (allowed only with retry, default 2 there)."""
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
    return on_failure, retries


def _repo_path(where: _Where, node: yaml.Node, repo: str, base: Path) -> str:
    """``repo`` with a relative local path made absolute against ``base``; BadInput naming the path
    tried when it is no repository. A URL (``https://``, ``git@host:...``), an absolute or ``~`` path:
    as written.

    ``base`` is the plan file's directory (as Compose reads a compose file's paths), so a plan works
    the same from wherever it is run; a plan read from standard input (``baton plan run -``) has no
    directory, and its relative paths are read from the current one. ``repo:`` is a plan's only path
    (``base:`` is a git ref, ``context:`` text)."""
    text = repo.strip()
    if "://" in text or text.startswith("~") or Path(text).is_absolute() or is_scp_remote(text, base):
        return repo
    tried = _real(base / text)  # as a run from the plan's directory read it (the cwd is a real path)
    try:
        parse_repo(tried)
    except BadInput as exc:
        raise where.fail(node, f"repo {repo!r} {_relative_to(where.file, base)}: {exc}{_hint(text)}") from exc
    return tried


def _real(path: Path) -> str:
    """The path with its symlinks and ``..`` resolved (by the OS: ``link/..`` is the link's target's
    parent), or as it is when the OS cannot resolve it (a symlink loop)."""
    try:
        return str(path.resolve())
    except (OSError, RuntimeError):
        return str(path.absolute())


def _relative_to(file: str, base: Path) -> str:
    if file == STDIN:
        return f"is read from the current directory {_real(base)} (the plan came from standard input)"
    return f"is read from the plan file's directory {_real(base)}"


def _hint(text: str) -> str:
    """For a plan written for the old rule (relative to where it was run): where that would be."""
    try:
        here = _real(Path.cwd() / text)
        parse_repo(here)
    except (BadInput, OSError):
        return ""
    return (
        f"; {here} (from the current directory) is a repository: a plan's relative paths "
        "are read from its own directory, so write that path relative to the plan file, or absolute"
    )


def load_plan(path: Path) -> Plan:
    """The plan in file ``path``, its relative ``repo:`` read from the file's directory."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise BadInput(f"cannot read plan file {path}: {exc.strerror}") from exc
    return parse_plan(text, str(path), base=path.parent)
