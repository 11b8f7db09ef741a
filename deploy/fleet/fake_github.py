"""The trial fleet's forge: the fake GitHub (:mod:`baton.testing.fake_forge`) as a process on the host,
where the pods (on the host's network) reach it, serving what the fleet's ``forge.toml`` names: the
REST API at its ``api_url``, git at its repositories' ``clone_url``, the repositories, baton's user
(``user``) with the token of its ``token_env`` from ``forge.env``, and one person, ``alice``, an admin
of every repository, with ``FAKE_GITHUB_TOKEN`` from ``fake-github.env`` (made by ``render.py
secrets``). Deliveries are signed with ``webhook.env``'s secret. Secrets go from the files into the
fake in this process: none on a command line. Serves until SIGTERM (``fleet.sh down``).

    fake_github.py --config deploy/fleet/forge.toml --secrets DIR --deliver-to URL
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from render import read_env_file

PERSON = "alice"


def fake_argv(config: dict[str, Any], secrets: Path, deliver_to: str, root: Path) -> list[str]:
    """The fake's command line for the forge and repositories of ``config`` (a parsed forge.toml)."""
    (forge,) = config["forge"].values()
    repos: dict[str, dict[str, Any]] = config.get("repo", {})
    git_ports = {urlsplit(r["clone_url"]).port for r in repos.values()}
    if len(git_ports) != 1:
        raise ValueError("forge.toml: every repository's clone_url must name the fake's one git port")
    token = read_env_file(secrets / "forge.env")[forge["token_env"]]
    argv = ["--port", str(urlsplit(forge["api_url"]).port), "--git-port", str(git_ports.pop())]
    argv += ["--root", str(root), "--deliver-to", deliver_to]
    argv += ["--secret", read_env_file(secrets / "webhook.env")["BATON_WEBHOOK_SECRET"]]
    argv += [arg for name in repos for arg in ("--repo", name)]
    person = read_env_file(secrets / "fake-github.env")["FAKE_GITHUB_TOKEN"]
    return [*argv, "--user", f"{forge['user']}:write:{token}", "--user", f"{PERSON}:admin:{person}"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--secrets", type=Path, required=True)
    parser.add_argument("--deliver-to", required=True, metavar="URL")
    args = parser.parse_args(argv)
    from baton.testing import fake_forge

    config = tomllib.loads(args.config.read_text())
    with tempfile.TemporaryDirectory(prefix="fleet-fake-github-") as root:
        command = fake_argv(config, args.secrets, args.deliver_to, Path(root))
        print(
            f"fake GitHub: {', '.join(config.get('repo', {}))}; {PERSON}'s token in fake-github.env",
            flush=True,
        )
        with contextlib.redirect_stdout(io.StringIO()):  # it prints every user's token
            fake_forge.main(command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
