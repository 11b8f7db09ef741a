"""``baton sweep`` and ``baton du``: expiry and orphans, and where the disk goes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from baton.cli.common import JsonOpt, WideOpt, ago, cli_store, emit_json, esc, new_table, out, print_table
from baton.cli.listing import emit_json_with
from baton.settings import format_size

if TYPE_CHECKING:
    from baton.housekeeping.fleetdisk import FleetDisk

DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="report what would be removed; remove nothing")]
PruneOpt = Annotated[
    bool,
    typer.Option(
        "--prune",
        help="prune every idle key's rebuildable artefacts (ignored node_modules, .venv, target, ...), "
        "not only under disk pressure",
    ),
]
ARTEFACTS_SHOWN = 20  # keys with rebuildable bytes in `baton du`'s table (all of them: --json)


def size(n: int | None) -> str:
    return format_size(n)


def sweep_cmd(dry_run: DryRunOpt = False, prune: PruneOpt = False, as_json: JsonOpt = False) -> None:
    """Expire sessions past their TTL, purge closed ones past their grace period, remove orphan
    worktrees, prune git's worktree records; then, over the quota or under min_free, prune idle keys'
    rebuildable artefacts and only then evict idle worktrees."""
    # lazy: cold CLI
    from baton.housekeeping.sweep import sweep_and_enforce
    from baton.sessions.manage import local_actor

    with cli_store() as (settings, store):
        data = sweep_and_enforce(store, settings, local_actor(), dry_run=dry_run, prune=prune)
    if as_json:
        emit_json(data)
        return
    _print_sweep(data)


def _print_sweep(data: dict[str, Any]) -> None:
    dry = data["dry_run"]
    expire, purge, remove, free = (
        ("would expire", "purge", "remove", "free") if dry else ("expired", "purged", "removed", "freed")
    )
    lines = [
        f"{expire} {len(data['expired'])} session(s), {purge} {len(data['purged'])}, "
        f"{remove} {len(data['orphans'])} orphan director(ies); {'would ' if dry else ''}{free} "
        f"{size(data['freed_total'])}" + (" (dry run: nothing was removed)" if dry else ""),
        "  " + ", ".join(f"{name} {size(n)}" for name, n in data["freed"].items()),
    ]
    lines += [f"  expired {k}" for k in data["expired"]]
    lines += [f"  checkpoint of {k} kept at {ref}" for k, ref in data["checkpoints"].items()]
    lines += [f"  purged {k}" for k in data["purged"]]
    lines += [f"  orphan {p}" for p in data["orphans"]]
    lines += [f"  package caches of {slug} (no session left)" for slug in data.get("package_caches", [])]
    lines += [f"  prepared environment {p}" for p in data.get("prepared", [])]
    stop = "would stop" if dry else "stopped"
    lines += [f"  {stop} the service container {c}" for c in data.get("services", [])]
    lines += [
        f"  ended {n} process(es) run {r} left (its runner died)"
        for r, n in data.get("leftovers", {}).items()
    ]
    lines += _prunings(data.get("prunings", []), dry)
    lines += [f"  skipped {k}: {why}" for k, why in data["skipped"].items()]
    lines += [f"  evicted the worktree of {e['key']} ({size(e['bytes'])})" for e in data.get("evictions", [])]
    lines += [f"  error {k}: {why}" for k, why in data["errors"].items()]
    for line in lines:
        out().print(esc(line), highlight=False)


def _prunings(prunings: list[dict[str, Any]], dry: bool) -> list[str]:
    lines = []
    for p in prunings:
        verb = "would prune" if dry else "pruned"
        lines.append(f"  {verb} {size(p['bytes'])} in {p['key']} ({p['reason']}):")
        lines += [
            f"    {a['path']}  {size(a['bytes'])}  (ignored and untracked {a['kind']}: rebuildable)"
            for a in p["artefacts"]
        ]
    return lines


FleetOpt = Annotated[
    bool, typer.Option("--fleet", help="every worker's volume, from their reports in the shared store")
]


def du_cmd(as_json: JsonOpt = False, fleet: FleetOpt = False, wide: WideOpt = False) -> None:
    """Disk use: per agent, per repo and per session (worktree, transcript, snapshot), cache clones,
    agent homes, the free space of the volume, and what of the worktrees is rebuildable (ignored
    artefacts a sweep prunes first) and what unique. --fleet: each worker's volume (by kind, free
    space, age of its report) and the fleet's total, as the workers last reported them."""
    if fleet:
        return _du_fleet(as_json, wide)
    # lazy: cold CLI
    from baton.housekeeping.disk import usage

    with cli_store() as (settings, store):
        report = usage(store, settings)
        workers = len(store.list_workers())
    data = report.to_json(sessions=False)
    if as_json:  # one session at a time: a list of 100,000 dicts is hundreds of MiB
        emit_json_with(data, "sessions", (s.to_json() for s in report.sessions))
        return
    data["sessions"] = [s.to_json() for s in report.sessions if s.rebuildable]  # what the table shows
    _print_du(data, wide)
    if workers:  # this home is not where a fleet's worktrees are
        out().print(
            f"{workers} worker(s) report their own disk to this store: baton du --fleet", highlight=False
        )


