"""Webhooks over a real uvicorn on 127.0.0.1: signatures (GitHub's documented test vector, bad, missing,
truncated), the missing secret, the four cleanup events of GitHub and Gitea (each closes the matching
session and only it), redeliveries acting once, a webhook during a running run, ignored and malformed
deliveries, and pending deliveries re-queued by a restarted service.

Sessions are made by real runs of the fake agent on a repository served over smart HTTP on 127.0.0.1,
so the payloads carry the URLs a self-hosted forge would send."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from baton import RunRequest, run
from baton.forge.data.records import DeliveryRecord
from baton.forge.data.tables import delivery_store
from baton.forge.reading.webhook import payload_of, repo_slug, verified
from baton.models import Outcome, SessionStatus
from baton.settings import Settings
from baton.store import Store, open_store
from baton.testing.fake import fake_agent_bin
from baton.testing.git_http import GitHttpServer
from tests.conftest import git, make_repo, wait_for
from tests.service_fixtures import Service, run_service, service_fixture  # noqa: F401 (the `service` fixture)

SECRET = "webhook-s3cret"
TOKEN = "git-t0ken"
GH = "https://github.com/acme/api.git"
VECTOR_SECRET = "It's a Secret to Everybody"
VECTOR_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """The service reads the secret from its environment at every request (it runs in this process)."""
    monkeypatch.setenv("BATON_WEBHOOK_SECRET", SECRET)


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[GitHttpServer]:
    """A repository served as ``http://127.0.0.1:PORT/api.git`` (the forge's clone URL)."""
    origin = make_repo(tmp_path / "origin")
    root = tmp_path / "served"
    root.mkdir()
    git(root, "clone", "--quiet", "--bare", str(origin), "api.git")
    git(root / "api.git", "config", "uploadpack.allowFilter", "true")
    monkeypatch.setenv("BATON_GIT_TOKEN", TOKEN)
    with GitHttpServer(root=root, token=TOKEN) as server:
        yield server


def repository(server: GitHttpServer) -> dict[str, Any]:
    """A forge's ``repository`` object (the fields baton reads, and some it does not)."""
    clone = server.url("api.git")
    return {
        "id": 1296269,
        "name": "api",
        "full_name": "acme/api",
        "private": False,
        "owner": {"login": "acme", "id": 1},
        "html_url": clone.removesuffix(".git"),
        "clone_url": clone,
        "ssh_url": "git@forge.example:acme/api.git",
        "default_branch": "main",
    }


def delete_event(server: GitHttpServer, branch: str, ref_type: str = "branch") -> dict[str, Any]:
    return {
        "ref": branch,
        "ref_type": ref_type,
        "pusher_type": "user",
        "repository": repository(server),
        "sender": {"login": "octocat", "id": 1},
    }


def pr_closed_event(
    server: GitHttpServer, branch: str, merged: bool, action: str = "closed"
) -> dict[str, Any]:
    repo = repository(server)
    return {
        "action": action,
        "number": 7,
        "pull_request": {
            "id": 1,
            "number": 7,
            "state": "closed",
            "title": "Fix the thing",
            "merged": merged,
            "head": {"label": f"acme:{branch}", "ref": branch, "sha": "6dcb09b5", "repo": repo},
            "base": {"label": "acme:main", "ref": "main", "sha": "6dcb09b5", "repo": repo},
        },
        "repository": repo,
        "sender": {"login": "octocat", "id": 1},
    }


def push_deleted_event(server: GitHttpServer, branch: str) -> dict[str, Any]:
    return {
        "ref": f"refs/heads/{branch}",
        "before": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
        "after": "0" * 40,
        "created": False,
        "deleted": True,
        "forced": False,
        "commits": [],
        "head_commit": None,
        "repository": repository(server),
        "pusher": {"name": "octocat"},
        "sender": {"login": "octocat", "id": 1},
    }


def sign(body: bytes, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def github_headers(event: str, body: bytes, delivery: str | None = None) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/044aadd",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-GitHub-Hook-ID": "292430182",
        "X-Hub-Signature-256": "sha256=" + sign(body),
    }


