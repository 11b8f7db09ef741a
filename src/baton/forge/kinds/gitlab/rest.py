"""What GitLab's client modules share (:mod:`baton.forge.kinds.gitlab.client`,
:mod:`baton.forge.kinds.gitlab.inline`, :mod:`baton.forge.kinds.gitlab.merge`): a project's path in the API
(its full path, checked, URL-encoded: ``/projects/grp%2Fsub%2Fapi``), GitLab's paging (``X-Next-Page``), its
users as actors (bots by flag or by GitLab's own bot usernames), a thread's notes newest first, and where a
note is seen on the web.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar
from urllib.parse import quote

import httpx

from baton.forge.data.model import Actor, ForgeError
from baton.forge.kinds.gitlab.facts import is_bot_login
from baton.forge.kinds.http import next_link
from baton.forge.kinds.rest import RestForge

log = logging.getLogger(__name__)

PER_PAGE = 100  # GitLab's largest page
MAX_PAGES = 1000
MAX_DEPTH = 21  # GitLab nests groups 20 deep, then the project
_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}")
GHOST = "ghost"  # GitLab's holder of a deleted user's notes ("Ghost User")
DIFF_NOTE = "DiffNote"


def project_path(repo: str) -> str:
    """``/projects/<full path, URL-encoded>``; ForgeError for anything that is not a project's full
    path (``group/project``, subgroups allowed; no ``..``, no empty or dotted segment)."""
    parts = repo.split("/")
    if (
        not 2 <= len(parts) <= MAX_DEPTH
        or ".." in repo
        or not all(_SEGMENT.fullmatch(p) for p in parts)
        or parts[-1].endswith((".git", ".atom"))
    ):
        raise ForgeError(f"{repo!r} is not a GitLab project's full path (group/project)", 0)
    return f"/projects/{quote(repo, safe='')}"


def actor(user: Mapping[str, Any] | None) -> Actor:
    """Who a payload's user is: its ``username``; a bot when GitLab says so (``bot``, in the user
    objects of ``/user`` and ``/users``) or by GitLab's bot usernames. A deleted user's notes are
    GitLab's ghost user's (``ghost``, named "Ghost User"), a bot here: it is nobody to trust."""
    if not user:
        return Actor(GHOST, bot=True)
    login = str(user.get("username") or GHOST)
    return Actor(login, bot=user.get("bot") is True or is_bot_login(login))


def is_diff_note(note: Mapping[str, Any]) -> bool:
    """A note on a line of a merge request's diff (a review's comment), not a comment on the thread."""
    return note.get("type") == DIFF_NOTE and isinstance(note.get("position"), Mapping)


def web_root(api_url: str) -> str:
    """The web address beside the API's: ``https://gitlab.example/gitlab`` for
    ``https://gitlab.example/gitlab/api/v4``."""
    base = api_url.rstrip("/")
    return base.removesuffix("/api/v4")


class GitLabREST(RestForge):
    """GitLab's REST API v4 at ``api_url`` (``https://gitlab.com/api/v4``) with a personal, project or
    group access token (``Authorization: Bearer``); the calls every GitLab module makes."""

    NAME, AUTH = "GitLab", "Bearer"
    HEADERS: ClassVar[dict[str, str]] = {"Accept": "application/json"}

    def __init__(self, api_url: str, token: str, **kwargs: Any) -> None:
        super().__init__(api_url, token, **kwargs)
        self.web = web_root(str(self.http.api_url))

    def repo_path(self, repo: str) -> str:
        return project_path(repo)

    def thread_path(self, repo: str, number: int, pr: bool) -> str:
        """An issue's (``/issues/<iid>``) or a merge request's (``/merge_requests/<iid>``) path: their
        numbers are two spaces (issue #3 and merge request !3 are two threads)."""
        return f"{project_path(repo)}/{'merge_requests' if pr else 'issues'}/{int(number)}"

    def note_url(self, repo: str, number: int, pr: bool, note_id: int) -> str:
        kind = "merge_requests" if pr else "issues"
        return f"{self.web}/{repo}/-/{kind}/{int(number)}#note_{int(note_id)}"

    def pages(
        self, path: str, params: Mapping[str, Any] | None = None, *, max_pages: int = MAX_PAGES
    ) -> Iterator[Any]:
        """Every item of a GitLab list, one page held at a time: ``page=1, 2, ...`` as ``X-Next-Page``
        says (empty on the last page), else as the ``page`` of the ``Link`` header's next URL. The
        ``Link`` URL itself is not followed: GitLab writes it from the address it was asked at, which
        behind a proxy is not always the one baton talks to (and the token goes to that one only)."""
        page = 1
        for _ in range(max_pages):
            response = self.http.request("GET", path, params={**(params or {}), "page": page})
            items = _items(response, path)
            yield from items
            following = _next_page(response)
            if not items or following is None or following <= page:
                return
            page = following
        log.warning("GitLab: stopped paging %s after %d pages", path, max_pages)

    def notes_newest_first(self, repo: str, number: int, pr: bool) -> Iterator[dict[str, Any]]:
        """A thread's notes, newest first (the caller stops reading at the first it has seen)."""
        params = {"sort": "desc", "order_by": "created_at", "per_page": PER_PAGE}
        for note in self.pages(f"{self.thread_path(repo, number, pr)}/notes", params):
            if isinstance(note, dict):
                yield note

    # -- what RestForge spells GitHub's way ------------------------------------------------------------

    def default_branch(self, repo: str) -> str:
        branch = self.http.json("GET", project_path(repo)).get("default_branch")
        if not branch:
            raise ForgeError(f"GitLab: {repo} has no default branch (an empty repository?)", 404)
        return str(branch)

    def post_comment(self, repo: str, number: int, body: str, *, pr: bool = False) -> int:
        """A new note on issue ``number`` (a merge request's with ``pr``); its id."""
        path = f"{self.thread_path(repo, number, pr)}/notes"
        return int(self.http.json("POST", path, json={"body": body})["id"])

    def edit_comment(
        self, repo: str, comment_id: int, body: str, *, number: int = 0, pr: bool = False
    ) -> None:
        """GitLab edits a note under its issue or merge request: ``number`` (and ``pr``) name it."""
        if int(number) <= 0:
            raise ForgeError(f"GitLab edits a note under its issue or merge request: which one of {repo}?", 0)
        path = f"{self.thread_path(repo, number, pr)}/notes/{int(comment_id)}"
        self.http.request("PUT", path, json={"body": body})


def _items(response: httpx.Response, path: str) -> list[Any]:
    try:
        data = response.json()
    except ValueError:
        raise ForgeError(f"GitLab answered GET {path} with something that is not JSON", 0) from None
    if not isinstance(data, list):
        raise ForgeError(f"GitLab answered GET {path} without a list", 0)
    return data


def _next_page(response: httpx.Response) -> int | None:
    """The next page's number: ``X-Next-Page`` (empty: none), else the ``Link`` header's next."""
    if "x-next-page" in response.headers:
        value = response.headers["x-next-page"].strip()
        return int(value) if value.isdigit() else None
    link = next_link(response.headers.get("link"))
    value = httpx.URL(link).params.get("page", "") if link else ""
    return int(value) if value.isdigit() else None
