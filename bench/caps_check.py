"""The cost of the spending-cap check before a turn (``baton.caps.check.reached``), over a store holding
10,000 runs: one repository, 100 threads of 100 runs each, every run a job, one in ten submitted by the
API token ``ci`` (the rest by seven others), and caps set in all four measures for the thread, the
repository and the token (so the check runs its three spend queries and three raise look-ups).
Standalone, not part of bench/run.py's suite:

    .venv/bin/python bench/caps_check.py [--runs 10000] [--repeat 200]

It prints the median and p95 of one check in milliseconds, and of each scope's spend query alone.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from baton.caps.check import Holds, reached
from baton.caps.model import Caps, Scope, thread_subject
from baton.caps.spend import spent
from baton.caps.tables import cap_store
from baton.models import JobRecord, Mode, Outcome, PromptKind, RunRecord
from baton.settings import load_settings
from baton.store import open_store

HIGH = Caps(usd=1e9, tokens=1e15, minutes=1e9, turns=1e9)  # set, never reached: every query runs


def fill(store: object, runs: int) -> None:
    now = time.time()
    for n in range(runs):
        job = f"job{n:06d}"
        actor = "ci" if n % 10 == 0 else f"user{n % 7}"
        store.add_job(JobRecord(job, "claude", "acme/api", f"t{n % 100}", {}, actor=actor, submitted_at=now))  # type: ignore[attr-defined]
        store.add_run(  # type: ignore[attr-defined]
            RunRecord(
                id=f"run{n:06d}",
                agent="claude",
                repo="acme/api",
                thread=f"t{n % 100}",
                attempt=1,
                mode=Mode.RESUME,
                prompt_kind=PromptKind.DELTA,
                prompt="p",
                outcome=Outcome.SUCCEEDED,
                started_at=now + n,
                ended_at=now + n + 30,
                cost_usd=0.01,
                usage={"input_tokens": 1000, "output_tokens": 200, "thread_total": {"input_tokens": 5}},
                agent_pid=1,
                job_id=job,
            )
        )


def timed(work: object, repeat: int) -> list[float]:
    took = []
    for _ in range(repeat):
        start = time.perf_counter()
        work()  # type: ignore[operator]
        took.append((time.perf_counter() - start) * 1000)
    return sorted(took)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        settings = load_settings(overrides={"home": home}, environ={})
        Path(home).mkdir(exist_ok=True)
        store = open_store(settings.resolved_store_url)
        fill(store, args.runs)
        cap_store(store).set_caps(Scope.TOKEN, "ci", HIGH, "bench")
        subject = thread_subject("claude", "acme/api", "t7")
        holds = Holds(subject, "acme/api", HIGH, HIGH, token="ci")
        assert reached(store, holds) is None
        rows = {
            "the whole check (3 scopes)": timed(lambda: reached(store, holds), args.repeat),
            "thread spend (100 runs)": timed(lambda: spent(store, Scope.THREAD, subject), args.repeat),
            f"repository spend ({args.runs} runs)": timed(
                lambda: spent(store, Scope.REPO, "acme/api"), args.repeat
            ),
            f"token spend ({args.runs // 10} of {args.runs} jobs)": timed(
                lambda: spent(store, Scope.TOKEN, "ci"), args.repeat
            ),
        }
        store.close()
    for name, took in rows.items():
        p95 = took[int(len(took) * 0.95) - 1]
        print(f"{name:32} median {statistics.median(took):7.2f} ms   p95 {p95:7.2f} ms")


if __name__ == "__main__":
    main()
