"""The devcontainer's image as ``environment = "container"`` reads it (:mod:`baton.environment.image`):
the spec's own fields, a Dockerfile and context kept inside the worktree, a reference that can never
be read as an option, baton's own variables never taken from the repository, what is set aside said."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from baton.environment.discover import Unreadable
from baton.environment.image import read_image


def tree(path: Path, devcontainer: str, **files: str) -> Path:
    (path / ".devcontainer").mkdir(parents=True)
    (path / ".devcontainer/devcontainer.json").write_text(devcontainer)
    for name, text in files.items():
        (path / name.replace("__", "/")).write_text(text)
    return path


def test_a_named_image_is_run_as_named_with_its_container_env(tmp_path: Path) -> None:
    env = '"containerEnv": {"A": "1", "HOME": "/x", "BATON_X": "y"}'
    wt = tree(
        tmp_path, f'{{"image": "localhost/app:1", {env}, "remoteUser": "vscode", "workspaceFolder": "/w"}}'
    )
    spec = read_image(wt)
    assert spec.tag == "localhost/app:1" and spec.dockerfile is None
    assert spec.env == {"A": "1"}  # never the key's HOME nor a BATON_ name
    assert [s.split(" ")[0] for s in spec.set_aside] == ["remoteUser", "workspaceFolder"]


def test_a_dockerfile_is_built_from_its_folder_and_tagged_by_its_content(tmp_path: Path) -> None:
    wt = tree(tmp_path, '{"build": {"dockerfile": "Containerfile", "context": "..", "args": {"V": "2"}}}',
              **{".devcontainer__Containerfile": "FROM x\n"})  # fmt: skip
    spec = read_image(wt)
    assert spec.dockerfile == wt / ".devcontainer/Containerfile" and spec.context == wt
    assert spec.args == {"V": "2"} and spec.tag.startswith("localhost/baton-env:")
    (wt / ".devcontainer/Containerfile").write_text("FROM y\n")
    assert read_image(wt).tag != spec.tag


@pytest.mark.parametrize(
    ("devcontainer", "said"),
    [
        ('{"image": "--privileged"}', "not an image reference"),
        ('{"image": "a b"}', "not an image reference"),
        ('{"build": {"dockerfile": "../../etc/passwd"}}', "leaves the worktree"),
        ('{"build": {"dockerfile": "/etc/passwd"}}', "must be a relative path"),
        ('{"build": {"dockerfile": "Containerfile", "context": "../.."}}', "leaves the worktree"),
        ('{"build": {"dockerfile": "Containerfile", "args": {"A B": "1"}}}', "plain variable names"),
        ('{"dockerComposeFile": "c.yml"}', "neither an image nor a build.dockerfile"),
        ("[1]", "must hold a JSON object"),
    ],
)
def test_what_cannot_be_used_is_refused_with_why(tmp_path: Path, devcontainer: str, said: str) -> None:
    wt = tree(tmp_path, devcontainer, **{".devcontainer__Containerfile": "FROM x\n"})
    with pytest.raises(Unreadable, match=said):
        read_image(wt)


def test_a_linked_dockerfile_or_context_is_refused(tmp_path: Path) -> None:
    wt = tree(tmp_path / "a", '{"build": {"dockerfile": "Containerfile"}}')
    os.symlink("/etc/passwd", wt / ".devcontainer/Containerfile")
    with pytest.raises(Unreadable, match="regular file"):
        read_image(wt)
    other = tree(tmp_path / "b", '{"build": {"dockerfile": "Containerfile", "context": "ctx"}}',
                 **{".devcontainer__Containerfile": "FROM x\n"})  # fmt: skip
    os.symlink("/etc", other / ".devcontainer/ctx")
    with pytest.raises(Unreadable, match="not a link"):
        read_image(other)


def test_no_devcontainer_says_so(tmp_path: Path) -> None:
    with pytest.raises(Unreadable, match="names the container to run in"):
        read_image(tmp_path)
