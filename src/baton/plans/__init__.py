"""Plans: an ordered list of tasks run as turns of one conversation.

Owns: the plan file (:mod:`file`), running a plan (:mod:`runner`) and its data: the records of a
plan's progress (:mod:`records`), their table and store role (:mod:`tables`, in the store's
transactions; the migration that builds the table stays in :mod:`baton.store.migrations`).

May import: the ground floor, :mod:`baton.agents`, :mod:`baton.store` and :mod:`baton.runner`.
"""
