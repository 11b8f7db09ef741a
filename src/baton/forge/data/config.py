"""The forges baton listens to and the repositories it works on: the ``[forge.<name>]`` and
``[repo."<owner>/<name>"]`` tables of ``$BATON_HOME/config.toml`` (or of the file ``BATON_FORGE_CONFIG``
names), typed strictly. The file comes from :func:`baton.settings.read_config`, the one reader of
``config.toml``; this module types its two tables, and every refusal is a :class:`BadInput` naming the
file and the key (``repo."acme/api".triggers.label.access``), a value that may be a secret never echoed.
The token is never in the file nor in these objects: ``token_env`` names its variable, read by
:meth:`ForgeConfig.token` only when a client needs it, so no repr, log or error message can carry it; a
GitHub App's key is named the same way (``app_id`` with ``private_key_file`` or ``private_key_env``:
:class:`~baton.forge.data.appkey.AppKey`), its tokens minted by :mod:`baton.forge.kinds.github.app`.
The keys, their defaults and what is refused: docs/configuration.md (Forges and repositories).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from baton import allowlist
from baton.agents import AGENTS
from baton.caps.model import NAMES, Caps, check_cap
from baton.errors import BadInput
from baton.forge.data.appkey import AppKey
from baton.forge.data.kind import KindFacts, Kinds
from baton.forge.data.model import Budget, Trigger
from baton.keys import parse_repo
from baton.models import Access, Environment, OnInstructions, OnPermission
from baton.settings import FORGE_CONFIG_ENV, read_config
from baton.settings import FORGE_TABLES as TABLES  # the tables of config.toml this module owns

PERMISSIONS = ("none", "read", "triage", "write", "maintain", "admin")  # a forge's, lowest first
TRUSTED_LEVELS = ("write", "maintain", "admin")  # what ``trusted`` may ask for

# a forge's name appears in conversations ("github:acme/api#7") and URLs: no ':', '#', '/'
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
# GitHub logins are [A-Za-z0-9-]{1,39}, Gitea's also take '.' and '_'; apps' logins end in "[bot]"
_LOGIN_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,99}(\[bot\])?")
_OWNER_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,99}")
_REPO_NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,100}")
_ENV_NAME_RE = re.compile(r"[A-Z_][A-Z0-9_]{0,127}")  # upper case: a (lower-case) token is refused
_BARE_KEY_RE = re.compile(r"[A-Za-z0-9_-]+")
_MAX_LABEL = 50  # GitHub's limit for a label's name
_LABEL_RE = re.compile(rf"[^\x00-\x1f\x7f]{{1,{_MAX_LABEL}}}")
_SCP_RE = re.compile(r"(?:[A-Za-z0-9._-]+@)?[A-Za-z0-9.-]+:(?!//)[^\s:]\S*")  # git@host:owner/name.git
_MAX_URL = 2048


class BotPolicy(StrEnum):
    """Which bots' words may become turns."""

    NONE = "none"  # no bot's (the default: two bots replying to each other trigger nothing)
    ALLOW_LIST = "allow-list"  # only those named in ``bot_allow``, without a permission check
    ALL = "all"  # bots are judged like people (their permission on the repo)


class Reply(StrEnum):
    """Where the agent's answer of a forge turn goes: a comment of its own, the status comment, nowhere."""

    COMMENT = "comment"  # a reply in the conversation, beside the one status comment
    STATUS = "status"  # a section of the status comment
    NONE = "none"  # only on baton's own surfaces (the dashboard, the API)


class MergePolicy(StrEnum):
    """What baton does with the pull request it opened for a thread once it is approved and green."""

    OFF = "off"  # nothing: a person marks it ready and merges it
    READY = "ready"  # mark it ready for review (GitHub's draft flag; Gitea's "WIP:" title prefix)
    AUTO = "auto"  # mark it ready and enable the forge's own auto-merge (baton never merges itself)


class Checks(StrEnum):
    """Whether the repository's heads get checks: what the merge policy makes of a head none reported on."""

    EXPECTED = "expected"  # CI runs here: a head no check run or status reported on yet waits for one
    NONE = "none"  # no CI: a head with no check is not waited for (a check that reports still counts)


