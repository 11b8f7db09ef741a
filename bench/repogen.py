"""Generate a synthetic but source-like git repository quickly, with ``git fast-import``.

One ``git fast-import`` process receives the whole history as a stream (a thousand ``git commit``
processes would take minutes). The shape, deterministic for a given seed:

- an initial commit with ``initial_files`` text files of pseudo-source code spread over nested
  directories, sizes roughly log-normal (median about 2.5 KB, a long tail up to 48 KB);
- then ``commits - 1`` commits, each editing 1-6 existing files (insert, replace or delete a few
  lines) and, every other commit on average, adding one new file;
- finally ``git repack -a -d`` so the repository is one pack, as a real repository is after ``gc``.

The result is a bare repository with branch ``main``.
"""

from __future__ import annotations

import os
import random
import subprocess
from dataclasses import dataclass
from pathlib import Path

WORDS = [
    "self",
    "value",
    "result",
    "item",
    "items",
    "data",
    "config",
    "path",
    "name",
    "count",
    "index",
    "error",
    "state",
    "event",
    "request",
    "response",
    "client",
    "server",
    "cache",
    "store",
    "session",
    "thread",
    "worker",
    "queue",
    "lock",
    "timeout",
    "retry",
    "buffer",
    "stream",
    "record",
    "key",
    "token",
    "user",
    "agent",
    "repo",
    "branch",
    "commit",
    "tree",
    "blob",
    "entry",
    "status",
    "level",
    "limit",
    "offset",
    "size",
    "total",
    "parent",
]
KEYWORDS = ("if", "for", "while", "return", "with", "try:", "else:", "elif", "yield", "assert", "raise")
DIRS = ("src", "lib", "tests", "docs", "tools", "api", "core", "web", "cli", "internal")
EXTS = (".py", ".py", ".py", ".go", ".ts", ".md", ".rs", ".txt")
GIT_ID = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.invalid",
}


@dataclass(frozen=True)
class RepoShape:
    """What :func:`generate_repo` built (read back from git, not assumed)."""

    path: Path
    files: int
    commits: int
    pack_bytes: int


def _line(rng: random.Random) -> str:
    indent = "    " * rng.randint(0, 3)
    words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 9)))
    if rng.random() < 0.3:
        return f"{indent}{rng.choice(KEYWORDS)} {words}"
    if rng.random() < 0.2:
        return f"{indent}# {words} {rng.randint(0, 99999)}"
    return f"{indent}{rng.choice(WORDS)}_{rng.randint(0, 999)} = {words}({rng.randint(0, 9999)})"


def _file_lines(rng: random.Random) -> list[str]:
    size = min(48_000, int(rng.lognormvariate(7.8, 0.9)))  # bytes; median e^7.8 ~ 2.4 KB
    lines: list[str] = []
    total = 0
    while total < size:
        line = _line(rng)
        lines.append(line)
        total += len(line) + 1
    return lines


def _new_path(rng: random.Random, taken: set[str]) -> str:
    while True:
        depth = rng.randint(1, 3)
        parts = [rng.choice(DIRS)] + [f"{rng.choice(WORDS)}{rng.randint(0, 40)}" for _ in range(depth - 1)]
        path = "/".join(parts) + f"/{rng.choice(WORDS)}_{rng.randint(0, 9999)}{rng.choice(EXTS)}"
        if path not in taken:
            taken.add(path)
            return path


def _blob(path: str, lines: list[str]) -> bytes:
    data = ("\n".join(lines) + "\n").encode()
    return f"M 100644 inline {path}\ndata {len(data)}\n".encode() + data + b"\n"


def _commit(number: int, message: str, changes: list[bytes], first: bool) -> bytes:
    when = 1_600_000_000 + number * 3600
    msg = message.encode()
    head = (
        (
            f"commit refs/heads/main\nmark :{number + 1}\n"
            f"author bench <bench@example.invalid> {when} +0000\n"
            f"committer bench <bench@example.invalid> {when} +0000\n"
            f"data {len(msg)}\n"
        ).encode()
        + msg
        + b"\n"
    )
    if not first:
        head += f"from :{number}\n".encode()
    return head + b"".join(changes) + b"\n"


def generate_repo(path: Path, initial_files: int = 1_600, commits: int = 1_000, seed: int = 42) -> RepoShape:
    """Build a bare repository at ``path`` (which must not exist yet)."""
    rng = random.Random(seed)
    env = {**os.environ, **GIT_ID}
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(path)], check=True, env=env)
    taken: set[str] = set()
    files: dict[str, list[str]] = {}
    proc = subprocess.Popen(
        ["git", "fast-import", "--quiet", "--done"],
        cwd=path,
        env=env,
        stdin=subprocess.PIPE,
    )
    assert proc.stdin is not None
    changes = []
    for _ in range(initial_files):
        name = _new_path(rng, taken)
        files[name] = _file_lines(rng)
        changes.append(_blob(name, files[name]))
    proc.stdin.write(_commit(0, "initial import", changes, first=True))
    names = list(files)
    for number in range(1, commits):
        changes = []
        for name in rng.sample(names, rng.randint(1, 6)):
            lines = files[name]
            for _ in range(rng.randint(1, 4)):
                at = rng.randrange(len(lines) + 1)
                op = rng.random()
                if op < 0.5 or len(lines) < 5:
                    lines[at:at] = [_line(rng) for _ in range(rng.randint(1, 12))]
                elif op < 0.8:
                    lines[at : at + 2] = [_line(rng) for _ in range(2)]
                else:
                    del lines[at : at + rng.randint(1, 4)]
            changes.append(_blob(name, lines))
        if rng.random() < 0.5:
            name = _new_path(rng, taken)
            files[name] = _file_lines(rng)
            names.append(name)
            changes.append(_blob(name, files[name]))
        proc.stdin.write(_commit(number, f"change {number}: edit {len(changes)} files", changes, first=False))
    proc.stdin.write(b"done\n")
    proc.stdin.close()
    if proc.wait() != 0:
        raise RuntimeError(f"git fast-import failed with exit code {proc.returncode}")
    subprocess.run(["git", "repack", "-a", "-d", "-q"], cwd=path, check=True, env=env)
    subprocess.run(["git", "prune-packed"], cwd=path, check=True, env=env)
    count = len(_git(path, "ls-tree", "-r", "--name-only", "main").splitlines())
    history = int(_git(path, "rev-list", "--count", "main"))
    pack = sum(p.stat().st_size for p in (path / "objects" / "pack").iterdir())
    return RepoShape(path=path, files=count, commits=history, pack_bytes=pack)


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()
