"""Forges (GitHub, Gitea/Forgejo): what their webhooks say, read and checked, for the service's routes.

Owns: a delivery's signature and its payload (:mod:`events`): which repository and branch an event
that cleans up names. This room is where the feedback loop grows (threads bound to issues and pull
requests, triggers and their trust policy, typed feedback turns, budgets, the forge's writes, the
reconcile); it submits runs through :mod:`baton.fleet`, and the HTTP routes in :mod:`baton.service`
call it. A new forge is one module here.

May import: everything below it: the ground floor, agents, store, workspace, sessions, sync, runner,
plans, housekeeping, fleet. Never the service or the CLI.
"""
