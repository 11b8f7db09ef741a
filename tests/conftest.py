"""Shared fixtures: a scratch BATON_HOME and settings, a source repository, the mock Anthropic API,
the real Claude Code CLI, a way to run the ``baton`` command as a separate process, and PostgreSQL
(``pg_url``: a fresh schema per test; ``pg_store``; ``store_url`` over SQLite and PostgreSQL); ``wait_for``
(poll a condition instead of sleeping); the markers of the services a test reaches (set at collection)."""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import importlib
import io
import os
import pickle
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar, cast
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from baton.agents.claude import bundled_claude
from baton.cli import main as baton_main
from baton.settings import Settings, load_settings
from baton.store import SQLStore, Store, open_store
from baton.store.engine import dispose_engine, redact
from baton.testing import MockModel
from baton.testing.fake import register_fake
from baton.testing.mock_anthropic import MockAnthropic
from baton.testing.mock_openai import MockOpenAI
from baton.workspace.cow import spares
from tests.private_services import answers, private_postgres, private_rabbitmq
from tests.support.github_openapi import install as install_github_openapi
from tests.support.gitlab_spec import install as install_gitlab_spec

register_fake()  # the fake agent, here and (BATON_AGENTS_EXTRA) in every `baton` process tests start
install_gitlab_spec()  # every fake GitLab checks its answers and webhooks against GitLab's types
install_github_openapi()  # every fake GitHub, its answers and webhooks against GitHub's descriptions

GIT_ID = {
    "GIT_AUTHOR_NAME": "test",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "test",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
}
DEFAULT_FILES = {"README.md": "# demo\n", "src/app.py": "print('hi')\n"}  # make_repo's
# Short timings so fault tests are quick; every value is still a real timer.
FAST = {"heartbeat": 0.2, "retry_backoff": 0.01, "kill_grace": 1.0, "lease_ttl": 5.0}


# -- What a test reaches: markers set at collection (`make test-fast` deselects them) -------------------
# A fixture of these names (conftest's or a fixture module's; a test module declares its own in a
# module-level SERVICE_FIXTURES) or a parameter of these values (``store_url``'s and
# ``shared_store_url``'s "postgresql", ``broker``'s "redis"/"amqp", a module's own backends) marks the
# test; every one of them is also marked ``services``. Fixtures requested with getfixturevalue are
# not in the closure, hence the parameters.
SERVICE_FIXTURES = {
    "pg_admin": "postgres",
    "redis_broker": "redis",
    "amqp_broker": "rabbitmq",
    "browser": "browser",
}
SERVICE_PARAMS = {"postgresql": "postgres", "redis": "redis", "amqp": "rabbitmq"}


def services_of(item: pytest.Item) -> set[str]:
    """The markers of the services ``item`` reaches (postgres, redis, rabbitmq, browser)."""
    fixtures = {**SERVICE_FIXTURES, **getattr(getattr(item, "module", None), "SERVICE_FIXTURES", {})}
    found = {fixtures[name] for name in getattr(item, "fixturenames", ()) if name in fixtures}
    callspec = getattr(item, "callspec", None)
    params = callspec.params.values() if callspec is not None else ()
    found |= {SERVICE_PARAMS[value] for value in params if isinstance(value, str) and value in SERVICE_PARAMS}
    return found


# -- Schemathesis' seed (tests/service/test_service_schema.py): a new one each run, so each run explores other
# cases, printed in the header (and in a failure), so a failure can be replayed with
# BATON_SCHEMATHESIS_SEED=<seed>. Drawn here, once: xdist's workers inherit it from the environment.
SCHEMA_SEED = "BATON_SCHEMATHESIS_SEED"


