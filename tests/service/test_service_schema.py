"""The service as a whole: ``baton serve`` (and its install hint), ``/healthz`` and ``/readyz``, the
OpenAPI document and docs, and Schemathesis against a real uvicorn with an admin token, with every
check it has (``st run --checks all``): no 5xx, every response as documented (status, content type,
headers, body), schema-valid requests accepted and schema-invalid ones refused, ``Allow`` on 405s,
auth not ignored, and, in its stateful phase, the OpenAPI links followed (``POST /v1/runs`` → the
run), a created resource available and a deleted one gone.

Schemathesis is bounded (a few examples per operation; its coverage phase's boundary cases in full)
and leaves out the SSE stream (it ends only with its run: ``test_the_links_of_a_submitted_run_lead_to_it``
follows that link). ``POST /v1/runs`` is pointed at the fake agent and a local repository
(:meth:`Api.aim`), so whatever else it generates (threads, modes, prompts, timeouts) runs no real
agent; and the test's own token is never revoked under it.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import jsonschema_rs
import pytest
import schemathesis
from schemathesis import Case
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok

from baton.errors import BadInput, BatonError, Busy, DiskFull, GitError, NotFound, RemoteError, StoreError
from baton.install import extra_hint
from baton.service.app import create_app
from baton.service.auth import digest
from baton.service.errors import baton_error_handler
from baton.service.health import check_ready
from baton.service.records import TokenRecord, TokenScope
from baton.service.tables import token_store
from baton.settings import Settings, load_settings
from tests import conftest
from tests.conftest import BATON, FAST, make_repo
from tests.conftest import SCHEMA_SEED as SEED_VAR
from tests.service_fixtures import Service, free_port, run_service, service_fixture, wait_http  # noqa: F401

Cli = Callable[..., subprocess.CompletedProcess[str]]
WEBHOOK_SECRET = "s3cret-webhook-value"
TOKEN_NAME = "schemathesis"
STREAM = "/v1/runs/{run_id}/events"  # Schemathesis reads a response whole: the stream ends with its run
# The schema Schemathesis tests, from the app itself: the test is parametrized at collection, before any
# server is up (test_the_served_document_is_the_one_tested checks the live one is the same).
DOCUMENT = create_app(load_settings(overrides={"home": "/nonexistent/baton-home"}, environ={})).openapi()
SCHEMA = schemathesis.openapi.from_dict(copy.deepcopy(DOCUMENT)).exclude(path=STREAM)  # it edits its copy
# A new seed each run (conftest draws it, prints it in the header and under each failure of this module):
# each run generates other cases, and a failure can be replayed
SEED = int(os.environ[SEED_VAR])
SCHEMA.config.seed = SEED
REPLAY = f"replay with BATON_SCHEMATHESIS_SEED={SEED}"
RUN_BODY = jsonschema_rs.validator_for(
    {**DOCUMENT["components"]["schemas"]["RunBody"], "components": DOCUMENT["components"]}
)
# derandomize=False is said, not inherited: with CI set, Hypothesis loads its "ci" profile, whose
# derandomize=True ignores the seed (the same cases every run; CI failed on the assertion below).
STATEFUL = hypothesis.settings(  # as Schemathesis' own runner has it: generate, no replays of examples
    derandomize=False,
    deadline=None,
    database=None,
    suppress_health_check=list(hypothesis.HealthCheck),
    phases=[hypothesis.Phase.generate],
)
BOUNDED = hypothesis.settings(
    derandomize=False,
    deadline=None,
    database=None,
    suppress_health_check=list(hypothesis.HealthCheck),
    phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
)


# The `api` fixture's admin token: known before the server is (Schemathesis authenticates the cases it
# makes at collection), stored by its hash as `baton tokens create` stores one.
ADMIN_SECRET = "baton_schemathesis-" + "s" * 32


@SCHEMA.auth.auth(refresh_interval=None, retry_on=[])
class AdminToken:
    """Every case is authenticated as the schema says (HTTPBearer), with the test's admin token: a case
    that leaves the header out on purpose (a negative one, auth checks' probes) stays without it."""

    def get(self, case: Case[Any], ctx: Any) -> str:
        return ADMIN_SECRET

    def set(self, case: Case[Any], data: str, ctx: Any) -> None:
        case.headers["Authorization"] = f"Bearer {data}"


@dataclass
class Api:
    """The server under test, the admin token it is driven with, and a local repository to run in."""

    service: Service
    token: str
    repo: str
    aimed: list[str] = field(default_factory=list)  # the bodies of POST /v1/runs, pointed at the fake

    @property
    def url(self) -> str:
        return self.service.url

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def aim(self, case: Case[Any]) -> None:
        """A run at the fake agent in the local repository: its ``agent`` and ``repo``, where valid,
        replaced (a negative body stays invalid: else it goes as generated, refused before any run); the
        test's own token, which a generated DELETE could name, left alone; a valid ``wait`` for a run
        cut to a second."""
        if case.method == "DELETE" and case.path_parameters == {"name": TOKEN_NAME}:
            case.path_parameters = {"name": TOKEN_NAME + "-not"}
        wait = _seconds((case.query or {}).get("wait"))
        if (case.method, case.path) == ("GET", "/v1/runs/{run_id}") and wait is not None:
            case.query = {**case.query, "wait": min(wait, 1.0)}  # a run still queued keeps the test short
        if (case.method, case.path) != ("POST", "/v1/runs") or not isinstance(case.body, dict):
            return
        body = dict(case.body)
        for name, value in (("agent", "fake"), ("repo", self.repo)):
            if name in body and _valid(name, body[name]):
                body[name] = value
        if body.get("handoff_from") == "fake" and case.body.get("agent") not in (None, "fake"):
            body["handoff_from"] = case.body["agent"]  # from another agent, as the body said
        positive = case.meta is None or case.meta.generation.mode.is_positive
        if positive:
            assert RUN_BODY.is_valid(body), f"aiming made a valid body invalid: {body}"
        elif RUN_BODY.is_valid(body):
            return
        case.body = body
        self.aimed.append(json.dumps(body))


def _seconds(wait: Any) -> float | None:
    """A valid ``wait`` of GET /v1/runs/{run_id} (0 to 300 seconds), else None."""
    number = isinstance(wait, int | float) and not isinstance(wait, bool)
    return float(wait) if number and 0 <= wait <= 300 else None


def _valid(name: str, value: Any) -> bool:
    """Whether ``value`` is what the body's property ``name`` takes, on its own."""
    prop = DOCUMENT["components"]["schemas"]["RunBody"]["properties"][name]
    return jsonschema_rs.validator_for(prop).is_valid(value)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """One server (with a webhook secret, so webhooks answer 401 rather than 403) and an admin token."""
    home = tmp_path_factory.mktemp("schema") / "home"
    repo = make_repo(home.parent / "src-repo")
    saved = os.environ.get("BATON_WEBHOOK_SECRET")
    os.environ["BATON_WEBHOOK_SECRET"] = WEBHOOK_SECRET
    try:
        with run_service(load_settings(overrides={"home": str(home), **FAST}, environ={})) as running:
            token_store(running.store).add_token(
                TokenRecord(TOKEN_NAME, TokenScope.ADMIN, digest(ADMIN_SECRET), time.time())
            )
            yield Api(running, ADMIN_SECRET, str(repo))
    finally:
        if saved is None:
            os.environ.pop("BATON_WEBHOOK_SECRET", None)
        else:
            os.environ["BATON_WEBHOOK_SECRET"] = saved


def test_every_check_schemathesis_has_is_on() -> None:
    """``st run --checks all``: the Python API runs every registered check unless told otherwise; this
    says so for the installed version, so none is silently left out of the tests below."""
    load_all_checks()
    names = CHECKS.get_all_names()
    assert {"negative_data_rejection", "positive_data_acceptance", "use_after_free"} <= set(names)
    for result in SCHEMA.get_all_operations():
        assert isinstance(result, Ok)
        config = SCHEMA.config.checks_config_for(operation=result.ok(), phase=None)
        assert all(config.get_by_name(name=name).enabled for name in names)
    assert SCHEMA.config.phases.coverage.enabled and SCHEMA.config.phases.stateful.enabled


# Examples (none in this schema), the coverage phase (each parameter's boundaries, missing and wrong
# values, methods the path does not have) and fuzzing (valid and invalid), per operation.
@SCHEMA.parametrize()
@hypothesis.settings(BOUNDED, max_examples=10)
def test_api_matches_its_schema(case: Case[Any], api: Api) -> None:
    api.aim(case)
    case.call_and_validate(base_url=api.url, timeout=30)


def test_the_links_are_followed_statefully(api: Api) -> None:
    """Schemathesis' stateful phase: sequences of calls that follow the links (a submitted run's
    ``run_id`` into its routes; those it infers, such as a created token's name into its DELETE), every
    response checked as above, and the stateful checks (a created resource is there, a deleted one gone).

    Its rules depend on the answers of a live server (a cancel is 202 or 409 by how far the run got), so
    Hypothesis may find a sequence it replays behaving otherwise (``Flaky``): as Schemathesis' own runner
    does, that ends a round without failing it, and a failed check is failed all the same (recorded as
    it happens). Rounds run until the links were followed (at most twelve: whether a round reaches both
    depends on the seed, the server's answers and how many routes there are to wander into — each new
    route, such as a forge's webhook, makes a round less likely to; seed 22 reached only the cancel in
    three)."""
    submitted: set[str] = set()
    followed: set[tuple[str, str]] = set()
    failures: list[str] = []
    steps: list[str] = []

    class Linked(SCHEMA.as_state_machine()):  # type: ignore[misc]
        def before_call(self, case: Case[Any]) -> None:
            api.aim(case)
            steps.append(f"{case.method} {case.path}")
            if (case.path_parameters or {}).get("run_id") in submitted:
                followed.add((case.method, case.path))

        def after_call(self, response: schemathesis.Response, case: Case[Any]) -> None:
            super().after_call(response, case)
            if (case.method, case.path, response.status_code) == ("POST", "/v1/runs", 202):
                submitted.add(response.json()["run_id"])

        def get_call_kwargs(self, case: Case[Any]) -> dict[str, Any]:
            return {"base_url": api.url, "timeout": 30}

        def validate_response(self, response: Any, case: Case[Any], *args: Any, **kwargs: Any) -> None:
            try:
                super().validate_response(response, case, *args, **kwargs)
            except FailureGroup as exc:
                failures.append(str(exc))
                raise

    for round_ in range(12):
        with contextlib.suppress(hypothesis.errors.Flaky):
            seeded = hypothesis.seed(SEED + round_)(Linked)
            seeded.run(settings=hypothesis.settings(STATEFUL, max_examples=12, stateful_step_count=6))
        assert not failures, f"{failures[0]}\n{REPLAY}"
        if len(followed) == 2:
            break
    assert followed == {("GET", "/v1/runs/{run_id}"), ("POST", "/v1/runs/{run_id}/cancel")}, steps


def test_the_served_document_is_the_one_tested(api: Api) -> None:
    assert httpx.get(api.url + "/openapi.json", timeout=30).json() == DOCUMENT


def _follow(document: dict[str, Any], link: dict[str, Any], answer: dict[str, Any]) -> tuple[str, str]:
    """The method and URL path a link of an answer leads to: its ``operationRef`` (a JSON pointer into
    the document) and its parameters (``$response.body#/<pointer>`` expressions)."""
    pointer = link["operationRef"].removeprefix("#/")
    path, method = [part.replace("~1", "/").replace("~0", "~") for part in pointer.split("/")][1:]
    assert method in document["paths"][path], link
    for name, expression in link["parameters"].items():
        value: Any = answer
        for key in expression.removeprefix("$response.body#/").split("/"):
            value = value[key]
        path = path.replace("{" + name + "}", str(value))
    return method.upper(), path


def test_the_links_of_a_submitted_run_lead_to_it(service: Service, src_repo: Path) -> None:
    """A client follows the 202's links with nothing but the document: the run, its cancel, its events
    (the stream Schemathesis leaves out, which ends with the run's outcome)."""
    document = httpx.get(service.url + "/openapi.json", timeout=30).json()
    links = document["paths"]["/v1/runs"]["post"]["responses"]["202"]["links"]
    assert set(links) == {"GetRun", "RunEvents", "CancelRun"}
    body = {"agent": "fake", "repo": str(src_repo), "thread": "linked", "prompt": "go"}
    with service.client("run") as http:
        submitted = http.post("/v1/runs", json=body)
        assert submitted.status_code == 202
        run_id = submitted.json()["run_id"]
        method, path = _follow(document, links["GetRun"], submitted.json())
        assert (method, path) == ("GET", f"/v1/runs/{run_id}")
        assert http.request(method, path).json()["run_id"] == run_id
        method, path = _follow(document, links["CancelRun"], submitted.json())
        assert (method, path) == ("POST", f"/v1/runs/{run_id}/cancel")
        cancelled = http.request(method, path)  # 409 if the fake agent was quicker
        assert (cancelled.status_code, cancelled.json().get("run_id", run_id)) in (
            (202, run_id),
            (409, run_id),
        )
        method, path = _follow(document, links["RunEvents"], submitted.json())
        assert (method, path) == ("GET", f"/v1/runs/{run_id}/events")
        with http.stream(method, path) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            lines = list(stream.iter_lines())
    outcome = lines.index("event: outcome")
    final = json.loads(
        next(line for line in lines[outcome:] if line.startswith("data:")).removeprefix("data:")
    )
    assert final["run_id"] == run_id and final["status"] == "done"


def test_openapi_and_docs(service: Service) -> None:
    document = httpx.get(service.url + "/openapi.json", timeout=30).json()
    assert document["info"]["title"] == "baton"
    assert {"/v1/sessions", "/v1/session", "/v1/sessions/reset", "/healthz", "/readyz"} <= set(
        document["paths"]
    )
    reset = document["paths"]["/v1/sessions/reset"]["post"]
    assert {"401", "403", "404", "409", "422"} <= set(reset["responses"])
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert "swagger-ui" in httpx.get(service.url + "/docs").text


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (NotFound, 404),
        (BadInput, 422),
        (Busy, 409),
        (DiskFull, 507),
        (RemoteError, 502),
        (GitError, 500),
        (StoreError, 500),
        (BatonError, 500),
    ],
)
def test_every_baton_error_maps_to_one_http_status(error: type[BatonError], code: int) -> None:
    """One handler for every route: the status by the error's class, the CLI's message as detail."""
    response = asyncio.run(baton_error_handler(None, error("what went wrong")))  # type: ignore[arg-type]
    assert response.status_code == code
    assert json.loads(bytes(response.body)) == {"detail": "what went wrong"}


