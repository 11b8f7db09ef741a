"""Asking: how a thread asks a person and waits for the answer.

Owns: the ``baton`` MCP server every agent is given, with its one tool ``ask_human`` (:mod:`server`, run
by the agent CLI inside the agent's walls: it holds no secret and only writes the question down), and
the question itself — where a turn's question is kept, how it is read back bounded, and the prompt that
carries a person's answer into the next turn (:mod:`questions`).

May import: the ground floor, :mod:`baton.agents`, :mod:`baton.caps` (a question a cap asks).
"""
