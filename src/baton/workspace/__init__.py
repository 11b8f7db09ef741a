"""Workspace: git and the worktrees baton keeps on disk, one owner for every job a worktree has. Owns
running git (:mod:`gitcmd`; in a worktree only through its ``WorktreeGit``, whose admin dir :mod:`gitlinks`
finds and repairs without trusting the agent-writable ``.git`` file or ``commondir``), files read and
written without following links (:mod:`nofollow`), the cache clone per repo and the worktree per key
(:mod:`workdirs`; copy-on-write ones: the sub-room :mod:`baton.workspace.cow`), archives of work about
to be removed (:mod:`archives`), a worktree's state carried between machines in the store (:mod:`portable`),
flock locks on one machine (:mod:`locks`) and each key's agent home and temp dir (:mod:`keyspace`).

May import: the ground floor, :mod:`baton.store` (portable checkpoints live in the store) and
:mod:`baton.agents` (a key's home is its adapter's). Imported by sessions, sync, runner, housekeeping.
"""
