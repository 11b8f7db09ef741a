"""Plans: an ordered list of tasks run as turns of one conversation.

Owns: the plan file (:mod:`file`) and running a plan (:mod:`runner`).

May import: the ground floor, :mod:`baton.agents`, :mod:`baton.store` and :mod:`baton.runner`.
"""
