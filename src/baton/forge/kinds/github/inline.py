"""GitHub's threads of a review's inline comments (:class:`~baton.forge.kinds.inline.InlineThreads`, mixed
into its client): the REST replies route, the PR's review comments, GraphQL's ``reviewThreads`` and
``resolveReviewThread`` (:func:`graphql_url`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from baton.forge.data.model import Actor, Comment, ForgeError
from baton.forge.kinds.http import ForgeHTTP
from baton.forge.kinds.rest import inline_comment, iso, repo_path

THREAD_PAGES = 10  # GraphQL pages of 100 review threads read to find a comment's thread
PER_PAGE = 100

THREADS_QUERY = """
query BatonReviewThreads($owner: String!, $name: String!, $number: Int!, $after: String) {
  repository(owner: $owner, name: $name) {
    pullRequest(number: $number) {
      reviewThreads(first: 100, after: $after) {
        nodes { id isResolved comments(first: 1) { nodes { databaseId } } }
        pageInfo { hasNextPage endCursor }
      }
    }
  }
}
"""

RESOLVE_MUTATION = """
mutation BatonResolveThread($thread: ID!) {
  resolveReviewThread(input: {threadId: $thread}) { thread { id isResolved } }
}
"""

_GRAPHQL_STATUS = {"FORBIDDEN": 403, "NOT_FOUND": 404, "UNAUTHORIZED": 401, "RATE_LIMITED": 429}


class GitHubInline:
    """:class:`InlineThreads` for GitHub (mixed into its client, whose ``http`` and ``author``, how a
    payload's user is read, it uses)."""

    http: ForgeHTTP
    author: Callable[[Any], Actor]

    def reply_inline(self, repo: str, number: int, comment_id: int, body: str) -> int:
        path = f"{repo_path(repo, 'GitHub')}/pulls/{int(number)}/comments/{int(comment_id)}/replies"
        return int(self.http.json("POST", path, json={"body": body})["id"])

    def inline_comments(self, repo: str, number: int, since: float | None = None) -> list[Comment]:
        params: dict[str, Any] = {"per_page": PER_PAGE}
        if since is not None:
            params["since"] = iso(since)
        path = f"{repo_path(repo, 'GitHub')}/pulls/{int(number)}/comments"
        return [inline_comment(c, self.author(c.get("user"))) for c in self.http.pages(path, params)]

    def resolve_inline(self, repo: str, number: int, comment_ids: Sequence[int]) -> list[int]:
        threads = dict(self._threads(repo, number, set(comment_ids)))
        resolved = []
        for comment_id in comment_ids:
            found = threads.get(comment_id)
            if found is None:
                continue  # not the first comment of a thread (or past the pages read): left as it is
            thread, done = found
            if not done:
                data = self._graphql(repo, RESOLVE_MUTATION, {"thread": thread})
                if not ((data.get("resolveReviewThread") or {}).get("thread") or {}).get("isResolved"):
                    raise ForgeError(f"GitHub did not resolve the thread of comment {comment_id}", 422)
            resolved.append(comment_id)
        return resolved

    def _threads(self, repo: str, number: int, wanted: set[int]) -> Iterator[tuple[int, tuple[str, bool]]]:
        """``(first comment's id, (thread id, resolved))`` of the PR's review threads, until every
        wanted comment's thread is found (at most :data:`THREAD_PAGES` pages)."""
        owner, _, name = repo_path(repo, "GitHub").removeprefix("/repos/").partition("/")
        after: str | None = None
        for _ in range(THREAD_PAGES):
            variables = {"owner": owner, "name": name, "number": int(number), "after": after}
            data = self._graphql(repo, THREADS_QUERY, variables)
            pull = (data.get("repository") or {}).get("pullRequest")
            if not isinstance(pull, Mapping):
                raise ForgeError(f"GitHub's GraphQL knows no pull request {repo}#{number}", 404)
            threads = pull.get("reviewThreads") or {}
            for node in threads.get("nodes") or ():
                firsts = ((node or {}).get("comments") or {}).get("nodes") or ()
                if firsts and isinstance(firsts[0], Mapping) and firsts[0].get("databaseId") is not None:
                    comment_id = int(firsts[0]["databaseId"])
                    wanted.discard(comment_id)
                    yield comment_id, (str(node["id"]), bool(node.get("isResolved")))
            page = threads.get("pageInfo") or {}
            if not wanted or not page.get("hasNextPage"):
                return
            after = str(page.get("endCursor") or "")

    def _graphql(self, repo: str, query: str, variables: Mapping[str, Any]) -> Mapping[str, Any]:
        """GraphQL's ``data`` (a request about ``repo``, whose credentials it takes); a ForgeError
        carrying GitHub's words when it answers ``errors``."""
        body = {"query": query, "variables": variables}
        scope = repo_path(repo, "GitHub")
        answer = self.http.json("POST", graphql_url(str(self.http.api_url)), json=body, scope=scope)
        errors = answer.get("errors") if isinstance(answer, Mapping) else None
        if errors or not isinstance(answer, Mapping) or not isinstance(answer.get("data"), Mapping):
            first = (
                errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], Mapping) else {}
            )
            words = str(first.get("message") or "no data")[:500]
            status = _GRAPHQL_STATUS.get(str(first.get("type") or ""), 422)
            raise ForgeError(f"GitHub's GraphQL answered: {words}", status)
        return answer["data"]  # type: ignore[no-any-return]


def graphql_url(api_url: str) -> str:
    """GitHub's GraphQL endpoint beside its REST ``api_url``: ``https://api.github.com/graphql``, or a
    GitHub Enterprise Server's ``https://HOST/api/graphql`` for ``https://HOST/api/v3``."""
    base = api_url.rstrip("/")
    return base.removesuffix("/v3") + "/graphql" if base.endswith("/api/v3") else base + "/graphql"
