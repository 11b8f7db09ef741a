"""Benchmark 23: what a prepared environment costs a new thread (the goal: its environment within 2 s of
a plain turn). Two repositories: a plain one with no setup, and one whose ``.baton/setup.sh`` makes a
``.venv`` (``python -m venv``, then a handful of local wheels this benchmark writes, 40 modules each,
installed offline) and a ``node_modules`` of 300 small packages (each a ``package.json``, an
``index.js`` and a ``lib/``), the way a Node and a Python project prepare. Its preparation runs once,
before timing (the first thread); each repetition is then a **new key's first turn** of the fake agent
in each repository, interleaved: the prepared one gets the preparation's results copied into its
worktree (``cp -a --reflink=auto``: a plain copy on a file system without reflinks, which the row says)
and relocated. 23a: the cost of that copy, the median of the per-pair differences.

23b: a repository's **first** preparation through a baton turn against the same ``setup.sh`` run by
hand (``bash .baton/setup.sh`` in a fresh clone of the same commit, the clone not timed), with a plain
turn beside them so baton's own share shows: each repetition commits a new commit to both repositories
(a new commit has no preparation yet), then times a new key's turn in each and the setup by hand,
interleaved. The preparation's cost is the first turn less the plain turn, per pair; the goal: within
10 % of the setup by hand. The run's note splits it: the preparation (checkout and setup in the walls)
and the copy into the worktree.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from common import Group, Plan, Repos, Row, Suite, interleave, median, pair_differences, rmtree, sh

REPS = Plan(full=9, quick=3)
FIRST_REPS = Plan(full=5, quick=2)
GOAL = 2.0
FIRST_GOAL = 1.10
WHEELS, MODULES, PACKAGES = 6, 40, 300
IDENT = {
    "GIT_AUTHOR_NAME": "b",
    "GIT_AUTHOR_EMAIL": "b@x",
    "GIT_COMMITTER_NAME": "b",
    "GIT_COMMITTER_EMAIL": "b@x",
}
NODE_MODULES = """import json, pathlib, sys
root = pathlib.Path("node_modules")
for i in range(int(sys.argv[1])):
    pkg = root / f"pkg{i:03d}"
    (pkg / "lib").mkdir(parents=True, exist_ok=True)
    meta = {"name": f"pkg{i:03d}", "version": "1.0.0", "main": "index.js"}
    (pkg / "package.json").write_text(json.dumps(meta))
    (pkg / "index.js").write_text(f"module.exports = require('./lib/util.js');\\n// pkg {i}\\n" * 20)
    (pkg / "lib" / "util.js").write_text(f"exports.answer = () => {i};\\n" * 40)
