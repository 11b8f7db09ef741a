"""A stateful fake GitLab for the forge tests (:class:`FakeGitLab`): a real HTTP server on 127.0.0.1
serving the REST API v4 at ``http://127.0.0.1:PORT/api/v4`` (the endpoints baton's GitLab client calls),
each project's git over smart HTTP at ``http://127.0.0.1:PORT/<full path>.git``, and GitLab's webhooks
when something happens (:mod:`fake_gitlab_hooks`). Its state and what happens on it are
:mod:`fake_gitlab_core`, :mod:`fake_gitlab_drive` and :mod:`fake_gitlab_merge`; under the tests every
answer and webhook body is checked against GitLab's published types (``tests/support/gitlab_spec.py``).
Run it by hand: ``python -m baton.testing.fake_gitlab --help``.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

from baton.testing import stopping
from baton.testing._http import BackgroundServer, QuietHandler, QuietServer
from baton.testing.fake_gitlab_api import GitLabHandler
from baton.testing.fake_gitlab_core import GitLabRefused
from baton.testing.fake_gitlab_hooks import Delivery
from baton.testing.fake_gitlab_merge import GitLabMerge
from baton.testing.fake_gitlab_outbox import Checker, SpecViolation, install_checker
from baton.testing.fake_gitlab_state import ACCESS, ApiRequest, Violation
from baton.testing.git_http import GitHttpRequest

__all__ = [
    "ACCESS",
    "ApiRequest",
    "Checker",
    "Delivery",
    "FakeGitLab",
    "GitLabRefused",
    "SpecViolation",
    "Violation",
    "install_checker",
]


class FakeGitLab(GitLabMerge, BackgroundServer):
    """The fake GitLab; ``with FakeGitLab(tmp_path) as fake:`` or :meth:`start`/:meth:`stop`.

    - **State**: users (``root`` is there from the start) with personal access tokens (scopes,
      expiry, revocation), project access tokens and their bot users; projects (nested groups
      allowed) with a bare repository each under ``root``, members' access levels, protected branches
      (the default branch: Maintainers push and merge); issues, merge requests (each its own ``iid``
      sequence), notes, discussions, diff notes, approvals, pipelines with jobs and logs. One lock
      guards it; an MR's head is its source branch's, read from git, so a push moves it, and whether
      it merges comes from ``git merge-tree``.
    - **REST**: the contract's endpoints, GitLab's paths (the project's URL-encoded path or its id),
      shapes, offset paging (``Link``, ``X-Next-Page``, ``X-Total``; :attr:`uncounted` drops the
      totals), ``ETag``/304, errors and scopes; :attr:`requests` logs each (method, path, query).
      :meth:`rate_limit_next` answers 429 with ``Retry-After`` and ``RateLimit-*``; :meth:`fail_next`
      another status; :attr:`checking` makes merge statuses "checking" for that many MR reads.
    - **git**: ``<web_url>/<path>.git``, HTTP Basic with a token as the password (any user name);
      a token without ``write_repository``/``api`` cannot push (403); the repository's hooks ask the
      fake first (members below Developer, protected branches: refused with GitLab's words) and tell
      it after, from inside the push, so the Push Hook and the MR updates are made before ``git push``
      returns (their deliveries go from the delivery thread: :meth:`settle`).
    - **Webhooks**: :meth:`add_hook` (a URL, a secret token, events), and with ``deliver_to`` one
      hook on every project (``secret`` its token). A drive method's deliveries are sent before it
      returns; an API request's after its response. :meth:`resend` repeats an event (same UUIDs and
      body); :meth:`deliver_forged` sends one with a wrong token; ``hold`` and :meth:`flush`.
    """

    thread_name = "fake-gitlab"
    block_on_close = False

    def __init__(self, root: Path, *, port: int = 0, **kwargs: Any) -> None:
        self.port = port
        super().__init__(Path(root).resolve(), **kwargs)
        self.git_requests: list[GitHttpRequest] = []
        self.backend_errors: list[str] = []

    def handler_class(self) -> type[QuietHandler]:
        return GitLabHandler

    def start(self) -> Self:
        """Listen (a 50 ms poll, so :meth:`stop` returns at once), then install every repository's
        git hooks with the port they report to."""
        if self._server is not None:
            return self
        self.root.mkdir(parents=True, exist_ok=True)
        bound = type("FakeGitLabHandler", (GitLabHandler,), {"owner": self})
        self._server = QuietServer(self.port, bound)
        self._server.block_on_close = self.block_on_close
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=functools.partial(self._server.serve_forever, 0.05),
            name=f"fake-gitlab-{self.port}",
            daemon=True,
        )
        self._thread.start()
        for project in list(self.projects.values()):
            self.install_hooks(project)
        return self

    def stop(self) -> None:
        super().stop()
        self.stop_deliveries()

    # -- what git's http-backend needs of its server (baton.testing.git_http) --------------------------------

    def backend_env(self) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", os.defpath),
            "GIT_PROJECT_ROOT": str(self.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_CONFIG_COUNT": "2",
            "GIT_CONFIG_KEY_0": "http.receivepack",
            "GIT_CONFIG_VALUE_0": "true",
            "GIT_CONFIG_KEY_1": "safe.directory",
            "GIT_CONFIG_VALUE_1": "*",
        }
        for name in ("HOME", "LANG", "LC_ALL", "TMPDIR"):
            if name in os.environ:
                env[name] = os.environ[name]
        return env

    def record_backend_error(self, text: str) -> None:
        with self.lock:
            self.backend_errors.append(text)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m baton.testing.fake_gitlab",
        description="A fake GitLab on 127.0.0.1 (REST at /api/v4, git over HTTP, webhooks), for trying "
        "baton's forge loop offline. Prints the API URL, each project's clone URL and each user's "
        "token, then serves until interrupted.",
    )
    parser.add_argument("--port", type=int, default=0, help="the port (default: any free one)")
    parser.add_argument(
        "--project",
        action="append",
        default=[],
        metavar="GROUP/NAME",
        help="a project to create (repeatable)",
    )
    parser.add_argument(
        "--user",
        action="append",
        default=[],
        metavar="LOGIN:ACCESS[:TOKEN]",
        help="a user who is a member of every project at ACCESS (guest, reporter, developer, maintainer, "
        "owner or a number), with a personal access token (scope api), TOKEN or a new one (repeatable)",
    )
    parser.add_argument(
        "--token-file", type=Path, metavar="PATH", help="write the first --user's token to PATH (mode 0600)"
    )
    parser.add_argument("--deliver-to", metavar="URL", help="a webhook on every project posting to URL")
    parser.add_argument("--secret", default="", help="that webhook's secret token (X-Gitlab-Token)")
    parser.add_argument("--root", type=Path, help="where the repositories live (default: a temp dir)")
    args = parser.parse_args(argv)
    stopping.hold()  # before the fake's threads exist
    root = args.root or Path(tempfile.mkdtemp(prefix="fake-gitlab-"))
    fake = FakeGitLab(root, port=args.port, secret=args.secret, deliver_to=args.deliver_to)
    try:
        fake.start()
    except OSError as exc:  # a port in use: one line and a non-zero exit, never a traceback
        print(
            f"{parser.prog}: cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}", file=sys.stderr
        )
        sys.exit(1)
    for path in args.project:
        fake.add_project(path)
    for number, spec in enumerate(args.user):
        login, _, rest = spec.partition(":")
        access, _, token = rest.partition(":")
        level = int(access) if access.isdigit() else access or "developer"
        fake.add_user(login, level, token=token or None)
        if number == 0 and args.token_file is not None:
            args.token_file.touch(mode=0o600)
            args.token_file.write_text(fake.token(login) + "\n")
    print(f"api: {fake.api_url}", flush=True)
    for path in args.project:
        print(f"clone: {fake.clone_url(path)}", flush=True)
    for spec in args.user:
        login = spec.partition(":")[0]
        print(f"token: {login} {fake.token(login)}", flush=True)
    try:
        stopping.wait()
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
