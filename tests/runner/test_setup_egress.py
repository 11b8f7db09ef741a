"""The setup's own way out (baton.runner.wayout): with the agent's ``egress`` not ``open``, a
repository's setup reaches only ``setup_egress`` (here a local test server named ``allowed.test``) and
its remote's host, through baton's proxy: another host is refused with 403, an audit row and a line of
the setup's log; with the agent's ``egress`` open, so is the setup's (as before). Through ``baton.run``
with the fake agent; the setup is ``.baton/setup.sh``."""

from __future__ import annotations

from pathlib import Path

import pytest

from baton import Outcome, RunRequest, run
from baton.errors import BadInput
from baton.keys import Key, parse_repo
from baton.models import Access
from baton.runner.wayout import setup_policy
from baton.settings import load_settings
from baton.store import open_store
from baton.workspace import keyspace
from tests.conftest import FAST, git, make_repo
from tests.runner.test_setup import walled
from tests.sandbox import test_egress
from tests.sandbox.test_egress import BODY

web, named = test_egress.web, test_egress.named  # its fixtures: a local HTTP server, the proxy's names

SETUP = (
    "curl -sS --max-time 10 http://allowed.test:{port}/ > got.txt 2>&1; echo >> got.txt\n"
    "curl -s --max-time 10 -o /dev/null -w '%{{http_code}}' http://{other}:{port}/x >> got.txt\n"
)


def go(home: Path, repo: Path, egress: str, setup_egress: str, ports: str = "") -> tuple[list[str], str]:
    values = {"home": str(home), **FAST, "egress": egress, "setup_egress": setup_egress, "agent_ports": ports}
    settings = load_settings(overrides=values, environ={})
    request = RunRequest(agent="fake", repo=str(repo), thread="t", prompt="go", access=Access.FULL)
    result = run(request, settings=settings)
    assert result.run.outcome == Outcome.SUCCEEDED, result.run.error
    return (Path(result.session.worktree) / "got.txt").read_text().splitlines(), result.run.id


@walled
def test_the_setup_reaches_only_its_own_list(
    home: Path,
    tmp_path: Path,
    web: int,
    named: None,
) -> None:
    setup = SETUP.format(port=web, other="blocked.test")
    repo = make_repo(tmp_path / "r", {".baton/setup.sh": setup, ".gitignore": "got.txt\n"})
    lines, run_id = go(home, repo, "none", f"allowed.test:{web}")
    assert lines[0] == BODY, lines
    assert lines[1] == "403", lines
    store = open_store(load_settings(overrides={"home": str(home)}, environ={}).resolved_store_url)
    rows = [r for r in store.list_audit() if r["action"] == "egress.refused"]
    store.close()
    assert [(r["detail"]["host"], r["detail"]["run_id"]) for r in rows] == [("blocked.test", run_id)], rows
    log = (home / "logs" / f"{run_id}-setup.jsonl").read_text()
    assert '"baton.egress_refused"' in log and "blocked.test" in log


@walled
def test_with_egress_open_the_setup_reaches_anything_as_before(
    home: Path,
    tmp_path: Path,
    web: int,
    named: None,
) -> None:
    setup = SETUP.format(port=web, other="127.0.0.1").replace("allowed.test", "127.0.0.1")
    repo = make_repo(tmp_path / "r", {".baton/setup.sh": setup, ".gitignore": "got.txt\n"})
    lines, _ = go(home, repo, "open", "none", ports=str(web))
    assert lines == [BODY, "200"], lines  # no proxy: straight to the host, on the walls' ports


