"""A sync computed in git's object store before the worktree is touched (:func:`plan`): the new HEAD,
the worktree's new tree and the first conflict, if any. Merges are ``git merge-tree --write-tree`` and
a merge commit written by hand (:func:`merge`); a rebase is a series of cherry-picks, each a
``merge-tree`` against a throw-away commit (:func:`rebase`); the uncommitted work (the key's
checkpoint) is re-applied the same way (:func:`reapply`). A conflict found here leaves the worktree
exactly as it was, which is what ``on_conflict=stop`` asks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from baton.errors import GitError
from baton.files import atomic_write_text
from baton.models import SyncHow
from baton.sync.git import SHA, SyncGit, commit_object, last_words, object_id

# Conflict-marker labels of re-applied uncommitted work: pseudo-refs in the worktree's gitdir, so that
# the markers read "<<<<<<< SYNCED_HEAD" / ">>>>>>> UNCOMMITTED_HEAD" rather than two commit ids.
LABELS = ("SYNCED_HEAD", "UNCOMMITTED_HEAD")
# The author and committer of the throw-away commits: fixed, so that their ids do not vary.
_NOBODY = "baton <baton@localhost> 0 +0000"


@dataclass
class Step:
    """One source to bring in."""

    source: str  # "branch" | "base"
    ref: str  # the full ref
    tip: str  # its commit

    @property
    def label(self) -> str:
        return short_ref(self.ref)


@dataclass
class Plan:
    """The integration computed in the object store: the new HEAD, the worktree's new tree (None: the
    new HEAD's, no uncommitted work) and the first conflict, if any."""

    target: str
    tree: str | None = None
    conflict_in: str | None = None
    conflicts: list[str] = field(default_factory=list)
    target_tree: str | None = None  # None: not known


@dataclass
class _Commit:
    """A commit to replay: its tree, its parent's tree and what of it a rebased copy keeps."""

    sha: str
    tree: str
    parent: str | None  # the first parent (None: a root commit)
    parent_tree: str
    author: bytes
    extra: bytes  # the encoding header, if any
    message: bytes


def plan(
    g: SyncGit,
    head: str,
    steps: list[Step],
    base_sha: str | None,
    how: SyncHow,
    checkpoint: str | None,
    labels: bool,
) -> Plan:
    """Bring ``steps`` into ``head`` (by ``how``), then re-apply ``checkpoint`` (``labels``: conflict
    markers named :data:`LABELS`)."""
    cur, cur_tree = head, None
    for step in steps:
        if how is SyncHow.MERGE:
            new, new_tree, conflicts = merge(g, cur, step)
        else:
            new, new_tree, conflicts = rebase(g, cur, step.tip, todo(g, cur, step, steps, base_sha))
        if conflicts:
            return Plan(cur, conflict_in=step.source, conflicts=conflicts)
        cur, cur_tree = new, new_tree
    if checkpoint is None:
        return Plan(cur, target_tree=cur_tree)
    cur_tree = cur_tree or g.tree_of(cur)
    tree, conflicts = reapply(g, head, cur_tree, checkpoint, labels)
    return Plan(cur, tree, "uncommitted" if conflicts else None, conflicts, target_tree=cur_tree)


def is_ancestor(g: SyncGit, older: str, newer: str) -> bool:
    done = g.attempt("merge-base", "--is-ancestor", older, newer)
    if done.returncode > 1:
        raise GitError(f"git merge-base failed: {done.stderr.strip()}")
    return done.returncode == 0


def merge_tree(g: SyncGit, ours: str, theirs: str) -> tuple[str, list[str]]:
    """The merged tree and the conflicting files (a conflict still yields a tree, with markers)."""
    done = g.attempt("merge-tree", "--write-tree", "--name-only", "-z", "--no-messages", ours, theirs)
    if done.returncode > 1:
        raise GitError(f"git merge-tree failed: {last_words(done.stderr)}")
    fields = done.stdout.split("\0")
    conflicts = sorted({name for name in fields[1:] if name}) if done.returncode == 1 else []
    return fields[0].strip(), conflicts


def merge(g: SyncGit, cur: str, step: Step) -> tuple[str, str | None, list[str]]:
    """Merge ``step`` into ``cur``: the merge commit (a fast-forward: the tip), its tree (None: not
    known here) and the conflicting files."""
    if is_ancestor(g, cur, step.tip):
        return step.tip, None, []  # a fast-forward
    tree, conflicts = merge_tree(g, cur, step.tip)
    if conflicts:
        return cur, None, conflicts
    return g.defer(g.made(tree, [cur, step.tip], merge_message(step, g.branch)), cur), tree, []


def todo(g: SyncGit, cur: str, step: Step, steps: list[Step], base_sha: str | None) -> list[str]:
    """The commits a rebase of ``cur`` onto ``step`` replays, oldest first: the branch's own commits
    (merges left out, as ``git rebase`` does), less those whose change the new base already has.
    Onto the remote branch: not the base's commits (they would be copied onto a remote branch that
    lacks them; the base step brings them). Onto the base: from ``base_sha`` (or the merge-base)."""
    if step.source == "branch":
        others = [f"^{s.tip}" for s in steps if s.source == "base"]
    else:  # the symmetric difference already starts at the merge-base
        others = [f"^{base_sha}"] if _based_on(g, cur, base_sha) else []
    revs = ["--reverse", "--topo-order", "--no-merges", "--right-only", "--cherry-pick"]
    return g.git("rev-list", *revs, f"{step.tip}...{cur}", *others).split()