class Untrusted(StrEnum):
    """What becomes of an untrusted actor's words on a bound thread."""

    DROP = "drop"  # nothing (audited)
    QUOTE = "quote"  # quoted, attributed context in a turn at read access: never an instruction


@dataclass(frozen=True)
class ForgeConfig:
    """One ``[forge.<name>]`` table. Holds the *name* of the token's variable, never the token. A
    GitHub App (``app``) has no token variable; its ``user`` and ``mention`` may be "" until read from
    GitHub (the App's bot, ``<slug>[bot]``, and ``@<slug>``:
    :func:`baton.forge.kinds.github.app.identified`)."""

    name: str
    kind: str  # a registered kind's name (:class:`~baton.forge.data.model.ForgeKind` names baton's)
    api_url: str  # no trailing slash
    web_url: str  # no trailing slash
    token_env: str
    user: str  # baton's own login there: its comments and pushes never trigger anything
    mention: str  # "@baton"
    app: AppKey | None = None  # a GitHub App: tokens minted with its key instead of token_env's

    def token(self, environ: Mapping[str, str] = os.environ) -> str:
        """The token from the environment; BadInput naming the variable when it is unset or empty."""
        if self.app is not None:
            raise BadInput(
                f"forge {self.name!r} authenticates as a GitHub App (app_id {self.app.app_id}): "
                "it has no token variable"
            )
        value = environ.get(self.token_env, "")
        if not value.strip():
            raise BadInput(
                f"forge {self.name!r}: the environment variable {self.token_env} (its token_env) "
                "is not set or is empty"
            )
        return value.strip()

    def clone_url(self, repo: str) -> str:
        """What baton clones and pushes for ``owner/name`` (no credentials: GIT_ASKPASS gives them)."""
        return f"{self.web_url}/{repo}.git"


@dataclass(frozen=True)
class TriggerConfig:
    """One enabled trigger of a repository."""

    trigger: Trigger
    access: Access
    agent: str | None = None  # None: the repository's agent
    names: tuple[str, ...] = ()  # the label trigger's labels

    def matches_label(self, label: str) -> bool:
        """Whether ``label`` is one of this trigger's (forges treat labels case-insensitively)."""
        return label.casefold() in {n.casefold() for n in self.names}


class _DefaultTriggers(dict[Trigger, TriggerConfig]):
    """Marks a RepoConfig built without triggers: it gets the mention only, at its access."""


