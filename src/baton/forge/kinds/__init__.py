"""Each forge behind one interface: a package per forge (:mod:`github`, :mod:`gitea`, :mod:`gitlab`:
its facts, client, merge client, reader and implementation), the one registry that maps a kind's name
to its implementation (:mod:`registry`) and hands the configuration the kinds' facts (:mod:`configured`),
what their clients share (:mod:`http`, :mod:`rest`, :mod:`tokenforge`, the interfaces of :mod:`inline`
and :mod:`readiness`, an App's checks: :mod:`appchecks`), and the places other than a forge where people
talk to threads (:mod:`intake`, registered beside the forges).

May import: the data and reading wings. A forge's package imports no other forge's.
"""
