"""``environment = "container"`` under an egress allow-list, with real podman as root: the engine is
started from a thread in the agent's own network namespace, so its ``--network host`` container is in
it too, with only baton's proxy and relays on its loopback. Inside the image (the Debian base image of
tests/runner/test_container_real.py), the setup and the fake agent reach ``allowed.test`` (a local
server the list names, resolved by the proxy's test-only names) through the proxy, are refused
``blocked.test`` with 403 and an audit row, cannot connect to the host's loopback directly (nothing
listens there in their namespace) and see no interface but ``lo``. The real Claude Code CLI in the
image still reaches its model through baton's gateway (relayed into the namespace), its Bash tool
refused as the fake agent is. Before this, such a run ended ``failed`` ("an egress allow-list is not
enforced inside a container").

Needs root and podman; fails, never skips, without (the fixtures of test_container_real.py).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from baton import Outcome, RunRequest, RunResult, run
from baton.models import Access, Environment
from baton.settings import Settings, load_settings
from baton.store import open_store
from baton.testing import MockModel
from baton.testing.tools import tool_marker
from tests.conftest import FAST, make_repo
from tests.runner import test_container_real
from tests.runner.test_container_real import BASE, left_containers
from tests.sandbox import test_egress
from tests.sandbox.test_egress import BODY

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800 + 300)]  # the base image's build: 1800 s at most
SERVICE_FIXTURES = {"base_image": "image"}

# their fixtures: podman as root with the fleet's engine settings, the mock Anthropic API on the host's
# loopback; a local HTTP server, the proxy's test-only names (allowed.test, blocked.test: 127.0.0.1)
base_image, engine, claude = (
    test_container_real.base_image,
    test_container_real.engine,
    test_container_real.claude,
)
web, named = test_egress.web, test_egress.named

# What the setup and the agent run inside (baton's own Python is mounted read-only): each line of its
# output one probe's answer. urllib goes through the proxy that http_proxy names.
PROBE = """
import os, socket, sys, urllib.error, urllib.request
port, lines = int(sys.argv[1]), []
for url in (f"http://allowed.test:{port}/", f"http://blocked.test:{port}/x"):
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            lines.append(f"{reply.status} {reply.read().decode()}")
    except urllib.error.HTTPError as exc:
        lines.append(f"{exc.code} {exc.read().decode()[:60]}")
    except OSError as exc:
        lines.append(f"failed {exc}")
for target in (port, 5432):
    try:
        socket.create_connection(("127.0.0.1", target), timeout=3).close()
        lines.append(f"{target} connected")
    except OSError as exc:
        lines.append(f"{target} failed {type(exc).__name__}")
lines.append(os.environ.get("https_proxy", "no proxy"))
dev = open("/proc/net/dev").read().splitlines()[2:]
lines.append(" ".join(sorted(line.split(":")[0].strip() for line in dev)))
open(sys.argv[2], "w").write("\\n".join(lines) + "\\n")
"""


def probe_repo(path: Path, port: int) -> Path:
    """A repository on the base image whose setup runs the probe into ``setup-saw.txt``."""
    setup = f"{sys.executable} probe.py {port} setup-saw.txt"
    devcontainer = f'{{"image": "{BASE}", "postCreateCommand": "{setup}"}}'
    files = {".devcontainer.json": devcontainer, "probe.py": PROBE, ".gitignore": "*.txt\n"}
    return make_repo(path, {**files, "README.md": "# r\n"})


def assert_held(lines: list[str], port: int) -> None:
    assert lines[0] == f"200 {BODY}", lines  # listed: through the proxy
    assert lines[1].startswith(f"403 baton egress refused: blocked.test:{port} is not on"), lines
    assert lines[2:4] == [f"{port} failed ConnectionRefusedError", "5432 failed ConnectionRefusedError"], (
        lines
    )
    assert lines[4].startswith("http://127.0.0.1:"), lines  # told the proxy
    assert lines[5] == "lo", lines  # the namespace's only interface


def refusals(settings: Settings) -> list[tuple[str, str]]:
    store = open_store(settings.resolved_store_url)
    rows = [r for r in store.list_audit() if r["action"] == "egress.refused"]
    store.close()
    return sorted((r["detail"]["host"], r["detail"]["run_id"]) for r in rows)


def go(settings: Settings, repo: Path, egress: str, thread: str) -> tuple[RunResult, float]:
    request = RunRequest(
        agent="fake",
        repo=str(repo),
        thread=thread,
        prompt="look",
        environment=Environment.CONTAINER,
        egress=egress,
    )
    started = time.monotonic()
    result = run(request, settings=settings)
    return result, time.monotonic() - started


def test_the_setup_and_the_agent_in_a_container_reach_only_their_list(
    engine: str, settings: Settings, tmp_path: Path, web: int, named: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    listed = f"allowed.test:{web}"
    settings = settings.with_(setup_egress=listed)
    repo = probe_repo(tmp_path / "r", web)
    monkeypatch.setenv("FAKE_AGENT_RUN", f"{sys.executable} probe.py {web} agent-saw.txt")
    result, first = go(settings, repo, listed, "t1")
    assert result.run.outcome == Outcome.SUCCEEDED, result.run.error
    worktree = Path(result.session.worktree)
    assert_held((worktree / "agent-saw.txt").read_text().splitlines(), web)
    assert_held((worktree / "setup-saw.txt").read_text().splitlines(), web)
    assert refusals(settings) == [("blocked.test", result.run.id)] * 2  # the setup's and the agent's
    assert left_containers() == []
    # the cost: a turn under the list against one with egress open (both past the setup)
    held = [go(settings, repo, listed, "t1")[1] for _ in range(3)]
    opened = [go(settings, repo, "open", "t2")[1] for _ in range(4)][1:]  # its first turn runs the setup
    print(f"first turn {first:.2f} s; under the list {held}; open {opened}")


def test_the_real_claude_cli_in_a_container_reaches_its_model_through_the_gateway_only(
    engine: str, home: Path, tmp_path: Path, claude: MockModel, web: int, named: None
) -> None:
    """Its model calls go to baton's gateway on the host's loopback (relayed into the namespace), which
    lends the real key; its Bash tool's probe is held as the fake agent's is."""
    repo = make_repo(
        tmp_path / "r",
        {".devcontainer.json": f'{{"image": "{BASE}"}}', "probe.py": PROBE, "README.md": "# r\n"},
    )
    command = f"{sys.executable} probe.py {web} saw.txt; echo key=$ANTHROPIC_API_KEY"
    request = RunRequest(
        agent="claude",
        repo=str(repo),
        thread="t1",
        prompt=f"look {tool_marker('Bash', command=command)}",
        access=Access.FULL,
        environment=Environment.CONTAINER,
        egress=f"allowed.test:{web}",
    )
    settings = load_settings(overrides={"home": str(home), **FAST}, environ={})
    result = run(request, settings=settings)
    assert result.run.outcome == Outcome.SUCCEEDED, result.run.error
    assert_held((Path(result.session.worktree) / "saw.txt").read_text().splitlines(), web)
    said = str(claude.conversation()[-1].messages[-1]["content"])  # type: ignore[attr-defined]
    assert f"key=baton-run-{result.run.id}." in said, said  # the run's token, not the key
    assert claude.keys_seen and set(claude.keys_seen) == {"mock-key"}  # type: ignore[attr-defined]
    assert refusals(settings) == [("blocked.test", result.run.id)]
    assert left_containers() == []
