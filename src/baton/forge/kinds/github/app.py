"""baton as a GitHub App (:class:`GitHubApp`, one per configured App and process): a JWT signed with the
App's private key (RS256, PyJWT; issued 60 s in the past for clock drift, expiring 9 minutes later,
re-signed before that), the installation of each repository (``GET /repos/{owner}/{repo}/installation``,
kept an hour; what ``installation`` webhooks say, at once), installation tokens minted for it (``POST
/app/installations/{id}/access_tokens``) and renewed ahead of their expiry
(:mod:`baton.forge.kinds.github.tokens`), and baton's own login: the App's bot, ``<slug>[bot]``, read once
(``GET /app``). :class:`AppAuth` gives a REST client each request's token (the installation of the repository
it names); a token GitHub refuses is renewed once and the request sent again
(:class:`~baton.forge.kinds.http.ForgeHTTP`). Each process makes its own from the configuration
(:func:`app_of`): a fork never inherits a token.
"""

from __future__ import annotations

import dataclasses
import email.utils
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from baton.errors import BadInput
from baton.forge.data.config import ForgeConfig
from baton.forge.data.model import ForgeError
from baton.forge.kinds.github.client import GitHubClient
from baton.forge.kinds.github.tokens import Minted, TokenCache
from baton.forge.kinds.http import ForgeHTTP
from baton.forge.kinds.rest import epoch, repo_path

if TYPE_CHECKING:
    from baton.forge.kinds.github.client import GitHubClient

# what the loop needs of an installation (docs/forge.md: Setting up GitHub as an App)
REQUIRED: dict[str, str] = {
    "contents": "write",  # clone, fetch, push the thread's branch
    "pull_requests": "write",  # the draft PR, review replies, resolving threads
    "issues": "write",  # the status comment and answers
    "checks": "read",  # failing check runs and annotations
    "actions": "read",  # failing jobs' steps and log tails
    "statuses": "read",  # failing commit statuses
    "metadata": "read",  # the repository, collaborators' permissions
}
LEVELS = {"read": 1, "write": 2, "admin": 3}
JWT_AHEAD, JWT_LIFE, JWT_RESIGN = 60, 540, 120  # seconds: iat in the past, exp after now, re-sign before exp
KNOWN_FOR, UNKNOWN_FOR = 3600.0, 60.0  # seconds a repository's installation (or its absence) is kept
HEADERS = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
_SCOPE = re.compile(r"/repos/([^/]+)/([^/]+)")
_TOKEN = re.compile(r"[A-Za-z0-9_.\-]{16,512}")
_SLUG = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,99}")


@dataclass(frozen=True)
class Identity:
    """What ``GET /app`` says of the App."""

    app_id: int
    slug: str
    name: str
    events: frozenset[str] = frozenset()
    permissions: Mapping[str, str] = dataclasses.field(default_factory=dict)

    @property
    def login(self) -> str:
        return f"{self.slug}[bot]"


def missing(permissions: Mapping[str, Any]) -> list[str]:
    """What ``permissions`` (an installation's, a token's) lacks of :data:`REQUIRED`, as
    ``checks: read (has none)``."""
    found = []
    for name, level in REQUIRED.items():
        has = str(permissions.get(name) or "none")
        if LEVELS.get(has, 0) < LEVELS[level]:
            found.append(f"{name}: {level} (has {has})")
    return found


class _JwtAuth:
    """The App's own requests (``/app``, an installation's lookup, a mint): ``Bearer <JWT>``."""

    def __init__(self, app: GitHubApp) -> None:
        self._app = app

    def authorization(self, scope: str) -> str:
        return f"Bearer {self._app.jwt()}"

    def refused(self, authorization: str) -> bool:
        return False  # a refused JWT is a wrong id, key or clock: another signature would not help

    def secrets(self) -> Iterable[str]:
        return self._app.secrets()

    def who(self) -> str:
        key = self._app.key
        return (
            f"the JWT of GitHub App {key.app_id}, signed with {key.source}: check app_id, that this "
            "is the App's key, and this machine's clock"
        )


