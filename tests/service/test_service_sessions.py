"""Sessions over a real uvicorn: list with filters and pages, show one with its runs, reset (archived
first, audited with the token's name), and the error mapping (404 unknown key, 409 busy, 422 bad input).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from baton import RunRequest, run
from baton.keys import make_key
from baton.models import Outcome, SessionRecord, SessionStatus
from baton.settings import Settings
from baton.store.leases import LeaseHolder
from tests.conftest import git
from tests.service_fixtures import Service, service_fixture  # noqa: F401 (fixture)


def stored(
    service: Service,
    agent: str,
    repo: str,
    thread: str,
    used: float,
    status: SessionStatus = SessionStatus.ACTIVE,
) -> None:
    branch = f"baton/{agent}/{thread}"
    record = SessionRecord(agent, repo, thread, f"https://{repo}.git", branch, "/w", last_used_at=used)
    record.status = status
    service.store.save_session(record)


def seed(service: Service) -> None:
    """Five sessions over two agents and two repos; one closed."""
    stored(service, "claude", "github.com/acme/api", "issue-1", 5.0)
    stored(service, "claude", "github.com/acme/api", "issue-2", 4.0, status=SessionStatus.CLOSED)
    stored(service, "codex", "github.com/acme/api", "issue-3", 3.0)
    stored(service, "claude", "github.com/acme/web", "issue-4", 2.0)
    stored(service, "gemini", "github.com/acme/web", "issue-5", 1.0)


def threads(page: dict[str, Any]) -> list[str]:
    return [s["thread"] for s in page["sessions"]]


def test_list_filters_and_pages(service: Service) -> None:
    seed(service)
    with service.client("read") as http:
        everything = http.get("/v1/sessions").json()
        assert threads(everything) == ["issue-1", "issue-2", "issue-3", "issue-4", "issue-5"]
        assert everything["next_offset"] is None and everything["limit"] == 50
        assert threads(http.get("/v1/sessions", params={"agent": "claude"}).json()) == [
            "issue-1",
            "issue-2",
            "issue-4",
        ]
        web = http.get("/v1/sessions", params={"repo": "github.com/acme/web"}).json()
        assert threads(web) == ["issue-4", "issue-5"]
        closed = http.get("/v1/sessions", params={"status": "closed"}).json()
        assert threads(closed) == ["issue-2"] and closed["sessions"][0]["status"] == "closed"
        first = http.get("/v1/sessions", params={"limit": 2}).json()
        assert threads(first) == ["issue-1", "issue-2"] and first["next_offset"] == 2
        last = http.get("/v1/sessions", params={"limit": 2, "offset": 4}).json()
        assert threads(last) == ["issue-5"] and last["next_offset"] is None
        assert http.get("/v1/sessions", params={"status": "bogus"}).status_code == 422
        assert http.get("/v1/sessions", params={"limit": 0}).status_code == 422


def go(settings: Settings, repo: Path, thread: str = "t1", prompt: str = "do it") -> None:
    result = run(RunRequest(agent="fake", repo=str(repo), thread=thread, prompt=prompt), settings=settings)
    assert result.ok, result.run.error


def key_params(repo: Path, thread: str = "t1") -> dict[str, str]:
    return {"agent": "fake", "repo": str(repo), "thread": thread}


def test_show_one_session_with_its_runs(service: Service, settings: Settings, src_repo: Path) -> None:
    go(settings, src_repo, prompt="first")
    go(settings, src_repo, prompt="second")
    slug = make_key("fake", str(src_repo), "t1", ["fake"]).repo.slug
    with service.client("read") as http:
        by_path = http.get("/v1/session", params=key_params(src_repo)).json()
        by_slug = http.get("/v1/session", params={**key_params(src_repo), "repo": slug}).json()
        one_run = http.get("/v1/session", params={**key_params(src_repo), "runs": 1}).json()
    assert by_path == by_slug
    assert (by_path["agent"], by_path["repo"], by_path["thread"]) == ("fake", slug, "t1")
    assert by_path["session_id"] and by_path["status"] == "active" and by_path["attempts"] == 2
    assert [r["mode"] for r in by_path["runs"]] == ["resume", "fresh"]  # newest first
    assert all(r["outcome"] == Outcome.SUCCEEDED for r in by_path["runs"])
    assert by_path["runs"][0]["session_id_in"] == by_path["session_id"]
    assert len(one_run["runs"]) == 1


def test_show_errors_unknown_key_404_bad_input_422(service: Service, src_repo: Path) -> None:
    with service.client("read") as http:
        unknown = http.get("/v1/session", params=key_params(src_repo, "nobody"))
        assert unknown.status_code == 404 and "no session for" in unknown.json()["detail"]
        bad_thread = http.get("/v1/session", params=key_params(src_repo, "../etc"))
        assert bad_thread.status_code == 422 and "thread" in bad_thread.json()["detail"]
        bad_agent = http.get("/v1/session", params={**key_params(src_repo), "agent": "nope"})
        assert bad_agent.status_code == 422 and "nope" in bad_agent.json()["detail"]
        missing = http.get("/v1/session", params={"agent": "fake"})
        assert missing.status_code == 422


def test_reset_archives_and_audits_with_the_token_name(
    service: Service, settings: Settings, src_repo: Path
) -> None:
    go(settings, src_repo)
    session = service.store.list_sessions()[0]
    (Path(session.worktree) / "wip.txt").write_text("not committed\n")
    body = {**key_params(src_repo), "scope": "worktree"}
    with service.client(service.token("admin", "ops-bot")) as http:
        response = http.post("/v1/sessions/reset", json=body)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["scope"] == "worktree" and result["worktree"] is True
    assert result["archive_ref"].startswith("refs/baton/archive/fake/")
    assert git(Path(result["cache"]), "show", f"{result['archive_ref']}:wip.txt") == "not committed"
    assert not Path(session.worktree).exists()
    entry = service.store.list_audit(1)[0]
    assert (entry["action"], entry["actor"], entry["key"]) == ("reset", "ops-bot", result["key"])
    assert entry["detail"]["archive_ref"] == result["archive_ref"]


def test_reset_errors_404_409_422(service: Service, settings: Settings, src_repo: Path) -> None:
    go(settings, src_repo)
    key = make_key("fake", str(src_repo), "t1", ["fake"])
    with service.client("admin") as http:
        unknown = http.post("/v1/sessions/reset", json=key_params(src_repo, "t2"))
        assert unknown.status_code == 404
        scope = http.post("/v1/sessions/reset", json={**key_params(src_repo), "scope": "everything"})
        assert scope.status_code == 422
        holder = LeaseHolder(service.store, key.id, 60)
        holder.acquire(0)
        try:
            busy = http.post("/v1/sessions/reset", json=key_params(src_repo))
        finally:
            holder.release()
        assert busy.status_code == 409 and busy.json()["detail"]
        assert service.store.list_audit(1)[0]["action"] == "reset-failed"
        done = http.post("/v1/sessions/reset", json=key_params(src_repo))
        assert done.status_code == 200 and done.json()["scope"] == "conversation"
