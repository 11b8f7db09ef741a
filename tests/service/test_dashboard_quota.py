"""Usage limits on the dashboard, in real Chromium on a real uvicorn: the overview's "usage quotas" card
(each spent credential and its reset; none, said so), a ``rate_limited`` run with its reset in the run
list, the session's timeline and its page, in its own colour (a state, not a failure), the session
``waiting_for_quota`` said at the top of its page and listed by its status, and the resume success rate
that names a run which met a quota apart from the failures. The fake agent meets the limit as Claude
Code does (``FAKE_AGENT_LIMIT_UNTIL``)."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlencode

import pytest

from baton import Mode, Outcome, RunRequest, run
from baton.models import PromptKind, QuotaRecord, QuotaState, RunRecord
from baton.service.dashboard.overview import counters, quota_card
from baton.settings import Settings
from baton.store import Store
from tests.browser_fixtures import PHONE, Tab, Tabs, browser_fixture, tabs_fixture  # noqa: F401 (fixtures)
from tests.service_fixtures import Service, service_fixture  # noqa: F401 (the `service` fixture)


def turn(settings: Settings, store: Store, repo: Path, thread: str, prompt: str) -> RunRecord:
    return run(RunRequest("fake", str(repo), thread, prompt), settings, store).run


def color(tab: Tab, selector: str) -> str:
    found: str = tab.page.eval_on_selector(selector, "e => getComputedStyle(e).color")
    return found


def seed(
    service: Service, settings: Settings, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[RunRecord, str, str]:
    """A resumed key that meets a spent quota (the run, its reset as pages show it, the breaker's
    label), after a resume that failed on another key and a success."""
    store = service.store
    assert turn(settings, store, repo, "limited", "write the parser").outcome == Outcome.SUCCEEDED
    assert turn(settings, store, repo, "failing", "start").outcome == Outcome.SUCCEEDED
    monkeypatch.setenv("FAKE_AGENT_FAIL", "1")
    assert turn(settings, store, repo, "failing", "this fails").outcome == Outcome.FAILED
    monkeypatch.delenv("FAKE_AGENT_FAIL")
    until = int(time.time()) + 5400
    monkeypatch.setenv("FAKE_AGENT_LIMIT_UNTIL", str(until))
    limited = turn(settings, store, repo, "limited", "now the tests")
    assert limited.outcome == Outcome.RATE_LIMITED and limited.mode == Mode.RESUME
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(until))
    (breaker,) = store.list_quotas()

    return limited, stamp, breaker.label


def test_quotas_waiting_threads_and_rate_limited_runs_on_the_dashboard(
    service: Service, settings: Settings, src_repo: Path, tabs: Tabs, monkeypatch: pytest.MonkeyPatch
) -> None:
    tab = tabs.open(service.url)
    tab.sign_in(service.token("read"))
    assert tab.page.inner_text("#quotas #quotas-none").startswith("None spent")
    assert tab.page.get_attribute("#quotas", "data-held") == "0"

    limited, stamp, label = seed(service, settings, src_repo, monkeypatch)

    # the overview: the card, the waiting thread, the runs by outcome, the resume rate
    assert tab.goto("/") == 200
    assert tab.page.get_attribute("#quotas", "data-held") == "1"
    assert tab.page.locator("#quotas-none").count() == 0
    row = tab.page.locator(f"#quotas-held tr[data-credential='{label}']")
    assert row.locator("td[data-label=agent]").inner_text() == "fake"
    resets = row.locator(".quota-reset").inner_text()
    assert resets.startswith(stamp) and ("(in 1 h 29 min)" in resets or "(in 1 h 30 min)" in resets), resets
    waiting = tab.page.locator("#quotas-waiting a")
    assert waiting.inner_text() == "1 thread waiting for a quota"
    assert tab.page.inner_text("[data-count='sessions-waiting_for_quota']") == "1"
    assert tab.page.inner_text("[data-count='runs24-rate_limited']") == "1"
    failures = tab.page.locator("#resume-failures [data-failure]")
    assert [failures.nth(i).get_attribute("data-failure") for i in range(failures.count())] == ["failed"]
    assert tab.page.get_attribute("#resume-limited [data-limited]", "data-limited") == "1"
    assert "met a usage limit" in tab.page.inner_text("#resume-limited")
    assert "(not a failure)" in tab.page.inner_text("#resume-limited")
    tab.page.locator("#quotas").scroll_into_view_if_needed()
    tab.screenshot("dashboard-quotas")  # BATON_SCREENSHOTS=DIR keeps it

    # the waiting sessions, by their status
    with tab.page.expect_navigation(wait_until="load"):
        waiting.click()
    assert tab.path() == "/sessions?status=waiting_for_quota"
    cells = tab.page.locator("#sessions-table td.status-waiting_for_quota")
    assert cells.count() == 1 and cells.inner_text() == "waiting_for_quota"

    # the run list: its reset beside it, its own colour (not a failure's)
    assert tab.goto("/runs") == 200
    run_row = tab.page.locator(f"#runs-table tr[data-run-id='{limited.id}']")
    assert run_row.get_attribute("data-outcome") == "rate_limited"
    assert stamp in run_row.locator(".quota-reset").inner_text()
    assert "five-hour" in run_row.locator(".quota-reset").inner_text()
    limited_color = color(tab, f"tr[data-run-id='{limited.id}'] .badge.outcome-rate_limited")
    failed_color = color(tab, "tr[data-outcome='failed'] .badge.outcome-failed")
    succeeded_color = color(tab, "tr[data-outcome='succeeded'] .badge.outcome-succeeded")
    assert limited_color not in (failed_color, succeeded_color)
    assert tab.goto("/runs?outcome=rate_limited") == 200
    assert tab.page.locator("#runs-table tbody tr[data-outcome]").count() == 1

    check_pages(tab, limited, stamp)

    # on a phone: the card fits
    phone = tabs.open(service.url, viewport=PHONE)
    phone.sign_in(service.token("read"))
    assert phone.page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert phone.page.locator("#quotas-held tr[data-credential]").is_visible()


def check_pages(tab: Tab, limited: RunRecord, stamp: str) -> None:
    """The run's page says when the quota resets; the session's says it waits (and only that one)."""
    assert tab.goto(f"/runs/{limited.id}") == 200
    assert stamp in tab.page.inner_text("#run-quota") and "not a failure" in tab.page.inner_text("#run-quota")
    key = {"agent": "fake", "repo": limited.repo, "thread": "limited"}
    assert tab.goto("/session?" + urlencode(key)) == 200
    banner = tab.page.inner_text("#waiting-for-quota")
    assert banner.startswith("Waiting for a usage quota.") and stamp in banner
    assert stamp in tab.page.inner_text(f"tr[data-run-id='{limited.id}'] .quota-reset")
    assert tab.page.inner_text("[data-fact=status]") == "waiting_for_quota"
    failing = {**key, "thread": "failing"}
    assert tab.goto("/session?" + urlencode(failing)) == 200
    assert tab.page.locator("#waiting-for-quota").count() == 0


def test_resume_success_does_not_count_a_spent_quota_as_a_failure(store: Store) -> None:
    now = time.time()
    for n, (mode, outcome) in enumerate(
        [
            (Mode.RESUME, Outcome.SUCCEEDED),
            (Mode.RESUME, Outcome.RATE_LIMITED),
            (Mode.RESUME, Outcome.RATE_LIMITED),
            (Mode.RESUME, Outcome.FAILED),
            (Mode.FRESH, Outcome.RATE_LIMITED),
        ]
    ):
        store.add_run(
            RunRecord(
                id=f"r{n}",
                agent="fake",
                repo="example.com/a/b",
                thread=f"t{n}",
                attempt=1,
                mode=mode,
                prompt_kind=PromptKind.DELTA,
                prompt="go on",
                outcome=outcome,
                started_at=now - 10,
                ended_at=now,
                resets_at=now + 600 if outcome == Outcome.RATE_LIMITED else None,
            )
        )
    counts = counters(store)
    assert counts["resume_failures"] == {"failed": 1}
    assert counts["resume_limited"] == 2
    assert counts["resume_rate"] == 100 and counts["resume_tried"] == 4  # every resume kept its conversation
    assert counts["runs24"]["rate_limited"] == 3


def test_the_card_lists_held_credentials_and_counts_the_passed(store: Store) -> None:
    now = 1_800_000_000.0
    for label, at, state in [
        ("claude ANTHROPIC_API_KEY #aaa111", now + 60, QuotaState.EXHAUSTED),
        ("codex OPENAI_API_KEY #ccc333", now - 60, QuotaState.EXHAUSTED),
        ("gemini GEMINI_API_KEY #ddd444", None, QuotaState.OK),
    ]:
        store.save_quota(QuotaRecord(label[-6:], label.split()[0], label, state, resets_at=at))
    card = quota_card(store, now)
    assert [v.record.label for v in card["held"]] == ["claude ANTHROPIC_API_KEY #aaa111"]
    assert card["passed"] == 1 and card["known"] == 3


def test_an_admin_clears_a_breaker_from_the_card_a_reader_cannot(service: Service, tabs: Tabs) -> None:
    label = "claude ANTHROPIC_API_KEY #aaa111"
    service.store.save_quota(
        QuotaRecord("aaa111", "claude", label, QuotaState.EXHAUSTED, resets_at=time.time() + 3600)
    )
    reader = tabs.open(service.url)
    reader.sign_in(service.token("read"))
    assert reader.page.locator("#quotas-held tr[data-credential]").count() == 1
    assert reader.page.locator("form.quota-clear").count() == 0
    csrf = reader.page.get_attribute("input[name=csrf]", "value")
    forged = reader.context.request.post(
        f"{service.url}/quotas/clear", form={"csrf": csrf or "", "credential": "aaa111"}, max_redirects=0
    )
    assert forged.status == 403
    assert service.store.quota("aaa111").held(time.time())  # type: ignore[union-attr]

    admin = tabs.open(service.url)
    admin.sign_in(service.token("admin", name="ops-admin"))
    admin.page.locator("#quotas").scroll_into_view_if_needed()
    admin.screenshot("dashboard-quotas-admin")
    with admin.page.expect_navigation(wait_until="load"):
        admin.page.click(f"#quotas-held tr[data-credential='{label}'] form.quota-clear button")
    assert admin.path().startswith("/?cleared=")
    assert admin.page.inner_text("#quota-cleared") == f"Cleared the breaker of {label}: its runs start again."
    assert admin.page.locator("#quotas-none").is_visible()
    assert service.store.quota("aaa111").state == QuotaState.OK  # type: ignore[union-attr]
    (entry,) = [a for a in service.store.list_audit() if a["action"] == "quota-clear"]
    assert entry["actor"] == "ops-admin" and entry["key"] == label
