"""What the forges' REST clients share (:mod:`baton.forge.kinds.github.client`,
:mod:`baton.forge.kinds.gitea.client`, :mod:`baton.forge.kinds.gitlab.client`): one ``httpx.Client`` and the
manners of a good API citizen (:class:`ForgeHTTP`): bounded retries of what is
worth retrying, rate limits waited for or raised as :class:`RateLimited`, a POST never sent twice where
the forge may have acted on it, the token only to the API's own origin and never in a log line or an
error, pagination one page at a time, conditional GETs, a log's tail without holding the log, and
errors in the forge's words.
"""

from __future__ import annotations

import email.utils
import itertools
import logging
import random
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from baton import retry
from baton.forge.data.model import Changed, ForgeError

log = logging.getLogger(__name__)

# failures after which the forge cannot have acted on the request: safe to re-send even a POST
_UNSENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS"})
_LINK = re.compile(r'<([^>]*)>\s*;[^,]*?\brel="?([^",;]*)"?')
_MAX_ERROR_BODY = 64 * 1024  # what an error's body is read for its words
_MAX_REDIRECTS = 5
_SECONDARY_WAIT = 60.0  # GitHub: "wait at least one minute" when a secondary rate limit names no time


class Auth(Protocol):
    """Where each request's ``Authorization`` comes from, asked per request: a fixed token
    (:class:`TokenAuth`), or tokens that change (a GitHub App's installation tokens,
    :mod:`baton.forge.kinds.github.app`)."""

    def authorization(self, scope: str) -> str:
        """The header's value for a request to the API path ``scope`` (``/repos/a/b/...``); "" for none."""
        ...

    def refused(self, authorization: str) -> bool:
        """The forge answered 401 to ``authorization``: whether a renewed one is worth one more try."""
        ...

    def secrets(self) -> Iterable[str]:
        """Every value an error message must not show (the tokens in use, recently used)."""
        ...

    def who(self) -> str:
        """What a refusal (401) names as the credentials ("" for a token: the forge's words suffice)."""
        ...


@dataclass(frozen=True)
class TokenAuth:
    """One token for every request, as ``<scheme> <token>``."""

    token: str = field(repr=False)
    scheme: str = "Bearer"

    def authorization(self, scope: str) -> str:
        return f"{self.scheme} {self.token}" if self.token else ""

    def refused(self, authorization: str) -> bool:
        return False

    def secrets(self) -> Iterable[str]:
        return (self.token,) if self.token else ()

    def who(self) -> str:
        return ""


class RateLimited(ForgeError):
    """The forge's rate limit is spent until ``reset_at`` (seconds since the epoch): try again then.
    ``status`` stays the forge's (403 or 429); it is always worth retrying later."""

    def __init__(self, message: str, status: int, reset_at: float) -> None:
        super().__init__(message, status)
        self.reset_at = reset_at

    @property
    def transient(self) -> bool:
        return True


def next_link(header: str | None) -> str | None:
    """The ``rel="next"`` URL of a ``Link`` header, if any."""
    for url, rel in _LINK.findall(header or ""):
        if "next" in rel.split():
            return str(url)
    return None


def forge_words(response: httpx.Response, body: bytes) -> str:
    """What the forge said about a failure: its JSON ``message`` and its ``errors`` (GitHub's and
    Gitea's shapes), else the start of its text."""
    try:
        data = httpx.Response(200, content=body).json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        text = body[:300].decode("utf-8", "replace").strip()
        return " ".join(text.split()) or response.reason_phrase
    words = [_message_words(data.get("message") or data.get("error") or "")]
    if data.get("error_description"):  # GitLab's OAuth-style refusal of a token
        words.append(str(data["error_description"]).strip())
    errors = data.get("errors")
    for error in errors if isinstance(errors, list) else []:
        if isinstance(error, dict):
            detail = error.get("message") or " ".join(
                str(error[k]) for k in ("resource", "field", "code") if error.get(k)
            )
            words.append(str(detail))
        else:
            words.append(str(error))
    return ": ".join(w for w in words if w) or response.reason_phrase


def _message_words(message: Any) -> str:
    """A ``message`` as words: GitLab also answers a list of them, or a field's list of them
    (``{"title": ["can't be blank"]}``)."""
    if isinstance(message, list):
        return "; ".join(_message_words(m) for m in message[:10])
    if isinstance(message, dict):
        return "; ".join(f"{k} {_message_words(v)}".strip() for k, v in list(message.items())[:10])
    return str(message).strip()


