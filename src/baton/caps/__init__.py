"""Caps: what a thread, a repository or an API token may spend, and what happens when it has.

Owns: the caps (USD from the cost agents report, tokens, wall-clock minutes, turns) and their raises
(:mod:`model`, :mod:`tables`); what was spent, computed from the store's runs on each check, never a
running counter (:mod:`spend`); the one decision whether a turn may start (:mod:`check`); the words a
parked thread says, which the forge's own budgets say too (:mod:`words`); and a thread parked at a cap:
found, and resumed with the instruction its capped turn had (:mod:`parked`).

May import: the ground floor, :mod:`baton.store`.
"""