def test_the_setup_list_adds_the_remote_and_never_widens_an_open_agent(home: Path) -> None:
    class Ctx:  # what setup_policy reads of a run's context
        def __init__(self, egress: str, url: str) -> None:
            self.settings = load_settings(overrides={"home": str(home), "egress": egress}, environ={})
            self.request = RunRequest(agent="fake", repo=url, thread="t", prompt="p")
            self.key = type("K", (), {"repo": type("R", (), {"url": url})()})()

    policy = setup_policy(Ctx("none", "https://git.example.com:8443/acme/api.git"), True)  # type: ignore[arg-type]
    assert policy.refusal("git.example.com", 8443, "CONNECT") is None
    assert policy.refusal("pypi.org", 443, "CONNECT") is None  # the default: registries
    assert policy.refusal("attacker.example", 443, "CONNECT") is not None
    assert setup_policy(Ctx("open", "https://x.example/r.git"), True).open  # type: ignore[arg-type]
    # not the default branch's: the agent's own list, never wider
    untrusted = setup_policy(Ctx("none", "https://git.example.com:8443/acme/api.git"), False)  # type: ignore[arg-type]
    assert untrusted.refusal("pypi.org", 443, "CONNECT") is not None
    assert untrusted.refusal("git.example.com", 8443, "CONNECT") is not None
    with pytest.raises(BadInput, match="setup_egress"):
        load_settings(overrides={"home": str(home), "setup_egress": "open, pypi.org"}, environ={})


PLANT = (
    "mkdir -p .baton && printf '%s\\n' "
    "'curl -sS --max-time 10 http://allowed.test:{port}/ > got.txt 2>&1; echo >> got.txt' "
    "'echo \"$HOME\" > home.txt; cat {secret} > leak.txt 2>&1' "
    "'echo changed >> README.md; git add README.md; git commit -qm setup-commit > commit.txt 2>&1' "
    "'git checkout -q --detach 2>> commit.txt' > .baton/setup.sh && git add .baton/setup.sh && "
    "git commit -qm plant"
)


@walled
@pytest.mark.parametrize("base", ["none", "own"])
def test_a_setup_the_agent_planted_goes_no_wider_than_the_agent_in_a_home_of_its_own(
    home: Path, tmp_path: Path, web: int, named: None, monkeypatch: pytest.MonkeyPatch, base: str
) -> None:
    """The agent commits a setup on its branch; the next turn runs it, under the agent's egress
    (``none``), never ``setup_egress`` (which lists the host it calls); in a home of its own (the
    agent's home, with a credential in it, out of its reach); its commit and its change of a tracked
    file undone, its detached HEAD put back. ``base``: the default branch has no setup (the planted one
    is the key's first: its commit's shared preparation, in a tree of its own), or one of its own (the
    planted one runs in the key's worktree, and the run's note says what was undone)."""
    files = {"README.md": "# r\n", ".gitignore": "*.txt\n"}
    if base == "own":
        files[".baton/setup.sh"] = "echo base > base.txt\n"
    repo = make_repo(tmp_path / "r", files)
    values = {"home": str(home), **FAST, "egress": "none", "setup_egress": f"allowed.test:{web}"}
    settings = load_settings(overrides={**values, "agent_ports": str(web)}, environ={})
    secret = keyspace.key_home(settings, Key("fake", parse_repo(str(repo)), "t")) / ".credentials.json"
    monkeypatch.setenv("FAKE_AGENT_RUN", PLANT.format(port=web, secret=secret))
    request = RunRequest(agent="fake", repo=str(repo), thread="t", prompt="go", access=Access.FULL)
    first = run(request, settings=settings)
    assert first.run.outcome == Outcome.SUCCEEDED, first.run.error
    secret.write_text('{"token": "sk-agent-secret"}')
    worktree = Path(first.session.worktree)
    head = git(worktree, "rev-parse", "HEAD")
    monkeypatch.delenv("FAKE_AGENT_RUN")
    second = run(RunRequest(agent="fake", repo=str(repo), thread="t", prompt="again"), settings=settings)
    assert second.run.outcome == Outcome.SUCCEEDED, second.run.error
    assert (worktree / "got.txt").read_text().strip() != BODY  # refused: not on the agent's list
    said = (worktree / "home.txt").read_text().strip()
    assert said and Path(said) != keyspace.key_home(settings, Key("fake", parse_repo(str(repo)), "t")), said
    assert "sk-agent-secret" not in (worktree / "leak.txt").read_text()
    assert git(worktree, "rev-parse", "HEAD") == head  # its commit did not land
    assert git(worktree, "symbolic-ref", "HEAD") == "refs/heads/baton/fake/t"  # HEAD put back
    assert (worktree / "README.md").read_text() == "# r\n"  # its change of a tracked file undone
    assert git(worktree, "status", "--porcelain", "--untracked-files=no") == ""
    if base == "own":
        note = second.run.note or ""
        assert "undone" in note and "README.md" in note and "its move of HEAD" in note, note
