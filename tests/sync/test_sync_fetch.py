"""The sync's fetch over HTTP (baton.sync.fetch), against the real git smart-HTTP test server, which
refuses any request without the token: the credentials go up front (no 401 round trip), only through
the environment of the fetching git process, and appear nowhere else: not in any argv, git's traces,
the cache's or the worktree's files on disk, or an error message."""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import baton.sync.fetch
from baton.agents import AGENTS
from baton.errors import GitError, RemoteError
from baton.keys import Key, make_key
from baton.settings import Settings
from baton.sync.engine import OnConflict, SyncHow, SyncReport, sync_worktree
from baton.sync.fetch import credentials_env
from baton.testing.git_http import GitHttpServer, _Handler
from baton.workspace.workdirs import Workdirs, branch_for
from tests.conftest import git, wait_for


class CountingServer(GitHttpServer):
    """The git HTTP test server, counting the requests its handlers are still on: it records a request
    when its handler ends, which may be just after git, the client, has exited (seen on a busy CI
    machine)."""

    in_progress = 0

    def handler_class(self) -> type[_Handler]:
        return _CountingHandler

    def count(self, step: int) -> None:
        with self._lock:
            self.in_progress += step


class _CountingHandler(_Handler):
    owner: CountingServer

    def _handle(self) -> None:
        self.owner.count(1)
        try:
            super()._handle()
        finally:
            self.owner.count(-1)


def settled(server: CountingServer, before: int) -> list[Any]:
    """The requests recorded since ``before``, once no handler is still on one (the client is done)."""
    wait_for(lambda: server.in_progress == 0, timeout=30, what="the git HTTP server to record every request")
    return list(server.requests[before:])


TOKEN = "t0ken-5ync-9c1e"
URL = "https://git.example.com/team/api.git"


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CountingServer]:
    """A served bare repository ``api.git`` (two commits on main); BATON_GIT_TOKEN is its token."""
    src = tmp_path / "src"
    src.mkdir()
    git(src, "init", "--quiet", "-b", "main")
    for name in ("README.md", "app.py"):
        (src / name).write_text(f"{name}\n")
        git(src, "add", name)
        git(src, "commit", "--quiet", "-m", f"add {name}")
    root = tmp_path / "served"
    root.mkdir()
    git(root, "clone", "--quiet", "--bare", str(src), "api.git")
    git(root / "api.git", "config", "uploadpack.allowFilter", "true")
    monkeypatch.setenv("BATON_GIT_TOKEN", TOKEN)
    monkeypatch.delenv("BATON_GIT_USERNAME", raising=False)
    with CountingServer(root=root, token=TOKEN) as running:
        yield running


@pytest.fixture
def workdirs(settings: Settings) -> Workdirs:
    return Workdirs(settings)


@pytest.fixture
def key(server: CountingServer) -> Key:
    return make_key("fake", server.url("api.git"), "issue-1", AGENTS)


@pytest.fixture
def wt(workdirs: Workdirs, key: Key) -> Path:
    return workdirs.prepare_worktree(key, branch_for(key), None).path


def sync(workdirs: Workdirs, key: Key, wt: Path) -> SyncReport:
    return sync_worktree(workdirs, key, wt, branch_for(key), None, None, SyncHow.REBASE, OnConflict.STOP)


def basic(user: str, token: str = TOKEN) -> str:
    return base64.b64encode(f"{user}:{token}".encode()).decode()


