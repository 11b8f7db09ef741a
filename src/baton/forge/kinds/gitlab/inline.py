"""A merge request's diff notes as threads (:class:`~baton.forge.kinds.inline.InlineThreads` for GitLab):
every note lives in a *discussion* (a 40-hex id), so a reply to note N is a note of N's discussion
(``POST …/discussions/:id/notes``) and resolving N resolves its discussion (``PUT
…/discussions/:id?resolved=true``). Which discussion holds a note is read from the merge request's
``/discussions`` (paged, until every note asked for is found) and remembered, so the replies of one
review turn read them once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from baton.forge.data.model import Comment, ForgeError
from baton.forge.kinds.gitlab.rest import PER_PAGE, GitLabREST, actor, is_diff_note
from baton.forge.kinds.rest import epoch

MAX_KNOWN = 10_000  # (repo, merge request, note) -> discussion ids remembered, then forgotten at once
_DISCUSSION = frozenset("0123456789abcdef")
RESOLVED, OPEN, UNRESOLVABLE = "resolved", "open", "unresolvable"


class GitLabInline(GitLabREST):
    """GitLab's REST client with :class:`~baton.forge.kinds.inline.InlineThreads`' three calls."""

    def __init__(self, api_url: str, token: str, **kwargs: Any) -> None:
        super().__init__(api_url, token, **kwargs)
        # (repo, merge request, note) -> (its discussion's id, RESOLVED, OPEN or UNRESOLVABLE)
        self._known: dict[tuple[str, int, int], tuple[str, str]] = {}

    def reply_inline(self, repo: str, number: int, comment_id: int, body: str) -> int:
        """A reply in the discussion of diff note ``comment_id`` of merge request ``number``; its id."""
        discussion, _ = self._discussion_of(repo, number, int(comment_id))
        path = f"{self.thread_path(repo, number, True)}/discussions/{discussion}/notes"
        return int(self.http.json("POST", path, json={"body": body})["id"])

    def inline_comments(self, repo: str, number: int, since: float | None = None) -> list[Comment]:
        """The merge request's diff notes (replies in their discussions too: they are diff notes as
        well) made at or after ``since``, oldest first."""
        found = []
        for note in self.notes_newest_first(repo, number, True):
            at = epoch(note.get("created_at"))
            if since is not None and at < int(since):
                break
            if is_diff_note(note) and not note.get("system"):
                found.append(
                    Comment(
                        id=int(note["id"]),
                        author=actor(note.get("author")),
                        body=str(note.get("body") or ""),
                        url=self.note_url(repo, number, True, int(note["id"])),
                        at=at,
                    )
                )
        return found[::-1]

    def resolve_inline(self, repo: str, number: int, comment_ids: Sequence[int]) -> list[int]:
        """Resolve the discussions of ``comment_ids`` (each once); the notes whose discussion is
        resolved now (or was already). A note in no discussion of the merge request is left out;
        GitLab refuses to resolve for someone below Developer who did not open the merge request."""
        resolved, done = [], set()
        for comment_id in comment_ids:
            try:
                discussion, state = self._discussion_of(repo, number, int(comment_id))
            except ForgeError as exc:
                if exc.status != 404:
                    raise
                continue
            if state == UNRESOLVABLE:  # a single comment's discussion: nothing to resolve
                continue
            if state == OPEN and discussion not in done:
                path = f"{self.thread_path(repo, number, True)}/discussions/{discussion}"
                self.http.request("PUT", path, params={"resolved": "true"})
            done.add(discussion)
            resolved.append(int(comment_id))
        for key in [k for k, v in self._known.items() if v[0] in done]:
            self._known[key] = (self._known[key][0], RESOLVED)
        return resolved

    def _discussion_of(self, repo: str, number: int, note_id: int) -> tuple[str, str]:
        """The discussion holding a note of the merge request, and its state: remembered,
        else read from its discussions (every page until the note is found)."""
        key = (repo.casefold(), int(number), note_id)
        if key not in self._known:
            if len(self._known) > MAX_KNOWN:
                self._known.clear()
            path = f"{self.thread_path(repo, number, True)}/discussions"
            for discussion in self.pages(path, {"per_page": PER_PAGE}):
                self._learn(repo, number, discussion)
                if key in self._known:
                    break
        if key not in self._known:
            raise ForgeError(f"GitLab: no discussion of {repo}!{number} holds note {note_id}", 404)
        return self._known[key]

    def _learn(self, repo: str, number: int, discussion: Any) -> None:
        if not isinstance(discussion, Mapping):
            return
        did = str(discussion.get("id") or "")
        if not did or not set(did) <= _DISCUSSION:  # GitLab's ids are hex: nothing else goes in a path
            return
        notes = [n for n in discussion.get("notes") or () if isinstance(n, Mapping) and "id" in n]
        resolvable = [n for n in notes if n.get("resolvable")]
        state = (
            UNRESOLVABLE
            if not resolvable
            else RESOLVED
            if all(n.get("resolved") for n in resolvable)
            else OPEN
        )
        for note in notes:
            self._known[(repo.casefold(), int(number), int(note["id"]))] = (quote(did, safe=""), state)
