"""The Claude Agent SDK's ``SessionStore`` protocol over baton's stores (SQL and Redis); the
public names are re-exported by :mod:`baton.sdk`.

May import: the ground floor and the rest of :mod:`baton.store`.
"""
