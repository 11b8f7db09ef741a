"""The threads of a review's inline comments, as each forge offers them (:class:`InlineThreads`): a reply
in a comment's thread, the pull request's inline comments (to find baton's own replies again), and
resolving a thread; each forge's client offers them (:mod:`baton.forge.kinds.github.inline`,
:mod:`baton.forge.kinds.gitea.inline`, :mod:`baton.forge.kinds.gitlab.inline`), used by
:mod:`baton.forge.writes.replies`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from baton.forge.data.model import Comment


@runtime_checkable
class InlineThreads(Protocol):
    """What a forge client offers for inline comments' threads. Each method raises
    :class:`~baton.forge.data.model.ForgeError` (404 where the forge has no such route)."""

    def reply_inline(self, repo: str, number: int, comment_id: int, body: str) -> int:
        """A reply in the thread of inline comment ``comment_id`` of pull request ``number``; its id."""
        ...

    def inline_comments(self, repo: str, number: int, since: float | None = None) -> list[Comment]:
        """The pull request's inline comments (replies included) made at or after ``since``."""
        ...

    def resolve_inline(self, repo: str, number: int, comment_ids: Sequence[int]) -> list[int]:
        """Resolve the threads of ``comment_ids``; those resolved (or resolved already)."""
        ...
