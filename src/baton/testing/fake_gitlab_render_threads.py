"""The fake GitLab's REST shapes of issues, merge requests (with their merge status and ``diff_refs``),
notes, discussions, approvals, pipelines and jobs (:class:`ThreadsRender`), as GitLab's REST API v4
writes them: the fields its documentation shows, ``null`` where it sends ``null``.
"""

from __future__ import annotations

from typing import Any

from baton.testing.fake_gitlab_render import Render
from baton.testing.fake_gitlab_state import Discussion, Issue, Job, MergeRequest, Note, Pipeline, Project, iso

SHARED_RUNNER = {
    "id": 1,
    "description": "fake-shared-runner",
    "ip_address": "127.0.0.1",
    "active": True,
    "paused": False,
    "is_shared": True,
    "runner_type": "instance_type",
    "name": "gitlab-runner",
    "online": True,
    "status": "online",
    "tags": ["docker"],
}
_TIME_STATS = {
    "time_estimate": 0,
    "total_time_spent": 0,
    "human_time_estimate": None,
    "human_total_time_spent": None,
}
_DETAILED = {  # a pipeline's detailed_status per status: (icon, text, label, group)
    "success": ("status_success", "Passed", "passed", "success"),
    "failed": ("status_failed", "Failed", "failed", "failed"),
    "running": ("status_running", "Running", "running", "running"),
    "pending": ("status_pending", "Pending", "pending", "pending"),
    "canceled": ("status_canceled", "Canceled", "canceled", "canceled"),
    "skipped": ("status_skipped", "Skipped", "skipped", "skipped"),
    "created": ("status_created", "Created", "created", "created"),
    "manual": ("status_manual", "Manual", "manual action", "manual"),
}


