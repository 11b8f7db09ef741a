"""``baton forge ls|show|bind|unbind|reconcile|test``: threads bound to issues and pull requests.

A conversation is written as the forge names it: ``github:acme/api#42`` (the configured forge's name,
the repository's full name, the issue's or PR's number; GitLab's merge request ``gitlab:group/api!7``, a
thread apart from issue ``#7``'s); ``acme/api#42`` when one forge is configured
(:func:`baton.forge.turn.refs.parse_ref` reads it: ``#N`` is never merge request ``!N``'s thread).
``reconcile`` runs the turns it starts in this process (the in-process executor, or the fleet's workers
when a broker is configured) and waits for them, so it is complete when it returns.
"""

from __future__ import annotations

import getpass
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from baton.cli.common import (
    JsonOpt,
    WideOpt,
    ago,
    cli_store,
    emit_json,
    err,
    esc,
    group,
    new_table,
    out,
    print_table,
)
from baton.errors import BadInput, NotFound
from baton.models import JobStatus

if TYPE_CHECKING:
    from baton.forge.turn.loop import ForgeLoop
    from baton.store.base import Store

forge_app = group("Threads bound to forge issues and pull requests: the feedback loop.")
ConvArg = Annotated[
    str, typer.Argument(help="FORGE:OWNER/NAME#N, e.g. github:acme/api#42 (a GitLab merge request: !N)")
]


@contextmanager
def forge_loop(run_turns: bool = False) -> Iterator[ForgeLoop]:
    """The operator's forge loop; with ``run_turns``, an executor in this process runs (and publishes)
    the turns it starts, and is waited for at the end."""
    # lazy: cold CLI
    from baton import tracing
    from baton.fleet.executor import make_executor
    from baton.forge.kinds.configured import load_forges
    from baton.forge.writes import publish

    with cli_store() as (settings, store):
        tracing.configure(settings)  # BATON_OTEL=on: a reconcile is a trace, its turns in it
        config = load_forges(settings.home)
        if not config.forges:
            raise BadInput(
                'no forge is configured: add [forge.<name>] and [repo."owner/name"] to config.toml'
            )
        if not run_turns:
            loop = publish.compose(settings, store, config, lambda _job: None)
            try:
                yield loop
            finally:
                loop.close()
            return
        executor = make_executor(settings, store)
        submitted: list[str] = []

        def submit(job_id: str) -> None:
            submitted.append(job_id)
            executor.submit(job_id)

        loop = publish.compose(settings, store, config, submit, publishing=True, cancel=executor.cancel)
        executor.start()
        try:
            yield loop
            _await_turns(store, submitted, settings.run_timeout or 3600.0)
        finally:
            executor.stop()
            loop.close()


def _await_turns(store: Store, jobs: list[str], longest: float) -> None:
    """Until every job ``jobs`` names has ended and its turn is published (the executor's stop waits
    only 10 s, and on a busy machine a turn and its push take longer), or ``longest`` seconds."""
    # lazy: cold CLI
    from baton.forge.data.tables import forge_store

    deadline = time.monotonic() + longest + 60.0
    while time.monotonic() < deadline:
        unpublished = {turn["job_id"] for turn in forge_store(store).unpublished_turns(limit=1000)}
        records = [store.get_job(job_id) for job_id in jobs]
        if all(r is None or r.status == JobStatus.DONE for r in records) and not unpublished & set(jobs):
            return
        time.sleep(0.1)


@forge_app.command("ls")
def forge_ls(
    status: Annotated[str | None, typer.Option(help="active, needs_human or closed")] = None,
    as_json: JsonOpt = False,
    wide: WideOpt = False,
) -> None:
    """List bound threads: the conversation, its key, status, PR and when it last changed."""
    # lazy: cold CLI
    from baton.forge.data.records import BindingStatus
    from baton.forge.data.tables import forge_store
    from baton.forge.kinds.registry import facts

    with forge_loop() as loop:
        rows = forge_store(loop.store).list_bindings(status=BindingStatus(status) if status else None)
    if as_json:
        emit_json([b.to_json() for b in rows])
        return
    table = new_table("conversation", "thread", "agent", "status", "pr", "updated")
    for b in rows:
        forge = loop.config.forges.get(b.forge)
        pr = (facts(forge.kind).ref(b.pr, True) if forge else f"#{b.pr}") if b.pr else "-"  # GitLab's: !N
        table.add_row(*map(esc, (b.conversation, b.thread, b.agent, b.status.value, pr, ago(b.updated_at))))
    print_table(table, wide)


