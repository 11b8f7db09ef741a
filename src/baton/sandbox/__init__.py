"""The sandbox: the operating system's side of one agent start — what the agent may reach, what it sees,
and that nothing it starts outlives its run. Owns the agent's environment (:mod:`agentenv`), its walls
(:mod:`confine`, :mod:`walls`, :mod:`landlock`, :mod:`hostsecrets`, :mod:`mountns`), its containment
(:mod:`contain`, :mod:`cgroups`, :mod:`reaper`) and the key's disk budget during a run (:mod:`diskwatch`).
It knows nothing of runs beyond the few fields it is handed; the runner enters it through :mod:`enclosure`.

May import: the ground floor, :mod:`baton.agents` (an agent's command and endpoints, for its walls),
:mod:`baton.store` (this host's name, for a dead runner's group) and :mod:`baton.workspace` (where the
shared caches live).
"""
