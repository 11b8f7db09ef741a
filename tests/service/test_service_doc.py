"""docs/service.md's ``curl`` blocks, pasted one after another into one bash (no ``set -e``, as a person
pastes them) against a real ``baton serve`` on a free port: only the port is swapped. The reader's
variables ($TOKEN, $ADMIN_TOKEN, $T, $URL, $READ, $ADMIN) come from ``baton tokens create``;
``https://github.com/acme/api`` is a local bare repository through git's ``url.<local>.insteadOf`` (a
GIT_CONFIG_GLOBAL the service is given); the agent is the real Claude Code CLI on the mock model; the
forge is the fake GitHub. ``curl`` is wrapped to record each call's status and body, not to change them;
each call is checked against the status and fields the page documents."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from baton.agents import get_agent
from baton.agents.limits import Limit, LimitKind
from baton.runner.quota import credential, trip
from baton.service.auth import create_token
from baton.service.records import TokenScope
from baton.settings import load_settings
from baton.store import Store, open_store
from baton.testing.fake_forge import FakeForge
from baton.testing.mock_anthropic import MockAnthropic
from tests.conftest import BATON, GIT_ID, make_repo
from tests.service_fixtures import free_port, wait_http
from tests.support.shell import Call, Shell

DOCS = Path(__file__).parents[2] / "docs" / "service.md"
FENCE = re.compile(r"^```(?:sh)?\n(.*?)^```", re.MULTILINE | re.DOTALL)
SECTIONS = (  # the page's sections whose blocks call the API, in the page's order
    "## Runs over HTTP",
    "## Sessions over HTTP",
    "## Answers over HTTP",
    "## Usage quotas over HTTP",
    "## Spending caps over HTTP",
    "## The forge loop",
)
GITHUB = "https://github.com/acme/api"  # the page's repository, offline
QUESTION = "Which format: TOML or YAML?"

pytestmark = pytest.mark.slow


def section_blocks(heading: str) -> list[str]:
    text = DOCS.read_text()
    start = text.index(f"\n{heading}\n")
    end = text.find("\n## ", start + 1)
    return [b for b in FENCE.findall(text[start : end if end > 0 else None]) if "curl" in b]


def doc_blocks() -> list[str]:
    """The one curl block of each section, in order: a section with none, or two, fails here."""
    found = []
    for heading in SECTIONS:
        blocks = section_blocks(heading)
        assert len(blocks) == 1, f"docs/service.md's {heading!r} has {len(blocks)} curl blocks, not 1"
        found.append(blocks[0])
    return found


def test_every_curl_block_of_the_page_is_run() -> None:
    """A new curl block elsewhere on the page is not left untried (the Schemathesis one takes
    minutes: tests/service/test_service_schema.py runs the same)."""
    every = [b for b in FENCE.findall(DOCS.read_text()) if "curl" in b or "st run" in b]
    untried = [b for b in every if b not in doc_blocks() and not b.startswith("st run ")]
    assert untried == []


# -- The world the page assumes: its repository, a question waiting, a breaker, a bound issue ------------


@dataclass
class World:
    url: str
    home: Path
    store: Store
    mock: MockAnthropic
    env: dict[str, str]


def offline_github(tmp_path: Path) -> Path:
    """A GIT_CONFIG_GLOBAL that sends https://github.com/acme/api to a local bare repository."""
    src = make_repo(tmp_path / "acme-api-src", {"README.md": "# api\n"})
    bare = tmp_path / "acme-api.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(src), str(bare)], check=True)
    config = tmp_path / "gitconfig"
    rule = f"url.{bare.as_uri()}.insteadOf"
    subprocess.run(["git", "config", "--file", str(config), rule, GITHUB], check=True)
    return config


def forge_config(home: Path, fake: FakeForge) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(
        f'[forge.github]\napi_url = "{fake.api_url}"\ntoken_env = "BATON_GIT_TOKEN"\nuser = "baton-bot"\n'
        f'[repo."acme/api"]\nclone_url = "{fake.clone_url("acme/api")}"\n'
    )


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeForge]:
    """The fake GitHub with acme/api and its issue #42 (the one the page binds)."""
    forge = FakeForge(tmp_path / "forge").start()
    forge.create_repo("acme/api", {"README.md": "# api\n"})
    forge.add_user("baton-bot")
    forge.set_permission("acme/api", "baton-bot", "write")
    for n in range(42):
        forge.open_issue("acme/api", "baton-bot", f"issue {n + 1}")
    yield forge
    forge.stop()
    assert forge.violations == [], forge.violations


