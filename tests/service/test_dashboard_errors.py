"""Run errors a person can read, in real Chromium: the dashboard shows an error's first meaningful line
and the whole text behind a ``<details>`` fold, without the agent CLI's noise lines (Codex's "could not
create PATH aliases" warning), on the run list, the session's timeline and the run page. Before, the
lists cut an error at 160 characters, so Codex's warning was all a person saw."""

from __future__ import annotations

import time
from urllib.parse import urlencode

from baton.models import Mode, Outcome, PromptKind, RunRecord, SessionRecord
from tests.browser_fixtures import Tab, Tabs, browser_fixture, tabs_fixture  # noqa: F401 (fixtures)
from tests.service_fixtures import Service, service_fixture  # noqa: F401 (the `service` fixture)

WARNING = (
    "WARNING: proceeding, even though we could not create PATH aliases: Refusing to create helper "
    'binaries under temporary dir "/tmp"'
)
CAUSE = "Error: thread/resume: Cannot change this thread's model provider from openai to mock on resume"
DETAIL = "Caused by: the rollout at /data/homes/codex/sessions/2026/11/23/rollout-x.jsonl says openai " * 3


def failed_run(service: Service, run_id: str, error: str) -> RunRecord:
    now = time.time()
    record = RunRecord(
        id=run_id,
        agent="codex",
        repo="example.com/acme/api",
        thread="issue-7",
        attempt=1,
        mode=Mode.RESUME,
        prompt_kind=PromptKind.DELTA,
        prompt="go on",
        outcome=Outcome.FAILED,
        started_at=now - 2,
        ended_at=now,
        exit_code=1,
        error=error,
    )
    service.store.add_run(record)
    return record


def folds(tab: Tab, where: str) -> list[dict[str, str]]:
    """Every error fold inside ``where``: its summary and its whole text (closed folds included)."""
    found: list[dict[str, str]] = tab.page.eval_on_selector_all(
        f"{where} details.error-fold",
        "els => els.map(e => ({summary: e.querySelector('summary').textContent, "
        "whole: e.querySelector('pre').textContent, open: String(e.open)}))",
    )
    return found


def test_an_error_shows_its_cause_and_the_whole_text_behind_a_fold(service: Service, tabs: Tabs) -> None:
    now = time.time()
    service.store.save_session(
        SessionRecord(
            "codex",
            "example.com/acme/api",
            "issue-7",
            "https://example.com/acme/api",
            "b",
            "/w",
            created_at=now,
            last_used_at=now,
            expires_at=now + 3600,
        )
    )
    long = failed_run(service, "r-long-error", f"{WARNING}; {CAUSE}\n{DETAIL}")
    short = failed_run(service, "r-short-error", f"{WARNING}; {CAUSE}")
    tab = tabs.open(service.url)
    tab.sign_in(service.token("read"))
    key = {"agent": "codex", "repo": long.repo, "thread": long.thread}
    for path, where in [
        ("/runs", f"#runs-table tr[data-run-id='{long.id}']"),
        ("/session?" + urlencode(key), f"tr[data-run-id='{long.id}']"),
        (f"/runs/{long.id}", "#run-error"),
    ]:
        assert tab.goto(path) == 200, path
        (fold,) = folds(tab, where)
        assert fold["summary"] == CAUSE, path  # the first meaningful line, not Codex's warning
        assert fold["whole"] == f"{CAUSE}\n{DETAIL}", path  # whole, not cut at 160 characters
        assert fold["open"] == "false", path
        assert "PATH aliases" not in tab.page.inner_text("main"), path
    tab.page.click("#run-error details.error-fold summary")
    assert tab.page.locator("#run-error pre").is_visible()
    assert DETAIL.strip() in tab.page.inner_text("#run-error")
    tab.screenshot("dashboard-run-error")
    # a one-line error needs no fold: it is shown as it is, without the noise
    assert tab.goto("/runs") == 200
    row = f"#runs-table tr[data-run-id='{short.id}']"
    assert folds(tab, row) == []
    assert tab.page.inner_text(f"{row} td[data-label='result']") == CAUSE