class _Again(Exception):
    """A try worth another (raised to the retry policy, never out of :class:`ForgeHTTP`): what went
    wrong and how long to wait first (a backoff, or what the forge asked)."""

    def __init__(self, request: httpx.Request, why: str, wait: float, attempt: int) -> None:
        super().__init__(why)
        self.request, self.why, self.wait, self.attempt = request, why, wait, attempt


def _again(state: retry.RetryCallState) -> _Again:
    failure = state.outcome.exception() if state.outcome is not None else None
    assert isinstance(failure, _Again)
    return failure


def _retry_after(value: str | None, now: float) -> float | None:
    """``Retry-After`` in seconds: a number, or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError):
        return None


class ForgeHTTP:
    """A forge's REST API at ``api_url`` (``https://api.github.com``,
    ``https://ghes.example.com/api/v3``, ``https://gitea.example.com/api/v1``), authenticated with
    ``token`` (``Authorization: <auth_scheme> <token>``), or with an :class:`Auth` asked for each
    request's header (a 401 to a header it renews is sent once more with the new one, then said).
    ``retries`` re-sends after the first try;
    ``sleep``, ``clock`` and ``jitter`` are injectable so the tests do not wait.

    - **Bounded retries** of what is worth retrying: no answer (a refused connection, a timeout), 429
      and 5xx, with exponential backoff and jitter (the tries on the one retry policy,
      :mod:`baton.retry`); a rate limit (429, or a 403 that says so: GitHub's
      ``x-ratelimit-remaining: 0``, a secondary limit's ``Retry-After`` or words) waits as long as the
      forge asks (``Retry-After``, ``x-ratelimit-reset``, else the minute GitHub's documentation asks
      for a secondary limit) when that is under ``max_wait``, and is otherwise a :class:`RateLimited`
      error at once (a reconcile should not sleep for an hour). A POST is re-sent only when the forge
      cannot have acted on it (no connection, a rate limit): a comment is not posted twice. Everything
      else (401, 404, 422, ...) is a :class:`~baton.forge.data.model.ForgeError` at once.
    - **The token** goes in the ``Authorization`` header, and only to the API's own origin: a download
      redirected to a storage host (a job's log) does not carry it. It never appears in a log line or
      an error message (they name the method and the path, never the query, where a signed download
      URL keeps its signature — a filter drops the queries from httpx's own request log for the same
      reason), and it is scrubbed from the forge's own words too.
    - **Pagination** through ``Link: <...>; rel="next"`` headers, one page at a time: the caller keeps
      what it returns, never the pages.
    - **Conditional GETs** (``If-None-Match``): :meth:`changed` answers :class:`Changed`.
    - **A log's tail** (:meth:`tail`): a ``Range: bytes=-N`` request, and if the server ignores it, the
      stream read to its end keeping only the last ``N`` bytes — a 100 MB log is never held.
    - **Errors in the forge's words**: ``ForgeError("GitHub answered 422 to POST /repos/a/b/pulls:
      Validation Failed: A pull request already exists for a:b.", 422)``."""

    def __init__(
        self,
        api_url: str,
        token: str | Auth,
        *,
        name: str = "the forge",
        auth_scheme: str = "Bearer",
        headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
        retries: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        max_wait: float = 60.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.name = name
        self.api_url = httpx.URL(api_url.rstrip("/") + "/")
        if self.api_url.scheme not in ("http", "https") or not self.api_url.host:
            raise ForgeError(f"{name}: {api_url!r} is not an http(s) URL", 0)
        if self.api_url.userinfo:
            raise ForgeError(f"{name}: the API URL must not carry credentials; give the token apart", 0)
        self._auth: Auth = TokenAuth(token, auth_scheme) if isinstance(token, str) else token
        self.retries = max(0, retries)
        self.backoff, self.max_backoff, self.max_wait = backoff, max_backoff, max_wait
        self._sleep, self._clock, self._jitter = sleep, clock, jitter
        self._client = httpx.Client(
            base_url=self.api_url,
            headers={"User-Agent": "baton", **(headers or {})},
            timeout=httpx.Timeout(timeout),
            transport=transport,
            follow_redirects=False,
        )

    # -- the public reads and writes --------------------------------------------------------------------

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        allow: Iterable[int] = (),
        scope: str | None = None,
    ) -> httpx.Response:
        """One request (retried as the class says), its response read: a 2xx or 3xx, or a status in
        ``allow`` (404 when "not there" is an answer); any other answer is a :class:`ForgeError`.
        ``url`` is a path under the API (``/repos/a/b``) or an absolute URL (a ``Link``); ``scope``,
        the API path whose credentials it takes when the URL does not name its repository (a GraphQL
        request, a ``Link`` to ``/repositories/ID``)."""
        with self._send(
            method, url, params=params, json=json, headers=headers, allow=allow, read=True, scope=scope
        ) as response:
            return response

    def json(self, method: str, url: str, **kwargs: Any) -> Any:
        """:meth:`request`'s answer, parsed (``None`` for an empty body)."""
        return self._parse(method, self.request(method, url, **kwargs))

    def optional(self, url: str) -> Any:
        """A GET the forge may refuse or not know (403, 404, an older server): None then; no answer,
        a 429 or a 5xx is still an error."""
        try:
            return self.json("GET", url)
        except ForgeError as exc:
            if exc.transient:
                raise
            return None

    def pages(
        self,
        url: str,
        params: Mapping[str, Any] | None = None,
        *,
        key: str | None = None,
        max_pages: int = 1000,
    ) -> Iterator[Any]:
        """Every item of a paginated list, page after page through ``Link`` headers; ``key`` names the
        list in an object page (``check_runs``). One page is held at a time."""
        next_url: str | None = url
        query = params
        scope = httpx.URL(url).path  # the next pages' links may name the repository by its id
        for _ in range(max_pages):
            if next_url is None:
                return
            response = self.request("GET", next_url, params=query, scope=scope)
            data = self._parse("GET", response)
            items = data.get(key) if key and isinstance(data, dict) else data
            if not isinstance(items, list):
                raise ForgeError(f"{self.name} answered GET {self._where(response.url)} without a list", 0)
            next_url, query = next_link(response.headers.get("link")), None  # the link carries the query
            del data
            yield from items
        log.warning("%s: stopped paging %s after %d pages", self.name, self._where(httpx.URL(url)), max_pages)

    def changed(self, url: str, etag: str | None, params: Mapping[str, Any] | None = None) -> Changed:
        """A conditional GET: ``Changed(False, etag)`` when the forge answers 304 Not Modified."""
        headers = {"If-None-Match": etag} if etag else None
        response = self.request("GET", url, params=params, headers=headers, allow=(304,))
        if response.status_code == 304:
            return Changed(False, etag)
        return Changed(True, response.headers.get("etag") or None)

    def tail(self, url: str, tail_bytes: int) -> bytes:
        """The last ``tail_bytes`` of a download (a log), cut to whole lines when it was cut at all:
        asked with ``Range: bytes=-N``, following redirects (the token stays with the API's origin);
        a server that ignores the range is read to the end, keeping only the last bytes."""
        if tail_bytes <= 0:
            return b""
        headers = {"Range": f"bytes=-{tail_bytes + 1}"}
        for _ in range(_MAX_REDIRECTS):
            with self._send("GET", url, headers=headers, allow=(416,), follow=False) as response:
                if response.is_redirect:
                    url = str(response.url.join(response.headers.get("location", "")))
                    continue
                if response.status_code == 416:  # an empty log has no last bytes to give
                    return b""
                try:
                    data, cut = self._keep_last(response, tail_bytes)
                except httpx.HTTPError as exc:
                    what = self._scrub(f"{type(exc).__name__}: {exc}")
                    broke = f"{self.name}: GET {self._where(response.url)} broke off ({what})"
                    raise ForgeError(broke, 0) from None
                return _whole_lines(data, tail_bytes) if cut else data
        raise ForgeError(f"{self.name}: too many redirects for GET {self._where(httpx.URL(url))}", 0)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> ForgeHTTP:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- sending, retrying ----------------------------------------------------------------------------

    @contextmanager
    def _send(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        allow: Iterable[int] = (),
        read: bool = False,
        follow: bool = True,
        scope: str | None = None,
    ) -> Iterator[httpx.Response]:
        """The response of the first try that is not worth retrying (its body ``read``, or streamed),
        closed on leaving; an error's words are read here. ``follow``: redirects (a renamed
        repository's 301), the token kept to the API's origin. A 401 to credentials the :class:`Auth`
        renews is sent once more at once (the forge did not act on it), then said."""
        allowed, tries, renewals = set(allow), itertools.count(), [True]

        def one() -> httpx.Response:
            attempt = next(tries)
            request = self._build(method, url, params, json, headers, scope)
            response = self._attempt(request, attempt, read=read, follow=follow)
            if response.status_code == 401 and renewals and self._renewed(request):
                renewals.clear()
                response.close()
                request = self._build(method, url, params, json, headers, scope)
                response = self._attempt(request, attempt, read=read, follow=follow)
            if response.status_code < 400 or response.status_code in allowed:
                return response
            try:
                wait = self._should_retry(request, response, attempt)
            finally:
                response.close()
            raise _Again(request, f"{response.status_code}", wait, attempt)

        response = retry.Retrying(
            retry=retry.retry_if_exception_type(_Again),
            wait=lambda state: _again(state).wait,
            stop=retry.stop_after_attempt(self.retries + 1),  # the last try raises its own error first
            before_sleep=self._pause,
            sleep=self._sleep,
            reraise=True,
        )(one)
        try:
            yield response
        finally:
            response.close()

    def _build(
        self,
        method: str,
        url: str,
        params: Mapping[str, Any] | None,
        json: Any,
        headers: Mapping[str, str] | None,
        scope: str | None = None,
    ) -> httpx.Request:
        request = self._client.build_request(method, url, params=params, json=json, headers=headers)
        if self._same_origin(request.url):
            base = self.api_url.path.rstrip("/")
            path = scope if scope is not None else request.url.path
            authorization = self._auth.authorization(path.removeprefix(base) if base else path)
            if authorization:
                request.headers["Authorization"] = authorization
        return request

    def _renewed(self, request: httpx.Request) -> bool:
        """Whether the credentials refused (401) were renewed: worth one more try."""
        sent = request.headers.get("Authorization")
        return bool(sent) and self._auth.refused(sent)

    def _attempt(self, request: httpx.Request, attempt: int, *, read: bool, follow: bool) -> httpx.Response:
        """One try: its response; :class:`_Again` after a failure worth another try."""
        failure: httpx.RequestError
        try:
            response = self._client.send(request, stream=True, follow_redirects=follow)
            try:
                if read:
                    response.read()
            except BaseException:
                response.close()
                raise
            return response
        except httpx.RequestError as exc:  # a transport's failure, too many redirects, an undecodable body
            failure = exc
        # raised out of the except block, so that the error carries no context that names the request
        what = self._scrub(type(failure).__name__ + (f": {failure}" if str(failure) else ""))
        resend = request.method in _IDEMPOTENT or isinstance(failure, _UNSENT)
        if attempt >= self.retries or not resend or not isinstance(failure, httpx.TransportError):
            raise ForgeError(
                f"{self.name} did not answer {request.method} {self._where(request.url)} ({what})", 0
            )
        raise _Again(request, what, self._backoff_for(attempt), attempt)

    def _should_retry(self, request: httpx.Request, response: httpx.Response, attempt: int) -> float:
        """How long to wait before the next try; raises when there is none to make."""
        status, message = response.status_code, self._message(request, response)
        limited = self._rate_limit_wait(response, message)
        last = attempt >= self.retries
        if limited is not None:
            if last or limited > self.max_wait:
                raise RateLimited(message, status, self._clock() + limited)
            return limited
        transient = status == 429 or status >= 500
        if last or not transient or (request.method not in _IDEMPOTENT and status != 429):
            raise ForgeError(message, status)
        after = _retry_after(response.headers.get("retry-after"), self._clock())
        if after is not None and after > self.max_wait:
            raise ForgeError(message, status)
        return after if after is not None else self._backoff_for(attempt)

    def _rate_limit_wait(self, response: httpx.Response, message: str) -> float | None:
        """Seconds until a spent rate limit resets, or ``None`` when the answer is not a rate limit:
        ``Retry-After``; else ``x-ratelimit-reset`` when ``x-ratelimit-remaining`` is 0 (GitLab's
        ``RateLimit-Reset`` and ``RateLimit-Remaining`` alike); else, for
        GitHub's secondary limit that gives neither, the minute its documentation asks for."""
        status, headers = response.status_code, response.headers
        if status not in (403, 429):
            return None
        after = _retry_after(headers.get("retry-after"), self._clock())
        if after is not None:
            return after
        for prefix in ("x-ratelimit", "ratelimit"):  # GitHub's and Gitea's; GitLab's (no x-)
            if headers.get(f"{prefix}-remaining") == "0":
                try:
                    reset = float(headers.get(f"{prefix}-reset", ""))
                except ValueError:
                    return _SECONDARY_WAIT
                return max(0.0, reset - self._clock()) + 1.0  # the reset's second, passed
        if any(words in message.lower() for words in ("secondary rate limit", "abuse detection")):
            return _SECONDARY_WAIT
        return None

    def _backoff_for(self, attempt: int) -> float:
        """Exponential backoff with jitter: between half and all of ``backoff * 2**attempt``."""
        delay = min(self.max_backoff, self.backoff * 2.0**attempt)
        return float(delay * (0.5 + self._jitter() / 2))

    def _pause(self, state: retry.RetryCallState) -> None:
        """Said before the retry policy sleeps (``sleep``) until the next try."""
        again = _again(state)
        log.info(
            "%s: %s %s: %s; retrying in %.1f s (%d of %d)",
            self.name,
            again.request.method,
            self._where(again.request.url),
            again.why,
            again.wait,
            again.attempt + 1,
            self.retries,
        )

    # -- reading answers ------------------------------------------------------------------------------

    def _parse(self, method: str, response: httpx.Response) -> Any:
        if not response.content.strip():
            return None
        try:
            return response.json()
        except ValueError:
            where = self._where(response.url)
            raise ForgeError(
                f"{self.name} answered {method} {where} with something that is not JSON", 0
            ) from None

    def _message(self, request: httpx.Request, response: httpx.Response) -> str:
        body = bytearray()
        try:
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) >= _MAX_ERROR_BODY:
                    break
        except (httpx.HTTPError, httpx.StreamError):
            pass  # the status is the message then
        words = forge_words(response, bytes(body))
        where = self._where(request.url)
        who = self._auth.who() if response.status_code == 401 else ""
        return self._scrub(
            f"{self.name} answered {response.status_code} to {request.method} {where}: {words}"
            + (f" ({who})" if who else "")
        )

    @staticmethod
    def _keep_last(response: httpx.Response, tail_bytes: int) -> tuple[bytes, bool]:
        """The last ``tail_bytes + 1`` bytes of the body, streamed (the one more tells whether the tail
        starts at a line's start); and whether the body had more than ``tail_bytes``."""
        keep = tail_bytes + 1
        buffer = bytearray()
        for chunk in response.iter_bytes():
            buffer += chunk
            if len(buffer) > 2 * keep:
                del buffer[:-keep]
        start = 0
        if response.status_code == 206:  # "bytes 900-999/1000": what came starts at 900
            match = re.match(r"bytes\s+(\d+)-", response.headers.get("content-range", ""))
            start = int(match.group(1)) if match else 0
        data = bytes(buffer[-keep:])
        return data, start > 0 or len(buffer) > tail_bytes

    # -- manners --------------------------------------------------------------------------------------

    def _same_origin(self, url: httpx.URL) -> bool:
        return (url.scheme, url.host, url.port) == (self.api_url.scheme, self.api_url.host, self.api_url.port)

    def _where(self, url: httpx.URL) -> str:
        """A URL as an error names it: its path (another origin's with its host), never its query."""
        return url.path if self._same_origin(url) else f"{url.host}{url.path}"

    def _scrub(self, text: str) -> str:
        for secret in self._auth.secrets():
            if secret:
                text = text.replace(secret, "***")
        return text


def _whole_lines(data: bytes, tail_bytes: int) -> bytes:
    """The lines that end a cut body, from the last ``tail_bytes + 1`` bytes of it: what follows their
    first newline (one line longer than the tail: its last ``tail_bytes``)."""
    newline = data.find(b"\n")
    return data[newline + 1 :] if 0 <= newline < len(data) - 1 else data[-tail_bytes:]


class _RedactQueries(logging.Filter):
    """httpx logs each request's URL at INFO; a signed download URL's query is a credential (for the
    log it names), so the query goes from what httpx logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(a, httpx.URL) and a.query for a in record.args):
            record.args = tuple(
                str(a).split("?", 1)[0] + "?…" if isinstance(a, httpx.URL) and a.query else a
                for a in record.args
            )
        return True


_httpx_log = logging.getLogger("httpx")
if not any(isinstance(f, _RedactQueries) for f in _httpx_log.filters):
    _httpx_log.addFilter(_RedactQueries())


def head_clone_url(head: Mapping[str, Any]) -> str | None:
    """A pull request's head repository's clone URL (a fork's; both forges name it ``clone_url``), or
    None when the fork is gone or the URL is not plain http(s)."""
    repo = head.get("repo")
    url = repo.get("clone_url") if isinstance(repo, Mapping) else None
    if not isinstance(url, str) or not url.startswith(("https://", "http://")) or "@" in url:
        return None
    return url
