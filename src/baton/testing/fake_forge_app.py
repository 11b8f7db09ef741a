"""The fake GitHub as a GitHub App's host (:class:`ForgeApp`): an App with its RSA key pair
(:meth:`ForgeApp.make_app`), its installations on repositories with their permissions, and GitHub's
App routes — ``GET /app``, ``GET /app/installations``, ``GET /repos/{owner}/{repo}/installation`` and
``POST /app/installations/{id}/access_tokens`` — authenticated with a JWT verified with the App's
*public* key (RS256; a bad signature, an expired JWT or one living over 10 minutes is a 401, as on
GitHub). Installation tokens act as the App's bot (``<slug>[bot]``) on the API and over git, live
``token_lifetime`` seconds (a test's: a few) and are then refused with GitHub's ``Bad credentials``;
a repository not installed is a 404 to them. Installation changes send GitHub's ``installation`` and
``installation_repositories`` webhooks.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from baton.testing.fake_forge_core import ForgeCore, ForgeRefused
from baton.testing.fake_forge_routes import Call, Handler, Reply
from baton.testing.fake_forge_state import User, iso

# what baton's loop needs (baton.forge.kinds.github.app.REQUIRED), the default of a fake App
DEFAULT_PERMISSIONS = {
    "contents": "write",
    "pull_requests": "write",
    "issues": "write",
    "checks": "read",
    "actions": "read",
    "statuses": "read",
    "metadata": "read",
}
MAX_JWT_LIFE = 600  # GitHub: "no more than 10 minutes into the future"


@dataclass
class Installation:
    """One installation of the App on an account, reaching ``repos``."""

    id: int
    account: str
    repos: set[str]
    permissions: dict[str, str]
    selection: str = "selected"  # or "all"
    suspended: bool = False
    created_at: float = 0.0


@dataclass
class App:
    """The fake's GitHub App: its id, slug, key pair and installations, and the tokens it minted."""

    id: int
    slug: str
    name: str
    pem: bytes = field(repr=False)
    public_key: Any = field(repr=False)
    permissions: dict[str, str]
    events: list[str]
    token_lifetime: float
    installations: dict[int, Installation] = field(default_factory=dict)
    tokens: dict[str, tuple[int, float]] = field(default_factory=dict, repr=False)  # token: (inst., expiry)
    minted: int = 0  # tokens minted
    jwts_refused: int = 0

    @property
    def bot(self) -> str:
        return f"{self.slug}[bot]"


