"""What happens on the fake GitLab's issues and discussions (:class:`GitLabDrive`), whether a test drives
it or baton does through the API: issues opened, labelled, assigned and closed; notes, replies, a
review's diff notes, discussions resolved; each sends the webhook GitLab sends. Pushes are
:mod:`fake_gitlab_git`'s, merge requests and pipelines :mod:`fake_gitlab_merge`'s.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from baton.testing.fake_gitlab_core import GitLabRefused
from baton.testing.fake_gitlab_git import GitLabGit
from baton.testing.fake_gitlab_state import (
    Discussion,
    Issue,
    MergeRequest,
    Note,
    Project,
    hook_time,
)


class GitLabDrive(GitLabGit):
    """Issues, notes, discussions and pushes; every change sends its webhook."""

    # -- lookups --------------------------------------------------------------------------------------------

    def issue(self, project: str | Project, iid: int) -> Issue:
        proj = project if isinstance(project, Project) else self.project(project)
        with self.lock:
            if iid not in proj.issues:
                raise GitLabRefused(404, "404 Issue Not Found")
            return proj.issues[iid]

    def mr(self, project: str | Project, iid: int) -> MergeRequest:
        proj = project if isinstance(project, Project) else self.project(project)
        with self.lock:
            if iid not in proj.mrs:
                raise GitLabRefused(404, "404 Merge Request Not Found")
            return proj.mrs[iid]

    def notes(self, project: str, iid: int, *, mr: bool = False) -> list[Note]:
        """The notes of an issue (or ``mr``), oldest first."""
        proj = self.project(project)
        target: Issue | MergeRequest = self.mr(proj, iid) if mr else self.issue(proj, iid)
        with self.lock:
            return sorted(
                (proj.notes[n] for d in target.discussions for n in proj.discussions[d].notes),
                key=lambda n: n.id,
            )

    # -- issues ---------------------------------------------------------------------------------------------

    def open_issue(
        self,
        project: str,
        title: str,
        description: str = "",
        *,
        author: str = "alice",
        labels: tuple[str, ...] = (),
        assignees: tuple[str, ...] = (),
    ) -> Issue:
        """An issue (Issue Hook ``open``)."""
        with self.change():
            proj = self.project(project)
            now = self.clock()
            issue = Issue(next(self._ids), proj.next_issue, title, description, author, now, now)
            proj.next_issue += 1
            for label in labels:
                self._label_id(proj, label)
            issue.labels, issue.assignees = list(labels), list(assignees)
            proj.issues[issue.iid] = issue
            self.emit(proj, "Issue Hook", self.payloads.issue(proj, issue, "open", author, {}))
            return issue

    def close_issue(self, project: str, iid: int, *, by: str = "alice") -> Issue:
        with self.change():
            proj = self.project(project)
            issue = self.issue(proj, iid)
            old = self._touch(issue)
            issue.state, issue.closed_at, issue.closed_by = "closed", issue.updated_at, by
            changes = self._stamp(old, issue.updated_at, by) | {
                "state_id": {"previous": 1, "current": 2},
                "closed_at": {"previous": None, "current": hook_time(issue.updated_at)},
            }
            self.emit(proj, "Issue Hook", self.payloads.issue(proj, issue, "close", by, changes))
            return issue

    def _label_id(self, project: Project, title: str) -> int:
        if title not in project.labels:
            project.labels[title] = next(self._ids)
        return project.labels[title]

    def _stamp(self, old: float, new: float, by: str) -> dict[str, Any]:
        return {
            "updated_at": {"previous": hook_time(old), "current": hook_time(new)},
            "updated_by_id": {"previous": None, "current": self.user(by).id},
        }

    def label(
        self,
        project: str,
        iid: int,
        *add: str,
        remove: tuple[str, ...] = (),
        by: str = "alice",
        mr: bool = False,
    ) -> None:
        """Labels added (and ``remove``d) on an issue or ``mr``: an update with ``changes.labels``."""
        with self.change():
            proj = self.project(project)
            target: Issue | MergeRequest = self.mr(proj, iid) if mr else self.issue(proj, iid)
            before = list(target.labels)
            for title in add:
                self._label_id(proj, title)
            target.labels = [t for t in before if t not in remove] + [t for t in add if t not in before]
            self._updated(proj, target, by, "labels", [self.payloads.label(proj, t) for t in before], None)

    def assign(
        self,
        project: str,
        iid: int,
        *usernames: str,
        by: str = "alice",
        mr: bool = False,
        replace: bool = False,
    ) -> None:
        """Assignees added to an issue or ``mr`` (``replace``: they become the assignees)."""
        with self.change():
            proj = self.project(project)
            target: Issue | MergeRequest = self.mr(proj, iid) if mr else self.issue(proj, iid)
            before = list(target.assignees)
            names = list(usernames) if replace else before + [u for u in usernames if u not in before]
            for name in names:
                self.user(name)
            target.assignees = names
            self._updated(proj, target, by, "assignees", [self.payloads.short_user(u) for u in before], None)

    def _updated(
        self,
        proj: Project,
        target: Issue | MergeRequest,
        by: str,
        what: str,
        previous: list[Any],
        oldrev: str | None,
    ) -> None:
        """An update's webhook: ``changes`` says ``what`` moved (labels, assignees) from ``previous``."""
        old = self._touch(target)
        current = (
            [self.payloads.label(proj, t) for t in target.labels]
            if what == "labels"
            else [self.payloads.short_user(u) for u in target.assignees]
        )
        changes = {what: {"previous": previous, "current": current}} | self._stamp(old, target.updated_at, by)
        if isinstance(target, Issue):
            self.emit(proj, "Issue Hook", self.payloads.issue(proj, target, "update", by, changes))
        else:
            self.emit(
                proj,
                "Merge Request Hook",
                self.payloads.merge_request(proj, target, "update", by, changes, oldrev),
            )

    # -- notes and discussions ------------------------------------------------------------------------------

    def comment(self, project: str, iid: int, body: str, *, author: str = "alice", mr: bool = False) -> Note:
        """A note on an issue or ``mr`` (its own discussion; Note Hook)."""
        with self.change():
            proj = self.project(project)
            target: Issue | MergeRequest = self.mr(proj, iid) if mr else self.issue(proj, iid)
            note = self._note(proj, target, author, body, None)
            self._touch(target)
            self.emit(proj, "Note Hook", self.payloads.note(proj, note, target))
            return note

    def _note(
        self,
        proj: Project,
        target: Issue | MergeRequest,
        author: str,
        body: str,
        position: dict[str, Any] | None,
        discussion: Discussion | None = None,
    ) -> Note:
        self.user(author)
        now = self.clock()
        kind = "Issue" if isinstance(target, Issue) else "MergeRequest"
        if discussion is None:
            discussion = Discussion(secrets.token_hex(20), individual_note=position is None)
            proj.discussions[discussion.id] = discussion
            target.discussions.append(discussion.id)
        note_type = (
            "DiffNote" if position is not None else (None if discussion.individual_note else "DiscussionNote")
        )
        resolvable = kind == "MergeRequest" and not discussion.individual_note
        note = Note(
            next(self._ids),
            kind,
            target.id,
            target.iid,
            author,
            body,
            now,
            now,
            discussion.id,
            type=note_type,
            position=position,
            resolvable=resolvable,
        )
        proj.notes[note.id] = note
        discussion.notes.append(note.id)
        return note

    def edit_note(self, project: str, note_id: int, body: str, *, by: str | None = None) -> Note:
        """A note's body changed (Note Hook ``update``)."""
        with self.change():
            proj = self.project(project)
            note = proj.notes.get(note_id)
            if note is None:
                raise GitLabRefused(404, "404 Note Not Found")
            if by is not None and by != note.author:
                raise GitLabRefused(403, "403 Forbidden")
            note.body, note.updated_at = body, max(self.clock(), note.updated_at + 0.001)
            target = self._noteable(proj, note)
            self.emit(proj, "Note Hook", self.payloads.note(proj, note, target))
            return note

    def _noteable(self, proj: Project, note: Note) -> Issue | MergeRequest:
        if note.noteable_type == "Issue":
            return proj.issues[note.noteable_iid]
        return proj.mrs[note.noteable_iid]

    def review(self, project: str, iid: int, author: str, comments: list[tuple[str, int, str]]) -> list[Note]:
        """A submitted review of merge request ``iid``: each ``(path, new line, text)`` a diff note
        starting its own discussion on the MR's current diff, published together; a Note Hook each."""
        with self.change():
            proj = self.project(project)
            mr = self.mr(proj, iid)
            refs = self.diff_refs(proj, mr)
            diffs = {d["new_path"]: d for d in self.diffs(proj, mr)}
            notes = []
            for path, line, text in comments:
                position = _position(refs, diffs.get(path), path, line)
                notes.append(self._note(proj, mr, author, text, position))
            self._touch(mr)
            for note in notes:
                self.emit(proj, "Note Hook", self.payloads.note(proj, note, mr))
            return notes

    def reply(
        self, project: str, iid: int, discussion_id: str, body: str, *, author: str = "alice", mr: bool = True
    ) -> Note:
        """A reply in a discussion (Note Hook): a DiffNote in a diff discussion, else a DiscussionNote
        (a lone note replied to becomes a discussion, as on GitLab)."""
        with self.change():
            proj = self.project(project)
            target: Issue | MergeRequest = self.mr(proj, iid) if mr else self.issue(proj, iid)
            discussion = proj.discussions.get(discussion_id)
            if discussion is None or discussion_id not in target.discussions:
                raise GitLabRefused(404, "404 Discussion Not Found")
            first = proj.notes[discussion.notes[0]]
            if discussion.individual_note:
                discussion.individual_note = False
                first.type, first.resolvable = "DiscussionNote", isinstance(target, MergeRequest)
            note = self._note(proj, target, author, body, first.position, discussion)
            self._touch(target)
            self.emit(proj, "Note Hook", self.payloads.note(proj, note, target))
            return note

    def resolve(
        self, project: str, iid: int, discussion_id: str, resolved: bool = True, *, by: str = "alice"
    ) -> Discussion:
        """A merge request's discussion resolved (or not): its resolvable notes say so."""
        with self.change():
            proj = self.project(project)
            mr = self.mr(proj, iid)
            discussion = proj.discussions.get(discussion_id)
            if discussion is None or discussion_id not in mr.discussions:
                raise GitLabRefused(404, "404 Discussion Not Found")
            notes = [proj.notes[n] for n in discussion.notes]
            if not any(n.resolvable for n in notes):
                raise GitLabRefused(403, "403 Forbidden")
            now = self.clock()
            for note in notes:
                if note.resolvable:
                    note.resolved, note.resolved_by = resolved, by if resolved else None
                    note.resolved_at = now if resolved else None
            self._touch(mr)
            return discussion


