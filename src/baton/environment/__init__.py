"""A repository's environment: what prepares a key's worktree before its agent's turn. :mod:`.discover`
finds the setup a repository keeps (``.baton/setup.sh``, a devcontainer's lifecycle commands,
copilot-setup-steps' ``run:`` steps) or the one its configuration names, as a typed
:class:`~baton.environment.plan.SetupPlan` keyed by what it depends on; :mod:`.jsonc` reads JSON with
comments; :mod:`.testcmd` finds the test command the agent's instruction files name. Running a plan is
the runner's (:mod:`baton.runner.setup`). May import the ground floor and ``workspace`` (reading files
that an agent may have replaced by links: :mod:`baton.workspace.nofollow`).
"""
