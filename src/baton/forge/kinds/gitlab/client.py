"""GitLab's REST API v4 (gitlab.com and self-managed, 16.x to 18.x) as a
:class:`~baton.forge.data.model.ForgeClient`, over :class:`~baton.forge.kinds.http.ForgeHTTP` rather than
python-gitlab: that layer already is what the loop needs of any forge — bounded retries, ``Retry-After``
and GitLab's ``RateLimit-*`` waited for or raised, a POST never sent twice, ETags, a 10 MB log's tail
without holding it, the token scrubbed from every error — and python-gitlab would bring its own retry
and session habits beside it, load whole lists, and read errors its own way. Issues and merge requests
are two number spaces (``pr=True`` names the merge request); ``repo`` is a project's full path. What
differs from GitHub (roles, diff notes as reviews, pipelines as checks, drafts): each method says.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from baton.forge.data.model import Comment, ForgeError, Review, ReviewComment, ThreadInfo
from baton.forge.kinds.gitlab.inline import GitLabInline
from baton.forge.kinds.gitlab.pipelines import GitLabPipelines
from baton.forge.kinds.gitlab.rest import PER_PAGE, actor, is_diff_note, project_path
from baton.forge.kinds.gitlab.text import hunk_around, is_draft
from baton.forge.kinds.rest import epoch, iso

log = logging.getLogger(__name__)

# GitLab's access levels as the trust policy's words (Planner, 15, is GitLab 17.7's; Minimal access, 5,
# sees nothing of a project's code)
ROLES = {50: "admin", 40: "maintain", 30: "write", 20: "triage", 15: "triage", 10: "read", 5: "none"}
DRAFT = "Draft: "
DIFF_PAGES = 10  # a merge request's diffs read for the hunks of its diff notes: 1,000 files
MAX_USERS = 4096  # logins -> user ids remembered (then those expired are dropped)
USER_IDS_KEPT = 60.0  # seconds: as long as the trust policy keeps a permission
NOTES_KEPT = 30.0  # seconds a comments() read's diff notes wait for the reviews() of the same look
UNKNOWN_MERGE = frozenset({"checking", "unchecked", "preparing", "approvals_syncing", "not_open"})
CONFLICT_MERGE = frozenset({"conflict", "broken_status"})


@dataclass(frozen=True)
class GitLabUser:
    """Who a token acts as (``GET /user``)."""

    login: str
    id: int
    bot: bool
    name: str = ""


@dataclass(frozen=True)
class TokenInfo:
    """What a token may do (``GET /personal_access_tokens/self``: personal, project and group tokens)."""

    name: str
    scopes: tuple[str, ...]
    expires_at: str | None
    active: bool


def role(access_level: int) -> str:
    """An access level as the trust policy's permission; none below Guest."""
    return next(
        (name for level, name in sorted(ROLES.items(), reverse=True) if access_level >= level), "none"
    )


def mergeable(mr: Mapping[str, Any]) -> bool | None:
    """Whether an open merge request merges (``detailed_merge_status``, GitLab 15.6 and later; else the
    older ``merge_status``): a conflict is False; not computed yet, or not open, None; anything else
    (a draft, waiting for a pipeline or an approval) merges as far as git is concerned: True."""
    if mr.get("state") != "opened":
        return None
    detailed = str(mr.get("detailed_merge_status") or "")
    status = str(mr.get("merge_status") or "")
    if detailed in UNKNOWN_MERGE or (not detailed and status not in ("can_be_merged", "cannot_be_merged")):
        return None
    conflict = detailed in CONFLICT_MERGE or (not detailed and status == "cannot_be_merged")
    return not (conflict or mr.get("has_conflicts"))


def _labels(item: Mapping[str, Any]) -> tuple[str, ...]:
    """Labels as names (GitLab gives strings; with ``with_labels_details``, objects)."""
    names = (label.get("name") if isinstance(label, Mapping) else label for label in item.get("labels") or ())
    return tuple(str(name) for name in names if name)


def _issue_info(issue: Mapping[str, Any]) -> ThreadInfo:
    return ThreadInfo(
        number=int(issue["iid"]),
        is_pr=False,
        state="open" if issue.get("state") == "opened" else "closed",
        title=str(issue.get("title") or ""),
        body=str(issue.get("description") or ""),
        url=str(issue.get("web_url") or ""),
        author=actor(issue.get("author")),
        labels=_labels(issue),
    )