def _based_on(g: SyncGit, cur: str, base_sha: str | None) -> bool:
    """Whether the branch's own commits start at ``base_sha`` (it is in the branch's history); else
    they start at the merge-base with the base's tip."""
    return bool(base_sha and SHA.fullmatch(base_sha) and is_ancestor(g, base_sha, cur))


def rebase(g: SyncGit, cur: str, onto: str, shas: list[str]) -> tuple[str, str | None, list[str]]:
    """Replay ``shas`` onto ``onto`` as ``git rebase`` would (commits that become empty dropped): the
    new tip, its tree (None: not known here) and the conflicting files. Each pick is the
    ``merge-tree`` of the picked commit and a throw-away commit of the new tree made on the picked
    commit's parent, so that parent is their merge-base (:func:`_pick`; git 2.39 has neither
    ``merge-tree --merge-base`` nor ``git replay``). A commit whose change is already there is dropped,
    as ``git rebase`` drops it; a root commit is picked against the empty tree."""
    if not shas:
        return onto, None, []
    commits, onto_tree = _commits(g, shas, onto)
    new, new_tree = onto, onto_tree
    for commit in commits:
        tree, conflicts = merge_tree(g, *_pick(g, commit, new_tree, new))
        if conflicts:
            return cur, None, conflicts
        if tree == new_tree and commit.tree != commit.parent_tree:
            continue  # its change is already there: dropped, as git rebase drops it
        copy = commit_object(tree, [new], commit.author, g.ident(), commit.message, commit.extra)
        new, new_tree = g.defer(copy, new), tree
    return new, new_tree, []


def _pick(g: SyncGit, commit: _Commit, new_tree: str, like: str) -> tuple[str, str]:
    """The two commits whose merge-tree is the cherry-pick of ``commit`` onto ``new_tree``: a
    throw-away commit of ``new_tree`` on the commit's parent, and the commit (for a root commit, a
    throw-away copy of it on a throw-away parent with its parent's, the empty, tree)."""
    if commit.parent:
        return g.write([_synthetic(new_tree, [commit.parent], "ours")])[0], commit.sha
    base = _synthetic(commit.parent_tree, [], "base")
    base_id = g.defer(base, like)
    ours, theirs = g.write(
        [_synthetic(new_tree, [base_id], "ours"), _synthetic(commit.tree, [base_id], "theirs")]
    )
    return ours, theirs


def _commits(g: SyncGit, shas: list[str], onto: str) -> tuple[list[_Commit], str]:
    """The commits to replay (one ``cat-file --batch``) and the tree of ``onto``."""
    queries = [f"{onto}^{{tree}}"] + [q for sha in shas for q in (sha, f"{sha}^^{{tree}}")]
    objects = g.cat(queries)
    found = []
    for i, sha in enumerate(shas):
        raw = objects[1 + 2 * i][1]
        parent_tree = objects[2 + 2 * i][0] or object_id(b"", sha, b"tree")  # a root commit: the empty tree
        found.append(_parse_commit(sha, raw, parent_tree))
    return found, objects[0][0]


def reapply(g: SyncGit, head: str, new_tree: str, checkpoint: str, labels: bool) -> tuple[str, list[str]]:
    """The uncommitted work (``checkpoint``, a commit on ``head``) re-applied on ``new_tree``: the
    resulting tree and the conflicting files (their conflict markers are in the tree). The merge-tree
    of the checkpoint and a throw-away commit of ``new_tree`` on ``head``: their merge-base is
    ``head``."""
    ours, theirs = g.write([_synthetic(new_tree, [head], "ours")])[0], checkpoint
    if not labels:
        return merge_tree(g, ours, theirs)
    for name, oid in zip(LABELS, (ours, theirs), strict=True):
        atomic_write_text(g.gitdir / name, f"{oid}\n")
    try:
        return merge_tree(g, *LABELS)
    except GitError:  # a git that will not read these pseudo-refs: commit ids as the labels
        return merge_tree(g, ours, theirs)
    finally:
        for name in LABELS:
            (g.gitdir / name).unlink(missing_ok=True)


def merge_message(step: Step, branch: str) -> str:
    what = "changes pushed to" if step.source == "branch" else "the base"
    return f"Merge {step.label} into {branch}\n\nbaton: synced with {what} {step.label} before a turn.\n"


def short_ref(ref: str) -> str:
    for prefix in ("refs/remotes/", "refs/heads/", "refs/tags/", "refs/"):
        if ref.startswith(prefix):
            return ref.removeprefix(prefix)
    return ref


def _synthetic(tree: str, parents: list[str], what: str) -> bytes:
    """A throw-away commit of ``tree``: the merge-tree of two of them sharing one parent is a 3-way merge
    with that parent's tree as the base, which is what a cherry-pick is."""
    return commit_object(tree, parents, _NOBODY, _NOBODY, f"baton sync: {what}\n")


def _parse_commit(sha: str, raw: bytes, parent_tree: str) -> _Commit:
    header, _, message = raw.partition(b"\n\n")
    tree, author, extra, parent = "", b"", b"", None
    for line in header.split(b"\n"):
        if line.startswith(b"tree "):
            tree = line[5:].decode()
        elif line.startswith(b"parent ") and parent is None:
            parent = line[7:].decode()
        elif line.startswith(b"author "):
            author = line[7:]
        elif line.startswith(b"encoding "):
            extra = line + b"\n"
    if not tree or not author:
        raise GitError(f"commit {sha[:12]} cannot be read")
    return _Commit(sha, tree, parent, parent_tree, author, extra, message)
