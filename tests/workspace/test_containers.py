"""The keys' service containers as baton tracks them: the sweep stops those idle for
``services_idle_minutes`` (keeping their state, for their port) and those whose key's space is gone,
never a fresh one (0: only with the key);
removing a key's space stops its containers first. The engine here is a script that records its argv
(the real podman: tests/runner/test_services_real.py)."""

from __future__ import annotations

import time
from pathlib import Path

from baton.keys import Key, Repo
from baton.settings import Settings
from baton.workspace import containers
from baton.workspace.containers import State, container_name, states, sweep_idle
from baton.workspace.keyspace import key_dir, remove_space


def fake_engine(tmp_path: Path) -> tuple[str, Path]:
    called = tmp_path / "called"
    engine = tmp_path / "podman"
    engine.write_text(f'#!/bin/sh\necho "$@" >> {called}\n')
    engine.chmod(0o755)
    return str(engine), called


def state(settings: Settings, engine: str, space: Path, used: float, service: str = "db") -> State:
    found = State(container_name(space, service), engine, str(space), service, 41234, "spec", used)
    containers.write_state(settings, found)
    return found


def test_the_sweep_stops_idle_services_and_those_of_a_gone_key(settings: Settings, tmp_path: Path) -> None:
    engine, called = fake_engine(tmp_path)
    now = time.time()
    live, gone = tmp_path / "live", tmp_path / "gone"
    live.mkdir()
    idle = state(settings, engine, live, now - 31 * 60)
    fresh = state(settings, engine, live, now - 60, "cache")
    orphan = state(settings, engine, gone, now)
    dry, _ = sweep_idle(settings, now, dry_run=True)
    assert sorted(dry) == sorted([idle.container, orphan.container]) and not called.exists()
    stopped, errors = sweep_idle(settings, now)
    assert sorted(stopped) == sorted([idle.container, orphan.container]) and errors == {}
    left = {s.container: s.stopped for s in states(settings)}  # the idle one's kept for its port
    assert left == {fresh.container: False, idle.container: True}
    assert f"rm -f -t 10 {idle.container}" in called.read_text()
    assert containers.remove_argv("/usr/bin/docker", "c") == ["/usr/bin/docker", "rm", "-f", "c"]  # no -t
    never = settings.with_(services_idle_minutes=0)
    assert sweep_idle(never, now + 10**6) == ([], {})  # 0: only when the key goes


def test_a_failing_stop_is_reported_and_the_state_kept(settings: Settings, tmp_path: Path) -> None:
    engine = tmp_path / "engine"
    engine.write_text('#!/bin/sh\necho "cannot" >&2\nexit 3\n')
    engine.chmod(0o755)
    kept = state(settings, str(engine), tmp_path / "gone", time.time())
    stopped, errors = sweep_idle(settings, time.time())
    assert stopped == [] and "rm exited 3: cannot" in errors[kept.container]
    assert [s.container for s in states(settings)] == [kept.container]


def test_removing_a_keys_space_stops_its_services_first(settings: Settings, tmp_path: Path) -> None:
    engine, called = fake_engine(tmp_path)
    key = Key("fake", Repo("https://github.com/acme/api", "github.com/acme/api", False), "t1")
    space = key_dir(settings, key)
    (space / "services" / "db" / "data").mkdir(parents=True)
    other = tmp_path / "other"
    other.mkdir()
    mine = state(settings, engine, space, time.time())
    theirs = state(settings, engine, other, time.time())
    assert remove_space(settings, key)
    assert not space.exists()
    assert called.read_text().split() == ["rm", "-f", "-t", "10", mine.container]
    assert [s.container for s in states(settings)] == [theirs.container]