@dataclass(frozen=True)
class RepoConfig:
    """One ``[repo."owner/name"]`` table: who may steer baton there, and how its turns run."""

    name: str  # the forge's full name, as the operator wrote it
    forge: str  # the configured forge's name
    agent: str = "claude"
    access: Access = Access.EDIT  # trusted turns' access (feedback on a bound thread)
    trusted: str = "write"  # the lowest permission that may start or steer a run
    allow: tuple[str, ...] = ()  # always trusted (adds to the permission rule)
    deny: tuple[str, ...] = ()  # never trusted
    only_allow: bool = False  # only ``allow`` is trusted (narrows)
    bots: BotPolicy = BotPolicy.NONE
    bot_allow: tuple[str, ...] = ()
    untrusted: Untrusted = Untrusted.DROP
    budget: Budget = field(default_factory=Budget)
    draft: bool = True  # baton's pull requests open as drafts
    reply: Reply = Reply.COMMENT  # where the agent's answer of each turn is posted
    on_permission: OnPermission = OnPermission.REFUSE  # an ACP agent's permission above access: ask?
    # its instruction files changed under a resumed thread: tell it how, or start fresh (None: the setting)
    on_instructions_change: OnInstructions | None = None
    resolve_threads: bool = False  # resolve the inline comments' threads the agent accounted done
    merge: MergePolicy = MergePolicy.OFF  # baton's PR, approved and green: ready, auto-merge, or nothing
    checks: Checks = Checks.EXPECTED  # "none": no CI, a head with no check is green to the merge policy
    base: str | None = None  # the branch PRs target; None: the repository's default branch
    clone_url: str | None = None  # None: the forge's <web_url>/<owner>/<name>.git
    timeout: float | None = None  # a turn's timeout in seconds; None: the settings' run_timeout
    setup: str | None = (
        None  # the environment's setup command, over the repository's own (docs/environment.md)
    )
    caps: Caps = field(default_factory=Caps)  # each thread's spending caps (max_usd, ...; the settings' too)
    egress: str | None = None  # where its agents may connect (baton.allowlist); None: the setting egress
    environment: Environment | None = None  # host or container (its devcontainer's image); None: the setting
    triggers: dict[Trigger, TriggerConfig] = field(default_factory=_DefaultTriggers)

    def __post_init__(self) -> None:
        if type(self.triggers) is _DefaultTriggers:
            object.__setattr__(
                self, "triggers", {Trigger.MENTION: TriggerConfig(Trigger.MENTION, self.access)}
            )

    def trigger(self, trigger: Trigger) -> TriggerConfig | None:
        """The trigger's configuration; None when it is not enabled. FEEDBACK (on a bound thread) is
        always there, at the repository's access."""
        if trigger is Trigger.FEEDBACK:
            return TriggerConfig(Trigger.FEEDBACK, self.access)
        return self.triggers.get(trigger)

    def refuses(self, trigger: Trigger, label: str | None = None) -> str | None:
        """Why an issue's label or assignment is no trigger here (its trigger is not enabled, or the
        label is not one of its ``names``), bound or not: it is no event, so it never re-runs a bound
        issue's task. None for one that is, and for mentions and feedback (comments on a bound thread)."""
        if trigger not in (Trigger.LABEL, Trigger.ASSIGN):
            return None
        config = self.triggers.get(trigger)
        if config is None:
            return f"the {trigger.value} trigger is not enabled for {self.name}"
        if trigger is Trigger.LABEL and not config.matches_label(label or ""):
            return f"label {label!r} is not one of {', '.join(config.names) or 'the trigger labels'}"
        return None

    def agent_for(self, trigger: Trigger) -> str:
        """The agent a thread started by ``trigger`` runs: the trigger's own, else the repository's."""
        config = self.trigger(trigger)
        return (config.agent if config else None) or self.agent

    def repo_url(self, forge: ForgeConfig) -> str:
        """What baton clones and pushes: ``clone_url``, else the forge's URL of the repository."""
        return self.clone_url or forge.clone_url(self.name)


@dataclass(frozen=True)
class ForgeSettings:
    """Every configured forge and repository; from :func:`read_forges`."""

    forges: dict[str, ForgeConfig] = field(default_factory=dict)
    repos: dict[tuple[str, str], RepoConfig] = field(default_factory=dict)  # (forge, full name lower)
    source: Path | None = None  # the file they came from

    def repo(self, forge: str, full_name: str) -> RepoConfig | None:
        """The repository's configuration (its full name in any case, as forges treat it); None when
        it is not configured."""
        return self.repos.get((forge, full_name.casefold()))

    def forges_of_kind(self, kind: str) -> list[ForgeConfig]:
        return [f for f in self.forges.values() if f.kind == kind]

    def egress_of(self, repo: str) -> str | None:
        """The ``egress`` of the repository table whose clone URL is the repository ``repo`` (a URL,
        compared by slug), so a run of it through any door (the CLI, the API, MCP) gets the list the
        forge's turns do; None when no table names it, or it sets none."""
        try:
            wanted = parse_repo(repo).slug
        except BadInput:
            return None
        for config in self.repos.values():
            forge = self.forges.get(config.forge)
            if config.egress is not None and forge is not None:
                with contextlib.suppress(BadInput):
                    if parse_repo(config.repo_url(forge)).slug == wanted:
                        return config.egress
        return None

    def forge_of_kind(self, kind: str, html_url: str | None = None) -> ForgeConfig | None:
        """The forge a delivery to ``/webhooks/<kind>`` came from: the only one of that kind, or, with
        several, the one whose ``web_url`` the delivery's repository URL (``html_url``) starts with;
        None when there is none or it stays ambiguous."""
        found = self.forges_of_kind(kind)
        if len(found) > 1 and html_url:
            url = html_url.rstrip("/").casefold()
            found = [f for f in found if url.startswith(f.web_url.casefold() + "/")]
        return found[0] if len(found) == 1 else None


