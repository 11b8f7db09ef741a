"""Benchmarks 22a-22b, the ``app`` group: a token renewal never delays a turn. baton as a GitHub App
(:mod:`baton.forge.kinds.github.app`) renews each installation token ahead of its expiry, in the background;
a turn reads the token at hand and never waits for a mint while that token is merely close to expiry.

The fake GitHub runs as its own process, started as a person would start it
(``python -m baton.testing.fake_forge --app-key FILE --app-token-lifetime 3``): an App installed on
``acme/api`` whose installation tokens live **three seconds**, and a user ``baton-bot`` with a fixed
token (the baseline: a personal or fine-grained token). Each repetition is one turn's forge work, timed
from its start to its end, the same for both: the issue read (``thread``: the issue, as the dispatcher
reads it), the clone credentials for the repository's URL and a ``git ls-remote`` with them through
``GIT_ASKPASS`` (a turn's fetch: the App's installation token from
:mod:`baton.workspace.credentials`, or ``BATON_GIT_TOKEN``), and the status comment's edit (the
publish). The two variants are interleaved turn by turn, a pause between turns, so the run spans many
lifetimes of the App's tokens: they expire mid-run, over and over.

- **22a** a turn's forge work as the App ÷ with the fixed token: medians (goal: at most 1.1 times).
- **22b** turns that waited for a mint (no good token at hand), after the very first turn's, ÷ turns
  (goal 0: a renewal never delays a turn). The notes give the tokens minted during the run, each
  variant's slowest turn and the cost of one mint (what a turn would wait without the renewal ahead).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from common import TIMES, Group, Plan, Repos, Row, Suite, interleave, log, median, ms, rmtree

from baton.forge.data.appkey import AppKey
from baton.forge.data.config import ForgeConfig, ForgeSettings, RepoConfig
from baton.forge.data.model import ForgeKind
from baton.forge.kinds.github import app as github_app
from baton.forge.kinds.github.client import GitHubClient
from baton.forge.writes import gitauth
from baton.settings import load_settings
from baton.workspace.gitcmd import run_git
from baton.workspace.workdirs import Workdirs

REPO = "acme/api"
PAT = "ghp_bench_fixed_token_0123456789"
LIFETIME = 3  # seconds an installation token lives in the fake
TURNS = Plan(full=150, quick=40)
PAUSE = 0.05  # seconds between turns: the run spans many token lifetimes
GOAL = 1.1


class CountRow(Row):
    """Turns that waited for a mint, against the turns timed."""

    def cells(self) -> list[str]:
        return [
            f"{self.name} (n={self.n})",
            self.agent or "—",
            f"{self.candidate:.0f} turns waited",
            f"{self.baseline:.0f} turns",
            f"{self.ratio:.3f} of the turns",
            f"≤ {self.goal:g}",
            "✅ pass" if self.met else "❌ miss",
        ]


@contextmanager
def fake_github(root: Path) -> Iterator[dict[str, Any]]:
    """The fake GitHub's CLI in a process of its own: its URLs, the App's id, the users' tokens."""
    key = root / "app.pem"
    command = [
        sys.executable,
        "-m",
        "baton.testing.fake_forge",
        *("--repo", REPO, "--user", "alice:write", "--user", f"baton-bot:write:{PAT}"),
        *("--app-key", str(key), "--app-token-lifetime", str(LIFETIME), "--root", str(root / "forge")),
    ]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        found: dict[str, Any] = {"key": key, "tokens": {}}
        assert server.stdout is not None
        for line in server.stdout:
            kind, _, rest = line.strip().partition(": ")
            if kind == "app":
                found["app_id"] = int(rest.split()[0])
            elif kind in ("api", "clone"):
                found[kind] = rest
            elif kind == "token":
                login, _, token = rest.partition(" ")
                found["tokens"][login] = token
                if login == "baton-bot":
                    break
        yield found
    finally:
        server.terminate()
        server.wait(30)
        if server.stdout is not None:
            server.stdout.close()


def turn(
    client: GitHubClient, workdirs: Workdirs, url: str, env: dict[str, str], issue: int, comment: int
) -> float:
    """One turn's forge work (see the module doc); its seconds."""
    start = time.perf_counter()
    client.thread(REPO, issue)
    clone_env = {**workdirs.process_env("claude", url), **env}
    heads = run_git(["ls-remote", "--heads", "--", url], env=clone_env)
    client.edit_comment(REPO, comment, f"status at {time.time():.3f}")
    elapsed = time.perf_counter() - start
    if "refs/heads/main" not in heads:
        raise RuntimeError(f"ls-remote did not list main: {heads[:200]!r}")
    time.sleep(PAUSE)
    return elapsed