@pytest.fixture
def world(tmp_path: Path, fake: FakeForge) -> Iterator[World]:
    """``baton serve`` on a free port, as an operator starts it: the mock model, git's redirect, a $5
    thread cap, the fake GitHub configured."""
    home = tmp_path / "baton-home"
    forge_config(home, fake)
    port = free_port()
    with MockAnthropic() as mock:
        env = {
            **os.environ,
            **GIT_ID,
            **mock.env(),
            "BATON_HOME": str(home),
            "GIT_CONFIG_GLOBAL": str(offline_github(tmp_path)),
            "BATON_MAX_USD": "5",
            "BATON_GIT_TOKEN": fake.token("baton-bot"),
            "BATON_FORGE_RECONCILE": "0",
        }
        serve = subprocess.Popen([*BATON, "serve", "--port", str(port)], env=env, stdin=subprocess.DEVNULL)
        try:
            wait_http(f"http://127.0.0.1:{port}/readyz", timeout=60)
            store = open_store(load_settings(environ=env).resolved_store_url)
            yield World(f"http://127.0.0.1:{port}", home, store, mock, env)
            store.close()
        finally:
            serve.terminate()
            serve.wait(timeout=30)


@contextmanager
def reader(world: World, tmp_path: Path) -> Iterator[Shell]:
    """The reader's shell: baton on PATH, its BATON_HOME, the tokens the page's variables name."""
    assert shutil.which("jq"), "the page's blocks use jq: `make setup` installs it (shell-tools)"
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    env = {"PATH": path, "HOME": str(tmp_path), "BATON_HOME": str(world.home), "LANG": "C.UTF-8"}
    env |= {k: os.environ[k] for k in ("PYTHONPATH",) if k in os.environ}
    with Shell(env, tmp_path / "curls") as shell:
        shell.paste(
            "TOKEN=$(baton tokens create --name dispatcher --scope run --json | jq -r .token)\n"
            "ADMIN_TOKEN=$(baton tokens create --name ops --scope admin --json | jq -r .token)\n"
            "T=$TOKEN; ADMIN=$ADMIN_TOKEN\n"
            "READ=$(baton tokens create --name reader --scope read --json | jq -r .token)\n"
            f"URL={world.url}\n"
        )
        yield shell


def ask_on_issue_7(world: World) -> None:
    """Thread issue-7 waits on a question (its agent called ask_human), as the answers block assumes."""
    headers = {"Authorization": f"Bearer {admin_token(world)}"}
    with httpx.Client(base_url=world.url, headers=headers, timeout=150) as http:
        ask = json.dumps({"question": QUESTION, "options": ["TOML", "YAML"]})
        prompt = f"pick a format [[tool:ask_human {ask}]]"
        body = {"agent": "claude", "repo": GITHUB, "thread": "issue-7", "prompt": prompt}
        run = http.post("/v1/runs", json=body).json()["run_id"]
        assert http.get(f"/v1/runs/{run}?wait=120").json()["outcome"] == "needs_input"


def admin_token(world: World) -> str:
    return create_token(world.store, f"harness-{time.monotonic_ns()}", TokenScope.ADMIN)


def spent_quota(world: World) -> None:
    """The mock key's breaker tripped, as a run that met a spent five-hour quota trips it."""
    settings = load_settings(environ=world.env)
    key, label = credential(get_agent("claude", settings), world.env)
    said = "rate_limit_event rejected (five_hour)"
    limit = Limit(LimitKind.EXHAUSTED, time.time() + 3600, "five_hour", said)
    trip(world.store, key, label, "claude", limit, "0" * 20, settings, None)


