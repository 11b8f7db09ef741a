"""Gitea's threads of a review's inline comments (:class:`~baton.forge.kinds.inline.InlineThreads`, mixed into
its client): Gitea 1.27 and later's replies and resolve routes (Forgejo and older Gitea answer 404).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from baton.forge.data.model import Actor, Comment
from baton.forge.kinds.http import ForgeHTTP
from baton.forge.kinds.rest import inline_comment, repo_path


class GiteaInline:
    """:class:`InlineThreads` for Gitea 1.27 and later (mixed into its client, as GitHub's)."""

    http: ForgeHTTP
    author: Callable[[Any], Actor]

    def reply_inline(self, repo: str, number: int, comment_id: int, body: str) -> int:
        path = f"{repo_path(repo, 'Gitea')}/pulls/{int(number)}/comments/{int(comment_id)}/replies"
        return int(self.http.json("POST", path, json={"body": body})["id"])

    def inline_comments(self, repo: str, number: int, since: float | None = None) -> list[Comment]:
        path = f"{repo_path(repo, 'Gitea')}/pulls/{int(number)}/reviews"
        found = []
        for review in self.pages(path):
            for c in self.http.json("GET", f"{path}/{int(review['id'])}/comments") or ():
                comment = inline_comment(c, self.author(c.get("user")))
                if since is None or comment.at >= int(since):
                    found.append(comment)
        return found

    def resolve_inline(self, repo: str, number: int, comment_ids: Sequence[int]) -> list[int]:
        for comment_id in comment_ids:
            self.http.request("POST", f"{repo_path(repo, 'Gitea')}/pulls/comments/{int(comment_id)}/resolve")
        return list(comment_ids)

    def pages(self, path: str, params: Mapping[str, Any] | None = None) -> Iterator[Any]:
        raise NotImplementedError  # the client's (Gitea's own paging)