def bench_app(root: Path, turns: int) -> tuple[list[Row], list[str]]:
    root.mkdir(parents=True, exist_ok=True)
    settings = load_settings(overrides={"home": str(root / "home")}, environ={})
    workdirs = Workdirs(settings)
    with fake_github(root) as fake:
        api, url = fake["api"], fake["clone"]
        web = api.removesuffix("/api/v3")
        with httpx.Client(
            base_url=api, headers={"Authorization": f"Bearer {fake['tokens']['alice']}"}
        ) as alice:
            issue = int(
                alice.post(f"/repos/{REPO}/issues", json={"title": "t", "body": "b"}).json()["number"]
            )
        forge = ForgeConfig(
            "github", ForgeKind.GITHUB, api, web, "", "", "", AppKey(fake["app_id"], key_file=fake["key"])
        )
        repo = RepoConfig(REPO, "github", clone_url=url)
        gitauth.provide(ForgeSettings({"github": forge}, {("github", REPO): repo}))
        app_client, pat_client = github_app.app_client(forge), GitHubClient(api, PAT)
        app = github_app.app_of(forge)
        try:
            app_comment = app_client.post_comment(REPO, issue, "the App's status")
            pat_comment = pat_client.post_comment(REPO, issue, "the token's status")
            before = (app.tokens.mints, app.tokens.waits)
            samples = interleave(
                {
                    "app": lambda _r: turn(app_client, workdirs, url, {}, issue, app_comment),
                    "pat": lambda _r: turn(
                        pat_client, workdirs, url, {"BATON_GIT_TOKEN": PAT}, issue, pat_comment
                    ),
                },
                turns,
            )
            minted, waited = app.tokens.mints - before[0], app.tokens.waits - before[1]
            one_mint = median([_timed_mint(app) for _ in range(5)])
        finally:
            app_client.close()
            pat_client.close()
            github_app.forget_apps()
            gitauth.provide(ForgeSettings())
    span = sum(samples["app"]) + sum(samples["pat"]) + 2 * turns * PAUSE
    rows: list[Row] = [
        Row(
            name=f"22a a turn's forge work as a GitHub App, tokens living {LIFETIME} s ÷ with a fixed token",
            kind="ratio",
            candidate=median(samples["app"]),
            baseline=median(samples["pat"]),
            goal=GOAL,
            n=turns,
            samples={"candidate": samples["app"], "baseline": samples["pat"]},
        ),
        CountRow(
            name="22b turns that waited for a token's mint ÷ turns",
            kind="ratio",
            candidate=float(waited),
            baseline=float(turns),
            goal=0.0,
            n=turns,
            extra={"minted": minted, "mint_seconds": one_mint},
        ),
    ]
    notes = [
        f"22a-22b (the App's tokens living {LIFETIME} s): over the {span:.0f} s of the run the App's "
        f"{minted} installation tokens were each minted ahead of the last one's expiry "
        f"({waited} turns waited for one); the slowest turn: {ms(max(samples['app']))} as the App, "
        f"{ms(max(samples['pat']))} with the fixed token; one mint (a JWT signed, POST "
        f".../access_tokens) takes {ms(one_mint)}: what a turn would wait at each expiry if the token "
        "were renewed only once refused or expired."
    ]
    return rows, notes


def _timed_mint(app: github_app.GitHubApp) -> float:
    installation = app.installation(REPO)
    start = time.perf_counter()
    app._mint(installation)  # the cost of a mint, apart from the cache
    return time.perf_counter() - start


def run_group(suite: Suite, repos: Repos) -> None:
    def work() -> None:
        rows, notes = bench_app(suite.scratch / "b22", suite.pick(TURNS))
        suite.rows.extend(rows)
        suite.notes.extend(notes)

    suite.step("22 a GitHub App's token renewal vs a fixed token", work)


GROUP = Group(
    "app",
    f"22a-22b: a turn's forge work as a GitHub App whose tokens live 3 s ÷ with a fixed token "
    f"(≤ 1.1{TIMES}); turns that waited for a mint (0)",
    run_group,
)


if __name__ == "__main__":
    import _venv  # noqa: F401  (re-runs with .venv's interpreter when baton is missing)

    scratch = Path(tempfile.mkdtemp(prefix="baton-bench-app-"))
    try:
        found, said = bench_app(scratch, int(sys.argv[1]) if len(sys.argv) > 1 else TURNS.full)
        for row in found:
            log(" | ".join(row.cells()))
        for note in said:
            log(note)
    finally:
        rmtree(scratch)
