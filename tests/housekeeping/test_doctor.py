"""`baton doctor`: a volatile BATON_HOME is a problem; retention, git and store are checked."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from baton.environment import servicerun
from baton.housekeeping.doctor import (
    CheckStatus,
    check_containment,
    check_git,
    check_home,
    check_services,
    mount_of,
    run_doctor,
)
from baton.settings import Settings, load_settings

Cli = Callable[..., subprocess.CompletedProcess[str]]

MOUNTS = """overlay / overlay rw,relatime 0 0
proc /proc proc rw 0 0
tmpfs /dev/shm tmpfs rw 0 0
/dev/vda /data ext4 rw 0 0
/dev/vdb /data/with\\040space xfs rw 0 0
"""


def test_mount_of_picks_the_longest_prefix(tmp_path: Path) -> None:
    mounts = tmp_path / "mounts"
    mounts.write_text(MOUNTS)
    assert mount_of(Path("/data/x/y"), mounts) == ("/data", "ext4")
    assert mount_of(Path("/dev/shm/baton"), mounts) == ("/dev/shm", "tmpfs")
    assert mount_of(Path("/database"), mounts) == ("/", "overlay")
    assert mount_of(Path("/data/with space/z"), mounts) == ("/data/with space", "xfs")


def test_tmpfs_home_is_an_error() -> None:
    shm = Path("/dev/shm")
    assert mount_of(shm)[1] == "tmpfs", "this machine's /dev/shm is expected to be tmpfs"
    check = check_home(load_settings(overrides={"home": str(shm / f"baton-{uuid.uuid4().hex}")}, environ={}))
    assert check.status == "error" and "tmpfs" in check.detail


def test_git_is_new_enough() -> None:
    assert check_git().status == "ok"


def test_doctor_json_reports_tmpfs_home(cli_here: Cli) -> None:
    home = Path("/dev/shm") / f"baton-doctor-{uuid.uuid4().hex}"
    try:
        result = cli_here("doctor", "--json", env={"BATON_HOME": str(home)})
        report = json.loads(result.stdout)
        assert result.returncode == 1
        assert report["ok"] is False
        failing = [c for c in report["checks"] if c["status"] == "error"]
        assert [c["name"] for c in failing] == ["data dir persistent"]
    finally:
        subprocess.run(["rm", "-rf", str(home)], check=True)


def test_doctor_on_a_good_home(settings: Settings, src_repo: Path) -> None:
    from baton import RunRequest, run

    run(RunRequest(agent="fake", repo=str(src_repo), thread="t", prompt="x"), settings=settings)
    checks = {c.name: c for c in run_doctor(settings)}
    assert checks["store"].status == "ok" and "schema version" in checks["store"].detail
    assert checks["claude CLI"].status == "ok"
    assert checks["data dir persistent"].status in ("ok", "warn")


@pytest.mark.parametrize("days", [30, 45])
def test_claude_retention_follows_ttl(tmp_path: Path, days: int) -> None:
    settings = load_settings(overrides={"home": str(tmp_path / "h"), "ttl_days": days}, environ={})
    from baton.agents import get_agent

    agent = get_agent("claude", settings)
    agent.prepare_home(settings.ttl_days)
    ok, detail = agent.retention(settings.ttl_days)
    assert ok and f"cleanupPeriodDays = {days}" in detail
    (agent.home / "settings.json").write_text('{"cleanupPeriodDays": 5, "theme": "dark"}')
    assert agent.retention(settings.ttl_days)[0] is False
    agent.prepare_home(settings.ttl_days)
    data = json.loads((agent.home / "settings.json").read_text())
    assert data == {"cleanupPeriodDays": days, "theme": "dark"}, "the user's own keys are kept"


def test_doctor_warns_about_transcripts_no_session_owns(settings: Settings, src_repo: Path) -> None:
    """A deleted baton.db leaves the agents' transcripts on disk: doctor says so."""
    from baton import RunRequest, run
    from baton.housekeeping.doctor import check_orphans

    run(RunRequest(agent="fake", repo=str(src_repo), thread="t", prompt="x"), settings=settings)
    assert check_orphans(settings).status == "ok"
    transcript = settings.home / "homes" / "claude" / "projects" / "-work-x" / f"{uuid.uuid4()}.jsonl"
    transcript.parent.mkdir(parents=True)
    transcript.write_text('{"type":"user"}\n')
    check = check_orphans(settings)
    assert check.status == "warn"
    assert "1 transcripts on disk belong to no session: the store was deleted or replaced" in check.detail