def gitea_headers(event: str, body: bytes, delivery: str | None = None) -> dict[str, str]:
    """What Gitea sends: its own headers, its bare-hex signature, and GitHub's (sha256= form)."""
    delivery = delivery or str(uuid.uuid4())
    return {
        "Content-Type": "application/json",
        "X-Gitea-Event": event,
        "X-Gitea-Event-Type": event,
        "X-Gitea-Delivery": delivery,
        "X-Gitea-Signature": sign(body),
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": "sha256=" + sign(body),
    }


def post(
    service: Service, forge: str, event: str, payload: Any, delivery: str | None = None
) -> httpx.Response:
    body = json.dumps(payload).encode()
    headers = (github_headers if forge == "github" else gitea_headers)(event, body, delivery)
    return httpx.post(f"{service.url}/webhooks/{forge}", content=body, headers=headers, timeout=10)


def make_session(settings: Settings, store: Store, server: GitHttpServer, thread: str, branch: str) -> None:
    result = run(
        RunRequest("fake", server.url("api.git"), thread, f"work on {thread}", branch=branch), settings, store
    )
    assert result.ok, result.run.error


def status_of(store: Store, server: GitHttpServer, thread: str) -> SessionStatus:
    slug = repo_slug(server.url("api.git"))
    assert slug is not None
    session = store.get_session("fake", slug, thread)
    assert session is not None
    return session.status


def finished(service: Service, forge: str, delivery: str) -> DeliveryRecord:
    """The delivery once its background work ended."""

    def done() -> bool:
        record = delivery_store(service.store).get_delivery(forge, delivery)
        return record is not None and record.status.value != "pending"

    wait_for(done, timeout=60)
    record = delivery_store(service.store).get_delivery(forge, delivery)
    assert record is not None
    return record


def closes(store: Store) -> list[dict[str, Any]]:
    return [a for a in store.list_audit(1000) if a["action"] == "close"]


# -- signatures --------------------------------------------------------------------------------------


def test_githubs_documented_test_vector_verifies() -> None:
    claim = VECTOR_SIGNATURE.removeprefix("sha256=")
    assert verified(VECTOR_SECRET, b"Hello, World!", [claim])
    assert not verified(VECTOR_SECRET, b"Hello, World!!", [claim])
    assert not verified("another secret", b"Hello, World!", [claim])


