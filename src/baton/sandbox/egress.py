"""One agent start's way out (:class:`Egress`): where the host allows, the agent's own network namespace
with only loopback (:mod:`baton.sandbox.netns`), in which baton listens for it — the egress proxy
(:mod:`baton.sandbox.proxy`, under the run's :mod:`~baton.allowlist`) and a relay to each model
API on the host's loopback (the mock servers, a local gateway); elsewhere a proxy listener on the host's
loopback and the walls' TCP rule allowing only its port and the model APIs'. The agent is told the
proxy through ``HTTP(S)_PROXY``; a model API elsewhere is added to the list. A container's engine is
started in that namespace too (:meth:`Egress.spawn`). ``egress = "open"``: none of this (the walls'
ports as before). What each host gets: docs/security.md, "The network".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from baton.allowlist import Policy, Refusal, Rule, Upstream
from baton.sandbox.walls import service_ports, url_port

if TYPE_CHECKING:  # the proxy (asyncio) and the namespace load only for a run whose egress is not open
    import socket

    from baton.sandbox.proxy import Gate, Served
    from baton.sandbox.spawnthread import P

LOOPBACK = ("127.0.0.1", "localhost", "::1")
PROXY_PORT = 3128  # the proxy's port inside the agent's namespace (the first one no relay takes)


def applies(mode: str) -> bool:
    """Whether agents get their own network namespace: ``BATON_NET_NS`` against this host
    (:func:`netns.probe`)."""
    # lazy: cold CLI
    from baton.sandbox import netns

    return mode != "off" and netns.probe() is None


def model_endpoints(env: Mapping[str, str], urls: Iterable[str]) -> list[tuple[str, int]]:
    """(host, port) of the agent's model APIs: its base URLs (``ANTHROPIC_BASE_URL``, …) and ``urls``."""
    found: dict[tuple[str, int], None] = {}
    named = [v for k, v in env.items() if k.upper().endswith("_BASE_URL")]
    for url in (*named, *urls):
        port, host = url_port(url), urlsplit(url.strip()).hostname
        if port and host:
            found[host.lower(), port] = None
    return list(found)


def service_endpoints(env: Mapping[str, str]) -> list[tuple[str, int]]:
    """(127.0.0.1, port) of the key's services (``BATON_SERVICE_PORTS``): relayed into the agent's
    namespace as its model APIs on loopback are, or allowed by the walls' TCP rule."""
    return [("127.0.0.1", port) for port in service_ports(env)]


def loopback_entries(policy: Policy) -> list[tuple[str, int]]:
    """(host, port) of the entries of ``policy`` on the host's loopback (``localhost:8080``, a mock
    forge's remote): relayed into the agent's namespace as its model APIs are, so plain tools reach
    them (``NO_PROXY`` sends loopback direct), or allowed by the walls' TCP rule."""
    return [(rule.host, port) for rule in policy.rules if rule.host in LOOPBACK for port in rule.ports]


