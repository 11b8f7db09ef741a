// GitLab's published types the fake GitLab is checked against: tests/support/gitlab_spec.py turns each
// property of `Types` into a JSON Schema (ts-json-schema-generator) and checks the fake's answers and
// webhook bodies with it. "gitbeaker:" names come from @gitbeaker/core (the REST resources and the
// webhook events), "events:" names from gitlab-event-types (the webhook events).
import type {
  DiscussionSchema,
  ExpandedMergeRequestSchema,
  ExpandedUserSchema,
  IssueNoteSchema,
  IssueSchemaWithBasicLabels,
  JobSchema,
  MemberSchema,
  MergeRequestDiffSchema,
  MergeRequestDiscussionNoteSchema,
  MergeRequestLevelMergeRequestApprovalSchema,
  MergeRequestNoteSchema,
  MergeRequestReviewerSchema,
  MergeRequestSchemaWithBasicLabels,
  PersonalAccessTokenSchema,
  PipelineSchema,
  ProjectHookSchema,
  ProjectSchema,
  SimpleUserSchema,
  UserSchema,
  WebhookIssueEventSchema,
  WebhookIssueNoteEventSchema,
  WebhookMergeRequestEventSchema,
  WebhookMergeRequestNoteEventSchema,
  WebhookPipelineEventSchema,
  WebhookPushEventSchema,
} from "@gitbeaker/core";
import type { IssueEvent, MergeRequestEvent, NoteEvent, PipelineEvent, PushEvent } from "gitlab-event-types";

export interface Types {
  "gitbeaker:DiscussionSchema": DiscussionSchema;
  "gitbeaker:ExpandedMergeRequestSchema": ExpandedMergeRequestSchema;
  "gitbeaker:ExpandedUserSchema": ExpandedUserSchema;
  "gitbeaker:IssueNoteSchema": IssueNoteSchema;
  "gitbeaker:IssueSchemaWithBasicLabels": IssueSchemaWithBasicLabels;
  "gitbeaker:JobSchema": JobSchema;
  "gitbeaker:MemberSchema": MemberSchema;
  "gitbeaker:MergeRequestDiffSchema": MergeRequestDiffSchema;
  "gitbeaker:MergeRequestDiscussionNoteSchema": MergeRequestDiscussionNoteSchema;
  "gitbeaker:MergeRequestLevelMergeRequestApprovalSchema": MergeRequestLevelMergeRequestApprovalSchema;
  "gitbeaker:MergeRequestNoteSchema": MergeRequestNoteSchema;
  "gitbeaker:MergeRequestReviewerSchema": MergeRequestReviewerSchema;
  "gitbeaker:MergeRequestSchemaWithBasicLabels": MergeRequestSchemaWithBasicLabels;
  "gitbeaker:PersonalAccessTokenSchema": PersonalAccessTokenSchema;
  "gitbeaker:PipelineSchema": PipelineSchema;
  "gitbeaker:ProjectHookSchema": ProjectHookSchema;
  "gitbeaker:ProjectSchema": ProjectSchema;
  "gitbeaker:SimpleUserSchema": SimpleUserSchema;
  "gitbeaker:UserSchema": UserSchema;
  "gitbeaker:WebhookIssueEventSchema": WebhookIssueEventSchema;
  "gitbeaker:WebhookIssueNoteEventSchema": WebhookIssueNoteEventSchema;
  "gitbeaker:WebhookMergeRequestEventSchema": WebhookMergeRequestEventSchema;
  "gitbeaker:WebhookMergeRequestNoteEventSchema": WebhookMergeRequestNoteEventSchema;
  "gitbeaker:WebhookPipelineEventSchema": WebhookPipelineEventSchema;
  "gitbeaker:WebhookPushEventSchema": WebhookPushEventSchema;
  "events:IssueEvent": IssueEvent;
  "events:MergeRequestEvent": MergeRequestEvent;
  "events:NoteEvent": NoteEvent;
  "events:PipelineEvent": PipelineEvent;
  "events:PushEvent": PushEvent;
}
