"""Sessions: the stored record of a key and what is done to it as a whole.

Owns: transcript snapshots (:mod:`snapshots`), look-up, reset, export and import (:mod:`manage`), and
lineage across forks, hand-offs and stacking (:mod:`lineage`).

May import: the ground floor, :mod:`baton.agents`, :mod:`baton.store`, :mod:`baton.workspace`.
"""