def record_argv(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every argument of every process started from now on (subprocess.run and Popen), flattened."""
    seen: list[str] = []
    real_init = subprocess.Popen.__init__

    def recording(self: Any, args: Any, *rest: Any, **kwargs: Any) -> None:
        seen.extend(str(a) for a in ([args] if isinstance(args, (str, bytes)) else args))
        real_init(self, args, *rest, **kwargs)

    monkeypatch.setattr(subprocess.Popen, "__init__", recording)
    return seen


def files_under(*roots: Path) -> str:
    """The bytes of every regular file under ``roots``, as one text (undecodable bytes replaced)."""
    paths = [p for root in roots for p in sorted(root.rglob("*")) if p.is_file()]
    return "".join(p.read_bytes().decode(errors="replace") for p in paths)


@pytest.fixture
def no_peek(monkeypatch: pytest.MonkeyPatch) -> None:
    """git's own fetch decides (as for a remote the one-request peek does not read)."""
    monkeypatch.setattr(baton.sync.fetch, "peek_http", lambda *_args: None)


@pytest.mark.usefixtures("no_peek")
def test_a_no_op_sync_sends_the_token_up_front_and_nowhere_else(
    server: CountingServer,
    workdirs: Workdirs,
    key: Key,
    wt: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    trace = tmp_path / "trace"
    for name in ("GIT_TRACE", "GIT_TRACE_CURL", "GIT_TRACE_PACKET", "GIT_TRACE2_EVENT"):
        monkeypatch.setenv(name, str(trace))
    argv = record_argv(monkeypatch)
    before = len(server.requests)
    assert sync(workdirs, key, wt).result == "unchanged"
    requests = settled(server, before)
    # without the header: GET 401, GET with askpass's answer, POST; with it, no 401 round trip
    assert [(r.method, r.authorized) for r in requests] == [("GET", True), ("POST", True)], requests
    assert {r.username for r in requests} == {"x-access-token"}  # the user name askpass would give
    text = trace.read_text()
    assert "Authorization: Basic <redacted>" in text  # the header was sent, and git's trace redacts it
    home = workdirs.cache_path(key.repo)
    gitdir = Path(git(wt, "rev-parse", "--absolute-git-dir"))
    for secret in (TOKEN, basic("x-access-token")):
        assert secret not in text
        assert not [a for a in argv if secret in a]
        assert secret not in files_under(home, gitdir, workdirs.home / "bin")
    assert any("fetch" in a for a in argv)  # the recording saw the fetch


@pytest.mark.usefixtures("no_peek")
def test_the_user_name_and_the_callers_git_config_entries_are_kept(
    server: CountingServer,
    workdirs: Workdirs,
    key: Key,
    wt: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BATON_GIT_USERNAME", "ci-bot")
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", "http.userAgent")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", "callers-agent/1.0")
    monkeypatch.setenv("GIT_TRACE_CURL", str(tmp_path / "trace"))
    before = len(server.requests)
    assert sync(workdirs, key, wt).result == "unchanged"
    assert [(r.authorized, r.username) for r in settled(server, before)] == [(True, "ci-bot")] * 2
    assert "User-Agent: callers-agent/1.0" in (tmp_path / "trace").read_text()  # the caller's entry too


def test_the_blobs_of_a_partial_clone_are_fetched_with_the_token_up_front_too(
    server: CountingServer, workdirs: Workdirs, key: Key, wt: Path, tmp_path: Path
) -> None:
    people = tmp_path / "people"
    git(tmp_path, "clone", "--quiet", str(server.root / "api.git"), "people")
    (people / "new.txt").write_text("new\n")
    git(people, "add", "new.txt")
    git(people, "commit", "--quiet", "-m", "main adds a file")
    git(people, "push", "--quiet", "origin", "main")
    before = len(server.requests)
    report = sync_worktree(workdirs, key, wt, branch_for(key), None, None, SyncHow.MERGE, OnConflict.STOP)
    assert report.result == "integrated" and (wt / "new.txt").read_text() == "new\n"
    # a fast-forward of a clean worktree: the refs' fetch, then the new blob's (the prefetch), each
    # starting with its GET of info/refs; no 401 anywhere
    requests = settled(server, before)
    assert [r.method for r in requests].count("GET") == 2 and all(r.authorized for r in requests), requests


def test_a_wrong_token_is_a_clear_remote_error_without_the_token(
    server: CountingServer, workdirs: Workdirs, key: Key, wt: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "wr0ng-t0ken-77"
    monkeypatch.setenv("BATON_GIT_TOKEN", wrong)
    with pytest.raises(RemoteError) as info:
        sync(workdirs, key, wt)
    message = str(info.value)
    assert "cannot reach repo" in message and "BATON_GIT_TOKEN" in message
    assert "Authentication failed" in message or "401" in message, message
    assert wrong not in message and basic("x-access-token", wrong) not in message
    assert server.requests[-1].status == 401 and not server.requests[-1].authorized


@pytest.mark.usefixtures("no_peek")
def test_an_error_message_naming_the_token_is_scrubbed(
    server: CountingServer, workdirs: Workdirs, key: Key, wt: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """git never prints the header or the token; were it to, the error would still not carry them."""
    header = basic("x-access-token")

    def leaking(args: list[str], *rest: Any, **kwargs: Any) -> str:
        raise GitError(f"git fetch failed: fatal: unable to access: {TOKEN} / Basic {header}: 401")

    monkeypatch.setattr(baton.sync.fetch, "run_git", leaking)
    with pytest.raises(RemoteError) as info:
        sync(workdirs, key, wt)
    message = str(info.value)
    assert "***" in message and TOKEN not in message and header not in message
    assert TOKEN not in repr(info.value.__cause__)


def test_credentials_env() -> None:
    env = {"BATON_GIT_TOKEN": TOKEN}
    assert credentials_env(URL, env) == {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": f"http.{URL}.extraHeader",
        "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic('x-access-token')}",
    }
    added = credentials_env("HTTP://h/r.git", {**env, "GIT_CONFIG_COUNT": "2", "BATON_GIT_USERNAME": "me"})
    assert added["GIT_CONFIG_COUNT"] == "3" and "GIT_CONFIG_KEY_2" in added
    assert added["GIT_CONFIG_VALUE_2"] == f"Authorization: Basic {basic('me')}"
    assert credentials_env(URL, {}) == {} and credentials_env(URL, {"BATON_GIT_TOKEN": ""}) == {}
    for url in ("ssh://git@h/r.git", "git@h:r.git", "/srv/r.git", "git://h/r.git"):
        assert credentials_env(url, env) == {}
    for bad in ("x", "-1"):  # git refuses such a count itself; nothing is added to it
        assert credentials_env(URL, {**env, "GIT_CONFIG_COUNT": bad}) == {}


# -- the one-request peek ---------------------------------------------------------------------------


def test_a_no_op_sync_over_http_is_one_request_and_no_git_process(
    server: CountingServer, workdirs: Workdirs, key: Key, wt: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = record_argv(monkeypatch)
    before = len(server.requests)
    assert sync(workdirs, key, wt).result == "unchanged"
    requests = settled(server, before)
    assert [(r.method, r.path, r.authorized) for r in requests] == [
        ("POST", "/api.git/git-upload-pack", True)
    ]
    assert not [a for a in argv if a == "fetch"]  # no git fetch started
    assert TOKEN not in " ".join(argv) and basic("x-access-token") not in " ".join(argv)


def test_a_moved_remote_is_seen_by_the_peek_and_fetched_by_git(
    server: CountingServer, workdirs: Workdirs, key: Key, wt: Path, tmp_path: Path
) -> None:
    people = tmp_path / "people-peek"
    git(tmp_path, "clone", "--quiet", str(server.root / "api.git"), str(people))
    (people / "moved.txt").write_text("moved\n")
    git(people, "add", "moved.txt")
    git(people, "commit", "--quiet", "-m", "main moves")
    git(people, "push", "--quiet", "origin", "main")
    report = sync(workdirs, key, wt)
    assert report.result == "integrated" and (wt / "moved.txt").read_text() == "moved\n"
    assert sync(workdirs, key, wt).result == "unchanged"  # and the next one peeks again, nothing new


def test_the_peek_leaves_the_decision_to_git_when_it_cannot_read_the_remote(
    server: CountingServer, workdirs: Workdirs, key: Key, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    peek = baton.sync.fetch.peek_http
    cache = tmp_path / "nocache"
    url = server.url("api.git")
    env = {"BATON_GIT_TOKEN": TOKEN}
    assert peek(url, ["main"], env, cache) == {"main": git(server.root / "api.git", "rev-parse", "main")}
    before = len(server.requests)
    assert peek(url, ["main"], {**env, "HTTPS_PROXY": "http://proxy:3128"}, cache) is None
    assert peek(url, ["main"], {**env, "GIT_SSL_NO_VERIFY": "1"}, cache) is None
    assert peek("ssh://git@host/repo.git", ["main"], env, cache) is None
    assert len(server.requests) == before  # none of them asked the server
    assert peek(url, ["main"], {"BATON_GIT_TOKEN": "wrong"}, cache) is None  # a 401
    assert peek(server.url("missing.git"), ["main"], env, cache) is None
    assert peek("http://127.0.0.1:9/api.git", ["main"], env, cache) is None  # nothing listening


def test_an_ls_refs_answer_is_read_strictly() -> None:
    refs_of = baton.sync.fetch._refs_of
    one, two = "a" * 40, "b" * 40
    pkt = baton.sync.fetch._pkt
    answer = pkt(f"{one} refs/heads/main-old\n") + pkt(f"{two} refs/heads/main\n")
    assert refs_of(answer + b"0000", ["main", "gone"]) == {"main": two, "gone": None}
    assert refs_of(answer, ["main"]) is None  # no flush: cut
    assert refs_of(b"zzzz", ["main"]) is None
    assert refs_of(b"0010not-a-sha xx0000", ["main"]) is None
    assert refs_of(answer + b"0000extra", ["main"]) is None
