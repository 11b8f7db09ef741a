"""The whole fleet in containers, with faults: ``deploy/fleet/fleet.sh up`` (what ``make fleet-up`` runs)
plays deploy/fleet's manifests with ``podman kube play`` — ``baton serve``, two ``baton worker`` pods,
PostgreSQL, Redis and RabbitMQ (the broker) — and forty runs over eight keys go in through the API,
each a turn of the REAL Claude Code CLI inside a worker container against the mock model server on the
host's loopback (the pods are on the host's network). Meanwhile one worker is ``podman kill``ed in the
middle of a turn (and started again, as a kubelet would: podman does not restart a container it was
told to kill), the broker's pod is restarted, and the API's pod is restarted (the last eight runs are
submitted after it is back).

Afterwards: every run ended ``succeeded`` (none queued or running); the killed turn is recorded
``crashed`` and its key was taken over and continued — the retry resumed the same conversation with
the "interrupted" prompt, and the mock saw that key's history grow, never restart; every instruction
was answered exactly once in its key's final history; runs of a key never overlapped (the store's
records: no key had two agents at once); each key has five succeeded runs, one conversation, and the
counts add up. Then the forge loop (the fleet's fake GitHub, on the host): a mention made while the
API's pod is down is found by the restarted API's reconcile, run on a worker and published once; and
the drain: a turn running on a worker finishes ``succeeded`` through a plain ``podman pod stop`` of its
pod and through ``fleet.sh down``, well past podman's default 10 s. Timings are printed (``-s``) for
docs/deploy.md.

Needs root and podman (``make setup`` installs podman; CI runs as root); fails, never skips, without.
The images are built when missing (about 4.5 minutes the first time); with them, about two minutes.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from baton.models import JobStatus, Outcome, PromptKind, RunRecord
from baton.sandbox import reaper
from baton.store import Store, open_store
from baton.testing.mock_anthropic import MockAnthropic, MockRequest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800 + 120)]  # fleet.sh (its images) is given 1800 s
SERVICE_FIXTURES = {"fleet": "image"}  # podman as root, like the image's own test

ROOT = Path(__file__).resolve().parents[2]
FLEET = ROOT / "deploy" / "fleet"
API = "http://127.0.0.1:28765"
KEYS, TURNS = 8, 5
DELAY = 2.0  # seconds the mock holds each reply: a turn is long enough to be killed in the middle
QUICK = 0.2  # once the kill and the restarts are behind: the turns left only have to end
WORKER, SERVICE = "baton-worker-0-worker", "baton-api-0-api"  # containers (pod baton-worker-0: its worker)
# Restarted as pods: a pod of `kube play` has the exit policy "stop" (its infra container stops once its
# last container has), so `podman restart` of its one container fails ("cannot get namespace path ...
# container is stopped"), and `podman pod restart` races that policy, which may stop the container it
# just started (seen 2 times in 3). Stopped, seen exited, started: restart_pod.
BROKER_POD, SERVICE_POD = "baton-rabbitmq-0", "baton-api-0"
TOKEN = re.compile(r"\[(k\d+)\] turn (\d+)")


@dataclass
class TimedMock(MockAnthropic):
    """The mock, noting when each request arrived: a request younger than its delay is still unanswered."""

    arrived: dict[int, float] = field(default_factory=dict)

    def record(self, request: MockRequest) -> int:
        self.arrived[id(request)] = time.monotonic()
        return super().record(request)

    def unanswered(self, margin: float) -> list[MockRequest]:
        """Requests whose reply is still at least ``margin`` seconds away."""
        now = time.monotonic()
        return [r for r in self.conversation() if now - self.arrived[id(r)] < self.delay - margin]


@dataclass
class Fleet:
    store: Store
    model: TimedMock
    repo: str
    secrets: Path
    token: str = ""
    timings: dict[str, float] = field(default_factory=dict)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def fleet_sh(command: str, secrets: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FLEET_SECRETS": str(secrets), "PY": str(ROOT / ".venv" / "bin" / "python")}
    return subprocess.run(
        [str(FLEET / "fleet.sh"), command], env=env, capture_output=True, text=True, timeout=1800
    )


def listed(kind: str) -> list[str]:
    """The names podman lists of a kind of object (``volume``, ``secret``)."""
    done = subprocess.run(
        ["podman", kind, "ls", "--format", "{{.Name}}"], capture_output=True, text=True, check=True
    )
    return done.stdout.split()


def env_file(path: Path) -> dict[str, str]:
    lines = [line.partition("=") for line in path.read_text().splitlines() if "=" in line]
    return {key: value for key, _, value in lines}


@pytest.fixture(scope="module")
def git_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A repository the workers clone over git:// from the host's loopback."""
    base = tmp_path_factory.mktemp("git")
    work = base / "work"
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    (work / "README.md").write_text("the fleet's test repository\n")
    subprocess.run(["git", "-C", str(work), "add", "."], check=True)
    subprocess.run(["git", "-C", str(work), "commit", "-qm", "init"], check=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(base / "src.git")], check=True)
    port = free_port()
    daemon = subprocess.Popen(
        [
            "git",
            "daemon",
            "--reuseaddr",
            f"--base-path={base}",
            "--export-all",
            "--listen=127.0.0.1",
            f"--port={port}",
            str(base),
        ],
        start_new_session=True,  # its forked children go with it (killpg)
    )
    try:
        yield f"git://127.0.0.1:{port}/src.git"
    finally:
        os.killpg(daemon.pid, signal.SIGKILL)
        daemon.wait()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, git_daemon: str) -> Iterator[Fleet]:
    if os.geteuid() != 0:
        pytest.fail("the fleet runs in podman's rootful store: run this test as root", pytrace=False)
    if shutil.which("podman") is None:
        pytest.fail("podman is missing: `make setup` installs it as root (apt-get install podman runc)")
    secrets = tmp_path_factory.mktemp("secrets")
    with TimedMock(port=0, delay=DELAY) as model:
        made = subprocess.run(
            [str(ROOT / ".venv" / "bin" / "python"), str(FLEET / "render.py"), "secrets", str(secrets)],
            capture_output=True,
            text=True,
            check=True,
        )
        assert "store.env" in made.stderr
        env = model.env()
        (secrets / "credentials.env").write_text(f"ANTHROPIC_API_KEY={env.pop('ANTHROPIC_API_KEY')}\n")
        (secrets / "model.env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
        fleet_sh("down", secrets)  # a fleet left behind by an earlier run: its volumes would hold old runs
        # as a worker that ran an in-process turn is (baton's runner makes itself one): the fake GitHub
        # `up` leaves is re-parented to this process, which never reaps it; `down` must not wait on its
        # zombie (CI's failure: "the fake GitHub to stop is not ready after 30 s")
        assert reaper.become_subreaper()
        began = time.monotonic()
        up = fleet_sh("up", secrets)
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        timings = {"fleet_up_s": time.monotonic() - began}
        store = open_store(env_file(secrets / "store.env")["BATON_STORE_URL"])
        try:
            yield Fleet(store, model, git_daemon, secrets, timings=timings)
        finally:
            began = time.monotonic()
            down = fleet_sh("down", secrets)
            timings["fleet_down_s"] = time.monotonic() - began
            print(f"fleet timings: {json.dumps({k: round(v, 1) for k, v in timings.items()})}")
            assert down.returncode == 0, down.stdout[-3000:] + down.stderr[-3000:]
            left = subprocess.run(
                ["podman", "pod", "ps", "-q", "--filter", "name=baton-"],
                capture_output=True,
                text=True,
                check=True,
            )
            assert left.stdout.strip() == "", "fleet-down left pods behind"
            assert not [v for v in listed("volume") if "baton-" in v], "fleet-down left volumes behind"
            assert not [n for n in listed("secret") if n.startswith("baton-")], "fleet-down left secrets"
            again = fleet_sh("down", secrets)  # idempotent: nothing left to remove is no error
            assert again.returncode == 0, again.stderr[-2000:]


# -- driving the fleet -------------------------------------------------------------------------------


def until(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.3) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        time.sleep(interval)


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def submit(fleet: Fleet, turn: int) -> dict[str, str]:
    """One turn of every key: job id → its token ``[kK] turn T``."""
    ids = {}
    for key in range(KEYS):
        token = f"[k{key}] turn {turn}"
        body = {"agent": "claude", "repo": fleet.repo, "thread": f"k{key}", "prompt": f"{token}: say done"}
        answer = httpx.post(f"{API}/v1/runs", json=body, headers=fleet.headers(), timeout=30)
        assert answer.status_code == 202, answer.text
        ids[answer.json()["run_id"]] = token
    return ids


def podman(*argv: str) -> None:
    done = subprocess.run(["podman", *argv], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"podman {' '.join(argv)}: {done.stderr}"


def restart_pod(name: str, port: int) -> None:
    """Stop a pod, wait until podman sees it exited, start it, wait until it answers on ``port``."""
    podman("pod", "stop", name)

    def state() -> str:
        inspect = ["podman", "pod", "inspect", name, "--format", "{{.State}}"]
        return subprocess.run(inspect, capture_output=True, text=True, check=True).stdout.strip()

    until(lambda: state() == "Exited", 60, f"pod {name} to stop")
    podman("pod", "start", name)
    until(lambda: port_answers(port), 120, f"pod {name} to answer on {port}")


def port_answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), 1).close()
    except OSError:
        return False
    return True


