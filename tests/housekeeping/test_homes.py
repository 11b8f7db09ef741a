"""`baton homes link/unlink`: agent homes moved onto a persistent directory and back, byte for byte."""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from baton.errors import BadInput
from baton.housekeeping import homes


def tree_digest(path: Path) -> dict[str, str]:
    """Every file and symlink under ``path`` (relative) with its content hash or link target."""
    out: dict[str, str] = {}
    for p in sorted(path.rglob("*")):
        rel = str(p.relative_to(path))
        if p.is_symlink():
            out[rel] = "link:" + os.readlink(p)
        elif p.is_file():
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest() + f":{p.stat().st_mode:o}"
        else:
            out[rel] = "dir"
    return out


@pytest.fixture
def user_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    (home / ".claude" / "projects" / "-src").mkdir(parents=True)
    (home / ".claude" / "projects" / "-src" / "abc.jsonl").write_text('{"type":"user"}\n')
    (home / ".claude" / "settings.json").write_text('{"cleanupPeriodDays": 90}')
    (home / ".claude.json").write_text('{"numStartups": 3}')
    (home / ".codex" / "sessions").mkdir(parents=True)
    (home / ".codex" / "config.toml").write_text('model = "x"\n')
    os.chmod(home / ".codex" / "config.toml", 0o600)
    (home / "unrelated.txt").write_text("keep me")
    return home


def test_link_then_unlink_restores_byte_for_byte(user_home: Path, tmp_path: Path) -> None:
    before = tree_digest(user_home)
    volume = tmp_path / "volume"
    actions = {a.name: a.action for a in homes.link(volume, home=user_home)}
    assert actions == {
        ".claude": "moved+linked",
        ".claude.json": "moved+linked",
        ".codex": "moved+linked",
        ".gemini": "linked",
    }
    for name in (".claude", ".codex", ".gemini", ".claude.json"):
        assert (user_home / name).is_symlink()
    assert (volume / "claude" / "projects" / "-src" / "abc.jsonl").read_text() == '{"type":"user"}\n'
    assert (user_home / ".claude" / "settings.json").read_text() == '{"cleanupPeriodDays": 90}'
    again = {a.name: a.action for a in homes.link(volume, home=user_home)}
    assert set(again.values()) == {"already linked"}
    homes.unlink(volume)
    after = tree_digest(user_home)
    assert after == before


def test_existing_volume_data_wins_and_local_is_backed_up(user_home: Path, tmp_path: Path) -> None:
    volume = tmp_path / "volume"
    (volume / "claude").mkdir(parents=True)
    (volume / "claude" / "from-last-container.jsonl").write_text("old conversation")
    before = tree_digest(user_home)
    actions = {a.name: a for a in homes.link(volume, home=user_home)}
    assert actions[".claude"].action == "backed-up+linked"
    backup = Path(str(actions[".claude"].backup))
    assert (backup / "settings.json").exists()
    assert (user_home / ".claude" / "from-last-container.jsonl").read_text() == "old conversation"
    homes.unlink(volume)
    assert tree_digest(user_home) == before
    assert (volume / "claude" / "from-last-container.jsonl").exists(), "the volume's data is never deleted"


def test_dry_run_changes_nothing(user_home: Path, tmp_path: Path) -> None:
    before = tree_digest(user_home)
    actions = homes.link(tmp_path / "volume", home=user_home, dry_run=True)
    assert {a.action for a in actions} >= {"moved+linked"}
    assert tree_digest(user_home) == before
    assert not (tmp_path / "volume").exists()


def test_foreign_symlink_is_left_alone(user_home: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (user_home / ".gemini").symlink_to(elsewhere)
    actions = {a.name: a.action for a in homes.link(tmp_path / "volume", home=user_home)}
    assert actions[".gemini"] == "blocked"
    assert os.readlink(user_home / ".gemini") == str(elsewhere)


def test_target_inside_an_agent_home_is_refused(user_home: Path) -> None:
    with pytest.raises(BadInput):
        homes.link(user_home / ".claude", home=user_home)
    with pytest.raises(BadInput):
        homes.link(user_home, home=user_home)


def test_the_cli_says_a_dry_run_changed_nothing(
    user_home: Path, tmp_path: Path, cli: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    """``--dry-run`` prints the same lines as the real link ("moved+linked"), then says none was done."""
    before = tree_digest(user_home)
    dry = cli("homes", "link", "--to", str(tmp_path / "volume"), "--dry-run", env={"HOME": str(user_home)})
    assert dry.returncode == 0, dry.stderr
    assert "moved+linked" in dry.stdout and "dry run: nothing was changed" in dry.stdout
    assert tree_digest(user_home) == before
    done = cli("homes", "link", "--to", str(tmp_path / "volume"), env={"HOME": str(user_home)})
    assert done.returncode == 0 and "dry run" not in done.stdout, done.stderr
