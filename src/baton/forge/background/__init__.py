"""What runs on its own: a delivery's work in the worker pool (:mod:`delivery_pool`) and its feedback
acted on (:mod:`feedback`), the reconcile of what webhooks missed (:mod:`reconcile`), the schedule that
runs it and heals unpublished turns (:mod:`schedule`, :mod:`adopt`), and ``baton forge test``
(:mod:`check`).

May import: every other wing.
"""
