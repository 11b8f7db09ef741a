"""Workspace: git and the worktrees baton keeps on disk, one owner for every job a worktree has. Owns
running git (:mod:`gitcmd`; in a worktree only through its ``WorktreeGit``, whose admin dir
:mod:`gitlinks` finds and repairs without trusting the agent-writable ``.git`` file or ``commondir``),
reading and writing agent-writable files without following links (:mod:`nofollow`), the cache clone
per repo and the worktree per key (:mod:`workdirs`; copy-on-write worktrees: the sub-room
:mod:`baton.workspace.cow`), archives of work about to be removed (:mod:`archives`), a worktree's state
travelling between machines in the store (:mod:`portable`), flock locks on one machine (:mod:`locks`),
each key's agent home and temp dir (:mod:`keyspace`). Imported by sessions, sync, runner, housekeeping.

May import: the ground floor, :mod:`baton.store` (portable checkpoints live in the store) and
:mod:`baton.agents` (a key's home is its adapter's).
"""
