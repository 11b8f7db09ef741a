"""Where a walled agent may connect through baton's egress proxy: the ``egress`` setting (global, a
repository's ``[repo."…"] egress``, a run's own) parsed into a :class:`Policy`. Each entry is a preset
(``open``: no proxy, as before; ``none``: nothing; ``registries``: the package registries; ``remote``:
the host of the run's repository's HTTP(S) remote, resolved per run by :func:`with_remote`), or a host
(``pypi.org``, ``*.example.com``: any name beneath it), optionally with a port (``host:8443``; without
one, 80 and 443) and the HTTP methods plain HTTP may use (``api.example.com GET HEAD``; a CONNECT tunnel
carries HTTPS, whose methods the proxy cannot see). What is refused and why: docs/security.md.
:class:`Upstream`: the operator's own HTTP proxy the egress proxy connects through (``egress_upstream``,
else ``HTTPS_PROXY``/``HTTP_PROXY`` of baton's environment minus ``NO_PROXY``; ``direct``: never),
every allowed connection a ``CONNECT`` tunnel through it (:func:`baton.sandbox.proxy.tunnel`).
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from baton.errors import BadInput

OPEN, NONE, REGISTRIES, REMOTE = "open", "none", "registries", "remote"
DEFAULT = f"{REGISTRIES}, {REMOTE}"  # the setting's default: closed, yet ordinary work succeeds
WEB_PORTS = (80, 443)
TLS_PORT = 443  # the one port a method-restricted entry may be tunnelled to (HTTPS)
# The package registries an install reaches (pip/uv, npm/pnpm/yarn, cargo, Go, RubyGems, Maven, NuGet).
REGISTRY_HOSTS = (
    *("pypi.org", "files.pythonhosted.org", "registry.npmjs.org", "registry.yarnpkg.com"),
    *("crates.io", "index.crates.io", "static.crates.io", "proxy.golang.org", "sum.golang.org"),
    *("rubygems.org", "index.rubygems.org", "repo.maven.apache.org", "repo1.maven.org"),
    *("api.nuget.org", "registry.bower.io"),
)
_HOST = re.compile(r"(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*")
_METHOD = re.compile(r"[A-Z]{1,20}")


@dataclass(frozen=True)
class Refusal:
    """One refused connection, for the audit log and the run's events."""

    host: str
    port: int
    method: str
    reason: str


@dataclass(frozen=True)
class Rule:
    """One allowed host: a name, or ``*.name`` for any name beneath it."""

    host: str
    ports: tuple[int, ...] = WEB_PORTS
    methods: frozenset[str] = frozenset()  # plain HTTP's allowed methods; empty: any

    def matches(self, host: str, port: int) -> bool:
        if port not in self.ports:
            return False
        if self.host.startswith("*."):
            return host.endswith(self.host[1:])
        return host == self.host


@dataclass(frozen=True)
class Policy:
    """A run's egress: ``open`` (no proxy at all) or the rules of its allow-list."""

    open: bool
    rules: tuple[Rule, ...] = ()
    text: str = ""  # as the operator wrote it, for messages
    remote: bool = False  # ``remote`` is listed: the run's repository's host joins (:func:`with_remote`)

    def refusal(self, host: str, port: int, method: str) -> str | None:
        """Why a connection to ``host``:``port`` with ``method`` (``CONNECT`` for a tunnel) is refused,
        None when it is allowed. Under entries that all name methods, a tunnel goes only to
        :data:`TLS_PORT`: one to another port (80) would carry plain HTTP whose methods the proxy never
        sees (plain HTTP goes through the proxy in the absolute-URI form, its method judged)."""
        host = host.lower().rstrip(".")
        found = [rule for rule in self.rules if rule.matches(host, port)]
        if not found:
            return f"{host}:{port} is not on this run's egress allow-list ({self.text or NONE})"
        restricted = all(rule.methods for rule in found)
        if method == "CONNECT" and restricted and port != TLS_PORT:
            return (
                f"a tunnel to {host}:{port} would carry methods this run's egress allow-list does not "
                f"allow ({self.text}): send plain HTTP through the proxy instead"
            )
        if method != "CONNECT" and all(rule.methods and method not in rule.methods for rule in found):
            return f"{method} to {host}:{port} is not allowed by this run's egress allow-list ({self.text})"
        return None

    def within(self, outer: Policy) -> bool:
        """Whether this policy allows nothing ``outer`` refuses: each of its hosts (a wildcard only under
        one of ``outer``'s as wide), on each of its ports, and no method ``outer`` refuses."""
        if outer.open:
            return True
        if self.open or (self.remote and not outer.remote):
            return False
        return all(_covered(rule, outer.rules) for rule in self.rules)

    def names(self, host: str) -> bool:
        """Whether an entry names ``host`` itself (an address written out: the operator meant it)."""
        return any(rule.host == host.lower() for rule in self.rules)


