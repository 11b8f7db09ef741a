"""The dashboard over a real uvicorn, at the HTTP level: sign-in and its cookie, redirects, CSRF and
scope checks on every state-changing form, escaping of hostile text, the sessions table's filters,
sorts and pages, error pages, and the live stream's events. (The browser tests drive the same pages in
Chromium: tests/service/test_dashboard_browser.py.)"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from baton import RunRequest, run
from baton.keys import make_key
from baton.models import Mode, SessionRecord, SessionStatus
from baton.service.auth import create_token
from baton.service.dashboard.web import csrf_for
from baton.service.records import TokenScope
from baton.service.tables import token_store
from baton.settings import Settings
from baton.store import open_store
from baton.testing.fake_agent import VERSION as FAKE_VERSION
from tests.conftest import BATON
from tests.service_fixtures import Service, free_port, service_fixture, wait_http  # noqa: F401 (fixture)

PAGES = ["/", "/sessions", "/runs", "/plans", "/deliveries", "/audit"]


def go(settings: Settings, repo: Path, thread: str = "t1", prompt: str = "do it") -> str:
    result = run(RunRequest(agent="fake", repo=str(repo), thread=thread, prompt=prompt), settings=settings)
    assert result.ok, result.run.error
    return result.run.id


@contextmanager
def browser(service: Service, scope: str | None = None) -> Iterator[httpx.Client]:
    """A client signed in the way a browser is: through the form, keeping the cookie."""
    with httpx.Client(base_url=service.url, timeout=30, follow_redirects=False) as http:
        if scope:
            answer = http.post("/login", data={"token": service.token(scope), "next": "/"})
            assert answer.status_code == 303 and answer.headers["location"] == "/"
        yield http


@pytest.fixture
def admin(service: Service) -> Iterator[httpx.Client]:
    with browser(service, "admin") as http:
        yield http


def csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]{64})"', html)
    assert found, "no csrf field on the page"
    return found.group(1)


def test_pages_redirect_to_sign_in_and_come_back(service: Service) -> None:
    with browser(service) as http:
        for path in [*PAGES, "/session?agent=fake&repo=x&thread=t"]:
            answer = http.get(path)
            assert answer.status_code == 303, path
            assert answer.headers["location"].startswith("/login?next=")
        assert http.get("/ui/stream/session?agent=fake&repo=x&thread=t").status_code == 401
        secret = service.token("read")
        signed = http.post("/login", data={"token": secret, "next": "/sessions?status=active"})
    assert signed.status_code == 303 and signed.headers["location"] == "/sessions?status=active"
    cookie = signed.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie


def test_bad_token_and_open_redirect_refused(service: Service) -> None:
    with browser(service) as http:
        bad = http.post("/login", data={"token": "baton_nope", "next": "/"})
        assert bad.status_code == 401 and 'id="login-error"' in bad.text and "set-cookie" not in bad.headers
        revoked = http.post("/login", data={"token": service.revoked_token("admin")})
        assert revoked.status_code == 401
        away = http.post("/login", data={"token": service.token("read"), "next": "//evil.example/x"})
    assert away.headers["location"] == "/"


def test_every_page_renders_with_strict_headers(service: Service, settings: Settings, src_repo: Path) -> None:
    run_id = go(settings, src_repo)
    slug = make_key("fake", str(src_repo), "t1", ["fake"]).repo.slug
    with browser(service, "read") as http:
        for path in [*PAGES, f"/runs/{run_id}", f"/session?agent=fake&repo={slug}&thread=t1"]:
            answer = http.get(path)
            assert answer.status_code == 200, (path, answer.text[:500])
            assert "script-src 'self'" in answer.headers["content-security-policy"]
            assert answer.headers["cache-control"] == "no-store"
            assert "<script>" not in answer.text  # no inline script anywhere
        assert http.get("/static/baton.js").status_code == 200
        assert http.get("/static/baton.css").status_code == 200


def test_read_token_sees_no_reset_and_forged_posts_are_403(
    service: Service, settings: Settings, src_repo: Path
) -> None:
    go(settings, src_repo)
    slug = make_key("fake", str(src_repo), "t1", ["fake"]).repo.slug
    form = {"agent": "fake", "repo": slug, "thread": "t1", "scope": "all"}
    with browser(service, "read") as http:
        page = http.get("/session", params={"agent": "fake", "repo": slug, "thread": "t1"})
        assert 'class="reset' not in page.text
        token = csrf(page.text)  # the read token's own, valid csrf value
        assert http.get("/session/reset", params=form).status_code == 403
        assert http.post("/session/reset", data={**form, "csrf": token}).status_code == 403
        assert http.post("/session/reset", data=form).status_code == 403
    with browser(service, "admin") as http:
        assert http.post("/session/reset", data=form).status_code == 403  # admin, but no csrf
        assert http.post("/session/reset", data={**form, "csrf": "0" * 64}).status_code == 403
    assert service.store.get_session("fake", slug, "t1") is not None
    assert not [e for e in service.store.list_audit(10) if e["action"].startswith("reset")]


def test_admin_reset_confirms_then_archives_and_audits(
    service: Service, settings: Settings, src_repo: Path
) -> None:
    go(settings, src_repo)
    session = service.store.list_sessions()[0]
    (Path(session.worktree) / "wip.txt").write_text("not committed\n")
    key = {"agent": "fake", "repo": session.repo, "thread": "t1"}
    with browser(service, "admin") as http:
        confirm = http.get("/session/reset", params={**key, "scope": "worktree"})
        assert confirm.status_code == 200 and 'id="reset-what"' in confirm.text
        assert "refs/baton/archive/fake/t1/" in confirm.text and session.worktree in confirm.text
        assert Path(session.worktree).exists()  # the confirmation page removes nothing
        done = http.post("/session/reset", data={**key, "scope": "worktree", "csrf": csrf(confirm.text)})
    assert done.status_code == 200 and 'id="reset-done"' in done.text
    assert not Path(session.worktree).exists()
    entry = service.store.list_audit(1)[0]
    assert entry["action"] == "reset" and entry["actor"].endswith("-admin")
    assert entry["detail"]["archive_ref"] in done.text


def test_posts_from_another_site_are_refused(service: Service, admin: httpx.Client) -> None:
    page = admin.get("/")
    foreign = {"Origin": "http://evil.example"}
    assert admin.post("/logout", data={"csrf": csrf(page.text)}, headers=foreign).status_code == 403
    signin = admin.post("/login", data={"token": service.token("read")}, headers=foreign)
    assert signin.status_code == 403 and "set-cookie" not in signin.headers
    same = service.url.removeprefix("http://")
    assert (
        admin.post(
            "/logout", data={"csrf": csrf(page.text)}, headers={"Origin": f"http://{same}"}
        ).status_code
        == 303
    )


def test_logout_needs_csrf_and_clears_the_cookie(service: Service, admin: httpx.Client) -> None:
    page = admin.get("/")
    assert admin.post("/logout", data={}).status_code == 403
    out = admin.post("/logout", data={"csrf": csrf(page.text)})
    assert out.status_code == 303 and 'baton_session=""' in out.headers["set-cookie"]


def test_the_cookie_holds_a_session_not_the_token_and_sign_out_revokes_it(service: Service) -> None:
    secret = service.token("admin")
    with httpx.Client(base_url=service.url, timeout=30) as http:
        signed = http.post("/login", data={"token": secret})
        session_id = signed.cookies["baton_session"]
        assert secret not in signed.headers["set-cookie"] and session_id != secret
        assert "Secure" not in signed.headers["set-cookie"]  # plain HTTP: a Secure cookie is never sent back
        page = http.get("/", follow_redirects=False)
        assert page.status_code == 200
        assert http.post("/logout", data={"csrf": csrf(page.text)}).status_code == 303
    # the cookie as it was before sign-out (copied, or kept by a browser that ignored the reset)
    with httpx.Client(base_url=service.url, timeout=30, cookies={"baton_session": session_id}) as copied:
        assert copied.get("/", follow_redirects=False).status_code == 303  # to /login: revoked
    with httpx.Client(base_url=service.url, timeout=30, cookies={"baton_session": secret}) as raw:
        assert raw.get("/", follow_redirects=False).status_code == 303  # the token is no session id


def test_revoking_the_token_signs_its_sessions_out(service: Service) -> None:
    secret = service.token("read", "to-revoke")
    with httpx.Client(base_url=service.url, timeout=30) as http:
        http.post("/login", data={"token": secret})
        assert http.get("/", follow_redirects=False).status_code == 200
        token_store(service.store).revoke_token("to-revoke", 1.0)
        assert http.get("/", follow_redirects=False).status_code == 303


def test_the_cookie_is_secure_behind_a_tls_proxy(service: Service) -> None:
    """uvicorn trusts the X-Forwarded-Proto of the proxies ``baton serve --forwarded-allow-ips`` names
    (loopback by default, as this test's client is)."""
    with httpx.Client(base_url=service.url, timeout=30) as http:
        signed = http.post(
            "/login", data={"token": service.token("read")}, headers={"X-Forwarded-Proto": "https"}
        )
    assert signed.status_code == 303 and "; secure" in signed.headers["set-cookie"].lower()


@pytest.mark.parametrize("trusted", [False, True])
def test_baton_serve_trusts_the_proxies_it_is_told_to(
    baton_env: dict[str, str], settings: Settings, trusted: bool
) -> None:
    """A TLS proxy that is not on 127.0.0.1 (here 127.0.0.2: a container's, an ingress's address) is
    trusted only when named by ``--forwarded-allow-ips``; then the cookie it passes on is Secure."""
    port = free_port()
    settings.home.mkdir(parents=True, exist_ok=True)
    store = open_store(settings.resolved_store_url)
    secret = create_token(store, "proxied", TokenScope.READ)
    store.close()
    trust = ["--forwarded-allow-ips", "127.0.0.2"] if trusted else []
    command = [*BATON, "serve", "--port", str(port), *trust]
    env = {**os.environ, **baton_env}
    with subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    ) as proc:
        try:
            wait_http(f"http://127.0.0.1:{port}/healthz")
            proxy = httpx.HTTPTransport(local_address="127.0.0.2")
            with httpx.Client(transport=proxy, base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
                signed = http.post("/login", data={"token": secret}, headers={"X-Forwarded-Proto": "https"})
        finally:
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=30)
    assert signed.status_code == 303, signed.text
    assert ("; secure" in signed.headers["set-cookie"].lower()) is trusted


