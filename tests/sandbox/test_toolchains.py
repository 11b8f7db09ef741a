"""The operator's toolchains inside the walls (baton.sandbox.toolchains): on a machine whose ``PATH``
starts with a pyenv-style shim directory, a rustup-style ``cargo`` proxy and an nvm-style Node prefix
(made here, under a home the walls do not open: the shims exec tools under their managers' roots), a
repository's setup and the agent's shell run each of them inside the walls."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import pytest

from baton import Outcome, RunRequest, run
from baton.models import Access
from baton.sandbox.toolchains import toolchains
from baton.settings import Settings
from baton.testing.tools import tool_marker
from tests.conftest import MOCKS, make_repo
from tests.runner.test_setup import walled
from tests.sandbox.test_access_real import tool_results


def script(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\n{text}\n")
    path.chmod(0o755)


@pytest.fixture
def machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user's home with pyenv, rustup and nvm as they lay themselves out, first on ``PATH``."""
    home = tmp_path / "user"
    pyenv = home / ".pyenv"
    script(pyenv / "libexec" / "pyenv", f'shift; program="$1"; shift; exec {sys.executable} "$@"')
    script(
        pyenv / "shims" / "python3",
        f'export PYENV_ROOT="{pyenv}"\nexec "{pyenv}/libexec/pyenv" exec python3 "$@"',
    )
    for tool in ("cargo", "rustc"):  # rustup's proxies (this machine's own would find no toolchain here)
        script(
            home / ".rustup" / "toolchains" / "stable" / "bin" / tool, f'echo "{tool} 1.99 (the toolchain)"'
        )
        script(
            home / ".cargo" / "bin" / tool,
            f'exec "${{RUSTUP_HOME:-$HOME/.rustup}}/toolchains/stable/bin/{tool}" "$@"',
        )
    node = home / ".nvm" / "versions" / "node" / "v20.0.0"
    script(
        node / "lib" / "node_modules" / "npm" / "bin" / "npm-cli.js", 'echo "npm 10 (from the prefix lib)"'
    )
    (node / "bin").mkdir(parents=True)
    os.symlink("../lib/node_modules/npm/bin/npm-cli.js", node / "bin" / "npm")
    entries = [pyenv / "shims", home / ".cargo" / "bin", node / "bin"]
    monkeypatch.setenv("PATH", os.pathsep.join([*map(str, entries), os.environ["PATH"]]))
    for name in ("RUSTUP_HOME", "PYENV_ROOT"):  # this machine's own
        monkeypatch.delenv(name, raising=False)
    return home


def test_the_roots_a_path_needs_are_named(machine: Path) -> None:
    found = toolchains(os.environ["PATH"])
    node = machine / ".nvm" / "versions" / "node" / "v20.0.0"
    assert {str(machine / ".pyenv"), str(machine / ".rustup"), str(node)} <= set(found.roots)
    assert found.env["PYENV_ROOT"] == str(machine / ".pyenv")
    assert found.env["RUSTUP_HOME"] == str(machine / ".rustup")
    assert str(machine) not in found.roots
    assert str(machine / ".cargo") not in found.roots, "CARGO_HOME holds a registry token"


USE = 'python3 -c "print(6 * 7)" > tools.txt 2>&1; cargo --version >> tools.txt 2>&1; npm >> tools.txt 2>&1'


