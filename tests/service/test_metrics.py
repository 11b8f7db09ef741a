"""``/metrics`` over a real uvicorn after known runs of the fake agent: a fresh run, a resumed one, one
hydrated (the agent home deleted), one recovered (transcript and snapshot deleted) and a failed one;
the counters, the histogram, the session gauge, the deliveries and the disk gauge, parsed with
prometheus_client's own parser. A second service process on the same home reports the same numbers."""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from baton import RunRequest, run
from baton.models import Mode
from baton.service.metrics import BUCKETS, resume_result
from baton.settings import Settings
from baton.store import Store
from tests.service_fixtures import Service, run_service, service_fixture  # noqa: F401 (the `service` fixture)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
ALLOWED_LABELS = {
    "agent", "mode", "outcome", "result", "status", "kind", "forge", "event", "le", "worker",
    "credential_label",  # a usage-quota breaker's: where the credential comes from, never the secret
    "repo", "quantile",  # the forge outcomes': a configured repository (bounded), a summary's quantile
}  # fmt: skip


def scrape(url: str) -> Samples:
    answer = httpx.get(f"{url}/metrics", timeout=30)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            assert set(sample.labels) <= ALLOWED_LABELS, sample  # never a session id or a thread
            samples[sample.name, frozenset(sample.labels.items())] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def known_runs(settings: Settings, store: Store, repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """fresh, resume, hydrate, recover on issue-1; a failed fresh run on issue-2; issue-3 asks a person."""

    def turn(thread: str, prompt: str) -> Mode:
        return run(RunRequest("fake", str(repo), thread, prompt), settings, store).run.mode

    assert turn("issue-1", "start") == Mode.FRESH
    assert turn("issue-1", "go on") == Mode.RESUME
    agent_home = settings.home / "keys" / "fake"  # the agent homes of every key of the agent
    shutil.rmtree(agent_home)
    assert turn("issue-1", "after a redeploy") == Mode.RESUME  # hydrated from the snapshot
    shutil.rmtree(agent_home)
    [session] = store.list_sessions()
    store.delete_snapshot("fake", session.repo, "issue-1")
    assert turn("issue-1", "after losing everything") == Mode.RECOVER
    monkeypatch.setenv("FAKE_AGENT_FAIL", "1")
    assert turn("issue-2", "this fails") == Mode.FRESH
    monkeypatch.delenv("FAKE_AGENT_FAIL")
    ask = '[[tool:ask_human {"question": "May I?"}]]'  # the fake agent asks through baton's MCP server
    assert turn("issue-3", f"ask first {ask}") == Mode.FRESH


def ping(service: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATON_WEBHOOK_SECRET", "s")
    body = json.dumps({"zen": "Approachable is better than simple."}).encode()
    signature = "sha256=" + hmac.new(b"s", body, hashlib.sha256).hexdigest()
    headers = {"X-GitHub-Event": "ping", "X-GitHub-Delivery": "d-1", "X-Hub-Signature-256": signature}
    assert httpx.post(f"{service.url}/webhooks/github", content=body, headers=headers).status_code == 202


def test_metrics_after_known_runs(
    service: Service, settings: Settings, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    known_runs(settings, service.store, src_repo, monkeypatch)
    ping(service, monkeypatch)
    m = scrape(service.url)
    runs = {
        ("fresh", "succeeded"): 1,
        ("resume", "succeeded"): 2,
        ("recover", "succeeded"): 1,
        ("fresh", "failed"): 1,
    }
    for (mode, outcome), n in runs.items():
        assert value(m, "baton_runs_total", agent="fake", mode=mode, outcome=outcome) == n, (mode, outcome)
    for result, n in {"resumed": 1, "hydrated": 1, "recovered": 1, "lost": 0}.items():
        assert value(m, "baton_resumes_total", agent="fake", result=result) == n, result
    assert value(m, "baton_run_duration_seconds_count", agent="fake") == 6
    assert value(m, "baton_run_duration_seconds_bucket", agent="fake", le="+Inf") == 6
    assert value(m, "baton_run_duration_seconds_sum", agent="fake") > 0
    counts = [value(m, "baton_run_duration_seconds_bucket", agent="fake", le=str(b)) for b in BUCKETS]
    assert counts == sorted(counts) and counts[-1] == 6
    assert value(m, "baton_runs_total", agent="fake", mode="fresh", outcome="needs_input") == 1
    assert value(m, "baton_threads_waiting_for_input", agent="fake") == 1
    assert 0 <= value(m, "baton_threads_waiting_for_input_oldest_seconds", agent="fake") < 600
    assert value(m, "baton_sessions", agent="fake", status="active") == 3
    assert value(m, "baton_sessions", agent="fake", status="closed") == 0
    assert value(m, "baton_webhook_deliveries_total", forge="github", event="ping", result="ignored") == 1
    assert value(m, "baton_queue_depth") == 0
    assert value(m, "baton_disk_bytes", worker="", kind="worktree") > 0  # the service's own home
    assert value(m, "baton_disk_bytes", worker="", kind="store") > 0


def test_every_process_reports_the_same_counts(
    service: Service, settings: Settings, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    known_runs(settings, service.store, src_repo, monkeypatch)
    with run_service(settings) as other:
        first, second = scrape(service.url), scrape(other.url)
    wanted = ("baton_runs_total", "baton_resumes_total", "baton_sessions", "baton_run_duration_seconds_count")
    assert {k: v for k, v in first.items() if k[0] in wanted} == {
        k: v for k, v in second.items() if k[0] in wanted
    }
    assert value(second, "baton_runs_total", agent="fake", mode="resume", outcome="succeeded") == 2


@pytest.mark.parametrize(
    ("mode", "outcome", "hydrated", "result"),
    [
        ("resume", "succeeded", False, "resumed"),
        ("resume", "failed", False, "resumed"),
        ("resume", "succeeded", True, "hydrated"),
        ("recover", "succeeded", False, "recovered"),
        ("resume", "session_lost", False, "lost"),
        ("fresh", "succeeded", False, None),
        ("fork", "succeeded", True, None),
    ],
)
def test_resume_results(mode: str, outcome: str, hydrated: bool, result: str | None) -> None:
    assert resume_result(mode, outcome, hydrated) == result
