"""The runner: the pipeline of one call of :func:`baton.run`.

Owns: the request and its result (:mod:`request`), the request checked once (:mod:`resolve`), the
frozen values one run hands from step to step (:mod:`state`), the lease and the attempts (:mod:`run`),
a dead runner's runs (:mod:`crashed`), preparing the key (:mod:`prepare`), the decision matrix
(:mod:`decide`), one attempt's steps (:mod:`attempt`), the prompts (:mod:`prompts`), the agent process
(:mod:`process`), the agent's environment allow-list (:mod:`agentenv`), the walls around the agent
(:mod:`confine`: whether; :mod:`walls`: which paths and ports; :mod:`landlock`: the kernel binding), a
run's log as it grows (:mod:`logtail`) and short run ids (:mod:`runids`).

May import: the ground floor, :mod:`baton.agents`, :mod:`baton.store`, :mod:`baton.workspace`,
:mod:`baton.sessions`, :mod:`baton.sync`.
"""