@walled
def test_a_setup_and_the_agent_run_the_operators_toolchains_inside_the_walls(
    machine: Path, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(tmp_path / "r", {".baton/setup.sh": USE.replace("tools.txt", "setup.txt") + "\n"})
    (repo / ".gitignore").write_text("*.txt\n")
    monkeypatch.setenv("FAKE_AGENT_RUN", USE)
    request = RunRequest(agent="fake", repo=str(repo), thread="t", prompt="go", access=Access.FULL)
    result = run(request, settings=settings)
    assert result.run.outcome == Outcome.SUCCEEDED, result.run.error
    assert result.run.confined
    worktree = Path(result.session.worktree)
    want = ["42", "cargo 1.99 (the toolchain)", "npm 10 (from the prefix lib)"]
    assert (worktree / "tools.txt").read_text().splitlines() == want  # the agent's shell
    assert (worktree / "setup.txt").read_text().splitlines() == want  # the setup, in its own home


SHOW = 'python3 -c "print(6 * 7)"; cargo --version; npm'


@walled
@pytest.mark.slow
def test_the_real_claude_and_its_setup_run_the_operators_toolchains_inside_the_walls(
    machine: Path, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The REAL Claude Code, its model (the mock) asking its Bash tool for each tool through the
    shims; the repository's setup uses them too."""
    (tmp_path / "user-home").mkdir()  # the CLI's shell skips this machine's ~/.bashrc (as test_access_real)
    monkeypatch.setenv("HOME", str(tmp_path / "user-home"))
    repo = make_repo(tmp_path / "r", {".baton/setup.sh": USE.replace("tools.txt", "setup.txt") + "\n"})
    (repo / ".gitignore").write_text("*.txt\n")
    module, name = MOCKS["claude"]
    with getattr(importlib.import_module(module), name)() as model:
        for key, value in model.env().items():
            monkeypatch.setenv(key, value)
        model.configure_home(settings.home / "homes" / "claude")
        prompt = f"show the tools {tool_marker('Bash', command=SHOW)}"
        request = RunRequest(agent="claude", repo=str(repo), thread="t", prompt=prompt, access=Access.FULL)
        result = run(request, settings=settings)
        assert result.run.outcome == Outcome.SUCCEEDED, result.run.error
        [ran] = tool_results("claude", model)
    assert result.run.confined
    want = ["42", "cargo 1.99 (the toolchain)", "npm 10 (from the prefix lib)"]
    assert ran.strip().splitlines() == want, ran
    assert (Path(result.session.worktree) / "setup.txt").read_text().splitlines() == want


def test_batons_own_virtualenv_never_reaches_the_agents_path(tmp_path: Path) -> None:
    """An operator who activated baton's virtualenv before starting it: the agent's (and the setup's)
    ``PATH`` has every other entry, in order, and not baton's ``bin``."""
    from baton.sandbox.agentenv import agent_env

    own = os.path.join(sys.prefix, "bin")
    assert sys.prefix != sys.base_prefix, "the suite runs in baton's virtualenv"
    environ = {
        "PATH": os.pathsep.join(["/opt/tools/bin", own, "/usr/bin", "/bin"]),
        "VIRTUAL_ENV": sys.prefix,
    }
    env = agent_env(environ, (), (), {}, tmp_path / "home", tmp_path / "tmp")
    assert env["PATH"] == os.pathsep.join(["/opt/tools/bin", "/usr/bin", "/bin"])
    assert "VIRTUAL_ENV" not in env


def test_doctor_lists_the_toolchains_an_agent_sees_and_those_outside_the_walls(
    machine: Path, tmp_path: Path
) -> None:
    """``baton doctor`` runs each tool found on the agent's PATH for its version, as an agent would
    reach it, and warns of one that resolves where the walls open nothing (a link out of its entry)."""
    from baton.housekeeping.doctor import check_toolchains

    said = check_toolchains(os.environ)
    assert said.status.value == "ok", said
    assert (
        "cargo: cargo 1.99 (the toolchain)" in said.detail
        and "npm: npm 10 (from the prefix lib)" in said.detail
    )
    elsewhere = tmp_path / "elsewhere"
    script(elsewhere / "go", 'echo "go version go1.99"')
    links = tmp_path / "links"
    links.mkdir()
    os.symlink(elsewhere / "go", links / "go")
    environ = {**os.environ, "PATH": f"{links}{os.pathsep}{os.environ['PATH']}"}
    warned = check_toolchains(environ)
    assert warned.status.value == "warn" and f"outside the walls: go ({elsewhere / 'go'})" in warned.detail


@walled
def test_doctor_asks_each_tool_inside_the_walls_and_names_one_that_fails_there(
    machine: Path, settings: Settings, tmp_path: Path
) -> None:
    """The tools answer inside the walls as an agent's would; a shim on PATH that execs a tool from a
    directory no rule opens (no manager baton knows, no prefix) works here and fails there: named."""
    from baton.housekeeping.doctor import check_toolchains

    said = check_toolchains(os.environ, settings)
    assert said.status.value == "ok", said
    assert "python3: " in said.detail and "(inside the walls)" in said.detail, said
    hidden = tmp_path / "vendor-sdk" / "libexec" / "real-ruby"
    script(hidden, 'echo "ruby 9.9 (hidden)"')
    script(tmp_path / "wrappers" / "ruby", f'exec "{hidden}" "$@"')
    environ = {**os.environ, "PATH": f"{tmp_path / 'wrappers'}{os.pathsep}{os.environ['PATH']}"}
    assert check_toolchains(environ).detail.count("ruby 9.9 (hidden)") == 1  # here it works
    warned = check_toolchains(environ, settings)
    assert warned.status.value == "warn", warned
    assert "fails inside the walls: ruby (" in warned.detail and "Permission denied" in warned.detail, warned
    assert not list(settings.home.glob("doctor-*"))  # its throwaway worktree is gone
