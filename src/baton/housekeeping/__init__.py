"""Housekeeping: closing the sessions of a branch or PR that is gone (:mod:`cleanup`), expiry and
orphans (:mod:`sweep`), disk accounting, quotas and eviction (:mod:`disk`). Whatever removes work
checkpoints first, is audited, and says where the checkpoint is.

Also here: ``baton doctor`` (:mod:`doctor`) and ``baton homes link`` (:mod:`homes`).

May import: the ground floor, agents, store, workspace, sessions.
"""