def _position(refs: dict[str, str], diff: dict[str, Any] | None, path: str, line: int) -> dict[str, Any]:
    """A diff note's ``position`` on ``line`` of the new ``path``: an added line has no old line; a
    line the diff leaves as it was has both."""
    old_line = _old_line(diff["diff"] if diff else "", line)
    old_path = diff["old_path"] if diff else path
    code = f"{hashlib.sha1(path.encode()).hexdigest()}_{old_line or line}_{line}"  # GitLab's own line code
    side: dict[str, Any] = {"line_code": code, "old_line": old_line, "new_line": line}
    if old_line is None:
        side["type"] = "new"
    return {
        **refs,
        "old_path": old_path,
        "new_path": path,
        "position_type": "text",
        "old_line": old_line,
        "new_line": line,
        "line_range": {"start": dict(side), "end": dict(side)},
        "ignore_whitespace_change": False,
    }


def _old_line(diff: str, new_line: int) -> int | None:
    """The old file's line that is ``new_line`` of the new one (None: the diff added it)."""
    offset = 0
    old = new = 0
    for row in diff.splitlines():
        if row.startswith("@@"):
            parts = row.split()
            old = int(parts[1].lstrip("-").split(",")[0]) - 1
            new = int(parts[2].lstrip("+").split(",")[0]) - 1
            if new + 1 > new_line:
                break
            offset = old - new
            continue
        if row.startswith("+"):
            new += 1
            if new == new_line:
                return None
        elif row.startswith("-"):
            old += 1
        else:
            old, new = old + 1, new + 1
            if new == new_line:
                return old
        offset = old - new
    return new_line + offset