def mid_turn_on_worker_0(fleet: Fleet) -> RunRecord | None:
    """A resumed turn (not a key's first) on baton-worker-0 whose request the mock holds for another
    second at least: its agent is waiting for the reply (killed after it, the turn would be answered
    twice: once before the kill, once by the retry)."""
    held = fleet.model.unanswered(margin=1.0)
    pending = {m.group(0) for r in held if (m := TOKEN.search(r.latest_user_text()))}
    asked = {m.group(0) for r in fleet.model.conversation() if (m := TOKEN.search(r.latest_user_text()))}
    on_0 = [r for r in fleet.store.list_runs(agent="claude", limit=50, outcome=Outcome.RUNNING)]
    on_0 = [r for r in on_0 if r.host == "baton-worker-0"]
    tokens = [t for r in on_0 if (t := TOKEN.search(r.prompt))]
    # another turn of the worker answered but not ended yet (its CLI still closing) would be answered
    # twice as well, by its own retry: kill only when none is
    if any(t.group(0) in asked and t.group(0) not in pending for t in tokens):
        return None
    for run in on_0:
        token = TOKEN.search(run.prompt)
        if token and token.group(2) != "0" and token.group(0) in pending:
            return run
    return None


def kill_a_worker_mid_turn(fleet: Fleet) -> RunRecord:
    found: list[RunRecord] = []

    def in_flight() -> bool:
        run = mid_turn_on_worker_0(fleet)
        found.extend([run] if run else [])
        return run is not None

    until(in_flight, 120, "a turn in flight on baton-worker-0", interval=0.05)
    podman("kill", WORKER)
    # started again once podman sees it dead (a kubelet's back-off would wait longer, for nothing the
    # test reads: the killed turn's record and its retry); podman restarts no container it killed
    until(lambda: container_state(WORKER) in ("exited", "stopped"), 60, f"{WORKER} to end", interval=0.1)
    podman("start", WORKER)
    return found[0]


