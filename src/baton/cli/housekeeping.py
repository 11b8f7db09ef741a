"""``baton sweep`` and ``baton du``: expiry and orphans, and where the disk goes."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from baton.cli.common import JsonOpt, cli_store, emit_json, esc, new_table, out

DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="report what would be removed; remove nothing")]


def size(n: int | None) -> str:
    from baton.settings import format_size

    return format_size(n)


def sweep_cmd(dry_run: DryRunOpt = False, as_json: JsonOpt = False) -> None:
    """Expire sessions past their TTL, purge closed ones past their grace period, remove orphan
    worktrees, prune git's worktree records; then evict idle worktrees over the quota."""
    from baton.housekeeping.sweep import sweep_and_enforce
    from baton.sessions.manage import local_actor

    with cli_store() as (settings, store):
        data = sweep_and_enforce(store, settings, local_actor(), dry_run=dry_run)
    if as_json:
        emit_json(data)
        return
    _print_sweep(data)


def _print_sweep(data: dict[str, Any]) -> None:
    verb = "would free" if data["dry_run"] else "freed"
    lines = [
        f"expired {len(data['expired'])} session(s), purged {len(data['purged'])}, "
        f"removed {len(data['orphans'])} orphan director(ies); {verb} {size(data['freed_total'])}",
        "  " + ", ".join(f"{name} {size(n)}" for name, n in data["freed"].items()),
    ]
    lines += [f"  expired {k}" for k in data["expired"]]
    lines += [f"  checkpoint of {k} kept at {ref}" for k, ref in data["checkpoints"].items()]
    lines += [f"  purged {k}" for k in data["purged"]]
    lines += [f"  orphan {p}" for p in data["orphans"]]
    lines += [f"  skipped {k}: {why}" for k, why in data["skipped"].items()]
    lines += [f"  evicted the worktree of {e['key']} ({size(e['bytes'])})" for e in data.get("evictions", [])]
    lines += [f"  error {k}: {why}" for k, why in data["errors"].items()]
    for line in lines:
        out().print(esc(line), highlight=False)


def du_cmd(as_json: JsonOpt = False) -> None:
    """Disk use: per agent, per repo and per session (worktree, transcript, snapshot), cache clones,
    agent homes, and the free space of the volume."""
    from baton.housekeeping.disk import usage

    with cli_store() as (settings, store):
        report = usage(store, settings)
    data = report.to_json()
    if as_json:
        emit_json(data)
        return
    _print_du(data)


def _print_du(data: dict[str, Any]) -> None:
    console = out()
    quota = f", quota {size(data['quota'])}" if data["quota"] else ""
    console.print(
        esc(f"{data['home']}: {size(data['total'])} used{quota}; {size(data['free'])} free"), highlight=False
    )
    for title in ("agents", "repos"):
        table = new_table(title[:-1], "sessions", "worktrees", "transcripts", "snapshots")
        for name, row in sorted(data[title].items()):
            cells = [
                name,
                str(row["sessions"]),
                *(size(row[k]) for k in ("worktree", "transcript", "snapshot")),
            ]
            table.add_row(*map(esc, cells))
        console.print(table)
    table = new_table("cache clone / agent home", "size")
    for name, n in [*data["caches"].items(), *(("home " + a, b) for a, b in data["homes"].items())]:
        table.add_row(esc(name), size(n))
    table.add_row("store", size(data["store"]))
    console.print(table)
