"""The fake forge's conversations (:class:`ForgeThreads`): issues and pull requests on one number
sequence, their comments, labels and assignees, reviews with inline comments, check runs (with their
logs and annotations) and commit statuses. Each drive method changes the state and sends the
deliveries GitHub would.

``updated_at`` moves as GitHub's does: a comment, review, label, assignee, push to a PR's branch or
close bumps it; a check run, a commit status and a change of mergeability do not (GitHub keeps those on
the commit, so a reconcile that lists issues ``since`` never sees them: it must ask the head's checks).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from baton.testing.fake_forge_core import ForgeCore, ForgeRefused
from baton.testing.fake_forge_hooks import Payloads
from baton.testing.fake_forge_state import (
    ROLES,
    Annotation,
    CheckRun,
    Issue,
    IssueComment,
    PullPart,
    Review,
    ReviewComment,
    Status,
)


class ForgeThreads(ForgeCore):
    """Issues, pull requests, reviews, checks and statuses: the drive API tests call."""

    def open_issue(
        self,
        repo: str,
        login: str,
        title: str,
        body: str = "",
        labels: Sequence[str] = (),
        assignees: Sequence[str] = (),
    ) -> int:
        """An open issue; sends ``issues.opened``. Its number."""
        with self._change():
            r = self.repo(repo)
            now = self.clock()
            issue = Issue(
                r.next_number,
                next(self._ids),
                title,
                body,
                self.user(login).login,
                now,
                now,
                labels=list(labels),
                assignees=list(assignees),
            )
            r.issues[issue.number] = issue
            r.next_number += 1
            self._emit("issues", "opened", self.payloads.issue("opened", r, issue, login))
            return issue.number

    def label(self, repo: str, number: int, login: str, name: str) -> None:
        """Add a label; sends ``issues.labeled`` (``pull_request.labeled`` on a PR, as GitHub does)."""
        with self._change():
            r, issue = self.repo(repo), self.issue(repo, number)
            if name not in issue.labels:
                issue.labels.append(name)
            self._touch(issue)
            if issue.pr is not None and isinstance(self.payloads, Payloads):  # a dialect's own says how
                payload = self.payloads.pull_request("labeled", r, issue, login, label=name)
                self._emit("pull_request", "labeled", payload)
            else:
                self._emit("issues", "labeled", self.payloads.issue("labeled", r, issue, login, label=name))

    def assign(self, repo: str, number: int, login: str, assignee: str) -> None:
        """Assign a user; sends ``issues.assigned`` (``pull_request.assigned`` on a PR)."""
        with self._change():
            r, issue = self.repo(repo), self.issue(repo, number)
            self.user(assignee)
            if assignee not in issue.assignees:
                issue.assignees.append(assignee)
            self._touch(issue)
            if issue.pr is not None and isinstance(self.payloads, Payloads):
                payload = self.payloads.pull_request("assigned", r, issue, login, assignee=assignee)
                self._emit("pull_request", "assigned", payload)
            else:
                self._emit(
                    "issues", "assigned", self.payloads.issue("assigned", r, issue, login, assignee=assignee)
                )

    def comment(self, repo: str, number: int, login: str, body: str) -> int:
        """A new issue or PR comment; sends ``issue_comment.created``. Its id."""
        with self._change():
            r, issue = self.repo(repo), self.issue(repo, number)
            now = self.clock()
            c = IssueComment(next(self._ids), repo, number, self.user(login).login, body, now, now)
            self._comments[c.id] = c
            issue.comments.append(c.id)
            self._touch(issue)
            self._emit("issue_comment", "created", self.payloads.issue_comment(r, issue, c))
            return c.id

    def edit_comment(self, comment_id: int, body: str) -> IssueComment:
        with self._change():
            c = self._comments.get(comment_id)
            if c is None:
                raise ForgeRefused(404, "Not Found")
            c.body, c.updated_at = body, self.clock()
            self._touch(self.issue(c.repo, c.number))
            return c

    def comments(self, repo: str, number: int | None = None, login: str | None = None) -> list[IssueComment]:
        """The comments on a repo's issues and PRs (of one, of one author), in order."""
        with self._change():
            return [
                c
                for c in self._comments.values()
                if c.repo == repo and number in (None, c.number) and login in (None, c.author)
            ]

    def open_pr(
        self,
        repo: str,
        login: str,
        head: str,
        base: str | None = None,
        title: str = "",
        body: str = "",
        draft: bool = False,
    ) -> int:
        """A pull request from ``head`` (a branch of the repo, ``owner:branch`` for the same, or for a
        branch of ``owner``'s fork: see :meth:`create_fork`) onto ``base``; refused (:class:`ForgeRefused`
        422) as GitHub does when it has no commits over base or one is open for it. Sends
        ``pull_request.opened``. Its number."""
        with self._change():
            r = self.repo(repo)
            owner, _, ref = head.rpartition(":")
            base = base or r.default_branch
            fork = None
            if owner and owner != r.owner:
                fork = next((x for x in self.repos.values() if x.owner == owner and x.fork_of == repo), None)
                if fork is None:
                    raise ForgeRefused(422, f"head {head!r} is not a fork of {repo}", "PullRequest")
            where = fork or r
            if where.head(ref) is None:
                raise ForgeRefused(422, f"head {head!r} does not exist", "PullRequest")
            if r.head(base) is None:
                raise ForgeRefused(422, f"base {base!r} does not exist", "PullRequest")
            head_repo = fork.full_name if fork else None
            for other in r.issues.values():
                pr = other.pr
                if (
                    pr
                    and other.state == "open"
                    and (pr.head_ref, pr.head_repo, pr.base_ref) == (ref, head_repo, base)
                ):
                    raise ForgeRefused(
                        422, f"A pull request already exists for {where.owner}:{ref}.", "PullRequest"
                    )
            now = self.clock()
            issue = Issue(
                r.next_number, next(self._ids), title or ref, body, self.user(login).login, now, now,
                pr=PullPart(ref, base, draft, head_repo=head_repo),
            )  # fmt: skip
            self.track_pr_head(r, issue)  # GitHub's refs/pull/N/head: a fork's head copied here
            if r.ahead(base, r.pr_head(issue)) == 0:
                r.git("update-ref", "-d", f"refs/pull/{issue.number}/head")
                raise ForgeRefused(422, f"No commits between {base} and {ref}", "PullRequest")
            r.issues[issue.number] = issue
            r.next_number += 1
            self._emit("pull_request", "opened", self.payloads.pull_request("opened", r, issue, login))
            return issue.number

    def pulls(self, repo: str) -> list[Issue]:
        with self._change():
            return [i for i in self.repo(repo).issues.values() if i.pr is not None]

    def set_mergeable(self, repo: str, number: int, mergeable: bool | None) -> None:
        with self._change():
            issue = self.issue(repo, number)
            assert issue.pr is not None, f"#{number} is not a pull request"
            issue.pr.mergeable = mergeable  # GitHub's recomputed mergeability leaves updated_at alone

    def close(self, repo: str, number: int, login: str, merged: bool = False) -> None:
        """Close (or merge) an issue or PR; sends ``pull_request.closed`` or ``issues.closed``."""
        with self._change():
            r, issue = self.repo(repo), self.issue(repo, number)
            now = self.clock()
            issue.state, issue.closed_at = "closed", now
            self._touch(issue)
            if issue.pr is None:
                self._emit("issues", "closed", self.payloads.issue("closed", r, issue, login))
                return
            issue.pr.merged, issue.pr.merged_at = merged, now if merged else None
            issue.pr.head_sha_at_close = r.pr_head(issue)
            self._emit("pull_request", "closed", self.payloads.pull_request("closed", r, issue, login))

    def merge(self, repo: str, number: int, login: str, sha: str | None = None, title: str = "") -> str:
        """Merge an open PR as GitHub's merge button does (a merge commit of its head into its base, made
        in the bare repository: 405 when it conflicts, 409 when ``sha`` is no longer its head), then
        close it merged (``pull_request.closed``). The merge commit's sha."""
        with self._change():
            r, issue = self.repo(repo), self.issue(repo, number)
            if issue.pr is None:
                raise ForgeRefused(404, "Not Found")
            if issue.state != "open":
                raise ForgeRefused(405, "Pull Request is not mergeable")
            head, base = r.pr_head(issue), r.head(issue.pr.base_ref)
            if sha is not None and sha != head:
                raise ForgeRefused(409, "Head branch was modified. Review and try the merge again.")
            if base is None:
                raise ForgeRefused(405, "Base branch was modified. Review and try the merge again.")
            tree = r.git("merge-tree", "--write-tree", base, head, check=False)
            if not tree or "\n" in tree:  # a conflict lists its files after the tree
                raise ForgeRefused(405, "Pull Request is not mergeable")
            message = title or f"Merge pull request #{number} from {issue.pr.head_ref}"
            author = {"GIT_AUTHOR_NAME": login, "GIT_AUTHOR_EMAIL": f"{login}@users.noreply.fake"}
            commit = r.git_env(
                {**author, "GIT_COMMITTER_NAME": login, "GIT_COMMITTER_EMAIL": author["GIT_AUTHOR_EMAIL"]},
                "commit-tree",
                tree,
                "-p",
                base,
                "-p",
                head,
                "-m",
                message,
            )
            r.git("update-ref", f"refs/heads/{issue.pr.base_ref}", commit, base)
            self._moved(r, issue.pr.base_ref, base, commit, login)
        self.close(repo, number, login, merged=True)
        return commit

    def review(
        self,
        repo: str,
        pr: int,
        login: str,
        body: str = "",
        comments: Iterable[tuple[str, int, str]] = (),
        state: str = "COMMENTED",
        *,
        deliver_comments: bool = True,
    ) -> int:
        """A submitted review with inline ``(path, line, body)`` comments; sends
        ``pull_request_review.submitted`` and, as GitHub does, one ``pull_request_review_comment.created``
        per inline comment (``deliver_comments=False`` leaves those out: a huge review's test). Its id."""
        with self._change():
            r, issue = self.repo(repo), self.issue(repo, pr)
            sha, now = r.pr_head(issue), self.clock()
            review = Review(next(self._ids), repo, pr, self.user(login).login, body, state, sha, now)
            for path, line, text in comments:
                hunk = f"@@ -{max(1, line - 2)},3 +{max(1, line - 2)},3 @@\n line {line}"
                review.comments.append(
                    ReviewComment(next(self._ids), review.id, path, line, text, hunk, sha, login, now)
                )
            self._reviews[review.id] = review
            issue.reviews.append(review.id)
            self._touch(issue)
            self._emit("pull_request_review", "submitted", self.payloads.review(r, issue, review))
            if review.comments and deliver_comments:
                pull = self.payloads.review_comment(r, issue, review.comments[0])["pull_request"]
                for c in review.comments:
                    payload = self.payloads.review_comment(r, issue, c, pull)  # shared: serialized at once
                    self._emit("pull_request_review_comment", "created", payload)
            return review.id

    def reviews(self, repo: str, pr: int) -> list[Review]:
        with self._change():
            return [self._reviews[i] for i in self.issue(repo, pr).reviews]

    # -- threads of inline comments -------------------------------------------------------------------

    def review_comments(self, repo: str, pr: int) -> list[ReviewComment]:
        """Every inline comment of the pull request, replies included, in order."""
        with self._change():
            return [c for i in self.issue(repo, pr).reviews for c in self._reviews[i].comments]

    def reply_to_review_comment(self, repo: str, pr: int, comment_id: int, login: str, body: str) -> int:
        """A reply in the thread of inline comment ``comment_id`` (a reply to a reply joins the same
        thread), as GitHub makes it: a review of its own holding the reply; sends
        ``pull_request_review.submitted`` and ``pull_request_review_comment.created``. Its id."""
        with self._change():
            r, issue = self.repo(repo), self.issue(repo, pr)
            target = next((c for c in self.review_comments(repo, pr) if c.id == comment_id), None)
            if target is None:
                raise ForgeRefused(404, "Not Found")
            now = self.clock()
            review = Review(
                next(self._ids), repo, pr, self.user(login).login, "", "COMMENTED", target.commit_id, now
            )
            top = target.in_reply_to or target.id
            reply = ReviewComment(
                next(self._ids), review.id, target.path, target.line, body, target.diff_hunk,
                target.commit_id, review.author, now, in_reply_to=top,
            )  # fmt: skip
            review.comments.append(reply)
            self._reviews[review.id] = review
            issue.reviews.append(review.id)
            self._touch(issue)
            self._emit("pull_request_review", "submitted", self.payloads.review(r, issue, review))
            self._emit(
                "pull_request_review_comment", "created", self.payloads.review_comment(r, issue, reply)
            )
            return reply.id

    def find_review_comment(self, repo: str, comment_id: int) -> tuple[int, ReviewComment] | None:
        """The pull request and the inline comment of id ``comment_id``, if there is one."""
        with self._change():
            for review in self._reviews.values():
                for c in review.comments:
                    if review.repo == repo and c.id == comment_id:
                        return review.number, c
            return None

    def replies(self, repo: str, pr: int, comment_id: int) -> list[ReviewComment]:
        """The replies in the thread that inline comment ``comment_id`` starts, in order."""
        return [c for c in self.review_comments(repo, pr) if c.in_reply_to == comment_id]

    def thread_resolved(self, repo: str, comment_id: int) -> bool:
        """Whether the thread inline comment ``comment_id`` starts is resolved."""
        with self._change():
            return (repo, comment_id) in self.resolved_threads

    def resolve_thread(self, repo: str, pr: int, comment_id: int, login: str) -> None:
        """Resolve the thread ``comment_id`` starts (a user with write access, as GitHub asks)."""
        with self._change():
            if ROLES.index(self.repo(repo).permissions.get(login, "none")) < ROLES.index("write"):
                raise ForgeRefused(403, f"{login} cannot resolve review threads on {repo}")
            if not any(c.id == comment_id and c.in_reply_to is None for c in self.review_comments(repo, pr)):
                raise ForgeRefused(404, "Not Found")
            self.resolved_threads.add((repo, comment_id))

    # -- checks and statuses ------------------------------------------------------------------------------

    def add_check_run(
        self,
        repo: str,
        sha: str,
        name: str,
        conclusion: str | None = "failure",
        *,
        status: str = "completed",
        log: bytes | str | Path = b"",
        annotations: Iterable[Annotation | tuple[str, int, str]] = (),
        title: str | None = None,
        summary: str | None = None,
        sender: str = "github-actions[bot]",
    ) -> int:
        """A check run (and the Actions job of the same id, whose log it holds) on ``sha``; a completed
        one sends ``check_run.completed`` and ``check_suite.completed``. Its id (the job id)."""
        with self._change():
            r = self.repo(repo)
            now = self.clock()
            notes = [a if isinstance(a, Annotation) else Annotation(a[0], a[1], a[2]) for a in annotations]
            run = CheckRun(
                next(self._ids),
                repo,
                sha,
                name,
                status,
                conclusion if status == "completed" else None,
                now,
                now if status == "completed" else None,
                next(self._ids),
                title,
                summary,
                notes,
                log.encode() if isinstance(log, str) else log,
            )
            r.check_runs.append(run)
            prs = self.prs_at(repo, sha)  # checks leave the PR's updated_at alone, as on GitHub
            if status == "completed":
                self._emit("check_run", "completed", self.payloads.check_run(r, run, prs, sender))
                self._emit("check_suite", "completed", self.payloads.check_suite(r, run, prs, sender))
            return run.id

    def prs_at(self, repo: str, sha: str) -> list[Issue]:
        """The open pull requests whose head is ``sha``."""
        with self._change():
            r = self.repo(repo)
            return [i for i in r.issues.values() if i.pr and i.state == "open" and r.pr_head(i) == sha]

    def check_run(self, repo: str, run_id: int) -> CheckRun:
        with self._change():
            run = next((c for c in self.repo(repo).check_runs if c.id == run_id), None)
            if run is None:
                raise ForgeRefused(404, "Not Found")
            return run

    def set_status(
        self,
        repo: str,
        sha: str,
        context: str,
        state: str,
        description: str | None = None,
        target_url: str | None = None,
        sender: str = "ci-bot[bot]",
    ) -> int:
        """A commit status (error, failure, pending, success); sends ``status``. Its id."""
        with self._change():
            r = self.repo(repo)
            s = Status(next(self._ids), repo, sha, context, state, description, target_url, self.clock())
            r.statuses.append(s)  # the PR's updated_at stays: a reconcile asks the head's checks
            self._emit("status", None, self.payloads.status(r, s, sender))
            return s.id
