"""Fixtures for the dashboard's browser tests: Playwright's sync API driving Debian's Chromium
(``/usr/bin/chromium``, installed by ``make setup``; never ``playwright install``, the machine is
offline).

Use from a test module::

    from tests.browser_fixtures import Tab, browser_fixture, tabs_fixture  # noqa: F401 (fixtures)

    def test_x(tabs: Tabs) -> None:
        tab = tabs.open(service.url)              # a fresh context (no cookies), 1280x800
        tab.sign_in(secret)                       # /login: fill #token, click #sign-in
        tab.goto("/sessions")
        tab.screenshot("dashboard-sessions")      # into $BATON_SCREENSHOTS, else tmp_path
        # at the end of the test: no console error and no page error on any tab (tab.expect_errors
        # for the ones a test provokes on purpose, such as the 401 of a bad sign-in)

- ``browser`` (module scope, per xdist worker): one headless Chromium; every test gets fresh contexts
  from it, each with its own cookie jar, cache and storage (what a fresh user-data dir gives, without
  a second start-up of the browser).
- ``tabs``: opens pages (``Tab``) that record console messages of type error and uncaught page errors;
  after the test it asserts there were none, and closes their contexts.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Error,
    Page,
    ViewportSize,
)

from tests.support.browser import chromium

DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}
TIMEOUT_MS = 15_000


@pytest.fixture(name="browser", scope="module")
def browser_fixture() -> Iterator[Browser]:
    """Debian's Chromium, headless, for this module's tests (one per xdist worker)."""
    with chromium() as browser:  # RuntimeError (a failed test) when chromium is not installed
        yield browser


def screenshot_dir(tmp_path: Path) -> Path:
    """``$BATON_SCREENSHOTS`` (relative to the working directory) when set, else ``tmp_path``."""
    named = os.environ.get("BATON_SCREENSHOTS")
    folder = Path(named) if named else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@dataclass
class Tab:
    """One page in its own browser context, with what went wrong in it."""

    page: Page
    context: BrowserContext
    base_url: str
    shots: Path
    errors: list[str] = field(default_factory=list)
    expected: list[re.Pattern[str]] = field(default_factory=list)

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"console error at {message.location.get('url')}: {message.text}")

    def on_page_error(self, error: Error) -> None:
        self.errors.append(f"page error: {error.name}: {error.message}")

    def goto(self, path: str, params: dict[str, str] | None = None) -> int:
        """Load ``path`` (and wait for its load event); the HTTP status of the final document."""
        url = path + ("?" + urlencode(params) if params else "")
        response = self.page.goto(url, wait_until="load")
        assert response is not None, f"no response for {url}"
        return response.status

    def sign_in(self, token: str, next_path: str | None = None) -> None:
        """Sign in on /login (or the login page the browser is on) with ``token``."""
        if not self.page.url.split("?")[0].endswith("/login"):
            self.goto("/login", {"next": next_path} if next_path else None)
        self.page.fill("#token", token)
        with self.page.expect_navigation(wait_until="load"):
            self.page.click("#sign-in")

    def path(self) -> str:
        """The current URL without the origin."""
        return self.page.url.removeprefix(self.base_url)

    def expect_errors(self, pattern: str) -> None:
        """Console errors matching ``pattern`` are expected in this tab (e.g. a 401 page's load)."""
        self.expected.append(re.compile(pattern))

    def unexpected_errors(self) -> list[str]:
        return [e for e in self.errors if not any(p.search(e) for p in self.expected)]

    def assert_no_errors(self) -> None:
        unexpected = self.unexpected_errors()
        assert not unexpected, "\n".join(unexpected)

    def screenshot(self, name: str) -> Path:
        """A PNG of the viewport, ``<name>.png`` in ``$BATON_SCREENSHOTS`` (else the test's tmp_path)."""
        target = self.shots / f"{name}.png"
        self.page.screenshot(path=str(target), full_page=False, animations="disabled")
        return target

    def cookie(self, name: str = "baton_session") -> str | None:
        return next((c["value"] for c in self.context.cookies() if c["name"] == name), None)


@dataclass
class Tabs:
    """Opens tabs, each in a fresh context; checks and closes them after the test."""

    browser: Browser
    shots: Path
    opened: list[Tab] = field(default_factory=list)

    def open(self, base_url: str, viewport: ViewportSize = DESKTOP) -> Tab:
        context = self.browser.new_context(
            base_url=base_url,
            viewport=viewport,
            service_workers="block",
        )
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        tab = Tab(page, context, base_url, self.shots)
        page.on("console", tab.on_console)
        page.on("pageerror", tab.on_page_error)
        self.opened.append(tab)
        return tab

    def close(self) -> None:
        for tab in self.opened:
            tab.context.close()


@pytest.fixture(name="tabs")
def tabs_fixture(browser: Browser, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Tabs]:
    """Tabs for this test; afterwards, no tab may have had an unexpected console or page error (not
    checked when the test itself failed: its report comes first and says enough)."""
    tabs = Tabs(browser, screenshot_dir(tmp_path))
    failed = request.session.testsfailed
    try:
        yield tabs
        if request.session.testsfailed == failed:
            for tab in tabs.opened:
                tab.assert_no_errors()
    finally:
        tabs.close()
