"""What the API's fields take, said once for the check and for the schema. A field whose rule is baton's
own is an ``Annotated`` type carrying a :class:`Rule`: the rule's JSON schema (a ``pattern``, an
``enum``, lengths) goes into ``/openapi.json``, and its check runs when the request is read — the CLI's
own function where there is one (a thread's name: :func:`baton.keys.validate_thread`; an agent's: the
registry; an instruction's text), so a refused value gets the CLI's words. A repo and the rules between
a run's fields (:func:`run_rules`) are only stated here: :func:`baton.runner.resolve.check_request`
refuses them, in its own words, before anything is written. The patterns are ECMA-262 as JSON Schema
wants, without look-arounds (RE2 and Rust's regex, which many clients validate with, have none); the
tests check each, read as ECMA-262, against the function that enforces it (for a branch: against git).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BeforeValidator, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

from baton.agents import AGENTS
from baton.agents.base import check_text
from baton.errors import BadInput, invalid_value
from baton.keys import validate_agent, validate_thread
from baton.models import Mode
from baton.settings import check_on_limit

ERROR_TYPE = "baton"  # a check's refusal: its message is the whole 422 detail

# What Python's str.strip() and str.isspace() take as white space (ECMA's \s differs: it leaves out
# U+001C..U+001F and includes U+FEFF), as a character class.
SPACE = r"\t\n\u000b\f\r\u001c-\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"

# A thread (baton.keys.validate_thread): letters, digits, '.', '_', '-'; 1-128 of them (maxLength);
# not starting with '.' or '-'; no '..'; not ending with '.' or '.lock'. Dots split it into segments
# of the other characters; a last segment after a dot is anything but "lock".
_SEG = "[A-Za-z0-9_-]"
_NOT_LOCK = (
    f"(?:{_SEG}{{1,3}}|{_SEG}{{5,}}|[A-Za-km-z0-9_-]{_SEG}{{3}}|l[A-Za-np-z0-9_-]{_SEG}{{2}}"
    f"|lo[A-Zabd-z0-9_-]{_SEG}|loc[A-Za-jl-z0-9_-])"
)
THREAD_PATTERN = f"^[A-Za-z0-9_]{_SEG}*(?:(?:\\.{_SEG}+)*\\.{_NOT_LOCK})?$"
THREAD_MAX = 128

# An instruction: some text that is not all white space (runner.resolve.validate), and no NUL byte,
# which no agent CLI can take (agents.base.check_text).
PROMPT_PATTERN = f"^[^\\u0000]*[^\\u0000{SPACE}][^\\u0000]*$"
TEXT_PATTERN = "^[^\\u0000]*$"

# A repo (keys.parse_repo): once stripped of white space, 1-2048 characters, none a control character.
REPO_MAX = 2048
_REPO_CHAR = f"[^\\u0000-\\u001f{SPACE}]"
REPO_PATTERN = f"^[{SPACE}]*{_REPO_CHAR}(?:[^\\u0000-\\u001f]{{0,{REPO_MAX - 2}}}{_REPO_CHAR})?[{SPACE}]*$"

# A branch, as `git check-ref-format --branch` takes it and the runner asks for it
# (runner.resolve._short_branch): none of git's forbidden characters, then none of these anywhere.
# "refs/heads/NAME" is NAME; any other "refs/..." is no branch.
BRANCH_PATTERN = "^[^\\u0000-\\u0020\\u007f~^:?*\\[\\\\]+$"
BRANCH_NEVER = (
    "^(?:refs/heads/)?-",  # it would read as an option
    "^(?:refs/heads/)?HEAD$",
    "^/|/$|//",  # an empty path component
    "^\\.|/\\.",  # a component starting with '.'
    "\\.\\.",
    "@\\{",
    "\\.lock(?:/|$)",  # a component ending with ".lock"
    "\\.$",
    "^refs/(?:[^h]|h[^e]|he[^a]|hea[^d]|head[^s]|heads[^/])",  # refs/ other than refs/heads/
    "^refs/(?:h|he|hea|head|heads)?$",
    "^refs/heads/refs/",
)

# A token's name (service.auth.create_token).
TOKEN_NAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"

# What a spent usage quota does (settings.check_on_limit): wait, or fallback:<an agent's name>.
ON_LIMIT_PATTERN = "^(?:wait|fallback:[a-z][a-z0-9_-]{0,31})$"


@dataclass(frozen=True, eq=False)  # hashed by identity: typing hashes Annotated's metadata
class Rule:
    """An ``Annotated`` marker: ``check`` (raises :class:`BadInput`; None: stated only) runs after the
    type's own validation, and ``schema`` (or what it returns, read when the schema is generated) is
    added to the type's JSON schema."""

    schema: Mapping[str, Any] | Callable[[], Mapping[str, Any]]
    check: Callable[[str], object] | None = None

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        inner = handler(source)
        if self.check is None:
            return inner
        return core_schema.no_info_after_validator_function(self._checked, inner)

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        stated = handler(schema)
        stated.update(self.schema() if callable(self.schema) else self.schema)
        return stated

    def _checked(self, value: str) -> str:
        assert self.check is not None
        try:
            self.check(value)
        except BadInput as exc:
            raise PydanticCustomError(ERROR_TYPE, "{message}", {"message": str(exc)}) from None
        return value


