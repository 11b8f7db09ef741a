"""A checkpoint's bundle added to a cache clone: a small one as loose objects (``git unpack-objects
--strict``, as a small ``git fetch`` over the network keeps them: no fsynced pack on a move's critical
path), a large one left to ``git fetch`` (a pack); a bundle with a broken pack or a link to an object
neither it nor the repository holds is refused with git's words."""

from __future__ import annotations

from pathlib import Path

import pytest

from baton.errors import GitError
from baton.workspace import gitcmd
from baton.workspace.gitcmd import bundle_header, unpack_small_bundle
from tests.conftest import commit_file, git, make_repo


def packs(repo: Path) -> list[str]:
    return sorted(p.name for p in (repo / "objects" / "pack").glob("*.pack"))


def bundle(src: Path, tmp_path: Path, *revs: str) -> bytes:
    out = tmp_path / "b.bundle"
    git(src, "bundle", "create", "--quiet", str(out), *revs)
    return out.read_bytes()


@pytest.fixture
def src(tmp_path: Path) -> Path:
    big = "".join(f"line {n} of a file long enough to be sent as a delta\n" for n in range(400))
    return make_repo(tmp_path / "src", {"big.txt": big, "README.md": "# demo\n"})


@pytest.fixture
def cache(src: Path, tmp_path: Path) -> Path:
    git(tmp_path, "clone", "--quiet", "--bare", str(src), "cache.git")
    return tmp_path / "cache.git"


def test_a_small_thin_bundle_becomes_loose_objects_and_the_commit_is_whole(
    src: Path, cache: Path, tmp_path: Path
) -> None:
    text = (src / "big.txt").read_text().replace("line 7 ", "line seven ")
    commit = commit_file(src, "big.txt", text, "an edit")  # a delta against the blob the cache has
    data = bundle(src, tmp_path, "main", "--not", "main~1")
    header = bundle_header(data)
    before = packs(cache)
    assert unpack_small_bundle(cache, data, header)
    assert packs(cache) == before  # no pack written (so no fsync of one)
    assert git(cache, "cat-file", "-t", commit) == "commit"
    assert git(cache, "show", f"{commit}:big.txt") == text.rstrip("\n")
    git(cache, "fsck", "--connectivity-only", "--no-dangling", commit)  # raises when anything is missing


def test_a_bundle_of_a_hundred_objects_or_more_is_left_to_git_fetch(
    src: Path, cache: Path, tmp_path: Path
) -> None:
    for n in range(gitcmd.UNPACK_LIMIT):
        (src / "many" / f"f{n}.txt").parent.mkdir(exist_ok=True)
        (src / "many" / f"f{n}.txt").write_text(f"file {n}\n")
    git(src, "add", "many")
    git(src, "commit", "--quiet", "-m", "many files")
    commit = git(src, "rev-parse", "HEAD")
    data = bundle(src, tmp_path, "main", "--not", "main~1")
    assert not unpack_small_bundle(cache, data, bundle_header(data))
    with pytest.raises(GitError):
        gitcmd.run_git(["cat-file", "-e", commit], cwd=cache)  # nothing was added


def test_a_large_bundle_of_few_objects_is_left_to_git_fetch(
    src: Path, cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commit_file(src, "more.txt", "more\n", "more")
    data = bundle(src, tmp_path, "main", "--not", "main~1")
    header = bundle_header(data)
    monkeypatch.setattr(gitcmd, "UNPACK_MAX_BYTES", len(data) - header.pack - 1)
    assert not unpack_small_bundle(cache, data, header)  # its objects would each be compressed anew
    monkeypatch.setattr(gitcmd, "UNPACK_MAX_BYTES", len(data) - header.pack)
    assert unpack_small_bundle(cache, data, header)


def test_a_bundle_linking_to_an_object_nobody_has_is_refused(src: Path, tmp_path: Path) -> None:
    commit_file(src, "more.txt", "more\n", "more")
    data = bundle(src, tmp_path, "main", "--not", "main~1")  # its tree names the first commit's blobs
    empty = tmp_path / "empty.git"
    git(tmp_path, "init", "--quiet", "--bare", str(empty))
    with pytest.raises(GitError, match="unpack-objects"):
        unpack_small_bundle(empty, data, bundle_header(data))


def test_a_bundle_with_a_broken_pack_is_refused(src: Path, cache: Path, tmp_path: Path) -> None:
    commit_file(src, "more.txt", "more\n", "more")
    data = bundle(src, tmp_path, "main", "--not", "main~1")
    broken = data[:-30] + b"\0" * 30  # the last object's bytes and the pack's checksum
    with pytest.raises(GitError, match="unpack-objects"):
        unpack_small_bundle(cache, broken, bundle_header(broken))


def test_a_pack_too_short_to_count_is_left_to_git_fetch(src: Path, cache: Path, tmp_path: Path) -> None:
    data = bundle(src, tmp_path, "main")
    header = bundle_header(data)
    cut = data[: header.pack + 8]
    assert not unpack_small_bundle(cache, cut, bundle_header(cut))
