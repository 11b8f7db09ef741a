"""Finding a repository's setup in a worktree: each source, their order, a configured setup over them,
the preparation key's inputs, and files that are links or malformed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from baton.environment import BATON_SETUP, CONFIG, COPILOT, DEVCONTAINER, jsonc
from baton.environment.discover import BASH, SH, Unreadable, discover
from baton.environment.plan import Command, expand, setup_env
from baton.environment.testcmd import test_command as find_test_command

DEVCONTAINER_JSON = """{
  // the image is not built: its commands run on the host, in the walls
  "image": "mcr.microsoft.com/devcontainers/python:3.12",
  "containerEnv": {"GREETING": "hello", "URL": "http://example.com/a//b"},
  "remoteEnv": {"GREETING": "hi", "WHERE": "${containerWorkspaceFolder}/x"},
  /* three forms */
  "onCreateCommand": "echo created > created.txt",
  "updateContentCommand": ["npm", "ci"],
  "postCreateCommand": {"deps": "pip install -e .", "hooks": ["pre-commit", "install"],},
  "postStartCommand": "echo started",
}
"""

COPILOT_YML = """
name: "Copilot Setup Steps"
on: workflow_dispatch
env:
  CI: true
jobs:
  copilot-setup-steps:
    runs-on: ubuntu-latest
    env:
      RETRIES: 3
    steps:
      - name: Checkout code
        uses: actions/checkout@v5
      - name: Install deps
        run: |
          npm ci
          npm run build
        working-directory: web
        env:
          NODE_ENV: test
      - run: echo ${{ secrets.TOKEN }}
      - name: Python
        shell: python
        run: print(1)
      - name: Plain sh
        shell: sh
        run: echo sh