class AppAuth:
    """A REST client's credentials as the App: each request takes the installation token of the
    repository it names (or of the App's only installation, for a request that names none)."""

    def __init__(self, app: GitHubApp) -> None:
        self.app = app

    def authorization(self, scope: str) -> str:
        found = _SCOPE.match(scope)
        if found:
            installation = self.app.installation(f"{found[1]}/{found[2]}")
        else:
            installation = self.app.default_installation()
        return f"Bearer {self.app.tokens.get(installation).token}"

    def refused(self, authorization: str) -> bool:
        token = authorization.partition(" ")[2]
        installation = self.app.tokens.owner(token)
        return installation is not None and self.app.tokens.refused(installation, token)

    def secrets(self) -> Iterable[str]:
        return self.app.secrets()

    def who(self) -> str:
        return f"an installation token of GitHub App {self.app.key.app_id}, renewed once and refused again"


class GitHubApp:
    """One configured App in one process. ``environ``: where ``private_key_env`` is read;
    ``transport``, ``clock``, ``sleep``, ``keeper`` and ``spawn`` are the tests'."""

    def __init__(
        self,
        forge: ForgeConfig,
        *,
        environ: Mapping[str, str] = os.environ,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        keeper: bool = True,
        spawn: Callable[[Callable[[], None]], None] | None = None,
        timeout: float = 10.0,
        retries: int = 2,
    ) -> None:
        if forge.app is None:
            raise BadInput(f"forge {forge.name!r} is not a GitHub App (no app_id)")
        self.forge, self.key, self._environ, self._clock = forge, forge.app, environ, clock
        self.clock = clock
        self.http = ForgeHTTP(
            forge.api_url,
            _JwtAuth(self),
            name=f"GitHub (App {forge.app.app_id})",
            headers=HEADERS,
            timeout=timeout,
            retries=retries,
            transport=transport,
            sleep=sleep,
            clock=clock,
        )
        extra = {"spawn": spawn} if spawn is not None else {}
        self.tokens: TokenCache[int] = TokenCache(
            self._mint, clock=clock, keeper=keeper, name=f"github-app-{forge.app.app_id}", **extra
        )
        self._lock = threading.Lock()
        self._jwt: tuple[str, float] | None = None
        self._identity: Identity | None = None
        self._repos: dict[str, tuple[int | None, float]] = {}  # casefolded full name: (installation, when)
        self.lookups = 0  # installation look-ups asked of GitHub (tests)

    # -- the App's own credentials ----------------------------------------------------------------------

    def jwt(self) -> str:
        """A JWT for the App's own requests, signed again two minutes before it expires."""
        # lazy: cost: PyJWT and cryptography, for an App's JWT only
        import jwt

        now = self._clock()
        with self._lock:
            if self._jwt is not None and now < self._jwt[1] - JWT_RESIGN:
                return self._jwt[0]
        key = self.key.private_key(self._environ)
        issued, expires = int(now) - JWT_AHEAD, int(now) + JWT_LIFE
        signed = jwt.encode(
            {"iat": issued, "exp": expires, "iss": str(self.key.app_id)}, key, algorithm="RS256"
        )
        with self._lock:
            self._jwt = (signed, float(expires))
        return signed

    def secrets(self) -> list[str]:
        with self._lock:
            signed = [self._jwt[0]] if self._jwt else []
        return signed + self.tokens.secrets()

    def identity(self) -> Identity:
        """The App as GitHub describes it (``GET /app``), read once."""
        with self._lock:
            if self._identity is not None:
                return self._identity
        data = self.http.json("GET", "/app")
        slug = data.get("slug") if isinstance(data, dict) else None
        if not isinstance(slug, str) or not _SLUG.fullmatch(slug):
            raise ForgeError(f"GitHub answered GET /app for App {self.key.app_id} without its slug", 0)
        found = Identity(
            app_id=_int(data.get("id")) or self.key.app_id,
            slug=slug,
            name=str(data.get("name") or slug)[:200],
            events=frozenset(str(e) for e in (data.get("events") or ())[:200] if isinstance(e, str)),
            permissions=_levels(data.get("permissions")),
        )
        with self._lock:
            self._identity = found
        return found

    # -- installations ----------------------------------------------------------------------------------

    def installation(self, repo: str) -> int:
        """The id of the installation that reaches ``repo``; ForgeError 404 when the App is not
        installed there (asked again after a minute)."""
        name, now = repo.casefold(), self._clock()
        with self._lock:
            known = self._repos.get(name)
        if known is not None and now - known[1] < (KNOWN_FOR if known[0] is not None else UNKNOWN_FOR):
            if known[0] is None:
                raise self._not_installed(repo)
            return known[0]
        found = self.installation_info(repo)
        installation = _int(found.get("id")) if found else None
        with self._lock:
            self._repos[name] = (installation, now)
        if installation is None:
            raise self._not_installed(repo)
        return installation

    def installation_info(self, repo: str) -> dict[str, Any] | None:
        """GitHub's answer to ``GET /repos/{owner}/{repo}/installation`` (None: not installed there)."""
        self.lookups += 1
        response = self.http.request("GET", f"{repo_path(repo, 'GitHub')}/installation", allow=(404,))
        if response.status_code == 404:
            return None
        data = response.json()
        if not isinstance(data, dict) or _int(data.get("id")) is None:
            raise ForgeError(f"GitHub answered the installation of {repo} without an id", 0)
        return data

    def default_installation(self) -> int:
        """The installation of a request that names no repository: the only one the App has (those
        known, else GitHub's list)."""
        with self._lock:
            known = {i for i, _ in self._repos.values() if i is not None}
        if len(known) == 1:
            return known.pop()
        listed = {_int(i.get("id")) for i in self.installations() if isinstance(i, dict)} - {None}
        if len(listed) == 1:
            return int(listed.pop() or 0)
        raise ForgeError(
            f"GitHub App {self.key.app_id} has {len(listed)} installations: a request that names no "
            "repository cannot tell which one's token to use",
            0,
        )

    def installations(self) -> list[Any]:
        """``GET /app/installations``: every installation of the App."""
        return list(self.http.pages("/app/installations", {"per_page": 100}, max_pages=50))

    def learned(self, installation: int, added: Iterable[str] = (), removed: Iterable[str] = ()) -> None:
        """What an ``installation`` or ``installation_repositories`` webhook says: repositories added
        to (found at once, no look-up) or removed from ``installation`` (no token is minted for them
        until GitHub says they are installed again)."""
        now = self._clock()
        with self._lock:
            for repo in added:
                self._repos[repo.casefold()] = (installation, now)
            for repo in removed:
                self._repos[repo.casefold()] = (None, now)

    def uninstalled(self, installation: int) -> None:
        """The installation was deleted or suspended: its token is dropped, its repositories are asked
        again before anything is minted for them."""
        self.tokens.forget(installation)
        with self._lock:
            for name, (found, _) in list(self._repos.items()):
                if found == installation:
                    del self._repos[name]

    def renewed_permissions(self, installation: int) -> None:
        """The installation's permissions changed: its next token carries the new ones."""
        self.tokens.forget(installation)

    # -- tokens ------------------------------------------------------------------------------------------

    def token(self, repo: str) -> str:
        """A good installation token for ``repo`` (the API and git alike)."""
        return self.tokens.get(self.installation(repo)).token

    def minted(self, repo: str) -> Minted:
        """The token of ``repo``'s installation with what GitHub said of it (its permissions)."""
        return self.tokens.get(self.installation(repo))

    def _mint(self, installation: int) -> Minted:
        asked = self._clock()
        response = self.http.request("POST", f"/app/installations/{int(installation)}/access_tokens")
        data = response.json() if response.content.strip() else None
        token = data.get("token") if isinstance(data, dict) else None
        expires = epoch(data.get("expires_at")) if isinstance(data, dict) else 0.0
        if not isinstance(token, str) or not _TOKEN.fullmatch(token) or expires <= 0:
            raise ForgeError(
                f"GitHub answered the token of App {self.key.app_id}'s installation {installation} "
                "without a token or its expiry",
                0,
            )
        lifetime = expires - asked
        served = _date(response.headers.get("date"))
        if served is not None:  # the forge's own clock: a skewed local one does not stretch the life
            lifetime = min(lifetime, expires - served)
        assert isinstance(data, dict)
        details = {
            "installation": installation,
            "permissions": _levels(data.get("permissions")),
            "repository_selection": str(data.get("repository_selection") or "")[:20],
        }
        return Minted(token, asked + lifetime, max(lifetime, 0.0), details)

    def close(self) -> None:
        self.tokens.close()
        self.http.close()

    def _not_installed(self, repo: str) -> ForgeError:
        return ForgeError(
            f"GitHub App {self.key.app_id} is not installed on {repo} (or its installation cannot see it): "
            "install the App on the repository",
            404,
        )


