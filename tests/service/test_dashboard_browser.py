"""The dashboard in real Chromium, on a real uvicorn serving a home made by real runs.

The home (module scope, one per xdist worker): two repositories, sessions of two agents on each — the
fake agent, and the real Claude Code CLI against the mock Anthropic API — a plan and a webhook
delivery. What the tests show:

1. sign-in: a good token shows the overview, a bad one an error; every page redirects to it first;
2. the disk card's numbers equal ``baton du --json`` for the same ``BATON_HOME``;
3. a run submitted over the API while its session page is open appears there, and its log streams in
   (Claude Code against the mock) without a reload, ending with its outcome;
4. reset from the session page with an admin token (confirmation, worktree gone, audited); with a
   read token no reset link, and a forged POST is refused with and without the CSRF token;
5. the screenshots in docs/ (``BATON_SCREENSHOTS=docs``).

And: every page loads without console errors at 1280x800 and at 390x844 (no horizontal overflow of
the page on the phone), only from the service's own origin, and keyboard users reach the nav and the
sign-in form.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from baton import RunRequest, run
from baton.forge.data.records import DeliveryRecord, DeliveryStatus
from baton.forge.data.tables import delivery_store
from baton.models import Outcome
from baton.plans.file import parse_plan
from baton.plans.runner import run_plan
from baton.settings import Settings, load_settings
from baton.testing.mock_anthropic import MockAnthropic, tool_marker
from tests.browser_fixtures import PHONE, Tab, Tabs, browser_fixture, tabs_fixture  # noqa: F401 (fixtures)
from tests.conftest import BATON, FAST, HELD, make_repo, wait_for
from tests.service_fixtures import Service, run_service

pytestmark = pytest.mark.slow  # drives the real Claude Code CLI
NAV = ["/", "/sessions", "/runs", "/plans", "/deliveries", "/audit"]


@dataclass(frozen=True)
class Sess:
    """One key of the fleet: how to run it and where its page is."""

    agent: str
    repo: Path
    slug: str
    thread: str
    worktree: str
    run_id: str  # the key's latest run

    @property
    def params(self) -> dict[str, str]:
        return {"agent": self.agent, "repo": self.slug, "thread": self.thread}

    @property
    def page(self) -> str:
        return "/session?" + urlencode(self.params)


@dataclass
class Fleet:
    """The served home: its service, the mock Claude talks to, and the sessions by thread."""

    service: Service
    settings: Settings
    mock: MockAnthropic
    sessions: dict[str, Sess] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.service.url

    def du(self) -> dict[str, Any]:
        """``baton du --json`` as its own process, for this home."""
        env = {
            **os.environ,
            "BATON_HOME": str(self.settings.home),
            **{f"BATON_{k.upper()}": str(v) for k, v in FAST.items()},
        }
        out = subprocess.run(
            [*BATON, "du", "--json"], env=env, capture_output=True, text=True, timeout=120, check=False
        )
        assert out.returncode == 0, out.stderr
        data: dict[str, Any] = json.loads(out.stdout)
        return data

    def signed_in(self, tabs: Tabs, scope: str, name: str | None = None) -> Tab:
        """A new tab signed in with a fresh token of ``scope``; on the overview."""
        tab = tabs.open(self.url)
        tab.sign_in(self.service.token(scope, name))
        assert tab.path() == "/"
        return tab


def run_on(fleet: Fleet, agent: str, repo: Path, thread: str, prompt: str = "do it") -> Sess:
    result = run(
        RunRequest(agent=agent, repo=str(repo), thread=thread, prompt=prompt), settings=fleet.settings
    )
    assert result.ok, result.run.error
    sess = Sess(agent, repo, result.session.repo, thread, result.session.worktree, result.run.id)
    fleet.sessions[thread] = sess
    return sess


def seed(fleet: Fleet, root: Path) -> None:
    """Two repos by two agents by real runs (one key resumed, two runs failed, one Claude Code run with
    a real tool round trip: the mock asks for Read, Claude Code reads the file), a plan, a webhook
    delivery."""
    alpha = make_repo(root / "alpha")
    beta = make_repo(root / "beta", {"README.md": "# beta\n", "lib/beta.py": "X = 1\n" * 200})
    run_on(fleet, "fake", alpha, "issue-1", "first")
    run_on(fleet, "fake", alpha, "issue-1", "second")
    run_on(fleet, "fake", beta, "issue-2")
    run_on(fleet, "claude", alpha, "issue-3", f"Read the README {tool_marker('Read', file_path='README.md')}")
    run_on(fleet, "claude", beta, "issue-4")
    run_on(fleet, "fake", beta, "reset-me")
    run_on(fleet, "fake", alpha, "keep-me")
    run_on(fleet, "fake", alpha, "resume-fails")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("FAKE_AGENT_FAIL", "1")
        failed = run(RunRequest(agent="fake", repo=str(alpha), thread="broken", prompt="x"), fleet.settings)
        assert failed.run.outcome == "failed"
        # a resume that keeps its conversation, and then fails: the overview names it beside the rate
        resumed = run(RunRequest("fake", str(alpha), "resume-fails", "y"), fleet.settings)
        assert resumed.run.mode == "resume" and resumed.run.outcome == "failed"
    (alpha_plan := root / "plan.yaml").write_text(
        f"id: docs\nagent: fake\nrepo: {alpha}\ntasks:\n  - id: outline\n    prompt: outline\n"
        "  - id: write\n    prompt: write it\n"
    )
    store = fleet.service.store
    assert run_plan(parse_plan(alpha_plan.read_text(), str(alpha_plan)), fleet.settings, store).record
    delivery = DeliveryRecord("github", "delivery-1", "issue_comment", time.time(), DeliveryStatus.DONE)
    delivery.result = {"matched": [f"claude:{fleet.sessions['issue-4'].slug}:issue-4"], "runs": []}
    assert delivery_store(store).add_delivery(delivery)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    root = tmp_path_factory.mktemp("dashboard")
    settings = load_settings(overrides={"home": str(root / "baton-home"), **FAST}, environ={})
    with MockAnthropic() as mock, pytest.MonkeyPatch.context() as env:
        for name, value in mock.env().items():
            env.setenv(name, value)
        with run_service(settings) as service:
            fleet = Fleet(service, settings, mock)
            seed(fleet, root)
            yield fleet


def data_bytes(tab: Tab, selector: str, attr: str) -> dict[str, int]:
    """``{element's attr: int(data-bytes)}`` for every match of ``selector`` in ``#disk``."""
    pairs: list[list[str]] = tab.page.eval_on_selector_all(
        f"#disk {selector}", f"els => els.map(e => [e.getAttribute('{attr}'), e.dataset.bytes])"
    )
    assert all(value is not None and value.isdigit() for _, value in pairs), pairs
    found = {name: int(value) for name, value in pairs}
    assert len(found) == len(pairs), f"{selector} repeated: {pairs}"
    return found


def same_url(a: str, b: str) -> bool:
    """The same path and query parameters, however each is encoded."""
    x, y = urlsplit(a), urlsplit(b)
    return x.path == y.path and parse_qs(x.query) == parse_qs(y.query)


def login_next(tab: Tab) -> str:
    """Where the login page the tab was sent to will go after sign-in."""
    parts = urlsplit(tab.page.url)
    assert parts.path == "/login", tab.page.url
    return parse_qs(parts.query)["next"][0]


# -- 1. sign-in ---------------------------------------------------------------------------------------


def test_pages_redirect_to_sign_in_and_a_bad_token_is_refused(fleet: Fleet, tabs: Tabs) -> None:
    issue1 = fleet.sessions["issue-1"]
    protected = [*NAV, issue1.page, "/sessions?agent=claude&sort=size"]
    tab = tabs.open(fleet.url)
    for path in protected:
        assert tab.goto(path) == 200
        assert login_next(tab) == path
        assert tab.page.is_visible("#login-form") and tab.page.is_visible("#token")
    how = tab.page.inner_text("main")  # the command it tells to run works as written
    assert "baton tokens create --name NAME --scope read|run|admin" in how, how
    with httpx.Client(base_url=fleet.url) as http:
        for path in protected:
            response = http.get(path)
            assert response.status_code == 303, path
            assert same_url(response.headers["location"], "/login?" + urlencode({"next": path}))

    tab.expect_errors("status of 401")  # Chromium logs the 401 of the refused sign-in's page
    tab.page.fill("#token", "not-a-token")
    with tab.page.expect_navigation() as refused:
        tab.page.click("#sign-in")
    assert refused.value is not None and refused.value.status == 401
    assert tab.path().startswith("/login")
    assert tab.page.is_visible("#login-error")
    assert tab.cookie() is None
    tab.sign_in(fleet.service.revoked_token("read"))  # a revoked token is a bad token too
    assert tab.page.is_visible("#login-error") and tab.cookie() is None


def test_a_good_token_shows_the_overview_and_goes_where_it_was_sent(fleet: Fleet, tabs: Tabs) -> None:
    tab = tabs.open(fleet.url)
    tab.goto("/sessions", {"agent": "claude"})
    tab.sign_in(fleet.service.token("read", "reader-1"))
    assert tab.path() == "/sessions?agent=claude"
    assert tab.page.locator("table#sessions-table tbody tr").count() == 2
    cookie = next(c for c in tab.context.cookies() if c["name"] == "baton_session")
    assert (cookie["httpOnly"], cookie["sameSite"], cookie["path"]) == (True, "Strict", "/")

    tab = fleet.signed_in(tabs, "read", "reader-2")
    assert tab.page.inner_text("h1").strip() == "Overview"
    who = tab.page.locator("#who")
    assert who.get_attribute("data-scope") == "read" and "reader-2" in who.inner_text()
    csrf = tab.page.input_value("form[action='/logout'] input[name=csrf]")
    with tab.page.expect_navigation():
        tab.page.click("form[action='/logout'] [type=submit]")
    assert tab.cookie() is None
    assert tab.goto("/") == 200 and login_next(tab) == "/"
    assert csrf


# -- 2. the disk card ---------------------------------------------------------------------------------


def test_disk_card_equals_baton_du(fleet: Fleet, tabs: Tabs) -> None:
    tab = fleet.signed_in(tabs, "read")
    before = time.time()
    tab.goto("/", {"fresh": "1"})
    du = fleet.du()
    measured_at = float(tab.page.get_attribute("#disk", "data-measured-at") or 0)
    assert before - 1 <= measured_at <= time.time()

    metrics = data_bytes(tab, "[data-metric]", "data-metric")
    assert metrics["total"] == du["total"]
    assert abs(metrics["free"] - du["free"]) < 256 * 2**20  # other tests write to this disk meanwhile
    assert ("quota" in metrics) == (du["quota"] is not None)

    def summed(row: dict[str, int]) -> int:
        return row["worktree"] + row["transcript"] + row["snapshot"]

    agents = data_bytes(tab, "[data-agent]", "data-agent")
    assert agents == {a: summed(row) for a, row in du["agents"].items()}
    assert set(agents) == {"fake", "claude"} and all(agents.values())
    repos = data_bytes(tab, "[data-repo]", "data-repo")
    assert repos == {r: summed(row) for r, row in du["repos"].items()}
    assert len(repos) == 2 and all(repos.values())

    sessions = du["sessions"]
    transcripts = sum(s["transcript"] for s in sessions)
    assert data_bytes(tab, "[data-kind]", "data-kind") == {
        "worktrees": sum(s["worktree"] for s in sessions),
        "transcripts": transcripts,
        "snapshots": sum(s["snapshot"] for s in sessions),
        "caches": sum(du["caches"].values()),
        "package_caches": sum(du["package_caches"].values()),
        "prepared": sum(int(p["bytes"]) for p in du["prepared"].values()),
        "homes": max(0, sum(du["homes"].values()) - transcripts),
    }
    links = tab.page.eval_on_selector_all("#largest a", "els => els.map(e => e.getAttribute('href'))")
    size_of = {
        (s["agent"], s["repo"], s["key"].rsplit(":", 1)[-1]): s["total"] for s in sessions
    }  # du's key is agent:repo:thread, and the thread has no colon
    linked = [tuple(parse_qs(urlsplit(h).query)[p][0] for p in ("agent", "repo", "thread")) for h in links]
    assert len(linked) == min(10, len(sessions)) and len(set(linked)) == len(linked)
    assert [size_of[k] for k in linked] == sorted(size_of.values(), reverse=True)[: len(linked)]


def test_overview_counters(fleet: Fleet, tabs: Tabs) -> None:
    tab = fleet.signed_in(tabs, "read")
    counts = dict(
        tab.page.eval_on_selector_all(
            "#counters [data-count]", "els => els.map(e => [e.dataset.count, e.textContent.trim()])"
        )
    )
    sessions = fleet.service.store.list_sessions()
    per_status = {k.removeprefix("sessions-"): int(v) for k, v in counts.items() if k.startswith("sessions-")}
    assert sum(per_status.values()) == len(sessions)
    assert per_status.get("active", 0) == sum(s.status == "active" for s in sessions)
    assert int(counts["running"]) >= 0 and int(counts["queued"]) >= 0
    assert int(counts.get("runs24-succeeded", 0)) >= 9  # every seeded run and plan task succeeded
    assert "%" in tab.page.inner_text("#resume-rate")
    failures = tab.page.inner_text("#resume-rate #resume-failures")  # the failures beside the rate
    assert failures.startswith(", but ") and tab.page.get_attribute("[data-failure=failed]", "href")
    failed_resumes = [
        r for r in fleet.service.store.list_runs(outcome=Outcome.FAILED, limit=500) if r.mode == "resume"
    ]
    assert tab.page.inner_text("[data-failure=failed]") == f"{len(failed_resumes)} failed"


# -- 3. a run streams into the open session page -------------------------------------------------------


def timeline_ids(tab: Tab) -> list[str]:
    ids: list[str] = tab.page.eval_on_selector_all(
        "#timeline tr[data-run-id]", "rows => rows.map(r => r.dataset.runId)"
    )
    return ids


# Every change of the live section, as the page saw it: [ms since the trace began, .entry elements in
# #live-log, #live-outcome's data-outcome, the text of #live-run (which run is shown)].
TRACE = """() => {
    const live = document.getElementById('live'), began = performance.now();
    window.liveTrace = [];
    const snap = () => window.liveTrace.push([performance.now() - began,
        document.querySelectorAll('#live-log .entry').length,
        document.getElementById('live-outcome').dataset.outcome || null,
        document.getElementById('live-run').textContent]);
    new MutationObserver(snap).observe(live, {subtree: true, childList: true, attributes: true,
                                              characterData: true});
    snap();
}"""


def streamed(trace: list[list[Any]], ids: list[str]) -> tuple[float, float]:
    """When (ms) the first entry of the run with one of ``ids`` showed, and when its outcome did."""
    ours = [t for t in trace if any(f"run {i[-8:]}" in t[3] for i in ids)]  # the label shows the short id
    first = next(t[0] for t in ours if t[1] > 0 and t[2] is None)
    ended = next(t[0] for t in ours if t[2] is not None)
    return first, ended


def test_a_run_submitted_over_the_api_streams_into_the_open_session_page(fleet: Fleet, tabs: Tabs) -> None:
    sess = fleet.sessions["issue-4"]  # Claude Code's session on beta
    tab = fleet.signed_in(tabs, "read", "ops-viewer")
    assert tab.goto(sess.page) == 200
    assert sess.thread in tab.page.inner_text("h1")
    before = timeline_ids(tab)
    assert len(before) == 1
    attempts = tab.page.inner_text('#session-facts [data-fact="attempts"]')
    last_used = tab.page.inner_text('#session-facts [data-fact="last_used"]')
    navigations: list[str] = []
    tab.page.on("framenavigated", lambda frame: navigations.append(frame.url))
    tab.page.evaluate(TRACE)

    fleet.mock.delay = 2.0  # Claude Code's first events are out long before the model's reply
    try:
        with fleet.service.client("run") as http:
            body = {"agent": "claude", "repo": str(sess.repo), "thread": sess.thread, "prompt": "live one"}
            created = http.post("/v1/runs", json=body)
            assert created.status_code == 202, created.text
            run_id = created.json()["run_id"]
            tab.page.wait_for_function(
                "known => [...document.querySelectorAll('#timeline tr[data-run-id]')]"
                ".some(r => !known.includes(r.dataset.runId))",
                arg=before,
            )
            wait_for(lambda: http.get(f"/v1/runs/{run_id}").json()["status"] == "done")
            record = http.get(f"/v1/runs/{run_id}").json()
    finally:
        fleet.mock.delay = 0.0
    assert record["outcome"] == "succeeded" and record["mode"] == "resume", record
    attempt = record["attempts"][-1]["attempt_id"]  # the timeline's row: the attempt's own id

    tab.page.wait_for_selector("#live-outcome[data-outcome=succeeded]")
    tab.page.wait_for_selector(f'#timeline tr[data-run-id="{attempt}"][data-outcome="succeeded"]')
    assert set(timeline_ids(tab)) - set(before) == {attempt}
    first, ended = streamed(tab.page.evaluate("() => window.liveTrace"), [run_id, attempt])
    assert ended - first > 1000, "the log came in one piece at the end, not while the run ran"
    log = tab.page.inner_text("#live-log")
    assert "received 4 messages" in log  # the resumed turn's reply from the mock, live
    assert tab.page.locator("#live-log .entry.entry-text").count() >= 1
    session = fleet.service.store.get_session(sess.agent, sess.slug, sess.thread)
    assert session is not None and str(session.attempts) != attempts  # the card follows the run too
    tab.page.wait_for_selector(f'#session-facts [data-fact="attempts"]:text-is("{session.attempts}")')
    assert tab.page.inner_text('#session-facts [data-fact="last_used"]') != last_used
    assert navigations == [], "the page was reloaded"
    tab.screenshot("dashboard-session")


# -- 4. reset ------------------------------------------------------------------------------------------


def test_admin_resets_a_session_from_its_page(fleet: Fleet, tabs: Tabs) -> None:
    sess = fleet.sessions["reset-me"]
    assert Path(sess.worktree).is_dir()
    tab = fleet.signed_in(tabs, "admin", "admin-dash")
    tab.goto(sess.page)
    scopes = tab.page.eval_on_selector_all("a.reset", "els => els.map(e => e.dataset.scope)")
    assert sorted(scopes) == ["all", "conversation", "worktree"]
    with tab.page.expect_navigation():
        tab.page.click("a.reset[data-scope=all]")
    assert tab.path().startswith("/session/reset?")
    what = tab.page.inner_text("#reset-what")
    assert sess.worktree in what and ("checkpoint" in what.lower() or "archive" in what.lower())
    assert tab.page.input_value("form#confirm-reset input[name=csrf]")
    assert Path(sess.worktree).is_dir()  # nothing removed before the confirmation
    with tab.page.expect_navigation():
        tab.page.click("#confirm-reset-button")
    done = tab.page.inner_text("#reset-done")
    assert not Path(sess.worktree).exists()
    audit = [e for e in fleet.service.store.list_audit() if e["actor"] == "admin-dash"]
    assert [(e["action"], e["key"]) for e in audit] == [("reset", f"fake:{sess.slug}:reset-me")]
    detail = audit[0]["detail"]
    assert detail["worktree"] is True and detail["archive_ref"] and detail["archive_ref"] in done


def forge_reset(fleet: Fleet, cookie: str, sess: Sess, csrf: str | None) -> httpx.Response:
    form = {**sess.params, "scope": "all"} | ({"csrf": csrf} if csrf is not None else {})
    headers = {"Cookie": f"baton_session={cookie}", "Origin": fleet.url}
    return httpx.post(f"{fleet.url}/session/reset", data=form, headers=headers, timeout=30)


def test_read_and_run_tokens_cannot_reset(fleet: Fleet, tabs: Tabs) -> None:
    sess = fleet.sessions["keep-me"]
    audited = len(fleet.service.store.list_audit())
    for scope in ("read", "run"):
        tab = fleet.signed_in(tabs, scope)
        tab.goto(sess.page)
        assert tab.page.locator("#session-facts").is_visible()
        assert tab.page.locator("a.reset").count() == 0
        csrf = tab.page.input_value("input[name=csrf] >> nth=0")  # the sign-out form's, on every page
        cookie = tab.cookie()
        assert csrf and cookie
        assert forge_reset(fleet, cookie, sess, csrf).status_code == 403
        assert forge_reset(fleet, cookie, sess, None).status_code == 403
    admin = fleet.signed_in(tabs, "admin")
    cookie = admin.cookie()
    assert cookie
    assert forge_reset(fleet, cookie, sess, None).status_code == 403  # an admin too needs the CSRF token
    assert forge_reset(fleet, cookie, sess, "forged").status_code == 403
    assert Path(sess.worktree).is_dir() and len(fleet.service.store.list_audit()) == audited


def test_a_waiting_question_is_shown_and_answered_from_the_session_page(
    fleet: Fleet, tabs: Tabs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fake agent asks through baton's MCP server; the page shows the question (escaped) and, to a
    run token, the answer form, whose POST queues the run that resumes the same conversation. While that
    run is on its way the page says so instead of offering the form, and a second answer is refused."""
    repo = make_repo(tmp_path / "asks")
    ask = '[[tool:ask_human {"question": "<b>Which</b> one?", "options": ["left", "right"]}]]'
    asked = run(RunRequest("fake", str(repo), "asks", f"choose {ask}"), fleet.settings)
    assert asked.run.outcome == Outcome.NEEDS_INPUT
    sess = Sess("fake", repo, asked.session.repo, "asks", asked.session.worktree, asked.run.id)
    reader = fleet.signed_in(tabs, "read")
    reader.goto(sess.page)
    assert reader.page.inner_text("#question-text") == "<b>Which</b> one?"  # text, not markup
    assert reader.page.locator("#question-options li").all_inner_texts() == ["left", "right"]
    assert reader.page.locator("#answer-form").count() == 0  # a read token may not answer
    tab = fleet.signed_in(tabs, "run")
    tab.goto(sess.page)
    csrf = tab.page.input_value("#answer-form input[name=csrf]")
    # the answer's run is held until the test has looked (at most a minute: a broken test ends instead
    # of hanging): its agent waits for `.gate` in its worktree
    gate = Path(sess.worktree) / ".gate"
    monkeypatch.setenv("FAKE_AGENT_RUN", HELD)
    tab.page.fill("#answer-text", "right, please")
    with tab.page.expect_navigation():
        tab.page.click("#answer-button")
    assert tab.path().startswith("/session?")
    # while the answer's run is queued or running: no form, the run named; a second answer is a 409
    assert tab.page.locator("#answer-form").count() == 0
    assert "An answer is on its way" in tab.page.inner_text("#answer-under-way")
    form = {"csrf": csrf, "agent": "fake", "repo": sess.slug, "thread": "asks", "answer": "left"}
    cookie = tab.cookie()
    assert cookie
    headers = {"Cookie": f"baton_session={cookie}", "Origin": fleet.url}
    again = httpx.post(f"{fleet.url}/session/answer", data=form, headers=headers, timeout=30)
    assert again.status_code == 409 and "waiting" in again.text, again.text
    gate.write_text("go\n")
    store = fleet.service.store
    wait_for(lambda: store.list_runs("fake", sess.slug, "asks", limit=1)[0].outcome == Outcome.SUCCEEDED)
    answered = store.list_runs("fake", sess.slug, "asks", limit=1)[0]
    assert answered.session_id_in == asked.run.session_id_out and "right, please" in answered.prompt
    tab.goto(sess.page)
    assert tab.page.locator("#needs-input").count() == 0


# -- every page, two screens, keyboard ------------------------------------------------------------------


def contract_pages(fleet: Fleet, tab: Tab) -> list[str]:
    """Every page of the contract, with this home's data (a run page from the runs table)."""
    tab.goto("/runs")
    run_id = tab.page.get_attribute("#runs-table tbody tr[data-run-id] >> nth=0", "data-run-id")
    issue1 = fleet.sessions["issue-1"]
    return [
        *NAV,
        "/sessions?sort=size&order=desc",
        "/sessions?agent=fake&sort=attempts&order=asc",
        issue1.page,
        f"/runs/{run_id}",
        "/runs?" + urlencode({"agent": "fake", "outcome": "succeeded"}),
        "/session/reset?" + urlencode({**issue1.params, "scope": "worktree"}),
    ]


def check_page(tab: Tab, path: str, phone: bool) -> None:
    assert tab.goto(path) == 200, path
    assert tab.path() == path
    assert tab.page.locator("main#main").is_visible(), path
    links = tab.page.eval_on_selector_all("nav#nav a", "els => els.map(e => e.getAttribute('href'))")
    assert set(NAV) <= set(links), (path, links)
    if phone:
        width = tab.page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
        assert width[0] <= width[1], f"{path} overflows the phone's screen: {width}"
    tab.assert_no_errors()


@pytest.mark.parametrize("screen", ["desktop", "phone"])
def test_every_page_loads_cleanly(fleet: Fleet, tabs: Tabs, screen: str) -> None:
    phone = screen == "phone"
    tab = tabs.open(fleet.url, PHONE) if phone else tabs.open(fleet.url)
    requests: list[str] = []
    tab.page.on("request", lambda request: requests.append(request.url))
    assert tab.goto("/login") == 200 and tab.page.is_visible("#login-form")
    tab.sign_in(fleet.service.token("admin", None if phone else "ops-admin"))
    for path in contract_pages(fleet, tab):
        check_page(tab, path, phone)
    assert tab.page.locator("#run-facts").count() == 0  # the last page is the reset confirmation
    foreign = [u for u in requests if not u.startswith(fleet.url + "/") and not u.startswith("data:")]
    assert not foreign, f"requests outside the service: {foreign}"
    if not phone:
        tab.goto("/")
        tab.screenshot("dashboard-overview")


def test_run_page_renders_events_readably(fleet: Fleet, tabs: Tabs) -> None:
    """The Claude Code run with a tool round trip: the call, its output and the final text as entries;
    the raw JSON only behind the closed ``details#raw``."""
    run_id = fleet.sessions["issue-3"].run_id
    tab = fleet.signed_in(tabs, "read", "ops-reader")
    tab.goto("/runs", {"agent": "claude"})
    listed = tab.page.eval_on_selector_all(
        "#runs-table tbody tr[data-run-id]", "rows => rows.map(r => r.dataset.runId)"
    )
    assert len(listed) >= 2 and run_id in listed
    tab.goto(f"/runs/{run_id}")
    assert run_id in tab.page.inner_text("main") and tab.page.is_visible("#run-facts")
    kinds = tab.page.eval_on_selector_all(
        "#events .entry", "els => els.map(e => e.className.replace('entry entry-', ''))"
    )
    assert kinds[0] == "info" and kinds[-1] == "done", kinds
    last_text = max(i for i, kind in enumerate(kinds) if kind == "text")
    assert kinds.index("tool") < kinds.index("output") < last_text, kinds
    tool, output = tab.page.locator("#events .entry-tool"), tab.page.locator("#events .entry-output")
    assert tool.count() == 1 and tool.is_visible() and output.is_visible()
    assert tool.inner_text().strip() == "▶ Read README.md"
    assert "# demo" in output.inner_text()  # what Read returned from the worktree's README.md
    texts = tab.page.locator("#events .entry-text").all_inner_texts()
    assert texts[-1].endswith(": received 4 messages")  # the mock's answer to the tool result
    events = tab.page.inner_text("#events")
    assert not any(raw in events for raw in ('"type"', "tool_use", "tool_result", "{")), events
    raw = tab.page.locator("details#raw")
    assert not raw.evaluate("d => d.open") and not tab.page.locator("details#raw pre").is_visible()
    assert '"type"' not in tab.page.inner_text("main")  # no JSON anywhere shown while raw is closed
    tab.screenshot("dashboard-run")
    tab.page.click("details#raw summary")
    shown = tab.page.inner_text("details#raw")
    assert '"type":"tool_use"' in shown and '"type":"tool_result"' in shown

    tab.goto("/runs", {"outcome": "failed"})
    rows = tab.page.locator("#runs-table tbody tr[data-run-id]")
    assert rows.count() == 2  # broken's and resume-fails'
    tab.goto(f"/runs/{rows.first.get_attribute('data-run-id')}")
    assert "fake failure" in tab.page.inner_text("#events .entry.entry-error")


def test_sessions_table_filters_and_links(fleet: Fleet, tabs: Tabs) -> None:
    tab = fleet.signed_in(tabs, "read")
    beta = fleet.sessions["issue-2"].slug
    tab.goto("/sessions", {"repo": beta})
    rows = tab.page.locator("table#sessions-table tbody tr")
    threads = {t for t, s in fleet.sessions.items() if s.slug == beta}
    assert rows.count() >= len(threads) - 1  # reset-me may be gone by now (its reset test)
    assert "page 1 of 1" in tab.page.inner_text("#page-info")
    with tab.page.expect_navigation():
        tab.page.locator("a.session-link", has_text="issue-4").first.click()
    assert same_url(tab.path(), fleet.sessions["issue-4"].page)
    assert tab.page.locator("#timeline tr[data-run-id]").count() >= 1


def focus_walk(tab: Tab, presses: int = 40) -> list[dict[str, Any]]:
    """Tab from the top of the page ``presses`` times; what got the focus each time, and whether it
    was inside the viewport with a size."""
    tab.page.evaluate("() => { document.activeElement?.blur(); window.scrollTo(0, 0) }")
    walk: list[dict[str, Any]] = []
    for _ in range(presses):
        tab.page.keyboard.press("Tab")
        walk.append(
            tab.page.evaluate(
                """() => { const e = document.activeElement; const r = e.getBoundingClientRect();
                return {id: e.id, href: e.getAttribute('href'), tag: e.tagName,
                        visible: r.width > 0 && r.height > 0 && r.bottom > 0 && r.right > 0
                                 && r.top < innerHeight && r.left < innerWidth
                                 && getComputedStyle(e).visibility !== 'hidden'} }"""
            )
        )
    return walk


def test_keyboard_reaches_sign_in_and_the_nav(fleet: Fleet, tabs: Tabs) -> None:
    tab = tabs.open(fleet.url)
    tab.goto("/login")
    walk = focus_walk(tab, 10)
    ids = [w["id"] for w in walk]
    assert "token" in ids and "sign-in" in ids, walk
    assert all(w["visible"] for w in walk if w["id"] in ("token", "sign-in")), walk
    tab.page.evaluate("() => document.activeElement.blur()")
    for _ in range(ids.index("token") + 1):
        tab.page.keyboard.press("Tab")
    tab.page.keyboard.type(fleet.service.token("read"))
    with tab.page.expect_navigation():
        tab.page.keyboard.press("Enter")
    assert tab.path() == "/"

    walk = focus_walk(tab)
    reached = [w for w in walk if w["tag"] == "A" and w["href"] in NAV]
    assert {w["href"] for w in reached} == set(NAV), walk
    assert all(w["visible"] for w in reached), reached


def test_signed_in_pages_have_no_console_errors_after_waiting(fleet: Fleet, tabs: Tabs) -> None:
    """The live parts (SSE, polling) stay quiet: a session page open for a few seconds logs no error."""
    tab = fleet.signed_in(tabs, "read")
    tab.goto(fleet.sessions["issue-3"].page)
    wait_for(lambda: tab.page.locator("#live-log").count() == 1, timeout=5)
    tab.page.wait_for_timeout(2_000)
    tab.assert_no_errors()