# --- reading ---------------------------------------------------------------------------------------


def read_forges(
    home: Path, kinds: Kinds, environ: Mapping[str, str] = os.environ, agents: Iterable[str] | None = None
) -> ForgeSettings:
    """Read the ``forge`` and ``repo`` tables of ``home/config.toml`` (or of ``$BATON_FORGE_CONFIG``);
    an empty ForgeSettings when there are none. ``kinds``: the registered kinds' facts (their defaults:
    :func:`baton.forge.kinds.configured.load_forges` gives the registry's); ``agents``: the names a
    repository's or trigger's agent may be (default: baton's agent registry).

    Nothing typed here is cached (the reader keeps only parses, by content): the service loads once at
    start and on reload, and each call types the tables afresh."""
    if agents is None:
        agents = AGENTS
    source, data = _read(home, environ)
    if source is None:
        return ForgeSettings()
    known_agents = tuple(agents)
    forges = {}
    for name, table in _table(data.get("forge", {}), "forge", source).items():
        forges[name] = _forge(name, table, source, home, kinds)
    repos: dict[tuple[str, str], RepoConfig] = {}
    for name, table in _table(data.get("repo", {}), "repo", source).items():
        repo = _repo(name, table, source, forges, known_agents, kinds)
        ident = (repo.forge, name.casefold())
        if ident in repos:
            raise BadInput(
                f"{source}: {_key('repo', name)} names the repository {repos[ident].name!r} again "
                "(forges compare names in any case)"
            )
        repos[ident] = repo
    return ForgeSettings(forges, repos, source)


def _read(home: Path, environ: Mapping[str, str]) -> tuple[Path | None, dict[str, Any]]:
    config = home / "config.toml"
    data: dict[str, Any] = {k: v for k, v in read_config(config).data.items() if k in TABLES}
    other = environ.get(FORGE_CONFIG_ENV, "")
    if not other:
        return (config if data else None), data
    path = Path(other).expanduser()
    path = path if path.is_absolute() else home / path
    if not path.is_file():
        raise BadInput(f"${FORGE_CONFIG_ENV} names {path}, which is not a file")
    if data:
        raise BadInput(
            f"{config} has [forge] or [repo] tables, and ${FORGE_CONFIG_ENV} names {path}: keep them in one"
        )
    data = dict(read_config(path).data)
    for name in data:
        if name not in TABLES:
            raise BadInput(f"{path}: unknown key {_key(name)} (known: forge, repo)")
    return path, data


def _key(*parts: str) -> str:
    """A dotted TOML key, quoting the parts that are not bare keys: ``repo."acme/api".agent``."""
    return ".".join(p if _BARE_KEY_RE.fullmatch(p) else json.dumps(p) for p in parts)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _table(value: Any, key: str, source: Path) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadInput(f"{source}: {key} must be a table, not {_shown(value)}")
    return value


