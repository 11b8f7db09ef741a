"""``baton forge test|bind|ls|show|reconcile|unbind`` against the fake GitHub, with the fake agent:
the commands a person runs, their tables, JSON and exit codes. ``reconcile`` (it runs turns) runs as
its own process; the commands that only ask the forge and the store run through ``baton``'s ``main``
in this process (``cli_here``)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from baton.forge.turn.threads import STATUS_HEAD
from baton.testing.fake import register_fake
from baton.testing.fake_forge import FakeForge
from baton.testing.fake_forge_state import IssueComment
from tests.forge_fixtures import REPO, SECRET, configure, fake_fixture, forge_kind_fixture  # noqa: F401

Cli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def env(fake: FakeForge, home: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    register_fake()  # exports BATON_AGENTS_EXTRA for the processes started from here
    from baton.settings import load_settings

    configure(load_settings(overrides={"home": str(home)}, environ={}), fake, "fake")
    return {"BATON_GIT_TOKEN": fake.token("baton-bot"), "FAKE_AGENT_WRITE": "notes.md"}


def status_comments(fake: FakeForge, issue: int) -> list[IssueComment]:
    """baton's status comments on ``issue`` (the agent's answers beside them left out)."""
    return [c for c in fake.comments(REPO, issue, login="baton-bot") if c.body.startswith(STATUS_HEAD)]


def test_forge_test_checks_the_token_the_api_and_batons_access(
    cli_here: Cli, env: dict[str, str], fake: FakeForge
) -> None:
    done = cli_here("forge", "test", env={**env, "BATON_WEBHOOK_SECRET": SECRET})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok   repo github:acme/api: default branch main; baton-bot has write access" in done.stdout
    fake.set_permission(REPO, "baton-bot", "read")
    done = cli_here("forge", "test", "--json", env={**env, "BATON_GIT_TOKEN": ""})
    assert done.returncode == 1
    checks = {c["what"]: c for c in json.loads(done.stdout)}
    assert not checks["forge github"]["ok"] and "BATON_GIT_TOKEN" in checks["forge github"]["detail"]
    assert not checks["webhook secret"]["ok"]


def test_bind_show_reconcile_ls_and_unbind(
    cli: Cli, cli_here: Cli, env: dict[str, str], fake: FakeForge
) -> None:
    issue = fake.open_issue(REPO, "alice", "Add notes", "Please.")
    done = cli_here("forge", "bind", f"github:{REPO}#{issue}", env=env)
    assert done.returncode == 0, done.stderr
    assert f"github:{REPO}#{issue} is bound to fake" in done.stdout and f"issue-{issue}" in done.stdout
    # a comment no webhook delivered: the reconcile finds it, runs the turn and publishes it
    fake.comment(REPO, issue, "alice", "write the notes")
    done = cli("forge", "reconcile", env=env, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 accepted" in done.stdout
    assert "turn 1" in fake.repo(REPO).git("show", f"baton/fake/issue-{issue}:notes.md")
    shown = json.loads(cli_here("forge", "show", f"{REPO}#{issue}", "--json", env=env).stdout)
    assert shown["binding"]["pr"] is not None and [e["status"] for e in shown["events"]] == ["dispatched"]
    text = cli_here("forge", "show", f"github:{REPO}#{issue}", env=env).stdout
    assert "turns today: 1 of 20" in text and "comment:" in text
    table = cli_here("forge", "ls", env=env).stdout
    assert f"github:{REPO}#{issue}" in table and "active" in table
    assert cli_here("forge", "unbind", f"github:{REPO}#{issue}", env=env).returncode == 0
    missing = cli_here("forge", "show", f"github:{REPO}#{issue}", env=env)
    assert missing.returncode != 0 and "not bound" in missing.stderr


@pytest.mark.parametrize("bad", ["acme/api", "github:acme#1", "github:acme/api#x", "-x"])
def test_a_malformed_conversation_is_refused_by_name(cli_here: Cli, env: dict[str, str], bad: str) -> None:
    done = cli_here("forge", "show", "--", bad, env=env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "is not a conversation" in done.stderr


def test_without_forge_tables_the_commands_say_what_to_add(cli_here: Cli) -> None:
    done = cli_here("forge", "ls")
    assert done.returncode == 2 and "no forge is configured" in done.stderr


def test_forge_test_tries_the_clone_and_the_push_as_a_turn_does(
    cli_here: Cli, env: dict[str, str], fake: FakeForge, home: Path
) -> None:
    done = cli_here("forge", "test", env={**env, "BATON_WEBHOOK_SECRET": SECRET})
    assert done.returncode == 0, done.stdout + done.stderr
    assert (
        f"ok   repo github:{REPO} clone: {fake.clone_url(REPO)} can be cloned with BATON_GIT_TOKEN"
        in done.stdout
    )
    assert f"ok   repo github:{REPO} push: baton-bot can push to {fake.clone_url(REPO)}" in done.stdout
    assert "baton/forge-test-dry-run" not in fake.branches(REPO)  # a dry run: nothing written
    # the API answers, but the clone credential is wrong: a turn could not clone, and the test says so
    bad = {**env, "BATON_WEBHOOK_SECRET": SECRET, "BATON_GITHUB_TOKEN": env["BATON_GIT_TOKEN"]}
    bad["BATON_GIT_TOKEN"] = "not-a-token"
    config = home / "config.toml"
    config.write_text(config.read_text().replace('"BATON_GIT_TOKEN"', '"BATON_GITHUB_TOKEN"'))
    done = cli_here("forge", "test", "--json", env=bad)
    assert done.returncode == 1, done.stdout + done.stderr
    checks = {c["what"]: c for c in json.loads(done.stdout)}
    assert checks[f"repo github:{REPO}"]["ok"] and checks[f"repo github:{REPO} push"]["ok"]
    clone = checks[f"repo github:{REPO} clone"]
    assert not clone["ok"] and "git cannot read" in clone["detail"] and "not-a-token" not in done.stdout


def test_refused_check_runs_degrade_to_commit_statuses(
    cli: Cli, cli_here: Cli, env: dict[str, str], fake: FakeForge
) -> None:
    fake.refuse_check_runs(REPO)
    done = cli_here("forge", "test", env={**env, "BATON_WEBHOOK_SECRET": SECRET})
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"warn repo github:{REPO} checks: check runs cannot be read" in done.stdout
    issue = fake.open_issue(REPO, "alice", "Add notes", "Please.")
    assert cli_here("forge", "bind", f"github:{REPO}#{issue}", env=env).returncode == 0
    fake.comment(REPO, issue, "alice", "write the notes")
    done = cli("forge", "reconcile", env=env, timeout=180)
    assert done.returncode == 0 and "1 accepted" in done.stdout, done.stdout + done.stderr
    [pr] = fake.pulls(REPO)
    head = fake.branches(REPO)[f"baton/fake/issue-{issue}"]
    fake.set_status(REPO, head, "ci/test", "failure", "3 tests failed")
    # the check runs are refused (403), the failing status is read all the same: a ci_failure turn
    done = cli("forge", "reconcile", "--json", env=env, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["errors"] == [] and report["outcomes"]["accepted"] == 1, report
    shown = json.loads(cli_here("forge", "show", f"{REPO}#{issue}", "--json", env=env).stdout)
    kinds = [(e["kind"], e["status"]) for e in shown["events"]]
    assert ("ci_failure", "dispatched") in kinds
    notes = [e for e in shown["events"] if e["identity"] == "note:check-runs-refused"]
    assert len(notes) == 1 and "commit statuses only" in notes[0]["reason"] and "403" in notes[0]["reason"]
    assert shown["binding"]["seen_at"] > 0  # the pass was recorded
    assert pr.number == shown["binding"]["pr"]


def test_bind_says_in_one_line_what_is_wrong(cli_here: Cli, env: dict[str, str], fake: FakeForge) -> None:
    missing = cli_here("forge", "bind", f"github:{REPO}#999", env=env)
    assert missing.returncode == 2, missing.stdout + missing.stderr
    assert "Traceback" not in missing.stderr and len(missing.stderr.strip().splitlines()) == 1
    assert f"github:{REPO}#999: the forge has no issue or pull request #999" in missing.stderr
    as_json = cli_here("forge", "bind", f"github:{REPO}#999", "--json", env=env)
    error = json.loads(as_json.stdout)["error"]
    assert as_json.returncode == 2 and error["type"] == "NotFound" and error["exit_code"] == 2
    issue = fake.open_issue(REPO, "alice", "Add notes", "Please.")
    refused = cli_here(
        "forge", "bind", f"github:{REPO}#{issue}", env={**env, "BATON_GIT_TOKEN": "wrong-token"}
    )
    assert refused.returncode == 4, refused.stdout + refused.stderr
    assert "Traceback" not in refused.stderr and "BATON_GIT_TOKEN" in refused.stderr
    assert "wrong-token" not in refused.stderr
    unknown = cli_here("forge", "bind", f"github:{REPO}#{issue}", "--agent", "nope", env=env)
    assert unknown.returncode == 2 and "unknown agent 'nope'" in unknown.stderr, unknown.stderr
    assert cli_here("forge", "ls", "--json", env=env).stdout.strip() == "[]"  # nothing was bound
    assert cli_here("forge", "bind", f"github:{REPO}#{issue}", env=env).returncode == 0
    again = cli_here("forge", "bind", f"github:{REPO}#{issue}", env=env)  # as it is bound: fine
    assert again.returncode == 0 and "is bound to fake" in again.stdout
    other = cli_here("forge", "bind", f"github:{REPO}#{issue}", "--agent", "codex", env=env)
    assert other.returncode == 2 and "is already bound, to agent 'fake'" in other.stderr, other.stderr
    shown = json.loads(cli_here("forge", "show", f"{REPO}#{issue}", "--json", env=env).stdout)
    assert shown["binding"]["agent"] == "fake"


def test_the_documented_example_configuration_works_as_pasted(
    cli_here: Cli, env: dict[str, str], fake: FakeForge, home: Path
) -> None:
    """docs/forge.md's example, only its github.com addresses swapped for the fake's."""
    docs = (Path(__file__).parents[2] / "docs" / "forge.md").read_text()
    section = docs[docs.index("## Configuration") :]
    example = section[section.index("```toml\n") + 8 : section.index("```\n", section.index("```toml\n"))]
    for real, local in (
        ("https://api.github.com", fake.api_url),
        ("https://github.com/acme/api.git", fake.clone_url(REPO)),
        ("https://github.com", fake.web_url),
    ):
        assert real in example
        example = example.replace(real, local)
    (home / "config.toml").write_text(example)
    token = fake.token("baton-bot")
    variables = {"BATON_GITHUB_TOKEN": token, "BATON_GIT_TOKEN": token, "BATON_WEBHOOK_SECRET": SECRET}
    done = cli_here("forge", "test", "--json", env={**env, **variables})
    checks = json.loads(done.stdout)
    assert done.returncode == 0, checks
    whats = {c["what"] for c in checks}
    assert {f"repo github:{REPO} clone", f"repo github:{REPO} push"} <= whats
    # the variables the text names are the ones needed: without the clone token, the clone fails
    done = cli_here("forge", "test", "--json", env={**env, **variables, "BATON_GIT_TOKEN": ""})
    failed = [c["what"] for c in json.loads(done.stdout) if not c["ok"]]
    assert done.returncode == 1 and failed == [f"repo github:{REPO} clone"], failed


def test_what_a_reconcile_pass_costs(cli: Cli, cli_here: Cli, env: dict[str, str], fake: FakeForge) -> None:
    """The numbers docs/forge.md gives: a pass looks back 120 s before the last one, so a thread baton
    just worked on is read again (its new comments, its reviews); a quiet one costs the issue list and
    one conditional check request per bound PR."""
    issue = fake.open_issue(REPO, "alice", "Add notes", "Please.")
    assert cli_here("forge", "bind", f"github:{REPO}#{issue}", env=env).returncode == 0
    fake.comment(REPO, issue, "alice", "write the notes")
    assert cli("forge", "reconcile", env=env, timeout=180).returncode == 0
    [pr] = fake.pulls(REPO)
    fake.review(REPO, pr.number, "alice", "fine", [("notes.md", 1, "ok")])
    assert cli("forge", "reconcile", env=env, timeout=180).returncode == 0  # the review's turn

    def cost() -> list[str]:
        before = len(fake.requests)
        done = cli("forge", "reconcile", "--json", env=env, timeout=180)
        assert done.returncode == 0 and json.loads(done.stdout)["errors"] == [], done.stdout
        return [f"{r.method} {r.path}" for r in fake.requests[before:]]

    recent = cost()  # within 120 s of the turns: the issue and its PR are read again
    # the list; the PR read whole (its head, its mergeability: GitHub's list has neither); the issue's
    # and the PR's comments; the PR's reviews and the inline comments of the two in the window (the
    # person's, and baton's reply in its thread, which GitHub files as a review of its own); the PR's
    # checks — what it finds again is known: no permission asked, nothing re-read
    assert len(recent) == 9, recent
    assert not any("permission" in r for r in recent) and sum("/reviews" in r for r in recent) == 3
    for thread in fake.repo(REPO).issues.values():  # 10 minutes later: nothing moved since
        thread.updated_at -= 600
    quiet = cost()
    assert len(quiet) == 2 and quiet[1].endswith("/check-runs"), quiet


def test_forge_test_checks_the_webhook_where_the_forge_tells(
    cli_here: Cli, env: dict[str, str], fake: FakeForge
) -> None:
    secret = {**env, "BATON_WEBHOOK_SECRET": SECRET}
    done = cli_here("forge", "test", env=secret)  # baton-bot has write: GitHub tells hooks to admins only
    said = f"warn repo github:{REPO} webhooks: the forge shows a repository's webhooks to its admins only"
    assert done.returncode == 0 and f"{said} (403 for this token)" in done.stdout
    fake.set_permission(REPO, "baton-bot", "admin")
    try:
        fake.deliver_to = "https://baton.example.com/webhooks/github"
        done = cli_here("forge", "test", env=secret)
        assert done.returncode == 0, done.stdout
        assert (
            f"ok   repo github:{REPO} webhooks: a webhook delivers every event the loop needs" in done.stdout
        )
        fake.hook_events.remove("push")  # conflicts would go unnoticed
        done = cli_here("forge", "test", env=secret)
        assert done.returncode == 1 and "lacks the events push" in done.stdout, done.stdout
        fake.deliver_to = "https://elsewhere.example.com/hooks"
        done = cli_here("forge", "test", env=secret)
        assert done.returncode == 1 and "no webhook delivers to …/webhooks/github" in done.stdout
    finally:
        fake.deliver_to = None


def test_unbind_and_bind_again_keep_one_status_comment(
    cli: Cli, cli_here: Cli, env: dict[str, str], fake: FakeForge
) -> None:
    issue = fake.open_issue(REPO, "alice", "Add notes", "Please.")
    assert cli_here("forge", "bind", f"github:{REPO}#{issue}", env=env).returncode == 0
    fake.comment(REPO, issue, "alice", "write the notes")
    assert cli("forge", "reconcile", env=env, timeout=180).returncode == 0
    [status] = status_comments(fake, issue)
    first = status.body
    assert cli_here("forge", "unbind", f"github:{REPO}#{issue}", env=env).returncode == 0
    assert cli_here("forge", "bind", f"github:{REPO}#{issue}", env=env).returncode == 0
    shown = json.loads(cli_here("forge", "show", f"{REPO}#{issue}", "--json", env=env).stdout)
    assert shown["binding"]["status_comment"] == status.id  # the earlier binding's comment, adopted
    fake.comment(REPO, issue, "alice", "and a second line")
    done = cli("forge", "reconcile", env=env, timeout=180)
    assert done.returncode == 0 and "1 accepted" in done.stdout, done.stdout + done.stderr
    [edited] = status_comments(fake, issue)
    assert edited.id == status.id and edited.body != first


def test_the_reconcile_finds_a_conflict_no_webhook_told_and_pushes_nothing_unresolved(
    cli: Cli, cli_here: Cli, env: dict[str, str], fake: FakeForge
) -> None:
    issue = fake.open_issue(REPO, "alice", "Add notes", "Please.")
    assert cli_here("forge", "bind", f"github:{REPO}#{issue}", env=env).returncode == 0
    fake.comment(REPO, issue, "alice", "write the notes")
    assert cli("forge", "reconcile", env=env, timeout=180).returncode == 0
    [pr] = fake.pulls(REPO)
    branch = f"baton/fake/issue-{issue}"
    fake.commit(REPO, "main", {"notes.md": "the base's own notes\n"}, "notes on main")
    fake.set_mergeable(REPO, pr.number, False)
    head = fake.commit(REPO, branch, {"other.txt": "x\n"}, "a person's push", login="alice")
    done = cli("forge", "reconcile", "--json", env=env, timeout=180)  # no webhook: the reconcile finds it
    assert done.returncode == 0 and json.loads(done.stdout)["outcomes"].get("accepted") == 1, done.stdout
    shown = json.loads(cli_here("forge", "show", f"{REPO}#{issue}", "--json", env=env).stdout)
    assert [e["kind"] for e in shown["events"] if e["status"] == "dispatched"][-1] == "conflict"
    assert shown["binding"]["head_sha"] == head
    assert fake.branches(REPO)[branch] == head  # the fake agent left the markers: nothing pushed
    [status] = status_comments(fake, issue)
    assert "the merge conflict is still open" in status.body and "`notes.md`" in status.body
