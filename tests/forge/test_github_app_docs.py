"""docs/forge.md's "Setting up GitHub as an App", as written: its fake GitHub command (``python -m
baton.testing.fake_forge`` as an App, its key written where the configuration says) and its pasted
configuration make ``baton forge test`` pass, with no token in the environment; the section's general
configuration reads as it says (its key relative to $BATON_HOME, the App's login left to GitHub)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from baton.forge.appkey import AppKey
from baton.forge.config import load_forges

Cli = Callable[..., subprocess.CompletedProcess[str]]
DOCS = Path(__file__).parents[2] / "docs" / "forge.md"


def section() -> str:
    text = DOCS.read_text()
    start = text.index("## Setting up GitHub as an App")
    return text[start : text.index("\n## ", start + 1)]


def blocks(kind: str) -> list[str]:
    """The section's fenced blocks of ``kind`` (toml, sh), in order."""
    found, text = [], section()
    while (at := text.find(f"```{kind}\n")) >= 0:
        end = text.index("```\n", at + 4)
        found.append(text[at + len(kind) + 4 : end])
        text = text[end + 4 :]
    return found


@pytest.fixture
def fake_app(home: Path, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The section's command, on free ports (its own are 9180 and 9181), started as written."""
    [command] = blocks("sh")
    words = shlex.split(command.replace("\\\n", " "))
    assert words[:3] == ["python", "-m", "baton.testing.fake_forge"], words
    words[0] = sys.executable
    for flag in ("--port", "--git-port"):
        words[words.index(flag) + 1] = "0"
    words = [w.replace("$BATON_HOME", str(home)) for w in words] + ["--root", str(tmp_path / "fake")]
    server = subprocess.Popen(words, stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    printed: dict[str, str] = {}
    assert server.stdout is not None
    for line in server.stdout:
        kind, _, rest = line.strip().partition(": ")
        printed.setdefault(kind, rest)
        if kind == "token":
            break
    try:
        yield printed
    finally:
        server.terminate()
        server.wait(30)
        server.stdout.close()


def test_the_pasted_configuration_passes_forge_test_against_the_fake_app(
    cli: Cli, home: Path, fake_app: dict[str, str]
) -> None:
    assert fake_app["app"].startswith("123456 baton (its bot baton[bot]")
    assert (home / "github-app.pem").read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    config = blocks("toml")[1]
    api, clone = fake_app["api"], fake_app["clone"]
    web, git = api.removesuffix("/api/v3"), clone.removesuffix("/acme/api.git")
    for written, there in (("http://127.0.0.1:9180", web), ("http://127.0.0.1:9181", git)):
        assert written in config
        config = config.replace(written, there)
    (home / "config.toml").write_text(config)
    done = cli("forge", "test", "--json", env={"BATON_WEBHOOK_SECRET": "s3cret", "BATON_GIT_TOKEN": ""})
    checks = {c["what"]: c for c in json.loads(done.stdout)}
    assert done.returncode == 0, checks
    assert checks["forge github"]["detail"].startswith("GitHub App baton (id 123456)")
    assert {
        "repo github:acme/api app",
        "repo github:acme/api permissions",
        "repo github:acme/api push",
    } <= set(checks)


def test_the_sections_configuration_reads_as_it_says(home: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(blocks("toml")[0])
    forge = load_forges(home, environ={}, agents=("claude",)).forges["github"]
    assert forge.app == AppKey(123456, key_file=home / "github-app.pem")
    assert (forge.user, forge.mention, forge.token_env) == ("", "", "")  # the App's bot, read from GitHub