def bound_42(world: World) -> None:
    """Issue #42 bound (the block reads it before it binds it again)."""
    headers = {"Authorization": f"Bearer {admin_token(world)}"}
    body = {"forge": "github", "repo": "acme/api", "number": 42}
    assert httpx.post(f"{world.url}/v1/forge/threads", json=body, headers=headers).status_code == 201


def done(world: World, run_id: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {admin_token(world)}"}
    answer = httpx.get(f"{world.url}/v1/runs/{run_id}?wait=120", headers=headers, timeout=150)
    return dict(answer.json())


# -- What each block's calls answer, as the page documents them -------------------------------------------

Check = Callable[[Call], None]


def expect(calls: list[Call], wanted: list[tuple[str, str, int, Check | None]]) -> None:
    """Each call's method, path (a regex on the path and query) and status, then its own check."""
    shape = [(c.method, c.path, c.status) for c in calls]
    assert len(calls) == len(wanted), f"the block made {len(calls)} calls, not {len(wanted)}: {shape}"
    for call, (method, path, status, check) in zip(calls, wanted, strict=True):
        said = f"{call.method} {call.path} → {call.status}: {call.body[:500]}"
        assert (call.method, call.status) == (method, status) and re.fullmatch(path, call.path), said
        if check is not None:
            check(call)


def keys(*names: str) -> Check:
    def check(call: Call) -> None:
        assert set(names) <= set(call.json()), f"{call.path}: {names} not all in {call.body[:500]}"

    return check


def runs_checks(run: list[str]) -> list[tuple[str, str, int, Check | None]]:
    def submitted(call: Call) -> None:
        assert call.json()["status"] == "queued"
        run.append(call.json()["run_id"])

    def waited(call: Call) -> None:
        state = call.json()
        assert (state["status"], state["outcome"], state["run_id"]) == ("done", "succeeded", run[0]), state

    def listed(call: Call) -> None:
        page = call.json()
        assert (page["limit"], page["offset"], page["next_offset"]) == (20, 0, None), page
        assert run[0] in [r["run_id"] for r in page["runs"]]

    def streamed(call: Call) -> None:
        events = re.findall(r"^event: (\w+)\ndata: (.*)$", call.body, re.MULTILINE)
        assert events and events[0][0] == "agent", call.body[:500]
        assert events[-1][0] == "outcome" and json.loads(events[-1][1])["status"] == "done", call.body[-500:]

    return [
        ("POST", "/v1/runs", 202, submitted),
        ("GET", r"/v1/runs/\w{20}", 200, lambda c: assert_in(c.json()["status"], STATUSES)),
        ("GET", r"/v1/runs/\w{20}\?wait=120", 200, waited),
        ("GET", r"/v1/runs/\w{8}", 200, lambda c: assert_in(c.json()["run_id"], set(run))),
        ("GET", r"/v1/runs\?agent=claude&thread=issue-42&limit=20&offset=0", 200, listed),
        ("GET", r"/v1/runs/\w{20}/events", 200, streamed),
        ("POST", r"/v1/runs/\w{20}/cancel", 409, keys("detail")),  # it has ended: nothing to stop
    ]


STATUSES = {"queued", "running", "done"}


def assert_in(value: object, allowed: set[str]) -> None:
    assert value in allowed, f"{value!r} not in {allowed}"


REPO_QUERY = "agent=claude&repo=github.com/acme/api"
KEY_QUERY = f"{REPO_QUERY}&thread=issue-42"
KEY = {"agent": "claude", "repo": "github.com/acme/api", "thread": "issue-42"}


def sessions_checks() -> list[tuple[str, str, int, Check | None]]:
    def listed(call: Call) -> None:
        page = call.json()
        assert (page["limit"], page["offset"], page["next_offset"]) == (50, 0, None), page
        assert KEY in [{k: s[k] for k in KEY} for s in page["sessions"]], page

    def shown(call: Call) -> None:
        session = call.json()
        assert {k: session[k] for k in KEY} == KEY and session["runs"], session

    return [
        ("GET", rf"/v1/sessions\?{REPO_QUERY}&status=active&limit=50&offset=0", 200, listed),
        ("GET", rf"/v1/session\?{KEY_QUERY}&runs=20", 200, shown),
        ("POST", "/v1/sessions/reset", 200, keys("archive_ref", "restore", "conversation_archive")),
    ]


BREAKER = ("credential", "agent", "label", "state", "held", "resets_at", "resets_in_s", "scope", "detail")


def quotas_checks() -> list[tuple[str, str, int, Check | None]]:
    def listed(call: Call) -> None:
        [breaker] = call.json()
        assert set(BREAKER) <= set(breaker) and breaker["label"].startswith("claude ANTHROPIC_API_KEY #")
        assert (breaker["state"], breaker["held"]) == ("exhausted", True), breaker

    def cleared(call: Call) -> None:
        keys("was", "was_held", "closed")(call)
        assert (call.json()["state"], call.json()["was_held"]) == ("ok", True), call.body

    return [("GET", "/v1/quotas", 200, listed), ("POST", "/v1/quotas/clear", 200, cleared)]


CAP = ("scope", "measure", "cap", "raised", "limit", "spent", "reached")


def caps_checks() -> list[tuple[str, str, int, Check | None]]:
    def shown(call: Call) -> None:
        budget = call.json()
        assert budget["target"] == "thread claude:github.com/acme/api:issue-42", budget
        usd = [c for c in budget["caps"] if (c["scope"], c["measure"]) == ("thread", "usd")]
        assert usd and set(CAP) <= set(usd[0]) and usd[0]["cap"] == 5.0, budget

    def raised(call: Call) -> None:
        usd = [c for c in call.json()["caps"] if (c["scope"], c["measure"]) == ("thread", "usd")]
        assert usd and usd[0]["raised"] == 5.0 and usd[0]["limit"] == 10.0, call.body
        assert call.json()["raised"] == 1 and "resumed" in call.json(), call.body

    return [("GET", rf"/v1/budget\?{KEY_QUERY}", 200, shown), ("POST", "/v1/budget", 200, raised)]


def forge_checks() -> list[tuple[str, str, int, Check | None]]:
    one = "/v1/forge/threads/github/acme/api/42"
    unbound = "gitlab:acme/api!7 is not bound to a thread"
    return [
        ("GET", r"/v1/forge/threads\?status=needs_human", 200, lambda c: assert_in(str(c.json()), {"[]"})),
        ("GET", one, 200, keys("binding", "needs_human", "links", "events", "turns", "budget")),
        # GitLab's merge request !7: this world has no GitLab, so no such thread (the route and its
        # ?pr=true are taken: a 404 naming the thread, not a 422)
        (
            "GET",
            r"/v1/forge/threads/gitlab/acme/api/7\?pr=true",
            404,
            lambda c: assert_in(c.json()["detail"], {unbound}),
        ),
        ("POST", "/v1/forge/threads", 201, keys("forge", "repo", "number", "agent", "thread")),
        ("DELETE", one, 200, keys("unbound")),
        ("POST", "/v1/forge/reconcile", 200, keys("repos", "threads", "found", "outcomes", "errors")),
        ("GET", r"/v1/forge/outcomes\?days=30", 200, keys("at", "since", "repos")),
    ]


def test_the_pages_curl_blocks_answer_as_documented(world: World, tmp_path: Path) -> None:
    runs, sessions, answers, quotas, caps, forge = (
        b.replace("8765", world.url.rsplit(":", 1)[1]) for b in doc_blocks()
    )
    ask_on_issue_7(world)
    with reader(world, tmp_path) as shell:
        run: list[str] = []
        expect(shell.paste(runs), runs_checks(run))
        expect(shell.paste(sessions), sessions_checks())
        answered = shell.paste(answers)
        expect(answered, [("POST", "/v1/answers", 202, keys("run_id", "status"))])
        resumed = done(world, answered[0].json()["run_id"])
        assert (resumed["outcome"], resumed["mode"]) == ("succeeded", "resume"), resumed
        assert QUESTION in world.mock.texts()[-1] and "TOML" in world.mock.texts()[-1]
        spent_quota(world)
        expect(shell.paste(quotas), quotas_checks())
        expect(shell.paste(caps), caps_checks())
        bound_42(world)
        expect(shell.paste(forge), forge_checks())
