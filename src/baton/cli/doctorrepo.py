"""``baton doctor -r REPO``: the setup a repository's threads would get, found on its default branch's
head in baton's cache clone (fetched first, as a run does) and never run: which source applies and
why, its commands, what it skips, the test command its instruction files name, the configured
``[repo] setup`` that overrides it, its prepared trees, and the services its turns would start.
Everything shown is the repository's text: data, escaped, control characters made visible."""

from __future__ import annotations

import os
import posixpath
import tempfile
from pathlib import Path
from typing import Any

from baton.environment.plan import Command, SetupPlan
from baton.errors import BadInput
from baton.keys import Repo, parse_repo
from baton.settings import Settings

SHOWN = 200  # characters of one command or reason in the human output (--json has them whole)
AGENT = "doctor"  # the git identity of the cache's fetch (nothing is committed)


def visible(text: str, limit: int = SHOWN) -> str:
    """``text`` on one line, its control characters written as escapes, cut at ``limit``."""
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def configured_setup(settings: Settings, repo: Repo) -> tuple[str, str] | None:
    """(the ``[repo."…"]`` table's name, its ``setup``) of the forge repository that is ``repo``."""
    # lazy: cold CLI
    from baton.forge.kinds.configured import load_forges

    forges = load_forges(settings.home)
    for cfg in forges.repos.values():
        forge = forges.forges.get(cfg.forge)
        if forge is None or not cfg.setup:
            continue
        try:
            if parse_repo(cfg.repo_url(forge)).slug == repo.slug:
                return cfg.name, cfg.setup
        except BadInput:
            continue
    return None


def _commands(commands: tuple[Command, ...]) -> list[dict[str, Any]]:
    return [{"name": c.name, "argv": list(c.argv), "cwd": c.cwd, "env": sorted(c.env)} for c in commands]


def _plan(plan: SetupPlan | None) -> dict[str, Any] | None:
    if plan is None:
        return None
    return {
        "source": plan.source,
        "why": plan.why,
        "commands": _commands(plan.commands),
        "maintenance": _commands(plan.maintenance),
        "skipped": list(plan.skipped),
        "env": sorted(plan.env),
        "inputs": [name for name, _sha in plan.inputs],
        "key": plan.key,
    }


def _prepared(settings: Settings, slug: str, key: str | None, configured: str | None) -> dict[str, Any]:
    """The repository's prepared trees (those ready, and the bytes of all), preparations and hits, and
    whether the preparation of the head's inputs (``key``: its plan's) is ready."""
    # lazy: cold CLI
    from baton.environment import prepared as trees
    from baton.housekeeping.prepared import usage

    row = usage(settings).get(slug) or {"trees": 0, "bytes": 0, **trees.counts_of(settings.home, slug)}
    mine = trees.PreparedTree.of(settings.home, slug, trees.inputs_id(key, configured)) if key else None
    return {**row, "this_commit": bool(mine and mine.ready())}


def _services(settings: Settings, cache: Path, commit: str, env: dict[str, str]) -> dict[str, Any]:
    """The services the commit declares, as a turn would read them (``.baton/services.toml``, else its
    dev container's compose services), or the error naming the file and the field; and the engine
    that would start them (None: its turns would run without them)."""
    # lazy: cold CLI
    from baton.environment import DEVCONTAINER, DEVCONTAINER_ROOT, SERVICES
    from baton.environment.discover import Unreadable
    from baton.environment.servicerun import engine
    from baton.environment.services import COMPOSE_MAX, compose_files
    from baton.environment.survey import materialize_paths
    from baton.runner.services import declared, devcontainer

    program = engine(settings)
    report: dict[str, Any] = {"services": [], "set_aside": [], "error": None, "engine": program}
    if program is None:
        report["engine_missing"] = (
            "services_engine = off" if settings.services_engine == "off" else "no podman or docker on PATH"
        )
    with tempfile.TemporaryDirectory(prefix="baton-services-") as tmp:
        root = Path(tmp)
        materialize_paths(cache, commit, root, [SERVICES, DEVCONTAINER, DEVCONTAINER_ROOT], COMPOSE_MAX, env)
        found = devcontainer(root) if not os.path.lexists(root / SERVICES) else None
        if found is not None:
            files = compose_files(found[1], posixpath.dirname(found[0]))
            materialize_paths(cache, commit, root, files, COMPOSE_MAX, env)
        try:
            services, skipped = declared(settings.services_network, root)
        except (Unreadable, UnicodeDecodeError, ValueError) as exc:
            return {**report, "error": str(exc)}
    report["services"] = [
        {"name": s.name, "image": s.image, "port": s.port, "port_env": s.port_env, "source": s.source}
        for s in services
    ]
    return {**report, "set_aside": list(skipped)}