def test_doctor_reports_free_space(settings: Settings) -> None:
    from baton.housekeeping.doctor import check_free_space

    assert check_free_space(settings).status == "ok" and "GiB free" in check_free_space(settings).detail
    low = check_free_space(settings, minimum=1 << 60)
    assert low.status == "warn" and "disk full" in low.detail


def test_doctor_checks_credentials(settings: Settings) -> None:
    checks = {c.name: c for c in run_doctor(settings, environ={})}
    claude = checks["claude credentials"]
    assert claude.status == "warn"
    assert "ANTHROPIC_API_KEY" in claude.detail and "CLAUDE_CODE_OAUTH_TOKEN" in claude.detail
    assert claude.detail == (  # one sentence: the hint in parentheses, no stray fragment after it
        "none of ANTHROPIC_API_KEY, CLAUDE_CODE_OAUTH_TOKEN is set (an API key, or a long-lived token from "
        "`claude setup-token`): runs are refused as not authenticated (baton relocates the agent home, so a "
        "login in your own home is not used)"
    )
    keyed = {c.name: c for c in run_doctor(settings, environ={"CLAUDE_CODE_OAUTH_TOKEN": "t"})}
    assert keyed["claude credentials"].status == "ok"


def test_doctor_hints_suit_the_install(tmp_path: Path) -> None:
    from baton.install import agents_hint, npm_hint

    assert "make setup" not in npm_hint("@openai/codex@0.169.0", root=tmp_path)
    assert npm_hint("@openai/codex@0.169.0", root=tmp_path) == "npm install -g @openai/codex@0.169.0"
    assert "make setup" not in agents_hint(root=tmp_path) and "agent-baton" in agents_hint(root=tmp_path)
    assert "make setup" in agents_hint()  # this test runs in a source checkout


def test_doctor_says_which_run_limits_this_host_enforces(home: Path) -> None:
    grouped = check_containment(
        load_settings(overrides={"home": str(home), "run_cpu": 2, "key_disk": "5G"}, environ={})
    )
    assert grouped.status == CheckStatus.OK, grouped.detail  # this host: cgroup v1, as root
    assert "memory 8.0 GiB (cgroup v1)" in grouped.detail and "cpu 2.0 (cgroup v1)" in grouped.detail
    assert "a key's disk 5.0 GiB (BATON_KEY_DISK, watched during each run)" in grouped.detail
    off = check_containment(load_settings(overrides={"home": str(home), "cgroups": "off"}, environ={}))
    assert off.status == CheckStatus.WARN
    assert "not enforced: memory 8.0 GiB, pids 2048" in off.detail and "subreaper" in off.detail


def test_every_agent_implements_the_whole_agent_protocol(settings: Settings) -> None:
    """Adapters are loaded by name (importlib), so mypy never checks them against the Protocol: a
    method an adapter lacks was a doctor traceback (`'CopilotAgent' object has no attribute
    'retention'`) in any home where Copilot CLI or OpenCode had run."""
    from baton.agents import AGENTS, get_agent
    from baton.agents.base import Agent

    members = [name for name in vars(Agent) if not name.startswith("_")]
    assert "retention" in members and "prepare_home" in members
    for name in AGENTS:
        agent = get_agent(name, settings)
        missing = [member for member in members if not hasattr(agent, member)]
        assert not missing, f"{name} lacks {missing}"


