"""What a sync did, as a record: :class:`SyncReport` (with the :class:`Incoming` commits of each
source) is stored with the session and the run (:meth:`SyncReport.to_json`, read back tolerantly by
:meth:`SyncReport.from_json`: a malformed record is None, never an error), summed up in one line for
people (:meth:`SyncReport.summary`) and told to the agent at the start of its turn
(:meth:`SyncReport.prompt_text`: what came in and, on a conflict, exactly what to do)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from baton.models import SyncHow

MAX_COMMITS = 20  # commits listed per source
MAX_FILES = 50  # files listed per source


@dataclass
class Incoming:
    """What came in from one source."""

    source: str  # "branch" (people pushed to the key's branch on the remote) or "base"
    ref: str  # for people: "origin/baton/claude/issue-1", "origin/main", "baton/claude/A"
    count: int  # number of incoming commits
    commits: list[str]  # "<short sha> <subject>", newest first, at most 20
    files: list[str]  # files the incoming commits changed, at most 50 (sorted)

    @classmethod
    def from_json(cls, data: Any) -> Incoming | None:
        if not isinstance(data, dict):
            return None
        source, ref, count = data.get("source"), data.get("ref"), data.get("count")
        commits, files = data.get("commits", []), data.get("files", [])
        if not (isinstance(source, str) and isinstance(ref, str) and type(count) is int):
            return None
        if not (_strings(commits) and _strings(files)):
            return None
        return cls(source, ref, count, list(commits), list(files))


@dataclass
class SyncReport:
    """What a sync did (or found), for the session's record, the run's notes and the agent's prompt."""

    how: str  # "merge" | "rebase" ("off" when sync is off)
    result: str  # "unchanged" | "integrated" | "conflict" | "skipped"
    incoming: list[Incoming] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)  # conflicting files
    conflict_in: str | None = None  # "branch" | "base" | "uncommitted" (the uncommitted work vs what came in)
    left_for_agent: bool = False  # conflict markers left in the worktree (on_conflict=agent)
    in_progress: str | None = None  # "merge" | "rebase" when a git operation is left for the agent
    note: str | None = None  # why skipped, or anything a person should know
    head_before: str | None = None
    head_after: str | None = None
    base_sha: str | None = None  # the base commit the branch is based on now (once the agent finishes)
    branch: str | None = None  # the key's branch
    wip_commit: str | None = None  # the commit the uncommitted work became before a conflict for the agent

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> SyncReport | None:
        """The report ``to_json`` made; None for anything malformed."""
        if not isinstance(data, dict):
            return None
        how, result = data.get("how"), data.get("result")
        if not (isinstance(how, str) and isinstance(result, str)):
            return None
        incoming = [Incoming.from_json(item) for item in _list(data.get("incoming"))]
        conflicts = data.get("conflicts", [])
        if any(item is None for item in incoming) or not _strings(conflicts):
            return None
        texts = {
            name: data.get(name)
            for name in ("conflict_in", "in_progress", "note", "head_before", "head_after", "base_sha")
        }
        texts.update(branch=data.get("branch"), wip_commit=data.get("wip_commit"))
        if any(value is not None and not isinstance(value, str) for value in texts.values()):
            return None
        left = data.get("left_for_agent", False)
        if not isinstance(left, bool):
            return None
        found = [item for item in incoming if item is not None]
        return cls(how, result, found, list(conflicts), left_for_agent=left, **texts)

    def summary(self) -> str:
        """One line: "rebased onto origin/main (2 commits, 3 files)", "conflict in a.txt, b.txt", ..."""
        if self.result == "skipped":
            return f"sync skipped: {self.note}" if self.note else "sync skipped"
        if self.result == "unchanged":
            return "unchanged"
        if self.result == "conflict":
            where = _where(self)
            tail = "; left for the agent" if self.left_for_agent else ""
            detail = f" ({where}{tail})" if where or tail else ""
            return f"conflict in {list_names(self.conflicts)}{detail}"
        verb = "merged" if self.how == SyncHow.MERGE else "rebased onto"
        parts = [f"{i.ref} ({_plural(i.count, 'commit')}, {_files(i.files)})" for i in self.incoming]
        return f"{verb} {' and '.join(parts)}" if parts else verb

    def prompt_text(self, commit: bool = True) -> str:
        """A few lines for the agent's prompt: what came in and, on a conflict, what to do — asking a
        commit only of an agent that can make one (``commit``: its access is ``full``)."""
        if self.result == "unchanged":
            return ""
        if self.result == "skipped":
            return (
                f"Baton did not sync your branch with upstream before this turn: {self.note}"
                if self.note
                else ""
            )
        lines = [f"Upstream moved since your branch{_named(self.branch)} was last synced:"]
        for item in self.incoming:
            lines.append(f"- {item.ref}: {_plural(item.count, 'new commit')}" + _listing(item))
        lines.extend(_outcome(self, commit))
        return "\n".join(lines)


