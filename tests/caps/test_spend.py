"""Spend is computed from the store's runs, one query per scope: USD, input+output tokens, wall-clock
minutes and turns (runs whose agent started) of a thread, of a repository, of an API token's jobs; the
decision is the first cap whose spend reached it with its raises."""

from __future__ import annotations

import math
import time

import pytest

from baton.caps.check import Holds, reached, standing
from baton.caps.model import Caps, Measure, Reached, Scope, check_cap, parse_raise, thread_subject
from baton.caps.spend import spent
from baton.caps.tables import cap_store
from baton.errors import BadInput
from baton.models import JobRecord, Mode, Outcome, PromptKind, RunRecord
from baton.store import Store

NOW = time.time()


def add_run(
    store: Store,
    thread: str = "t1",
    repo: str = "acme/api",
    agent: str = "claude",
    cost: float | None = 1.0,
    usage: dict[str, object] | None = None,
    seconds: float = 60.0,
    pid: int | None = 1234,
    job: str | None = None,
) -> RunRecord:
    run = RunRecord(
        id=f"r{time.monotonic_ns()}",
        agent=agent,
        repo=repo,
        thread=thread,
        attempt=1,
        mode=Mode.FRESH,
        prompt_kind=PromptKind.FULL,
        prompt="p",
        outcome=Outcome.SUCCEEDED,
        started_at=NOW,
        ended_at=NOW + seconds,
        cost_usd=cost,
        usage=usage if usage is not None else {"input_tokens": 100, "output_tokens": 20},
        agent_pid=pid,
        job_id=job,
    )
    store.add_run(run)
    return run


def test_a_threads_spend_is_summed_from_its_runs_alone(store: Store) -> None:
    add_run(store, cost=1.25, seconds=90)
    add_run(store, cost=2.5, usage={"input_tokens": 7, "output_tokens": 3, "cache_read_input_tokens": 999})
    add_run(store, cost=None, usage={}, seconds=30, pid=None)  # parked: no agent, no cost
    add_run(store, thread="t2", cost=100.0)  # another thread of the repo
    add_run(store, agent="codex", cost=100.0)  # another agent's thread of the same name
    found = spent(store, Scope.THREAD, thread_subject("claude", "acme/api", "t1"))
    assert found.usd == pytest.approx(3.75)
    assert found.tokens == 130  # input + output only, never cached reads
    assert found.minutes == pytest.approx((90 + 60 + 30) / 60)
    assert found.turns == 2  # the run whose agent never started is no turn


def test_a_repository_spends_across_its_threads_and_agents(store: Store) -> None:
    add_run(store, thread="a", cost=1.0)
    add_run(store, thread="b", agent="codex", cost=2.0)
    add_run(store, repo="acme/web", cost=50.0)
    found = spent(store, Scope.REPO, "acme/api")
    assert (found.usd, found.turns) == (3.0, 2)


def test_a_tokens_spend_is_the_runs_of_the_jobs_it_submitted(store: Store) -> None:
    for job_id, actor in (("j1", "ci"), ("j2", "ci"), ("j3", "alice")):
        store.add_job(JobRecord(job_id, "claude", "acme/api", "t1", {}, actor=actor, submitted_at=NOW))
    add_run(store, job="j1", cost=1.0)
    add_run(store, job="j1", cost=0.5)  # a retry: a second attempt of the same job
    add_run(store, job="j2", cost=2.0)
    add_run(store, job="j3", cost=40.0)
    add_run(store, cost=80.0)  # a baton run: no job
    assert spent(store, Scope.TOKEN, "ci").usd == 3.5
    assert spent(store, Scope.TOKEN, "nobody").usd == 0.0