def container_state(name: str) -> str:
    inspect = ["podman", "container", "inspect", name, "--format", "{{.State.Status}}"]
    return subprocess.run(inspect, capture_output=True, text=True, check=True).stdout.strip()


def ensure_token(fleet: Fleet) -> None:
    if not fleet.token:
        create = ["podman", "exec", SERVICE, "baton", "tokens", "create", "--name", "fault-test"]
        fleet.token = json.loads(subprocess.check_output([*create, "--scope", "run", "--json"]))["token"]


def progress(fleet: Fleet, more: int) -> Callable[[], bool]:
    seen = len(fleet.model.conversation())
    return lambda: len(fleet.model.conversation()) >= seen + more


# -- the test --------------------------------------------------------------------------------------------


def test_forty_real_claude_runs_survive_a_killed_worker_and_restarts_of_the_broker_and_the_service(
    fleet: Fleet,
) -> None:
    began = time.monotonic()
    ensure_token(fleet)
    jobs: dict[str, str] = {}
    for turn in range(TURNS - 1):
        jobs |= submit(fleet, turn)

    killed = kill_a_worker_mid_turn(fleet)
    until(progress(fleet, 4), 120, "turns after the kill")
    restart_pod(BROKER_POD, 35672)
    until(progress(fleet, 4), 180, "turns after the broker's restart")
    restart_pod(SERVICE_POD, 28765)
    until(lambda: answers(f"{API}/readyz"), 120, "the service back after its restart")
    fleet.model.delay = QUICK  # no fault is left to happen mid-turn: the rest need no held reply
    try:
        jobs |= submit(fleet, TURNS - 1)  # the restarted service takes runs again

        def ended() -> bool:
            return all(
                (job := fleet.store.get_job(j)) is not None and job.status == JobStatus.DONE for j in jobs
            )

        until(ended, 300, "every run to end")
    finally:
        fleet.model.delay = DELAY
    fleet.timings["runs_s"] = time.monotonic() - began
    check(fleet, jobs, killed)


