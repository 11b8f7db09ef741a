"""The docs' pasted commands that talk to ``baton serve`` reach it as the docs start it: a webhook
delivered (``--deliver-to``) or a route called (``curl``) on the port ``baton serve`` listens on by
default, and a ``curl`` that posts JSON says so (``-d`` alone is form-encoded, which the API refuses).
docs/deploy.md's fleet runs its API elsewhere on purpose (28765) and is left out."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from baton.cli.serve import serve_cmd

ROOT = Path(__file__).parents[2]
PAGES = [ROOT / "README.md", *sorted(p for p in (ROOT / "docs").glob("*.md") if p.name != "deploy.md")]
BATONS = re.compile(r"(?:127\.0\.0\.1|localhost):(\d+)/(?:webhooks/|v1/)")


def commands(page: Path) -> list[str]:
    """The page's shell blocks' commands, a continued line (``\\``) joined to the next."""
    found: list[str] = []
    for block in re.findall(r"```(?:sh|bash|console)\n(.*?)```", page.read_text(), re.DOTALL):
        found += block.replace("\\\n", " ").splitlines()
    return found


def test_every_url_of_batons_own_routes_is_on_the_port_baton_serve_listens_on() -> None:
    port = str(inspect.signature(serve_cmd).parameters["port"].default)
    elsewhere = [
        f"{page.name}: {line.strip()}"
        for page in PAGES
        for line in commands(page)
        for found in BATONS.findall(line)
        if found != port
    ]
    assert port == "8765" and elsewhere == []


def test_every_curl_that_posts_json_to_baton_says_it_is_json() -> None:
    unsaid = [
        f"{page.name}: {line.strip()}"
        for page in PAGES
        for line in commands(page)
        if line.lstrip().startswith("curl")
        and "/v1/" in line
        and " -d " in line
        and "application/json" not in line
        and "$J" not in line
    ]
    assert unsaid == []
