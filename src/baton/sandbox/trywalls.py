"""A command run as an agent's would be, for ``baton doctor``: behind the Landlock walls of a throwaway
worktree, home and temp dir (under ``BATON_HOME``, removed after), with ``PATH`` and the variables an
agent gets (:func:`~baton.sandbox.agentenv.agent_env`), so what a shim or a toolchain needs beyond what
the walls open fails here as it would in a run. No mount or network namespace: what they add takes
nothing a tool's ``--version`` reads."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from baton.sandbox.agentenv import agent_env
from baton.sandbox.confine import check_confine
from baton.sandbox.walls import Walls, ruleset
from baton.settings import Settings

# runs argv, its variables over the agent's, for at most ``timeout`` seconds: (exit status, output)
Trial = Callable[[list[str], dict[str, str], float], tuple[int, str]]


@contextmanager
def walled(settings: Settings) -> Iterator[tuple[Trial, dict[str, str]] | None]:
    """A :data:`Trial` inside the walls and the agent's environment there; None where the walls do not
    apply (no Landlock, ``confine = off``) or its throwaway directories cannot be made."""
    if not check_confine(settings):
        yield None
        return
    root = _made(settings.home)
    if root is None:  # a full disk, a read-only home: the tools are asked here instead
        yield None
        return
    try:
        worktree, home, tmp = root / "worktree", root / "home", root / "tmp"
        env = agent_env(os.environ, (), settings.agent_env_names, {}, home, tmp)
        walls = Walls(home=settings.home, worktree=worktree, agent_home=home, tmp=tmp, path=env["PATH"])

        def trial(argv: list[str], extra: dict[str, str], timeout: float) -> tuple[int, str]:
            return _run(walls, argv, {**env, **extra}, worktree, timeout)

        yield trial, env
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _made(base: Path) -> Path | None:
    """A throwaway directory under ``base`` with a worktree, a home and a temp dir; None when the disk
    refuses it (nothing is left)."""
    root = None
    try:
        base.mkdir(parents=True, exist_ok=True)
        root = Path(tempfile.mkdtemp(prefix="doctor-", dir=base))
        for name in ("worktree", "home", "tmp"):
            (root / name).mkdir()
    except OSError:
        if root is not None:
            shutil.rmtree(root, ignore_errors=True)
        return None
    return root


def _run(walls: Walls, argv: list[str], env: dict[str, str], cwd: Path, timeout: float) -> tuple[int, str]:
    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )

    try:
        process = ruleset(walls).spawn(start)
    except OSError as exc:
        return 126, str(exc)
    try:
        out, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, _ = process.communicate()
        return 124, f"no answer in {timeout:g} s"
    return process.returncode, out.decode(errors="replace")
