"""baton's writes after a turn, never the agent's: commit, push and the status comment
(:mod:`publish`, with :mod:`gitauth`'s credentials, :mod:`refusal`, :mod:`pushed`, :mod:`setup_failed`),
the agent's answer (:mod:`agent_answer`) and replies in a review's threads (:mod:`replies`), the merge
policy acted on (:mod:`merge_policy`), and a question answered off the forge
(:mod:`answered_elsewhere`).

May import: every wing below it: data, reading, kinds, turn.
"""
