"""The fake forge's GraphQL endpoint (``POST /api/graphql``, where GitHub Enterprise Server serves it
beside ``/api/v3``): the two operations baton asks of it — a pull request's ``reviewThreads`` (each
thread's id, whether it is resolved, its first comment's ``databaseId``) and ``resolveReviewThread`` —
answered as GitHub answers them, ``errors`` included (a token without write access, an unknown thread,
:attr:`~baton.testing.fake_forge_core.ForgeCore.graphql_refuses`). It reads no GraphQL grammar: an
operation is told by the field it asks for, its variables checked by type; anything else is an error
(and a violation, so a test fails loudly when baton asks something the fake does not know).
"""

from __future__ import annotations

import json
from typing import Any

from baton.testing.fake_forge_core import ForgeRefused, Violation
from baton.testing.fake_forge_threads import ForgeThreads

THREAD_PREFIX = "PRRT_fake_"
PAGE = 100


def answer(fake: ForgeThreads, login: str, body: bytes) -> tuple[int, Any]:
    """The status and JSON body GitHub's GraphQL endpoint gives ``body``, asked by ``login``."""
    try:
        request = json.loads(body or b"null")
    except ValueError:
        return 400, {"message": "Problems parsing JSON"}
    if not isinstance(request, dict) or not isinstance(request.get("query"), str):
        return 400, {"message": "A query attribute must be specified and must be a string."}
    query, variables = request["query"], request.get("variables") or {}
    if fake.graphql_refuses:
        return 200, _error(fake.graphql_refuses, "Resource not accessible by personal access token")
    try:
        if "resolveReviewThread" in query:
            return 200, {"data": _resolve(fake, login, variables)}
        if "reviewThreads" in query:
            return 200, {"data": _threads(fake, variables)}
    except ForgeRefused as exc:
        kind = {403: "FORBIDDEN", 404: "NOT_FOUND"}.get(exc.status, "UNPROCESSABLE")
        return 200, _error(kind, exc.message)
    fake.violations.append(
        Violation("graphql", "POST /api/graphql", (f"an unknown operation: {query[:200]}",))
    )
    return 200, _error("UNKNOWN", "the fake knows no such operation")


def _error(kind: str, message: str) -> dict[str, Any]:
    return {"data": None, "errors": [{"type": kind, "message": message, "path": [], "locations": []}]}


def _variable(variables: dict[str, Any], name: str, kind: type) -> Any:
    value = variables.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ForgeRefused(422, f"Variable ${name} of type {kind.__name__} was provided invalid value")
    return value


def _threads(fake: ForgeThreads, variables: dict[str, Any]) -> dict[str, Any]:
    repo = f"{_variable(variables, 'owner', str)}/{_variable(variables, 'name', str)}"
    number = _variable(variables, "number", int)
    after = variables.get("after")
    if repo not in fake.repos or fake.repo(repo).issues.get(number) is None:
        return {"repository": None} if repo not in fake.repos else {"repository": {"pullRequest": None}}
    firsts = [c for c in fake.review_comments(repo, number) if c.in_reply_to is None]
    start = int(after) if isinstance(after, str) and after.isdigit() else 0
    page = firsts[start : start + PAGE]
    nodes = [
        {
            "id": f"{THREAD_PREFIX}{c.id}",
            "isResolved": fake.thread_resolved(repo, c.id),
            "comments": {"nodes": [{"databaseId": c.id}]},
        }
        for c in page
    ]
    more = start + PAGE < len(firsts)
    info = {"hasNextPage": more, "endCursor": str(start + PAGE) if more else None}
    return {"repository": {"pullRequest": {"reviewThreads": {"nodes": nodes, "pageInfo": info}}}}


def _resolve(fake: ForgeThreads, login: str, variables: dict[str, Any]) -> dict[str, Any]:
    thread = _variable(variables, "thread", str)
    comment_id = thread.removeprefix(THREAD_PREFIX)
    if not thread.startswith(THREAD_PREFIX) or not comment_id.isdigit():
        raise ForgeRefused(404, f"Could not resolve to a node with the global id of '{thread}'")
    for repo in list(fake.repos):
        if (found := fake.find_review_comment(repo, int(comment_id))) is not None:
            fake.resolve_thread(repo, found[0], int(comment_id), login)
            return {"resolveReviewThread": {"thread": {"id": thread, "isResolved": True}}}
    raise ForgeRefused(404, f"Could not resolve to a node with the global id of '{thread}'")