def pytest_configure(config: pytest.Config) -> None:
    given = os.environ.get(SCHEMA_SEED, "")
    if not given:
        os.environ[SCHEMA_SEED] = str(random.randrange(2**32))
    elif not given.isdigit():
        raise pytest.UsageError(f"{SCHEMA_SEED} takes a whole number (a seed to replay), not {given!r}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Under a failure of a module that uses the seed (its ``REPLAY``), how to replay it."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    replay = getattr(getattr(item, "module", None), "REPLAY", None)
    if report.failed and isinstance(replay, str):
        report.sections.append(("schemathesis seed", replay))


def pytest_report_header(config: pytest.Config) -> str:
    return (
        f"schemathesis seed: {os.environ[SCHEMA_SEED]} (replay with {SCHEMA_SEED}={os.environ[SCHEMA_SEED]})"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        found = services_of(item)
        for name in sorted(found):
            item.add_marker(name)
        if found:
            item.add_marker("services")
    # The image builds (minutes each, one after the other: deploy/image/build.sh holds a lock) first, so
    # under `--dist worksteal` one worker starts on them while the other takes everything else, and
    # neither waits for them at the end; `make image`'s test before the fleet's, which then reuses its
    # image. A stable sort: every worker collects the same order.
    items.sort(key=_builds_first)


def _builds_first(item: pytest.Item) -> int:
    """0: `make image`'s test; 1: the fleet's (reusing that image); 2: everything else."""
    if item.get_closest_marker("image") is None:
        return 2
    return 1 if "fleet" in item.nodeid else 0


# The real CLIs' mock model servers (module, class), and how many history items each CLI sends on a
# conversation's first turn (each later turn adds 2).
MOCKS = {
    "claude": ("baton.testing.mock_anthropic", "MockAnthropic"),
    "codex": ("baton.testing.mock_openai", "MockOpenAI"),
    "gemini": ("baton.testing.mock_gemini", "MockGemini"),
    "copilot": ("baton.testing.mock_openai_agents", "MockCopilot"),
    "opencode": ("baton.testing.mock_openai_agents", "MockOpenCode"),
}
FIRST = {"claude": 2, "codex": 4, "gemini": 1, "copilot": 1, "opencode": 2}
# One real CLI per protocol family (Claude Code's stream-json, Codex's exec JSON, Gemini's stream, ACP), for a
# test of baton's own behaviour that each family's driver reaches alike: OpenCode shares the ACP driver
# with Copilot, whose turn costs a few seconds less (docs/development.md, "Slow tests").
FAMILIES = ["claude", "codex", "copilot", "gemini"]


def held_until(name: str) -> str:
    """A fake agent's FAKE_AGENT_RUN that holds its turn until ``name`` is in its worktree, which the
    test writes when it is ready (a minute at most: a broken test ends instead of hanging)."""
    return f"i=0; while [ ! -e {name} ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done"


# each turn held until ``.gate``, which the test writes once it has looked
HELD = held_until(".gate")


def wait_for(
    predicate: Callable[[], object],
    timeout: float = 60.0,
    interval: float = 0.02,
    what: str = "the condition",
) -> None:
    """Poll ``predicate`` every ``interval`` seconds until it returns something true; fail the test after
    ``timeout`` seconds with a message naming ``what`` it waited for. Use it instead of a sleep that
    hopes something has happened by then: it returns as soon as it has, and a busy machine only makes
    it wait longer. The timeouts are generous on purpose: only a broken behaviour reaches them."""
    started = time.monotonic()
    while not predicate():
        waited = time.monotonic() - started
        if waited > timeout:
            raise AssertionError(f"timed out after {waited:.1f} s waiting for {what}")
        time.sleep(interval)


def gone(pid: int) -> bool:
    """The process has exited (or is a zombie waiting to be reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except (OSError, IndexError):
        return True


def git(cwd: Path, *args: str) -> str:
    """Run git in ``cwd`` with a test identity; its stdout, stripped."""
    out = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        stdin=subprocess.DEVNULL,
    )
    return out.stdout.strip()


def make_repo(path: Path, files: dict[str, str] | None = None) -> Path:
    """A git repository at ``path``: ``files`` (a README and src/app.py by default) in one commit on
    ``main``. The default one is a copy of one made once per process (and umask): three git processes
    saved a repository, and the same commit, which no test tells apart from a new one."""
    if files is None and not (path.exists() and any(path.iterdir())):
        shutil.copytree(_default_repo(), path, symlinks=True, dirs_exist_ok=True, copy_function=shutil.copy)
        return path
    path.mkdir(parents=True, exist_ok=True)
    for name, text in (files or DEFAULT_FILES).items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    env = {**os.environ, **GIT_ID}
    for args in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-q", "-m", "initial"]):
        subprocess.run(["git", *args], cwd=path, env=env, check=True, capture_output=True)
    return path


_DEFAULT_REPOS: dict[int, Path] = {}


def _default_repo() -> Path:
    """The default repository of this process under its current umask (made on first use, removed at exit)."""
    umask = os.umask(0o022)
    os.umask(umask)
    if umask not in _DEFAULT_REPOS:
        root = Path(tempfile.mkdtemp(prefix="baton-test-repo-"))
        atexit.register(shutil.rmtree, root, ignore_errors=True)
        _DEFAULT_REPOS[umask] = make_repo(root / "repo", dict(DEFAULT_FILES))
    return _DEFAULT_REPOS[umask]


def commit_file(repo: Path, name: str, text: str, message: str) -> str:
    path = repo / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    git(repo, "add", "--", name)
    git(repo, "commit", "--quiet", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def agent_work(path: Path) -> str:
    """What an agent leaves: a commit on the branch, a changed tracked file, an untracked one."""
    (path / "lexer.py").write_text("TOKENS = []\n")
    git(path, "add", "lexer.py")
    git(path, "commit", "--quiet", "-m", "agent: lexer")
    (path / "README.md").write_text("# changed, not committed\n")
    (path / "notes.md").write_text("untracked notes\n")
    return git(path, "rev-parse", "HEAD")


def status(path: Path) -> set[str]:
    """``git status`` lines (stripped), after checking that nothing is staged."""
    assert git(path, "diff", "--cached", "--name-only") == ""
    return {line.strip() for line in git(path, "status", "--porcelain", "--untracked-files=all").splitlines()}


@pytest.fixture(autouse=True)
def _spares_settled() -> Iterator[None]:
    """A spare copy a test's worktree started (on XFS, in a thread) is finished before the test's
    directories are removed."""
    yield
    spares.settle()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "baton-home"


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The usual umask (022), for this process and what it starts: what baton makes is private only
    because baton makes it so."""
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.fixture
def settings(home: Path) -> Settings:
    return load_settings(overrides={"home": str(home), **FAST}, environ={})


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    """The store of ``settings`` (its home created), closed after the test."""
    settings.home.mkdir(parents=True, exist_ok=True)
    opened = open_store(settings.resolved_store_url)
    yield opened
    opened.close()


@pytest.fixture
def src_repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "src-repo")


@pytest.fixture
def claude_bin() -> str:
    binary = os.environ.get("BATON_CLAUDE_BIN") or bundled_claude()
    if not binary:
        pytest.fail("the real Claude Code CLI is missing: install the test extras (pip install -e '.[test]')")
    return binary


@pytest.fixture
def model(agent: str, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[MockModel]:
    """The mock model server of the module's ``agent`` fixture, this process's environment pointing
    the CLI at it, configured in the agent's base home (as an operator would)."""
    module, name = MOCKS[agent]
    with getattr(importlib.import_module(module), name)() as server:
        for key, value in server.env().items():
            monkeypatch.setenv(key, value)
        server.configure_home(settings.home / "homes" / agent)
        yield server


@pytest.fixture(scope="module")
def conversations() -> dict[object, object]:
    """What :func:`shared_conversation` drove, by name, as this worker read it in this module
    (:func:`once`)."""
    return {}


T = TypeVar("T")


def once(
    conversations: dict[object, object], factory: pytest.TempPathFactory, name: str, drive: Callable[[], T]
) -> T:
    """What ``drive()`` returns (a shared conversation's results), driven once per test run: kept in
    ``conversations`` and, pickled, in a directory xdist's workers share, where the first worker to ask
    drives it under a lock and a later one waits and reads it (less than driving it again beside it).
    ``name`` is unique in the run (its module's scenario and the agent)."""
    if name not in conversations:
        base = factory.getbasetemp()
        where = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
        kept = where / f"conversation-{name}.pickle"
        with (where / f"conversation-{name}.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if kept.exists():
                conversations[name] = pickle.loads(kept.read_bytes())
            else:
                conversations[name] = drive()
                part = kept.with_suffix(".part")
                part.write_bytes(pickle.dumps(conversations[name]))
                part.replace(kept)
    return cast(T, conversations[name])


@contextlib.contextmanager
def shared_conversation(
    agent: str, name: str, factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, Path, MockModel]]:
    """A conversation driven once and read by several tests (docs/development.md, "Slow tests"): the
    ``settings``, ``src_repo`` and ``model`` fixtures' equivalents in a directory of its own, the
    mock's variables set only inside the block. Its caller keeps what the tests read (in
    :func:`conversations`), not the mock: it stops when the block ends."""
    root = factory.mktemp(f"{name}-{agent}")
    settings = load_settings(overrides={"home": str(root / "baton-home"), **FAST}, environ={})
    module, cls = MOCKS[agent]
    with getattr(importlib.import_module(module), cls)() as server, pytest.MonkeyPatch.context() as patch:
        for key, value in server.env().items():
            patch.setenv(key, value)
        server.configure_home(settings.home / "homes" / agent)
        yield settings, make_repo(root / "src-repo"), server


@pytest.fixture
def mock(monkeypatch: pytest.MonkeyPatch) -> Iterator[MockAnthropic]:
    """The mock Anthropic API, with this process's environment pointing Claude Code at it."""
    with MockAnthropic() as server:
        for name, value in server.env().items():
            monkeypatch.setenv(name, value)
        yield server


@pytest.fixture
def baton_env(home: Path) -> dict[str, str]:
    """What a ``baton`` process adds to this one's environment (read at launch): BATON_HOME and the
    FAST timings."""
    return {"BATON_HOME": str(home), **{f"BATON_{k.upper()}": str(v) for k, v in FAST.items()}}


BATON = [sys.executable, "-m", "baton.cli"]


@pytest.fixture
def cli(baton_env: dict[str, str]) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run ``baton ARGS`` as its own process and wait for it."""

    def invoke(
        *args: str, env: dict[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*BATON, *args],
            env={**os.environ, **baton_env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    return invoke


@pytest.fixture
def cli_here(baton_env: dict[str, str]) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``cli``'s twin for commands that only read and print: ``baton ARGS`` run in this process
    (``main([...])``), with the same environment (set for the call), its output and exit code in the
    same ``CompletedProcess``. It skips a process's start (Python, Typer and SQLAlchemy imported again:
    0.3 to 0.7 s of CPU each); ``cli`` stays for what only a process shows (signals, its exit, ``run``,
    ``serve``). A ``baton`` that raises is the test's failure, traceback and all."""

    def invoke(
        *args: str, env: dict[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        out, err = io.StringIO(), io.StringIO()
        code: object = 0
        wanted = {**baton_env, **(env or {})}
        for name, size in (("COLUMNS", "80"), ("LINES", "25")):  # a pipe's size, which Rich would
            if name not in os.environ and name not in wanted:  # else read from a terminal on fd 0-2
                wanted[name] = size
        with pytest.MonkeyPatch.context() as patch:
            for name, value in wanted.items():
                patch.setenv(name, value)
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    baton_main(list(args))
                except SystemExit as exc:
                    code = exc.code
        returncode = code if isinstance(code, int) else (0 if code is None else 1)
        return subprocess.CompletedProcess([*BATON, *args], returncode, out.getvalue(), err.getvalue())

    return invoke


# -- PostgreSQL: a fresh schema per test, and the store contract on both backends ------------------------

PG_ADMIN_URL = os.environ.get("BATON_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
PG_PREFIX = "baton_t_"
PG_STALE = 2 * 3600  # a test schema this old was left by a killed run: dropped at the next start


AMQP_URL = os.environ.get("BATON_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")


@pytest.fixture(name="amqp_url", scope="session")
def amqp_url_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``BATON_TEST_AMQP_URL`` when it answers, else a private RabbitMQ node of this test process."""
    parts = urlsplit(AMQP_URL)
    if answers(parts.hostname or "127.0.0.1", parts.port or 5672):
        yield AMQP_URL
        return
    with private_rabbitmq(tmp_path_factory.mktemp("private-rabbitmq")) as url:
        yield url


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[sa.Engine]:
    """An AUTOCOMMIT engine on the server's ``test`` database (``BATON_TEST_PG_URL``) that creates and
    drops the tests' schemas. When that server does not answer, a private one of this test process
    (``tests.private_services``), from the machine's PostgreSQL server binaries."""
    with contextlib.ExitStack() as stack:
        engine = _pg_engine(PG_ADMIN_URL)
        failed = _pg_failure(engine)
        if failed:
            engine.dispose()
            url = stack.enter_context(private_postgres())
            engine = _pg_engine(url)
            failed = _pg_failure(engine)
        if failed:
            pytest.fail(
                f"PostgreSQL is not answering at {redact(PG_ADMIN_URL)} and a private one failed too "
                f"({failed})",
                pytrace=False,
            )
        yield engine
        engine.dispose()


def _pg_engine(url: str) -> sa.Engine:
    return sa.create_engine(
        url, isolation_level="AUTOCOMMIT", poolclass=NullPool, connect_args={"connect_timeout": 5}
    )


def _pg_failure(engine: sa.Engine) -> str:
    """Why the server does not answer ('' when it does); it drops stale test schemas when it does."""
    try:
        with engine.connect() as conn:
            _drop_stale_schemas(conn)
    except sa.exc.OperationalError as exc:
        return " ".join(str(exc.orig).split())
    return ""


def _drop_stale_schemas(conn: sa.Connection) -> None:
    names = conn.execute(
        sa.text("SELECT nspname FROM pg_namespace WHERE nspname LIKE :p"), {"p": PG_PREFIX + "%"}
    ).scalars()
    for name in list(names):
        born = name[len(PG_PREFIX) :].split("_")[0]
        if born.isdigit() and int(born) < time.time() - PG_STALE:
            _drop_schema(conn, name)


def _drop_schema(conn: sa.Connection, name: str) -> None:
    # the connections of processes the test left (application_name is the schema's name) go first
    conn.execute(
        sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = :n"),
        {"n": name},
    )
    conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))


@pytest.fixture
def pg_url(pg_admin: sa.Engine) -> Iterator[str]:
    """The URL of a fresh, empty PostgreSQL schema of its own (not migrated: opening a store migrates
    it), dropped after the test with every connection to it, other processes' included. Creating a
    schema costs milliseconds where a database costs up to a second on a busy disk. The URL names the
    schema in ``search_path`` and in ``application_name``, and turns ``synchronous_commit`` off (a
    commit does not wait for the disk; what other connections see is the same)."""
    name = f"{PG_PREFIX}{int(time.time())}_{uuid.uuid4().hex[:10]}"
    with pg_admin.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{name}"'))
    options = f"-csearch_path={name} -csynchronous_commit=off"
    url = pg_admin.url.update_query_dict({"application_name": name, "options": options})
    rendered = url.render_as_string(hide_password=False)
    yield rendered
    dispose_engine(rendered)
    with pg_admin.connect() as conn:
        _drop_schema(conn, name)


@pytest.fixture
def pg_store(pg_url: str) -> Iterator[SQLStore]:
    """A migrated :class:`SQLStore` on a fresh PostgreSQL database."""
    opened = SQLStore(pg_url)
    yield opened
    opened.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Parametrises a test over both backends: a SQLite file in ``tmp_path`` (not yet created), then a
    fresh PostgreSQL database (``pg_url``)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'data' / 'baton.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def openai(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[MockOpenAI]:
    with MockOpenAI() as server:
        for key, value in server.env().items():
            monkeypatch.setenv(key, value)
        server.configure_home(settings.home / "homes" / "codex")
        yield server