def new_key() -> tuple[bytes, Any]:
    """A fresh 2048-bit RSA key: its PEM (PKCS#8, as GitHub's downloads) and its public key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return pem, key.public_key()


class ForgeApp(ForgeCore):
    """The App's state and routes (a mixin of :class:`~baton.testing.fake_forge.FakeForge`)."""

    app: App | None = None

    # -- driving it -------------------------------------------------------------------------------------

    def make_app(
        self,
        slug: str = "baton",
        *,
        permissions: dict[str, str] | None = None,
        events: list[str] | None = None,
        token_lifetime: float = 3600.0,
        name: str | None = None,
        app_id: int | None = None,
    ) -> App:
        """The App (one per fake), its bot user ``<slug>[bot]`` made; its tokens live ``token_lifetime``."""
        pem, public = new_key()
        with self.lock:
            self.app = App(
                app_id or next(self._ids),
                slug,
                name or slug.capitalize(),
                pem,
                public,
                dict(permissions or DEFAULT_PERMISSIONS),
                list(events if events is not None else self.hook_events),
                token_lifetime,
            )
            self.add_user(self.app.bot, "Bot")
            return self.app

    def install_app(
        self,
        repos: list[str],
        *,
        account: str | None = None,
        permissions: dict[str, str] | None = None,
        selection: str = "selected",
        notify: bool = False,
    ) -> Installation:
        """Install the App on ``account`` (default: the first repository's owner) for ``repos``;
        ``notify``: send ``installation.created``."""
        app = self._app()
        with self._change():
            installation = Installation(
                next(self._ids),
                account or repos[0].partition("/")[0],
                set(),
                dict(permissions or app.permissions),
                selection,
                created_at=self.clock(),
            )
            app.installations[installation.id] = installation
            self._reach(installation, repos)
            if notify:
                self._installation_event("installation", "created", installation, repositories=repos)
            return installation

    def add_to_installation(self, installation: int, repos: list[str], notify: bool = True) -> None:
        """Repositories added to an installation (``installation_repositories.added``)."""
        with self._change():
            found = self._installation(installation)
            self._reach(found, repos)
            if notify:
                self._installation_event("installation_repositories", "added", found, added=repos)

    def remove_from_installation(self, installation: int, repos: list[str], notify: bool = True) -> None:
        """Repositories removed from an installation (``installation_repositories.removed``): the App's
        tokens no longer reach them (404)."""
        with self._change():
            found = self._installation(installation)
            for name in repos:
                found.repos.discard(name)
                if name in self.repos:
                    self.repos[name].permissions[self._app().bot] = "none"
            if notify:
                self._installation_event("installation_repositories", "removed", found, removed=repos)

    def uninstall_app(self, installation: int, notify: bool = True) -> None:
        """The installation deleted (``installation.deleted``): its tokens die with it."""
        with self._change():
            found = self._installation(installation)
            repos = sorted(found.repos)
            self.remove_from_installation(installation, repos, notify=False)
            app = self._app()
            del app.installations[installation]
            app.tokens = {t: v for t, v in app.tokens.items() if v[0] != installation}
            if notify:
                self._installation_event("installation", "deleted", found, repositories=repos)

    def set_installation_permissions(
        self, installation: int, permissions: dict[str, str], notify: bool = True
    ) -> None:
        """New permissions accepted on the installation (``installation.new_permissions_accepted``);
        tokens minted from now on carry them."""
        with self._change():
            found = self._installation(installation)
            found.permissions = dict(permissions)
            if notify:
                self._installation_event("installation", "new_permissions_accepted", found)

    def expire_app_tokens(self) -> None:
        """Every installation token minted so far expires now."""
        with self.lock:
            app = self._app()
            app.tokens = {t: (i, min(e, self.clock())) for t, (i, e) in app.tokens.items()}

    def private_key_pem(self) -> bytes:
        return self._app().pem

    # -- what the server asks -------------------------------------------------------------------------

    def user_by_token(self, token: str) -> User | None:
        """An installation token that has not expired is the App's bot; any other token is a user's."""
        with self.lock:
            app = self.app
            found = app.tokens.get(token) if app is not None and token.startswith("ghs_") else None
            if app is not None and found is not None:
                installation = app.installations.get(found[0])
                if installation is None or installation.suspended or self.clock() >= found[1]:
                    return None
                return self.users.get(app.bot)
        return super().user_by_token(token)

    def installation_refuses(self, login: str, path: str) -> bool:
        """Whether ``login`` (the App's bot) is asking about a repository its installations do not reach
        (GitHub answers 404)."""
        app = self.app
        if app is None or login != app.bot:
            return False
        found = re.match(r"/repos/([^/]+)/([^/]+)", path)
        if found is None:
            return False
        name = f"{unquote(found[1])}/{unquote(found[2])}"
        with self.lock:
            return not any(name in i.repos for i in app.installations.values())

    def verify_jwt(self, authorization: str) -> str:
        """The App's pseudo-login for a request carrying a good JWT; ForgeRefused 401 otherwise."""
        import jwt

        app = self.app
        scheme, _, token = authorization.partition(" ")
        try:
            if app is None or scheme.lower() != "bearer" or token.count(".") != 2:
                raise jwt.InvalidTokenError("not a JWT")
            claims = jwt.decode(
                token,
                app.public_key,
                algorithms=["RS256"],
                options={"verify_exp": False, "verify_iat": False, "require": ["exp", "iat", "iss"]},
            )
        except jwt.InvalidTokenError:
            self._refused_jwt()
            raise ForgeRefused(401, "A JSON web token could not be decoded") from None
        now, issued, expires = self.clock(), claims["iat"], claims["exp"]
        if str(claims["iss"]) != str(app.id):
            self._refused_jwt()
            raise ForgeRefused(401, "Integration not found")
        if not isinstance(expires, int | float) or expires <= now:
            self._refused_jwt()
            raise ForgeRefused(
                401,
                "'Expiration time' claim ('exp') must be a numeric value representing the future time "
                "at which the assertion expires",
            )
        if not isinstance(issued, int | float) or issued > now + 5:
            self._refused_jwt()
            raise ForgeRefused(
                401,
                "'Issued at' claim ('iat') must be an Integer representing the time that the assertion "
                "was issued",
            )
        if expires - issued > MAX_JWT_LIFE:
            self._refused_jwt()
            raise ForgeRefused(401, "'Expiration time' claim ('exp') is too far in the future")
        return f"app:{app.id}"

    def _refused_jwt(self) -> None:
        with self.lock:
            if self.app is not None:
                self.app.jwts_refused += 1

    # -- rendering --------------------------------------------------------------------------------------

    def render_app(self) -> dict[str, Any]:
        app = self._app()
        obj: dict[str, Any] = self.render.template("integration", "octocat/Hello-World")
        obj.update(
            id=app.id,
            slug=app.slug,
            name=app.name,
            node_id=f"A_{app.id}",
            description="baton's fake App",
            external_url=self.web_url,
            html_url=f"{self.web_url}/apps/{app.slug}",
            permissions=dict(app.permissions),
            events=list(app.events),
            installations_count=len(app.installations),
        )
        owner = next(iter(sorted({i.account for i in app.installations.values()})), None)
        if owner is not None and isinstance(obj.get("owner"), dict):
            self.render.user_fields(obj["owner"], owner)
        obj.pop("client_secret", None)
        obj.pop("webhook_secret", None)
        obj.pop("pem", None)
        return obj

    def render_installation(self, installation: Installation) -> dict[str, Any]:
        app = self._app()
        obj: dict[str, Any] = self.render.template("installation", "octocat/Hello-World")
        self.render.user_fields(obj["account"], installation.account)
        obj.update(
            id=installation.id,
            app_id=app.id,
            app_slug=app.slug,
            target_id=self.user(installation.account).id,
            target_type="Organization" if self.user(installation.account).type == "Organization" else "User",
            repository_selection=installation.selection,
            access_tokens_url=f"{self.api_url}/app/installations/{installation.id}/access_tokens",
            repositories_url=f"{self.api_url}/installation/repositories",
            html_url=f"{self.web_url}/settings/installations/{installation.id}",
            permissions=dict(installation.permissions),
            events=list(app.events),
            created_at=iso(installation.created_at),
            updated_at=iso(installation.created_at),
            suspended_at=None,
            suspended_by=None,
            single_file_name=None,
        )
        return obj

    # -- helpers ----------------------------------------------------------------------------------------

    def _app(self) -> App:
        if self.app is None:
            raise ForgeRefused(404, "Not Found")
        return self.app

    def _installation(self, installation: int) -> Installation:
        found = self._app().installations.get(installation)
        if found is None:
            raise ForgeRefused(404, "Not Found")
        return found

    def _reach(self, installation: Installation, repos: list[str]) -> None:
        """The installation reaches ``repos``: its bot may write there (its permissions are the App's)."""
        bot = self._app().bot
        role = "write" if installation.permissions.get("contents") == "write" else "read"
        for name in repos:
            installation.repos.add(name)
            self.repo(name).permissions[bot] = role

    def _repository(self, name: str) -> dict[str, Any]:
        repo = self.repo(name)
        return {
            "id": repo.id,
            "node_id": f"R_{repo.id}",
            "name": repo.name,
            "full_name": name,
            "private": False,
        }

    def _installation_event(
        self,
        event: str,
        action: str,
        installation: Installation,
        *,
        repositories: list[str] | None = None,
        added: list[str] | None = None,
        removed: list[str] | None = None,
    ) -> None:
        payload = self.payloads.hook_template(event, action)
        for key in ("organization", "enterprise"):
            payload.pop(key, None)
        if event == "installation_repositories":
            payload["requester"] = None  # required: who asked for the change (None: the account's owner)
        inst = payload["installation"]
        self.render.user_fields(inst["account"], installation.account)
        inst.update(
            id=installation.id,
            app_id=self._app().id,
            app_slug=self._app().slug,
            repository_selection=installation.selection,
            permissions=dict(installation.permissions),
            events=list(self._app().events),
            target_id=self.user(installation.account).id,
            access_tokens_url=f"{self.api_url}/app/installations/{installation.id}/access_tokens",
            html_url=f"{self.web_url}/settings/installations/{installation.id}",
            created_at=iso(installation.created_at),
            updated_at=iso(self.clock()),
        )
        self.render.user_fields(payload["sender"], installation.account)
        if event == "installation":
            payload["repositories"] = [self._repository(r) for r in repositories or []]
        else:
            payload["repository_selection"] = installation.selection
            payload["repositories_added"] = [self._repository(r) for r in added or []]
            payload["repositories_removed"] = [self._repository(r) for r in removed or []]
        self._emit(event, action, payload)


