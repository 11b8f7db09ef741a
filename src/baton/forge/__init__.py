"""Forges (GitHub, Gitea/Forgejo, GitLab): threads that listen to the issues and pull requests they work
on. Six wings, in the order an event flows and lowest first, each importing only the wings below it:
:mod:`data` (records, tables, configuration), :mod:`reading` (a delivery read once into typed events),
:mod:`kinds` (each forge behind one interface, chosen in the registry), :mod:`turn` (an event to its
thread's next turn), :mod:`writes` (push, PR, status, replies, merge policy) and :mod:`background`
(deliveries acted on, the reconcile, the schedule, ``baton forge test``).
It submits runs through :mod:`baton.fleet`, registers its publisher with the executors; the service calls it.

May import: everything below it: the ground floor, agents, store, workspace, sessions, sync, runner,
plans, housekeeping, fleet. Never the service or the CLI.
"""