class _Fields:
    """One table's values, read by type, each error naming the file and the key."""

    def __init__(self, data: Any, source: Path, parts: tuple[str, ...], known: Iterable[str]) -> None:
        self.source, self.parts = source, parts
        self.data = _table(data, _key(*parts), source)
        known = tuple(known)
        for name in self.data:
            if name not in known:
                raise BadInput(f"{source}: unknown key {self.key(name)} (known: {', '.join(known)})")

    def key(self, name: str) -> str:
        return _key(*self.parts, name)

    def error(self, name: str, problem: str) -> BadInput:
        return BadInput(f"{self.source}: {self.key(name)} {problem}")

    def has(self, name: str) -> bool:
        return name in self.data

    def text(self, name: str, default: str | None = None) -> str | None:
        value = self.data.get(name, default)
        if value is not None and not isinstance(value, str):
            raise self.error(name, f"must be a string, not {_shown(value)}")
        return value

    def required(self, name: str, why: str) -> str:
        value = self.text(name)
        if not value:
            raise self.error(name, f"is required: {why}")
        return value

    def choice(self, name: str, choices: Iterable[str], default: str) -> str:
        value = self.text(name, default) or ""
        choices = tuple(choices)
        if value not in choices:
            raise self.error(name, f"must be one of {', '.join(choices)}, not {_shown(value)}")
        return value

    def flag(self, name: str, default: bool) -> bool:
        value = self.data.get(name, default)
        if not isinstance(value, bool):
            raise self.error(name, f"must be true or false, not {_shown(value)}")
        return value

    def count(self, name: str, default: int) -> int:
        value = self.data.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.error(name, f"must be a whole number ≥ 0, not {_shown(value)}")
        return value

    def seconds(self, name: str) -> float | None:
        value = self.data.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
            raise self.error(name, f"must be a number of seconds > 0, not {_shown(value)}")
        return float(value)

    def words(self, name: str, pattern: re.Pattern[str], what: str) -> tuple[str, ...]:
        value = self.data.get(name, [])
        if not isinstance(value, list):
            raise self.error(name, f"must be a list of {what}, not {_shown(value)}")
        for item in value:
            if not isinstance(item, str) or not pattern.fullmatch(item):
                raise self.error(name, f"must be a list of {what}; {_shown(item)} is not one")
        return tuple(value)

    def login(self, name: str, value: str) -> str:
        if not _LOGIN_RE.fullmatch(value):
            raise self.error(name, f"must be a login (letters, digits, '.', '_', '-'), not {_shown(value)}")
        return value

    def url(self, name: str, default: str | None = None) -> str | None:
        """An http(s) URL without credentials, query or fragment; never echoed (it may hold a secret)."""
        value = self.text(name, default)
        if value is None:
            return None
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018  (a bad port raises here)
        except ValueError:
            parts = None
        if (
            parts is None
            or parts.scheme not in ("http", "https")
            or not parts.hostname
            or "@" in parts.netloc
            or parts.query
            or parts.fragment
            or len(value) > _MAX_URL
            or any(ord(c) < 33 for c in value)
        ):
            raise self.error(name, "must be an http(s) URL without credentials, query or fragment")
        return value.rstrip("/")


_FORGE_KEYS = (
    "kind", "api_url", "web_url", "token_env", "user", "mention",
    "app_id", "private_key_file", "private_key_env",
)  # fmt: skip
_APP_KEYS = ("app_id", "private_key_file", "private_key_env")


def _forge(name: str, data: Any, source: Path, home: Path, known: Kinds) -> ForgeConfig:
    fields = _Fields(data, source, ("forge", name), _FORGE_KEYS)
    if not _NAME_RE.fullmatch(name):
        raise BadInput(
            f"{source}: {_key('forge', name)}: a forge's name is 1-64 letters, digits, '_' or '-' "
            "(it is part of conversations and routes)"
        )
    kinds = list(known)
    facts = known[fields.choice("kind", kinds, name if name in kinds else "")]
    kind = facts.kind
    api_url, web_url = _urls(fields, facts)
    if any(fields.has(key) for key in _APP_KEYS):
        return _app_forge(fields, name, facts, api_url, web_url, home)
    token_env = fields.text("token_env", f"BATON_{kind.upper()}_TOKEN") or ""
    if not _ENV_NAME_RE.fullmatch(token_env):
        # never echoed: it may be the token itself, pasted in the wrong place
        raise fields.error(
            "token_env",
            "must be the NAME of the environment variable holding the token "
            "(upper-case letters, digits and '_'), never the token itself",
        )
    user = fields.login(
        "user",
        fields.required(
            "user", "baton's own login on the forge (its own comments and pushes must never trigger it)"
        ),
    )
    mention = fields.text("mention", f"@{user}") or ""
    if not mention.startswith("@") or not _LOGIN_RE.fullmatch(mention[1:]):
        raise fields.error("mention", f"must be '@' and a name, such as '@baton', not {_shown(mention)}")
    return ForgeConfig(name, kind, api_url, web_url, token_env, user, mention)


