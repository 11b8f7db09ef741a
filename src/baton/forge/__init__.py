"""Forges (GitHub, Gitea/Forgejo, GitLab): threads that listen to the issues and pull requests they work
on. Owns: the webhooks (:mod:`events`: signatures, cleanup; :mod:`delivery`, :mod:`intake`, :mod:`payload`:
a delivery read once into typed events; :mod:`deliveries`, :mod:`webhook`: acted on, with retries), the
REST clients (:mod:`http`, :mod:`rest` shared; a package per forge, :mod:`github`, :mod:`gitea`,
:mod:`gitlab`, behind :class:`model.ForgeClient` and chosen in :mod:`registry`), the configuration and
trust policy (:mod:`config`, :mod:`trust`), the loop (:mod:`loop`; :mod:`dispatch`: an event to the next
turn; :mod:`conflicts`: a moved base; :mod:`decisions`: the audit; :mod:`publish`, :mod:`merging`: baton's
writes after a turn; :mod:`reconcile`, :mod:`schedule`: what webhooks missed), bound threads as people
manage them (:mod:`threads`), ``baton forge test`` (:mod:`check`), the turns' prompts (:mod:`prompts`).
It submits runs through :mod:`baton.fleet`, registers its publisher with the executors; the service calls it.

May import: everything below it: the ground floor, agents, store, workspace, sessions, sync, runner,
plans, housekeeping, fleet. Never the service or the CLI.
"""