def join_notes(*notes: str | None) -> str | None:
    """The notes given, in one ("; " between them); None when there are none."""
    found = [n for n in notes if n]
    return "; ".join(found) if found else None


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _files(files: list[str]) -> str:
    return _plural(len(files), "file") if len(files) < MAX_FILES else f"{MAX_FILES}+ files"


def list_names(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _named(branch: str | None) -> str:
    return f" {branch}" if branch else ""


def _where(report: SyncReport) -> str:
    if report.conflict_in == "uncommitted":
        return "with the uncommitted work"
    source = _conflict_ref(report)
    return f"with {source}" if source else ""


def _conflict_ref(report: SyncReport) -> str | None:
    """The ref whose incoming commits conflicted."""
    return next((i.ref for i in report.incoming if i.source == report.conflict_in), None)


def _listing(item: Incoming) -> str:
    more = f" (and {item.count - len(item.commits)} more)" if item.count > len(item.commits) else ""
    commits = "; ".join(item.commits[:5]) + (" ..." if len(item.commits) > 5 else "")
    files = list_names(item.files, 10)
    return f": {commits}{more}" + (f"; files: {files}" if files else "")


def _outcome(report: SyncReport, commit: bool = True) -> list[str]:
    """The lines of :meth:`SyncReport.prompt_text` after the list of what came in."""
    if report.result == "integrated":
        done = (
            "merged into your branch"
            if report.how == SyncHow.MERGE
            else "your commits now sit on top of them"
        )
        keep = " Your uncommitted changes are still uncommitted." if report.wip_commit is None else ""
        return [f"Baton brought that in before this turn: {done}.{keep}"]
    files = list_names(report.conflicts, 20)
    if not report.left_for_agent:
        where = _where(report) or "with what came in"
        return [
            f"It was NOT integrated: it conflicts {where} in {files}. "
            "Your worktree was left exactly as it was."
        ]
    if report.conflict_in == "uncommitted":
        return [
            "The new commits are in your branch, but re-applying your uncommitted changes on top of them "
            f"conflicted in {files}. The conflict markers are in those files: the side marked "
            "<<<<<<< SYNCED_HEAD is the synced branch, the side marked >>>>>>> UNCOMMITTED_HEAD your "
            "uncommitted change. No git operation is in progress: edit the files to resolve them."
        ]
    return _operation_left(report, files, commit)


def _operation_left(report: SyncReport, files: str, commit: bool = True) -> list[str]:
    """What the agent is told about the merge or rebase left stopped at a conflict for it; an agent
    that cannot commit (``commit`` False: its git index and refs are behind its walls) is asked only
    to resolve the files."""
    lines = []
    if report.wip_commit:
        lines.append(
            "Your uncommitted work was first committed on your branch as "
            f'"baton: uncommitted work before syncing with ..." ({report.wip_commit[:12]}) so that it '
            "travels through."
        )
    source = _conflict_ref(report) or "what came in"
    if not commit:
        what = "merge" if report.in_progress == "merge" else "rebase"
        lines.append(
            f"Baton started a {what} of {source} and it stopped at a conflict in {files}. Resolve the "
            "conflict markers in those files and leave them in the worktree; do not run git add, git "
            f"commit or git rebase (you cannot at this access level): the {what} stays in progress "
            "until it is concluded for you."
        )
    elif report.in_progress == "merge":
        lines.append(
            f"Baton started merging {source} and the merge stopped at a conflict in {files}. Resolve the "
            "conflict markers in those files, then `git add` them and `git commit --no-edit` to finish it."
        )
    else:
        lines.append(
            f"Baton started rebasing your commits onto {source} and the rebase stopped at a conflicting "
            f"commit in {files}. Resolve the conflict markers in those files, `git add` them, then "
            "`GIT_EDITOR=true git rebase --continue` (repeat for each commit that stops; without "
            "GIT_EDITOR=true git opens an editor)."
        )
    later = [i.ref for i in report.incoming if i.source != report.conflict_in and i.source == "base"]
    if report.conflict_in == "branch" and later:
        lines.append(f"{later[0]} is brought in at the next sync, once that is finished.")
    return lines
