"""``baton doctor -r REPO``: the setup a repository's threads would get, read from its default branch's
head and never run; what it skips, the test command, the configured override, the prepared trees after a
real turn (the fake agent); a setup that cannot be used exits 1; hostile text is shown, never run nor
interpreted by the terminal."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

from tests.conftest import GIT_ID, commit_file, make_repo

Cli = Callable[..., subprocess.CompletedProcess[str]]

DEVCONTAINER = """{
  // comments, as the spec allows
  "image": "mcr.microsoft.com/devcontainers/python:3",
  "onCreateCommand": "touch MARK-oncreate",
  "postCreateCommand": {"deps": ["pip", "install", "-e", "."], "hooks": "pre-commit install"},
  "postStartCommand": "touch MARK-start",
  "containerEnv": {"TOKENLESS": "1"},
}
"""


def doctor(cli: Cli, repo: Path) -> tuple[int, dict[str, object]]:
    out = cli("doctor", "-r", str(repo), "--json")
    assert out.stdout, out.stderr
    return out.returncode, json.loads(out.stdout)


def test_a_devcontainer_is_described_not_run(cli: Cli, tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "src",
        {
            ".devcontainer/devcontainer.json": DEVCONTAINER,
            ".github/workflows/copilot-setup-steps.yml": "jobs: {}\n",
            "AGENTS.md": "Run the tests with `pytest -q tests`.\n",
            "uv.lock": "x\n",
            "requirements-dev.txt": "pytest\n",
        },
    )
    code, data = doctor(cli, repo)
    assert code == 0 and data["ok"] is True
    setup = data["setup"]
    assert isinstance(setup, dict)
    assert setup["source"] == ".devcontainer/devcontainer.json"
    assert "set aside: .github/workflows/copilot-setup-steps.yml" in setup["why"]
    names = [c["name"] for c in setup["commands"]]
    assert names == ["onCreateCommand", "postCreateCommand.deps", "postCreateCommand.hooks"]
    assert any("postStartCommand" in s for s in setup["skipped"])
    assert any("the container itself" in s for s in setup["skipped"])
    assert setup["env"] == ["TOKENLESS"] and setup["inputs"] == ["requirements-dev.txt", "uv.lock"]
    assert data["tests"] == {"file": "AGENTS.md", "command": "pytest -q tests"}
    assert data["configured"] is None
    assert data["prepared"] == {"trees": 0, "bytes": 0, "preparations": 0, "hits": 0, "this_commit": False}
    assert not list(tmp_path.rglob("MARK-*"))  # nothing ran, anywhere
    human = cli("doctor", "-r", str(repo))
    assert human.returncode == 0
    assert "runs      postCreateCommand.deps: pip install -e ." in human.stdout
    assert "skips     postStartCommand" in human.stdout


def test_the_default_branch_head_is_read_not_the_checkout(cli: Cli, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "src")
    code, data = doctor(cli, repo)
    assert (code, data["setup"], data["error"]) == (0, None, None)
    assert "setup       none" in cli("doctor", "-r", str(repo)).stdout
    head = commit_file(repo, ".baton/setup.sh", "touch MARK-baton\n", "a setup")
    (repo / ".baton/setup.sh").write_text("not committed: not what a thread gets\n")
    code, data = doctor(cli, repo)
    assert code == 0 and data["commit"] == head
    assert isinstance(data["setup"], dict) and data["setup"]["source"] == ".baton/setup.sh"
    assert [c["argv"] for c in data["setup"]["commands"]] == [["bash", ".baton/setup.sh"]]


def test_a_setup_that_cannot_be_used_exits_1(cli: Cli, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "src", {"README.md": "x\n"})
    (repo / ".baton").mkdir()
    os.symlink("/etc/passwd", repo / ".baton/setup.sh")
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-qm", "link"], cwd=repo, check=True, env={**os.environ, **GIT_ID})
    code, data = doctor(cli, repo)
    assert code == 1 and data["ok"] is False and data["setup"] is None
    assert ".baton/setup.sh cannot be read" in str(data["error"])
    human = cli("doctor", "-r", str(repo))
    assert human.returncode == 1 and "cannot be used" in human.stdout


def test_hostile_text_is_shown_escaped(cli: Cli, tmp_path: Path) -> None:
    bad = "touch MARK-x; printf '\\033]0;pwned\\007' [red]x[/red]"
    repo = make_repo(
        tmp_path / "src",
        {".devcontainer.json": json.dumps({"onCreateCommand": bad + "\x1b[2J"}), "README.md": "x\n"},
    )
    human = cli("doctor", "-r", str(repo))
    assert human.returncode == 0, human.stderr
    assert "\x1b" not in human.stdout and "\\x1b[2J" in human.stdout
    assert "[red]x[/red]" in human.stdout  # Rich markup printed as text
    assert not list(tmp_path.rglob("MARK-*"))


def test_the_configured_setup_and_the_prepared_trees(cli: Cli, tmp_path: Path, home: Path) -> None:
    repo = make_repo(
        tmp_path / "src", {".baton/setup.sh": "mkdir -p build && echo made > build/out\n", "README.md": "x\n"}
    )
    ran = cli("run", "-a", "fake", "-r", str(repo), "-t", "one", "--json", "hello")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    code, data = doctor(cli, repo)
    prepared = data["prepared"]
    assert isinstance(prepared, dict) and code == 0
    assert (prepared["trees"], prepared["preparations"], prepared["hits"]) == (1, 1, 0)
    assert prepared["bytes"] > 0 and prepared["this_commit"] is True
    assert "1 tree(s)" in cli("doctor", "-r", str(repo)).stdout
    (home / "config.toml").write_text(
        '[forge.gh]\nkind = "github"\napi_url = "https://api.github.com"\nweb_url = "https://github.com"\n'
        'token_env = "BATON_GITHUB_TOKEN"\nuser = "baton"\n\n'
        f'[repo."acme/api"]\nforge = "gh"\nclone_url = "{repo}"\nsetup = "make deps"\n'
    )
    code, data = doctor(cli, repo)
    assert data["configured"] == {"table": "acme/api", "setup": "make deps"}
    assert isinstance(data["setup"], dict) and data["setup"]["source"] == "config"
    assert "over the repository's .baton/setup.sh" in data["setup"]["why"]
    assert isinstance(data["prepared"], dict) and data["prepared"]["this_commit"] is False


SERVICES = """
[services.db]
image = "localhost/baton-postgres:dev"
port_env = "PGPORT"
[services.cache]
image = "localhost/baton-redis:dev"
port = 6379
env = { REDIS_PORT = "${port}" }
"""


def test_the_declared_services_are_listed_with_the_engine_that_would_start_them(
    cli: Cli, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "src", {".baton/services.toml": SERVICES})
    code, data = doctor(cli, repo)
    services = data["services"]
    assert code == 0 and isinstance(services, dict) and services["error"] is None
    assert services["services"] == [
        {"name": "db", "image": "localhost/baton-postgres:dev", "port": None, "port_env": "PGPORT",
         "source": ".baton/services.toml"},
        {"name": "cache", "image": "localhost/baton-redis:dev", "port": 6379, "port_env": None,
         "source": ".baton/services.toml"},
    ]  # fmt: skip
    human = cli("doctor", "-r", str(repo), env={"BATON_SERVICES_ENGINE": "off"}).stdout
    assert "services    2, skipped: services_engine = off" in human
    assert "  db  localhost/baton-postgres:dev, port_env PGPORT (.baton/services.toml)" in human
    assert "  cache  localhost/baton-redis:dev, port 6379 (.baton/services.toml)" in human
    assert "services    none declared" in cli("doctor", "-r", str(make_repo(tmp_path / "bare"))).stdout


def test_a_bad_services_file_is_named_with_its_field_and_exits_1(cli: Cli, tmp_path: Path) -> None:
    bad = '[services.db]\nimage = "$(touch /tmp/pwned)"\nport = 5432\n'
    repo = make_repo(tmp_path / "src", {".baton/services.toml": bad})
    code, data = doctor(cli, repo)
    services = data["services"]
    assert code == 1 and data["ok"] is False and isinstance(services, dict)
    assert services["error"].startswith(".baton/services.toml: services.db.image must be an image name")
    human = cli("doctor", "-r", str(repo))
    assert human.returncode == 1
    assert "services    cannot be used: .baton/services.toml: services.db.image must be" in human.stdout


def test_a_dev_containers_compose_services_are_listed_or_set_aside(cli: Cli, tmp_path: Path) -> None:
    compose = "services:\n  db:\n    image: postgres:16\n    ports: ['5432']\n  app:\n    build: .\n"
    devcontainer = '{"dockerComposeFile": "../compose.yml", "service": "web"}'
    files = {".devcontainer/devcontainer.json": devcontainer, "compose.yml": compose}
    repo = make_repo(tmp_path / "src", files)
    published = cli("doctor", "-r", str(repo), "--json", env={"BATON_SERVICES_NETWORK": "publish"})
    services = json.loads(published.stdout)["services"]
    assert [(s["name"], s["image"], s["port"], s["source"]) for s in services["services"]] == [
        ("db", "postgres:16", 5432, "compose.yml")
    ]
    assert [s.split(" ")[0] for s in services["set_aside"]] == ["app"]
    _code, data = doctor(cli, repo)  # host networking: set aside, saying why
    services = data["services"]
    assert isinstance(services, dict) and services["services"] == []
    assert "services_network = host: declare them in .baton/services.toml" in services["set_aside"][0]


def test_the_inputs_a_repository_names_are_read_from_the_commit_as_a_run_reads_them(
    cli: Cli, tmp_path: Path
) -> None:
    """``.baton/inputs`` names a script and a directory, and a monorepo's lock files lie below the root:
    ``doctor -r`` lists them all and its key is the key a checkout of the commit gives (the files taken
    from the commit's objects, whole), so "this commit: ready" is the truth."""
    from baton.environment.discover import discover

    files = {
        ".baton/setup.sh": "sh scripts/bootstrap.sh\n",
        ".baton/inputs": "scripts/bootstrap.sh\ntools\n",
        "scripts/bootstrap.sh": "make -C tools\n",
        "tools/Makefile": "all:\n\ttrue\n",
        "tools/sub/gen.c": "int main(){}\n",
        "uv.lock": "x\n",
        "web/package-lock.json": "{}\n",  # a monorepo's, below the root: an input too
        "services/api/uv.lock": "y\n",
        "web/node_modules/x/package-lock.json": "{}\n",  # what a setup makes: never
    }
    repo = make_repo(tmp_path / "src", files)
    code, data = doctor(cli, repo)
    setup = data["setup"]
    assert code == 0 and isinstance(setup, dict)
    assert setup["inputs"] == [
        "services/api/uv.lock",
        "uv.lock",
        "web/package-lock.json",
        "scripts/bootstrap.sh",
        "tools",
    ]
    plan = discover(repo)
    assert plan is not None and setup["key"] == plan.key
