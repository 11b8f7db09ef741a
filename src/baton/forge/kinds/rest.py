"""What the GitHub and Gitea clients share beyond the transport (:mod:`http`): how one is made and
closed, the repository's path (``/repos/owner/name``, checked), and the calls both forges spell alike —
its default branch, posting and editing an issue or PR comment — and what both answer alike: an inline
comment (:func:`inline_comment`) and an Actions log (:func:`log_text`)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar, Self

import httpx

from baton.forge.data.model import Actor, Comment, ForgeError
from baton.forge.kinds.http import Auth, ForgeHTTP

_REPO = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
# GitHub Actions (and Gitea's) prefix each log line with its time: "2024-05-01T12:00:00.1234567Z "
_STAMP = re.compile(r"^\ufeff?\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z ?", re.MULTILINE)


def epoch(value: str | None) -> float:
    """An ISO 8601 time (``2024-05-01T12:00:00Z``) in seconds since the epoch; 0.0 for none."""
    if not value:
        return 0.0
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def iso(seconds: float) -> str:
    """Seconds since the epoch as GitHub's ``since`` wants them (whole seconds, UTC, floored so that
    "at or after" holds)."""
    return datetime.fromtimestamp(int(seconds), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class RestForge:
    """A forge's REST client: ``NAME`` (for errors), ``AUTH`` (the ``Authorization`` scheme) and
    ``HEADERS`` are the subclass's; ``token`` is a token, or an :class:`~baton.forge.kinds.http.Auth` asked
    per request (a GitHub App's). ``retries``, ``timeout`` and ``transport`` go to the shared HTTP
    client; ``sleep`` and ``clock`` are injectable for tests."""

    NAME: ClassVar[str]
    AUTH: ClassVar[str]
    HEADERS: ClassVar[dict[str, str]]

    def __init__(
        self,
        api_url: str,
        token: str | Auth,
        *,
        timeout: float = 10.0,
        retries: int = 4,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        max_wait: float = 60.0,
    ) -> None:
        self.http = ForgeHTTP(
            api_url,
            token,
            name=self.NAME,
            auth_scheme=self.AUTH,
            headers=self.HEADERS,
            timeout=timeout,
            retries=retries,
            transport=transport,
            sleep=sleep,
            clock=clock,
            max_wait=max_wait,
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def repo_path(self, repo: str) -> str:
        return repo_path(repo, self.NAME)

    def default_branch(self, repo: str) -> str:
        return str(self.http.json("GET", self.repo_path(repo))["default_branch"])

    def post_comment(self, repo: str, number: int, body: str, *, pr: bool = False) -> int:
        path = f"{self.repo_path(repo)}/issues/{int(number)}/comments"
        data: Any = self.http.json("POST", path, json={"body": body})
        return int(data["id"])

    def edit_comment(
        self, repo: str, comment_id: int, body: str, *, number: int = 0, pr: bool = False
    ) -> None:
        path = f"{self.repo_path(repo)}/issues/comments/{int(comment_id)}"
        self.http.request("PATCH", path, json={"body": body})


def repo_path(repo: str, forge: str) -> str:
    """``/repos/owner/name``; ForgeError for anything that is not a full name (no ``..``)."""
    if not _REPO.fullmatch(repo) or ".." in repo:
        raise ForgeError(f"{repo!r} is not a {forge} repository's full name (owner/name)", 0)
    return f"/repos/{repo}"


def log_text(data: bytes) -> str:
    """A log's bytes as text, without GitHub Actions' (and Gitea Actions') time prefixes."""
    return _STAMP.sub("", data.decode("utf-8", "replace"))


def inline_comment(data: Mapping[str, Any], author: Actor) -> Comment:
    """A review's inline comment as GitHub and Gitea answer it."""
    return Comment(
        id=int(data["id"]),
        author=author,
        body=str(data.get("body") or ""),
        url=str(data.get("html_url") or ""),
        at=epoch(data.get("created_at")),
    )