def _int(value: Any) -> int | None:
    return value if type(value) is int and 0 < value < 2**63 else None


def _levels(value: Any) -> dict[str, str]:
    """A permissions object (``{"contents": "write", ...}``), bounded and typed."""
    if not isinstance(value, dict):
        return {}
    return {
        str(k)[:64]: str(v)[:16]
        for k, v in list(value.items())[:100]
        if isinstance(v, str) and isinstance(k, str)
    }


def _date(value: str | None) -> float | None:
    try:
        return email.utils.parsedate_to_datetime(value).timestamp() if value else None
    except (TypeError, ValueError):
        return None


# -- one per configured App and process --------------------------------------------------------------------

_APPS: dict[tuple[int, str, str, int, str], GitHubApp] = {}
_APPS_LOCK = threading.Lock()


def _ident(forge: ForgeConfig) -> tuple[int, str, str, int, str]:
    assert forge.app is not None
    return (os.getpid(), forge.name, forge.api_url, forge.app.app_id, forge.app.source)


def app_of(forge: ForgeConfig) -> GitHubApp:
    """This process's :class:`GitHubApp` of a configured App forge (made on first use: a worker's
    forked process makes its own; a changed key or id makes a new one)."""
    ident = _ident(forge)
    with _APPS_LOCK:
        found = _APPS.get(ident)
        if found is None:
            for stale in [k for k in _APPS if k[0] != ident[0]]:
                del _APPS[stale]  # a parent's, copied by a fork: never used here
            found = _APPS[ident] = GitHubApp(forge)
        return found


def use_app(app: GitHubApp) -> None:
    """Make ``app`` this process's App of its forge (a test's, with its clock or transport)."""
    with _APPS_LOCK:
        _APPS[_ident(app.forge)] = app


def forget_apps() -> None:
    """Close and drop every App of this process (tests)."""
    with _APPS_LOCK:
        apps = list(_APPS.values())
        _APPS.clear()
    for app in apps:
        app.close()


def identified(forge: ForgeConfig) -> ForgeConfig:
    """``forge`` with baton's own login (the App's bot, ``<slug>[bot]``) and mention (``@<slug>``)
    where the configuration left them out, read from GitHub once per process."""
    if forge.app is None or (forge.user and forge.mention):
        return forge
    found = app_of(forge).identity()
    return dataclasses.replace(
        forge, user=forge.user or found.login, mention=forge.mention or f"@{found.slug}"
    )


def app_client(forge: ForgeConfig) -> GitHubClient:
    """The GitHub client of an App forge: each request with its repository's installation token."""
    return GitHubClient(forge.api_url, AppAuth(app_of(forge)))