def test_sign_in_from_a_null_origin_is_refused(service: Service) -> None:
    """``Origin: null`` is a sandboxed frame or a ``data:`` page, never this site's own form."""
    with httpx.Client(base_url=service.url, timeout=30) as http:
        signin = http.post("/login", data={"token": service.token("read")}, headers={"Origin": "null"})
    assert signin.status_code == 403 and "set-cookie" not in signin.headers


def test_csrf_is_bound_to_the_session() -> None:
    assert csrf_for("a") != csrf_for("b") and len(csrf_for("a")) == 64


def test_hostile_text_is_escaped(service: Service, settings: Settings, src_repo: Path) -> None:
    hostile = '<script>alert(1)</script><img src=x onerror="alert(2)">'
    run_id = go(settings, src_repo, prompt=hostile)
    service.store.update_run(run_id, result=hostile, note=hostile)
    with browser(service, "read") as http:
        for path in [
            f"/runs/{run_id}",
            "/runs",
            "/session?"
            + httpx.QueryParams(
                {"agent": "fake", "repo": service.store.list_sessions()[0].repo, "thread": "t1"}
            ).__str__(),
        ]:
            text = http.get(path).text
            assert "<script>alert" not in text and "<img src=x" not in text, path
            assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text, path


def test_sessions_table_filters_sorts_and_pages(service: Service) -> None:
    for i in range(120):
        agent = "claude" if i % 2 else "codex"
        repo = "github.com/acme/api" if i % 3 else "github.com/acme/web"
        record = SessionRecord(agent, repo, f"t-{i:03d}", f"https://{repo}.git", "b", "/w", last_used_at=i)
        record.attempts = i % 7
        record.status = SessionStatus.CLOSED if i % 10 == 0 else SessionStatus.ACTIVE
        service.store.save_session(record)
    with browser(service, "read") as http:
        first = http.get("/sessions").text
        assert "page 1 of 3" in first and first.index("t-119") < first.index("t-118")
        last = http.get("/sessions", params={"page": 3}).text
        assert "page 3 of 3" in last and "t-000" in last
        closed = http.get("/sessions", params={"status": "closed"}).text
        assert closed.count('class="session-link"') == 12
        api_codex = http.get("/sessions", params={"agent": "codex", "repo": "github.com/acme/api"}).text
        assert api_codex.count('class="session-link"') == 40
        by_attempts = http.get("/sessions", params={"sort": "attempts", "order": "asc"}).text
        rows = re.findall(r'thread=(t-\d+)">', by_attempts)
        assert all(int(t[2:]) % 7 == 0 for t in rows[:17])
        assert http.get("/sessions", params={"sort": "bogus"}).status_code == 422
        assert http.get("/sessions", params={"page": 0}).status_code == 400