def parse(value: str | Iterable[str], where: str = "setting 'egress'") -> Policy:
    """The policy of an ``egress`` value: a comma-separated string or a list of entries (see the
    module); BadInput naming ``where`` and the entry that is none."""
    items = [value] if isinstance(value, str) else list(value)
    entries = [e.strip() for item in items for e in str(item).split(",") if e.strip()]
    text = ", ".join(entries)
    if not entries or OPEN in entries:
        if len(entries) > 1:
            raise BadInput(f"{where}: 'open' allows everything and takes no other entry, not {text!r}")
        return Policy(True, text=OPEN)
    rules: list[Rule] = []
    for entry in entries:
        if entry in (NONE, REMOTE):
            continue
        if entry == REGISTRIES:
            rules += [Rule(host) for host in REGISTRY_HOSTS]
            continue
        rules.append(_rule(entry, where))
    return Policy(False, tuple(rules), text, REMOTE in entries)


def remote_rule(url: str) -> Rule | None:
    """The entry for the host of a repository's remote ``url``: an HTTP(S) one (the proxy carries HTTP),
    on its own port, else 80 and 443; None for any other remote (a path, SSH)."""
    parts = urlsplit(url) if "://" in url else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    try:
        port = parts.port
    except ValueError:
        return None
    return Rule(parts.hostname.lower(), (port,) if port else WEB_PORTS)


def with_remote(policy: Policy, url: str, always: bool = False) -> Policy:
    """``policy`` with the host of the repository's remote ``url`` among its rules, where it lists
    ``remote`` (or ``always``)."""
    rule = remote_rule(url) if (policy.remote or always) and not policy.open else None
    if rule is None:
        return policy
    return Policy(False, (*policy.rules, rule), policy.text, policy.remote)


def _rule(entry: str, where: str) -> Rule:
    words = entry.split()
    host, _, port = words[0].lower().rpartition(":") if ":" in words[0] else (words[0].lower(), "", "")
    methods = frozenset(w.upper() for w in words[1:])
    bad = not _HOST.fullmatch(host) or any(not _METHOD.fullmatch(m) for m in methods)
    if bad or (port and not (port.isdigit() and 0 < int(port) < 65536)):
        raise BadInput(
            f"{where}: {entry!r} is no egress entry (a preset: open, none, registries, remote; or a host "
            "such as pypi.org or *.example.com, optionally :PORT and HTTP methods: 'api.example.com GET "
            "HEAD')"
        )
    return Rule(host, (int(port),) if port else WEB_PORTS, methods)


def _covered(rule: Rule, outer: tuple[Rule, ...]) -> bool:
    """Whether the rules ``outer`` allow all that ``rule`` does."""
    for port in rule.ports:
        found = [o for o in outer if port in o.ports and _wider(o.host, rule.host)]
        if not found or (all(o.methods for o in found) and not rule.methods):
            return False
        methods = frozenset().union(*(o.methods for o in found)) if all(o.methods for o in found) else None
        if methods is not None and not rule.methods <= methods:
            return False
    return True


def _wider(outer: str, host: str) -> bool:
    """Whether the host entry ``outer`` matches every name the entry ``host`` does."""
    if outer == host:
        return True
    return outer.startswith("*.") and host.removeprefix("*.").endswith(outer[1:])


# The operator's own proxy (egress_upstream), which the egress proxy connects through.
DIRECT = "direct"


@dataclass(frozen=True)
class Upstream:
    """An HTTP proxy to tunnel through, and the hosts that go around it."""

    host: str
    port: int
    auth: str | None = None  # the Proxy-Authorization value; never logged
    bypass: str = ""  # NO_PROXY's value (when it came from the environment)

    def applies(self, host: str) -> bool:
        """Whether a connection to ``host`` goes through this proxy: not when ``NO_PROXY`` spares it (as
        curl reads it: ``*``, or a name that is the host or a domain above it; a port is ignored)."""
        host = host.lower().rstrip(".")
        for entry in self.bypass.lower().split(","):
            name = entry.strip().rsplit(":", 1)[0] if entry.count(":") == 1 else entry.strip()
            name = name.lstrip("*").lstrip(".")
            if entry.strip() == "*" or (name and (host == name or host.endswith("." + name))):
                return False
        return True

    def __repr__(self) -> str:  # the credential never shows in a log or a traceback
        return f"Upstream({self.host}:{self.port})"


def parse_upstream(url: str, where: str = "setting 'egress_upstream'", bypass: str = "") -> Upstream:
    """An ``http://[user:password@]host:port`` URL; BadInput naming ``where`` otherwise (without the
    URL, which may hold a password)."""
    url = url.strip() if "://" in url else f"http://{url.strip()}"  # `proxy.corp:3128`, as curl takes it
    try:
        parts = urlsplit(url)
        port = parts.port or 80
    except ValueError:
        raise BadInput(f"{where}: not a URL of the form http://[user:password@]host:port") from None
    if parts.scheme != "http" or not parts.hostname:
        raise BadInput(f"{where}: must be an http:// proxy URL (http://[user:password@]host:port)")
    auth = None
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        auth = "Basic " + base64.b64encode(pair.encode()).decode()
    return Upstream(parts.hostname, port, auth, bypass)


def upstream_of(setting: str, environ: Mapping[str, str] = os.environ) -> Upstream | None:
    """The upstream of ``egress_upstream`` (see the module); None: connect directly."""
    if setting.strip() == DIRECT:
        return None
    if setting.strip():
        return parse_upstream(setting)
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        if environ.get(name, "").strip():
            bypass = environ.get("NO_PROXY") or environ.get("no_proxy") or ""
            return parse_upstream(environ[name], f"{name} of baton's environment", bypass)
    return None
