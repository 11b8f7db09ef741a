"""The sandbox's one entry (baton.sandbox.enclosure), with real processes started as the runner starts
them (run_process): the agent walled into its key, what it left running ended and counted, the key's
disk measured once more at its end, and the walls that cannot be built refused, never skipped."""

from __future__ import annotations

import contextlib
import os
import resource
import threading
from pathlib import Path
from typing import Literal

import psutil
import pytest

from baton import allowlist
from baton.errors import AgentError
from baton.runner.process import ProcessResult, RunLog, run_process
from baton.sandbox.container import Container
from baton.sandbox.egress import applies
from baton.sandbox.enclosure import Egress, Enclosure, limits_of
from baton.settings import Settings
from tests.conftest import GIT_ID
from tests.sandbox.test_landlock import require_landlock
from tests.sandbox.test_walls import Layout, layout  # noqa: F401 (the fixture)

LEFT = str(700000 + os.getpid() % 99999)  # a sleep no other test starts


def _run(box: Enclosure, script: str, cwd: Path, home: Path) -> ProcessResult:
    env = {**os.environ, **GIT_ID, "HOME": str(home), "TMPDIR": str(home)}
    lines: list[str] = []
    with RunLog(home / "run.jsonl") as log:
        return run_process(
            ["sh", "-c", script],
            env,
            cwd,
            log,
            lines.append,
            on_start=lambda pid: None,
            heartbeat=lambda: True,
            heartbeat_every=5.0,
            timeout=60.0,
            cancel=threading.Event(),
            kill_grace=1.0,
            spawn=box.spawn,
            stop_when=box.stop,
            contain=box.contain,
        )


def test_an_enclosed_agent_is_walled_contained_and_its_disk_measured(layout: Layout) -> None:  # noqa: F811
    require_landlock()
    settings = Settings(home=layout.home, key_disk="1M", min_free="0")
    outside = layout.mine.parent / "escaped"
    script = (
        f"echo out > {outside} 2>/dev/null && echo wrote || echo refused; "
        # outlives the agent's own process: nothing of it may outlive the run. Started after a pause: a
        # fork in the first instants of the agent's process can precede its move into the run's group
        f"sleep 0.5; sleep {LEFT} & "
        "head -c 3000000 /dev/zero > big; echo done"  # over the budget as its very last act
    )
    with Enclosure.open(settings, "enc1", limits_of(settings), layout.walls, [layout.mine]) as box:
        assert box.spawn is not None and box.ruleset is not None
        result = _run(box, script, layout.mine, layout.walls.agent_home)
        assert result.reaped.limit is None or "BATON_KEY_DISK" in result.reaped.limit
        box.final(result.reaped)
    assert result.exit_code == 0
    said = (layout.walls.agent_home / "run.jsonl").read_text()
    assert "refused" in said and "wrote" not in said, said
    assert not outside.exists()
    left = [p.pid for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", LEFT]]
    assert not left, f"the sleep left behind still runs: {left}"
    assert result.reaped.limit and "BATON_KEY_DISK" in result.reaped.limit, result.reaped.limit
    assert (layout.mine / "big").stat().st_size == 3_000_000, "the agent's files are kept"


def test_an_unwalled_enclosure_starts_the_agent_as_any_process(layout: Layout) -> None:  # noqa: F811
    settings = Settings(home=layout.home, min_free="0")
    with Enclosure.open(settings, "enc2", limits_of(settings), None, [layout.mine]) as box:
        assert box.spawn is None and box.ruleset is None
        result = _run(box, "echo hi > unwalled", layout.mine, layout.walls.agent_home)
        box.final(result.reaped)
    assert result.exit_code == 0 and (layout.mine / "unwalled").read_text() == "hi\n"
    assert result.reaped.count == 0 and result.reaped.limit is None


def test_walls_that_cannot_be_built_are_an_agent_error(layout: Layout) -> None:  # noqa: F811
    """No descriptor left for the ruleset (EMFILE, as the kernel says it): the agent is refused with the
    reason, never started unwalled."""
    require_landlock()
    settings = Settings(home=layout.home, mount_ns="off", min_free="0")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # the limit bounds descriptor numbers: every free number under it is taken first (holes included)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(map(int, os.listdir("/proc/self/fd"))) + 1, hard))
    taken: list[int] = []
    try:
        with contextlib.suppress(OSError):
            while True:
                taken.append(os.dup(0))
        with pytest.raises(AgentError, match=r"cannot wall the agent in: .*Too many open files"):
            Enclosure.open(settings, "enc3", limits_of(settings), layout.walls, [layout.mine])
    finally:
        for fd in taken:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _way_out(closed: list[str], namespaced: bool = True) -> Egress:
    """A way out allowing nothing; ``closed`` told when it is closed."""
    way = Egress.open(allowlist.parse("none"), namespaced, [], frozenset(), lambda refusal: None)
    way.on_close = lambda: closed.append("closed")
    return way


def test_a_container_under_an_allow_list_starts_its_engine_in_the_agents_namespace(
    layout: Layout,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The engine (here a stand-in: the process the spawn starts) is started in the agent's network
    namespace, which holds only loopback: with podman as root its container is there too
    (tests/runner/test_container_egress_real.py proves it with podman itself)."""
    if os.geteuid() != 0 or not applies("auto"):
        pytest.skip("needs root and network namespaces: podman as root is the one engine that joins them")
    engine = tmp_path / "podman"  # removing what is left of the container: nothing to do
    engine.write_text("#!/bin/sh\nexit 0\n")
    engine.chmod(0o755)
    settings, closed = Settings(home=layout.home, min_free="0"), list[str]()
    inside = Container(str(engine), "localhost/app:1")
    with Enclosure.open(
        settings, "enc4", limits_of(settings), layout.walls, [layout.mine], _way_out(closed), inside
    ) as box:
        assert box.spawn is not None and box.out is not None and box.ruleset is None  # no Landlock
        result = _run(box, "cat /proc/net/dev > dev.txt", layout.mine, layout.walls.agent_home)
    assert result.exit_code == 0 and closed == ["closed"]
    found = [line.split(":")[0].strip() for line in (layout.mine / "dev.txt").read_text().splitlines()[2:]]
    assert found == ["lo"]


@pytest.mark.parametrize(
    ("engine", "net_ns", "why"),
    [
        ("/usr/bin/docker", "auto", "docker's daemon makes its containers' network namespaces"),
        ("/usr/bin/podman", "off", "BATON_NET_NS=off"),
    ],
)
def test_a_container_where_the_list_cannot_hold_is_refused_saying_why(
    layout: Layout,  # noqa: F811
    engine: str,
    net_ns: Literal["auto", "off"],
    why: str,
) -> None:
    if net_ns == "auto" and not applies("auto"):
        pytest.skip("this host gives no network namespace")
    settings, closed = Settings(home=layout.home, min_free="0", net_ns=net_ns), list[str]()
    way = _way_out(closed, namespaced=net_ns != "off")
    inside = Container(engine, "localhost/app:1")
    with pytest.raises(AgentError, match="cannot hold inside this container") as raised:
        Enclosure.open(settings, "enc5", limits_of(settings), layout.walls, [layout.mine], way, inside)
    assert why in str(raised.value) and "set egress open for this repository" in str(raised.value)
    assert closed == ["closed"]  # its proxy and listeners are not left open