def test_sort_by_size_uses_the_disk_measurement(service: Service, settings: Settings, src_repo: Path) -> None:
    go(settings, src_repo, "small")
    go(settings, src_repo, "big")
    big = next(s for s in service.store.list_sessions() if s.thread == "big")
    (Path(big.worktree) / "blob.bin").write_bytes(b"x" * 2_000_000)
    with browser(service, "read") as http:
        http.get("/", params={"fresh": 1})
        text = http.get("/sessions", params={"sort": "size"}).text
    threads = re.findall(r'thread=(\w+)">', text)
    assert threads == ["big", "small"]


def test_error_pages_are_pages(service: Service) -> None:
    with browser(service, "read") as http:
        missing = http.get("/session", params={"agent": "fake", "repo": "github.com/x/y", "thread": "nope"})
        assert missing.status_code == 404 and "no session for" in missing.text and "<html" in missing.text
        bad = http.get("/session", params={"agent": "fake", "repo": "x", "thread": "../etc"})
        assert bad.status_code == 422 and "thread" in bad.text
        assert http.get("/runs/nonexistent-run").status_code == 404
    with service.client("read") as api:  # the API keeps its JSON errors
        assert api.get("/v1/session", params={"agent": "fake", "repo": "x", "thread": "no"}).json()["detail"]