def check(fleet: Fleet, jobs: dict[str, str], killed: RunRecord) -> None:
    records = {j: fleet.store.get_job(j) for j in jobs}
    outcomes = {j: r.outcome if r else None for j, r in records.items()}
    assert all(o == "succeeded" for o in outcomes.values()), {
        jobs[j]: o for j, o in outcomes.items() if o != "succeeded"
    }
    runs = {
        f"k{k}": sorted(
            fleet.store.list_runs("claude", killed.repo, f"k{k}", limit=100), key=lambda r: r.started_at
        )
        for k in range(KEYS)
    }
    everything = [r for rs in runs.values() for r in rs]
    assert {r.job_id for r in everything} >= set(jobs)
    # The killed turn: crashed, then taken over by a retry of the same job that resumed its conversation.
    dead = next(r for r in everything if r.id == killed.id)
    assert dead.outcome == Outcome.CRASHED, dead
    retry = next(r for r in runs[killed.thread] if r.started_at > dead.started_at)
    assert retry.job_id == dead.job_id and retry.prompt_kind == PromptKind.INTERRUPTED, retry
    assert retry.outcome == Outcome.SUCCEEDED and retry.session_id_in == dead.session_id_in, retry
    for thread, attempts in runs.items():
        ok = [r for r in attempts if r.outcome == Outcome.SUCCEEDED]
        assert len(ok) == TURNS and len({r.job_id for r in ok}) == TURNS, (
            f"{thread}: {len(ok)} succeeded: {describe(fleet, thread)}"
        )
        assert len({r.session_id_out for r in ok}) == 1, f"{thread}: more than one conversation"
        assert all(r.outcome in (Outcome.SUCCEEDED, Outcome.CRASHED) for r in attempts), [
            (r.outcome, r.error) for r in attempts
        ]
        for earlier, later in itertools.pairwise(attempts):
            end = earlier.ended_at if earlier.outcome != Outcome.CRASHED else earlier.heartbeat_at
            assert end is not None and end <= later.started_at, f"{thread}: two agents at once"
    crashed = [r for r in everything if r.outcome == Outcome.CRASHED]
    assert len(everything) == KEYS * TURNS + len(crashed)
    check_histories(fleet, jobs, killed)
    fleet.timings |= {"runs": len(everything), "crashed": len(crashed)}


def describe(fleet: Fleet, key: str) -> list[tuple[str, ...]]:
    """A key's attempts, for a failure's message."""
    runs = sorted(fleet.store.list_runs(agent="claude", thread=key, limit=100), key=lambda r: r.started_at)
    return [
        (
            r.prompt[:14],
            r.outcome.value,
            r.prompt_kind.value,
            r.mode.value,
            r.host,
            f"{r.started_at:.1f}",
            f"{r.ended_at or 0:.1f}",
            (r.job_id or "")[-6:],
        )
        for r in runs
    ]


def check_histories(fleet: Fleet, jobs: dict[str, str], killed: RunRecord) -> None:
    """What the mock saw: per key, histories that only grow; in the last one, every instruction of the
    key answered by the model exactly once (the interrupted one included). Only the mock's replies
    count as answers: resuming a conversation whose last message is an unanswered instruction, Claude
    Code puts an assistant message of its own after it (a placeholder, not the model's)."""
    by_key: dict[str, list[MockRequest]] = {}
    for request in fleet.model.conversation():
        first = TOKEN.search(request.text())
        assert first, request.text()[:300]
        by_key.setdefault(first.group(1), []).append(request)
    assert sorted(by_key) == sorted(f"k{k}" for k in range(KEYS))
    for key, requests in by_key.items():
        counts = [len(r.messages) for r in requests]
        assert counts == sorted(counts), f"{key}: a history shrank (a fresh conversation): {counts}"
        answered: dict[str, int] = {}
        current = None
        last_reply = {"role": "assistant", "content": "mock reply #0 (to the last request)"}
        for message in [*requests[-1].messages, last_reply]:
            text = json.dumps(message.get("content"))
            if message.get("role") == "user" and (found := TOKEN.findall(text)):
                current = "[{}] turn {}".format(*found[-1])
            elif message.get("role") == "assistant" and current and "mock reply #" in text:
                answered[current] = answered.get(current, 0) + 1
                current = None
        mine = sorted(t for t in jobs.values() if t.startswith(f"[{key}]"))
        assert answered == dict.fromkeys(mine, 1), (
            f"{key}: {answered}; killed {killed.prompt[:14]!r}; its runs: {describe(fleet, key)}; "
            f"its history: {[(m.get('role'), TOKEN.findall(json.dumps(m))) for m in requests[-1].messages]}"
        )
    retried = TOKEN.search(killed.prompt)
    assert retried
    last_before = [len(r.messages) for r in by_key[retried.group(1)] if retried.group(0) not in r.text()]
    assert last_before and len(by_key[retried.group(1)][-1].messages) > max(last_before)


