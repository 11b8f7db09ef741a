"""A stateful fake GitHub for the forge tests (:class:`FakeForge`): a real HTTP server on 127.0.0.1 speaking
GitHub's REST API (GHES-style, at ``http://127.0.0.1:PORT/api/v3``, answered from GitHub's OpenAPI
description and checked against it where the tests installed their checker: :mod:`fake_forge_api`),
serving each repository's git over smart HTTP with token auth, and sending signed webhook deliveries
when a test drives a change (:mod:`fake_forge_hooks`); its state and conversations are
:mod:`fake_forge_core` and :mod:`fake_forge_threads`. Run it by hand for the README's offline tour:
``python -m baton.testing.fake_forge --help``.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Self
from urllib.parse import parse_qs

from baton.testing import stopping
from baton.testing._http import BackgroundServer, QuietHandler, QuietServer
from baton.testing.fake_forge_api import ApiHandler
from baton.testing.fake_forge_app import ForgeApp
from baton.testing.fake_forge_core import ApiRequest, ForgeRefused, Violation
from baton.testing.fake_forge_hooks import Delivery
from baton.testing.fake_forge_merge import ForgeMerge
from baton.testing.git_http import GitHttpServer
from baton.testing.git_http import _Handler as _GitHttpHandler

__all__ = ["ApiRequest", "Delivery", "FakeForge", "ForgeRefused", "Violation", "serve_quickly"]


def serve_quickly(server: BackgroundServer) -> None:
    """:meth:`BackgroundServer.start` with a 50 ms poll, so :meth:`~BackgroundServer.stop` returns at
    once instead of after up to half a second (it adds up over a test suite's fakes)."""
    if server._server is not None:
        return
    bound = type(f"{type(server).__name__}Handler", (server.handler_class(),), {"owner": server})
    server._server = QuietServer(server.port, bound)
    server._server.block_on_close = server.block_on_close
    server.port = server._server.server_address[1]
    server._thread = threading.Thread(
        target=functools.partial(server._server.serve_forever, 0.05),
        name=f"{server.thread_name}-{server.port}",
        daemon=True,
    )
    server._thread.start()


class _GitHandler(_GitHttpHandler):
    """git's smart HTTP, plus ``POST /_fake/pushed/<owner>/<name>?key=…``: a post-receive hook's report
    of a push (its stdin, ``old new ref`` lines), made from inside the push."""

    owner: _ForgeGit

    def do_POST(self) -> None:
        path, _, query = self.path.partition("?")
        if not path.startswith("/_fake/pushed/"):
            super().do_POST()
            return
        forge, body = self.owner.forge, self._body()
        if forge is None or parse_qs(query).get("key", [""])[0] != forge.log_key:
            self._send(404, b"not found\n", "text/plain")
            return
        updates = [(u[0], u[1], u[2]) for line in body.decode().splitlines() if len(u := line.split()) >= 3]
        try:
            forge.hook_reported(
                path.removeprefix("/_fake/pushed/"), self.headers.get("X-Fake-Forge-User") or "", updates
            )
        finally:
            self._send(204, b"", "text/plain")


class _ForgeGit(GitHttpServer):
    """The git server: any user's token is a password (its user is the pusher the post-receive hook
    reports to the fake)."""

    forge: FakeForge | None = None

    def handler_class(self) -> type[_GitHandler]:
        return _GitHandler

    def start(self) -> Self:
        self.root = Path(self.root).resolve()
        serve_quickly(self)
        return self

    def check(self, authorization: str | None) -> str | None:
        from baton.testing.git_http import _basic_credentials

        creds = _basic_credentials(authorization)
        if creds is None or self.forge is None:
            return None
        user = self.forge.user_by_token(creds[1])
        return None if user is None else user.login


class FakeForge(ForgeMerge, ForgeApp, BackgroundServer):
    """The fake GitHub; ``with FakeForge(tmp_path) as fake:`` or :meth:`start`/:meth:`stop`.

    - **State**: users and their role per repository, repositories (a bare git repository each, under
      ``root``), issues and pull requests on one number sequence, comments, reviews with inline
      comments, check runs (which are also the Actions jobs whose logs can be fetched) and commit
      statuses. One lock guards it; a PR's head is read from its branch in the bare repository, so a
      push moves it.
    - **REST**: the endpoints baton's client calls, with GitHub's paths, shapes, pagination (``Link``),
      ETags (``If-None-Match`` → 304) and errors (401, 404, 422). A request that violates GitHub's
      OpenAPI description is answered 400; request and response violations are both kept in
      :attr:`violations` — a test's fixture asserts it is empty.
    - **git**: a :class:`~baton.testing.git_http.GitHttpServer` beside the API (its own port, each
      repo's ``clone_url``), serving ``<owner>/<name>.git``; HTTP Basic with any user's token as the
      password. Each bare repo's post-receive hook reports a push to that server from inside the push,
      so by the time ``git push`` returns the fake has recorded it (:attr:`pushes`, with the token's
      user) and queued ``pull_request.synchronize`` for the branch's open PRs (:meth:`settle`).
      :meth:`protect` refuses pushes to a branch with GitHub's GH006 words.
    - **Webhooks**: POSTed to ``deliver_to``. A drive method's deliveries are sent before it returns,
      after its lock is released (the receiver may call the API back); each ``Delivery`` keeps the
      receiver's statuses. Deliveries an API request causes go from a delivery thread after its
      response (:meth:`settle` waits for them). ``hold = True`` keeps them until :meth:`flush`;
      :meth:`redeliver` (same delivery id) and :meth:`deliver_forged` (a wrong signature) for the
      dedupe and signature tests.
    - **Merging** (:mod:`fake_forge_merge`): a draft marked ready and auto-merge enabled through
      GitHub's GraphQL (``/api/graphql``), the default branch's required checks, "Allow auto-merge".
    - **A GitHub App** (:mod:`fake_forge_app`): :meth:`make_app`, its installations, the JWT routes,
      installation tokens that expire, installation webhooks.
    - **Faults**: :meth:`fail_next` and :meth:`stall_next` (the API only).
    """

    thread_name = "fake-forge"
    block_on_close = False

    def __init__(
        self,
        root: Path,
        *,
        secret: str = "",
        deliver_to: str | None = None,
        port: int = 0,
        git_port: int = 0,
        description: str = "ghes-3.19",
        clock: Callable[[], float] = time.time,
        checked: bool = True,
    ) -> None:
        self.port, self.git_port = port, git_port
        super().__init__(
            root, secret=secret, deliver_to=deliver_to, description=description, clock=clock, checked=checked
        )
        self.git = _ForgeGit(root=self.root / "git", token="", port=git_port)
        self.git.forge = self

    def handler_class(self) -> type[QuietHandler]:
        return ApiHandler

    def start(self) -> Self:
        (self.root / "git").mkdir(parents=True, exist_ok=True)
        self.git.start()
        self.git_port = self.git.port
        for repo in list(self.repos.values()):  # created before the git server had its port
            self.install_hook(repo)
        serve_quickly(self)
        self.render.api_url, self.render.web_url = self.api_url, self.web_url
        return self

    def stop(self) -> None:
        # each server's loop notices its shutdown within 50 ms: wait for both at once
        git = threading.Thread(target=self.git.stop, name="fake-forge-git-stop")
        git.start()
        super().stop()
        git.join()
        self.stop_deliveries()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m baton.testing.fake_forge",
        description="A fake GitHub on 127.0.0.1 (REST at /api/v3, git over HTTP, signed webhooks), "
        "for trying baton's forge loop offline. Prints the API URL, each repo's clone URL and each "
        "user's token, then serves until interrupted.",
    )
    parser.add_argument("--port", type=int, default=0, help="the API's port (default: any free one)")
    parser.add_argument(
        "--git-port", type=int, default=0, help="the git server's port (default: any free one)"
    )
    parser.add_argument("--secret", default="", help="the webhook secret deliveries are signed with")
    parser.add_argument("--deliver-to", metavar="URL", help="where webhook deliveries are POSTed")
    parser.add_argument(
        "--repo",
        action="append",
        default=[],
        metavar="OWNER/NAME",
        help="a repository to create (repeatable)",
    )
    parser.add_argument(
        "--user",
        action="append",
        default=[],
        metavar="LOGIN:ROLE[:TOKEN]",
        help="a user with that role (admin, maintain, write, triage, read, none) on every "
        "repo, and optionally its token (repeatable); a login ending in [bot] is a Bot",
    )
    parser.add_argument("--root", type=Path, help="where the bare repositories live (default: a temp dir)")
    parser.add_argument(
        "--app-key",
        type=Path,
        metavar="FILE",
        help="also be a GitHub App installed on every --repo: write its private key (PEM) to FILE "
        "(mode 0600) and print its id",
    )
    parser.add_argument(
        "--app-slug", default="baton", help="the App's slug: its bot is SLUG[bot] (default: baton)"
    )
    parser.add_argument("--app-id", type=int, default=None, help="the App's id (default: the next free id)")
    parser.add_argument(
        "--app-token-lifetime",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help="how long the App's installation tokens live (default: 3600, as GitHub's)",
    )
    args = parser.parse_args(argv)
    stopping.hold()  # before the fake's threads exist
    root = args.root or Path(tempfile.mkdtemp(prefix="fake-forge-"))
    fake = FakeForge(
        root,
        secret=args.secret,
        deliver_to=args.deliver_to,
        port=args.port,
        git_port=args.git_port,
    )
    try:
        fake.start()
    except OSError as exc:  # a port in use: one line and a non-zero exit, never a traceback
        which = "--git-port" if fake.git._server is None else "--port"
        port = args.git_port if which == "--git-port" else args.port
        print(
            f"{parser.prog}: cannot listen on 127.0.0.1:{port} ({which}): {exc.strerror or exc}",
            file=sys.stderr,
        )
        sys.exit(1)
    for full_name in args.repo:
        fake.create_repo(full_name)
    for spec in args.user:
        login, _, rest = spec.partition(":")
        role, _, token = rest.partition(":")
        fake.add_user(login, "Bot" if login.endswith("[bot]") else "User", token or None)
        for full_name in args.repo:
            fake.set_permission(full_name, login, role or "write")
    if args.app_key is not None:
        app = fake.make_app(args.app_slug, token_lifetime=args.app_token_lifetime, app_id=args.app_id)
        if args.repo:
            fake.install_app(args.repo)
        args.app_key.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(args.app_key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as key:
            key.write(fake.private_key_pem())
        print(f"app: {app.id} {app.slug} (its bot {app.bot}; private key in {args.app_key})", flush=True)
    print(f"api: {fake.api_url}", flush=True)
    for full_name in args.repo:
        print(f"clone: {fake.clone_url(full_name)}", flush=True)
    for login, user in fake.users.items():
        print(f"token: {login} {user.token}", flush=True)
    try:
        stopping.wait()
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
