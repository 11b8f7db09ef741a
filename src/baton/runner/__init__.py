"""The runner: the pipeline of one call of :func:`baton.run` — the request (:mod:`request`, checked once
by :mod:`resolve`), the lease and the attempts (:mod:`run`, :mod:`crashed`), preparing the key
(:mod:`prepare`), the decision matrix (:mod:`decide`), one attempt (:mod:`attempt`, :mod:`prompts`,
:mod:`process`, :mod:`modelwatch`), usage limits (:mod:`quota`, :mod:`onspent`), a run's log
(:mod:`logtail`), run ids (:mod:`runids`) and the frozen values handed between steps (:mod:`state`).
The agent's walls, environment and containment are the sandbox's, which the runner alone starts
agents through.

May import: the ground floor, :mod:`baton.agents`, :mod:`baton.store`, :mod:`baton.workspace`,
:mod:`baton.sessions`, :mod:`baton.sync`, :mod:`baton.sandbox`.
"""
