"""The API's published contract tells the truth (issue 31, items 14 and 15), piece by piece; Schemathesis
checks the whole (tests/service/test_service_schema.py).

- The patterns ``/openapi.json`` states mean what the checks behind them enforce: a thread
  (:func:`baton.keys.validate_thread`), a branch (git's ``check-ref-format --branch``, as the runner asks
  it), an instruction, a repo, white space as Python strips it.
- The ``agent`` fields list the registered agents, a runtime registration included, and take them.
- A refused field is said in the CLI's words; a conflict is 409 (a token's name taken, a short run id
  that matches several runs); every status a route answers is documented.
- A 405's ``Allow`` names every method of the path; a browser that asks for a page that is not there
  gets an HTML 404, the API a JSON one.
- ``GET /v1/runs`` pages as ``GET /v1/sessions`` does.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from baton.agents import AGENTS, register_agent
from baton.errors import BadInput
from baton.keys import parse_repo, validate_thread
from baton.models import JobRecord, JobStatus
from baton.runner.resolve import _short_branch
from baton.service.app import create_app
from baton.service.fields import (
    BRANCH_NEVER,
    BRANCH_PATTERN,
    PROMPT_PATTERN,
    REPO_MAX,
    REPO_PATTERN,
    SPACE,
    THREAD_MAX,
    THREAD_PATTERN,
    check_branch,
    check_prompt,
)
from baton.service.runs import RunBody
from baton.settings import Settings
from tests.service_fixtures import Service, service_fixture  # noqa: F401 (the `service` fixture)

QUICK = settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck), database=None)


def refuses(check: Any, value: str) -> bool:
    try:
        check(value)
    except BadInput:
        return True
    return False


@functools.cache
def _pattern(pattern: str) -> jsonschema_rs.Validator:
    return jsonschema_rs.validator_for({"type": "string", "pattern": pattern})


def states(pattern: str, value: str) -> bool:
    """Whether ``value`` matches a JSON Schema ``pattern`` (ECMA-262, as the validator Schemathesis uses
    reads it: ``$`` is the end, not a newline before it)."""
    return _pattern(pattern).is_valid(value)


# -- the patterns mean what the checks enforce ---------------------------------------------------------


def test_space_is_what_python_strips() -> None:
    spaces = {chr(c) for c in range(0x110000) if chr(c).isspace()}
    assert {chr(c) for c in range(0x110000) if re.fullmatch(f"[{SPACE}]", chr(c))} == spaces


THREADISH = st.text(alphabet="ab_Z9.-/lock\n ", max_size=12) | st.from_regex(THREAD_PATTERN, fullmatch=True)


@QUICK
@given(THREADISH)
def test_the_thread_pattern_is_validate_thread(thread: str) -> None:
    stated = states(THREAD_PATTERN, thread) and len(thread) <= THREAD_MAX
    assert stated == (not refuses(validate_thread, thread)), thread


def test_the_thread_pattern_at_its_edges() -> None:
    for thread in ("a" * 128, "a.lock", "a.b.lock", "a..b", "a.", ".a", "-a", "_a", "a.lockb", "lock", "a/b"):
        assert (states(THREAD_PATTERN, thread) and len(thread) <= THREAD_MAX) == (
            not refuses(validate_thread, thread)
        ), thread
    assert refuses(validate_thread, "a" * 129) and states(THREAD_PATTERN, "a" * 129)  # maxLength says it


BRANCHY = st.lists(
    st.sampled_from([*"ab./-@{}~^:?*[\\ \x7f\t\x00lockü%HEAD", "refs/", "heads/", ".lock", "HEAD"]),
    max_size=8,
).map("".join)


@settings(QUICK, max_examples=300)
@given(BRANCHY)
def test_the_branch_rule_is_gits(branch: str) -> None:
    """What the schema states (a pattern, and none of BRANCH_NEVER), what the API checks, and what
    ``git check-ref-format --branch`` takes (through the runner, which also refuses ``refs/`` names):
    one rule. A NUL byte git never sees: the API refuses it first."""
    stated = states(BRANCH_PATTERN, branch) and not any(states(p, branch) for p in BRANCH_NEVER)
    assert stated == (not refuses(check_branch, branch)), branch
    if "\0" not in branch:
        assert stated == (not refuses(_short_branch, branch)), branch


@QUICK
@given(st.text(alphabet=" \t\n\x1c\x85\u3000\x00ab", max_size=6))
def test_the_prompt_pattern_is_not_blank_and_no_nul(prompt: str) -> None:
    assert states(PROMPT_PATTERN, prompt) == (not refuses(check_prompt, prompt)), repr(prompt)


def _refused_by_form(spec: str) -> bool:
    """parse_repo refuses ``spec`` for its form (blank, a control character, too long), not because
    it names no repository."""
    try:
        parse_repo(spec)
    except BadInput as exc:
        words = str(exc)
        return words.startswith("repo is empty") or "control characters" in words or "the limit is" in words
    return False


@QUICK
@given(st.text(alphabet=" \t\n\x1c\x01\x7f\x85ab/:.", max_size=8))
def test_the_repo_pattern_is_parse_repos_form(spec: str) -> None:
    assert states(REPO_PATTERN, spec) == (not _refused_by_form(spec)), repr(spec)


def test_the_repo_pattern_counts_the_stripped_length() -> None:
    for spec in (" " + "a" * REPO_MAX + "\n", "a" * (REPO_MAX + 1), "\t" + "a" * (REPO_MAX - 1) + " b"):
        assert states(REPO_PATTERN, spec) == (not _refused_by_form(spec)), len(spec)


# -- the registered agents ------------------------------------------------------------------------------


@pytest.fixture
def extra_agent() -> Iterator[str]:
    """An agent registered at run time (its factory is never called here)."""
    name = "late-agent"
    register_agent(name, "baton.testing.fake:from_settings")
    try:
        yield name
    finally:
        AGENTS.remove(name)


def test_the_agent_fields_list_the_registered_agents(settings: Settings, extra_agent: str) -> None:
    document = create_app(settings).openapi()
    schemas = document["components"]["schemas"]
    session = {p["name"]: p["schema"] for p in document["paths"]["/v1/session"]["get"]["parameters"]}
    for listed in (
        schemas["RunBody"]["properties"]["agent"]["enum"],
        schemas["ResetIn"]["properties"]["agent"]["enum"],
        session["agent"]["enum"],
    ):
        assert listed == list(AGENTS) and extra_agent in listed and "claude" in listed
    handoff = schemas["RunBody"]["properties"]["handoff_from"]["anyOf"][0]
    assert handoff["enum"] == list(AGENTS)
    # the rules between fields name each agent: no hand-off from itself
    rules = schemas["RunBody"]["allOf"]
    same = {"properties": {"agent": {"const": extra_agent}, "handoff_from": {"const": extra_agent}},
            "required": ["agent", "handoff_from"]}  # fmt: skip
    assert any(same in rule.get("not", {}).get("anyOf", []) for rule in rules), rules
    body = {"agent": extra_agent, "repo": "r", "thread": "t", "prompt": "p"}
    assert RunBody.model_validate(body).model_dump()["agent"] == extra_agent


# -- words, conflicts and documented statuses -------------------------------------------------------------


def test_a_refused_field_is_said_in_the_clis_words(service: Service, src_repo: Path) -> None:
    body = {"agent": "fake", "repo": str(src_repo), "thread": "t", "prompt": "p"}
    known = ", ".join(sorted(AGENTS))
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("agent", {"agent": ""}, f"unknown agent '': choose one of {known}"),
        ("thread", {"thread": "a..b"}, "thread 'a..b' must not contain '..' or end with '.' or '.lock'"),
        (
            "thread",
            {"thread": ""},
            "thread is empty: give 1-128 characters of letters, digits, '.', '_' or '-'",
        ),
        ("prompt", {"prompt": " \n"}, "prompt is empty"),
        (
            "prompt",
            {"prompt": "a\0b"},
            "the prompt contains a NUL byte, which no agent CLI can take; remove it",
        ),
        ("branch", {"branch": "a\0b"}, "branch 'a\\x00b' is not a valid branch name"),  # not git's 500
        ("branch", {"branch": "a..b"}, "branch 'a..b' is not a valid branch name"),
        ("fork_from", {"fork_from": "-x"}, "thread '-x' must not start with '.' or '-'"),
        ("timeout", {"timeout": 0}, "timeout takes a number more than 0, not 0"),
        ("retries", {"retries": 101}, "retries takes a number of at most 100, not 101"),
    ]
    with service.client("admin") as http:
        for _field, change, words in cases:
            refused = http.post("/v1/runs", json={**body, **change})
            assert (refused.status_code, refused.json()) == (422, {"detail": words}), change
        # the rules between fields stay the runner's, in its words
        same = http.post("/v1/runs", json={**body, "handoff_from": "fake"})
        assert same.status_code == 422 and "cannot hand off from its own agent" in same.json()["detail"]
        fork = http.post("/v1/runs", json={**body, "fork_from": "other"})
        assert fork.json() == {"detail": "fork_from needs mode fork"}
        key = {"agent": "nobody", "repo": "github.com/a/b", "thread": "t..1"}
        shown = http.get("/v1/session", params=key)
        assert shown.status_code == 422
        assert shown.json()["detail"] == (
            f"unknown agent 'nobody': choose one of {known}; "
            "thread 't..1' must not contain '..' or end with '.' or '.lock'"
        )
        reset = http.post("/v1/sessions/reset", json={**key, "agent": "fake"})
        assert reset.json() == {"detail": "thread 't..1' must not contain '..' or end with '.' or '.lock'"}
        assert http.get("/v1/session", params={**key, "agent": "fake", "thread": "t1"}).status_code == 404
    assert service.store.list_jobs() == []  # nothing was written


def _done_job(job_id: str, thread: str, submitted_at: float) -> JobRecord:
    return JobRecord(
        id=job_id,
        agent="fake",
        repo="github.com/acme/api",
        thread=thread,
        request={},
        status=JobStatus.DONE,
        actor="ci",
        submitted_at=submitted_at,
        ended_at=submitted_at + 1,
        outcome="succeeded",
    )


def test_conflicts_are_409(service: Service) -> None:
    now = time.time()
    for n, job_id in enumerate(("0aaaa1111bbbb", "0aaaa2222cccc")):
        service.store.add_job(_done_job(job_id, f"t{n}", now + n))
    with service.client("admin") as http:
        ambiguous = http.get("/v1/runs/0aaaa")
        assert ambiguous.status_code == 409
        assert ambiguous.json()["detail"].startswith("ambiguous: 2 runs match '0aaaa'")
        assert http.get("/v1/runs/0aaaa1111").json()["run_id"] == "0aaaa1111bbbb"
        assert http.post("/v1/tokens", json={"name": "twice", "scope": "read"}).status_code == 201
        again = http.post("/v1/tokens", json={"name": "twice", "scope": "admin"})
        assert again.status_code == 409 and "exists" in again.json()["detail"]


def test_every_status_a_route_answers_is_documented(settings: Settings) -> None:
    paths = create_app(settings).openapi()["paths"]
    for path, item in paths.items():
        for method, operation in item.items():
            codes = set(operation["responses"])
            assert "413" in codes, (method, path)  # the body limit holds for every route
            if path.startswith("/v1/"):
                assert {"401", "403", "404", "409", "413", "422", "500"} <= codes, (method, path)
            if path.startswith("/webhooks/"):
                assert {"202", "400", "401", "403", "413"} <= codes, (method, path)
    assert "503" in paths["/v1/runs"]["post"]["responses"]  # BATON_CONFINE=required on no Landlock
    assert "503" not in paths["/v1/runs"]["get"]["responses"]


def test_webhooks_without_a_secret_answer_the_documented_403(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BATON_WEBHOOK_SECRET", raising=False)
    document = httpx.get(service.url + "/openapi.json", timeout=30).json()
    documented = document["paths"]["/webhooks/github"]["post"]
    answer = httpx.post(service.url + "/webhooks/github", content=b"{}")
    assert answer.status_code == 403 and "403" in documented["responses"]
    assert "503" not in documented["responses"], "not a server error: the request cannot be authenticated"
    assert answer.json() == {"detail": "webhooks are disabled: set BATON_WEBHOOK_SECRET on the service"}


# -- methods and missing pages ------------------------------------------------------------------------------


def test_a_405_names_every_method_of_its_path(service: Service) -> None:
    with service.client("admin") as http:
        for method, path, allow in [
            ("OPTIONS", "/v1/runs", "GET, POST"),
            ("PUT", "/v1/runs", "GET, POST"),
            ("OPTIONS", "/v1/tokens", "GET, POST"),
            ("PATCH", "/v1/tokens/x", "DELETE"),
            ("DELETE", "/v1/runs/x", "GET"),
            ("GET", "/v1/runs/x/cancel", "POST"),
            ("POST", "/healthz", "GET"),
            ("PUT", "/openapi.json", "GET, HEAD"),
        ]:
            answer = http.request(method, path)
            assert (answer.status_code, answer.headers.get("allow")) == (405, allow), (method, path)
            assert answer.json() == {"detail": "Method Not Allowed"}


def test_a_page_that_is_not_there_is_an_html_404_for_a_browser(service: Service) -> None:
    html = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    for path in ("/nope", "/sessions/x/y/z", "/runs/a/b", "/nope/<script>alert(1)</script>"):
        page = httpx.get(service.url + path, headers=html)
        assert page.status_code == 404 and page.headers["content-type"].startswith("text/html"), path
        assert "Not found" in page.text and "<script>alert" not in page.text
        assert "default-src 'self'" in page.headers["content-security-policy"]
    for path, headers in [("/v1/nope", html), ("/webhooks/nope", html), ("/v1", html), ("/nope", {})]:
        answer = httpx.get(service.url + path, headers=headers)
        assert (answer.status_code, answer.json()) == (404, {"detail": "Not Found"}), path


# -- the runs list pages ---------------------------------------------------------------------------------


def test_the_runs_list_pages_as_the_sessions_list_does(service: Service) -> None:
    now = time.time()
    ids = [f"job{n:02d}xxxxxxxx" for n in range(5)]
    for n, job_id in enumerate(ids):
        service.store.add_job(_done_job(job_id, "t1" if n % 2 else "t2", now + n))
    newest_first = list(reversed(ids))
    with service.client("read") as http:
        first = http.get("/v1/runs", params={"limit": 2}).json()
        assert [r["run_id"] for r in first["runs"]] == newest_first[:2]
        assert (first["limit"], first["offset"], first["next_offset"]) == (2, 0, 2)
        second = http.get("/v1/runs", params={"limit": 2, "offset": first["next_offset"]}).json()
        assert [r["run_id"] for r in second["runs"]] == newest_first[2:4] and second["next_offset"] == 4
        last = http.get("/v1/runs", params={"limit": 2, "offset": 4}).json()
        assert [r["run_id"] for r in last["runs"]] == newest_first[4:] and last["next_offset"] is None
        exact = http.get("/v1/runs", params={"limit": 5}).json()
        assert len(exact["runs"]) == 5 and exact["next_offset"] is None
        odd = http.get("/v1/runs", params={"thread": "t1", "limit": 1, "offset": 1}).json()
        assert [r["run_id"] for r in odd["runs"]] == [ids[1]] and odd["next_offset"] is None
        beyond = http.get("/v1/runs", params={"offset": 99}).json()
        assert beyond == {"runs": [], "limit": 50, "offset": 99, "next_offset": None}
        assert http.get("/v1/runs", params={"offset": -1}).status_code == 422
        sessions = http.get("/v1/sessions").json()
    assert set(first) == {"runs", "limit", "offset", "next_offset"}
    assert set(sessions) == {"sessions", "limit", "offset", "next_offset"}
