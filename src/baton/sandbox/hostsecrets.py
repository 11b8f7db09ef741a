"""The system's secrets no agent may read: root-only files of the host that hold credentials
(:data:`SECRETS`). Every agent reads ``/etc`` (``passwd``, ``resolv.conf``, the CA certificates), and a
root agent would read ``/etc/shadow`` with it. In the agent's own mount namespace
(:mod:`baton.sandbox.mountns`) an empty, mode-0 file or directory is bound over each; without one,
Landlock grants ``/etc`` child by child but them (:func:`sparing`). Only the secrets baton's user can
read count (:func:`readable`): for an unprivileged baton none does, and neither way costs anything.
"""

from __future__ import annotations

import glob
import os

# Root-only files of the system that hold credentials (globs).
SECRETS = (
    "/etc/shadow",
    "/etc/shadow-",
    "/etc/gshadow",
    "/etc/gshadow-",
    "/etc/sudoers",
    "/etc/sudoers.d",
    "/etc/ssh/ssh_host_*_key",
    "/etc/ssl/private",
    "/etc/security/opasswd",
    "/etc/krb5.keytab",
)


def readable() -> list[str]:
    """The :data:`SECRETS` on this host that baton's user (hence its agents) could read, resolved,
    once each."""
    found = dict.fromkeys(os.path.realpath(path) for pattern in SECRETS for path in glob.glob(pattern))
    return [path for path in found if os.access(path, os.R_OK)]


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def sparing(path: str, spared: list[str]) -> list[str]:
    """``path``, or when it holds one of ``spared``, its children but the ``spared`` (recursively),
    links skipped: what to grant so that ``path`` is readable but ``spared``. Landlock is an allow-list
    (it cannot deny a subpath of an allowed path), hence the children; a link is skipped because the
    kernel checks its target, which stays as walled as before. The cost, as root: 197 rules instead of
    36 here, +2.6 ms per start idle, +2.4 to +9.2 ms at load 6-11 (``walls.rules`` and
    ``walls.ruleset``; bench/README.md note 16). A mount namespace's binds (``/etc`` stays one bind,
    six more mounts) cost nothing measurable."""
    if not any(_within(s, path) for s in spared):
        return [path]
    if path in spared or not os.path.isdir(path) or os.path.islink(path):
        return []
    return _children(path, spared)


def _children(path: str, spared: list[str]) -> list[str]:
    """A directory holding a spared path: its entries' types come with the listing (no stat each)."""
    found: list[str] = []
    with os.scandir(path) as entries:
        for entry in entries:
            if entry.path in spared or entry.is_symlink():
                continue
            if not any(_within(s, entry.path) for s in spared):
                found.append(entry.path)
            elif entry.is_dir(follow_symlinks=False):
                found += _children(entry.path, spared)
    return found
