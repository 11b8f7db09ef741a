"""The Claude Agent SDK's ``SessionStore`` over baton's stores, so a Python program that drives Claude
through the SDK keeps its transcripts where baton keeps its own: durable, shared between machines, and
resumable from any of them. :class:`SqlSessionStore` is over baton's SQL store (SQLite or PostgreSQL),
:class:`RedisSessionStore` over Redis (optionally expiring); both pass the SDK's conformance suite
(``claude_agent_sdk.testing.run_session_store_conformance``) with every optional method
(``list_sessions``, ``list_session_summaries``, ``delete``, ``list_subkeys``). Plug one in with
``ClaudeAgentOptions(session_store=SqlSessionStore(url))`` (docs/fleet.md has an example).
"""

from __future__ import annotations

from baton.store.sdk.redis_store import RedisSessionStore
from baton.store.sdk.sql_store import SqlSessionStore

__all__ = ["RedisSessionStore", "SqlSessionStore"]
