"""Where GitLab's published types (``@gitbeaker/core`` 43.8.0, ``gitlab-event-types`` 2.0.1) contradict
GitLab's own documentation of its REST API and webhooks (17.x/18.x), and how :mod:`gitlab_spec` amends
them: each :class:`Amendment` names the type, the property's path (``builds[].user``: an array's items;
``**.avatar_url``: wherever it is), the change and why. An amendment that changes nothing (the package
was fixed) or names what is not there fails, so the table stays true.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Amendment:
    type: str  # "gitbeaker:JobSchema"
    path: str  # "runner", "builds[].user", "**.avatar_url", "" (the type itself, for "open")
    change: str  # optional | nullable | type | add | values | open
    why: str
    value: Any = None  # type/add: a schema, or the name of another type; values: the values to allow


GB, EV = "gitbeaker:", "events:"
# A webhook's `user` as GitLab's "Webhook events" examples show it (gitbeaker types it as the REST
# API's user: state and web_url, no email).
HOOK_USER = {
    "type": "object",
    "properties": {k: {"type": "string"} for k in ("name", "username", "avatar_url", "email")}
    | {"id": {"type": "integer"}},
    "required": ["id", "name", "username", "avatar_url"],
    "additionalProperties": False,
}
USER_OR_NULL = {"anyOf": [{"type": "null"}, {"type": "object", "required": ["id", "username"]}]}
LINE = {"type": ["integer", "null"]}
# detailed_merge_status's values in GitLab's merge request API documentation that gitbeaker lacks
DETAILED = [
    "approvals_syncing",
    "commits_status",
    "conflict",
    "merge_request_blocked",
    "merge_time",
    "need_rebase",
    "preparing",
    "requested_changes",
    "security_policy_violations",
    "status_checks_must_pass",
    "locked_paths",
    "locked_lfs_files",
    "title_regex",
]
_HOOKS = (
    "WebhookIssueEventSchema",
    "WebhookIssueNoteEventSchema",
    "WebhookMergeRequestEventSchema",
    "WebhookMergeRequestNoteEventSchema",
)
_EVENTS = ("IssueEvent", "MergeRequestEvent", "NoteEvent", "PipelineEvent", "PushEvent")
_CHANGES = "changes lists only what changed (the documented examples carry two or three entries)"

AMENDMENTS: list[Amendment] = [
    # -- REST ----------------------------------------------------------------------------------------------
    Amendment(
        GB + "PersonalAccessTokenSchema",
        "token",
        "optional",
        "GET /personal_access_tokens/self never shows the token",
    ),
    Amendment(GB + "PersonalAccessTokenSchema", "expires_at", "nullable", "a token without expiry says null"),
    Amendment(GB + "PersonalAccessTokenSchema", "last_used_at", "nullable", "a token never used says null"),
    Amendment(
        GB + "SimpleUserSchema",
        "created_at",
        "optional",
        "List users shows a non-administrator no created_at",
    ),
    Amendment(
        GB + "MemberSchema",
        "email",
        "optional",
        "a member's email is shown to administrators (and SAML groups) only",
    ),
    Amendment(GB + "MemberSchema", "group_saml_identity", "optional", "only for members of a SAML group"),
    Amendment(GB + "MemberSchema", "expires_at", "nullable", "a membership without expiry says null"),
    *(
        Amendment(GB + "ProjectSchema", name, "optional", why)
        for name, why in [
            ("owner", "a project in a group has no owner"),
            ("license", "only with ?license=true"),
            ("license_url", "only with ?license=true"),
            ("runners_token", "shown to who can administer the project"),
            ("repository_storage", "shown to administrators"),
            ("mirror", "pull mirroring: Premium"),
            ("mirror_user_id", "pull mirroring: Premium"),
            ("mirror_trigger_builds", "pull mirroring: Premium"),
            ("only_mirror_protected_branches", "pull mirroring: Premium"),
            ("mirror_overwrites_diverged_branches", "pull mirroring: Premium"),
        ]
    ),
    *(
        Amendment(GB + "ProjectSchema", name, "nullable", "GitLab's projects API example says null")
        for name in ("allow_merge_on_skipped_pipeline", "issue_branch_template", "marked_for_deletion_on")
    ),
    Amendment(
        GB + "ProjectSchema", "permissions.group_access", "nullable", "null without access through a group"
    ),
    Amendment(
        GB + "ProjectSchema",
        "permissions.project_access",
        "nullable",
        "null without a membership of the project",
    ),
    Amendment(
        GB + "ProjectSchema",
        "ci_pipeline_variables_minimum_override_role",
        "type",
        "a role's name (developer, maintainer, owner, no_one_allowed)",
        {"type": "string"},
    ),
    *(
        Amendment(
            GB + "IssueSchemaWithBasicLabels", name, "nullable", "an issue's example says null when unset"
        )
        for name in ("closed_at", "milestone", "due_date", "discussion_locked", "service_desk_reply_to")
    ),
    Amendment(
        GB + "IssueSchemaWithBasicLabels",
        "closed_by",
        "type",
        "the user who closed it, or null",
        USER_OR_NULL,
    ),
    Amendment(
        GB + "IssueSchemaWithBasicLabels",
        "moved_to_id",
        "type",
        "the issue's id, or null",
        {"type": ["integer", "null"]},
    ),
    Amendment(
        GB + "IssueSchemaWithBasicLabels",
        "_links.closed_as_duplicate_of",
        "add",
        "in the issues API's _links",
        {"type": ["string", "null"]},
    ),
    *(
        Amendment(GB + name, "detailed_merge_status", "values", "GitLab's list of merge statuses", DETAILED)
        for name in ("MergeRequestSchemaWithBasicLabels", "ExpandedMergeRequestSchema")
    ),
    *(
        Amendment(
            GB + "ExpandedMergeRequestSchema", f"head_pipeline.{name}", "nullable", "null while it runs"
        )
        for name in ("committed_at", "started_at", "finished_at", "duration")
    ),
    Amendment(
        GB + "MergeRequestDiscussionNoteSchema",
        "resolved_by",
        "type",
        "the user who resolved it, or null",
        USER_OR_NULL,
    ),
    Amendment(
        GB + "MergeRequestDiscussionNoteSchema",
        "resolved_by",
        "optional",
        "a note that cannot be resolved has none",
    ),
    Amendment(GB + "MergeRequestDiscussionNoteSchema", "resolved_at", "nullable", "null until resolved"),
    Amendment(
        GB + "MergeRequestDiscussionNoteSchema",
        "resolved_at",
        "optional",
        "a note that cannot be resolved has none",
    ),
    *(
        Amendment(
            GB + "MergeRequestDiscussionNoteSchema",
            f"position.{name}",
            "type",
            "a line number, or null",
            LINE,
        )
        for name in ("old_line", "new_line")
    ),
    *(
        Amendment(
            GB + "MergeRequestDiscussionNoteSchema",
            f"position.line_range.{end}.old_line",
            "nullable",
            "null on an added line",
        )
        for end in ("start", "end")
    ),
    Amendment(
        GB + "JobSchema",
        "user",
        "type",
        "a job's user is the public user (Users API's single user)",
        GB + "UserSchema",
    ),
    Amendment(GB + "JobSchema", "artifacts_file", "optional", "only a job with artifacts has it"),
    Amendment(GB + "JobSchema", "runner", "nullable", "null before a runner picked the job"),
    *(
        Amendment(GB + "JobSchema", name, "nullable", "the jobs API's example says null when unset")
        for name in ("coverage", "erased_at", "artifacts_expire_at", "started_at", "finished_at", "duration")
    ),
    Amendment(
        GB + "ProjectHookSchema", "projectId", "optional", "GitLab names it project_id (gitbeaker's typo)"
    ),
    Amendment(
        GB + "ProjectHookSchema",
        "project_id",
        "add",
        "the project hooks API's project_id",
        {"type": "integer"},
    ),
    Amendment(GB + "ProjectHookSchema", "disabled_until", "nullable", "null while the hook is enabled"),
    # -- gitbeaker's webhooks --------------------------------------------------------------------------------
    *(
        Amendment(GB + name, "event_name", "optional", "these events carry event_type, not event_name")
        for name in _HOOKS
    ),
    *(
        Amendment(
            GB + name,
            "user",
            "type",
            "the webhook examples' user: id, name, username, avatar_url, email",
            HOOK_USER,
        )
        for name in (*_HOOKS, "WebhookPipelineEventSchema")
    ),
    Amendment(
        GB + "WebhookPipelineEventSchema", "builds[].user", "type", "the webhook examples' user", HOOK_USER
    ),
    Amendment(
        GB + "WebhookPipelineEventSchema",
        "source_pipeline",
        "optional",
        "only a multi-project or child pipeline has it",
    ),
    *(
        Amendment(
            GB + "WebhookPipelineEventSchema",
            f"object_attributes.{name}",
            "nullable",
            "null while it runs, or unnamed",
        )
        for name in ("name", "finished_at", "duration")
    ),
    Amendment(GB + "WebhookPushEventSchema", "checkout_sha", "nullable", "null when the branch was deleted"),
    *(
        Amendment(
            GB + name,
            "object_attributes.noteable_id",
            "type",
            "the noteable's id (null for a commit)",
            {"type": ["integer", "null"]},
        )
        for name in ("WebhookIssueNoteEventSchema", "WebhookMergeRequestNoteEventSchema")
    ),
    *(
        Amendment(GB + name, "object_attributes.line_code", "nullable", "the comment examples say null")
        for name in ("WebhookIssueNoteEventSchema", "WebhookMergeRequestNoteEventSchema")
    ),
    *(
        Amendment(
            GB + name, f"object_attributes.{prop}", "add", "a note's attributes beside the typed ones", schema
        )
        for name in ("WebhookIssueNoteEventSchema", "WebhookMergeRequestNoteEventSchema")
        for prop, schema in [
            ("type", {"enum": [None, "DiscussionNote", "DiffNote"]}),
            ("action", {"enum": ["create", "update"]}),
            ("description", {"type": "string"}),
            ("updated_by_id", {"type": ["integer", "null"]}),
            ("resolved_at", {"type": ["string", "null"]}),
            ("resolved_by_id", {"type": ["integer", "null"]}),
            ("position", {"type": "object"}),
            ("original_position", {"type": "object"}),
        ]
    ),
    *(
        Amendment(
            GB + "WebhookMergeRequestNoteEventSchema",
            f"merge_request.{name}",
            "nullable",
            "the comment examples say null",
        )
        for name in ("assignee_id", "milestone_id")
    ),
    Amendment(
        GB + "WebhookMergeRequestNoteEventSchema",
        "merge_request.url",
        "add",
        "the MR's hook attributes",
        {"type": "string"},
    ),
    *(
        Amendment(GB + name, "**.group_id", "nullable", "a project's label has no group (null)")
        for name in ("WebhookIssueEventSchema", "WebhookIssueNoteEventSchema")
    ),
    *(
        Amendment(GB + "WebhookIssueEventSchema", f"object_attributes.{name}", "nullable", "null when unset")
        for name in ("assignee_id", "discussion_locked", "health_status")
    ),
    *(
        Amendment(
            GB + "WebhookIssueEventSchema", f"object_attributes.{name}", "optional", "only an incident has it"
        )
        for name in ("escalation_status", "escalation_policy")
    ),
    Amendment(
        GB + "WebhookIssueEventSchema",
        "object_attributes.type",
        "add",
        "the work item's type (Issue)",
        {"type": "string"},
    ),
    *(
        Amendment(
            GB + "WebhookMergeRequestEventSchema", f"object_attributes.{name}", "nullable", "null when unset"
        )
        for name in (
            "last_edited_at",
            "last_edited_by_id",
            "merge_commit_sha",
            "human_total_time_spent",
            "human_time_change",
            "human_time_estimate",
        )
    ),
    *(
        Amendment(
            GB + "WebhookMergeRequestEventSchema",
            f"object_attributes.{name}",
            "add",
            "in the merge request example",
            schema,
        )
        for name, schema in [
            ("assignee_id", {"type": ["integer", "null"]}),
            ("merge_status", {"type": "string"}),
            ("prepared_at", {"type": ["string", "null"]}),
            ("oldrev", {"type": "string"}),
        ]
    ),
    *(
        Amendment(GB + name, f"changes.{prop}", "optional", _CHANGES)
        for name, props in [
            ("WebhookIssueEventSchema", ("updated_by_id", "updated_at", "labels")),
            (
                "WebhookMergeRequestEventSchema",
                (
                    "target_branch",
                    "updated_by_id",
                    "draft",
                    "updated_at",
                    "assignees",
                    "reviewers",
                    "labels",
                    "last_edited_at",
                    "last_edited_by_id",
                ),
            ),
        ]
        for prop in props
    ),
    *(
        Amendment(
            GB + name,
            "changes",
            "open",
            "changes may name any attribute that changed (title, description, state_id, …)",
        )
        for name in ("WebhookIssueEventSchema", "WebhookMergeRequestEventSchema")
    ),
    Amendment(
        GB + "WebhookIssueEventSchema",
        "changes.updated_by_id",
        "type",
        "user ids (the example: previous null, current 1)",
        {
            "type": "object",
            "properties": {
                "previous": {"type": ["integer", "null"]},
                "current": {"type": ["integer", "null"]},
            },
        },
    ),
    # -- gitlab-event-types (2024: older than the payloads it types) -----------------------------------------
    *(
        Amendment(EV + name, "**.avatar_url", "nullable", "a project without an avatar says null")
        for name in _EVENTS
    ),
    *(
        Amendment(EV + name, "**.group_id", "nullable", "a project's label has no group (null)")
        for name in ("IssueEvent",)
    ),
    *(
        Amendment(EV + name, "**.assignee_id", "nullable", "null without an assignee")
        for name in ("IssueEvent", "MergeRequestEvent", "NoteEvent")
    ),
    *(
        Amendment(EV + name, "**.milestone_id", "nullable", "null without a milestone")
        for name in ("IssueEvent", "NoteEvent")
    ),
    Amendment(EV + "IssueEvent", "assignee", "nullable", "null without an assignee"),
    *(
        Amendment(
            EV + "IssueEvent",
            f"object_attributes.{name}",
            "optional",
            "the current issue event has relative_position, no position or branch_name",
        )
        for name in ("position", "branch_name")
    ),
    Amendment(
        EV + "MergeRequestEvent",
        "object_attributes.assignee",
        "optional",
        "not in the current merge request event",
    ),
    Amendment(EV + "NoteEvent", "issue.branch_name", "nullable", "the issue comment example says null"),
    Amendment(EV + "NoteEvent", "merge_request.assignee", "nullable", "null without an assignee"),
    Amendment(EV + "NoteEvent", "object_attributes.line_code", "nullable", "the comment examples say null"),
    Amendment(EV + "NoteEvent", "object_attributes.st_diff", "nullable", "the comment examples say null"),
    *(
        Amendment(EV + "PipelineEvent", path, "nullable", "null while unfinished, or without artifacts")
        for path in (
            "object_attributes.finished_at",
            "object_attributes.duration",
            "builds[].started_at",
            "builds[].finished_at",
            "builds[].artifacts_file.filename",
            "builds[].artifacts_file.size",
        )
    ),
    Amendment(EV + "PushEvent", "checkout_sha", "nullable", "null when the branch was deleted"),
]
