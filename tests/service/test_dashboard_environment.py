"""A thread's environment on the dashboard, in real Chromium on a real uvicorn: a run's page shows the
environment's line of its note as a fact of its own (the rest of the note stays the note), the session's
page its newest run's, and the overview's disk card each repository's prepared trees, preparations and
hits as ``baton du`` counts them. The home (module scope): one repository whose ``.baton/setup.sh``
makes ``build/`` (two threads: a preparation and a hit), one whose dev container's named command (its
name markup) fails; real runs of the fake agent."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlencode

import pytest

from baton import RunRequest, run
from baton.settings import Settings, load_settings
from tests.browser_fixtures import Tab, Tabs, browser_fixture, tabs_fixture  # noqa: F401 (fixtures)
from tests.conftest import BATON, FAST, make_repo
from tests.service_fixtures import Service, run_service

EVIL = "<b>deps</b>"


@dataclass(frozen=True)
class Home:
    service: Service
    ready: str  # the prepared repository's slug
    broken: str
    runs: dict[str, str]  # thread -> its run's id

    def signed_in(self, tabs: Tabs) -> Tab:
        tab = tabs.open(self.service.url)
        tab.sign_in(self.service.token("read"))
        return tab

    def page(self, repo: str, thread: str) -> str:
        return "/session?" + urlencode({"agent": "fake", "repo": repo, "thread": thread})


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Home]:
    root = tmp_path_factory.mktemp("dashboard-environment")
    settings: Settings = load_settings(overrides={"home": str(root / "baton-home"), **FAST}, environ={})
    setup = f"echo '{EVIL} installed'\nmkdir build && echo made > build/out\n"
    ready = make_repo(root / "ready", {".baton/setup.sh": setup})
    devcontainer = json.dumps({"onCreateCommand": {EVIL: "echo no such package >&2; exit 2"}})
    broken = make_repo(root / "broken", {".devcontainer.json": devcontainer})
    with run_service(settings) as service:
        runs = {}
        for repo, thread in ((ready, "one"), (ready, "two"), (broken, "bad")):
            result = run(RunRequest("fake", str(repo), thread, "start"), settings)
            assert result.ok == (thread != "bad"), result.run.error
            runs[thread] = result.run.id
            slug = result.run.repo
            if thread == "one":
                ready_slug = slug
        yield Home(service, ready_slug, slug, runs)


def test_a_runs_environment_is_a_fact_of_its_own(home: Home, tabs: Tabs) -> None:
    tab = home.signed_in(tabs)
    assert tab.goto(f"/runs/{home.runs['two']}") == 200
    line = tab.page.inner_text("#run-environment")
    assert line.startswith("environment: setup from .baton/setup.sh (setup.sh)")
    assert "was ready (a hit)" in line and "preparations 1, hits 1" in line
    assert tab.page.locator("#run-note").count() == 0  # the note was the environment's line alone
    assert tab.goto(f"/runs/{home.runs['one']}") == 200
    assert "the preparation of" in tab.page.inner_text("#run-environment")
    assert " ran in " in tab.page.inner_text("#run-environment")


def test_a_run_shows_what_its_setup_ran_and_printed_before_the_agent(home: Home, tabs: Tabs) -> None:
    tab = home.signed_in(tabs)
    assert tab.goto(f"/runs/{home.runs['one']}") == 200
    setup = tab.page.locator("#setup")
    assert "1 step(s)" in setup.locator("summary").inner_text()
    assert setup.locator(".setup-step").inner_text() == "setup: setup.sh (.baton/setup.sh)"
    assert setup.locator(".setup-output").all_inner_texts() == [f"{EVIL} installed"]  # text, not markup
    assert setup.locator("pre b").count() == 0
    assert tab.goto(f"/runs/{home.runs['two']}") == 200  # a hit: nothing ran before its agent
    assert tab.page.locator("#setup").count() == 0


def test_a_failed_setup_shows_what_ran_as_text(home: Home, tabs: Tabs) -> None:
    tab = home.signed_in(tabs)
    assert tab.goto(f"/runs/{home.runs['bad']}") == 200
    line = tab.page.inner_text("#run-environment")
    assert f"onCreateCommand.{EVIL}" in line and line.endswith("did not succeed")
    assert tab.page.locator("#run-facts b").count() == 0  # the command's name is text, not markup
    assert "the repository's setup did not succeed" in tab.page.inner_text("#run-error")
    output = tab.page.locator("#run-setup-output")
    output.locator("summary").click()
    assert output.locator("pre").inner_text().strip() == "no such package"
    assert tab.goto(home.page(home.broken, "bad")) == 200
    assert "did not succeed" in tab.page.inner_text("#session-environment")


def test_the_session_shows_its_newest_environment(home: Home, tabs: Tabs) -> None:
    tab = home.signed_in(tabs)
    assert tab.goto(home.page(home.ready, "one")) == 200
    said = tab.page.locator("#session-environment")
    assert "the preparation of" in said.inner_text()
    assert said.locator("a").get_attribute("href") == f"/runs/{home.runs['one']}"


def test_the_disk_card_counts_the_prepared_trees_as_du(home: Home, tabs: Tabs) -> None:
    tab = home.signed_in(tabs)
    tab.goto("/", {"fresh": "1"})
    du = subprocess.run(
        [*BATON, "du", "--json"],
        env={"PATH": "/usr/bin:/bin", "BATON_HOME": str(home.service.settings.home)},
        capture_output=True,
        text=True,
        check=True,
    )
    prepared = json.loads(du.stdout)["prepared"]
    rows = tab.page.locator("#prepared tbody tr")
    got = rows.evaluate_all(
        "rs => rs.map(r => [r.dataset.repo, r.dataset.trees, r.dataset.bytes, r.dataset.preparations, "
        "r.dataset.hits])"
    )
    want = [
        [s, str(p["trees"]), str(p["bytes"]), str(p["preparations"]), str(p["hits"])]
        for s, p in prepared.items()
    ]
    assert got == want
    # the broken repository's preparation failed: its tree's home is kept for the next try, never given
    by_repo = {row[0]: row[1:] for row in got}
    assert by_repo[home.ready] == ["1", by_repo[home.ready][1], "1", "1"]
    assert by_repo[home.broken] == ["0", by_repo[home.broken][1], "0", "0"]  # bytes, no tree
