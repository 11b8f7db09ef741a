"""The runner: the pipeline of one call of :func:`baton.run`.

Owns: the request and its result (:mod:`request`), the request checked once (:mod:`resolve`), the
frozen values one run hands from step to step (:mod:`state`), the lease and the attempts (:mod:`run`),
a dead runner's runs (:mod:`crashed`), preparing the key (:mod:`prepare`), the decision matrix
(:mod:`decide`), one attempt's steps (:mod:`attempt`), the prompts (:mod:`prompts`), the agent process
(:mod:`process`), a model API that cannot be reached (:mod:`modelwatch`), usage limits and their
breakers (:mod:`quota`), a run's log as it grows (:mod:`logtail`) and short run ids (:mod:`runids`).
The agent's walls, environment and containment are the sandbox's (:mod:`baton.sandbox`), which the
runner alone starts agents through.

May import: the ground floor, :mod:`baton.agents`, :mod:`baton.store`, :mod:`baton.workspace`,
:mod:`baton.sessions`, :mod:`baton.sync`, :mod:`baton.sandbox`.
"""