def _mr_info(mr: Mapping[str, Any], head_clone_url: str | None = None) -> ThreadInfo:
    """A merge request as ThreadInfo. ``locked`` is GitLab's short state while a merge is under way:
    open still (the next read says merged)."""
    state = str(mr.get("state") or "opened")
    source, target = mr.get("source_project_id"), mr.get("target_project_id")
    head = mr.get("sha") or (mr.get("diff_refs") or {}).get("head_sha")
    return ThreadInfo(
        number=int(mr["iid"]),
        is_pr=True,
        state="open" if state in ("opened", "locked") else "closed",
        title=str(mr.get("title") or ""),
        body=str(mr.get("description") or ""),
        url=str(mr.get("web_url") or ""),
        author=actor(mr.get("author")),
        merged=state == "merged",
        head_sha=str(head) if head else None,
        head_ref=mr.get("source_branch"),
        base_ref=mr.get("target_branch"),
        from_fork=source is not None and target is not None and source != target,
        head_clone_url=head_clone_url,
        mergeable=mergeable(mr),
        labels=_labels(mr),
    )


class GitLabClient(GitLabInline, GitLabPipelines):
    """:class:`~baton.forge.data.model.ForgeClient` (and :class:`~baton.forge.kinds.inline.InlineThreads`) for
    GitLab at ``api_url`` (``https://gitlab.com/api/v4``, ``https://HOST/api/v4``) with ``token``.
    ``retries``, ``timeout`` and ``transport`` go to the shared HTTP client; ``sleep`` and ``clock``
    are injectable for tests."""

    def __init__(self, api_url: str, token: str, **kwargs: Any) -> None:
        super().__init__(api_url, token, **kwargs)
        self._clock: Callable[[], float] = kwargs.get("clock", time.time)
        self._user_ids: dict[str, tuple[float, int]] = {}  # login -> (when asked, its id)
        self._lock = threading.Lock()
        # (repo, merge request, since) -> (when, the diff notes a comments() read passed over)
        self._diff_notes: dict[tuple[str, int, float], tuple[float, list[dict[str, Any]]]] = {}

    # -- who ----------------------------------------------------------------------------------------------

    def whoami(self) -> GitLabUser:
        data = self.http.json("GET", "/user")
        return GitLabUser(
            str(data["username"]), int(data["id"]), bool(data.get("bot")), str(data.get("name") or "")
        )

    def token_scopes(self) -> TokenInfo:
        """The token's name, scopes and expiry (``baton forge test``: ``api`` reads and writes
        everything the loop needs; ``read_api`` cannot comment; git needs ``write_repository``)."""
        data = self.http.json("GET", "/personal_access_tokens/self")
        return TokenInfo(
            name=str(data.get("name") or ""),
            scopes=tuple(str(s) for s in data.get("scopes") or ()),
            expires_at=data.get("expires_at"),
            active=bool(data.get("active", True)) and not data.get("revoked"),
        )

    def permission(self, repo: str, login: str) -> str:
        """The actor's role as the trust policy's permission: Owner admin, Maintainer maintain,
        Developer write, Reporter and Planner triage, Guest read; a user who is no member (directly,
        through a group, or a group the project is shared with) — even on a public project, which
        anyone may read and comment on — and an unknown user are none: only membership gives a role
        on GitLab, and the trust policy treats none and read alike (neither is trusted)."""
        return role(self.access_level(repo, login))

    def access_level(self, repo: str, login: str) -> int:
        """The user's access level on the project (0: no member, or no such user)."""
        user_id = self._user_id(login)
        if user_id is None:
            return 0
        path = f"{project_path(repo)}/members/all/{user_id}"
        response = self.http.request("GET", path, allow=(404,))
        if response.status_code == 404:
            if "project" in response.text.lower():  # "404 Project Not Found": not the member's absence
                raise ForgeError(f"GitLab answered 404 to GET {project_path(repo)}: no project {repo}", 404)
            return 0
        data = response.json()
        if not isinstance(data, Mapping) or data.get("state", "active") != "active":
            return 0  # a blocked or deactivated user
        if data.get("membership_state", "active") != "active":
            return 0  # an invitation not taken, a membership awaiting an administrator's approval
        return int(data.get("access_level") or 0)

    def _user_id(self, login: str) -> int | None:
        """The user's id, remembered :data:`USER_IDS_KEPT` seconds only: GitLab lets a user rename
        themselves and another take the old name, and an id kept longer would lend the new holder of a
        name the old one's role. An unknown name is not remembered."""
        key, now = login.casefold(), self._clock()
        kept = self._user_ids.get(key)
        if kept is not None and now - kept[0] < USER_IDS_KEPT:
            return kept[1]
        users = self.http.json("GET", "/users", params={"username": login}) or []
        found = next(
            (
                int(u["id"])
                for u in users
                if isinstance(u, Mapping) and str(u.get("username")).casefold() == key
            ),
            None,
        )
        if found is not None:
            with self._lock:
                if len(self._user_ids) >= MAX_USERS:
                    self._user_ids = {k: v for k, v in self._user_ids.items() if now - v[0] < USER_IDS_KEPT}
                self._user_ids[key] = (now, found)
        return found

    def webhooks(self, repo: str) -> list[tuple[str, frozenset[str]]]:
        """The project's webhooks (``baton forge test``): each one's URL and the event flags it has on
        (``note_events``, ``pipeline_events``, ...). GitLab shows them to a Maintainer (403 otherwise)."""
        found = []
        for hook in self.pages(f"{project_path(repo)}/hooks", {"per_page": PER_PAGE}):
            # a hook GitLab disabled after failing deliveries delivers nothing
            if isinstance(hook, Mapping) and hook.get("alert_status") not in (
                "disabled",
                "temporarily_disabled",
            ):
                flags = frozenset(str(k) for k, v in hook.items() if k.endswith("_events") and v is True)
                found.append((str(hook.get("url") or ""), flags))
        return found

    # -- threads ------------------------------------------------------------------------------------------

    def thread(self, repo: str, number: int, *, pr: bool = False) -> ThreadInfo:
        """Issue ``number``, or merge request ``number`` with ``pr``. A fork's merge request names its
        fork's clone URL when the token can see that project (one more request, for forks only)."""
        data = self.http.json("GET", self.thread_path(repo, number, pr))
        if not pr:
            return _issue_info(data)
        info = _mr_info(data)
        if info.from_fork:
            info = _mr_info(data, self._clone_url(data.get("source_project_id")))
        return info

    def _clone_url(self, project_id: Any) -> str | None:
        try:
            project = self.http.json("GET", f"/projects/{int(project_id)}")
        except ForgeError as exc:
            if exc.transient:
                raise
            return None  # a private fork, or one deleted
        url = project.get("http_url_to_repo") if isinstance(project, Mapping) else None
        if not isinstance(url, str) or not url.startswith(("https://", "http://")) or "@" in url:
            return None
        return url

    def updated_since(self, repo: str, since: float) -> list[ThreadInfo]:
        """The issues, then the merge requests, updated at or after ``since`` (two lists: the numbers
        of the two are apart; each ThreadInfo's ``is_pr`` says which it is)."""
        params = {"updated_after": iso(since), "scope": "all", "order_by": "updated_at", "sort": "asc"}
        path = project_path(repo)
        issues = [_issue_info(i) for i in self.pages(f"{path}/issues", {**params, "per_page": PER_PAGE})]
        mrs = self.pages(f"{path}/merge_requests", {**params, "state": "all", "per_page": PER_PAGE})
        return issues + [_mr_info(mr) for mr in mrs]

    # -- conversation -------------------------------------------------------------------------------------

    def comments(
        self, repo: str, number: int, since: float | None = None, *, pr: bool = False
    ) -> list[Comment]:
        """The thread's notes made at or after ``since``, oldest first — not GitLab's system notes ("added
        label ~bug") nor a merge request's diff notes (:meth:`reviews`). Read newest first and no further
        than ``since``: a thread with nothing new costs one request."""
        found, diff_notes = [], []
        for note in self._notes_since(repo, number, pr, since):
            if note.get("system"):
                continue
            if is_diff_note(note):
                diff_notes.append(note)
                continue
            found.append(
                Comment(
                    id=int(note["id"]),
                    author=actor(note.get("author")),
                    body=str(note.get("body") or ""),
                    url=self.note_url(repo, number, pr, int(note["id"])),
                    at=epoch(note.get("created_at")),
                )
            )
        if pr and since is not None:
            self._keep_diff_notes(repo, number, since, diff_notes)
        return found[::-1]

    def reviews(self, repo: str, number: int, since: float | None = None) -> list[Review]:
        """The merge request's diff notes made at or after ``since``, oldest first, each as a review of
        one comment (GitLab's review is a batch of diff notes with no id of its own: the dispatcher
        gathers one author's new notes into one turn): state COMMENTED, the commit its position was
        made on, its file and line and the diff's lines that end there. The notes a :meth:`comments`
        read of the same look just passed over are used, not asked again; the diffs are read once,
        only when there are notes."""
        notes = self._taken_diff_notes(repo, number, since)
        if notes is None:
            notes = [n for n in self._notes_since(repo, number, True, since) if is_diff_note(n)]
        notes = [n for n in notes if not n.get("system")]
        if not notes:
            return []
        wanted = {p for n in notes for p in _paths(n["position"])}
        diffs = self._diffs(repo, number, wanted)
        return [self._review(repo, number, n, diffs) for n in reversed(notes)]

    def _review(self, repo: str, number: int, note: Mapping[str, Any], diffs: dict[str, str]) -> Review:
        position = note["position"]
        new_line, old_line = _line(position.get("new_line")), _line(position.get("old_line"))
        path = str(position.get("new_path") or position.get("old_path") or "")
        diff = diffs.get(path) or diffs.get(str(position.get("old_path") or "")) or ""
        url = self.note_url(repo, number, True, int(note["id"]))
        comment = ReviewComment(
            id=int(note["id"]),
            path=path,
            line=new_line if new_line is not None else old_line,
            diff_hunk=hunk_around(diff, new_line, old_line),
            body=str(note.get("body") or ""),
            url=url,
        )
        head = position.get("head_sha") or note.get("commit_id")
        return Review(
            id=int(note["id"]),
            author=actor(note.get("author")),
            state="COMMENTED",
            body="",
            commit=str(head) if head else None,
            url=url,
            comments=(comment,),
            at=epoch(note.get("created_at")),
        )

    def _notes_since(self, repo: str, number: int, pr: bool, since: float | None) -> Iterator[dict[str, Any]]:
        seen: set[int] = set()  # a note written while paging shifts the pages: one may come twice
        for note in self.notes_newest_first(repo, number, pr):
            if since is not None and epoch(note.get("created_at")) < int(since):
                return
            if int(note["id"]) not in seen:
                seen.add(int(note["id"]))
                yield note

    def _keep_diff_notes(self, repo: str, number: int, since: float, notes: list[dict[str, Any]]) -> None:
        now = self._clock()
        with self._lock:
            self._diff_notes = {k: v for k, v in self._diff_notes.items() if now - v[0] < NOTES_KEPT}
            self._diff_notes[(repo.casefold(), int(number), since)] = (now, notes)

    def _taken_diff_notes(self, repo: str, number: int, since: float | None) -> list[dict[str, Any]] | None:
        if since is None:
            return None
        with self._lock:
            kept = self._diff_notes.pop((repo.casefold(), int(number), since), None)
        return kept[1] if kept is not None and self._clock() - kept[0] < NOTES_KEPT else None

    def _diffs(self, repo: str, number: int, wanted: set[str]) -> dict[str, str]:
        """The merge request's diff of each wanted file (``/diffs``, GitLab 15.7 and later; an older
        one's ``/changes``); a diff that cannot be read leaves the hunks empty, not the notes unread."""
        found: dict[str, str] = {}
        path = self.thread_path(repo, number, True)
        try:
            try:
                for change in self.pages(f"{path}/diffs", {"per_page": PER_PAGE}, max_pages=DIFF_PAGES):
                    _take(change, wanted, found)
                    if wanted <= found.keys():
                        break
            except ForgeError as exc:
                if exc.status != 404:
                    raise
                for change in (self.http.json("GET", f"{path}/changes") or {}).get("changes") or ():
                    _take(change, wanted, found)
        except ForgeError as exc:
            if exc.transient:
                raise
            log.warning("%s", exc)
        return found

    def open_pr(self, repo: str, head: str, base: str, title: str, body: str, draft: bool) -> tuple[int, str]:
        """Open a merge request from branch ``head`` into ``base`` — a draft as a ``Draft:`` title, as
        GitLab marks them; when one is open from that branch into ``base`` already (GitLab's 409,
        "Another open merge request already exists for this source branch"), that one."""
        branch = head.split(":", 1)[1] if ":" in head else head
        if draft and not is_draft(title):
            title = DRAFT + title
        path = f"{project_path(repo)}/merge_requests"
        payload = {"source_branch": branch, "target_branch": base, "title": title, "description": body}
        try:
            data = self.http.json("POST", path, json=payload)
        except ForgeError as exc:
            if exc.status not in (409, 422) or "already exists" not in str(exc):
                raise
            params = {"source_branch": branch, "target_branch": base, "state": "opened", "per_page": 1}
            found = self.http.json("GET", path, params=params)
            if not found:
                raise
            data = found[0]
        return int(data["iid"]), str(data["web_url"])


def _paths(position: Mapping[str, Any]) -> set[str]:
    return {str(p) for p in (position.get("new_path"), position.get("old_path")) if p}


def _line(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def _take(change: Any, wanted: set[str], found: dict[str, str]) -> None:
    if not isinstance(change, Mapping):
        return
    for key in ("new_path", "old_path"):
        path = str(change.get(key) or "")
        if path in wanted and path not in found:
            found[path] = str(change.get("diff") or "")
