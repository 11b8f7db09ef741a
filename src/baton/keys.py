"""Keys: ``(agent, repo, thread)``, one conversation and one worktree per key. Everything here is pure
validation and runs before anything is written. A repo is a git URL or a local path, and both become
a *slug*, a relative path used for directories and display (:func:`parse_repo`):
``https://github.com/acme/api.git``, ``git@github.com:acme/api`` and ``ssh://git@github.com/acme/api``
are ``github.com/acme/api``, a local repository ``/srv/code/api`` is ``local/api-<8 hex of its real
path>`` (stable for that path, distinct for two repos of the same name). URLs carrying credentials are
refused: tokens belong in ``BATON_GIT_TOKEN``, never in a URL that would end up in git's config, argv
or the database.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

from baton.errors import BadInput, NotFound
from baton.models import SessionRecord

THREAD_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
_SCP_RE = re.compile(r"^(?:(?P<user>[^@/]+)@)?(?P<host>[A-Za-z0-9.-]+):(?P<path>(?!//)[^\\]+)$")
_SEGMENT_RE = re.compile(r"^[A-Za-z0-9._~+-]+$")
# A DNS name, an IPv4 address, or an IPv6 address (urlsplit's hostname drops the brackets)
_HOST_RE = re.compile(r"[\w.-]+|[0-9a-f:.]+")


@dataclass(frozen=True)
class Repo:
    """A repository: where to fetch it from (``url``) and its ``slug``."""

    url: str
    slug: str
    local: bool

    def __str__(self) -> str:
        return self.slug


@dataclass(frozen=True)
class Key:
    """The identity of one conversation and one worktree."""

    agent: str
    repo: Repo
    thread: str

    def __str__(self) -> str:
        return f"{self.agent}:{self.repo.slug}:{self.thread}"

    @property
    def id(self) -> str:
        """A flat string form, used for lease and lock names."""
        return f"{self.agent}/{self.repo.slug}/{self.thread}"


def validate_thread(thread: str) -> str:
    if not thread:
        raise BadInput("thread is empty: give 1-128 characters of letters, digits, '.', '_' or '-'")
    if len(thread) > 128:
        raise BadInput(f"thread is {len(thread)} characters long; the limit is 128")
    if "/" in thread or "\\" in thread:
        raise BadInput(f"thread {thread!r} must not contain path separators ('/' or '\\')")
    if thread.startswith((".", "-")):
        raise BadInput(f"thread {thread!r} must not start with '.' or '-'")
    # fullmatch, not match: ``$`` would also accept a trailing newline
    if not THREAD_RE.fullmatch(thread):
        raise BadInput(
            f"thread {thread!r} has characters that are not allowed: use letters, digits, '.', '_' or '-'"
        )
    # the thread is part of the branch name, so git's ref-name rules apply too
    if ".." in thread or thread.endswith((".", ".lock")):
        raise BadInput(f"thread {thread!r} must not contain '..' or end with '.' or '.lock'")
    return thread


def validate_agent(agent: str, known: list[str]) -> str:
    if agent not in known:
        raise BadInput(f"unknown agent {agent!r}: choose one of {', '.join(sorted(known))}")
    return agent


MAX_REPO = 2048  # characters of a repo URL or path (paths beyond PATH_MAX, URLs beyond what hosts take)


def parse_repo(spec: str) -> Repo:
    """Canonicalise a repo URL or local path; a local path must be an existing git repository."""
    spec = spec.strip()
    if not spec:
        raise BadInput("repo is empty: give a git URL or the path of a local repository")
    if any(ord(c) < 32 for c in spec):
        raise BadInput("repo contains control characters")
    if len(spec) > MAX_REPO:
        raise BadInput(f"repo is {len(spec):,} characters long; the limit is {MAX_REPO:,}")
    if "://" in spec:
        return _url_repo(spec)
    scp = _SCP_RE.match(spec)
    if scp and is_scp_remote(spec):
        return Repo(url=spec, slug=_slug(scp.group("host").lower(), scp.group("path"), spec), local=False)
    return _local_repo(spec)


def is_scp_remote(spec: str, base: Path | None = None) -> bool:
    """Whether ``spec`` (stripped, no ``://``) names a remote in scp form (``git@github.com:acme/api``)
    rather than a local path: it has that form with a dotted host, and no such path exists (relative
    to ``base``, else to the current directory)."""
    scp = _SCP_RE.match(spec)
    path = Path(spec) if base is None else base / spec
    return scp is not None and "." in scp.group("host") and not _exists(path)


def _url_repo(spec: str) -> Repo:
    try:
        parts = urlsplit(spec)
        port = parts.port  # parsed lazily: a port that is not a number raises only here
    except ValueError as exc:
        # the message names the problem, never the spec: it may carry credentials
        raise BadInput(f"repo URL is malformed: {exc}") from exc
    if parts.scheme == "file":
        return _local_repo(unquote(parts.path))
    if parts.scheme not in ("https", "http", "ssh", "git"):
        raise BadInput(f"repo URL scheme {parts.scheme!r} is not supported (use https, ssh, git or file)")
    if parts.password is not None or (parts.username and parts.scheme in ("http", "https")):
        raise BadInput(
            "repo URL contains credentials; remove them and put the token in BATON_GIT_TOKEN instead"
        )
    if not parts.hostname:
        raise BadInput(f"repo URL {spec!r} has no host")
    # an http(s) port names a different server; an ssh port is the same repository reached differently
    port = port if parts.scheme in ("http", "https") else None
    return Repo(url=spec, slug=_slug(parts.hostname.lower(), parts.path, spec, port), local=False)


def _check_host(host: str) -> None:
    """The host becomes the slug's first directory, so it must be a plain name: ``..`` or ``a\\b``
    (which urlsplit passes through) would put the cache and worktrees somewhere else."""
    if not _HOST_RE.fullmatch(host) or host.strip(".") == "":
        raise BadInput(f"repo URL has an invalid host {host!r}")  # not the spec: it may hold a password


def _exists(path: Path) -> bool:
    """``Path.exists`` that says False, not OSError, for a name the OS refuses (ENAMETOOLONG, EACCES, a
    NUL byte)."""
    try:
        return path.exists()
    except (OSError, ValueError):
        return False


def _slug(host: str, path: str, spec: str, port: int | None = None) -> str:
    _check_host(host)
    if port:
        host = f"{host}_{port}"
    path = path.strip("/")
    if path.endswith(".git"):
        path = path[:-4]
    segments = [s for s in path.split("/") if s]
    if not segments or any(s in (".", "..") or not _SEGMENT_RE.match(s) for s in segments):
        raise BadInput(f"repo URL {spec!r} has no usable path (expected something like host/owner/name)")
    return "/".join([host, *segments])


def _local_repo(path_text: str) -> Repo:
    try:
        path = Path(path_text).expanduser()
    except RuntimeError as exc:  # ~user for a user that does not exist
        raise BadInput(f"repo {path_text!r}: {exc}") from exc
    try:
        if not path.exists():  # NotFound: the API's 404, which its schema documents for it
            raise NotFound(f"repo {path_text!r} does not exist (not a URL and no such directory)")
        real = path.resolve()
        is_git = (real / ".git").exists() or ((real / "HEAD").is_file() and (real / "objects").is_dir())
    except OSError as exc:  # a name too long, a directory we may not read
        raise BadInput(f"repo {path_text!r} cannot be read: {exc.strerror or exc}") from exc
    if not is_git:
        raise BadInput(f"repo {path_text!r} is not a git repository")
    name = real.name[:-4] if real.name.endswith(".git") else real.name
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name) or "repo"
    digest = hashlib.sha256(str(real).encode()).hexdigest()[:8]
    return Repo(url=str(real), slug=f"local/{name}-{digest}", local=True)


def make_key(agent: str, repo: str, thread: str, known_agents: list[str]) -> Key:
    """Validate all three parts; raises :class:`BadInput` naming the first wrong one."""
    validate_agent(agent, known_agents)
    validate_thread(thread)
    return Key(agent=agent, repo=parse_repo(repo), thread=thread)


def key_of(session: SessionRecord) -> Key:
    """The key of a stored session (its repo as stored: URL, slug, local or not)."""
    repo = Repo(session.repo_url, session.repo, session.repo_url.startswith("/"))
    return Key(session.agent, repo, session.thread)


class _FindsSessions(Protocol):
    def list_sessions(self, *, repo: str | None = None, limit: int | None = None) -> list[SessionRecord]: ...


def repo_slug(store: _FindsSessions, repo: str) -> str:
    """The slug a list filters by, from what ``resolve_key`` accepts: a stored slug as it is, else
    the slug of a URL or a local path (``./api``); anything else as given (it then matches nothing).
    ``store``: the SQL store, or the lite one of ``baton sessions ls``."""
    if store.list_sessions(repo=repo, limit=1):
        return repo
    try:
        return parse_repo(repo).slug
    except BadInput:
        return repo
