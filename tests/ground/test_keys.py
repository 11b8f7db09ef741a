"""Keys: thread validation and repo canonicalisation, before anything is written."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from baton.errors import BadInput
from baton.keys import Key, make_key, parse_repo, validate_agent, validate_thread


def _git_init(path: Path, bare: bool = False) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["git", "init", "--quiet", *(["--bare"] if bare else []), str(path)], check=True, capture_output=True
    )
    return path


# -- threads --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("thread", "problem"),
    [
        ("../x", "path separators"),
        ("a/b", "path separators"),
        ("a\\b", "path separators"),
        ("", "empty"),
        ("x" * 200, "200 characters"),
        ("x" * 129, "limit is 128"),
        ("-rf", "must not start with '.' or '-'"),
        (".hidden", "must not start with '.' or '-'"),
        ("issue 42", "not allowed"),
        ("issue\t42", "not allowed"),
        ("issue\x0042", "not allowed"),
        ("issue\x1b[31m", "not allowed"),
        ("issue-42\n", "not allowed"),
        ("issue-42\r", "not allowed"),
        ("ïssue", "not allowed"),
        ("a..b", "'..'"),
        ("fix.", "end with '.'"),
        ("x.lock", "'.lock'"),
    ],
)
def test_bad_threads_are_rejected_naming_the_problem(thread: str, problem: str) -> None:
    with pytest.raises(BadInput, match="thread") as info:
        validate_thread(thread)
    assert problem in str(info.value)


@pytest.mark.parametrize("thread", ["issue-42", "pr-7", "task_123", "plan-setup", "v1.2", "A", "x" * 128])
def test_good_threads_are_returned_unchanged(thread: str) -> None:
    assert validate_thread(thread) == thread


def test_unknown_agent_lists_the_known_ones() -> None:
    with pytest.raises(BadInput, match=r"unknown agent 'nope': choose one of claude, fake"):
        validate_agent("nope", ["fake", "claude"])
    assert validate_agent("fake", ["fake"]) == "fake"


# -- remote repos ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec",
    [
        "https://github.com/acme/api",
        "https://github.com/acme/api.git",
        "https://github.com/acme/api/",
        "https://GitHub.COM/acme/api.git",
        "http://github.com/acme/api",
        "ssh://git@github.com/acme/api.git",
        "ssh://git@github.com:22/acme/api",
        "git://github.com/acme/api.git",
        "git@github.com:acme/api.git",
        "git@github.com:acme/api",
        "github.com:acme/api",
        "  https://github.com/acme/api.git  ",
    ],
)
def test_repo_urls_canonicalise_to_one_slug(spec: str) -> None:
    repo = parse_repo(spec)
    assert repo.slug == "github.com/acme/api"
    assert repo.local is False
    assert repo.url == spec.strip()
    assert str(repo) == repo.slug


def test_repo_path_case_is_kept_but_host_is_lowercased() -> None:
    assert (
        parse_repo("https://GitLab.Example.com/Group/Sub/Proj.git").slug
        == "gitlab.example.com/Group/Sub/Proj"
    )


def test_https_port_is_part_of_the_slug() -> None:
    assert parse_repo("https://git.example.com:8443/a/b.git").slug == "git.example.com_8443/a/b"


@pytest.mark.parametrize(
    "spec",
    [
        "https://user:s3cret@github.com/acme/api.git",
        "https://ghp_token@github.com/acme/api.git",
        "http://x-access-token:abc@github.com/acme/api",
        "ssh://git:pw@github.com/acme/api",
    ],
)
def test_credentials_in_url_are_refused_without_echoing_them(spec: str) -> None:
    with pytest.raises(BadInput, match="credentials") as info:
        parse_repo(spec)
    assert "BATON_GIT_TOKEN" in str(info.value)
    for secret in ("s3cret", "ghp_token", "abc", "pw@"):
        assert secret not in str(info.value)


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("ftp://example.com/a/b", "scheme 'ftp'"),
        ("https:///acme/api", "no host"),
        ("https://github.com/", "no usable path"),
        ("https://github.com/acme/../api", "no usable path"),
        ("https://github.com/acme/a%20b", "no usable path"),
        ("https://github.com/acme/api\x00", "control characters"),
        # found by tests/ground/test_properties_keys.py: each raised something other than BadInput, or
        # gave a slug that leaves the directory it is joined under
        ("https://github.com:abc/acme/api", "malformed"),
        ("ssh://git@github.com:99999/acme/api", "malformed"),
        ("http://[::1/acme/api", "malformed"),
        ("https://../acme/api", "invalid host '..'"),
        ("https://./acme/api", "invalid host '.'"),
        ("..:acme/api", "invalid host '..'"),
        ("https://a\\..\\b/acme/api", "invalid host"),
        ("https://%2e%2e/acme/api", "invalid host"),
        ("~no-such-user-for-baton/api", "home directory"),
        ("a" * 300, "cannot be read"),
    ],
)
def test_malformed_repo_specs_are_rejected(spec: str, problem: str) -> None:
    with pytest.raises(BadInput) as info:
        parse_repo(spec)
    assert problem in str(info.value)


# -- local repos ----------------------------------------------------------------------------------


def test_local_repo_slug_is_stable_and_named_after_the_directory(tmp_path: Path) -> None:
    repo = _git_init(tmp_path / "api")
    first = parse_repo(str(repo))
    assert first.local is True
    assert first.url == str(repo.resolve())
    assert first.slug.startswith("local/api-")
    assert len(first.slug) == len("local/api-") + 8
    assert parse_repo(str(repo)) == first
    assert parse_repo(str(repo) + "/") == first


def test_local_repo_slug_follows_symlinks_to_the_real_path(tmp_path: Path) -> None:
    repo = _git_init(tmp_path / "api")
    link = tmp_path / "link"
    link.symlink_to(repo)
    assert parse_repo(str(link)).slug == parse_repo(str(repo)).slug


def test_two_local_repos_with_the_same_basename_get_distinct_slugs(tmp_path: Path) -> None:
    one = parse_repo(str(_git_init(tmp_path / "a" / "api")))
    two = parse_repo(str(_git_init(tmp_path / "b" / "api")))
    assert one.slug.startswith("local/api-")
    assert two.slug.startswith("local/api-")
    assert one.slug != two.slug


def test_bare_local_repo_is_accepted_without_its_git_suffix(tmp_path: Path) -> None:
    repo = parse_repo(str(_git_init(tmp_path / "api.git", bare=True)))
    assert repo.local is True
    assert repo.slug.startswith("local/api-")


def test_local_repo_name_is_made_safe_for_a_path(tmp_path: Path) -> None:
    repo = parse_repo(str(_git_init(tmp_path / "my repo")))
    assert repo.slug.startswith("local/my_repo-")


def test_nonexistent_path_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="does not exist"):
        parse_repo(str(tmp_path / "missing"))


def test_directory_that_is_not_a_git_repo_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    with pytest.raises(BadInput, match="not a git repository"):
        parse_repo(str(tmp_path / "plain"))


def test_file_urls_are_treated_as_local_paths(tmp_path: Path) -> None:
    repo = _git_init(tmp_path / "api")
    via_url = parse_repo(f"file://{repo}")
    assert via_url.local is True
    assert via_url == parse_repo(str(repo))


def test_file_url_with_percent_encoding_is_decoded(tmp_path: Path) -> None:
    repo = _git_init(tmp_path / "my repo")
    assert parse_repo(f"file://{tmp_path}/my%20repo") == parse_repo(str(repo))


def test_file_url_to_a_missing_path_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="does not exist"):
        parse_repo(f"file://{tmp_path}/missing")


def test_scp_like_string_that_exists_locally_is_a_local_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # "host.name:path" is scp syntax unless a local path of that name exists
    monkeypatch.chdir(tmp_path)
    _git_init(tmp_path / "example.com:acme")
    assert parse_repo("example.com:acme").local is True


# -- keys -----------------------------------------------------------------------------------------


def test_make_key_validates_all_three_parts(tmp_path: Path) -> None:
    key = make_key("fake", "git@github.com:acme/api.git", "issue-42", ["fake", "claude"])
    assert key == Key("fake", parse_repo("git@github.com:acme/api.git"), "issue-42")
    assert str(key) == "fake:github.com/acme/api:issue-42"
    assert key.id == "fake/github.com/acme/api/issue-42"
    with pytest.raises(BadInput, match="unknown agent"):
        make_key("nope", "git@github.com:acme/api.git", "issue-42", ["fake"])
    with pytest.raises(BadInput, match="thread"):
        make_key("fake", "git@github.com:acme/api.git", "../etc", ["fake"])
    with pytest.raises(BadInput, match="does not exist"):
        make_key("fake", str(tmp_path / "nope"), "issue-42", ["fake"])