def test_doctor_after_every_agent_made_its_home(settings: Settings, cli_here: Cli) -> None:
    """Every agent's home exists (as after a run of each): doctor checks each one's retention, and
    neither the table nor --json is a traceback."""
    from baton.agents import get_agent
    from baton.housekeeping.doctor import REAL_AGENTS

    for name in REAL_AGENTS:
        get_agent(name, settings).prepare_home(settings.ttl_days)  # what a run of each does first
    checks = {c.name: c for c in run_doctor(settings)}
    for name in REAL_AGENTS:
        assert checks[f"{name} retention"].status == "ok", checks[f"{name} retention"]
        assert "could not be checked" not in checks[f"{name} CLI"].detail
    done = cli_here("doctor", "--json", env={"BATON_HOME": str(settings.home)})
    assert "Traceback" not in done.stderr
    report = json.loads(done.stdout)
    assert {f"{name} retention" for name in REAL_AGENTS} <= {c["name"] for c in report["checks"]}


def test_a_bug_in_one_agents_check_is_one_line_not_a_traceback(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from baton.housekeeping import doctor

    real = doctor.check_agent

    def broken(name: str, *args: object, **kwargs: object) -> list[doctor.Check]:
        if name == "codex":
            raise AttributeError("'CodexAgent' object has no attribute 'retention'")
        return real(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(doctor, "check_agent", broken)
    checks = {c.name: c for c in run_doctor(settings)}
    assert checks["codex CLI"].status == "error"
    assert "could not be checked: AttributeError" in checks["codex CLI"].detail
    assert "claude CLI" in checks and "claude retention" in checks, "the other agents are still checked"


def test_doctor_says_what_each_acp_agent_needs_for_its_model(settings: Settings) -> None:
    """What the runs cannot check before they start: Copilot CLI with a provider of its own and no
    model exits during initialize; OpenCode without a provider in its config is online only (and does not
    read OPENAI_BASE_URL). Each is one line naming what to set."""
    from baton.testing.mock_openai_agents import MockCopilot, MockOpenCode

    provider = MockCopilot(port=41236).env()
    bare = {k: v for k, v in provider.items() if k != "COPILOT_MODEL"}
    checks = {c.name: c for c in run_doctor(settings, environ={**bare, "OPENAI_BASE_URL": "http://h/v1"})}
    copilot, opencode = checks["copilot model"], checks["opencode model"]
    assert copilot.status == "warn" and "COPILOT_MODEL is not set" in copilot.detail
    assert "BYOK providers require an explicit model" in copilot.detail
    assert opencode.status == "warn" and "no model in " in opencode.detail
    assert "OPENAI_BASE_URL is set, but OpenCode does not read it" in opencode.detail
    assert "--agent opencode --print-config" in opencode.detail
    MockOpenCode(port=41236).configure_home(settings.home / "homes" / "opencode")
    checks = {c.name: c for c in run_doctor(settings, environ=provider)}
    assert checks["copilot model"].status == "ok"
    assert checks["copilot model"].detail == "gpt-5.5 at http://127.0.0.1:41236/v1"
    assert checks["opencode model"].status == "ok"
    assert checks["opencode model"].detail.startswith("mock/gpt-5.5 at http://127.0.0.1:41236/v1")
    assert "claude model" not in checks  # Claude Code, Codex and Gemini take their model from baton's env


def test_doctor_says_what_starts_a_repositorys_services(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    off = check_services(settings.with_(services_engine="off"))
    assert off.status == "ok" and off.detail.startswith("off (services_engine = off)")
    monkeypatch.setattr(servicerun, "engine", lambda _settings: None)  # a host with neither engine
    none = check_services(settings)
    assert none.status == "warn" and "no podman or docker on PATH" in none.detail
    assert "services (.baton/services.toml) are skipped" in none.detail
    monkeypatch.setattr(servicerun, "engine", lambda _settings: "/usr/bin/podman")
    found = check_services(settings)
    assert found.status == "ok" and found.detail.startswith("/usr/bin/podman (network host")
