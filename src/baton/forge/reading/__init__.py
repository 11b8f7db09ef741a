"""A webhook delivery read once, into typed values: its signature and headers checked (:mod:`webhook`),
its payload read through bounded, typed reads (:mod:`payload`) into forge events by a table per kind of
event (:mod:`events`), and the whole delivery into a :class:`~baton.forge.reading.delivery.Delivery`
(:mod:`delivery`). Pure: no store, no forge request.

May import: the data wing.
"""
