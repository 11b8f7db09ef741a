"""Usage limits as people and programs see them (:mod:`baton.housekeeping.quotas`): ``baton run``'s exit
75 and ``--wait-quota``, ``baton quota`` and ``quota clear`` (audited), ``doctor``'s line per spent
credential, ``GET /v1/quotas``, the run views' ``resets_at``/``limit_kind`` and ``/metrics``. The fake
agent meets the limit as Claude Code does (``FAKE_AGENT_LIMIT_UNTIL``); the dashboard's card is
tests/service/test_dashboard_quota.py."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from unittest.mock import ANY

import httpx
import jsonschema_rs
import pytest
from hypothesis import given
from hypothesis import settings as examples
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from baton import Outcome, RunRequest, run
from baton.cli.fast import try_fast
from baton.errors import BadInput, NotFound
from baton.housekeeping import quotas
from baton.housekeeping.doctor import CheckStatus, check_quotas
from baton.models import QuotaRecord, QuotaState
from baton.service.fields import ON_LIMIT_PATTERN
from baton.settings import Settings, check_on_limit
from baton.store import Store
from tests.conftest import wait_for
from tests.service_fixtures import Service, service_fixture  # noqa: F401 (the `service` fixture)

Cli = Callable[..., subprocess.CompletedProcess[str]]
NOW = 1_800_000_000.0


def breaker(
    label: str, resets_at: float | None, state: QuotaState = QuotaState.EXHAUSTED, **more: object
) -> QuotaRecord:
    agent = label.split(" ", 1)[0]
    key = label.replace(" ", "-").replace("#", "")
    fields: dict[str, object] = {"detail": "rate_limit_event rejected (five_hour)", "tripped_at": NOW - 60}
    return QuotaRecord(key, agent, label, state, resets_at=resets_at, **{**fields, **more})  # type: ignore[arg-type]


def limited(cli: Cli, repo: Path, thread: str, until: float, *extra: str) -> subprocess.CompletedProcess[str]:
    return cli(
        "run",
        "-a",
        "fake",
        "-r",
        str(repo),
        "-t",
        thread,
        *extra,
        "write the parser",
        env={"FAKE_AGENT_LIMIT_UNTIL": str(until)},
    )


# -- baton run -------------------------------------------------------------------------------------


def test_a_spent_quota_exits_75_says_when_and_holds_the_credential(
    cli: Cli, cli_here: Cli, src_repo: Path
) -> None:
    until = int(time.time()) + 3600
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(until))
    # for people: the outcome, and when it resets on the error line
    met = limited(cli, src_repo, "quota", until)
    assert met.returncode == 75 and met.stdout.startswith("rate_limited"), met.stdout
    assert "error: the usage quota of fake " in met.stderr and stamp in met.stderr, met.stderr
    assert "Traceback" not in met.stderr

    # for scripts (the breaker cleared by hand first: the fake agent's credential is one)
    assert cli_here("quota", "clear", "fake").returncode == 0
    again = limited(cli, src_repo, "quota", until, "--json")
    assert again.returncode == 75, again.stderr
    shown = json.loads(again.stdout)
    assert shown["outcome"] == "rate_limited" and shown["limit_kind"] == "five_hour"
    assert shown["resets_at"] == time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(until))

    # another key of the same credential: refused before anything is written, a clean message
    held = cli("run", "-a", "fake", "-r", str(src_repo), "-t", "other", "hello")
    assert held.returncode == 75 and held.stdout == "", held.stdout
    assert held.stderr.startswith("error: the usage quota of fake ") and "nothing was started" in held.stderr
    assert stamp in held.stderr and "Traceback" not in held.stderr
    as_json = json.loads(cli("run", "-a", "fake", "-r", str(src_repo), "-t", "other", "--json", "hi").stdout)
    assert as_json["error"]["type"] == "QuotaHeld" and as_json["error"]["exit_code"] == 75
    assert "other" not in cli_here("sessions", "ls").stdout, "nothing written for the refused key"

    shown_run = json.loads(cli_here("runs", "show", shown["run_id"], "--json").stdout)
    attempt = shown_run[0] if isinstance(shown_run, list) else shown_run
    assert "rate_limited" in json.dumps(attempt) and shown["resets_at"] in json.dumps(attempt)
    lines = cli_here("runs", "show", shown["run_id"]).stdout.splitlines()
    at = lines.index("outcome: rate_limited")
    assert lines[at + 1].startswith(f"resets_at: {stamp} (in ") and lines[at + 2] == "limit_kind: five_hour"
    assert cli_here("quota", "clear", "fake").returncode == 0
    ok = json.loads(cli("run", "-a", "fake", "-r", str(src_repo), "-t", "fine", "--json", "hi").stdout)
    assert ok["outcome"] == "succeeded" and ok["resets_at"] is None and ok["limit_kind"] is None
    assert "resets_at" not in cli_here("runs", "show", ok["run_id"]).stdout


def test_wait_quota_waits_for_a_held_breaker_then_runs(cli: Cli, src_repo: Path, store: Store) -> None:
    assert limited(cli, src_repo, "first", time.time() + 3600).returncode == 75
    (tripped,) = store.list_quotas()
    reset = time.time() + 6  # sooner, and from now: the first process's start-up is not part of the wait
    store.save_quota(dataclasses.replace(tripped, resets_at=reset))
    waited = cli("run", "-a", "fake", "-r", str(src_repo), "-t", "second", "--wait-quota", "--json", "go on")
    assert waited.returncode == 0, waited.stderr
    assert json.loads(waited.stdout)["outcome"] == "succeeded"
    assert "nothing was started" in waited.stderr and "waiting until" in waited.stderr
    assert "(--wait-quota)" in waited.stderr and "Traceback" not in waited.stderr
    assert time.time() >= reset, "it waited for the reset"
    (closed,) = store.list_quotas()
    assert closed.state == QuotaState.OK, "the first turn through after the reset closed the breaker"


def test_wait_quota_is_typers_to_parse_never_the_fast_paths() -> None:
    plain = ["run", "-a", "fake", "-r", "/nowhere", "-t", "x", "--wait-quota", "hello"]
    assert try_fast(plain) is None
    assert try_fast([*plain[:-1], "--json", "hello"]) is None


def test_the_exit_code_is_documented(cli: Cli) -> None:
    assert "75 a usage quota is spent" in " ".join(cli("run", "--help").stdout.split())
    docs = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text()
    assert "| `75` |" in docs and "baton quota clear" in docs and "--wait-quota" in docs


# -- baton quota -----------------------------------------------------------------------------------


def test_baton_quota_lists_and_clears_a_breaker_audited(cli: Cli, cli_here: Cli, src_repo: Path) -> None:
    assert cli_here("quota").stdout.strip() == "no credential has met a usage limit"
    assert json.loads(cli_here("quota", "--json").stdout) == []
    until = int(time.time()) + 7200
    assert limited(cli, src_repo, "q", until).returncode == 75

    table = cli_here("quota", "--wide")
    assert table.returncode == 0, table.stderr
    row = next(line for line in table.stdout.splitlines() if line.startswith("fake no credential #"))
    assert " exhausted " in row and ("(in 1 h 59 min)" in row or "(in 2 h)" in row), row
    assert "rate_limit_event rejected (five_hour)" in row
    (record,) = json.loads(cli_here("quota", "--json").stdout)
    assert json.loads(cli_here("quota", "ls", "--json").stdout) == [{**record, "resets_in_s": ANY}]
    assert record["held"] is True and record["state"] == "exhausted" and record["agent"] == "fake"
    assert 7000 < record["resets_in_s"] <= 7200 and record["refusals"] == 0
    label = record["label"]

    assert cli_here("quota", "clear", "nobody").returncode == 2
    cleared = cli_here("quota", "clear", "fake no cred", "--json")
    assert cleared.returncode == 0, cleared.stderr
    done = json.loads(cleared.stdout)
    assert done["closed"] is True and done["was"] == "exhausted" and done["held"] is False
    assert done["state"] == "ok"
    audit = json.loads(cli_here("audit", "--json").stdout)
    entry = next(a for a in audit if a["action"] == "quota-clear")
    assert entry["key"] == label and entry["detail"]["closed"] is True and entry["detail"]["held"] is True

    # its runs start again at once (the agent's quota is back)
    ran = cli("run", "-a", "fake", "-r", str(src_repo), "-t", "after", "hello")
    assert ran.returncode == 0, ran.stderr
    again = cli_here("quota", "clear", record["credential"][:8])
    assert again.returncode == 0 and "nothing to clear" in again.stdout


def test_clear_names_one_breaker_or_says_which(store: Store) -> None:
    store.save_quota(breaker("claude ANTHROPIC_API_KEY #aaa111", NOW + 60))
    store.save_quota(breaker("claude CLAUDE_CODE_OAUTH_TOKEN #bbb222", NOW + 60))
    with pytest.raises(BadInput, match=r"'claude' names 2 breakers: .*ANTHROPIC_API_KEY.*OAUTH"):
        quotas.find_breaker(store, "claude")
    with pytest.raises(NotFound, match="no usage-quota breaker 'codex'"):
        quotas.find_breaker(store, "codex")
    with pytest.raises(BadInput):
        quotas.find_breaker(store, "  ")
    assert quotas.find_breaker(store, "claude CLAUDE").label.endswith("#bbb222")
    cleared = quotas.clear_breaker(store, "claude-ANTHROPIC", "ops", now=NOW)  # a hash prefix
    assert cleared.closed and cleared.before.held and not cleared.after.held
    assert store.quota("claude-ANTHROPIC_API_KEY-aaa111").state == QuotaState.OK  # type: ignore[union-attr]
    assert store.quota("claude-CLAUDE_CODE_OAUTH_TOKEN-bbb222").held(NOW)  # type: ignore[union-attr]
    (entry,) = [a for a in store.list_audit() if a["action"] == "quota-clear"]
    assert entry["actor"] == "ops"


def test_a_breaker_past_its_reset_is_exhausted_but_no_longer_holds(store: Store) -> None:
    store.save_quota(breaker("codex OPENAI_API_KEY #ccc333", NOW - 5))
    store.save_quota(breaker("gemini GEMINI_API_KEY #ddd444", NOW + 90 * 60))
    store.save_quota(breaker("claude ANTHROPIC_API_KEY #eee555", None, QuotaState.OK))
    views = {v.record.agent: v for v in quotas.quota_views(store, NOW)}
    assert views["gemini"].held and views["gemini"].state == "exhausted"
    assert views["gemini"].resets(NOW).endswith("(in 1 h 30 min)")
    assert not views["codex"].held and views["codex"].state == "exhausted (reset passed)"
    assert views["codex"].resets(NOW).endswith("(passed)") and views["codex"].resets_in == 0
    assert views["claude"].state == "ok" and views["claude"].resets(NOW) == "—"
    assert quotas.held_lines(store, NOW) == [
        "usage quota of gemini GEMINI_API_KEY #ddd444 spent, resets at 2027-01-15 09:30:00 UTC "
        "(in 1 h 30 min)"
    ]


# -- doctor ----------------------------------------------------------------------------------------


def test_doctor_warns_once_per_spent_credential(settings: Settings, store: Store) -> None:
    (none,) = check_quotas(settings, NOW)
    assert (none.name, none.status, none.detail) == ("usage quotas", CheckStatus.OK, "none spent")
    store.save_quota(breaker("claude ANTHROPIC_API_KEY #aaa111", NOW + 3600))
    store.save_quota(breaker("codex OPENAI_API_KEY #ccc333", NOW + 60))
    store.save_quota(breaker("gemini GEMINI_API_KEY #ddd444", NOW - 1))  # its reset passed: not held
    checks = check_quotas(settings, NOW)
    assert [c.status for c in checks] == [CheckStatus.WARN, CheckStatus.WARN]
    assert checks[0].detail.startswith("usage quota of codex OPENAI_API_KEY #ccc333 spent, resets at ")
    assert "(in 1 min)" in checks[0].detail and "(in 1 h)" in checks[1].detail
    assert all("baton quota clear" in c.detail for c in checks)


def test_doctor_says_so_through_the_cli(cli: Cli, cli_here: Cli, src_repo: Path) -> None:
    assert limited(cli, src_repo, "d", time.time() + 600).returncode == 75
    report = json.loads(cli_here("doctor", "--json").stdout)
    (check,) = [c for c in report["checks"] if c["name"].startswith("usage quota")]
    assert check["status"] == "warn" and check["detail"].startswith("usage quota of fake no credential #")


# -- HTTP API and /metrics -------------------------------------------------------------------------


def met_limit(
    settings: Settings, store: Store, repo: Path, monkeypatch: pytest.MonkeyPatch, until: float
) -> str:
    """A run of the fake agent that meets a spent quota resetting at ``until``: its run id."""
    monkeypatch.setenv("FAKE_AGENT_LIMIT_UNTIL", str(until))
    result = run(RunRequest("fake", str(repo), "quota", "write the parser"), settings, store)
    monkeypatch.delenv("FAKE_AGENT_LIMIT_UNTIL")
    assert result.run.outcome == Outcome.RATE_LIMITED
    return result.run_id


def test_the_api_lists_and_clears_breakers_and_shows_the_reset(
    service: Service, settings: Settings, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with service.client("read") as http:
        assert http.get("/v1/quotas").json() == []
    until = int(time.time()) + 3600
    run_id = met_limit(settings, service.store, src_repo, monkeypatch, until)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(until))

    with service.client(None) as anonymous:
        assert anonymous.get("/v1/quotas").status_code == 401
    with service.client("read") as http:
        (record,) = http.get("/v1/quotas").json()
        assert record["held"] is True and record["state"] == "exhausted" and record["resets_at"] == stamp
        assert record["agent"] == "fake" and record["label"].startswith("fake no credential #")
        assert record["scope"] == "five_hour" and record["run_id"] == run_id and record["resets_in_s"] > 3500
        shown = http.get(f"/v1/runs/{run_id}").json()
        assert shown["outcome"] == "rate_limited" and shown["resets_at"] == stamp
        assert shown["limit_kind"] == "five_hour"
        key = {"agent": "fake", "repo": shown["repo"], "thread": "quota"}
        session = http.get("/v1/session", params=key).json()
        assert session["status"] == "waiting_for_quota"
        assert session["runs"][0]["resets_at"] == stamp and session["runs"][0]["limit_kind"] == "five_hour"
        waiting = http.get("/v1/sessions", params={"status": "waiting_for_quota"}).json()
        assert [s["thread"] for s in waiting["sessions"]] == ["quota"]
        assert http.post("/v1/quotas/clear", json={"credential": "fake"}).status_code == 403

    admin = service.token("admin", name="ops-admin")
    with service.client(admin) as http:
        assert http.post("/v1/quotas/clear", json={"credential": "nobody"}).status_code == 404
        assert http.post("/v1/quotas/clear", json={"credential": ""}).status_code == 422
        cleared = http.post("/v1/quotas/clear", json={"credential": record["credential"][:10]})
        assert cleared.status_code == 200, cleared.text
        assert cleared.json()["closed"] is True and cleared.json()["held"] is False
        (entry,) = [a for a in http.get("/v1/audit").json() if a["action"] == "quota-clear"]
        assert entry["actor"] == "ops-admin" and entry["key"] == record["label"]
        assert http.get("/v1/quotas").json()[0]["state"] == "ok"


def test_the_openapi_document_shows_quotas_on_limit_and_the_reset(service: Service) -> None:
    document = httpx.get(service.url + "/openapi.json", timeout=30).json()
    schemas = document["components"]["schemas"]
    assert "on_limit" in schemas["RunBody"]["properties"]
    assert "fallback:" in schemas["RunBody"]["properties"]["on_limit"]["description"]
    assert {"resets_at", "limit_kind"} <= set(schemas["RunView"]["properties"])
    assert {"resets_at", "limit_kind"} <= set(schemas["RunAttempt"]["properties"])
    listed = document["paths"]["/v1/quotas"]["get"]["responses"]["200"]["content"]["application/json"]
    assert listed["schema"]["items"]["$ref"].endswith("/QuotaOut")
    assert {"held", "resets_at", "resets_in_s", "refusals", "label"} <= set(schemas["QuotaOut"]["properties"])
    assert "/v1/quotas/clear" in document["paths"]
    assert "waiting_for_quota" in schemas["SessionStatus"]["enum"]


def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = httpx.get(f"{url}/metrics", timeout=30).text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_show_each_breaker_and_a_rate_limited_run_is_no_failure(
    service: Service, settings: Settings, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    until = int(time.time()) + 600
    met_limit(settings, service.store, src_repo, monkeypatch, until)
    service.store.save_quota(breaker("claude ANTHROPIC_API_KEY #aaa111", time.time() - 10))  # reset passed
    service.store.save_quota(breaker("codex OPENAI_API_KEY #ccc333", None, QuotaState.OK))
    m = scrape(service.url)
    (fake,) = [s.record.label for s in quotas.quota_views(service.store) if s.record.agent == "fake"]

    def sample(name: str, **labels: str) -> float | None:
        return m.get((name, frozenset(labels.items())))

    assert sample("baton_quota_held", agent="fake", credential_label=fake) == 1
    assert sample("baton_quota_resets_at_seconds", agent="fake", credential_label=fake) == until
    claude = "claude ANTHROPIC_API_KEY #aaa111"
    assert sample("baton_quota_held", agent="claude", credential_label=claude) == 0
    assert sample("baton_quota_resets_at_seconds", agent="claude", credential_label=claude) is not None
    codex = "codex OPENAI_API_KEY #ccc333"
    assert sample("baton_quota_held", agent="codex", credential_label=codex) == 0
    assert sample("baton_quota_resets_at_seconds", agent="codex", credential_label=codex) is None
    assert sample("baton_runs_total", agent="fake", mode="fresh", outcome="rate_limited") == 1
    assert not any(k[0] == "baton_runs_total" and ("outcome", "failed") in k[1] for k in m)
    assert sample("baton_sessions", agent="fake", status="waiting_for_quota") == 1


def test_the_python_api_names_the_quota_surfaces() -> None:
    import baton
    from baton import errors, models

    assert baton.QuotaHeld is errors.QuotaHeld and baton.QuotaHeld.exit_code == 75
    assert baton.QuotaRecord is models.QuotaRecord and baton.QuotaState is models.QuotaState
    assert baton.quota_views is quotas.quota_views and baton.clear_breaker is quotas.clear_breaker
    assert baton.Outcome.RATE_LIMITED.value == "rate_limited"
    assert baton.SessionStatus.WAITING.value == "waiting_for_quota"


ON_LIMITS = st.sampled_from(["wait", "fallback:", "fallback:codex", "Wait", "fallback:Codex"]) | st.text(
    alphabet="waitfbck:_-9AZ\n", max_size=14
)


@examples(max_examples=300, deadline=None, database=None)
@given(ON_LIMITS)
def test_the_on_limit_pattern_the_api_states_is_the_settings_check(value: str) -> None:
    """``on_limit`` in the OpenAPI document (a pattern, read as ECMA-262 as clients read it) takes what
    the runner takes, and the API refuses the rest in the runner's words."""
    stated = jsonschema_rs.validator_for({"type": "string", "pattern": ON_LIMIT_PATTERN}).is_valid(value)
    try:
        check_on_limit(value, "on_limit")
        taken = True
    except BadInput:
        taken = False
    assert stated == taken, repr(value)


