"""The offline git smart-HTTP test server: clones authenticate through GIT_ASKPASS, never via the URL."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from baton.testing.git_http import REALM, GitHttpServer

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")

TOKEN = "s3cr3t-test-token-4f9a"
TOKEN_VAR = "BATON_TEST_GIT_TOKEN"

_PROXY_VARS = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}


def _clean_env(tmp_path: Path) -> dict[str, str]:
    """The outer environment minus anything that could supply credentials or reroute HTTP."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("GIT_") and k != "SSH_ASKPASS" and k.lower() not in _PROXY_VARS
    }
    gitconfig = tmp_path / "gitconfig"
    gitconfig.touch()
    env.update(
        {
            "HOME": str(tmp_path),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": str(gitconfig),
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_AUTHOR_NAME": "Test",
            "GIT_AUTHOR_EMAIL": "test@example.com",
            "GIT_COMMITTER_NAME": "Test",
            "GIT_COMMITTER_EMAIL": "test@example.com",
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        }
    )
    return env


def _git(env: dict[str, str], *args: str, cwd: Path | None = None, check: bool = True) -> str:
    proc = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc.stdout


def _askpass_env(tmp_path: Path, base: dict[str, str]) -> dict[str, str]:
    script = tmp_path / "askpass.sh"
    script.write_text(
        "#!/bin/sh\n"
        'case "$1" in\n'
        "  Username*) echo x-access-token ;;\n"
        f'  *) printf "%s\\n" "${TOKEN_VAR}" ;;\n'
        "esac\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return {**base, "GIT_ASKPASS": str(script), TOKEN_VAR: TOKEN}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[GitHttpServer, dict[str, str], list[str]]]:
    """A server over root/demo.git (two commits, partial clone allowed); yields server, env, commit ids."""
    env = _clean_env(tmp_path)
    src = tmp_path / "src"
    _git(env, "init", "-q", "-b", "main", str(src))
    (src / "README.md").write_text("hello\n")
    _git(env, "add", "README.md", cwd=src)
    _git(env, "commit", "-q", "-m", "first", cwd=src)
    (src / "code.py").write_text("print('hi')\n")
    _git(env, "add", "code.py", cwd=src)
    _git(env, "commit", "-q", "-m", "second", cwd=src)
    commits = _git(env, "rev-list", "main", cwd=src).split()
    root = tmp_path / "root"
    root.mkdir()
    _git(env, "clone", "-q", "--bare", str(src), str(root / "demo.git"))
    _git(env, "config", "uploadpack.allowFilter", "true", cwd=root / "demo.git")
    with GitHttpServer(root=root, token=TOKEN) as server:
        yield server, env, commits


def test_clone_requires_askpass_credentials(
    served: tuple[GitHttpServer, dict[str, str], list[str]], tmp_path: Path
) -> None:
    server, env, commits = served
    url = server.url("demo.git")
    assert url == f"http://127.0.0.1:{server.port}/demo.git"
    assert TOKEN not in url

    # (a) no credentials: fails with an auth error, and nothing was authorised.
    assert "GIT_ASKPASS" not in env and "SSH_ASKPASS" not in env
    proc = subprocess.run(
        ["git", "clone", url, str(tmp_path / "anon")], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode != 0
    assert "Authentication failed" in proc.stderr or "could not read Username" in proc.stderr, proc.stderr
    assert server.auth_attempts == 0
    assert server.rejected >= 1
    rejected_anon = server.rejected

    # (b) credentials from GIT_ASKPASS (token only in the askpass script's environment).
    auth_env = _askpass_env(tmp_path, env)
    dest = tmp_path / "clone"
    _git(auth_env, "clone", "-q", url, str(dest))
    assert _git(env, "rev-list", "HEAD", cwd=dest).split() == commits
    assert (dest / "code.py").read_text() == "print('hi')\n"
    remote = _git(env, "config", "remote.origin.url", cwd=dest).strip()
    assert remote == url and TOKEN not in (dest / ".git" / "config").read_text()

    # (c) counters: the first probe was challenged, the retries carried the token.
    assert server.rejected == rejected_anon + 1
    assert server.auth_attempts >= 2  # info/refs + git-upload-pack
    authorised = [r for r in server.requests if r.authorized]
    assert {r.username for r in authorised} == {"x-access-token"}
    assert any(r.method == "POST" and r.path.endswith("/git-upload-pack") for r in authorised)
    assert all(r.status == 200 for r in authorised)
    assert server.backend_errors == []


def test_partial_clone_and_lazy_fetch(
    served: tuple[GitHttpServer, dict[str, str], list[str]], tmp_path: Path
) -> None:
    server, env, commits = served
    auth_env = _askpass_env(tmp_path, env)
    dest = tmp_path / "partial.git"
    _git(auth_env, "clone", "-q", "--filter=blob:none", "--bare", server.url("demo.git"), str(dest))
    assert _git(env, "rev-list", "HEAD", cwd=dest).split() == commits
    assert _git(env, "config", "remote.origin.promisor", cwd=dest).strip() == "true"
    missing = _git(env, "rev-list", "--objects", "--missing=print", "--all", cwd=dest).split()
    assert sum(1 for obj in missing if obj.startswith("?")) == 2  # both blobs were left out

    # Reading a blob fetches it lazily from the promisor remote, authenticating again.
    before = server.auth_attempts
    assert _git(auth_env, "cat-file", "-p", "HEAD:code.py", cwd=dest) == "print('hi')\n"
    assert server.auth_attempts > before
    assert server.backend_errors == []


def test_wrong_token_is_rejected(
    served: tuple[GitHttpServer, dict[str, str], list[str]], tmp_path: Path
) -> None:
    server, env, _ = served
    bad_env = {**_askpass_env(tmp_path, env), TOKEN_VAR: "not-the-token"}
    proc = subprocess.run(
        ["git", "clone", server.url("demo.git"), str(tmp_path / "bad")],
        env=bad_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert server.auth_attempts == 0
    assert server.rejected >= 2  # the anonymous probe and the wrong credentials
    assert any(r.username is None and not r.authorized for r in server.requests)


def test_push_and_large_requests(
    served: tuple[GitHttpServer, dict[str, str], list[str]], tmp_path: Path
) -> None:
    """receive-pack works, and big fetch requests (gzip-encoded, then chunked) reach the backend intact."""
    server, env, commits = served
    auth_env = _askpass_env(tmp_path, env)
    work = tmp_path / "work"
    _git(auth_env, "clone", "-q", server.url("demo.git"), str(work))
    # Many branches on distinct commits make the fetch request's want list large.
    stream = []
    for i in range(1500):
        message = f"branch {i}\n"
        stream.append(
            f"commit refs/heads/b{i}\ncommitter Test <test@example.com> 1700000000 +0000\n"
            f"data {len(message)}\n{message}from {commits[0]}\n\n"
        )
    subprocess.run(
        ["git", "fast-import", "--quiet"], cwd=work, env=env, input="".join(stream), text=True, check=True
    )
    _git(auth_env, "push", "-q", "origin", "refs/heads/*:refs/heads/*", cwd=work)
    served_refs = _git(env, "for-each-ref", "--format=%(refname)", cwd=server.root / "demo.git").split()
    assert len(served_refs) == 1501
    assert any(r.path.endswith("/git-receive-pack") and r.authorized for r in server.requests)

    # Default http.postBuffer: the ~75 KB request goes gzip-compressed.
    _git(auth_env, "clone", "-q", "--mirror", server.url("demo.git"), str(tmp_path / "gz.git"))
    assert any(r.content_encoding == "gzip" for r in server.requests)
    # A small http.postBuffer (git needs > 64 KiB): the request no longer fits and is sent chunked.
    _git(
        auth_env,
        "-c",
        "http.postBuffer=66000",
        "clone",
        "-q",
        "--mirror",
        server.url("demo.git"),
        str(tmp_path / "chunked.git"),
    )
    assert any(r.chunked and r.authorized for r in server.requests)
    for name in ("gz.git", "chunked.git"):
        refs = _git(env, "for-each-ref", "--format=%(refname)", cwd=tmp_path / name).split()
        assert len(refs) == 1501
    assert server.backend_errors == []


def test_url_needs_running_server(tmp_path: Path) -> None:
    server = GitHttpServer(root=tmp_path, token=TOKEN)
    with pytest.raises(RuntimeError):
        server.url("demo.git")
    with server:
        assert server.url("demo.git").startswith("http://127.0.0.1:")
    assert REALM == "baton-test"
