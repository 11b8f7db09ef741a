"""The fake GitLab's webhook bodies of notes, issues and merge requests (:class:`ThreadPayloads`): Note,
Issue and Merge Request Hook as GitLab's "Webhook events" documentation shows them, times written as
its examples write them: a note's and a ``changes`` entry's ``2026-11-26 10:00:00 UTC``, an issue's and
a merge request's own ``2026-11-26T10:00:00Z``.
"""

from __future__ import annotations

from typing import Any

from baton.testing.fake_gitlab_hooks import Payloads
from baton.testing.fake_gitlab_state import Issue, MergeRequest, Note, Project, hook_iso, hook_time

_STATE_ID = {"opened": 1, "closed": 2, "merged": 3, "locked": 4}


class ThreadPayloads(Payloads):
    """Note, Issue and Merge Request Hook bodies."""

    # -- notes -----------------------------------------------------------------------------------------------

    def note(self, project: Project, note: Note, noteable: Issue | MergeRequest) -> dict[str, Any]:
        kind = "issues" if note.noteable_type == "Issue" else "merge_requests"
        attributes: dict[str, Any] = {
            "id": note.id,
            "note": note.body,
            "noteable_type": note.noteable_type,
            "author_id": self.render.user(note.author).id,
            "created_at": hook_time(note.created_at),
            "updated_at": hook_time(note.updated_at),
            "project_id": project.id,
            "attachment": None,
            "line_code": None,
            "commit_id": "",
            "discussion_id": note.discussion_id,
            "noteable_id": note.noteable_id,
            "system": note.system,
            "st_diff": None,
            "type": note.type,
            "action": "create" if note.created_at == note.updated_at else "update",
            "description": note.body,
            "updated_by_id": None,
            "resolved_at": None if note.resolved_at is None else hook_time(note.resolved_at),
            "resolved_by_id": None if note.resolved_by is None else self.render.user(note.resolved_by).id,
            "url": f"{self.render.web}/{project.path}/-/{kind}/{noteable.iid}#note_{note.id}",
        }
        if note.position is not None:
            attributes["position"] = dict(note.position)
            attributes["original_position"] = dict(note.position)
            attributes["line_code"] = str(note.position.get("line_code") or "") or None
        body: dict[str, Any] = {
            "object_kind": "note",
            "event_type": "note",
            "user": self.user(note.author),
            "project_id": project.id,
            "project": self.project(project),
            "object_attributes": attributes,
            "repository": self.repository(project),
        }
        if isinstance(noteable, Issue):
            body["issue"] = self._note_issue(project, noteable)
        else:
            body["merge_request"] = self._note_mr(project, noteable)
        return body

    def _note_issue(self, project: Project, issue: Issue) -> dict[str, Any]:
        assignees = [self.render.user(a).id for a in issue.assignees]
        return {
            "id": issue.id,
            "title": issue.title,
            "assignee_ids": assignees,
            "assignee_id": assignees[0] if assignees else None,
            "author_id": self.render.user(issue.author).id,
            "project_id": project.id,
            "created_at": hook_time(issue.created_at),
            "updated_at": hook_time(issue.updated_at),
            "position": 0,
            "branch_name": None,
            "description": issue.description,
            "milestone_id": None,
            "state": issue.state,
            "iid": issue.iid,
            "labels": [self.label(project, t) for t in issue.labels],
        }

    def _note_mr(self, project: Project, mr: MergeRequest) -> dict[str, Any]:
        merge_status, detailed, _ = self.render.mergeability(project, mr)
        assignees = [self.render.user(a).id for a in mr.assignees]
        source = self.render.project_id(mr.source_project) if mr.source_project else project.id
        last = self.commit(project, self.render.mr_sha(project, mr))
        last.pop("title")
        return {
            "id": mr.id,
            "target_branch": mr.target_branch,
            "source_branch": mr.source_branch,
            "source_project_id": source,
            "author_id": self.render.user(mr.author).id,
            "assignee_id": assignees[0] if assignees else None,
            "title": mr.title,
            "created_at": hook_time(mr.created_at),
            "updated_at": hook_time(mr.updated_at),
            "milestone_id": None,
            "state": mr.state,
            "merge_status": merge_status,
            "target_project_id": project.id,
            "iid": mr.iid,
            "description": mr.description,
            "position": 0,
            "labels": [self.label(project, t) for t in mr.labels],
            "source": self.project(project),
            "target": self.project(project),
            "last_commit": last,
            "work_in_progress": mr.draft,
            "draft": mr.draft,
            "assignee": self.short_user(mr.assignees[0]) if mr.assignees else None,
            "detailed_merge_status": detailed,
            "url": f"{self.render.web}/{project.path}/-/merge_requests/{mr.iid}",
        }

    # -- issues ----------------------------------------------------------------------------------------------

    def issue(
        self, project: Project, issue: Issue, action: str, actor: str, changes: dict[str, Any]
    ) -> dict[str, Any]:
        """An Issue Hook: ``action`` open, close, reopen or update; ``changes`` what moved."""
        assignees = [self.render.user(a).id for a in issue.assignees]
        attributes = {
            "id": issue.id,
            "title": issue.title,
            "assignee_ids": assignees,
            "assignee_id": assignees[0] if assignees else None,
            "author_id": self.render.user(issue.author).id,
            "project_id": project.id,
            "created_at": hook_iso(issue.created_at),
            "updated_at": hook_iso(issue.updated_at),
            "updated_by_id": self.render.user(actor).id,
            "last_edited_at": None,
            "last_edited_by_id": None,
            "relative_position": 0,
            "description": issue.description,
            "milestone_id": None,
            "state_id": _STATE_ID[issue.state],
            "confidential": False,
            "discussion_locked": None,
            "due_date": None,
            "moved_to_id": None,
            "duplicated_to_id": None,
            "time_estimate": 0,
            "total_time_spent": 0,
            "time_change": 0,
            "human_total_time_spent": None,
            "human_time_estimate": None,
            "human_time_change": None,
            "weight": None,
            "health_status": None,
            "type": "Issue",
            "iid": issue.iid,
            "url": f"{self.render.web}/{project.path}/-/issues/{issue.iid}",
            "state": issue.state,
            "action": action,
            "severity": "unknown",
            "labels": [self.label(project, t) for t in issue.labels],
        }
        return {
            "object_kind": "issue",
            "event_type": "issue",
            "user": self.user(actor),
            "project": self.project(project),
            "object_attributes": attributes,
            "repository": self.repository(project),
            "assignees": [self.short_user(a) for a in issue.assignees],
            "assignee": self.short_user(issue.assignees[0]) if issue.assignees else None,
            "labels": [self.label(project, t) for t in issue.labels],
            "changes": changes,
        }

    # -- merge requests --------------------------------------------------------------------------------------

    def merge_request(
        self,
        project: Project,
        mr: MergeRequest,
        action: str,
        actor: str,
        changes: dict[str, Any],
        oldrev: str | None = None,
    ) -> dict[str, Any]:
        """A Merge Request Hook: ``action`` open, close, reopen, update, merge, approved, …; ``oldrev``
        the source branch's previous head when a push moved it."""
        merge_status, detailed, _ = self.render.mergeability(project, mr)
        source_project = project if mr.source_project is None else None
        source = self.project(source_project) if source_project else self._fork(mr.source_project or "")
        attributes: dict[str, Any] = {
            "id": mr.id,
            "iid": mr.iid,
            "target_branch": mr.target_branch,
            "source_branch": mr.source_branch,
            "source_project_id": source["id"],
            "author_id": self.render.user(mr.author).id,
            "assignee_ids": [self.render.user(a).id for a in mr.assignees],
            "assignee_id": self.render.user(mr.assignees[0]).id if mr.assignees else None,
            "reviewer_ids": [self.render.user(r).id for r in mr.reviewers],
            "title": mr.title,
            "created_at": hook_iso(mr.created_at),
            "updated_at": hook_iso(mr.updated_at),
            "last_edited_at": None,
            "last_edited_by_id": None,
            "milestone_id": None,
            "state_id": _STATE_ID[mr.state],
            "state": mr.state,
            "blocking_discussions_resolved": self.render.discussions_resolved(project, mr),
            "work_in_progress": mr.draft,
            "draft": mr.draft,
            "first_contribution": False,
            "merge_status": merge_status,
            "target_project_id": project.id,
            "description": mr.description,
            "prepared_at": hook_iso(mr.created_at),
            "merge_commit_sha": mr.merge_commit_sha,
            "total_time_spent": 0,
            "time_change": 0,
            "human_total_time_spent": None,
            "human_time_change": None,
            "human_time_estimate": None,
            "url": f"{self.render.web}/{project.path}/-/merge_requests/{mr.iid}",
            "source": source,
            "target": self.project(project),
            "last_commit": self.commit(project, self.render.mr_sha(project, mr)),
            "labels": [self.label(project, t) for t in mr.labels],
            "action": action,
            "detailed_merge_status": detailed,
        }
        if oldrev is not None:
            attributes["oldrev"] = oldrev
        return {
            "object_kind": "merge_request",
            "event_type": "merge_request",
            "user": self.user(actor),
            "project": self.project(project),
            "object_attributes": attributes,
            "repository": self.repository(project, full=True),
            "labels": [self.label(project, t) for t in mr.labels],
            "changes": changes,
            "assignees": [self.short_user(a) for a in mr.assignees],
            "reviewers": [self.short_user(r) for r in mr.reviewers],
        }

    def _fork(self, path: str) -> dict[str, Any]:
        """A fork's ``source`` project (its id and URLs; the fork's own record is the core's)."""
        web = f"{self.render.web}/{path}"
        return {
            "id": self.render.project_id(path),
            "name": path.rpartition("/")[2],
            "description": "",
            "web_url": web,
            "avatar_url": None,
            "git_ssh_url": f"git@127.0.0.1:{path}.git",
            "git_http_url": f"{web}.git",
            "namespace": path.rpartition("/")[0].rpartition("/")[2],
            "visibility_level": 0,
            "path_with_namespace": path,
            "default_branch": "main",
            "homepage": web,
            "url": f"{web}.git",
            "ssh_url": f"git@127.0.0.1:{path}.git",
            "http_url": f"{web}.git",
        }