def test_a_bad_on_limit_is_refused_by_the_api_in_the_runners_words(service: Service, src_repo: Path) -> None:
    with service.client("run") as http:
        body = {
            "agent": "fake",
            "repo": str(src_repo),
            "thread": "t",
            "prompt": "hi",
            "on_limit": "sometimes",
        }
        refused = http.post("/v1/runs", json=body)
        assert refused.status_code == 422
        assert "on_limit must be 'wait' or 'fallback:<agent>'" in refused.json()["detail"]
        assert http.post("/v1/runs", json={**body, "on_limit": "wait"}).status_code == 202


def test_a_submitted_run_waiting_for_its_quota_says_until_when(
    service: Service, settings: Settings, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run submitted while its credential's breaker holds is queued again, its view saying until when
    (``not_before``: the reset plus jitter), never started before."""
    until = int(time.time()) + 3600
    met_limit(settings, service.store, src_repo, monkeypatch, until)
    with service.client("run") as http:
        made = http.post(
            "/v1/runs", json={"agent": "fake", "repo": str(src_repo), "thread": "later", "prompt": "x"}
        )
        assert made.status_code == 202, made.text
        run_id = made.json()["run_id"]

        def waiting() -> bool:
            return http.get(f"/v1/runs/{run_id}").json().get("not_before") is not None

        wait_for(waiting, 20, 0.1, "the run to be queued again until the reset")
        shown = http.get(f"/v1/runs/{run_id}").json()
    assert shown["status"] == "queued" and shown["started_at"] is None
    at = time.mktime(time.strptime(shown["not_before"], "%Y-%m-%dT%H:%M:%S+00:00")) - time.timezone
    assert until < at <= until + 300


# -- baton plan run --------------------------------------------------------------------------------


def test_a_plan_stops_with_exit_75_at_a_spent_quota_or_waits_for_it(
    cli: Cli, src_repo: Path, tmp_path: Path
) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        f"id: q\nagent: fake\nrepo: {json.dumps(str(src_repo))}\n"
        "tasks:\n  - id: one\n    prompt: first\n  - id: two\n    prompt: second\n"
    )
    until = int(time.time()) + 8
    stopped = cli("plan", "run", str(plan), "--json", env={"FAKE_AGENT_LIMIT_UNTIL": str(until)})
    assert stopped.returncode == 75, stopped.stderr
    tasks = {t["id"]: t for t in json.loads(stopped.stdout)["tasks"]}
    assert tasks["one"]["outcome"] == "rate_limited" and tasks["two"]["status"] == "pending"

    # a reset of its own, the breaker closed by hand first: on a loaded machine the first reset may pass
    # between any check of it and the next turn, and a refusal after a breaker's reset is "still
    # refused", which backs off 15 minutes (a suite of 36 min here met it with a check 1 s ahead)
    assert cli("quota", "clear", "fake").returncode == 0
    again = int(time.time()) + 5
    waited = cli("plan", "run", str(plan), "--wait-quota", env={"FAKE_AGENT_LIMIT_UNTIL": str(again)})
    assert waited.returncode == 0, waited.stderr
    assert "plan q: the usage quota of fake" in waited.stderr and "--wait-quota" in waited.stderr
    assert "plan q succeeded: 2/2 tasks succeeded" in waited.stdout
