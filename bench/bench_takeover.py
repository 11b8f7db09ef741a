"""How long a turn whose machine died waits before it runs again (outside the suite: it waits out lease
TTLs). Two ``baton serve`` replicas on one store, each with its own home: the first runs a turn of the
fake agent (60 s long) and is killed with SIGKILL mid-turn; the figure is the time from the kill to the
start of the turn's next attempt on the survivor (its run record's ``started_at``), which resumes the
conversation. Two cases:

- ``same host``: the dead replica ran on the survivor's host, so its job lease is free at once (its
  pid is gone) and the survivor finds it at its next look for orphans (every lease TTL): 0 to 1 TTL;
- ``other host``: the dead replica ran "elsewhere" (its own UTS namespace with another host name, as
  root), so its job lease is free only once it expired: 1 to 2 TTLs.

    .venv/bin/python bench/bench_takeover.py [--ttl 30] [--samples 3]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from baton.fleet import jobs
from baton.models import JobStatus
from baton.settings import load_settings
from baton.store import open_store
from baton.testing.fake import register_fake

BATON = [sys.executable, "-m", "baton.cli"]


def replica(
    home: Path, store_url: str, ttl: float, delay: str, host: str | None, port: int = 0
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "BATON_HOME": str(home),
        "BATON_STORE_URL": store_url,
        "BATON_LEASE_TTL": str(ttl),
        "FAKE_AGENT_DELAY": delay,
        "BATON_FORGE_RECONCILE": "0",
    }
    argv = [*BATON, "serve", "--port", str(port)]
    if host is not None:  # another machine: its own host name
        argv = ["unshare", "--uts", "sh", "-c", f'hostname {host} && exec "$@"', "sh", *argv]
    home.mkdir(parents=True, exist_ok=True)
    log = (home / "serve.log").open("ab")
    return subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)


def sample(root: Path, repo: Path, ttl: float, other_host: bool) -> float:
    """One kill: seconds from the SIGKILL to the turn's next attempt."""
    store_url = f"sqlite:///{root / 'store' / 'baton.db'}"
    (root / "store").mkdir(parents=True)
    settings = load_settings(overrides={"home": str(root / "client"), "store_url": store_url}, environ={})
    store = open_store(store_url)
    doomed = replica(root / "a", store_url, ttl, "60", "machine-a" if other_host else None)
    try:
        body = {"agent": "fake", "repo": str(repo), "thread": "t1", "prompt": "a long turn"}
        job = jobs.submit(store, settings, body, "bench")
        _wait(lambda: bool([r for r in store.run_attempts(job.id) if r.agent_pid]), 60)
        port = free_port()
        survivor = replica(root / "b", store_url, ttl, "0", None, port)
        _wait(lambda: _answers(f"http://127.0.0.1:{port}/healthz"), 120)  # up: its first look found it held
        time.sleep(random.uniform(0, ttl))  # the kill comes anywhere between two of its looks
        doomed.send_signal(signal.SIGKILL)
        killed = time.time()
        doomed.wait()
        _wait(lambda: len(store.run_attempts(job.id)) >= 2, 4 * ttl + 30)
        again = store.run_attempts(job.id)[1].started_at - killed
        _wait(lambda: (store.get_job(job.id) or job).status == JobStatus.DONE, 60)
        survivor.send_signal(signal.SIGTERM)
        survivor.wait(30)
        return again
    finally:
        if doomed.poll() is None:
            doomed.kill()
        store.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False


def _wait(check: object, timeout: float) -> None:
    assert callable(check)
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("timed out")
        time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ttl", type=float, default=30.0, help="BATON_LEASE_TTL of both replicas")
    parser.add_argument("--samples", type=int, default=3)
    args = parser.parse_args()
    register_fake()  # here and in the replicas (through the environment)
    scratch = Path(tempfile.mkdtemp(prefix="baton-takeover-"))
    try:
        repo = scratch / "repo"
        subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
        (repo / "README.md").write_text("# r\n")
        subprocess.run(["git", "-C", str(repo), "add", "."], check=True)
        subprocess.run(
            ["git", "-C", str(repo), "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "init"],
            check=True,
        )
        for other in (False, True):
            took = [sample(scratch / f"{other}-{n}", repo, args.ttl, other) for n in range(args.samples)]
            where = "other host" if other else "same host"
            print(
                f"{where}: kill -9 → the turn runs again after {statistics.median(took):.1f} s median "
                f"(min {min(took):.1f}, max {max(took):.1f}; lease TTL {args.ttl:g} s, {args.samples} kills)"
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
