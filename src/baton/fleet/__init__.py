"""The fleet: runs submitted to the service and the executors that run them, here or on workers. Owns
jobs (:mod:`jobs`), the executor seam and its choice (:mod:`executor`), the in-process pool
(:mod:`local`), Celery workers (:mod:`celery`) with what a queue's worker does with a message
(:mod:`queued`), running a started job and recording its end, which both executors share
(:mod:`execute`), and cooperative cancel (:mod:`cancel`). The job tables are the store's
(:mod:`baton.store.sql_service`); leases are the store's too (:mod:`baton.store.leases`), since every
run takes one, fleet or not.

May import: everything below it: the ground floor, agents, store, workspace, sessions, sync, runner,
housekeeping (a worker sweeps its own home).
"""
