"""Gitea and Forgejo (Gitea's REST API v1) behind the forge loop's interface: its REST client
(:mod:`client`) and its merge policy's reads and writes (:mod:`merge`).
"""
