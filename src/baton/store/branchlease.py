"""One writer per branch: the lease a run holds beside its key's, so that two keys whose worktrees are on
one branch of one repository (two threads given one ``--branch``, a forge PR thread and a manual run
on its head branch) never write it at once, on one machine or many. An ordinary lease
(:class:`~baton.store.leases.LeaseHolder`, from the configured backend, kept by
:func:`~baton.store.leases.held`) but for its name, a hash of repository and branch
(:func:`branch_lease_name`: a branch's bytes reach no backend key), and its holder string, which also
carries the run and key holding it (:func:`writer_of`), so a second key is told who writes the branch
(:class:`~baton.errors.BranchBusy`). Always taken after the key's lease, never before
(:func:`baton.runner.run._run_once`): one order, so two runs never wait on each other in a circle.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from baton.errors import BranchBusy, Busy
from baton.settings import Settings
from baton.store.base import Lease, LeaseStore
from baton.store.leases import LeaseHolder, lease_backend, since

__all__ = ["BranchLease", "branch_lease", "branch_lease_name", "writer_of"]

PREFIX = "branch:"
SEP = "|"  # never in a host name nor a run id; the key, which comes last, may hold it


def branch_lease_name(repo: str, branch: str) -> str:
    """The lease name of ``branch`` in the repository ``repo`` (its slug): a hash of both, so hostile
    bytes in a branch name reach no key of any backend."""
    data = json.dumps(["baton-branch", repo, branch]).encode()  # unambiguous, whatever the bytes
    return PREFIX + hashlib.sha256(data).hexdigest()[:40]


def writer_of(lease: Lease) -> tuple[str, str] | None:
    """The run id and the key of a branch lease's holder; None when its holder string carries none."""
    parts = lease.holder.split(SEP, 2)
    if len(parts) != 3 or not parts[2]:
        return None
    return parts[1], parts[2]


@dataclass
class BranchLease(LeaseHolder):
    """The lease of one branch of one repository, held for the run ``run_id`` of the key ``writer``. A
    grant left by the same key may be taken at once: the caller holds that key's lease, so the earlier
    run of the key that left it is gone (its key's lease was taken over from it)."""

    repo: str = ""  # the repository's slug
    branch: str = ""
    writer: str = ""  # the key id of the run holding it
    run_id: str = ""

    def __post_init__(self) -> None:
        self.holder = f"{self.holder}{SEP}{self.run_id}{SEP}{self.writer}"

    def _can_take(self, existing: Lease, now: float) -> bool:
        writer = writer_of(existing)
        if writer is not None and writer[1] == self.writer:
            return True  # left by a run of this key, whose lease the caller holds now: that run is gone
        return super()._can_take(existing, now)

    def busy(self, blocker: Lease) -> Busy:
        writer = writer_of(blocker)
        who = f"key {writer[1]} (run {writer[0]}, " if writer is not None else "another run ("
        return BranchBusy(
            f"branch {self.branch!r} of {self.repo} is being written by {who}host {blocker.host}, "
            f"pid {blocker.pid}, since {since(blocker)}); a branch has one writer at a time: try again "
            "later or pass --wait SECONDS"
        )


def branch_lease(
    settings: Settings, store: LeaseStore, repo: str, branch: str, writer: str, run_id: str
) -> BranchLease:
    """The lease of ``branch`` of ``repo`` for the run ``run_id`` of the key ``writer``, from the
    configured backend (as :func:`~baton.store.leases.key_lease`), living ``settings.lease_ttl`` seconds."""
    return BranchLease(
        store,
        branch_lease_name(repo, branch),
        settings.lease_ttl,
        backend=lease_backend(settings, store),
        repo=repo,
        branch=branch,
        writer=writer,
        run_id=run_id,
    )
