"""How an agent starts in a container (:mod:`baton.sandbox.container`), without an engine: the key's
own parts mounted at their own paths and nothing else of ``BATON_HOME`` (not the store, not another
key), the git data writable only where a commit writes, a secret passed by name (its value in the
engine's environment, never on the argv), the run's limits as the engine's flags."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from baton.sandbox import container
from baton.sandbox.cgroups import Limits
from baton.sandbox.container import Container, mounts
from baton.sandbox.walls import GitParts, Walls


def walls(home: Path, edit: bool = True) -> Walls:
    for part in (
        "wt/k1",
        "wt/k2",
        "keys/k1/home",
        "keys/k1/tmp",
        "repos/r.git/worktrees/k1",
        "repos/r.git/objects",
        "bin",
    ):
        (home / part).mkdir(parents=True)
    (home / "baton.db").write_text("")
    git = GitParts(home / "repos/r.git/worktrees/k1", home / "repos/r.git", "refs/heads/baton/k1")
    (home / "repos/r.git/refs/heads/baton").mkdir(parents=True)
    return Walls(home, home / "wt/k1", home / "keys/k1/home", home / "keys/k1/tmp", git=git, edit=edit)


def test_only_the_keys_parts_are_mounted(tmp_path: Path) -> None:
    home = tmp_path / "home"
    found = {inside: mode for _, inside, mode in mounts(walls(home))}
    assert found[str(home / "wt/k1")] == "rw" and found[str(home / "keys/k1/home")] == "rw"
    assert found[str(home / "repos/r.git")] == "ro" and found[str(home / "repos/r.git/objects")] == "rw"
    assert found[str(home / "repos/r.git/refs/heads/baton")] == "rw"
    under = [p for p in found if p.startswith(str(home))]
    assert not [p for p in under if "k2" in p or p.endswith(("baton.db", str(home)))]
    assert not [p for p in found if p.startswith(("/usr", "/etc", "/bin", "/lib"))]  # the image's own


def test_a_worktree_at_read_is_mounted_read_only(tmp_path: Path) -> None:
    found = {inside: mode for _, inside, mode in mounts(walls(tmp_path / "home", edit=False))}
    assert found[str(tmp_path / "home/wt/k1")] == "ro"


def test_a_secret_goes_to_the_engine_by_name_only(tmp_path: Path) -> None:
    home = tmp_path / "home"
    box = Container("/usr/bin/podman", "localhost/app:1", {"FROM_IMAGE": "x"})
    env = {"API_KEY": "s3cret", "HOME": str(home / "keys/k1/home"), "PATH": "/usr/bin:/bin"}
    argv, engine_env = box.command(
        "baton-r1", ["/bin/true"], env, home / "wt/k1", walls(home), Limits(1 << 28, 64), timeout=100
    )
    assert "s3cret" not in " ".join(argv) and engine_env["API_KEY"] == "s3cret"
    assert argv[argv.index("API_KEY") - 1] == "-e"
    assert f"HOME={home / 'keys/k1/home'}" in argv and "FROM_IMAGE=x" in argv  # no secret: said openly
    assert engine_env.get("HOME") != str(home / "keys/k1/home")  # the engine keeps its own home
    assert argv[argv.index("--timeout") + 1] == "160"  # a container its runner left ends by itself
    assert argv[argv.index("--memory") + 1] == str(1 << 28) and argv[argv.index("--pids-limit") + 1] == "64"
    assert {"--rm", "-i", "--init", "--read-only"} <= set(argv) and argv[-2:] == [
        "localhost/app:1",
        "/bin/true",
    ]


def test_only_podman_as_root_puts_its_container_in_the_agents_network_namespace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Under an egress allow-list the engine starts in the agent's namespace; only podman as root
    leaves its ``--network host`` container there (tests/runner/test_container_egress_real.py)."""
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert container.netns_refusal("/usr/bin/podman") is None
    assert "docker's daemon" in (container.netns_refusal("/usr/bin/docker") or "")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert "rootless podman" in (container.netns_refusal("/usr/bin/podman") or "")