def _app_forge(
    fields: _Fields, name: str, facts: KindFacts, api_url: str, web_url: str, home: Path
) -> ForgeConfig:
    """A GitHub App: ``app_id`` and exactly one of ``private_key_file`` and ``private_key_env``, no
    ``token_env``; ``user`` and ``mention`` optional (read from GitHub: the App's bot and its slug)."""
    kind = facts.kind
    if not facts.apps:
        raise fields.error("app_id", f"is a GitHub App's: a {kind} forge authenticates with token_env")
    if fields.has("token_env"):
        raise fields.error(
            "token_env", "and app_id: a forge authenticates with a token or as a GitHub App, not both"
        )
    app_id = fields.data.get("app_id")
    if isinstance(app_id, str) and app_id.isdigit() and len(app_id) <= 18:
        app_id = int(app_id)
    if isinstance(app_id, bool) or not isinstance(app_id, int) or not 0 < app_id < 2**63:
        raise fields.error("app_id", "must be the App's id, a whole number > 0 (its settings page: App ID)")
    has_file, has_env = fields.has("private_key_file"), fields.has("private_key_env")
    if has_file == has_env:
        raise fields.error(
            "private_key_file",
            "or private_key_env (not both) is required with app_id: where the App's private key is — "
            "a file (a path) or the NAME of an environment variable holding the PEM",
        )
    key = (
        AppKey(app_id, key_file=_key_file(fields, home))
        if has_file
        else AppKey(app_id, key_env=_key_env(fields))
    )
    user = fields.text("user") or ""
    if user:
        fields.login("user", user)
    mention = fields.text("mention") or ""
    if mention and (not mention.startswith("@") or not _LOGIN_RE.fullmatch(mention[1:])):
        raise fields.error("mention", f"must be '@' and a name, such as '@baton', not {_shown(mention)}")
    return ForgeConfig(name, kind, api_url, web_url, "", user, mention, app=key)


def _key_file(fields: _Fields, home: Path) -> Path:
    """``private_key_file``: a path (never echoed: a pasted key is refused without being shown)."""
    value = fields.text("private_key_file") or ""
    if not value or len(value) > 4096 or "\x00" in value or "\n" in value or "-----BEGIN" in value:
        raise fields.error(
            "private_key_file",
            "must be the path of the App's private key file (.pem), never the key itself",
        )
    path = Path(value).expanduser()
    return path if path.is_absolute() else home / path


def _key_env(fields: _Fields) -> str:
    value = fields.text("private_key_env") or ""
    if not _ENV_NAME_RE.fullmatch(value):
        # never echoed: it may be the key itself, pasted in the wrong place
        raise fields.error(
            "private_key_env",
            "must be the NAME of the environment variable holding the App's private key "
            "(upper-case letters, digits and '_'), never the key itself",
        )
    return value


def _urls(fields: _Fields, facts: KindFacts) -> tuple[str, str]:
    """The API's and the web's URLs; one is derived from the other where the forge's layout allows."""
    api_url, web_url = fields.url("api_url"), fields.url("web_url")
    default_api, default_web, suffix, kind = facts.api_url, facts.web_url, facts.api_suffix, facts.kind
    if api_url is None and web_url is None:
        api_url, web_url = default_api, default_web
    elif api_url is None and web_url is not None:
        api_url = default_api if web_url == default_web else web_url + suffix
    elif web_url is None and api_url is not None:
        web_url = default_web if api_url == default_api else api_url.removesuffix(suffix)
        if web_url == api_url:
            raise fields.error("web_url", f"is required when api_url does not end in {suffix}")
    if api_url is None or web_url is None:
        raise fields.error("api_url", f"is required for a {kind} forge (such as https://HOST{suffix})")
    return api_url, web_url


_REPO_KEYS = (
    "forge", "agent", "access", "trusted", "allow", "deny", "only_allow", "bots", "bot_allow",
    "untrusted", "ci_budget", "daily_turns", "draft", "reply", "base", "clone_url", "timeout", "triggers",
    "on_permission",
    "on_instructions_change",
    "resolve_threads",
    "merge",
    "checks",
    "setup",
    "max_usd", "max_tokens", "max_minutes", "max_turns",
    "egress",
    "environment",
)  # fmt: skip