def test_the_test_vector_passes_the_signature_gate_over_http(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Signed with the vector's secret, "Hello, World!" gets past the 401 and is refused as not JSON."""
    monkeypatch.setenv("BATON_WEBHOOK_SECRET", VECTOR_SECRET)
    headers = {"X-Hub-Signature-256": VECTOR_SIGNATURE, "X-GitHub-Event": "push", "X-GitHub-Delivery": "d-1"}
    answer = httpx.post(f"{service.url}/webhooks/github", content=b"Hello, World!", headers=headers)
    assert answer.status_code == 400, answer.text
    assert "JSON" in answer.json()["detail"]
    headers["X-Hub-Signature-256"] = VECTOR_SIGNATURE[:-1] + "f"
    assert (
        httpx.post(f"{service.url}/webhooks/github", content=b"Hello, World!", headers=headers).status_code
        == 401
    )


@pytest.mark.parametrize(
    ("forge", "mangle"),
    [
        ("github", "missing"),
        ("github", "wrong"),
        ("github", "truncated"),
        ("github", "no-prefix"),
        ("github", "other-secret"),
        ("gitea", "missing"),
        ("gitea", "wrong"),
        ("gitea", "truncated"),
    ],
)
def test_bad_signatures_are_401_and_change_nothing(
    service: Service, settings: Settings, served: GitHttpServer, forge: str, mangle: str
) -> None:
    make_session(settings, service.store, served, "issue-1", "feature-a")
    audit_before = service.store.list_audit(1000)
    body = json.dumps(delete_event(served, "feature-a")).encode()
    headers = (github_headers if forge == "github" else gitea_headers)("delete", body)
    for name in ("X-Hub-Signature-256", "X-Gitea-Signature"):
        if name not in headers:
            continue
        good = headers[name]
        bare = good.removeprefix("sha256=")
        prefix = good[: len(good) - len(bare)]
        replacement = {
            "missing": None,
            "wrong": prefix + sign(body + b" "),
            "truncated": prefix + bare[:32],
            "no-prefix": bare,
            "other-secret": prefix + sign(body, "not-the-secret"),
        }[mangle]
        if replacement is None:
            del headers[name]
        else:
            headers[name] = replacement
    answer = httpx.post(f"{service.url}/webhooks/{forge}", content=body, headers=headers)
    assert answer.status_code == 401, answer.text
    # nothing to wait for when checking that nothing happens: background work, had any been queued,
    # would have written a delivery within this pause
    time.sleep(0.2)
    assert delivery_store(service.store).list_deliveries() == []
    assert service.store.list_audit(1000) == audit_before
    assert status_of(service.store, served, "issue-1") == SessionStatus.ACTIVE


def test_no_secret_refuses_webhooks_with_403(
    service: Service, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("BATON_WEBHOOK_SECRET", raising=False)
    body = b'{"zen": "Keep it logically awesome."}'
    for forge, headers in (("github", github_headers("ping", body)), ("gitea", gitea_headers("ping", body))):
        answer = httpx.post(f"{service.url}/webhooks/{forge}", content=body, headers=headers)
        assert answer.status_code == 403
        assert "BATON_WEBHOOK_SECRET" in answer.json()["detail"]
    assert delivery_store(service.store).list_deliveries() == []
    assert any("BATON_WEBHOOK_SECRET is not set" in r.getMessage() for r in caplog.records)


def test_one_route_takes_each_registered_kind_and_an_unknown_kind_is_404_naming_them(
    service: Service,
) -> None:
    """``POST /webhooks/{kind}``: the kinds of the registry, and nothing else (signed or not), before
    any secret or body is looked at; the OpenAPI document names each kind's path."""
    body = b'{"zen": "Keep it logically awesome."}'
    for kind in ("nope", "GitHub", "github.evil", "github%2F..%2Fv1"):
        answer = httpx.post(
            f"{service.url}/webhooks/{kind}", content=body, headers=github_headers("ping", body)
        )
        assert answer.status_code == 404, (kind, answer.text)
        if "/" not in kind and "%" not in kind:
            assert "known: github, gitea, gitlab" in answer.json()["detail"], answer.text
    assert delivery_store(service.store).list_deliveries() == []
    paths = httpx.get(f"{service.url}/openapi.json").json()["paths"]
    assert {"/webhooks/github", "/webhooks/gitea", "/webhooks/gitlab"} <= set(paths)
    assert "/webhooks/{kind}" not in paths


# -- cleanup events -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("forge", "event"),
    [
        ("github", "delete"),
        ("github", "pull_request"),
        ("github", "push"),
        ("gitea", "delete"),
        ("gitea", "pull_request"),
    ],
)
def test_a_cleanup_event_closes_the_matching_session_and_only_it(
    service: Service, settings: Settings, served: GitHttpServer, forge: str, event: str
) -> None:
    make_session(settings, service.store, served, "issue-1", "feature-a")
    make_session(settings, service.store, served, "issue-2", "feature-b")
    payload = {
        "delete": lambda: delete_event(served, "feature-a"),
        "pull_request": lambda: pr_closed_event(served, "feature-a", merged=forge == "github"),
        "push": lambda: push_deleted_event(served, "feature-a"),
    }[event]()
    delivery = str(uuid.uuid4())
    started = time.monotonic()
    answer = post(service, forge, event, payload, delivery)
    # the acknowledgement's real bound: forges give up after 10 s (that it does not wait for the work
    # is shown by test_a_webhook_during_a_running_run_waits_for_the_run_to_end)
    assert time.monotonic() - started < 5.0
    assert answer.status_code == 202, answer.text
    assert answer.json()["delivery"] == delivery
    assert answer.json()["status"] == "pending"
    record = finished(service, forge, delivery)
    assert record.status.value == "done", record.result
    slug = repo_slug(served.url("api.git"))
    assert record.result["closed"] == [f"fake:{slug}:issue-1"]
    assert status_of(service.store, served, "issue-1") == SessionStatus.CLOSED
    assert status_of(service.store, served, "issue-2") == SessionStatus.ACTIVE
    [close] = closes(service.store)
    assert close["actor"] == f"webhook:{forge}:{delivery}"
    assert close["key"] == f"fake:{slug}:issue-1"


def test_a_redelivery_returns_the_first_result_and_acts_once(
    service: Service, settings: Settings, served: GitHttpServer
) -> None:
    make_session(settings, service.store, served, "issue-1", "feature-a")
    payload, delivery = delete_event(served, "feature-a"), str(uuid.uuid4())
    first = post(service, "github", "delete", payload, delivery)
    again = post(service, "github", "delete", payload, delivery)  # while the first may still run
    assert first.status_code == again.status_code == 202
    assert again.json()["delivery"] == delivery
    record = finished(service, "github", delivery)
    late = post(service, "github", "delete", payload, delivery)
    assert late.status_code == 202
    assert late.json()["status"] == "done"
    assert late.json()["result"] == record.result
    time.sleep(0.3)  # that nothing more happens has no condition to wait for: a second close had this time
    assert len(closes(service.store)) == 1
    assert len(delivery_store(service.store).list_deliveries()) == 1


def test_a_webhook_during_a_running_run_waits_for_the_run_to_end(
    service: Service, settings: Settings, served: GitHttpServer, tmp_path: Path
) -> None:
    make_session(settings, service.store, served, "issue-1", "feature-a")
    (tmp_path / "bin").mkdir()
    # beside the agent script: what the walls (and the agent's mount namespace) give it, the gate included
    gate = (
        tmp_path / "bin" / "gate"
    )  # the agent starts once it exists: the run lasts as long as the test needs
    gated = tmp_path / "bin" / "gated-agent"
    gated.write_text(
        f'#!/bin/sh\nwhile [ ! -e {gate} ]; do sleep 0.05; done\nexec {" ".join(fake_agent_bin())} "$@"\n'
    )
    gated.chmod(0o755)
    outcome: list[Outcome] = []
    request = RunRequest("fake", served.url("api.git"), "issue-1", "more")
    runner = threading.Thread(
        target=lambda: outcome.append(
            run(request, settings.with_(extra={"fake_bin": str(gated)})).run.outcome
        )
    )
    runner.start()
    slug = repo_slug(served.url("api.git"))
    wait_for(lambda: status_of(service.store, served, "issue-1") == SessionStatus.RUNNING, timeout=30)
    delivery = str(uuid.uuid4())
    answer = post(service, "gitea", "delete", delete_event(served, "feature-a"), delivery)
    assert answer.status_code == 202 and answer.json()["status"] == "pending"
    time.sleep(0.5)  # that the cleanup does not act mid-run has no condition to wait for: it had this time
    assert delivery_store(service.store).get_delivery("gitea", delivery).status.value == "pending"  # type: ignore[union-attr]
    assert status_of(service.store, served, "issue-1") == SessionStatus.RUNNING
    gate.touch()
    record = finished(service, "gitea", delivery)
    runner.join(timeout=30)
    assert outcome == [Outcome.SUCCEEDED]
    assert record.status.value == "done", record.result
    assert status_of(service.store, served, "issue-1") == SessionStatus.CLOSED
    [last_run] = service.store.list_runs(agent="fake", repo=slug, thread="issue-1", limit=1)
    [close] = closes(service.store)
    assert last_run.ended_at is not None and close["at"] >= last_run.ended_at


# -- ignored and malformed ----------------------------------------------------------------------------


def test_other_events_are_ignored_and_stored(
    service: Service, settings: Settings, served: GitHttpServer
) -> None:
    make_session(settings, service.store, served, "issue-1", "feature-a")
    cases = [
        ("ping", {"zen": "Design for failure.", "hook_id": 1}, "event 'ping'"),
        ("delete", delete_event(served, "feature-a", ref_type="tag"), "tag"),
        ("pull_request", pr_closed_event(served, "feature-a", False, action="opened"), "opened"),
        ("push", {**push_deleted_event(served, "feature-a"), "deleted": False}, "does not delete"),
        ("delete", delete_event(served, "no-such-branch"), "no session"),
    ]
    for event, payload, why in cases:
        delivery = str(uuid.uuid4())
        answer = post(service, "github", event, payload, delivery)
        assert answer.status_code == 202, answer.text
        assert why in (
            answer.json().get("ignored") or finished(service, "github", delivery).result["ignored"]
        )
    assert status_of(service.store, served, "issue-1") == SessionStatus.ACTIVE
    assert {d.status.value for d in delivery_store(service.store).list_deliveries()} == {"ignored"}
    assert closes(service.store) == []


@pytest.mark.parametrize(
    ("body", "headers", "words"),
    [
        (b"{not json", {}, "JSON"),
        (b"[1, 2]", {}, "object"),
        (json.dumps({"ref": "x", "ref_type": "branch"}).encode(), {}, "repository"),
        (json.dumps({"ref_type": "branch", "repository": {"clone_url": GH}}).encode(), {}, "payload.ref"),
        (
            json.dumps(
                {"ref": "x", "ref_type": "branch", "repository": {"clone_url": "/srv/git/api"}}
            ).encode(),
            {},
            "repository",
        ),
        (b"{}", {"X-GitHub-Delivery": ""}, "delivery id"),
        (b"{}", {"X-GitHub-Event": ""}, "event"),
    ],
)
def test_signed_but_malformed_deliveries_are_400(
    service: Service, body: bytes, headers: dict[str, str], words: str
) -> None:
    sent = {**github_headers("delete", body), **headers}
    answer = httpx.post(f"{service.url}/webhooks/github", content=body, headers=sent)
    assert answer.status_code == 400, answer.text
    assert words in answer.json()["detail"]
    assert delivery_store(service.store).list_deliveries() == []


def test_deliveries_are_listed_with_a_read_token(service: Service, served: GitHttpServer) -> None:
    post(service, "gitea", "ping", {"hook_id": 1}, "d-ping")
    with service.client() as anonymous:
        assert anonymous.get("/v1/webhooks/deliveries").status_code == 401
    with service.client("read") as http:
        answer = http.get("/v1/webhooks/deliveries", params={"limit": 5})
    assert answer.status_code == 200
    [delivery] = answer.json()
    assert delivery["forge"] == "gitea" and delivery["delivery_id"] == "d-ping"
    assert delivery["status"] == "ignored" and delivery["event"] == "ping"


def test_a_restarted_service_does_the_work_of_pending_deliveries(
    settings: Settings, served: GitHttpServer
) -> None:
    """A delivery accepted (stored pending with its target) by a process that died before doing it."""
    store = open_store(settings.resolved_store_url)
    make_session(settings, store, served, "issue-1", "feature-a")
    slug = repo_slug(served.url("api.git"))
    target = {"repos": [slug], "branch": "feature-a"}
    delivery_store(store).add_delivery(
        DeliveryRecord("github", "d-left", "delete", time.time(), result=target)
    )
    delivery_store(store).add_delivery(DeliveryRecord("gitea", "d-no-target", "delete", time.time()))
    with run_service(settings) as restarted:
        record = finished(restarted, "github", "d-left")
        broken = finished(restarted, "gitea", "d-no-target")
    assert record.status.value == "done"
    assert broken.status.value == "failed" and "target" in broken.result["error"]
    assert status_of(store, served, "issue-1") == SessionStatus.CLOSED


# -- units ----------------------------------------------------------------------------------------------


def test_repo_slugs_come_from_urls_only() -> None:
    assert repo_slug("https://github.com/acme/api.git") == "github.com/acme/api"
    assert repo_slug("git@github.com:acme/api.git") == "github.com/acme/api"
    assert repo_slug("ssh://git@github.com/acme/api") == "github.com/acme/api"
    assert repo_slug("http://gitea.local:3000/acme/api.git") == "gitea.local_3000/acme/api"
    for hostile in ("/srv/git/api", "file:///srv/git/api", "../api", "https://user:pw@github.com/a/b", ""):
        assert repo_slug(hostile) is None


def test_form_encoded_payloads_are_read() -> None:
    body = b"payload=" + json.dumps({"ref": "x"}).replace(" ", "+").encode()
    assert payload_of(body, "application/x-www-form-urlencoded") == {"ref": "x"}


def test_after_a_webhook_cleanup_the_next_run_resumes_with_the_uncommitted_work(
    service: Service, settings: Settings, served: GitHttpServer
) -> None:
    make_session(settings, service.store, served, "issue-1", "feature-a")
    slug = repo_slug(served.url("api.git"))
    before = service.store.get_session("fake", slug or "", "issue-1")
    assert before is not None
    (Path(before.worktree) / "notes.txt").write_text("uncommitted work\n")
    delivery = str(uuid.uuid4())
    post(service, "github", "pull_request", pr_closed_event(served, "feature-a", merged=True), delivery)
    assert finished(service, "github", delivery).status.value == "done"
    assert not Path(before.worktree).exists()
    again = run(RunRequest("fake", served.url("api.git"), "issue-1", "carry on"), settings, service.store)
    assert again.ok, again.run.error
    assert again.run.mode.value == "resume"
    assert again.session.agent_session_id == before.agent_session_id
    assert (Path(again.session.worktree) / "notes.txt").read_text() == "uncommitted work\n"


def test_concurrent_redeliveries_store_one_and_act_once(
    service: Service, settings: Settings, served: GitHttpServer
) -> None:
    """Twenty copies of one delivery at once (a forge retrying while the first is in flight) and ten
    other deliveries: the group commit stores each id once and queues one cleanup."""
    make_session(settings, service.store, served, "issue-1", "feature-a")
    body = json.dumps(delete_event(served, "feature-a")).encode()
    same = github_headers("delete", body, "d-same")
    ping = json.dumps({"zen": "x"}).encode()
    requests = [(body, same)] * 20 + [(ping, github_headers("ping", ping)) for _ in range(10)]

    async def send_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as http:
            sends = [http.post("/webhooks/github", content=b, headers=h) for b, h in requests]
            return list(await asyncio.gather(*sends))

    answers = asyncio.run(send_all())
    assert [a.status_code for a in answers] == [202] * 30
    assert {a.json()["delivery"] for a in answers[:20]} == {"d-same"}
    assert finished(service, "github", "d-same").status.value == "done"
    time.sleep(0.3)  # that nothing more happens has no condition to wait for: a second close had this time
    assert len(delivery_store(service.store).list_deliveries()) == 11
    assert len(closes(service.store)) == 1


def test_add_deliveries_flags_known_ids_and_repeats_within_the_batch(service: Service) -> None:
    store = service.store
    assert delivery_store(store).add_delivery(DeliveryRecord("github", "a", "ping", 1.0))
    batch = [
        DeliveryRecord("github", "a", "ping", 2.0),  # stored before
        DeliveryRecord("github", "b", "ping", 2.0),
        DeliveryRecord("gitea", "a", "ping", 2.0),  # the same id from another forge is another delivery
        DeliveryRecord("github", "b", "ping", 3.0),  # a repeat within the batch
    ]
    assert delivery_store(store).add_deliveries(batch) == [False, True, True, False]
    assert delivery_store(store).add_deliveries([]) == []
    assert sorted(
        (d.forge, d.delivery_id, d.received_at) for d in delivery_store(store).list_deliveries()
    ) == [
        ("gitea", "a", 2.0),
        ("github", "a", 1.0),
        ("github", "b", 2.0),
    ]


@pytest.mark.parametrize(
    "only",
    [
        ("X-Gitea-Signature", "X-Gitea-Delivery", "X-Gitea-Event"),
        ("X-Hub-Signature-256", "X-GitHub-Delivery", "X-GitHub-Event"),
        ("X-Forgejo-Signature", "X-Forgejo-Delivery", "X-Forgejo-Event"),
    ],
)
def test_gitea_accepts_either_signature_header_alone(service: Service, only: tuple[str, str, str]) -> None:
    body = b'{"zen": "x"}'
    signature, delivery, event = only
    value = ("sha256=" if signature == "X-Hub-Signature-256" else "") + sign(body)
    headers = {signature: value, delivery: f"d-{signature}", event: "ping"}
    answer = httpx.post(f"{service.url}/webhooks/gitea", content=body, headers=headers)
    assert answer.status_code == 202, answer.text
    assert answer.json()["ignored"] == "event 'ping' does not clean up"
    headers[signature] = value[:-1] + ("0" if value[-1] != "0" else "1")
    assert httpx.post(f"{service.url}/webhooks/gitea", content=body, headers=headers).status_code == 401
    # GitHub's endpoint takes GitHub's header only: a bare hex digest in Gitea's is no signature there
    github = {"X-Gitea-Signature": sign(body), "X-GitHub-Delivery": "d-x", "X-GitHub-Event": "ping"}
    assert httpx.post(f"{service.url}/webhooks/github", content=body, headers=github).status_code == 401