def test_healthz_and_readyz_need_no_token(service: Service) -> None:
    assert httpx.get(service.url + "/healthz").json() == {"ok": True}
    ready = httpx.get(service.url + "/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert body["ready"] is True and body["free_bytes"] >= body["min_free_bytes"] > 0


def test_readyz_is_503_with_the_reason_when_free_disk_is_below_min_free(settings: Settings) -> None:
    with run_service(settings.with_(min_free="1000000T")) as running:
        response = httpx.get(running.url + "/readyz")
        assert httpx.get(running.url + "/healthz").status_code == 200  # up, but not ready
    assert response.status_code == 503
    body = response.json()
    assert body["ready"] is False and "below BATON_MIN_FREE" in body["reason"]


def test_readyz_reports_an_unreachable_store(settings: Settings) -> None:
    class Down:
        def list_sessions(self, **kw: object) -> None:
            raise OSError("connection refused")

    readiness = check_ready(settings, Down())  # type: ignore[arg-type]
    assert not readiness.ready and readiness.reason == "store unreachable: connection refused"


def test_baton_serve_serves_and_never_prints_secrets(cli: Cli, baton_env: dict[str, str]) -> None:
    token = cli("tokens", "create", "--name", "ops", "--scope", "admin", "--json")
    secret = token.stdout.split('"token": "')[1].split('"')[0]
    port = free_port()
    env = {**os.environ, **baton_env, "BATON_WEBHOOK_SECRET": WEBHOOK_SECRET}
    with subprocess.Popen(
        [*BATON, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    ) as proc:
        try:
            wait_http(f"http://127.0.0.1:{port}/healthz")
            headers = {"Authorization": f"Bearer {secret}"}
            assert httpx.get(f"http://127.0.0.1:{port}/v1/tokens", headers=headers).status_code == 200
            hook = httpx.post(f"http://127.0.0.1:{port}/webhooks/github", content=b"{}")
            assert hook.status_code == 401
        finally:
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=30)
    assert f"baton serve: http://127.0.0.1:{port}" in err
    assert "GET /v1/tokens" in out + err  # the access log is on...
    assert secret not in out + err and WEBHOOK_SECRET not in out + err  # ...and shows no secret


def test_baton_serve_on_a_busy_port_says_so_with_its_own_exit_code(cli: Cli) -> None:
    """Bound before the banner: no "serving at" line, no uvicorn error, and exit 6 (3 is a busy key)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = cli("serve", "--port", str(port))
    assert busy.returncode == 6 and busy.stdout == "", busy.stderr
    assert busy.stderr == f"error: port {port} on 127.0.0.1 is in use (another `baton serve`?): " + (
        "stop it, or pass another --port\n"
    )


def test_baton_serve_without_the_server_extra_says_how_to_install_it(baton_env: dict[str, str]) -> None:
    code = "import sys; sys.modules['uvicorn'] = None; from baton.cli import main; main()"
    done = subprocess.run(
        [sys.executable, "-c", code, "serve"],
        env={**os.environ, **baton_env},
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2
    assert extra_hint("server") in done.stderr and "uvicorn" in done.stderr


def test_serve_help_is_listed(cli: Cli, home: Path) -> None:
    listed = cli("--help").stdout
    assert all(name in listed for name in ("serve", "tokens", "audit"))
    assert "--port" in cli("serve", "--help").stdout


def test_a_refused_body_or_query_is_said_in_batons_words(service: Service, src_repo: Path) -> None:
    """The API's 422 names the field and what it takes, one string as every other error, never
    pydantic's list of ``Input should be ...``."""
    body = {"agent": "fake", "repo": str(src_repo), "thread": "t", "prompt": "p"}
    with service.client("admin") as http:
        bad_number = http.post("/v1/runs", json={**body, "timeout": "abc"})
        assert bad_number.status_code == 422
        assert bad_number.json() == {"detail": "timeout takes a number, not 'abc'"}
        unknown = http.post("/v1/runs", json={**body, "colour": "red"}).json()["detail"]
        assert unknown == "colour is not an option of this request"
        as_json = {"content-type": "application/json"}
        not_json = http.post("/v1/runs", content=b'{"agent": ', headers=as_json)
        assert not_json.status_code == 422
        # the parse error's offset is not a field: never "10 is not valid JSON"
        assert not_json.json()["detail"] == (
            "the request body is not valid JSON (Expecting value at character 10)"
        )
        for given, shown in ((b"9", "9"), (b"[1, 2]", "[1, 2]"), (b'"x"', '"x"'), (b"null", "null")):
            not_object = http.post("/v1/runs", content=given, headers=as_json)
            assert not_object.status_code == 422
            assert not_object.json() == {"detail": f"the request body must be a JSON object, not {shown}"}
        limit = http.get("/v1/audit", params={"limit": "many"}).json()["detail"]
        assert limit == "limit takes a whole number, not 'many'"
        # curl -d without -H 'Content-Type: application/json': said as such, never b'...' repr'd
        as_form = {"content-type": "application/x-www-form-urlencoded"}
        form = http.post("/v1/runs", content=json.dumps(body).encode(), headers=as_form)
        assert (form.status_code, form.json()) == (
            422,
            {"detail": "the request body must be sent as JSON (Content-Type: application/json)"},
        )


def test_each_run_draws_its_seed_and_every_case_uses_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not one fixed seed (the same cases run after run): conftest draws one per run, shared by xdist's
    workers through the environment, and both phases here use it; a given one replays."""
    assert int(os.environ[SEED_VAR]) == SEED and SCHEMA.config.seed == SEED
    assert not BOUNDED.derandomize  # derandomize would ignore the seed
    drawn = set()
    for _ in range(3):
        monkeypatch.delenv(SEED_VAR)
        conftest.pytest_configure(pytest.Config.__new__(pytest.Config))
        drawn.add(os.environ[SEED_VAR])
    assert len(drawn) == 3
    monkeypatch.setenv(SEED_VAR, "1234")
    conftest.pytest_configure(pytest.Config.__new__(pytest.Config))
    assert os.environ[SEED_VAR] == "1234"
    monkeypatch.setenv(SEED_VAR, "soon")
    with pytest.raises(pytest.UsageError, match="takes a whole number"):
        conftest.pytest_configure(pytest.Config.__new__(pytest.Config))


def test_a_repo_that_names_nothing_here_is_the_documented_404(service: Service) -> None:
    """Valid by the schema (a path the server may have), and its answer is one the operation documents:
    Schemathesis' positive checks found it a 422 the schema did not account for (seed-dependent)."""
    body = {"agent": "fake", "repo": "0", "thread": "t", "prompt": "p"}
    assert RUN_BODY.is_valid(body)
    with service.client("admin") as http:
        answer = http.post("/v1/runs", json=body)
    assert answer.status_code == 404
    assert answer.json() == {"detail": "repo '0' does not exist (not a URL and no such directory)"}
    documented = DOCUMENT["paths"]["/v1/runs"]["post"]["responses"]["404"]["description"]
    assert documented.startswith("no such repository")


@pytest.mark.parametrize(
    ("field", "value", "said"),
    [
        ("retries", False, "retries takes a whole number, not False"),
        ("retries", "3", "retries takes a whole number, not '3'"),
        ("pids", True, "pids takes a whole number, not True"),
        ("timeout", "5", "timeout takes a number, not '5'"),
        ("cpu", False, "cpu takes a number, not False"),
    ],
)
def test_numbers_are_numbers_as_the_schema_says(
    service: Service, src_repo: Path, field: str, value: object, said: str
) -> None:
    """Pydantic's lax mode took false for 0 and "3" for 3, bodies the schema refuses (Schemathesis, with
    another seed: "retries": false accepted, 202)."""
    body = {"agent": "fake", "repo": str(src_repo), "thread": "t", "prompt": "p", field: value}
    assert not RUN_BODY.is_valid(body)
    with service.client("admin") as http:
        answer = http.post("/v1/runs", json=body)
    assert (answer.status_code, answer.json()) == (422, {"detail": said})


def test_a_whole_number_written_with_a_zero_fraction_is_that_integer(
    service: Service, src_repo: Path
) -> None:
    """JSON Schema's ``integer`` takes 38950163.0 (a number whose fraction is zero): Schemathesis sent it
    to ``/v1/runs`` and ``/v1/budget*`` and the API refused it ("tokens takes a whole number"). It is the
    integer; a fraction is still refused, and false is still not 0."""
    body = {"agent": "fake", "repo": str(src_repo), "thread": "t", "prompt": "p"}
    whole = {**body, "retries": 2.0, "pids": 64.0, "max_tokens": 38950163.0, "max_turns": 3.0}
    assert RUN_BODY.is_valid(whole)
    with service.client("admin") as http:
        queued = http.post("/v1/runs", json=whole)
        assert queued.status_code == 202, queued.text
        job = service.store.get_job(queued.json()["run_id"])
        assert job is not None
        asked = job.request
        assert (asked["retries"], asked["max_tokens"], asked["max_turns"]) == (2, 38950163, 3)
        assert type(asked["max_tokens"]) is int
        half = http.post("/v1/runs", json={**body, "max_tokens": 2.5})
        assert (half.status_code, half.json()) == (
            422,
            {"detail": "max_tokens takes a whole number, not 2.5"},
        )
        raised = http.post(
            "/v1/budget/repo", json={"repo": str(src_repo), "tokens": 38950163.0, "turns": 4.0}
        )
        assert raised.status_code == 200, raised.text
        caps = {c["measure"]: c for c in raised.json()["caps"]}
        assert raised.json()["raised"] == 2 and caps["tokens"]["raised"] == 38950163
        refused = http.post("/v1/budget/repo", json={"repo": str(src_repo), "turns": 1.5})
        assert (refused.status_code, refused.json()) == (
            422,
            {"detail": "turns takes a whole number, not 1.5"},
        )
        made = http.post("/v1/tokens", json={"name": "ci", "scope": "run", "max_tokens": 1000.0})
        assert made.status_code in (200, 201), made.text