"""


def _wheel(out: Path, number: int) -> None:
    """A pure-Python wheel ``benchpkg<number>`` of :data:`MODULES` modules."""
    name, version = f"benchpkg{number}", "1.0"
    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/mod{m:02d}.py": (f"def f{m}(x):\n    return x + {m}\n" * 30).encode() for m in range(MODULES)
    }
    files[f"{name}/__init__.py"] = b""
    files[f"{info}/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
    files[f"{info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: bench\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )

    def line(path: str, data: bytes) -> str:
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        return f"{path},sha256={digest},{len(data)}"

    with zipfile.ZipFile(out / f"{name}-{version}-py3-none-any.whl", "w") as wheel:
        for path, data in files.items():
            wheel.writestr(path, data)
        wheel.writestr(
            f"{info}/RECORD", "\n".join([*(line(p, d) for p, d in files.items()), f"{info}/RECORD,,"])
        )


def _repo(path: Path, files: dict[str, str]) -> Path:
    path.mkdir(parents=True)
    for name, text in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    sh(["git", "init", "-q", "-b", "main"], cwd=path)
    sh(["git", "add", "-A"], cwd=path)
    sh(["git", "commit", "-qm", "init"], cwd=path, env={**os.environ, **IDENT})
    return path


def prepared_repo(root: Path) -> Path:
    """The project whose setup makes a ``.venv`` of local wheels and a ``node_modules``."""
    wheels = root / "wheels-src"
    wheels.mkdir(parents=True)
    for number in range(WHEELS):
        _wheel(wheels, number)
    names = " ".join(f"benchpkg{n}" for n in range(WHEELS))
    setup = (
        f"set -e\n{sys.base_prefix}/bin/python3 -m venv .venv\n"
        f".venv/bin/pip install -q --no-index --find-links wheels {names}\n"
        f".venv/bin/python tools/node_modules.py {PACKAGES}\n"
    )
    files = {
        ".baton/setup.sh": setup,
        "tools/node_modules.py": NODE_MODULES,
        ".gitignore": ".venv/\nnode_modules/\n",
    }
    repo = _repo(root / "prepared-repo", {**files, "README.md": "bench\n"})
    (repo / "wheels").mkdir()
    for wheel in wheels.iterdir():
        (repo / "wheels" / wheel.name).write_bytes(wheel.read_bytes())
    sh(["git", "add", "-A"], cwd=repo)
    sh(["git", "commit", "-qm", "wheels"], cwd=repo, env={**os.environ, **IDENT})
    return repo


def bench_setup(root: Path, reps: int) -> tuple[list[Row], list[str]]:
    from baton import RunRequest, run
    from baton.settings import load_settings
    from baton.testing.fake import register_fake
    from baton.workspace.cow import reflink
    from baton.workspace.du import disk_usage

    register_fake()
    root.mkdir(parents=True, exist_ok=True)
    plain = _repo(root / "plain-repo", {"README.md": "bench\n"})
    ready = prepared_repo(root)
    settings = load_settings(overrides={"home": str(root / "home")})

    def turn(repo: Path, thread: str, want: str | None) -> tuple[float, str]:
        request = RunRequest(agent="fake", repo=str(repo), thread=thread, prompt="go")
        t0 = time.perf_counter()
        result = run(request, settings=settings)
        elapsed = time.perf_counter() - t0
        note = result.run.note or ""
        if not result.ok or (want is not None and want not in note):
            raise RuntimeError(f"23: turn of {thread} in {repo.name}: {result.run.error or note}")
        return elapsed, note

    took_first, first_note = turn(ready, "first", " ran in ")  # the preparation, once, not timed
    turn(plain, "first", None)  # the plain repository's cache clone exists too
    notes: list[str] = []

    def prepared_turn(rep: int) -> float:
        elapsed, note = turn(ready, f"b{rep}-{time.monotonic_ns()}", "was ready (a hit)")
        notes.append(note)
        return elapsed

    samples = interleave(
        {
            "plain": lambda rep: turn(plain, f"a{rep}-{time.monotonic_ns()}", None)[0],
            "prepared": prepared_turn,
        },
        reps,
    )
    home = settings.home
    worktree = next(p for p in (home / "worktrees" / "fake").rglob("b0-*") if p.is_dir())
    copy = "reflinks" if reflink.supported(home, home) else "a plain copy (no reflinks here)"
    size = disk_usage(worktree / ".venv") + disk_usage(worktree / "node_modules")
    files = sum(len(f) for _d, _s, f in os.walk(worktree / "node_modules")) + sum(
        len(f) for _d, _s, f in os.walk(worktree / ".venv")
    )
    row = Row(
        name=f"23a a new key's first turn, its repository prepared (.venv of {WHEELS} local wheels + "
        f"{PACKAGES}-package node_modules: {files} files copied) ÷ a new key's plain turn, no setup",
        kind="overhead",
        candidate=median(samples["prepared"]),
        baseline=median(samples["plain"]),
        goal=GOAL,
        n=reps,
        overhead=median(pair_differences(samples["prepared"], samples["plain"])),
        samples={"candidate": samples["prepared"], "baseline": samples["plain"]},
        agent="fake",
        extra={"copy": copy, "first_preparation_s": took_first, "results_bytes": size, "files": files},
    )
    said = [
        f"23a: the results ({files} files, {size / 2**20:.1f} MiB) given by {copy}; the first "
        f"preparation's turn took {took_first:.1f} s; a hit's note: {notes[-1] if notes else first_note}"
    ]
    return [row], said


_SPLIT = re.compile(r"the preparation of \w+ ran in ([\d.]+) s, copied into the worktree in ([\d.]+) s")


def _bump(repo: Path, rep: int) -> None:
    """A new commit (not a lock file, not the setup): its first turn prepares it afresh."""
    (repo / "STAMP").write_text(f"{rep} {time.monotonic_ns()}\n")
    sh(["git", "add", "STAMP"], cwd=repo)
    sh(["git", "commit", "-qm", f"stamp {rep}"], cwd=repo, env={**os.environ, **IDENT})


def _by_hand(repo: Path, scratch: Path, rep: int) -> float:
    """``bash .baton/setup.sh`` in a fresh clone of the repository's head (the clone not timed), in a
    fresh shell's environment with a home of its own, as baton's setup gets one: none of this
    machine's ``PIP_*`` or ``PYTHON*`` settings (a ``PIP_FIND_LINKS`` here made pip scan more)."""
    where, home = scratch / f"hand-{rep}", scratch / f"hand-home-{rep}"
    sh(["git", "clone", "-q", "--no-hardlinks", str(repo), str(where)])
    home.mkdir()
    env = {"PATH": os.environ.get("PATH", os.defpath), "HOME": str(home), "LANG": "C.UTF-8"}
    t0 = time.perf_counter()
    sh(["bash", ".baton/setup.sh"], cwd=where, env=env)
    elapsed = time.perf_counter() - t0
    rmtree(where)
    rmtree(home)
    return elapsed


