"""A bound session's page and the overview's forge counts, in real Chromium on a real uvicorn.

The home (module scope): ``config.toml`` configures a GitHub at ``https://forge.example`` for
``acme/api`` (budgets 3 per failure, 5 turns a day; no reconcile, so nothing asks that forge), one real
run of the fake agent, and the thread of :mod:`tests.forge_rows` bound to its key in the store:
``needs_human`` with a note, four events from outside (logins, reasons and the note hold markup; a
review's URL is ``javascript:``; every body holds a secret). What the page must show: the banner with
the note, the issue's and the PR's links, each event's source (who, a link only when it is http(s)),
status and reason, its run linked to the run's page, the budget spent against the limits — as text,
never markup, and never a comment's body. The overview counts the thread and links to it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import pytest

from baton import RunRequest, run
from baton.settings import Settings, load_settings
from tests.browser_fixtures import PHONE, Tab, Tabs, browser_fixture, tabs_fixture  # noqa: F401 (fixtures)
from tests.conftest import FAST, make_repo
from tests.forge_rows import (
    BODY,
    EVIL_LOGIN,
    EVIL_REASON,
    NOTE,
    NUMBER,
    PR,
    REPO,
    SIGNATURE,
    WEB,
    config_toml,
    seed_thread,
)
from tests.service_fixtures import Service, run_service


@dataclass(frozen=True)
class Home:
    service: Service
    slug: str
    run_id: str

    def page(self, thread: str) -> str:
        return "/session?" + urlencode({"agent": "fake", "repo": self.slug, "thread": thread})

    def signed_in(self, tabs: Tabs, phone: bool = False) -> Tab:
        tab = tabs.open(self.service.url, PHONE) if phone else tabs.open(self.service.url)
        tab.sign_in(self.service.token("read"))
        return tab


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Home]:
    root = tmp_path_factory.mktemp("dashboard-forge")
    config_toml(root / "baton-home")
    overrides = {"home": str(root / "baton-home"), **FAST, "forge_reconcile": 0}
    settings: Settings = load_settings(overrides=overrides, environ={})
    repo = make_repo(root / "api")
    with run_service(settings) as service:
        bound = run(RunRequest("fake", str(repo), "issue-42", "start"), settings)
        unbound = run(RunRequest("fake", str(repo), "loose", "start"), settings)
        assert bound.ok and unbound.ok
        seed_thread(service.store, "fake", bound.session.repo, "issue-42", bound.run.id)
        yield Home(service, bound.session.repo, bound.run.id)


def test_a_bound_session_shows_its_issue_pr_feedback_budget_and_banner(home: Home, tabs: Tabs) -> None:
    tab = home.signed_in(tabs)
    assert tab.goto(home.page("issue-42")) == 200
    page = tab.page

    banner = page.locator("#needs-human")
    assert banner.is_visible() and banner.get_attribute("role") == "alert"
    assert NOTE in banner.inner_text()  # the note's <b> is text, not markup
    assert banner.locator("b").count() == 0

    forge = page.locator("#forge")
    assert forge.get_attribute("data-conversation") == f"github:{REPO}#{NUMBER}"
    assert forge.get_attribute("data-status") == "needs_human"
    assert page.get_attribute("#forge-issue", "href") == f"{WEB}/{REPO}/issues/{NUMBER}"
    assert page.get_attribute("#forge-pr", "href") == f"{WEB}/{REPO}/pull/{PR}"
    assert page.inner_text("#forge-pr") == f"{REPO}#{PR}"

    turns = page.locator("#forge-turns-today")
    assert (turns.get_attribute("data-spent"), turns.get_attribute("data-limit")) == ("1", "5")
    assert turns.inner_text().strip() == "1 of 5"
    failure = page.locator(f".forge-failure[data-signature='{SIGNATURE}']")
    assert failure.get_attribute("data-spent") == "3"
    assert "lint, test: 3 of 3 turns" in failure.inner_text() and "spent" in failure.inner_text()

    rows = page.locator("#forge-events tbody tr")
    got = rows.evaluate_all("rs => rs.map(r => [r.dataset.kind, r.dataset.status])")
    assert got == [
        ["ci_failure", "held"],
        ["review", "dispatched"],
        ["comment", "dropped"],
        ["comment", "dispatched"],
    ]
    actors = page.locator("#forge-events .forge-actor").all_inner_texts()
    assert [a.strip() for a in actors] == ["github-actions", "bob", EVIL_LOGIN, "alice"]
    assert forge.locator("img, script").count() == 0  # logins and reasons stay text
    assert EVIL_REASON in page.inner_text("#forge-events")

    # links to sources only where they are http(s): the review's javascript: URL is no link
    sources = page.locator("#forge-events a.forge-source").evaluate_all("as => as.map(a => a.href)")
    assert len(sources) == 3 and all(s.startswith(WEB + "/") for s in sources), sources
    review = page.locator("#forge-events tr[data-identity='review:3']")
    assert review.locator("a.forge-source").count() == 0 and "review" in review.inner_text()
    assert page.locator("a[href^='javascript']").count() == 0

    assert BODY not in page.content()  # the comments' text stays on the forge

    turn = page.locator(f"#forge-turns tr[data-run-id='{home.run_id}']")
    assert "comment, review" in turn.inner_text() and "not yet" in turn.inner_text()
    assert turn.locator("a.forge-turn-run").get_attribute("href") == f"/runs/{home.run_id}"

    runs = page.locator("#forge-events a.forge-run")
    assert runs.count() == 2
    assert runs.first.get_attribute("href") == f"/runs/{home.run_id}"
    with page.expect_navigation():
        runs.first.click()
    assert tab.path() == f"/runs/{home.run_id}" and page.locator("#run-facts").is_visible()
    tab.goto(home.page("issue-42"))
    tab.screenshot("dashboard-session-forge")


def test_an_unbound_session_has_no_forge_card(home: Home, tabs: Tabs) -> None:
    tab = home.signed_in(tabs)
    assert tab.goto(home.page("loose")) == 200
    assert tab.page.locator("#forge").count() == 0 and tab.page.locator("#needs-human").count() == 0


def test_the_overview_counts_threads_and_links_the_one_that_needs_a_human(home: Home, tabs: Tabs) -> None:
    tab = home.signed_in(tabs)
    assert tab.path() == "/"
    page = tab.page
    assert page.inner_text("[data-count='forge-needs_human']") == "1"
    assert page.inner_text("[data-count='forge-active']") == "0"
    link = page.locator("#forge-needs-human a")
    assert link.count() == 1 and link.get_attribute("data-conversation") == f"github:{REPO}#{NUMBER}"
    with page.expect_navigation():
        link.click()
    assert page.locator("#needs-human").is_visible()
    assert page.locator("#forge").get_attribute("data-conversation") == f"github:{REPO}#{NUMBER}"


def test_the_overview_shows_the_outcomes_per_repository_and_agent(home: Home, tabs: Tabs) -> None:
    """One row for the seeded thread's repository and agent: a thread, no PR baton opened, three
    feedback events accepted (the dropped one is not) and none answered yet (its turn is not
    published), one thread waiting on a person since it was bound."""
    tab = home.signed_in(tabs)
    page = tab.page
    rows = page.locator("#forge-outcomes-table tbody tr")
    assert rows.count() == 1
    row = rows.first
    assert (
        row.get_attribute("data-forge"),
        row.get_attribute("data-repo"),
        row.get_attribute("data-agent"),
    ) == (
        "github",
        REPO,
        "fake",
    )

    def cell(name: str) -> str:
        return row.locator(f"[data-cell='{name}']").inner_text().strip()

    assert (cell("threads"), cell("prs-opened"), cell("prs-merged"), cell("prs-closed")) == (
        "1",
        "0",
        "0",
        "0",
    )
    assert cell("rounds") == "—" and cell("first-push") == "—" and cell("ci-fix") == "—"
    assert cell("answered") == "0 of 3 (0%)"
    assert cell("waiting").startswith("1, the longest ")
    row.scroll_into_view_if_needed()
    assert row.is_visible()
    tab.screenshot("dashboard-forge-outcomes")


def test_the_bound_session_fits_a_phone(home: Home, tabs: Tabs) -> None:
    tab = home.signed_in(tabs, phone=True)
    assert tab.goto(home.page("issue-42")) == 200
    assert tab.page.locator("#forge").is_visible()
    width = tab.page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"the page overflows the phone's screen: {width}"


def test_a_home_without_forge_rows_has_no_forge_counts(tmp_path: Path, tabs: Tabs) -> None:
    settings = load_settings(overrides={"home": str(tmp_path / "h"), **FAST}, environ={})
    with run_service(settings) as service:
        tab = tabs.open(service.url)
        tab.sign_in(service.token("read"))
        assert tab.path() == "/"
        assert tab.page.locator("[data-count='forge-needs_human']").count() == 0