def error_words(name: str, error: Mapping[str, Any]) -> str:
    """One of pydantic's errors of the field ``name`` in baton's words: a field's own check's message as
    it is (it names the field), else what the field takes and was given (:func:`baton.errors.invalid_value`),
    a float field's bounds said as whole numbers where they are ("more than 0", not "more than 0.0")."""
    if error["type"] == ERROR_TYPE:
        return str(error["ctx"]["message"])
    ctx = {
        k: int(v) if isinstance(v, float) and v.is_integer() else v
        for k, v in (error.get("ctx") or {}).items()
    }
    return invalid_value(name, {**error, "ctx": ctx})


def known_agent(name: str) -> None:
    validate_agent(name, AGENTS)


def agents_enum() -> dict[str, Any]:
    return {"enum": list(AGENTS)}


def check_prompt(prompt: str) -> None:
    check_text("prompt", prompt)
    if not prompt.strip():
        raise BadInput("prompt is empty")


def check_context(context: str) -> None:
    check_text("context", context)


def check_base(base: str) -> None:
    if "\0" in base:
        raise BadInput("base contains a NUL byte, which no git ref can")


_BRANCH_OK = re.compile(BRANCH_PATTERN)
_BRANCH_NEVER = re.compile("|".join(f"(?:{p})" for p in BRANCH_NEVER))


def branch_schema() -> dict[str, Any]:
    return {"pattern": BRANCH_PATTERN, "not": {"anyOf": [{"pattern": p} for p in BRANCH_NEVER]}}


def check_branch(branch: str) -> None:
    """The branch's form, as the runner checks it with git (and in the same words): checked here
    against git's rule as the patterns state it (the runner then asks git itself), so a NUL byte never
    reaches git's argv."""
    if not _BRANCH_OK.fullmatch(branch) or _BRANCH_NEVER.search(branch):
        raise BadInput(f"branch {branch!r} is not a valid branch name")


_TOKEN_NAME = re.compile(TOKEN_NAME_PATTERN)


def check_token_name(name: str) -> None:
    if not _TOKEN_NAME.fullmatch(name):
        raise BadInput(
            f"token name {name!r}: 1-64 of letters, digits, '.', '_', '-', starting with one of the first two"
        )


def check_on_limit_option(value: str) -> None:
    check_on_limit(value, "on_limit")


# The registry can grow at run time (register_agent, BATON_AGENTS_EXTRA), so Agent's enum is read from it when
# the schema is generated (FastAPI generates the OpenAPI document when first asked for, and keeps it), and its
# check reads the registry too: an agent registered before the service serves is listed and taken.
Agent = Annotated[str, Rule(agents_enum, known_agent)]
Thread = Annotated[
    str, Rule({"pattern": THREAD_PATTERN, "minLength": 1, "maxLength": THREAD_MAX}, validate_thread)
]
Prompt = Annotated[str, Rule({"pattern": PROMPT_PATTERN, "minLength": 1}, check_prompt)]
Context = Annotated[str, Rule({"pattern": TEXT_PATTERN}, check_context)]
Base = Annotated[str, Rule({"pattern": TEXT_PATTERN}, check_base)]
Branch = Annotated[str, Rule(branch_schema, check_branch)]
RepoSpec = Annotated[str, Rule({"pattern": REPO_PATTERN, "minLength": 1})]  # parse_repo says the rest
TokenName = Annotated[
    str, Rule({"pattern": TOKEN_NAME_PATTERN, "minLength": 1, "maxLength": 64}, check_token_name)
]
OnLimit = Annotated[str, Rule({"pattern": ON_LIMIT_PATTERN, "maxLength": 41}, check_on_limit_option)]


def _integral(value: Any) -> Any:
    """A float with no fraction (``38950163.0``) as the integer it is: JSON Schema's ``integer`` takes
    it (a number whose fractional part is zero), so a client may send it; any other value as given."""
    return int(value) if type(value) is float and value.is_integer() else value


# A whole number, strictly: false is not 0 and "3" is not 3 (the schema's integer refuses both), but
# 3.0 is 3; 3.5 is refused ("a whole number"): ``Annotated[int, Strict(), Field(<bounds>), INTEGRAL]``.
# The bounds come before INTEGRAL: after a validator pydantic states them in /openapi.json under its own
# names (``ge``, ``le``), which JSON Schema does not know, in place of ``minimum`` and ``maximum``.
INTEGRAL = BeforeValidator(_integral)


def run_rules(agents: list[str]) -> list[dict[str, Any]]:
    """What a run's options take together (:func:`baton.runner.resolve.validate`), as JSON Schema
    (``allOf`` of the run's body): fork_from needs mode fork; base or base_thread, not both; a
    hand-off starts a new conversation (mode auto or fresh) from another agent's."""
    given = {"type": "string"}
    rules: list[dict[str, Any]] = [
        {
            "if": {"properties": {"fork_from": given}, "required": ["fork_from"]},
            "then": {"properties": {"mode": {"const": Mode.FORK.value}}, "required": ["mode"]},
        },
        {"not": {"properties": {"base": given, "base_thread": given}, "required": ["base", "base_thread"]}},
        {
            "if": {"properties": {"handoff_from": given}, "required": ["handoff_from"]},
            "then": {"properties": {"mode": {"enum": [Mode.AUTO.value, Mode.FRESH.value]}}},
        },
    ]
    # no hand-off from the agent itself: one rule for all agents (one if/then per agent made the
    # body's schema branch per agent, past what a schema-driven generator such as Schemathesis models)
    same = [
        {
            "properties": {"agent": {"const": name}, "handoff_from": {"const": name}},
            "required": ["agent", "handoff_from"],
        }
        for name in agents
    ]
    rules.append({"not": {"anyOf": same}})
    return rules
