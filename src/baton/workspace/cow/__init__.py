"""Copy-on-write worktrees: the workspace's fast path for making a worktree where the file system
clones files (XFS, btrfs), and nothing of it where it does not. Owns reflinks and shared extents
(:mod:`reflink`), a git index carried over to a copy of its work tree (:mod:`gitindex`), the reflinked
copy of a tree with its index in one pass (:mod:`clonetree`), the pristine checkout per commit that
new worktrees are copied from (:mod:`pristine`) and the spare made ahead (:mod:`spares`). A sub-room
below the rest of :mod:`baton.workspace`: :mod:`baton.workspace.workdirs` asks it for a worktree and
falls back to ``git worktree add``; disk accounting and ``baton doctor`` ask :mod:`reflink`.

May import: the ground floor, and of the workspace only its git primitives (:mod:`baton.workspace.gitcmd`,
:mod:`baton.workspace.gitlinks`); ``tests/project/test_architecture.py`` holds it to that.
"""
