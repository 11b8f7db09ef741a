"""Sync: a key's relation to the rest of its repository and to other keys.

Owns: bringing what moved upstream into a worktree before a turn (:mod:`engine`, with :mod:`fetch`,
:mod:`plan`, :mod:`apply`, :mod:`marker`, :mod:`git`, :mod:`report`), the base a branch follows and
restacking (:mod:`upstream`), and hand-offs between agents with their recaps (:mod:`handoff`,
:mod:`recaps`).

May import: the ground floor, :mod:`baton.agents`, :mod:`baton.store`, :mod:`baton.workspace`,
:mod:`baton.sessions`.
"""