@dataclass
class Egress:
    """One agent start's network way out; :meth:`close` it once the agent has ended."""

    env: dict[str, str]  # what the agent is told (the proxy variables)
    ports: frozenset[int]  # the TCP ports the walls allow
    namespaced: bool  # the agent runs in its own network namespace (else the walls' port rule alone)
    gate: Gate
    relays: dict[int, tuple[str, int]] = field(default_factory=dict)  # namespace port → host address
    proxy_port: int = 0
    served: list[Served] = field(default_factory=list)
    sockets: list[socket.socket] = field(default_factory=list)
    on_close: Callable[[], None] | None = None  # told once the agent has ended (the refusals' counts)

    @classmethod
    def open(
        cls,
        policy: Policy,
        namespaced: bool,
        endpoints: list[tuple[str, int]],
        denied: frozenset[int],
        on_refused: Callable[[Refusal], None],
        own: frozenset[int] = frozenset(),
        upstream: Upstream | None = None,
    ) -> Egress:
        """The way out of an agent under ``policy`` (not open): ``namespaced`` where the agent starts in
        a namespace of its own (:meth:`enter`, in its spawn thread), its model APIs at ``endpoints``,
        ``own`` the ports of the servers it listens on itself (granted, never relayed), ``upstream`` the
        operator's proxy its allowed connections go through."""
        # lazy: cold CLI
        from baton.sandbox import netns, proxy
        from baton.sandbox.proxy import Gate

        local = {
            port: (host, port)
            for host, port in endpoints
            if host in LOOPBACK and port not in denied and port not in own
        }
        remote = tuple(Rule(host, (port,)) for host, port in endpoints if host not in LOOPBACK)
        gate = Gate(Policy(False, policy.rules + remote, policy.text), denied, on_refused, upstream)
        found = cls({}, frozenset(), namespaced, gate, local if namespaced else {})
        proxy.start()  # here, in baton's network namespace, not in the agent's spawn thread
        if namespaced:
            found.proxy_port = next(p for p in range(PROXY_PORT, 65536) if p not in local)
        else:  # served now, on the host's loopback: the walls allow its port and the model APIs'
            sock = netns.listener()
            found.sockets.append(sock)
            found.proxy_port = sock.getsockname()[1]
            found.served.append(proxy.serve(sock, gate))
        found.ports = frozenset({found.proxy_port, *local, *own})
        found.env = _proxy_env(found.proxy_port)
        return found

    def enter(self) -> None:
        """In the thread that starts the agent, before it is walled in: into a network namespace of
        its own, where baton listens for the proxy and the relays. OSError when that fails."""
        # lazy: cold CLI
        from baton.sandbox import netns, proxy

        netns.enter()
        sock = netns.listener(self.proxy_port)
        self.sockets.append(sock)
        self.served.append(proxy.serve(sock, self.gate))
        for port, (host, target) in self.relays.items():
            relay = netns.listener(port)
            self.sockets.append(relay)
            self.served.append(proxy.forward(relay, "127.0.0.1" if host == "localhost" else host, target))

    def spawn(self, start: Callable[[], P], before: Callable[[], None] | None = None) -> P:
        """``start`` called in a thread of its own, after ``before`` (a run group's), in the network
        namespace :meth:`enter` makes: for a process walled by other means (a container's engine,
        whose container joins the namespace it is started in: :mod:`baton.sandbox.container`)."""
        # lazy: cold CLI
        from baton.sandbox import spawnthread

        def first() -> None:
            if before is not None:
                before()
            self.enter()

        return spawnthread.spawn(start, first, "netns")

    def close(self) -> None:
        for served in self.served:
            served.close()
        for sock in self.sockets:
            sock.close()
        self.served, self.sockets = [], []
        told, self.on_close = self.on_close, None
        if told is not None:
            told()


def _proxy_env(port: int) -> dict[str, str]:
    """The proxy variables every tool reads (curl only the lower-case ``http_proxy``; git, pip, npm,
    Node ≥ 24 with ``NODE_USE_ENV_PROXY``, Python's and Rust's HTTP clients either), the model APIs
    on loopback spared."""
    url = f"http://127.0.0.1:{port}"
    spared = ",".join(LOOPBACK)
    names = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")
    return {
        **dict.fromkeys(names, url),
        "NO_PROXY": spared,
        "no_proxy": spared,
        "NODE_USE_ENV_PROXY": "1",
        "npm_config_proxy": url,
        "npm_config_https_proxy": url,
    }


def describe(mode: str, walled: bool) -> str:
    """For ``baton doctor``: what keeps a walled agent's network to the proxy here."""
    if not walled:
        return "not enforced (agents are not walled in): the proxy variables are a request, not a wall"
    if applies(mode):
        return "own network namespace, only loopback: out through baton's egress proxy alone"
    return (
        f"the walls' TCP rule allows only the proxy's port and the model APIs' ({no_namespace(mode)}); "
        "UDP (DNS) and a connection to a model API's port on another host stay open"
    )


def no_namespace(mode: str) -> str:
    """Why agents get no network namespace here (:func:`applies` is False)."""
    # lazy: cold CLI
    from baton.sandbox import netns

    return "BATON_NET_NS=off" if mode == "off" else f"no network namespace: {netns.probe()}"
