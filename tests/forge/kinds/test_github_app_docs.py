"""docs/forge.md's "Setting up GitHub as an App", as written: its trial block, pasted (the fake GitHub as
an App, its key written where the configuration says), makes ``baton forge test`` pass with no token in
the environment and starts ``baton serve`` where the fake delivers; the section's general
configuration reads as it says (its key relative to $BATON_HOME, the App's login left to GitHub)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from baton.forge.data.appkey import AppKey
from baton.forge.kinds.configured import load_forges
from tests.pasted import leftovers, run_pasted  # noqa: F401 (leftovers: the fixture)
from tests.private_services import free_port

DOCS = Path(__file__).parents[3] / "docs" / "forge.md"


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


def test_the_app_trial_runs_as_pasted(tmp_path: Path, leftovers: None) -> None:  # noqa: F811
    """The block as pasted (only its fixed ports swapped for free ones): the fake App up, its key where
    the configuration says, ``baton forge test`` passing with no token in the environment, and
    ``baton serve`` ready on the port the fake delivers to."""
    [script] = blocks("sh")
    assert "--deliver-to http://127.0.0.1:8765/webhooks/github" in script
    assert re.search(r"^baton serve --port 8765 &", script, re.MULTILINE)
    for port in ("9180", "9181", "8765"):
        script = re.sub(rf"\b{port}\b", str(free_port()), script)
    serve = re.search(r"baton serve --port (\d+)", script)
    assert serve is not None
    script += f"""
for i in $(seq 150); do curl -sf http://127.0.0.1:{serve[1]}/readyz >/dev/null && break; sleep 0.2; done
curl -sf http://127.0.0.1:{serve[1]}/readyz >/dev/null && echo "the service is ready"
baton forge test --json
"""
    returncode, out = run_pasted(script, tmp_path, timeout=300)
    assert returncode == 0, out[-6000:]
    assert "app: 123456 baton (its bot baton[bot]" in out and "the service is ready" in out, out[-4000:]
    checks, _ = json.JSONDecoder().raw_decode(out[out.rindex("\n[") + 1 :])  # the service logs after it
    assert all(c["ok"] for c in checks), checks
    found = {c["what"]: c for c in checks}
    assert found["forge github"]["detail"].startswith("GitHub App baton (id 123456)")
    assert {
        "repo github:acme/api app",
        "repo github:acme/api permissions",
        "repo github:acme/api push",
    } <= set(found)


def test_the_sections_configuration_reads_as_it_says(home: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(blocks("toml")[0])
    forge = load_forges(home, environ={}, agents=("claude",)).forges["github"]
    assert forge.app == AppKey(123456, key_file=home / "github-app.pem")
    assert (forge.user, forge.mention, forge.token_env) == ("", "", "")  # the App's bot, read from GitHub