@forge_app.command("show")
def forge_show(conversation: ConvArg, as_json: JsonOpt = False) -> None:
    """A bound thread: its issue or PR, feedback events with their sources, turns and budget."""
    # lazy: cold CLI
    from baton.forge.turn.refs import parse_ref
    from baton.forge.turn.threads import thread_state

    with forge_loop() as loop:
        ref = parse_ref(loop.config, conversation)
        state = thread_state(loop, ref.forge, ref.repo, ref.number, ref.pr)
    if state is None:
        raise NotFound(f"{ref} is not bound to a thread")
    if as_json:
        emit_json(state)
        return
    b = state["binding"]
    console = out()
    console.print(esc(f"{b['conversation']} → {b['agent']} {b['repo_slug']} {b['thread']} ({b['status']})"))
    if b.get("note"):
        console.print(esc(f"  {b['note']}"))
    if b.get("pr"):
        pr = state.get("pr_ref") or f"#{b['pr']}"
        console.print(esc(f"  PR {pr} on {b.get('branch')} at {str(b.get('head_sha'))[:12]}"))
    budget = state["budget"]
    console.print(esc(f"  turns today: {budget['turns_today']} of {budget['per_day']}"))
    for failure in budget["failures"]:
        checks = ", ".join(failure["checks"]) or failure["signature"]
        console.print(esc(f"  CI failure {checks}: {failure['spent']} of {budget['per_failure']} turns"))
    table = new_table("event", "kind", "by", "status", "run", "why")
    for e in state["events"]:
        table.add_row(
            *map(
                esc,
                (
                    e["identity"][:40],
                    e["kind"],
                    e["actor"] or "-",
                    e["status"],
                    e["run_id"] or "-",
                    e["reason"] or "",
                ),
            )
        )
    print_table(table, False)


@forge_app.command("bind")
def forge_bind(
    conversation: ConvArg,
    agent: Annotated[str | None, typer.Option("--agent", "-a", help="default: the repository's")] = None,
    thread: Annotated[str | None, typer.Option("--thread", "-t", help="default: issue-N or pr-N")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Bind an issue or PR to a thread: its feedback becomes turns of the thread's conversation."""
    # lazy: cold CLI
    from baton.forge.turn.refs import parse_ref
    from baton.forge.turn.threads import bind_thread

    with forge_loop() as loop:
        ref = parse_ref(loop.config, conversation)
        binding = bind_thread(
            loop, ref.forge, ref.repo, ref.number, agent, thread, f"cli:{getpass.getuser()}", pr=ref.pr
        )
    if as_json:
        emit_json(binding.to_json())
        return
    out().print(
        esc(f"{binding.conversation} is bound to {binding.agent} {binding.repo_slug} {binding.thread}")
    )


@forge_app.command("unbind")
def forge_unbind(conversation: ConvArg) -> None:
    """Unbind: the thread keeps its conversation and worktree; feedback no longer reaches it."""
    # lazy: cold CLI
    from baton.forge.turn.refs import parse_ref
    from baton.forge.turn.threads import unbind_thread

    with forge_loop() as loop:
        ref = parse_ref(loop.config, conversation)
        unbound = unbind_thread(loop, ref.forge, ref.repo, ref.number, f"cli:{getpass.getuser()}", ref.pr)
    if unbound is None:
        raise NotFound(f"{ref} is not bound to a thread")
    out().print(esc(f"{unbound} unbound" if unbound == str(ref) else f"{unbound} unbound (named {ref})"))


@forge_app.command("reconcile")
def forge_reconcile(as_json: JsonOpt = False) -> None:
    """Ask every configured forge what webhooks missed, act on it, and run the turns it starts."""
    # lazy: cold CLI
    from baton.forge.background.reconcile import reconcile

    with forge_loop(run_turns=True) as loop:
        report = reconcile(loop)
    data = report.to_json()
    if as_json:
        emit_json(data)
    else:
        outcomes = ", ".join(f"{n} {s}" for s, n in sorted(data["outcomes"].items())) or "nothing new"
        out().print(esc(f"{data['repos']} repositories, {data['threads']} bound threads: {outcomes}"))
        for error in data["errors"]:
            err().print(esc(f"error: {error}"))
    if data["errors"]:
        raise typer.Exit(1)


@forge_app.command("test")
def forge_test(as_json: JsonOpt = False) -> None:
    """Check what a turn needs of each forge: the token and API, baton's access, clone and push, webhooks."""
    # lazy: cold CLI
    from baton.forge.background.check import check_forges

    with forge_loop() as loop:
        checks = check_forges(loop)
    if as_json:
        emit_json(checks)
    else:
        for check in checks:
            mark = ("warn" if check.get("warn") else "ok") if check["ok"] else "FAIL"
            out().print(esc(f"{mark:4} {check['what']}: {check['detail']}"))
    if not all(c["ok"] for c in checks):
        raise typer.Exit(1)