def _repo(
    name: str, data: Any, source: Path, forges: dict[str, ForgeConfig], agents: tuple[str, ...], kinds: Kinds
) -> RepoConfig:
    fields = _Fields(data, source, ("repo", name), _REPO_KEYS)
    forge = _repo_forge(fields, forges)
    _repo_name(name, source, kinds[forges[forge].kind])
    access = Access(fields.choice("access", [a.value for a in Access], Access.EDIT.value))
    # any kind's role names (GitLab's "developer", ...) are taken on any forge: the permission each is
    roles = {role: level for facts in kinds.values() for role, level in facts.roles.items()}
    trusted = fields.choice("trusted", (*TRUSTED_LEVELS, *roles), "write")
    return RepoConfig(
        name=name,
        forge=forge,
        agent=_agent(fields, "agent", fields.text("agent", "claude") or "", agents),
        access=access,
        trusted=roles.get(trusted, trusted),
        allow=fields.words("allow", _LOGIN_RE, "logins"),
        deny=fields.words("deny", _LOGIN_RE, "logins"),
        only_allow=fields.flag("only_allow", False),
        bots=BotPolicy(fields.choice("bots", [b.value for b in BotPolicy], BotPolicy.NONE.value)),
        bot_allow=fields.words("bot_allow", _LOGIN_RE, "logins"),
        untrusted=Untrusted(fields.choice("untrusted", [u.value for u in Untrusted], Untrusted.DROP.value)),
        budget=Budget(per_failure=fields.count("ci_budget", 3), per_day=fields.count("daily_turns", 20)),
        draft=fields.flag("draft", True),
        reply=Reply(fields.choice("reply", [r.value for r in Reply], Reply.COMMENT.value)),
        on_permission=OnPermission(
            fields.choice("on_permission", [p.value for p in OnPermission], OnPermission.REFUSE.value)
        ),
        on_instructions_change=_on_instructions(fields),
        resolve_threads=fields.flag("resolve_threads", False),
        merge=MergePolicy(fields.choice("merge", [m.value for m in MergePolicy], MergePolicy.OFF.value)),
        checks=Checks(fields.choice("checks", [c.value for c in Checks], Checks.EXPECTED.value)),
        base=_branch(fields),
        clone_url=_clone_url(fields),
        timeout=fields.seconds("timeout"),
        setup=fields.text("setup") or None,
        caps=_caps(fields),
        egress=_egress(fields),
        environment=_environment(fields),
        triggers=_triggers(fields, access, agents),
    )


def _egress(fields: _Fields) -> str | None:
    """``egress``: hosts and presets (a list, or one comma-separated string), checked; None: the
    setting's."""
    if not fields.has("egress"):
        return None
    value = fields.data.get("egress")
    if not (isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))):
        raise fields.error(
            "egress", 'must be a list of hosts and presets, such as ["registries", "pypi.org"]'
        )
    try:
        return allowlist.parse(value, "egress").text
    except BadInput as exc:
        raise fields.error("egress", str(exc).removeprefix("egress: ")) from None


def _environment(fields: _Fields) -> Environment | None:
    """``environment``: ``host`` or ``container``; None (the setting's) when absent."""
    if not fields.has("environment"):
        return None
    return Environment(fields.choice("environment", [e.value for e in Environment], "host"))


def _on_instructions(fields: _Fields) -> OnInstructions | None:
    """``on_instructions_change``: ``tell`` or ``fresh``; None (the setting's) when absent."""
    if not fields.has("on_instructions_change"):
        return None
    return OnInstructions(fields.choice("on_instructions_change", [o.value for o in OnInstructions], "tell"))


def _caps(fields: _Fields) -> Caps:
    """``max_usd``, ``max_tokens``, ``max_minutes``, ``max_turns``: each thread's spending caps."""
    found: dict[str, float | None] = {}
    for measure, name in NAMES.items():
        if fields.has(name):
            try:
                found[measure.value] = check_cap(measure, fields.data.get(name), name)
            except BadInput as exc:
                raise fields.error(name, str(exc).removeprefix(f"{name} ")) from None
    return Caps(**found)


