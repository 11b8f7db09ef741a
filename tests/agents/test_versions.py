"""The agent CLI's version on every run, asked once per installed binary; ``baton doctor`` on versions
this baton was not tested with (:mod:`baton.agents.versions`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from baton import RunRequest, open_store, run
from baton.agents import get_agent, versions
from baton.agents.versions import KEEP, cached_version, fingerprint
from baton.housekeeping.doctor import run_doctor
from baton.settings import Settings
from baton.testing.fake_agent import VERSION as FAKE_VERSION

Cli = Callable[..., subprocess.CompletedProcess[str]]


class Probe:
    """Counts how often the CLI would have been asked."""

    def __init__(self, answer: str | None = "1.2.3") -> None:
        self.answer = answer
        self.calls = 0

    def __call__(self, command: tuple[str, ...]) -> str | None:
        self.calls += 1
        return self.answer


def binary(tmp_path: Path, text: str = "#!/bin/sh\necho 1.2.3\n") -> Path:
    path = tmp_path / "bin" / "cli"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


def test_asked_once_per_binary(tmp_path: Path) -> None:
    cli, cache, probe = binary(tmp_path), tmp_path / "cache" / "v.json", Probe()
    assert [cached_version((str(cli),), probe, cache) for _ in range(3)] == ["1.2.3"] * 3
    assert probe.calls == 1
    assert list(json.loads(cache.read_text()).values()) == ["1.2.3"]


def test_an_upgrade_with_the_same_mtime_and_size_is_asked_again(tmp_path: Path) -> None:
    """npm stamps every file of a package with one fixed mtime: a new release of the same size must
    still be noticed (a new file: another inode and change time)."""
    cli, cache = binary(tmp_path), tmp_path / "v.json"
    st = cli.stat()
    assert cached_version((str(cli),), Probe("1.0.0"), cache) == "1.0.0"
    new = cli.with_name("cli.new")
    shutil.copyfile(cli, new)
    new.chmod(0o755)
    os.utime(new, ns=(st.st_atime_ns, st.st_mtime_ns))
    new.replace(cli)  # what an installer does: a new file in the old one's place
    assert cli.stat().st_size == st.st_size and cli.stat().st_mtime_ns == st.st_mtime_ns
    probe = Probe("2.0.0")
    assert cached_version((str(cli),), probe, cache) == "2.0.0"
    assert probe.calls == 1


def test_a_symlink_is_keyed_by_what_it_points_at(tmp_path: Path) -> None:
    cli, cache = binary(tmp_path), tmp_path / "v.json"
    link = tmp_path / "link"
    link.symlink_to(cli)
    assert cached_version((str(link),), Probe(), cache) == "1.2.3"
    probe = Probe("other")
    assert cached_version((str(cli),), probe, cache) == "1.2.3" and probe.calls == 0


def test_a_failed_answer_is_not_remembered(tmp_path: Path) -> None:
    cli, cache = binary(tmp_path), tmp_path / "v.json"
    assert cached_version((str(cli),), Probe(None), cache) is None
    assert not cache.exists()
    assert cached_version((str(cli),), Probe("3.0"), cache) == "3.0"


@pytest.mark.parametrize("content", [b"", b"\xff\xfe not json", b"[1, 2]", b'{"k": 1'])
def test_a_damaged_cache_only_costs_a_probe(tmp_path: Path, content: bytes) -> None:
    cli, cache = binary(tmp_path), tmp_path / "v.json"
    cache.write_bytes(content)
    probe = Probe()
    assert cached_version((str(cli),), probe, cache) == "1.2.3" and probe.calls == 1
    assert cached_version((str(cli),), probe, cache) == "1.2.3" and probe.calls == 1


def test_an_unwritable_cache_still_answers(tmp_path: Path) -> None:
    cli = binary(tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert cached_version((str(cli),), Probe(), blocker / "v.json") == "1.2.3"


def test_the_cache_keeps_the_latest_binaries(tmp_path: Path) -> None:
    cache = tmp_path / "v.json"
    for i in range(KEEP + 5):
        cli = tmp_path / f"cli{i}"
        cli.write_text(str(i))
        cached_version((str(cli),), Probe(str(i)), cache)
    kept = json.loads(cache.read_text())
    assert len(kept) == KEEP and list(kept.values())[-1] == str(KEEP + 4)


def test_no_file_in_the_command_is_never_cached(tmp_path: Path) -> None:
    assert fingerprint(["no-such-binary-here"]) is None
    probe = Probe()
    cached_version(("no-such-binary-here",), probe, tmp_path / "v.json")
    cached_version(("no-such-binary-here",), probe, tmp_path / "v.json")
    assert probe.calls == 2


def test_an_interpreter_and_its_script_are_both_keyed(tmp_path: Path) -> None:
    """The fake agent is ``python fake_agent.py``: a change of the script is a new version too."""
    script = tmp_path / "agent.py"
    script.write_text("print('1')")
    before = fingerprint([sys.executable, str(script)])
    script.unlink()
    script.write_text("print('22')")
    after = fingerprint([sys.executable, str(script)])
    assert before and after and before != after and os.path.realpath(sys.executable) in after


def test_the_adapters_remember_under_baton_home(settings: Settings) -> None:
    agent = get_agent("fake", settings)
    assert agent.version() == FAKE_VERSION
    cache = settings.home / "cache" / "cli-versions.json"
    assert list(json.loads(cache.read_text()).values()) == [FAKE_VERSION]


def test_tested_versions_name_every_real_agent_pinned_first() -> None:
    known = versions.tested_versions()
    assert set(known) == {"claude", "codex", "gemini", "copilot", "opencode"}
    for agent, listed in known.items():
        assert listed and versions.pinned(agent) == listed[0] and versions.is_tested(agent, listed[0])
        assert versions.tested_note(agent, listed[0]) is None
    note = versions.tested_note("codex", "0.0.1")
    assert note and "0.0.1 is not a version this baton was tested with" in note and "docs/compat.md" in note
    assert versions.tested_note("fake", "anything") is None  # no pin: nothing to compare with


def test_every_run_records_the_cli_version(settings: Settings, src_repo: Path) -> None:
    first = run(RunRequest(agent="fake", repo=str(src_repo), thread="v", prompt="a"), settings=settings)
    second = run(RunRequest(agent="fake", repo=str(src_repo), thread="v", prompt="b"), settings=settings)
    assert first.run.cli_version == second.run.cli_version == FAKE_VERSION
    assert second.to_json()["cli_version"] == FAKE_VERSION
    store = open_store(settings.resolved_store_url)
    try:
        stored = store.get_run(second.run.id)
    finally:
        store.close()
    assert stored is not None and stored.cli_version == FAKE_VERSION


def test_a_run_whose_agent_does_not_say_asks_the_binary_once(
    settings: Settings, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CLI whose events carry no version (Codex, Gemini): the run asks the binary, once per install."""
    monkeypatch.setenv("FAKE_AGENT_NO_VERSION", "1")
    results = [
        run(RunRequest(agent="fake", repo=str(src_repo), thread="nv", prompt=p), settings=settings)
        for p in "ab"
    ]
    assert [r.run.cli_version for r in results] == [FAKE_VERSION] * 2
    cache = json.loads((settings.home / "cache" / "cli-versions.json").read_text())
    assert list(cache.values()) == [FAKE_VERSION]


