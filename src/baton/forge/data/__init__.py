"""The forge room's data, the lowest wing: its records and tables (:mod:`records`, :mod:`schema`,
:mod:`tables`, :mod:`sql`), the operator's configuration (:mod:`config`, :mod:`appkey`, and what it needs
to know of a kind: :mod:`kind`), the room's vocabulary (:mod:`model`: a forge event, a forge client's
calls) and what the loop came to (:mod:`outcomes`).

May import: what the forge room may import below it. Never another wing.
"""