class ThreadsRender(Render):
    """Issues, merge requests, notes, discussions, approvals, pipelines and jobs."""

    # -- issues and merge requests -------------------------------------------------------------------------

    def _refs(self, project: Project, sign: str, iid: int) -> dict[str, str]:
        return {"short": f"{sign}{iid}", "relative": f"{sign}{iid}", "full": f"{project.path}{sign}{iid}"}

    def _notes_count(self, project: Project, ids: list[str]) -> int:
        notes = (project.notes[n] for d in ids for n in project.discussions[d].notes)
        return sum(1 for n in notes if not n.system)

    def issue(self, project: Project, issue: Issue) -> dict[str, Any]:
        api = f"{self.web}/api/v4/projects/{project.id}"
        assignees = [self.user_basic(a) for a in issue.assignees]
        return {
            "id": issue.id,
            "iid": issue.iid,
            "project_id": project.id,
            "title": issue.title,
            "description": issue.description,
            "state": issue.state,
            "created_at": iso(issue.created_at),
            "updated_at": iso(issue.updated_at),
            "closed_at": None if issue.closed_at is None else iso(issue.closed_at),
            "closed_by": None if issue.closed_by is None else self.user_basic(issue.closed_by),
            "labels": list(issue.labels),
            "milestone": None,
            "assignees": assignees,
            "author": self.user_basic(issue.author),
            "type": "ISSUE",
            "assignee": assignees[0] if assignees else None,
            "user_notes_count": self._notes_count(project, issue.discussions),
            "merge_requests_count": 0,
            "upvotes": 0,
            "downvotes": 0,
            "due_date": None,
            "confidential": False,
            "discussion_locked": None,
            "issue_type": "issue",
            "web_url": f"{self.web}/{project.path}/-/issues/{issue.iid}",
            "time_stats": dict(_TIME_STATS),
            "task_completion_status": {"count": 0, "completed_count": 0},
            "has_tasks": False,
            "task_status": "0 of 0 checklist items completed",
            "_links": {
                "self": f"{api}/issues/{issue.iid}",
                "notes": f"{api}/issues/{issue.iid}/notes",
                "award_emoji": f"{api}/issues/{issue.iid}/award_emoji",
                "project": api,
                "closed_as_duplicate_of": None,
            },
            "references": self._refs(project, "#", issue.iid),
            "severity": "UNKNOWN",
            "subscribed": True,
            "moved_to_id": None,
            "imported": False,
            "imported_from": "none",
            "service_desk_reply_to": None,
        }

    def mr(
        self, project: Project, mr: MergeRequest, *, expanded: bool, viewer_level: int = 0
    ) -> dict[str, Any]:
        """A merge request: the list's form, or (``expanded``) the single one's, with ``diff_refs``."""
        merge_status, detailed, conflicts = self.mergeability(project, mr)
        assignees = [self.user_basic(a) for a in mr.assignees]
        body: dict[str, Any] = {
            "id": mr.id,
            "iid": mr.iid,
            "project_id": project.id,
            "title": mr.title,
            "description": mr.description,
            "state": mr.state,
            "created_at": iso(mr.created_at),
            "updated_at": iso(mr.updated_at),
            "merged_by": None if mr.merged_by is None else self.user_basic(mr.merged_by),
            "merge_user": None if mr.merged_by is None else self.user_basic(mr.merged_by),
            "merged_at": None if mr.merged_at is None else iso(mr.merged_at),
            "merge_after": None,
            "closed_by": None if mr.closed_by is None else self.user_basic(mr.closed_by),
            "closed_at": None if mr.closed_at is None else iso(mr.closed_at),
            "target_branch": mr.target_branch,
            "source_branch": mr.source_branch,
            "user_notes_count": self._notes_count(project, mr.discussions),
            "upvotes": 0,
            "downvotes": 0,
            "author": self.user_basic(mr.author),
            "assignees": assignees,
            "assignee": assignees[0] if assignees else None,
            "reviewers": [self.user_basic(r) for r in mr.reviewers],
            "source_project_id": project.id
            if mr.source_project is None
            else self.project_id(mr.source_project),
            "target_project_id": project.id,
            "labels": list(mr.labels),
            "draft": mr.draft,
            "imported": False,
            "imported_from": "none",
            "work_in_progress": mr.draft,
            "milestone": None,
            "merge_when_pipeline_succeeds": mr.auto_merge,
            "merge_status": merge_status,
            "detailed_merge_status": detailed,
            "sha": self.mr_sha(project, mr),
            "merge_commit_sha": mr.merge_commit_sha,
            "squash_commit_sha": None,
            "discussion_locked": None,
            "should_remove_source_branch": None,
            "force_remove_source_branch": mr.remove_source_branch,
            "prepared_at": iso(mr.created_at),
            "reference": f"!{mr.iid}",
            "references": self._refs(project, "!", mr.iid),
            "web_url": f"{self.web}/{project.path}/-/merge_requests/{mr.iid}",
            "time_stats": dict(_TIME_STATS),
            "squash": False,
            "squash_on_merge": False,
            "task_completion_status": {"count": 0, "completed_count": 0},
            "has_conflicts": conflicts,
            "blocking_discussions_resolved": self.discussions_resolved(project, mr),
            "approvals_before_merge": None,
        }
        if expanded:
            body.update(self._expanded(project, mr, viewer_level))
        return body

    def discussions_resolved(self, project: Project, mr: MergeRequest) -> bool:
        notes = (project.notes[d.notes[0]] for d in map(project.discussions.__getitem__, mr.discussions))
        return all(n.resolved for n in notes if n.resolvable)

    def _expanded(self, project: Project, mr: MergeRequest, viewer_level: int) -> dict[str, Any]:
        sha = self.mr_sha(project, mr)
        pipelines = sorted((p for p in project.pipelines.values() if p.sha == sha), key=lambda p: -p.id)
        head = pipelines[0] if pipelines else None
        return {
            "subscribed": True,
            "changes_count": str(len(self.changed_paths(project, mr))),
            "latest_build_started_at": None
            if head is None or head.started_at is None
            else iso(head.started_at),
            "latest_build_finished_at": (
                None if head is None or head.finished_at is None else iso(head.finished_at)
            ),
            "first_deployed_to_production_at": None,
            "pipeline": None if head is None else self.pipeline(project, head),
            "head_pipeline": None if head is None else self.pipeline_expanded(project, head),
            "diff_refs": self.diff_refs(project, mr),
            "merge_error": None,
            "first_contribution": False,
            "user": {"can_merge": viewer_level >= 40},
        }

    def changed_paths(self, project: Project, mr: MergeRequest) -> list[str]:
        refs = self.diff_refs(project, mr)
        names = project.repo.git("diff", "--name-only", refs["base_sha"], refs["head_sha"], check=False)
        return [n for n in names.splitlines() if n]

    def reviewers(self, mr: MergeRequest) -> list[dict[str, Any]]:
        """``GET …/reviewers``: each reviewer, its review's state and since when."""
        found = []
        for name in mr.reviewers:
            state, since = mr.review_states.get(name, ("unreviewed", mr.created_at))
            found.append({"user": self.user_basic(name), "state": state, "created_at": iso(since)})
        return found

    def approvals(self, project: Project, mr: MergeRequest) -> dict[str, Any]:
        left = max(0, mr.approvals_required - len(mr.approved_by))
        merge_status, _, _ = self.mergeability(project, mr)
        return {
            "id": mr.id,
            "iid": mr.iid,
            "project_id": project.id,
            "title": mr.title,
            "description": mr.description,
            "state": mr.state,
            "created_at": iso(mr.created_at),
            "updated_at": iso(mr.updated_at),
            "merge_status": merge_status,
            "approved": left == 0 if mr.approvals_required else bool(mr.approved_by),
            "approvals_required": mr.approvals_required,
            "approvals_left": left,
            "require_password_to_approve": False,
            "approved_by": [{"user": self.user_basic(u)} for u in mr.approved_by],
            "suggested_approvers": [],
            "approvers": [],
            "approver_groups": [],
            "user_has_approved": False,
            "user_can_approve": True,
            "approval_rules_left": [],
            "has_approval_rules": mr.approvals_required > 0,
            "merge_request_approvers_available": False,
            "multiple_approval_rules_available": False,
            "invalid_approvers_rules": [],
        }

    # -- notes and discussions ---------------------------------------------------------------------------

    def note(self, project: Project, note: Note) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": note.id,
            "type": note.type,
            "body": note.body,
            "attachment": None,
            "author": self.user_basic(note.author),
            "created_at": iso(note.created_at),
            "updated_at": iso(note.updated_at),
            "system": note.system,
            "noteable_id": note.noteable_id,
            "noteable_type": note.noteable_type,
            "project_id": project.id,
            "resolvable": note.resolvable,
            "confidential": False,
            "internal": False,
            "imported": False,
            "imported_from": "none",
            "noteable_iid": note.noteable_iid,
            "commands_changes": {},
        }
        if note.resolvable:
            body["resolved"] = note.resolved
            body["resolved_by"] = None if note.resolved_by is None else self.user_basic(note.resolved_by)
            body["resolved_at"] = None if note.resolved_at is None else iso(note.resolved_at)
        if note.position is not None:
            body["position"] = dict(note.position)
        return body

    def discussion(self, project: Project, discussion: Discussion) -> dict[str, Any]:
        return {
            "id": discussion.id,
            "individual_note": discussion.individual_note,
            "notes": [self.note(project, project.notes[n]) for n in discussion.notes],
        }

    # -- pipelines and jobs -------------------------------------------------------------------------------

    def pipeline(self, project: Project, pipeline: Pipeline) -> dict[str, Any]:
        return {
            "id": pipeline.id,
            "iid": pipeline.iid,
            "project_id": project.id,
            "sha": pipeline.sha,
            "ref": pipeline.ref,
            "status": pipeline.status,
            "source": pipeline.source,
            "created_at": iso(pipeline.created_at),
            "updated_at": iso(pipeline.updated_at),
            "web_url": f"{self.web}/{project.path}/-/pipelines/{pipeline.id}",
        }

    def detailed_status(self, project: Project, pipeline: Pipeline) -> dict[str, Any]:
        icon, text, label, group = _DETAILED.get(pipeline.status, _DETAILED["created"])
        path = f"/{project.path}/-/pipelines/{pipeline.id}"
        return {
            "icon": icon,
            "text": text,
            "label": label,
            "group": group,
            "tooltip": label,
            "has_details": True,
            "details_path": path,
            "illustration": None,
            "favicon": f"/assets/ci_favicons/favicon_{icon}.png",
        }

    def pipeline_expanded(self, project: Project, pipeline: Pipeline) -> dict[str, Any]:
        started, finished = pipeline.started_at, pipeline.finished_at
        return {
            **self.pipeline(project, pipeline),
            "name": None,
            "before_sha": pipeline.before_sha,
            "tag": False,
            "yaml_errors": None,
            "user": self.user_basic(pipeline.user),
            "started_at": None if started is None else iso(started),
            "finished_at": None if finished is None else iso(finished),
            "committed_at": None,
            "duration": None if started is None or finished is None else int(finished - started),
            "queued_duration": None,
            "coverage": None,
            "detailed_status": self.detailed_status(project, pipeline),
            "archived": False,
        }

    def job(self, project: Project, job: Job) -> dict[str, Any]:
        pipeline = project.pipelines[job.pipeline_id]
        commit = project.repo.git(
            "log", "-1", "--format=%s%x00%an%x00%ae%x00%cI%x00%B", pipeline.sha, check=False
        )
        title, author, email, when, message = (commit.split("\x00") + [""] * 5)[:5]
        started, finished = job.started_at, job.finished_at
        body: dict[str, Any] = {
            "id": job.id,
            "status": job.status,
            "stage": job.stage,
            "name": job.name,
            "ref": pipeline.ref,
            "tag": False,
            "coverage": None,
            "allow_failure": job.allow_failure,
            "created_at": iso(job.created_at),
            "started_at": None if started is None else iso(started),
            "finished_at": None if finished is None else iso(finished),
            "erased_at": None,
            "duration": None if started is None or finished is None else finished - started,
            "queued_duration": 0.5,
            "user": self.user_public(pipeline.user),
            "commit": {
                "id": pipeline.sha,
                "short_id": pipeline.sha[:8],
                "created_at": when,
                "parent_ids": [],
                "title": title,
                "message": message,
                "author_name": author,
                "author_email": email,
                "authored_date": when,
                "committer_name": author,
                "committer_email": email,
                "committed_date": when,
                "trailers": {},
                "extended_trailers": {},
                "web_url": f"{self.web}/{project.path}/-/commit/{pipeline.sha}",
            },
            "pipeline": self.pipeline(project, pipeline),
            "web_url": f"{self.web}/{project.path}/-/jobs/{job.id}",
            "project": {"ci_job_token_scope_enabled": False},
            "artifacts": [],
            "runner": SHARED_RUNNER if started is not None else None,
            "runner_manager": None,
            "artifacts_expire_at": None,
            "archived": False,
            "tag_list": [],
        }
        if job.status == "failed":
            body["failure_reason"] = job.failure_reason or "script_failure"
        return body