# -- routes (JWT) -------------------------------------------------------------------------------------------


def _fake(c: Call) -> ForgeApp:
    assert isinstance(c.fake, ForgeApp)
    return c.fake


def get_app(c: Call) -> Reply:
    return 200, _fake(c).render_app(), {}


def list_installations(c: Call) -> Reply:
    fake = _fake(c)
    with fake.lock:
        items = [fake.render_installation(i) for i in fake._app().installations.values()]
    for item in items:  # GitHub's description says the account is a user *and* an enterprise (allOf)
        account = item["account"]
        at = item["created_at"]
        account.update(name=account["login"], slug=account["login"], created_at=at, updated_at=at)
    page, headers = c.page(items)
    return 200, page, headers


def repo_installation(c: Call) -> Reply:
    fake = _fake(c)
    with fake.lock:
        for installation in fake._app().installations.values():
            if c.repo_name in installation.repos:
                return 200, fake.render_installation(installation), {}
    raise ForgeRefused(404, "Not Found")


def create_token(c: Call) -> Reply:
    fake = _fake(c)
    with fake.lock:
        app = fake._app()
        installation = fake._installation(int(c.params["installation_id"]))
        if installation.suspended:
            raise ForgeRefused(403, "This installation has been suspended")
        token = "ghs_" + secrets.token_urlsafe(27).replace("-", "A").replace("_", "B")[:36]
        expires = fake.clock() + app.token_lifetime
        app.tokens[token] = (installation.id, expires)
        app.minted += 1
        body = {
            "token": token,
            "expires_at": iso(expires),  # whole seconds, as GitHub's: never later than the truth
            "permissions": dict(installation.permissions),
            "repository_selection": installation.selection,
        }
    return 201, body, {}


APP_ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/app", get_app),
    ("GET", "/app/installations", list_installations),
    ("GET", "/repos/{owner}/{repo}/installation", repo_installation),
    ("POST", "/app/installations/{installation_id}/access_tokens", create_token),
]
_COMPILED = [
    (method, template, re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template) + "$"), handler)
    for method, template, handler in APP_ROUTES
]


def app_route(method: str, path: str) -> tuple[str, dict[str, str], Handler] | None:
    """An App route (authenticated with the App's JWT): its template, parameters and handler."""
    for m, template, pattern, handler in _COMPILED:
        if m == method and (match := pattern.match(path)):
            return template, {k: unquote(v) for k, v in match.groupdict().items()}, handler
    return None