def repo_report(settings: Settings, spec: str) -> dict[str, Any]:
    """Everything ``doctor -r`` says, as JSON; ``ok`` is False when the setup cannot be used."""
    # lazy: cold CLI
    from baton.environment.survey import survey
    from baton.workspace.gitcmd import run_git
    from baton.workspace.workdirs import Workdirs

    repo = parse_repo(spec)
    workdirs = Workdirs(settings)
    cache = workdirs.ensure_cache(repo, AGENT)
    base = workdirs.default_base(cache)
    commit = run_git(["rev-parse", "--verify", "--quiet", f"{base}^{{commit}}"], cwd=cache)
    override = configured_setup(settings, repo)
    configured = override[1] if override else None
    env = workdirs.process_env(AGENT, repo.url)
    found = survey(cache, commit, configured, env)
    services = _services(settings, cache, commit, env)
    return {
        "repo": repo.slug,
        "branch": base.removeprefix("refs/remotes/origin/").removeprefix("refs/heads/"),
        "commit": commit,
        "setup": _plan(found.plan),
        "error": found.error,
        "configured": {"table": override[0], "setup": override[1]} if override else None,
        "tests": {"file": found.tests[0], "command": found.tests[1]} if found.tests else None,
        "prepared": _prepared(settings, repo.slug, found.plan.key if found.plan else None, configured),
        "services": services,
        "ok": found.error is None and services["error"] is None,
    }


def report_lines(data: dict[str, Any]) -> list[str]:
    """The report as plain lines (the caller escapes them for Rich)."""
    lines = [f"repository  {data['repo']} at {data['commit'][:12]} ({visible(data['branch'])})"]
    setup = data["setup"]
    if data["error"]:
        lines.append(f"setup       cannot be used: {visible(data['error'])}")
    elif setup is None:
        lines.append(
            "setup       none: no .baton/setup.sh, dev container or copilot-setup-steps, none configured"
        )
    else:
        lines.append(f"setup       {visible(setup['why'])}")
        lines += [
            f"  runs      {visible(c['name'])}: {visible(' '.join(c['argv']))}" for c in setup["commands"]
        ]
        lines += [
            f"  maintains {visible(c['name'])}: {visible(' '.join(c['argv']))}" for c in setup["maintenance"]
        ]
        lines += [f"  skips     {visible(s)}" for s in setup["skipped"]]
        if setup["env"]:
            lines.append(f"  env       {visible(', '.join(setup['env']))}")
        lines.append(f"  inputs    {visible(', '.join(setup['inputs'])) or 'no lock files'}")
    if data["configured"]:
        cfg = data["configured"]
        lines.append(f"configured [repo.{visible(cfg['table'])!r}] setup = {visible(cfg['setup'])!r}")
    tests = data["tests"]
    test_line = (
        f"{tests['file']} names `{visible(tests['command'])}`"
        if tests
        else "none named (AGENTS.md, CLAUDE.md)"
    )
    lines.append(f"tests       {test_line}")
    return [*lines, _prepared_line(data["prepared"]), *_services_lines(data["services"])]


def _services_lines(report: dict[str, Any]) -> list[str]:
    if report["error"]:
        return [f"services    cannot be used: {visible(report['error'])}"]
    services = report["services"]
    if not services and not report["set_aside"]:
        return ["services    none declared (.baton/services.toml, a dev container's compose file)"]
    engine = report["engine"]
    started = f"started by {visible(engine)}" if engine else f"skipped: {report['engine_missing']}"
    lines = [f"services    {len(services)}, {started}"]
    for s in services:
        ports = [
            f"port {s['port']}" if s["port"] else "",
            f"port_env {s['port_env']}" if s["port_env"] else "",
        ]
        said = ", ".join([visible(s["image"]), *filter(None, ports)])
        lines.append(f"  {visible(s['name'])}  {said} ({visible(s['source'])})")
    lines += [f"  set aside {visible(why)}" for why in report["set_aside"]]
    return lines


def _prepared_line(p: dict[str, Any]) -> str:
    # lazy: cold CLI
    from baton.cli.housekeeping import size

    ready = "ready" if p["this_commit"] else "not prepared yet"
    return (
        f"prepared    {p['trees']} tree(s), {size(p['bytes'])}; {p.get('preparations', 0)} preparation(s), "
        f"{p.get('hits', 0)} hit(s); this commit: {ready}"
    )
