"""What an operator types for a conversation (:mod:`baton.forge.turn.refs`), through ``baton forge
show|bind|unbind`` on the fake GitLab and the fake GitHub: ``#N`` is always the issue, ``!N`` always the
merge request — an issue that is not bound says so and exits non-zero, never falling through to the
thread of merge request ``!N`` — and on a forge of one sequence ``#N`` is the issue or PR of that number
while ``!N`` is refused."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from baton.errors import BadInput
from baton.forge.data.tables import forge_store
from baton.forge.kinds.configured import load_forges
from baton.forge.turn.refs import Ref, parse_ref
from baton.settings import Settings
from baton.store import Store
from baton.testing.fake import register_fake
from baton.testing.fake_forge import FakeForge
from baton.testing.fake_gitlab import FakeGitLab
from tests.forge_fixtures import configure as configure_github
from tests.forge_fixtures import fake_fixture, forge_kind_fixture  # noqa: F401 (fixtures)
from tests.gitlab_fixtures import REPO, gitlab_fixture  # noqa: F401 (fixtures)
from tests.gitlab_fixtures import configure as configure_gitlab

Cli = Callable[..., subprocess.CompletedProcess[str]]


def _bound_with_its_mr(store: Store, forge: str, issue: int, pr: int) -> None:
    """The issue's thread has opened its merge request (as a turn's publish records it)."""
    binding = forge_store(store).get_binding(forge, REPO, issue, False)
    assert binding is not None
    binding.pr = pr
    forge_store(store).save_binding(binding)


def test_hash_n_is_the_issue_and_never_the_thread_of_merge_request_n_on_gitlab(
    cli_here: Cli, gitlab: FakeGitLab, settings: Settings, store: Store
) -> None:
    register_fake()
    configure_gitlab(settings, gitlab, "fake")
    env = {"BATON_GIT_TOKEN": gitlab.token("baton")}
    issue = gitlab.open_issue(REPO, "An issue", "Fix it.", author="alice")
    done = cli_here("forge", "bind", f"gitlab:{REPO}#{issue.iid}", env=env)
    assert done.returncode == 0, done.stderr
    mr = issue.iid + 16  # its merge request !17 (issue #17 never bound)
    _bound_with_its_mr(store, "gitlab", issue.iid, mr)
    # #17 is issue 17: not bound, said so, non-zero — and issue #1's thread (whose MR is !17) untouched
    for command in ("show", "unbind"):
        done = cli_here("forge", command, f"gitlab:{REPO}#{mr}", env=env)
        assert done.returncode != 0 and "not bound" in done.stderr, (command, done.stdout, done.stderr)
        assert "unbound" not in done.stdout
    kept = forge_store(store).get_binding("gitlab", REPO, issue.iid, False)
    assert kept is not None and kept.thread == f"issue-{issue.iid}"
    # !17 is the merge request: the thread of the issue whose MR it is
    shown = cli_here("forge", "show", f"gitlab:{REPO}!{mr}", "--json", env=env)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["binding"]["conversation"] == f"gitlab:{REPO}#{issue.iid}"
    done = cli_here("forge", "unbind", f"gitlab:{REPO}!{mr}", env=env)
    assert done.returncode == 0, done.stderr
    assert f"gitlab:{REPO}#{issue.iid} unbound (named gitlab:{REPO}!{mr})" in done.stdout
    assert forge_store(store).get_binding("gitlab", REPO, issue.iid, False) is None


def test_on_one_sequence_hash_n_is_the_issue_or_pr_and_bang_n_is_refused(
    cli_here: Cli, fake: FakeForge, settings: Settings, store: Store
) -> None:
    register_fake()
    configure_github(settings, fake, "fake")
    env = {"BATON_GIT_TOKEN": fake.token("baton-bot")}
    issue = fake.open_issue(REPO, "alice", "Add notes", "Please.")
    assert cli_here("forge", "bind", f"github:{REPO}#{issue}", env=env).returncode == 0
    _bound_with_its_mr(store, "github", issue, issue + 1)
    shown = cli_here("forge", "show", f"github:{REPO}#{issue + 1}", "--json", env=env)  # its PR's number
    assert shown.returncode == 0 and json.loads(shown.stdout)["binding"]["thread"] == f"issue-{issue}"
    refused = cli_here("forge", "show", f"github:{REPO}!{issue + 1}", env=env)
    assert refused.returncode == 2 and f"github:{REPO}#{issue + 1}" in refused.stderr, refused.stderr
    missing = cli_here("forge", "unbind", f"github:{REPO}#{issue + 5}", env=env)
    assert missing.returncode != 0 and "not bound" in missing.stderr
    assert forge_store(store).get_binding("github", REPO, issue) is not None


def test_the_parser_reads_hostile_text_whole(tmp_path: Path, settings: Settings, gitlab: FakeGitLab) -> None:
    configure_gitlab(settings, gitlab, "fake")
    config = load_forges(settings.home)
    assert parse_ref(config, f"{REPO}!7") == Ref("gitlab", REPO, 7, True)
    assert str(parse_ref(config, f" gitlab:{REPO}#7 ")) == f"gitlab:{REPO}#7"
    for bad in (f"{REPO}#7#8", f"{REPO}#-1", f"{REPO}#12345678901", "acme#1", f"other:{REPO}#1", "\x00/a#1"):
        with pytest.raises(BadInput):
            parse_ref(config, bad)
