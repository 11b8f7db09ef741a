"""Each forge behind one interface: a package per forge (:mod:`github`, :mod:`gitea`, :mod:`gitlab`),
the one registry that maps a configured forge to its implementation (:mod:`registry`), and what their
clients share: the transport (:mod:`http`), GitHub's and Gitea's common calls (:mod:`rest`), a forge
reached with one token (:mod:`tokenforge`), the inline threads' and the merge policy's interfaces
(:mod:`inline`, :mod:`readiness`), an App's checks (:mod:`appchecks`).

May import: the data and reading wings. A forge's package imports no other forge's.
"""