def test_a_cap_is_reached_at_its_value_and_a_raise_lifts_it(store: Store) -> None:
    add_run(store, cost=4.8)
    subject = thread_subject("claude", "acme/api", "t1")
    holds = Holds(subject, "acme/api", Caps(usd=5.0), Caps())
    assert reached(store, holds) is None  # $4.80 of $5.00: the turn may start
    add_run(store, cost=0.2)
    found = reached(store, holds)
    assert found == Reached(Scope.THREAD, subject, Measure.USD, pytest.approx(5.0), 5.0)  # type: ignore[arg-type]
    cap_store(store).add_raise(Scope.THREAD, subject, Measure.USD, 5.0, "alice")
    assert reached(store, holds) is None
    [usd] = [s for s in standing(store, Scope.THREAD, subject, Caps(usd=5.0)) if s.measure == Measure.USD]
    assert (usd.cap, usd.raised, usd.limit) == (5.0, 5.0, 10.0)
    # a raise of another thread, measure or scope lifts nothing here
    cap_store(store).add_raise(Scope.REPO, subject, Measure.USD, 50.0, "alice")
    cap_store(store).add_raise(Scope.THREAD, subject, Measure.TURNS, 50.0, "alice")
    add_run(store, cost=5.0)
    assert reached(store, holds) is not None


def test_repo_and_token_caps_hold_each_thread(store: Store) -> None:
    store.add_job(JobRecord("j1", "claude", "acme/api", "other", {}, actor="ci", submitted_at=NOW))
    add_run(store, thread="other", job="j1")
    subject = thread_subject("claude", "acme/api", "t1")
    assert reached(store, Holds(subject, "acme/api", Caps(), Caps(turns=1))) == Reached(
        Scope.REPO, "acme/api", Measure.TURNS, 1.0, 1.0
    )
    cap_store(store).set_caps(Scope.TOKEN, "ci", Caps(minutes=1.0), "admin")
    found = reached(store, Holds(subject, "acme/api", Caps(), Caps(), token="ci"))
    assert found is not None and (found.scope, found.measure) == (Scope.TOKEN, Measure.MINUTES)
    assert reached(store, Holds(subject, "acme/api", Caps(), Caps(), token="alice")) is None


def test_a_runs_cap_can_only_narrow_the_settings() -> None:
    assert Caps(usd=5.0).tightest(Caps(usd=10.0, turns=3)) == Caps(usd=5.0, turns=3)
    assert Caps(usd=5.0).tightest(Caps(usd=0.5)).usd == 0.5
    assert Caps(usd=0.0).get(Measure.USD) is None  # 0 is no cap


@pytest.mark.parametrize("bad", ["-5", "nan", "NaN", "inf", "1e309", "+abc", "", "+", "5$", "0", "+0", "--5"])
def test_hostile_raises_are_refused(bad: str) -> None:
    with pytest.raises(BadInput, match="must be"):
        parse_raise(Measure.USD, bad)


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf, float("1e309"), 1e10, True, "5"])
def test_hostile_caps_are_refused(bad: object) -> None:
    with pytest.raises(BadInput, match="max_usd"):
        check_cap(Measure.USD, bad)


def test_raises_and_caps_read_as_typed() -> None:
    assert parse_raise(Measure.USD, "+5") == 5.0
    assert parse_raise(Measure.USD, " 2.5 ") == 2.5
    assert parse_raise(Measure.TURNS, "+3") == 3.0
    with pytest.raises(BadInput, match="whole number"):
        parse_raise(Measure.TURNS, "+2.5")
    assert check_cap(Measure.TOKENS, 0) is None
    assert check_cap(Measure.TOKENS, 1000) == 1000.0


def test_a_run_whose_agent_reported_no_tokens_spends_what_the_gateway_read(store: Store) -> None:
    _wire_counts(store)


def test_postgresql_reads_the_wire_tokens_too(pg_store: Store) -> None:
    _wire_counts(pg_store)


def _wire_counts(store: Store) -> None:
    wire = {"input_tokens": 40_000, "output_tokens": 12, "requests": 1}
    add_run(store, usage={"wire": wire})  # stopped before its CLI said its usage
    add_run(
        store, usage={"input_tokens": 7, "output_tokens": 3, "wire": {"input_tokens": 9, "output_tokens": 3}}
    )
    assert spent(store, Scope.THREAD, thread_subject("claude", "acme/api", "t1")).tokens == 40_012 + 10
