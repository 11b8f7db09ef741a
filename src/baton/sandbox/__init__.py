"""The sandbox: the operating system's side of one agent start — what the agent may reach, what it
sees, and that nothing it starts outlives its run.

Owns: the agent's environment allow-list (:mod:`agentenv`), the walls around the agent
(:mod:`confine`: whether, from ``BATON_CONFINE`` and the kernel; :mod:`walls`: which paths and ports;
:mod:`landlock`: the kernel binding; :mod:`hostsecrets`: the system's secrets no agent reads;
:mod:`mountns`: its own mount namespace holding only its walls' paths and its own run's processes),
containment (:mod:`contain`: the run's control group from :mod:`cgroups` where the host has one, else
:mod:`reaper` following its process tree; what outlived the agent ended and counted) and the key's
disk budget during a run (:mod:`diskwatch`).

It knows nothing of runs, prompts, sessions or the store's records beyond the few fields it is
handed: the runner (:mod:`baton.runner.attempt`, :mod:`~baton.runner.process`) decides when an agent
starts and what its end means. Above it, only the runner starts agents through it, through one
entry: :mod:`enclosure` (an :class:`~baton.sandbox.enclosure.Enclosure` per agent start); ``baton doctor``
and ``/readyz`` describe it (:mod:`baton.housekeeping.doctor`, :mod:`baton.service.health`) and the
sweep ends what a dead runner's run left in its control group (:mod:`baton.housekeeping.sweep`);
``tests/test_architecture.py`` holds that list.

May import: the ground floor, :mod:`baton.agents` (an agent's command and endpoints, for its walls),
:mod:`baton.store` (this host's name, for a dead runner's group) and :mod:`baton.workspace` (where the
shared caches live).
"""
