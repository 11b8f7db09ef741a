"""Workspace: git and the worktrees baton keeps on disk, one owner for every job a worktree has.

Owns: running git (:mod:`gitcmd`), the cache clone per repo and the worktree per key (:mod:`workdirs`),
archives of work about to be removed (:mod:`archives`), a worktree's state travelling between machines
as thin bundles in the store (:mod:`portable`), and flock locks on one machine (:mod:`locks`).

May import: the ground floor and :mod:`baton.store` (portable checkpoints live in the store).
Imported by: sessions, sync, runner, housekeeping and everything above them.
"""