def test_runs_show_json_and_text_carry_the_version(cli: Cli, src_repo: Path) -> None:
    done = cli("run", "-a", "fake", "-r", str(src_repo), "-t", "cv", "--json", "hello")
    assert done.returncode == 0, done.stderr
    ran = json.loads(done.stdout)
    assert ran["cli_version"] == FAKE_VERSION
    shown = cli("runs", "show", ran["run_id"], "--json")
    data = json.loads(shown.stdout)
    assert data["cli_version"] == FAKE_VERSION, shown.stderr
    assert data["attempts"][0]["cli_version"] == FAKE_VERSION
    text = cli("runs", "show", ran["run_id"])
    assert f"cli_version: {FAKE_VERSION}" in text.stdout, text.stdout


def test_doctor_warns_and_does_not_fail_on_an_untested_cli(settings: Settings, tmp_path: Path) -> None:
    """The fake agent stands in for Claude Code: its version is none this baton was tested with."""
    import dataclasses
    import shlex

    from baton.testing.fake import fake_agent_bin

    wrapper = binary(tmp_path, f'#!/bin/sh\nexec {shlex.join(fake_agent_bin())} "$@"\n')
    fake = dataclasses.replace(settings, claude_bin=str(wrapper))
    checks = {c.name: c for c in run_doctor(fake)}
    claude = checks["claude CLI"]
    assert claude.status == "warn", claude
    assert f"{FAKE_VERSION} is not a version this baton was tested with" in claude.detail
    assert "pinned " + str(versions.pinned("claude")) in claude.detail
