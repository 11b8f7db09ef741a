"""baton.sync.upstream beyond stacking: which base a key's sync follows. A key created on a tag
(``--base v1``) follows its own branch on the remote; the tag never moves."""

from __future__ import annotations

from pathlib import Path

from baton import RunRequest, run
from baton.models import SyncHow
from baton.settings import Settings
from tests.conftest import commit_file, git


def test_a_key_on_a_tag_still_brings_in_pushes_to_its_branch(
    settings: Settings, src_repo: Path, tmp_path: Path
) -> None:
    git(src_repo, "tag", "v1")
    remote = tmp_path / "remote.git"
    git(tmp_path, "clone", "--quiet", "--bare", str(src_repo), str(remote))
    first = run(
        RunRequest(agent="fake", repo=str(remote), thread="t", prompt="go", base="v1"), settings=settings
    )
    assert first.ok and first.session.base == "v1"
    worktree, branch = Path(first.session.worktree), first.session.branch
    git(worktree, "push", "--quiet", str(remote), f"HEAD:refs/heads/{branch}")
    person = tmp_path / "person"
    git(tmp_path, "clone", "--quiet", "--branch", branch, str(remote), str(person))
    commit_file(person, "PERSON.md", "pushed\n", "a person pushes")
    git(person, "push", "--quiet", "origin", branch)

    synced = run(
        RunRequest(agent="fake", repo=str(remote), thread="t", prompt="on", sync=SyncHow.MERGE),
        settings=settings,
    )
    assert synced.ok and synced.run.sync is not None, synced.run.error
    assert synced.run.sync["result"] == "integrated", synced.run.sync
    assert (worktree / "PERSON.md").read_text() == "pushed\n"
    assert [i["source"] for i in synced.run.sync["incoming"]] == ["branch"]