def _du_fleet(as_json: bool, wide: bool) -> None:
    # lazy: cold CLI
    from baton.housekeeping.fleetdisk import fleet_disk

    with cli_store() as (_settings, store):
        fleet = fleet_disk(store)
    if as_json:
        emit_json(fleet.to_json())
        return
    if not fleet.workers:
        out().print("no worker has reported its disk to this store (`baton worker` does, on start)")
        return
    _print_fleet(fleet, wide)


def _print_fleet(fleet: FleetDisk, wide: bool) -> None:
    console = out()
    table = new_table("worker", "reported", "used", "worktrees", "transcripts", "caches", "rest", "free")
    for row in [*fleet.workers, fleet.total]:
        kinds = row.kinds
        rest = row.used - kinds["worktrees"] - kinds["transcripts"] - kinds["caches"]
        reported = "" if row is fleet.total else ago(row.reported_at) + (" STALE" if row.stale else "")
        sizes = [row.used, kinds["worktrees"], kinds["transcripts"], kinds["caches"], rest, row.free]
        table.add_row(*map(esc, [row.name, reported, *map(size, sizes)]))
    print_table(table, wide)
    for title, values in (("agent", fleet.total.agents), ("repo", fleet.total.repos)):
        by = new_table(title, "worktrees + transcripts")
        for name, n in values.items():
            by.add_row(esc(name), size(n))
        print_table(by, wide)
    counted = len(fleet.workers) - fleet.stale
    note = f"total: {counted} of {len(fleet.workers)} worker(s); a stale report (3 periods late) is not in it"
    console.print(esc(note), highlight=False)
    console.print("rest: agent homes besides transcripts, run logs, the store, the rest", highlight=False)


def _print_du(data: dict[str, Any], wide: bool) -> None:
    console = out()
    quota = f", quota {size(data['quota'])}" if data["quota"] else ""
    console.print(
        esc(f"{data['home']}: {size(data['total'])} used{quota}; {size(data['free'])} free"), highlight=False
    )
    worktrees = data.get("worktrees", {})
    if worktrees.get("shared"):  # reflinked worktrees: what they hold as files is not what the disk holds
        console.print(
            f"worktrees: {size(worktrees['allocated'])} of files, {size(worktrees['physical'])} on disk "
            f"({size(worktrees['shared'])} shared by reflinks, {size(worktrees['exclusive'])} their own)",
            highlight=False,
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
        print_table(table, wide)
    _print_split(data, wide)
    table = new_table("cache clone / package caches / prepared / agent home", "size")
    packages = (("packages " + slug, n) for slug, n in data.get("package_caches", {}).items())
    ready = (
        (
            f"prepared {slug} ({p['trees']} tree(s); {p['preparations']} preparation(s), {p['hits']} hit(s))",
            p["bytes"],
        )
        for slug, p in data.get("prepared", {}).items()
    )
    homes = (("home " + a, b) for a, b in data["homes"].items())
    for name, n in [*data["caches"].items(), *packages, *ready, *homes]:
        table.add_row(esc(name), size(n))
    table.add_row("store", size(data["store"]))
    print_table(table, wide)


def _print_split(data: dict[str, Any], wide: bool) -> None:
    """Worktrees' rebuildable and unique bytes, in total and for the keys holding the most artefacts."""
    console = out()
    console.print(
        f"worktrees: {size(data['rebuildable'])} rebuildable (ignored artefacts: pruned first under disk "
        f"pressure, or by baton sweep --prune), {size(data['unique'])} unique",
        highlight=False,
    )
    keys = [s for s in data["sessions"] if s["rebuildable"]]
    keys.sort(key=lambda s: (-s["rebuildable"], s["key"]))
    if not keys:
        return
    table = new_table("key", "worktree", "rebuildable", "unique", "artefacts")
    for s in keys[:ARTEFACTS_SHOWN]:
        kinds = ", ".join(sorted({a["kind"] for a in s["artefacts"]}))
        sizes = [size(s[name]) for name in ("worktree", "rebuildable", "unique")]
        table.add_row(*map(esc, [s["key"], *sizes, kinds]))
    print_table(table, wide)
    if len(keys) > ARTEFACTS_SHOWN:
        more = len(keys) - ARTEFACTS_SHOWN
        console.print(f"{more} more key(s) with artefacts: baton du --json", highlight=False)
