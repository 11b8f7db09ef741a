"""docs/forge.md's GitLab trial, run as a newcomer pastes it (its shell block, extracted from the page):
the fake GitLab started, its token waited for, the configuration written, ``baton forge test`` passing
and ``baton serve`` ready on the port the fake delivers to — only the fixed ports swapped for free ones."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.pasted import leftovers, run_pasted  # noqa: F401 (leftovers: the fixture)
from tests.private_services import free_port

DOCS = Path(__file__).resolve().parents[3] / "docs" / "forge.md"
BLOCK = re.compile(r"^```sh\n(.*?)^```", re.MULTILINE | re.DOTALL)

pytestmark = pytest.mark.slow


def trial() -> str:
    text = DOCS.read_text()
    start = text.index("## Setting up GitLab")
    [block] = BLOCK.findall(text[start : text.index("\n## ", start + 1)])
    return str(block)


def test_the_gitlab_trial_starts_the_service_and_names_the_mention() -> None:
    block = trial()
    assert "python -m baton.testing.fake_gitlab" in block and "baton forge test" in block
    assert re.search(r"^baton serve --port 8765 &", block, re.MULTILINE)
    assert "/webhooks/gitlab" in block and "127.0.0.1:8765/" in block
    assert 'mention = "@baton"' in block


def test_the_gitlab_trial_runs_as_pasted(tmp_path: Path, leftovers: None) -> None:  # noqa: F811
    script = trial()
    gitlab, serve = free_port(), free_port()
    script = re.sub(r"\b8929\b", str(gitlab), re.sub(r"\b8765\b", str(serve), script))
    # after the block: the service the fake delivers to is up and ready
    script += f"""
for i in $(seq 150); do curl -sf http://127.0.0.1:{serve}/readyz >/dev/null && break; sleep 0.2; done
curl -sf http://127.0.0.1:{serve}/readyz >/dev/null && echo "the service is ready"
"""
    returncode, out = run_pasted(script, tmp_path, timeout=300)
    assert returncode == 0, out[-6000:]
    checks = [line for line in out.splitlines() if line.startswith(("ok ", "FAIL", "fail", "warn"))]
    assert len(checks) == 7 and all(line.startswith("ok ") for line in checks), checks
    assert "ok   repo gitlab:acme/api webhooks" in out and "the service is ready" in out