"""


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_a_repository_without_a_setup_has_no_plan(tmp_path: Path) -> None:
    assert discover(write(tmp_path, {"README.md": "# x\n", "uv.lock": "x"})) is None


def test_baton_setup_sh_with_its_maintenance(tmp_path: Path) -> None:
    write(tmp_path, {BATON_SETUP: "uv sync\n", ".baton/maintain.sh": "uv sync --frozen\n"})
    plan = discover(tmp_path)
    assert plan is not None and plan.source == BATON_SETUP
    assert plan.commands == (Command("setup.sh", ("bash", BATON_SETUP)),)
    assert plan.maintenance == (Command("maintain.sh", ("bash", ".baton/maintain.sh")),)
    assert b"uv sync --frozen" in plan.text and plan.env == {} and plan.skipped == ()


def test_devcontainer_lifecycle_commands_in_their_three_forms_and_its_env(tmp_path: Path) -> None:
    plan = discover(write(tmp_path, {DEVCONTAINER: DEVCONTAINER_JSON}))
    assert plan is not None and plan.source == DEVCONTAINER
    assert [(c.name, c.argv) for c in plan.commands] == [
        ("onCreateCommand", (*SH, "echo created > created.txt")),
        ("updateContentCommand", ("npm", "ci")),
        ("postCreateCommand.deps", (*SH, "pip install -e .")),
        ("postCreateCommand.hooks", ("pre-commit", "install")),
    ]
    assert [c.argv for c in plan.maintenance] == [("npm", "ci")]
    # remoteEnv over containerEnv; a // inside a string is no comment
    assert plan.env == {
        "GREETING": "hi",
        "URL": "http://example.com/a//b",
        "WHERE": "${containerWorkspaceFolder}/x",
    }
    assert any(s.startswith("postStartCommand") for s in plan.skipped)
    assert any("image" in s for s in plan.skipped)


def test_copilot_setup_steps_run_steps_only(tmp_path: Path) -> None:
    plan = discover(write(tmp_path, {COPILOT: COPILOT_YML}))
    assert plan is not None and plan.source == COPILOT
    assert [(c.name, c.argv, c.cwd, c.env) for c in plan.commands] == [
        ("Install deps", (*BASH, "npm ci\nnpm run build\n"), "web", {"NODE_ENV": "test"}),
        ("Plain sh", ("/bin/sh", "-e", "-c", "echo sh"), "", {}),
    ]
    assert plan.env == {"CI": "true", "RETRIES": "3"}
    skipped = "\n".join(plan.skipped)
    assert "Checkout code (uses: actions/checkout@v5" in skipped
    assert "step 3 (a ${{ }} expression" in skipped and "Python (shell python" in skipped


def test_the_first_source_applies_and_the_others_are_named(tmp_path: Path) -> None:
    write(tmp_path, {BATON_SETUP: "true\n", DEVCONTAINER: "{}", COPILOT: COPILOT_YML})
    plan = discover(tmp_path)
    assert plan is not None and plan.source == BATON_SETUP
    assert f"set aside: {DEVCONTAINER}, {COPILOT}" in plan.why
    os.remove(tmp_path / BATON_SETUP)
    assert discover(tmp_path).source == DEVCONTAINER  # type: ignore[union-attr]


def test_a_configured_setup_overrides_the_repository(tmp_path: Path) -> None:
    write(tmp_path, {BATON_SETUP: "true\n"})
    plan = discover(tmp_path, "make deps")
    assert plan is not None and plan.source == CONFIG
    assert plan.commands == (Command("setup", (*SH, "make deps")),)
    assert BATON_SETUP in plan.why
    assert discover(tmp_path, "  ").source == BATON_SETUP  # type: ignore[union-attr]


def test_the_preparation_key_follows_the_setup_and_the_lock_files(tmp_path: Path) -> None:
    write(
        tmp_path,
        {BATON_SETUP: "uv sync\n", "uv.lock": "a", "requirements-dev.txt": "pytest\n", "notes.txt": "x"},
    )
    first = discover(tmp_path)
    assert first is not None
    assert [name for name, _ in first.inputs] == ["requirements-dev.txt", "uv.lock"]
    (tmp_path / "notes.txt").write_text("not an input")
    assert discover(tmp_path).key == first.key  # type: ignore[union-attr]
    (tmp_path / "uv.lock").write_text("b")
    relocked = discover(tmp_path)
    assert relocked is not None and relocked.key != first.key and relocked.text_key == first.text_key
    (tmp_path / BATON_SETUP).write_text("uv sync --all-extras\n")
    changed = discover(tmp_path)
    assert changed is not None and changed.text_key != first.text_key


def test_a_monorepos_lock_files_below_the_root_are_inputs_too(tmp_path: Path) -> None:
    """Two levels below the root (``web/package-lock.json``, ``services/api/uv.lock``); never in what a
    setup makes (``node_modules``, ``.venv``) nor deeper, nor through a linked directory."""
    write(
        tmp_path,
        {
            BATON_SETUP: "make deps\n",
            "web/package-lock.json": "{}",
            "services/api/uv.lock": "a",
            "services/api/deep/er/Cargo.lock": "too deep",
            "web/node_modules/left-pad/package-lock.json": "made by npm",
            ".venv/lib/requirements.txt": "made",
        },
    )
    (tmp_path / "linked").symlink_to(tmp_path / "services")
    first = discover(tmp_path)
    assert first is not None
    assert [name for name, _ in first.inputs] == ["services/api/uv.lock", "web/package-lock.json"]
    (tmp_path / "services/api/uv.lock").write_text("b")
    relocked = discover(tmp_path)
    assert relocked is not None and relocked.key != first.key and relocked.text_key == first.text_key


def test_links_are_never_followed(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("token\n")
    repo = tmp_path / "repo"
    write(repo, {"README.md": "x"})
    (repo / "Cargo.lock").symlink_to(secret)
    (repo / ".baton").mkdir()
    (repo / ".baton" / "setup.sh").symlink_to(secret)
    with pytest.raises(Unreadable, match="regular file"):
        discover(repo)
    os.remove(repo / ".baton" / "setup.sh")
    (repo / ".baton" / "setup.sh").write_text("true\n")
    plan = discover(repo)
    assert plan is not None and plan.inputs == ()  # the linked lock file is not read


@pytest.mark.parametrize(
    ("name", "text", "said"),
    [
        (DEVCONTAINER, "{ not json", "not JSON"),
        (DEVCONTAINER, '{"postCreateCommand": 3}', "must be a string"),
        (DEVCONTAINER, '{"containerEnv": {"A": 1}}', "object of strings"),
        (COPILOT, "jobs: {other: {}}", "no job 'copilot-setup-steps'"),
    ],
)
def test_a_malformed_setup_is_said(tmp_path: Path, name: str, text: str, said: str) -> None:
    with pytest.raises(Unreadable, match=said):
        discover(write(tmp_path, {name: text}))


def test_jsonc_comments_and_trailing_commas() -> None:
    assert jsonc.loads('{"a": "x // y /* z */", // c\n "b": [1, 2,], /* d */}') == {
        "a": "x // y /* z */",
        "b": [1, 2],
    }
    with pytest.raises(ValueError):
        jsonc.loads('{"a": 1 /* open')


def test_the_setups_env_expands_variables_and_keeps_batons_own() -> None:
    base = {"PATH": "/usr/bin", "HOME": "/k/home"}
    assert expand("${containerEnv:PATH}:/x ${localEnv:NOPE:dflt}", base, "/w") == "/usr/bin:/x dflt"
    extra = {
        "PATH": "${containerEnv:PATH}:${containerWorkspaceFolder}/bin",
        "HOME": "/root",
        "BATON_HOME": "/x",
    }
    assert setup_env(base, extra, "/w") == {"PATH": "/usr/bin:/w/bin", "HOME": "/k/home"}


def test_the_test_command_named_in_the_instruction_files(tmp_path: Path) -> None:
    assert find_test_command(tmp_path) is None
    write(tmp_path, {"CLAUDE.md": "Run `uv run pytest -q` before pushing.\n", "AGENTS.md": "Use `ruff`.\n"})
    assert find_test_command(tmp_path) == ("CLAUDE.md", "uv run pytest -q")
    write(tmp_path, {"AGENTS.md": "Lint with `ruff check`; test with `npm test`.\n"})
    assert find_test_command(tmp_path) == ("AGENTS.md", "npm test")
    for command in ("python3 -m unittest discover -s tests", "python3.12 -m pytest", "go test ./..."):
        write(tmp_path, {"AGENTS.md": f"Test with `{command}`.\n"})
        assert find_test_command(tmp_path) == ("AGENTS.md", command)


def test_a_setup_in_a_container_keys_on_its_image_and_skips_nothing_of_it(tmp_path: Path) -> None:
    root = write(tmp_path, {DEVCONTAINER: '{"image": "localhost/app:1", "postCreateCommand": "make"}'})
    host, inside = discover(root), discover(root, image="localhost/app:1")
    assert host is not None and inside is not None and host.commands == inside.commands
    assert any("the container itself" in s for s in host.skipped)
    assert not any("the container itself" in s for s in inside.skipped)
    other = discover(root, image="localhost/app:2")
    assert other is not None and len({host.key, inside.key, other.key}) == 3  # a new image: set up again


def test_the_environments_inputs_are_found_wherever_projects_keep_them() -> None:
    """Lock files, their manifests and pip's requirements files in every place projects keep them; no
    other file (a README, a requirements file's neighbour, a source file)."""
    from baton.environment.discover import is_input

    inputs = [
        "uv.lock", "web/package-lock.json", "pyproject.toml", "package.json", "services/api/go.mod",
        "requirements.txt", "requirements-dev.txt", "dev-requirements.txt", "test_requirements.txt",
        "constraints.txt", "requirements/tests.txt", "requirements/base.in", "api/requirements/prod.txt",
    ]  # fmt: skip
    others = ["README.md", "requirements/README.md", "src/app.py", "docs/requirements.md", "setup.txt"]
    assert [p for p in inputs if not is_input(p)] == []
    assert [p for p in others if is_input(p)] == []


def test_a_devcontainers_features_and_user_are_named_as_set_aside(tmp_path: Path) -> None:
    """``features`` and ``remoteUser``/``containerUser`` are nothing baton applies: the plan says so, so
    the run's note names them rather than leaving a person to wonder why a feature's tool is missing."""
    feature = '"ghcr.io/devcontainers/features/go:1": {}'
    spec = f'{{"image": "x", "features": {{{feature}}}, "remoteUser": "vscode", "postCreateCommand": "make"}}'
    plan = discover(write(tmp_path, {DEVCONTAINER: spec}))
    assert plan is not None
    said = "\n".join(plan.skipped)
    assert "features (Dev Container Features install into an image" in said
    assert "remoteUser (the commands run as baton's own user)" in said


def test_a_repository_names_more_inputs_in_baton_inputs(tmp_path: Path) -> None:
    """``.baton/inputs``: a file and a directory (every file under it) the setup reads; a change in
    either is a new key, a file elsewhere is not; a link is counted as a link, never followed."""
    write(
        tmp_path,
        {
            BATON_SETUP: "sh scripts/bootstrap.sh\n",
            ".baton/inputs": "# what the setup reads\nscripts/bootstrap.sh\ntools/  # built\nnot/yet\n",
            "scripts/bootstrap.sh": "make tools\n",
            "tools/a/gen.c": "int main(){}\n",
            "src/app.py": "print()\n",
        },
    )
    first = discover(tmp_path)
    assert first is not None
    assert [name for name, _ in first.inputs] == ["scripts/bootstrap.sh", "tools", "not/yet"]
    (tmp_path / "src/app.py").write_text("print(1)\n")
    assert discover(tmp_path).key == first.key  # type: ignore[union-attr]
    (tmp_path / "tools/a/gen.c").write_text("int main(){return 1;}\n")
    second = discover(tmp_path)
    assert second is not None and second.key != first.key and second.text_key == first.text_key
    (tmp_path / "not").mkdir()
    (tmp_path / "not/yet").write_text("made later\n")
    third = discover(tmp_path)
    assert third is not None and third.key != second.key
    outside = tmp_path.parent / "outside.txt"
    outside.write_text("secret\n")
    (tmp_path / "tools/a/link").symlink_to(outside)
    assert discover(tmp_path).key == third.key  # type: ignore[union-attr]  # a link under it: not followed


@pytest.mark.parametrize("line", ["/etc/passwd", "../other/file", "a/../../b", "tab\there"])
def test_a_named_input_outside_the_repository_is_refused_with_its_line(tmp_path: Path, line: str) -> None:
    write(tmp_path, {BATON_SETUP: "true\n", ".baton/inputs": f"ok.txt\n{line}\n"})
    with pytest.raises(Unreadable, match=r"\.baton/inputs, line 2: .* is not a path inside the repository"):
        discover(tmp_path)