# -- the forge loop: a webhook while the API restarts --------------------------------------------------

FORGE = tomllib.loads((FLEET / "forge.toml").read_text())
(FORGE_REPO,) = FORGE["repo"]
GITHUB = FORGE["forge"]["github"]["api_url"]  # the fake GitHub fleet.sh runs on the host
STATUS_HEAD = "**baton** · "  # how baton's status comment starts (baton.forge.turn.threads)


def github(fleet: Fleet, method: str, path: str, body: dict[str, object] | None = None) -> object:
    """A request to the fake GitHub as its person (alice, an admin; her token: the fleet's secrets)."""
    token = env_file(fleet.secrets / "fake-github.env")["FAKE_GITHUB_TOKEN"]
    answer = httpx.request(
        method, f"{GITHUB}{path}", json=body, headers={"Authorization": f"token {token}"}, timeout=30
    )
    assert answer.status_code < 300, answer.text
    return answer.json()


def statuses(fleet: Fleet, issue: int) -> list[str]:
    """baton's status comments on the issue (one a thread)."""
    found = github(fleet, "GET", f"/repos/{FORGE_REPO}/issues/{issue}/comments?per_page=100")
    assert isinstance(found, list)
    user = FORGE["forge"]["github"]["user"]
    return [c["body"] for c in found if c["user"]["login"] == user and c["body"].startswith(STATUS_HEAD)]


def forge_runs(fleet: Fleet, marker: str) -> list[RunRecord]:
    return [r for r in fleet.store.list_runs(agent="claude", limit=200) if marker in r.prompt]


def stop_pod(name: str) -> float:
    """``podman pod stop NAME`` as a person types it (no --time); seconds until podman sees it exited."""
    began = time.monotonic()
    podman("pod", "stop", name)

    def state() -> str:
        inspect = ["podman", "pod", "inspect", name, "--format", "{{.State}}"]
        return subprocess.run(inspect, capture_output=True, text=True, check=True).stdout.strip()

    until(lambda: state() == "Exited", 400, f"pod {name} to stop")
    return time.monotonic() - began


def test_a_mention_sent_while_the_api_restarts_is_not_lost_and_a_worker_runs_and_publishes_it_once(
    fleet: Fleet,
) -> None:
    """The fleet's forge loop (ConfigMap and Secret baton-forge in the API and worker pods) against the
    fake GitHub: the comment's webhook is sent while the API's pod is down (refused: GitHub does not
    send it again), and the restarted API's reconcile finds the mention; the turn runs on a worker
    and is published there: one status comment, succeeded. Another reconcile makes no second turn."""
    began = time.monotonic()
    marker = "[forge] restart"
    issue = github(fleet, "POST", f"/repos/{FORGE_REPO}/issues", {"title": "Notes", "body": "Write notes."})
    assert isinstance(issue, dict)
    number = int(issue["number"])
    stop_pod(SERVICE_POD)
    github(
        fleet, "POST", f"/repos/{FORGE_REPO}/issues/{number}/comments", {"body": f"@baton {marker}: say done"}
    )
    assert not answers(f"{API}/readyz")  # the delivery went to a pod that was down
    podman("pod", "start", SERVICE_POD)
    until(lambda: answers(f"{API}/readyz"), 120, "the service back after its restart")

    def published() -> bool:
        return any("**succeeded**" in s for s in statuses(fleet, number))

    until(published, 240, "the forge turn run and published", interval=1.0)
    fleet.timings["forge_turn_s"] = time.monotonic() - began
    [run] = forge_runs(fleet, marker)
    assert run.outcome == Outcome.SUCCEEDED and run.host.startswith("baton-worker-"), run
    reconcile = ["podman", "exec", SERVICE, "baton", "forge", "reconcile"]
    # it returns once every turn it started has ended and is published (baton.cli.forge's
    # `_await_turns`): a second turn, had it made one, would be in the store and on the issue now
    subprocess.run(reconcile, capture_output=True, text=True, check=True, timeout=120)
    assert len(forge_runs(fleet, marker)) == 1
    assert len(statuses(fleet, number)) == 1
    asked = [r for r in fleet.model.conversation() if marker in r.text()]
    assert asked, "the mock model never saw the forge turn"