def _repo_name(name: str, source: Path, facts: KindFacts) -> None:
    """``owner/name``; where the kind's owners nest (GitLab), also ``group/subgroup/.../name``."""
    *owners, repo_name = name.split("/")
    nested = len(owners) <= facts.max_groups
    if (
        not owners
        or (len(owners) > 1 and not nested)
        or not all(_OWNER_RE.fullmatch(owner) for owner in owners)
        or not _REPO_NAME_RE.fullmatch(repo_name)
        or repo_name in (".", "..")
    ):
        groups = f" (on {facts.title}: 'group/subgroup/name')" if facts.max_groups else ""
        raise BadInput(
            f"{source}: {_key('repo', name)}: a repository is 'owner/name'{groups} (letters, digits, '.', "
            "'_', '-'; at most 100 each), as the forge names it"
        )


def _repo_forge(fields: _Fields, forges: dict[str, ForgeConfig]) -> str:
    if not forges:
        raise fields.error("forge", "names no configured forge: add a [forge.<name>] table")
    if not fields.has("forge") and len(forges) == 1:
        return next(iter(forges))
    name = fields.required("forge", f"several forges are configured ({', '.join(forges)})")
    if name not in forges:
        raise fields.error("forge", f"names no configured forge: {_shown(name)} (known: {', '.join(forges)})")
    return name


def _agent(fields: _Fields, key: str, name: str, agents: tuple[str, ...]) -> str:
    if name not in agents:
        raise fields.error(key, f"names no known agent: {_shown(name)} (known: {', '.join(agents)})")
    return name


def _branch(fields: _Fields) -> str | None:
    base = fields.text("base")
    if base is not None and (
        not base
        or base.startswith(("-", "/", "."))
        or base.endswith(("/", ".", ".lock"))
        or ".." in base
        or len(base) > 255
        or any(ord(c) < 33 or c in "~^:?*[\\" for c in base)
    ):
        raise fields.error("base", f"must be a branch name, not {_shown(base)}")
    return base


def _clone_url(fields: _Fields) -> str | None:
    """https:// or http:// without credentials (GIT_ASKPASS gives them), ssh://, git@host:path, or a
    local path; never echoed."""
    value = fields.text("clone_url")
    if value is None:
        return None
    bad = not value or len(value) > _MAX_URL or any(ord(c) < 33 for c in value) or value.startswith("-")
    if not bad and value.startswith(("http://", "https://")):
        fields.url("clone_url")  # raises on credentials, query, fragment
    elif not bad and "://" in value:
        bad = urlsplit(value).scheme not in ("ssh", "git", "file")
    elif not bad:  # never git's "transport::address" (ext:: runs a command) nor a relative path
        bad = "::" in value or not (value.startswith("/") or _SCP_RE.fullmatch(value))
    if bad:
        raise fields.error(
            "clone_url",
            "must be an http(s) URL without credentials, an ssh:// or scp-like "
            "(git@host:owner/name.git) address, or a local path",
        )
    return value


def _triggers(fields: _Fields, access: Access, agents: tuple[str, ...]) -> dict[Trigger, TriggerConfig]:
    if not fields.has("triggers"):
        return {Trigger.MENTION: TriggerConfig(Trigger.MENTION, access)}
    names = [t.value for t in Trigger if t is not Trigger.FEEDBACK]
    table = _Fields(fields.data["triggers"], fields.source, (*fields.parts, "triggers"), names)
    found = {}
    for name in table.data:
        trigger = Trigger(name)
        known = ("access", "agent", "names") if trigger is Trigger.LABEL else ("access", "agent")
        one = _Fields(table.data[name], fields.source, (*table.parts, name), known)
        agent = one.text("agent")
        labels = (
            one.words("names", _LABEL_RE, f"labels (1-{_MAX_LABEL} characters)")
            if one.has("names")
            else ("baton",)
        )
        if not labels:
            raise one.error("names", "must name at least one label")
        found[trigger] = TriggerConfig(
            trigger,
            Access(one.choice("access", [a.value for a in Access], access.value)),
            _agent(one, "agent", agent, agents) if agent is not None else None,
            labels if trigger is Trigger.LABEL else (),
        )
    return found
