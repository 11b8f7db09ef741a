"""Forges (GitHub, Gitea/Forgejo): threads that listen to the issues and pull requests they work on.

Owns: the forges' webhooks (:mod:`events`: signatures, cleanup payloads; :mod:`intake`/:mod:`payload`:
feedback payloads read into typed events; :mod:`webhook`: a delivery's feedback, acted on with retries),
their REST clients (:mod:`http` shared; :mod:`github`, :mod:`gitea`: one module per forge, behind
:class:`model.ForgeClient` — GitLab would be one more), the operator's configuration and the trust
policy (:mod:`config`, :mod:`trust`), the loop itself (:mod:`loop`: its runtime; :mod:`dispatch`: from
an event to the next turn — bind, dedupe, coalesce, budgets, needs_human; :mod:`conflicts`: a moved
base; :mod:`decisions`: the audit's one row per event, what baton says or notes once; :mod:`publish`:
baton's writes after a turn (:mod:`merging`: a merge it must not conclude); :mod:`reconcile` and
:mod:`schedule`: what webhooks missed), bound threads as people manage them (:mod:`threads`), ``baton
forge test`` (:mod:`check`) and the turns' prompts (:mod:`prompts`). It submits runs through
:mod:`baton.fleet` and registers its publisher with the executors; the HTTP routes in
:mod:`baton.service` call it.

May import: everything below it: the ground floor, agents, store, workspace, sessions, sync, runner,
plans, housekeeping, fleet. Never the service or the CLI.
"""