# -- draining: a pod stop and fleet-down give a running turn the pod's grace ------------------------------

HOLD = 60.0  # the most the mock holds the drained turn's reply: `release_after` ends the hold sooner
PAST = 12.0  # seconds after the stop began that the reply is released: past podman's default 10 s stop


def release_after(fleet: Fleet, seconds: float) -> threading.Timer:
    """End the mock's hold ``seconds`` from now: a turn that replies then outlived podman's default
    stop (a SIGKILL at 10 s would have ended it first), with no longer wait than that."""
    timer = threading.Timer(seconds, fleet.model.released.set)
    timer.start()
    return timer


def a_turn_held_by_the_model(fleet: Fleet, thread: str) -> RunRecord:
    """Submit one run and wait until its agent is waiting on the mock's held reply; its attempt."""
    ensure_token(fleet)
    token = f"[{thread}] turn 0"
    body = {"agent": "claude", "repo": fleet.repo, "thread": thread, "prompt": f"{token}: say done"}
    answer = httpx.post(f"{API}/v1/runs", json=body, headers=fleet.headers(), timeout=30)
    assert answer.status_code == 202, answer.text
    until(
        lambda: any(token in r.latest_user_text() for r in fleet.model.conversation()), 120, f"{thread} asked"
    )
    [run] = fleet.store.list_runs(agent="claude", thread=thread, limit=5)
    assert run.outcome == Outcome.RUNNING and run.host.startswith("baton-worker-"), run
    return run


def ended(fleet: Fleet, run: RunRecord) -> RunRecord | None:
    found = [r for r in fleet.store.list_runs(agent="claude", thread=run.thread, limit=5) if r.id == run.id]
    return found[0] if found and found[0].outcome != Outcome.RUNNING else None


def test_a_stopped_worker_and_fleet_down_let_a_running_turn_finish(fleet: Fleet) -> None:
    """podman 4.3 ignores terminationGracePeriodSeconds (10 s, then SIGKILL); the fleet plays each pod
    with its grace as podman's stop timeout. A plain `podman pod stop` of the worker running a turn,
    then `fleet.sh down` (what `make fleet-down` runs) with another turn running: each turn ends
    ``succeeded``, well past 10 s after the stop began."""
    fleet.model.delay = HOLD
    fleet.model.released.clear()
    run = a_turn_held_by_the_model(fleet, "drain-stop")
    stop_wall = time.time()
    release_after(fleet, PAST)
    fleet.timings["worker_stop_s"] = stop_pod(run.host)
    done = ended(fleet, run)
    assert done is not None and done.outcome == Outcome.SUCCEEDED, done
    fleet.timings["stop_turn_past_s"] = (done.ended_at or 0) - stop_wall
    assert fleet.timings["stop_turn_past_s"] > 10.5, fleet.timings
    podman("pod", "start", run.host)

    fleet.model.released.clear()
    run = a_turn_held_by_the_model(fleet, "drain-down")
    down_wall = time.time()
    release_after(fleet, PAST)
    env = {**os.environ, "FLEET_SECRETS": str(fleet.secrets), "PY": str(ROOT / ".venv" / "bin" / "python")}
    down = subprocess.Popen(
        [str(FLEET / "fleet.sh"), "down"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen: list[RunRecord] = []
    while down.poll() is None and not seen:  # the store goes down after baton's pods: read it meanwhile
        with contextlib.suppress(Exception):
            seen += [r for r in [ended(fleet, run)] if r is not None]
        time.sleep(0.1)
    output, _ = down.communicate(timeout=600)
    assert down.returncode == 0, output[-3000:]
    fleet.timings["fleet_down_with_a_turn_s"] = time.time() - down_wall
    assert seen and seen[0].outcome == Outcome.SUCCEEDED, seen
    fleet.timings["down_turn_past_s"] = (seen[0].ended_at or 0) - down_wall
    assert fleet.timings["down_turn_past_s"] > 10.5, fleet.timings