def bench_first(root: Path, reps: int) -> tuple[list[Row], list[str]]:
    """23b (see the module docstring)."""
    from baton import RunRequest, run
    from baton.settings import load_settings
    from baton.testing.fake import register_fake

    register_fake()
    root.mkdir(parents=True, exist_ok=True)
    plain = _repo(root / "plain-repo", {"README.md": "bench\n"})
    ready = prepared_repo(root)
    settings = load_settings(overrides={"home": str(root / "home")})
    split: list[tuple[float, float]] = []

    def turn(repo: Path, rep: int, want: str | None) -> float:
        _bump(repo, rep)
        request = RunRequest(agent="fake", repo=str(repo), thread=f"t{rep}", prompt="go")
        t0 = time.perf_counter()
        result = run(request, settings=settings)
        elapsed = time.perf_counter() - t0
        note = result.run.note or ""
        if not result.ok or (want is not None and want not in note):
            raise RuntimeError(f"23b: turn {rep} in {repo.name}: {result.run.error or note}")
        found = _SPLIT.search(note)
        if want is not None and found:
            split.append((float(found[1]), float(found[2])))
        return elapsed

    samples = interleave(
        {
            "first": lambda rep: turn(ready, rep, " ran in "),
            "hand": lambda rep: _by_hand(ready, root, rep),
            "plain": lambda rep: turn(plain, rep, None),
        },
        reps,
    )
    return [_first_row(samples, split[1:], reps)], [_first_note(samples, split[1:])]


def _first_row(samples: dict[str, list[float]], split: list[tuple[float, float]], reps: int) -> Row:
    cost = pair_differences(samples["first"], samples["plain"])
    return Row(
        name=f"23b a repository's first preparation (.venv of {WHEELS} local wheels + {PACKAGES}-package "
        "node_modules) through a new key's turn, less a plain turn ÷ the same setup.sh run by hand in "
        "a fresh clone",
        kind="ratio",
        candidate=median(cost),
        baseline=median(samples["hand"]),
        goal=FIRST_GOAL,
        n=reps,
        samples={
            "candidate": cost,
            "baseline": samples["hand"],
            "first": samples["first"],
            "plain": samples["plain"],
        },
        agent="fake",
        extra={
            "pair_ratio": median([c / h for c, h in zip(cost, samples["hand"], strict=True)]),
            "first_turn_s": median(samples["first"]),
            "plain_turn_s": median(samples["plain"]),
            "preparation_s": median([p for p, _c in split]) if split else None,
            "copy_s": median([c for _p, c in split]) if split else None,
        },
    )


def _first_note(samples: dict[str, list[float]], split: list[tuple[float, float]]) -> str:
    first, hand, plain = (median(samples[k]) for k in ("first", "hand", "plain"))
    where = ""
    if split:
        prep, copy = median([p for p, _c in split]), median([c for _p, c in split])
        where = f"; of it, the preparation (checkout, setup in the walls) {prep:.1f} s, the copy {copy:.1f} s"
    return (
        f"23b: first turn {first:.1f} s, plain turn {plain:.2f} s, setup by hand {hand:.1f} s: the "
        f"preparation as a turn pays it {first - plain:.1f} s, "
        f"{(first - plain) / hand:.3f} times by hand{where}"
    )


def run_group(suite: Suite, repos: Repos) -> None:
    def work() -> None:
        rows, notes = bench_setup(suite.scratch / "b23", suite.pick(REPS))
        suite.rows.extend(rows)
        suite.notes.extend(notes)

    def first() -> None:
        rows, notes = bench_first(suite.scratch / "b23b", suite.pick(FIRST_REPS))
        suite.rows.extend(rows)
        suite.notes.extend(notes)

    suite.step("23 a prepared environment given to a new thread vs a plain turn", work)
    suite.step("23b a repository's first preparation vs its setup by hand", first)


GROUP = Group(
    "setup",
    "23a: a new key's first turn in a repository whose preparation exists (the copy) ÷ a plain turn (≤ 2 s); "
    "23b: a repository's first preparation through a turn ÷ its setup by hand (≤ 1.1 times)",
    run_group,
)


if __name__ == "__main__":
    import _venv  # noqa: F401  (re-runs with .venv's interpreter when baton is missing)

    scratch = Path(tempfile.mkdtemp(prefix="baton-bench-setup-"))
    only = sys.argv[2] if len(sys.argv) > 2 else "23a"  # bench_setup.py [N] [23a|23b]
    try:
        if only == "23b":
            rows, notes = bench_first(scratch, int(sys.argv[1]) if len(sys.argv) > 1 else FIRST_REPS.full)
            print(json.dumps({r.name: {"ratio": r.ratio, **r.extra, "samples": r.samples} for r in rows}))
            print("\n".join(notes))
            sys.exit(0)
        rows, notes = bench_setup(scratch, int(sys.argv[1]) if len(sys.argv) > 1 else REPS.full)
        for row in rows:
            assert row.overhead is not None
            sides = f"prepared {row.candidate * 1000:.0f} ms, plain {row.baseline * 1000:.0f} ms"
            print(f"{row.name}: {sides}, cost {row.overhead * 1000:+.0f} ms (n={row.n})")
            print(
                json.dumps(
                    {k: row.extra[k] for k in ("copy", "first_preparation_s", "results_bytes", "files")}
                )
            )
        print("\n".join(notes))
    finally:
        rmtree(scratch)