def test_session_stream_follows_a_new_run_to_its_outcome(
    service: Service, settings: Settings, src_repo: Path
) -> None:
    go(settings, src_repo)
    slug = make_key("fake", str(src_repo), "t1", ["fake"]).repo.slug
    events: list[tuple[str, str]] = []
    with browser(service, "read") as http:
        params = {"agent": "fake", "repo": slug, "thread": "t1"}
        with http.stream("GET", "/ui/stream/session", params=params, timeout=60) as stream:
            lines = stream.iter_lines()
            name = ""
            for line in lines:
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    events.append((name, json.loads(line[6:]) if name != "x" else line))
                    if name == "timeline" and len(events) == 1:
                        go(settings, src_repo, prompt="second turn")  # after the stream began
                    if name == "outcome":
                        break
    kinds = [k for k, _ in events]
    assert kinds[0] == "timeline" and "run" in kinds and kinds[-1] == "outcome"
    assert events[-1][1]["outcome"] == "succeeded"  # type: ignore[index]
    entries = [data for kind, data in events if kind == "entry"]
    assert entries and all('class="entry entry-' in str(e) for e in entries)
    assert any("second turn" in str(e) or "entry-text" in str(e) for e in entries)


def test_a_huge_log_is_cut_with_a_pointer_to_the_cli(
    service: Service, settings: Settings, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from baton.service.dashboard import runs

    run_id = go(settings, src_repo)
    record = service.store.get_run(run_id)
    assert record is not None
    with Path(record.log_path).open("a") as log:
        for i in range(2000):
            log.write(
                json.dumps({"type": "assistant", "message": {"content": f"line {i} " + "x" * 200}}) + "\n"
            )
    monkeypatch.setattr(runs, "MAX_LOG", 64 * 1024)
    with browser(service, "read") as http:
        page = http.get(f"/runs/{run_id}")
    assert page.status_code == 200 and f"baton runs logs {run_id}" in page.text
    assert "line 10 " in page.text and "line 1999 " not in page.text
    assert f'<dd id="run-cli-version">fake {FAKE_VERSION}</dd>' in page.text  # who ran the turn


def test_session_page_shows_lineage_and_escapes_a_hostile_origin(
    service: Service, settings: Settings, src_repo: Path
) -> None:
    go(settings, src_repo, thread="dev")
    run(
        RunRequest(
            agent="fake", repo=str(src_repo), thread="review", prompt="r", mode=Mode.FORK, fork_from="dev"
        ),
        settings=settings,
    )
    repo = service.store.list_sessions()[0].repo
    [review] = [s for s in service.store.list_sessions() if s.thread == "review"]
    with browser(service, "read") as http:
        page = http.get(
            "/session?" + str(httpx.QueryParams({"agent": "fake", "repo": repo, "thread": "review"}))
        )
        assert page.status_code == 200 and "came from" in page.text and "fake/dev" in page.text
        source = http.get(
            "/session?" + str(httpx.QueryParams({"agent": "fake", "repo": repo, "thread": "dev"}))
        )
        assert "led to" in source.text and "fake/review" in source.text
        review.origin = {"kind": "<script>x()</script>", "agent": "fake", "thread": "<b>t</b>", "at": 10**400}
        service.store.save_session(review)
        hostile = http.get(
            "/session?" + str(httpx.QueryParams({"agent": "fake", "repo": repo, "thread": "review"}))
        )
        assert (
            hostile.status_code == 200
            and "<script>x()" not in hostile.text
            and "&lt;script&gt;" in hostile.text
        )


def test_audit_counts_fields_in_words(service: Service, admin: httpx.Client) -> None:
    """One field is "1 field", two are "2 fields" (the page once said "1 fields")."""
    service.store.audit("probe", "fake:x:one", "admin", {"only": 1})
    service.store.audit("probe", "fake:x:two", "admin", {"a": 1, "b": 2})
    page = admin.get("/audit")
    assert page.status_code == 200
    assert "<summary>1 field</summary>" in page.text and "<summary>2 fields</summary>" in page.text
    assert "1 fields" not in page.text
