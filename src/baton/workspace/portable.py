"""Portable work: a key's worktree follows its conversation from machine to machine. After every run
the worktree's state (its checkpoint commit, or ``HEAD`` when it is clean) goes to the shared store as
a **thin git bundle** of what the repository's remote does not have (:func:`publish_checkpoint`); each
home remembers the state it last uploaded or adopted under ``refs/baton/shared/<agent>/<thread>``, and
before a run :func:`worktree_from_store` brings the worktree to a state another machine made since.
Nothing here may wedge a key: a missing blob, a corrupt bundle, prerequisites the remote no longer has
— the run goes on with this machine's worktree, branch or base, and says why in its note.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from baton import tracing
from baton.errors import BadInput, BatonError, Fenced, GitError, StoreError
from baton.keys import Key
from baton.models import CheckpointRecord, Fence
from baton.store.base import BlobStore, CheckpointStore
from baton.workspace.archives import archive_stamp, archive_worktree
from baton.workspace.gitcmd import (
    BundleHeader,
    bundle_header,
    commit_of,
    is_ancestor,
    missing_commits,
    resolve_commits,
    run_git,
    unpack_small_bundle,
)
from baton.workspace.locks import file_lock
from baton.workspace.workdirs import Workdirs, Worktree

MAX_BUNDLE = 100 * 2**20  # larger states are kept locally only (mostly untracked build output)
_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


# -- after a run: share the worktree's state ---------------------------------------------------------


@tracing.traced("run.checkpoint")
def publish_checkpoint(
    store: CheckpointStore,
    workdirs: Workdirs,
    key: Key,
    worktree: Path,
    branch: str,
    fence: Fence | None = None,
    made: Future[str | None] | None = None,
) -> str | None:
    """Checkpoint the worktree and share its state with the store (unless the store has it already: an
    unchanged state is not uploaded again).
    ``made``: the checkpoint (:meth:`Workdirs.checkpoint`), already under way in another thread.
    Returns why it could not be shared (for the run's note), None when all went well; raises only
    :class:`Fenced` (the key's lease was granted to someone else)."""
    try:
        _publish(store, workdirs, key, worktree, branch, fence, made)
    except Fenced:
        raise
    except (BatonError, OSError) as exc:
        return f"the worktree's checkpoint stays on this machine (not shared through the store): {exc}"
    return None


def _publish(
    store: CheckpointStore,
    workdirs: Workdirs,
    key: Key,
    worktree: Path,
    branch: str,
    fence: Fence | None,
    made: Future[str | None] | None,
) -> None:
    commit = made.result() if made is not None else workdirs.checkpoint(key, worktree)
    head = workdirs.head_commit(key, worktree)
    if head is None:
        return
    state = commit or head
    known = store.get_checkpoint(key.agent, key.repo.slug, key.thread)
    if known is None or (known.commit_sha, known.branch_sha, known.branch) != (state, head, branch):
        data = make_bundle(workdirs, key, state)
        record = CheckpointRecord(
            agent=key.agent,
            repo=key.repo.slug,
            thread=key.thread,
            commit_sha=state,
            branch=branch,
            branch_sha=head,
            digest=hashlib.sha256(data).hexdigest() if data else "",
            size=len(data),
            created_at=time.time(),
        )
        store.save_checkpoint(record, data, fence=fence)
    _mark_shared(workdirs, key, state)


def make_bundle(workdirs: Workdirs, key: Key, commit: str) -> bytes:
    """A bundle of ``commit`` without what the remote has; empty when the remote has it all (then the
    record's ``digest`` is empty and no bundle is stored).

    The commits and objects of that state that the remote does not have (``--not --remotes=origin``)
    are a few KiB for a typical turn, since every machine fetches the remote anyway. Measured on a
    2,133-file repository with 1,000 commits: a full bundle is 9.7 MB and takes 60 ms to make and
    600 ms to fetch; the thin one 9 KB, 12 ms and 20 ms. A full bundle of a partial clone would also
    have to download every blob of the history first."""
    cache = workdirs.cache_path(key.repo)
    if run_git(["rev-list", "--count", commit, "--not", "--remotes=origin"], cwd=cache) == "0":
        return b""
    ref = f"refs/baton/upload/{key.agent}/{key.thread}"  # a bundle carries refs, not bare commits
    with tempfile.TemporaryDirectory(prefix="baton-bundle-") as tmp:
        out = Path(tmp) / "checkpoint.bundle"
        run_git(["update-ref", ref, commit], cwd=cache)
        try:
            run_git(["bundle", "create", "--quiet", str(out), ref, "--not", "--remotes=origin"], cwd=cache)
        finally:
            run_git(["update-ref", "-d", ref], cwd=cache)
        size = out.stat().st_size
        if size > MAX_BUNDLE:
            raise StoreError(
                f"its bundle is {size / 2**20:.0f} MiB, over the {MAX_BUNDLE // 2**20} MiB limit "
                "(large untracked files? list them in .gitignore)"
            )
        return out.read_bytes()


def _mark_shared(workdirs: Workdirs, key: Key, commit: str) -> None:
    cache = workdirs.cache_path(key.repo)
    if workdirs.read_ref(cache, workdirs.shared_ref(key)) != commit:
        run_git(["update-ref", workdirs.shared_ref(key), commit], cwd=cache)


# -- before a run: take over what another machine left -------------------------------------------------


def worktree_from_store(
    store: CheckpointStore, workdirs: Workdirs, key: Key, branch: str, base: str | None, known: bool = True
) -> tuple[Worktree, str | None]:
    """The key's worktree (:meth:`Workdirs.prepare_worktree`), first brought to the store's checkpoint
    when another machine made it; and a note for the run saying what was done (None: nothing special).
    ``known=False`` (a key with no session yet) skips the store.

    When the store's record names another commit than this home's ``refs/baton/shared/...`` ref,
    another machine has run the key since: the bundle is fetched into the cache (first fetching the
    remote when the bundle's prerequisites are missing), the key's branch and checkpoint ref are
    pointed at the record, and the worktree is rebuilt — or, when this home still has an older worktree
    of the key, brought up to date in place, after archiving whatever of it would be lost
    (:func:`_keep_local_work`, :mod:`baton.workspace.archives`)."""
    record, note = _record(store, key, branch) if known else (None, None)
    cache = workdirs.cache_path(key.repo)
    if record is None or record.commit_sha == workdirs.read_ref(cache, workdirs.shared_ref(key)):
        made = workdirs.prepare_worktree(key, branch, base)
        return made, _joined(made.note, note)
    try:
        return _take_over(store, workdirs, key, branch, base, record)
    except (BatonError, OSError, ValueError) as exc:
        if isinstance(exc, BadInput | Fenced):
            raise
        made = workdirs.prepare_worktree(key, branch, base)
        source = "this machine's worktree" if not made.built else f"branch {branch!r} or the base"
        return (
            made,
            _joined(
                made.note,
                f"the store's checkpoint {record.commit_sha[:12]} is unusable ({exc}); went on from {source}",
            ),
        )


def _joined(*notes: str | None) -> str | None:
    return "; ".join(n for n in notes if n) or None


def _record(store: CheckpointStore, key: Key, branch: str) -> tuple[CheckpointRecord | None, str | None]:
    try:
        record = store.get_checkpoint(key.agent, key.repo.slug, key.thread)
    except (BatonError, TypeError, ValueError) as exc:
        return None, f"the store's checkpoint is unreadable ({exc}); continued from this machine's state"
    if record is not None and record.branch != branch:
        return None, f"the store's checkpoint is of branch {record.branch!r}, not {branch!r}: not used"
    return record, None


def _take_over(
    store: CheckpointStore,
    workdirs: Workdirs,
    key: Key,
    branch: str,
    base: str | None,
    record: CheckpointRecord,
) -> tuple[Worktree, str]:
    shared = workdirs.read_ref(workdirs.cache_path(key.repo), workdirs.shared_ref(key))
    cache = workdirs.ensure_cache(key.repo, key.agent, fetch=False)
    salvaged = workdirs.salvage_broken(key, branch)  # its files the local checkpoint: kept below if at risk
    # the bundle is fetched (and the record's branch tip checked) while this home's own state is
    # checkpointed: two git processes at a time, one each
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="baton-bundle") as pool:
        fetched = pool.submit(fetch_commit, store, workdirs, key, record, cache)
        local = _local_state(workdirs, key, branch)
        tip = fetched.result()
    kept, since = _keep_local_work(workdirs, key, branch, record, shared, local)
    _point_refs(workdirs, key, branch, record.commit_sha, tip)
    made = Worktree(workdirs.worktree_path(key), built=False)
    try:
        if workdirs.worktree_git(key) is not None:
            workdirs.catch_up(key, branch, since, target=(tip, record.commit_sha))
    except (GitError, OSError):  # the refs moved already: a half-synced worktree must not be shared
        workdirs.remove_worktree_dir(key)  # (what it held is archived, or is the shared ref's commit)
    if workdirs.worktree_git(key) is None:
        made = workdirs.prepare_worktree(key, branch, base, fetch=False)
    _mark_shared(workdirs, key, record.commit_sha)
    note = f"the worktree was brought to the store's checkpoint {record.commit_sha[:12]} (another machine's)"
    return made, _joined(
        salvaged, note + (f"; the older work here is kept at {kept}" if kept else "")
    ) or note


def fetch_commit(
    store: BlobStore, workdirs: Workdirs, key: Key, record: CheckpointRecord, cache: Path
) -> str:
    """Make sure the cache has the record's commit: from its bundle, or from the remote; the branch
    tip its state is on (:func:`branch_sha`)."""
    data = store.get_blob(record.digest) if record.digest else None
    header = _header(data)
    missing = missing_commits(cache, [record.commit_sha, *(header.prerequisites if header else [])])
    if record.commit_sha not in missing:
        return branch_sha(cache, record)
    if not record.digest:  # the state is in the remote
        workdirs.ensure_cache(key.repo, key.agent)
        return branch_sha(cache, record, "is not in the remote any more")
    if data is None:
        raise StoreError(f"its bundle ({record.digest[:12]}) is missing from the store")
    header = header or bundle_header(data)  # a bundle that is none: bundle_header says why
    head = next((ref for ref, sha in header.heads.items() if sha == record.commit_sha), None)
    if head is None:
        raise ValueError(f"its bundle does not hold commit {record.commit_sha[:12]}")
    if len(missing) > 1:  # prerequisites missing: the remote has moved on since this cache fetched
        workdirs.ensure_cache(key.repo, key.agent)
    with file_lock(workdirs.home, f"repo:{key.repo.slug}"):
        try:
            unpacked = unpack_small_bundle(cache, data, header)
        except GitError:  # a partial clone lacks blobs it links to: git fetch asks the remote for them
            unpacked = False
        if not unpacked:
            _fetch_bundle(cache, data, head)
    return branch_sha(cache, record, "did not come with its bundle")


def _fetch_bundle(cache: Path, data: bytes, head: str) -> None:
    """Fetch a bundle's ``head`` into the cache (it becomes a pack)."""
    with tempfile.TemporaryDirectory(prefix="baton-bundle-") as tmp:
        bundle = Path(tmp) / "checkpoint.bundle"
        bundle.write_bytes(data)
        run_git(["fetch", "--quiet", "--no-tags", "--no-write-fetch-head", str(bundle), head], cwd=cache)


def _header(data: bytes | None) -> BundleHeader | None:
    """The bundle's header; None for no bundle or one that is not a bundle (said when it is needed)."""
    try:
        return None if data is None else bundle_header(data)
    except ValueError:
        return None


def branch_sha(cache: Path, record: CheckpointRecord, missing: str = "is missing") -> str:
    """The branch tip the record's state is on: the commit itself (a clean worktree) or its parent,
    checked in the cache with the commit itself (one git process); GitError when the commit is not
    there (``missing`` says why)."""
    commit, tip = record.commit_sha, record.branch_sha or record.commit_sha
    found = resolve_commits(cache, [commit] if tip == commit else [commit, f"{commit}^"])
    if found[0] != commit:
        raise GitError(f"commit {commit[:12]} {missing}")
    if found[1:] not in ([], [tip]):
        raise ValueError(f"commit {commit[:12]} is not a checkpoint on {tip[:12]}")
    return tip


def _local_state(workdirs: Workdirs, key: Key, branch: str) -> tuple[str | None, list[str | None]]:
    """This home's state of the key, checkpointed now: the worktree's HEAD (None without a usable
    worktree) and the commits holding its work — the worktree's state (its checkpoint commit, or HEAD
    when clean), or without a worktree the branch tip and the last checkpoint."""
    cache = workdirs.cache_path(key.repo)
    if workdirs.worktree_git(key) is None:
        checkpoint = workdirs.read_ref(cache, workdirs.checkpoint_ref(key))
        return None, [commit_of(cache, f"refs/heads/{branch}"), checkpoint]
    head = workdirs.head_commit(key)
    return head, [workdirs.checkpoint(key) or head]


def _keep_local_work(
    workdirs: Workdirs,
    key: Key,
    branch: str,
    record: CheckpointRecord,
    shared: str | None,
    local: tuple[str | None, list[str | None]],
) -> tuple[str | None, tuple[str, str] | None]:
    """Archive this home's state of the key (``local``: :func:`_local_state`) when adopting the record
    would lose some of it: a worktree changed since it was last shared, or a branch tip or checkpoint
    the record does not descend from. Returns the archive's ref (None: nothing at risk) and, for a
    worktree with nothing at risk, its HEAD and state, from which it can be synced cheaply."""
    cache = workdirs.cache_path(key.repo)
    head, mine = local
    at_risk = [c for c in mine if c and c != shared and not is_ancestor(cache, c, record.commit_sha)]
    if not at_risk:
        state = mine[0] if head else None
        return None, (head, state) if head and state else None
    archive = archive_worktree(workdirs, key, branch, archive_stamp())
    return (archive.ref if archive else None), None


def _point_refs(workdirs: Workdirs, key: Key, branch: str, commit: str, branch_sha: str) -> None:
    """The key's branch at ``branch_sha`` and its checkpoint at ``commit`` (none when they are one), in
    one transaction: a kill leaves both moved or neither."""
    checkpoint = workdirs.checkpoint_ref(key)
    if any(ch.isspace() for ch in branch):  # one command per line: a name must not hold another
        raise ValueError(f"branch {branch!r} is not a valid branch name")
    moves = f"update refs/heads/{branch} {branch_sha}\n" + (
        f"update {checkpoint} {commit}\n" if commit != branch_sha else f"delete {checkpoint}\n"
    )
    with file_lock(workdirs.home, f"repo:{key.repo.slug}"):
        run_git(["update-ref", "--stdin"], cwd=workdirs.cache_path(key.repo), stdin=moves)


# -- sessions export and import ------------------------------------------------------------------------


def export_checkpoint(store: CheckpointStore, key: Key) -> dict[str, Any] | None:
    """The key's checkpoint for a session export: the record and its bundle (base64); None if none."""
    record = store.get_checkpoint(key.agent, key.repo.slug, key.thread)
    if record is None:
        return None
    data = store.get_blob(record.digest) if record.digest else b""
    if data is None:
        return None  # its bundle is gone: the export carries no checkpoint rather than a broken one
    fields = ("commit_sha", "branch", "branch_sha", "created_at")
    return {**{f: getattr(record, f) for f in fields}, "bundle_b64": base64.b64encode(data).decode()}


def checkpoint_from(data: Any, key: Key, branch: str) -> tuple[CheckpointRecord, bytes]:
    """The checkpoint of a session export, validated (hostile input): BadInput for anything wrong."""
    if not isinstance(data, dict):
        raise BadInput("malformed session export: the checkpoint is not an object")
    commit, branch_sha, encoded = data.get("commit_sha"), data.get("branch_sha"), data.get("bundle_b64")
    if not isinstance(commit, str) or not _SHA.fullmatch(commit):
        raise BadInput("malformed session export: the checkpoint's commit_sha is not a commit id")
    if branch_sha is not None and (not isinstance(branch_sha, str) or not _SHA.fullmatch(branch_sha)):
        raise BadInput("malformed session export: the checkpoint's branch_sha is not a commit id")
    if data.get("branch") != branch:
        raise BadInput(f"malformed session export: the checkpoint is of another branch than {branch!r}")
    bundle = _decode_bundle(encoded, commit)
    created = data.get("created_at")
    record = CheckpointRecord(
        agent=key.agent,
        repo=key.repo.slug,
        thread=key.thread,
        commit_sha=commit,
        branch=branch,
        branch_sha=branch_sha,
        digest=hashlib.sha256(bundle).hexdigest() if bundle else "",
        size=len(bundle),
        created_at=float(created) if isinstance(created, int | float) else time.time(),
    )
    return record, bundle


def _decode_bundle(encoded: Any, commit: str) -> bytes:
    if not isinstance(encoded, str):
        raise BadInput("malformed session export: the checkpoint has no bundle_b64 text")
    if len(encoded) > (MAX_BUNDLE + 2) // 3 * 4:
        raise BadInput(f"the export's checkpoint bundle is over the {MAX_BUNDLE // 2**20} MiB limit")
    try:
        bundle = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadInput(f"malformed session export: the checkpoint's bundle is not base64 ({exc})") from exc
    if not bundle:
        return bundle  # the state is in the remote
    try:
        header = bundle_header(bundle)
    except ValueError as exc:
        raise BadInput(f"malformed session export: the checkpoint's bundle is {exc}") from exc
    if commit not in header.heads.values():
        raise BadInput(f"malformed session export: the checkpoint's bundle does not hold {commit[:12]}")
    return bundle
