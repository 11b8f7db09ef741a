"""The forge configuration: config.toml's [forge.*] and [repo.*] tables → objects, strictly."""

from __future__ import annotations

from pathlib import Path

import pytest

from baton.errors import BadInput
from baton.forge.data.config import (
    BotPolicy,
    Checks,
    ForgeConfig,
    ForgeSettings,
    MergePolicy,
    Reply,
    RepoConfig,
    TriggerConfig,
    Untrusted,
)
from baton.forge.data.model import Budget, ForgeKind, Trigger
from baton.forge.kinds.configured import load_forges
from baton.models import Access, Environment, OnInstructions, OnPermission

AGENTS = ("claude", "codex", "gemini")

GITHUB = """
[forge.github]
kind = "github"
api_url = "https://api.github.com"
web_url = "https://github.com"
token_env = "BATON_GITHUB_TOKEN"
user = "baton-bot"
mention = "@baton"
"""

FULL = (
    GITHUB
    + """
[forge.gitea]
kind = "gitea"
api_url = "https://git.example.org/api/v1/"
token_env = "BATON_GITEA_TOKEN"
user = "baton"

[repo."acme/api"]
forge = "github"
agent = "claude"
access = "edit"
trusted = "maintain"
allow = ["alice"]
deny = ["mallory"]
only_allow = false
bots = "allow-list"
bot_allow = ["renovate[bot]"]
untrusted = "quote"
ci_budget = 5
daily_turns = 10
draft = false
base = "develop"
clone_url = "git@github.com:acme/api.git"
timeout = 1800

[repo."acme/api".triggers]
mention = { access = "edit" }
label = { names = ["baton", "agent:codex"], access = "full", agent = "codex" }
assign = { access = "read", agent = "gemini" }

[repo."Acme/Web"]
forge = "gitea"
"""
)


def _home(tmp_path: Path, text: str | None = None, settings: str = "") -> Path:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    if text is not None:
        (home / "config.toml").write_text(settings + text)
    return home


def _load(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> ForgeSettings:
    return load_forges(_home(tmp_path, text), environ=environ or {}, agents=AGENTS)


def _refused(tmp_path: Path, text: str, *needles: str) -> str:
    with pytest.raises(BadInput) as info:
        _load(tmp_path, text)
    message = str(info.value)
    assert str(tmp_path / "home" / "config.toml") in message
    for needle in needles:
        assert needle in message, message
    return message


def test_no_file_and_no_tables_are_empty_settings(tmp_path: Path) -> None:
    assert load_forges(_home(tmp_path), environ={}) == ForgeSettings()
    assert load_forges(_home(tmp_path, "ttl_days = 3\n"), environ={}) == ForgeSettings()


def test_the_toml_becomes_objects(tmp_path: Path) -> None:
    forges = _load(tmp_path, FULL)
    assert forges.source == tmp_path / "home" / "config.toml"
    assert forges.forges["github"] == ForgeConfig(
        "github",
        ForgeKind.GITHUB,
        "https://api.github.com",
        "https://github.com",
        "BATON_GITHUB_TOKEN",
        "baton-bot",
        "@baton",
    )
    gitea = forges.forges["gitea"]
    assert (gitea.kind, gitea.api_url, gitea.web_url) == (
        ForgeKind.GITEA,
        "https://git.example.org/api/v1",
        "https://git.example.org",
    )
    assert gitea.mention == "@baton"  # '@' + its user
    api = forges.repo("github", "acme/api")
    assert api == RepoConfig(
        name="acme/api",
        forge="github",
        agent="claude",
        access=Access.EDIT,
        trusted="maintain",
        allow=("alice",),
        deny=("mallory",),
        only_allow=False,
        bots=BotPolicy.ALLOW_LIST,
        bot_allow=("renovate[bot]",),
        untrusted=Untrusted.QUOTE,
        budget=Budget(per_failure=5, per_day=10),
        draft=False,
        base="develop",
        clone_url="git@github.com:acme/api.git",
        timeout=1800.0,
        triggers={
            Trigger.MENTION: TriggerConfig(Trigger.MENTION, Access.EDIT),
            Trigger.LABEL: TriggerConfig(Trigger.LABEL, Access.FULL, "codex", ("baton", "agent:codex")),
            Trigger.ASSIGN: TriggerConfig(Trigger.ASSIGN, Access.READ, "gemini"),
        },
    )
    assert api.repo_url(forges.forges["github"]) == "git@github.com:acme/api.git"
    assert api.agent_for(Trigger.LABEL) == "codex"
    assert api.agent_for(Trigger.MENTION) == "claude"
    assert api.agent_for(Trigger.FEEDBACK) == "claude"
    assert api.trigger(Trigger.FEEDBACK) == TriggerConfig(Trigger.FEEDBACK, Access.EDIT)
    label = api.trigger(Trigger.LABEL)
    assert label is not None and label.matches_label("BATON") and not label.matches_label("bat")


def test_defaults_of_a_repo(tmp_path: Path) -> None:
    forges = _load(tmp_path, GITHUB + '[repo."acme/api"]\n')
    repo = forges.repo("github", "acme/api")
    assert repo is not None
    assert repo.forge == "github"  # the only forge
    assert (repo.agent, repo.access, repo.trusted) == ("claude", Access.EDIT, "write")
    assert (repo.allow, repo.deny, repo.only_allow, repo.bot_allow) == ((), (), False, ())
    assert (repo.bots, repo.untrusted) == (BotPolicy.NONE, Untrusted.DROP)
    assert repo.budget == Budget(per_failure=3, per_day=20)
    assert (repo.draft, repo.base, repo.clone_url, repo.timeout) == (True, None, None, None)
    assert repo.reply is Reply.COMMENT  # the agent's answer, a reply of its own on the forge
    assert repo.resolve_threads is False  # review threads are left for people to resolve
    assert repo.triggers == {Trigger.MENTION: TriggerConfig(Trigger.MENTION, Access.EDIT)}
    assert repo.trigger(Trigger.LABEL) is None and repo.trigger(Trigger.ASSIGN) is None
    assert repo.repo_url(forges.forges["github"]) == "https://github.com/acme/api.git"


@pytest.mark.parametrize("reply", list(Reply))
def test_where_the_agents_answer_goes_is_the_repos_reply(tmp_path: Path, reply: Reply) -> None:
    repo = _load(tmp_path, GITHUB + f'[repo."acme/api"]\nreply = "{reply.value}"\n').repo(
        "github", "acme/api"
    )
    assert repo is not None and repo.reply is reply


def test_an_unknown_reply_is_refused_naming_the_key_and_the_words(tmp_path: Path) -> None:
    _refused(tmp_path, GITHUB + '[repo."acme/api"]\nreply = "thread"\n', "reply", "comment, status, none")


def test_on_permission_is_refuse_unless_the_repo_asks_and_nothing_else_is_taken(tmp_path: Path) -> None:
    plain = _load(tmp_path, GITHUB + '[repo."acme/api"]\n').repo("github", "acme/api")
    asking = _load(tmp_path, GITHUB + '[repo."acme/api"]\non_permission = "ask"\n').repo("github", "acme/api")
    assert plain is not None and plain.on_permission is OnPermission.REFUSE
    assert asking is not None and asking.on_permission is OnPermission.ASK
    _refused(
        tmp_path, GITHUB + '[repo."acme/api"]\non_permission = "allow"\n', "on_permission", "refuse, ask"
    )


def test_on_instructions_change_is_the_settings_unless_the_repo_says(tmp_path: Path) -> None:
    plain = _load(tmp_path, GITHUB + '[repo."acme/api"]\n').repo("github", "acme/api")
    fresh = _load(tmp_path, GITHUB + '[repo."acme/api"]\non_instructions_change = "fresh"\n').repo(
        "github", "acme/api"
    )
    assert plain is not None and plain.on_instructions_change is None
    assert fresh is not None and fresh.on_instructions_change is OnInstructions.FRESH
    _refused(
        tmp_path,
        GITHUB + '[repo."acme/api"]\non_instructions_change = "ignore"\n',
        "on_instructions_change",
        "tell, fresh",
    )


def test_resolve_threads_is_a_flag_refused_when_it_is_not_one(tmp_path: Path) -> None:
    loaded = _load(tmp_path, GITHUB + '[repo."acme/api"]\nresolve_threads = true\n')
    assert loaded.repo("github", "acme/api").resolve_threads is True  # type: ignore[union-attr]
    _refused(tmp_path, GITHUB + '[repo."acme/api"]\nresolve_threads = "yes"\n', "resolve_threads")


def test_a_repo_built_in_code_gets_the_mention_at_its_access() -> None:
    repo = RepoConfig("acme/api", "github", access=Access.READ)
    assert repo.triggers == {Trigger.MENTION: TriggerConfig(Trigger.MENTION, Access.READ)}
    assert RepoConfig("acme/api", "github", triggers={}).triggers == {}


def test_the_mention_trigger_defaults_to_the_repo_access_and_labels_to_baton(tmp_path: Path) -> None:
    text = (
        GITHUB + '[repo."acme/api"]\naccess = "full"\n[repo."acme/api".triggers]\nmention = {}\nlabel = {}\n'
    )
    repo = _load(tmp_path, text).repo("github", "acme/api")
    assert repo is not None
    assert repo.triggers == {
        Trigger.MENTION: TriggerConfig(Trigger.MENTION, Access.FULL),
        Trigger.LABEL: TriggerConfig(Trigger.LABEL, Access.FULL, None, ("baton",)),
    }


def test_an_empty_triggers_table_enables_none(tmp_path: Path) -> None:
    repo = _load(tmp_path, GITHUB + '[repo."acme/api".triggers]\n').repo("github", "acme/api")
    assert repo is not None and repo.triggers == {}
    assert repo.trigger(Trigger.MENTION) is None


def test_repo_names_match_in_any_case(tmp_path: Path) -> None:
    forges = _load(tmp_path, FULL)
    web = forges.repo("gitea", "acme/web")
    assert web is not None and web.name == "Acme/Web"
    assert forges.repo("gitea", "ACME/WEB") is web
    assert forges.repo("github", "ACME/api") is not None
    assert forges.repo("github", "acme/web") is None  # another forge's
    assert forges.repo("nope", "acme/api") is None


def test_one_repo_twice_in_different_case_is_refused(tmp_path: Path) -> None:
    _refused(tmp_path, GITHUB + '[repo."acme/api"]\n[repo."ACME/API"]\n', 'repo."ACME/API"', "again")


def test_forges_of_a_kind(tmp_path: Path) -> None:
    text = FULL + '[forge.ghes]\nkind = "github"\napi_url = "https://ghe.example.com/api/v3"\nuser = "b"\n'
    forges = _load(tmp_path, text)
    assert [f.name for f in forges.forges_of_kind(ForgeKind.GITHUB)] == ["github", "ghes"]
    assert forges.forges["ghes"].web_url == "https://ghe.example.com"
    assert forges.forges["ghes"].token_env == "BATON_GITHUB_TOKEN"  # the kind's default
    assert forges.forge_of_kind("gitea") is forges.forges["gitea"]
    assert forges.forge_of_kind("github") is None  # ambiguous without the delivery's URL
    assert forges.forge_of_kind("github", "https://ghe.example.com/acme/api") is forges.forges["ghes"]
    assert forges.forge_of_kind("github", "https://github.com/acme/api") is forges.forges["github"]
    assert forges.forge_of_kind("github", "https://elsewhere.example/acme/api") is None
    assert ForgeSettings().forge_of_kind(ForgeKind.GITHUB) is None


def test_the_kind_defaults_to_a_forge_named_after_it(tmp_path: Path) -> None:
    forge = _load(tmp_path, '[forge.github]\nuser = "me"\n').forges["github"]
    assert (forge.kind, forge.api_url, forge.web_url) == (
        ForgeKind.GITHUB,
        "https://api.github.com",
        "https://github.com",
    )
    assert forge.mention == "@me"
    gitea = _load(tmp_path, '[forge.gitea]\nweb_url = "http://localhost:3000"\nuser = "me"\n').forges["gitea"]
    assert gitea.api_url == "http://localhost:3000/api/v1"


def test_the_token_comes_from_the_named_variable_and_is_never_shown(tmp_path: Path) -> None:
    secret = "ghp_" + "s3cr3t" * 6
    forges = _load(tmp_path, FULL)
    forge = forges.forges["github"]
    assert forge.token({"BATON_GITHUB_TOKEN": f"{secret}\n"}) == secret
    for text in (repr(forge), str(forge), repr(forges), str(forges.repos)):
        assert secret not in text
    for environ in ({}, {"BATON_GITHUB_TOKEN": ""}, {"BATON_GITHUB_TOKEN": "  "}):
        with pytest.raises(BadInput, match="BATON_GITHUB_TOKEN") as info:
            forge.token(environ)
        assert "github" in str(info.value)


def test_the_token_is_read_from_the_process_environment_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATON_GITHUB_TOKEN", "tok")
    assert _load(tmp_path, FULL).forges["github"].token() == "tok"


def test_the_settings_file_keeps_its_flat_keys_beside_the_tables(tmp_path: Path) -> None:
    from baton.settings import load_settings

    home = _home(tmp_path, FULL, settings="ttl_days = 3\n")
    assert load_forges(home, environ={}, agents=AGENTS).repo("github", "acme/api") is not None
    assert load_settings(environ={"BATON_HOME": str(home)}).ttl_days == 3.0


def test_the_agents_default_to_the_registry(tmp_path: Path) -> None:
    home = _home(tmp_path, GITHUB + '[repo."acme/api"]\nagent = "codex"\n')
    repo = load_forges(home, environ={}).repo("github", "acme/api")
    assert repo is not None and repo.agent == "codex"
    _home(tmp_path, GITHUB + '[repo."acme/api"]\nagent = "nobody"\n')
    with pytest.raises(BadInput, match=r'repo\."acme/api"\.agent names no known agent'):
        load_forges(home, environ={})


# --- BATON_FORGE_CONFIG ----------------------------------------------------------------------------


def test_another_file_instead_of_config_toml(tmp_path: Path) -> None:
    home = _home(tmp_path, "ttl_days = 3\n")
    (home / "forges.toml").write_text(FULL)
    forges = load_forges(home, environ={"BATON_FORGE_CONFIG": "forges.toml"}, agents=AGENTS)
    assert forges.source == home / "forges.toml"
    assert set(forges.forges) == {"github", "gitea"}
    absolute = load_forges(home, environ={"BATON_FORGE_CONFIG": str(home / "forges.toml")}, agents=AGENTS)
    assert absolute == forges


def test_another_file_is_strict_too(tmp_path: Path) -> None:
    home = _home(tmp_path)
    (home / "forges.toml").write_text("ttl_days = 3\n" + GITHUB)
    with pytest.raises(BadInput, match=r"forges\.toml: unknown key ttl_days"):
        load_forges(home, environ={"BATON_FORGE_CONFIG": "forges.toml"}, agents=AGENTS)
    with pytest.raises(BadInput, match=r"BATON_FORGE_CONFIG names .*missing\.toml, which is not a file"):
        load_forges(home, environ={"BATON_FORGE_CONFIG": "missing.toml"}, agents=AGENTS)
    (home / "config.toml").write_text(GITHUB)
    (home / "forges.toml").write_text(GITHUB)
    with pytest.raises(BadInput, match="keep them in one"):
        load_forges(home, environ={"BATON_FORGE_CONFIG": "forges.toml"}, agents=AGENTS)


# --- strictness: every error names the file and the key ---------------------------------------------


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    _refused(tmp_path, "[forge.github\n", "is not valid TOML")


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ('forge = "github"\n', ("forge must be a table",)),
        ("repo = 3\n", ("repo must be a table",)),
        ('[forge]\ngithub = "x"\n', ("forge.github must be a table",)),
        (GITHUB + "colour = 1\n", ("unknown key forge.github.colour", "known: kind, api_url")),
        (
            GITHUB.replace('"github"\napi', '"bitbucket"\napi'),
            ("forge.github.kind must be one of github, gitea, gitlab",),
        ),
        ('[forge.mine]\nuser = "me"\n', ("forge.mine.kind must be one of github, gitea, gitlab, not ''",)),
        ("[forge.github]\nkind = 3\n", ("forge.github.kind must be a string, not 3",)),
        ('[forge.github]\nkind = "github"\n', ("forge.github.user is required",)),
        ('[forge.github]\nuser = "bad login"\n', ("forge.github.user must be a login",)),
        ('[forge.github]\nuser = "me"\nmention = "baton"\n', ("forge.github.mention must be '@'",)),
        ('[forge."git hub"]\nuser = "me"\n', ('forge."git hub": a forge\'s name',)),
        ('[forge."a:b"]\nkind = "github"\nuser = "me"\n', ('forge."a:b": a forge\'s name',)),
        ('[forge.gitea]\nuser = "me"\n', ("forge.gitea.api_url is required for a gitea forge",)),
        (
            '[forge.gitea]\nuser = "me"\napi_url = "https://h.example/gitea-api"\n',
            ("forge.gitea.web_url is required when api_url does not end in /api/v1",),
        ),
        (
            '[forge.github]\nuser = "me"\napi_url = "ftp://h.example"\n',
            ("forge.github.api_url must be an http(s)",),
        ),
        (
            '[forge.github]\nuser = "me"\napi_url = "api.github.com"\n',
            ("forge.github.api_url must be an http(s)",),
        ),
        ('[forge.github]\nuser = "me"\napi_url = "https://h.example/?x=1"\n', ("forge.github.api_url",)),
        ('[forge.github]\nuser = "me"\napi_url = "https://h.example:99999"\n', ("forge.github.api_url",)),
        ('[forge.github]\nuser = "me"\nweb_url = "https:///x"\n', ("forge.github.web_url must be",)),
        (
            '[forge.github]\nuser = "me"\ntoken_env = "my token"\n',
            ("forge.github.token_env must be the NAME",),
        ),
        ('[forge.github]\nuser = "me"\ntoken_env = 5\n', ("forge.github.token_env must be a string",)),
    ],
)
def test_bad_forge_tables_are_refused_naming_the_key(
    tmp_path: Path, text: str, needles: tuple[str, ...]
) -> None:
    _refused(tmp_path, text, *needles)


@pytest.mark.parametrize(
    "url",
    [
        "https://user:hunter2-secret@api.github.com",
        "https://hunter2-secret@api.github.com",
        "https://x-access-token:hunter2-secret@git.example.org/api/v1",
    ],
)
def test_urls_with_credentials_are_refused_without_echoing_them(tmp_path: Path, url: str) -> None:
    for key in ("api_url", "web_url"):
        message = _refused(tmp_path, f'[forge.github]\nuser = "me"\n{key} = "{url}"\n', f"forge.github.{key}")
        assert "hunter2" not in message and "without credentials" in message
    text = GITHUB + f'[repo."acme/api"]\nclone_url = "{url}/acme/api.git"\n'
    message = _refused(tmp_path, text, 'repo."acme/api".clone_url')
    assert "hunter2" not in message


@pytest.mark.parametrize(
    "token",
    [
        "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
        "github_pat_11ABC",
        "0123456789abcdef0123456789abcdef01234567",
    ],
)
def test_a_token_pasted_as_token_env_is_refused_and_never_echoed(tmp_path: Path, token: str) -> None:
    message = _refused(
        tmp_path, f'[forge.github]\nuser = "me"\ntoken_env = "{token}"\n', "forge.github.token_env"
    )
    assert token not in message and "never the token itself" in message


R = 'repo."acme/api".'
T = '[repo."acme/api".triggers]\n'


def test_repos_need_a_forge(tmp_path: Path) -> None:
    _refused(tmp_path, '[repo."acme/api"]\n', f"{R}forge names no configured forge", "[forge.<name>]")
    _refused(
        tmp_path,
        FULL + '[repo."acme/x"]\n',
        'repo."acme/x".forge is required: several forges',
        "github, gitea",
    )
    _refused(
        tmp_path, GITHUB + f'[{R[:-1]}]\nforge = "gitlab"\n', f"{R}forge names no configured forge: 'gitlab'"
    )


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("colour = 1", f"unknown key {R}colour (known: forge, agent"),
        ('agent = "gpt"', f"{R}agent names no known agent: 'gpt' (known: claude, codex, gemini)"),
        ("agent = 1", f"{R}agent must be a string"),
        ('access = "write"', f"{R}access must be one of read, edit, full, not 'write'"),
        ('trusted = "read"', f"{R}trusted must be one of write, maintain, admin"),
        ('allow = "alice"', f"{R}allow must be a list of logins"),
        ('deny = ["ok", "not ok"]', f"{R}deny must be a list of logins; 'not ok'"),
        ("bot_allow = [1]", f"{R}bot_allow must be a list of logins; 1"),
        ('only_allow = "yes"', f"{R}only_allow must be true or false"),
        ('bots = "some"', f"{R}bots must be one of none, allow-list, all"),
        ('untrusted = "ignore"', f"{R}untrusted must be one of drop, quote"),
        ("ci_budget = -1", f"{R}ci_budget must be a whole number"),
        ("daily_turns = 2.5", f"{R}daily_turns must be a whole number"),
        ("ci_budget = true", f"{R}ci_budget must be a whole number"),
        ("draft = 1", f"{R}draft must be true or false"),
        ('base = "-x"', f"{R}base must be a branch name"),
        ('base = "a..b"', f"{R}base must be a branch name"),
        ('clone_url = "--upload-pack=x"', f"{R}clone_url must be"),
        ('clone_url = "ext::sh -c x"', f"{R}clone_url must be"),
        ('clone_url = "ext::sh"', f"{R}clone_url must be"),
        ('clone_url = "fd::3"', f"{R}clone_url must be"),
        ('clone_url = "relative/path.git"', f"{R}clone_url must be"),
        ('clone_url = "ftp://host/acme/api.git"', f"{R}clone_url must be"),
        ("timeout = 0", f"{R}timeout must be a number of seconds > 0"),
        ('timeout = "1h"', f"{R}timeout must be a number"),
        ("timeout = inf", f"{R}timeout must be a number"),
        ("triggers = 1", f"{R}triggers must be a table"),
        (T + "feedback = {}", f"unknown key {R}triggers.feedback (known: mention, label, assign)"),
        (T + "mention = true", f"{R}triggers.mention must be a table"),
        (T + 'mention = { names = ["x"] }', f"unknown key {R}triggers.mention.names"),
        (T + 'label = { access = "admin" }', f"{R}triggers.label.access must be one of read, edit, full"),
        (T + 'label = { agent = "gpt" }', f"{R}triggers.label.agent names no known agent"),
        (T + "label = { names = [] }", f"{R}triggers.label.names must name at least one label"),
        (T + 'label = { names = "baton" }', f"{R}triggers.label.names must be a list of labels"),
        (T + f'label = {{ names = ["{"x" * 51}"] }}', f"{R}triggers.label.names must be a list of labels"),
        (T + "assign = { access = 1 }", f"{R}triggers.assign.access must be a string"),
    ],
)
def test_bad_repo_tables_are_refused_naming_the_key(tmp_path: Path, body: str, needle: str) -> None:
    _refused(tmp_path, GITHUB + f"[{R[:-1]}]\n{body}\n", needle)


@pytest.mark.parametrize(
    "name",
    ["acme", "acme/api/x", "/api", "acme/", "ac me/api", "acme/..", "acme/.", "-acme/api", "a" * 101 + "/api",
     "acme/" + "b" * 101, "acme/api\n", "acme\\api", "acme/a@b"],
)  # fmt: skip
def test_a_repo_that_is_not_owner_slash_name_is_refused(tmp_path: Path, name: str) -> None:
    _refused(tmp_path, GITHUB + f"[repo.{_quoted(name)}]\n", "a repository is 'owner/name'")


def _quoted(name: str) -> str:
    import json

    return json.dumps(name)


@pytest.mark.parametrize(
    "url",
    ["https://git.example.org/acme/api.git", "http://localhost:3000/acme/api.git", "ssh://git@host/acme/api.git",
     "git@github.com:acme/api.git", "/srv/git/acme/api.git", "file:///srv/git/acme/api.git"],
)  # fmt: skip
def test_clone_urls_that_are_accepted(tmp_path: Path, url: str) -> None:
    repo = _load(tmp_path, GITHUB + f'[repo."acme/api"]\nclone_url = "{url}"\n').repo("github", "acme/api")
    assert repo is not None and repo.clone_url == url


# -- the merge policy ---------------------------------------------------------------------------------------


def test_the_merge_policy_is_off_unless_a_repo_opts_in(tmp_path: Path) -> None:
    repo = _load(tmp_path, GITHUB + '[repo."acme/api"]\n').repo("github", "acme/api")
    assert repo is not None and repo.merge is MergePolicy.OFF
    assert RepoConfig("acme/api", "github").merge is MergePolicy.OFF


@pytest.mark.parametrize("merge", list(MergePolicy))
def test_the_merge_policy_is_the_repos_merge(tmp_path: Path, merge: MergePolicy) -> None:
    repo = _load(tmp_path, GITHUB + f'[repo."acme/api"]\nmerge = "{merge.value}"\n').repo(
        "github", "acme/api"
    )
    assert repo is not None and repo.merge is merge


@pytest.mark.parametrize(
    ("value", "shown"),
    [('"merge"', "'merge'"), ('"Auto"', "'Auto'"), ("true", "True"), ('""', "''"), ("1", "1")],
)
def test_a_bad_merge_policy_is_refused_naming_the_key_and_the_choices(
    tmp_path: Path, value: str, shown: str
) -> None:
    message = _refused(tmp_path, GITHUB + f'[repo."acme/api"]\nmerge = {value}\n', 'repo."acme/api".merge')
    assert "off, ready, auto" in message or "must be a string" in message, message
    assert shown in message, message


def test_a_repo_without_ci_says_so_and_anything_else_is_refused(tmp_path: Path) -> None:
    plain = _load(tmp_path, GITHUB + '[repo."acme/api"]\n').repo("github", "acme/api")
    bare = _load(tmp_path, GITHUB + '[repo."acme/api"]\nchecks = "none"\n').repo("github", "acme/api")
    assert plain is not None and plain.checks is Checks.EXPECTED
    assert bare is not None and bare.checks is Checks.NONE
    _refused(tmp_path, GITHUB + '[repo."acme/api"]\nchecks = "off"\n', "checks", "expected, none")


def test_a_repo_may_name_its_environment_setup(tmp_path: Path) -> None:
    plain = _load(tmp_path, GITHUB + '[repo."acme/api"]\n').repo("github", "acme/api")
    named = _load(tmp_path, GITHUB + '[repo."acme/api"]\nsetup = "make deps"\n').repo("github", "acme/api")
    assert plain is not None and plain.setup is None
    assert named is not None and named.setup == "make deps"
    _refused(tmp_path, GITHUB + '[repo."acme/api"]\nsetup = ["make"]\n', "setup")


def test_environment_is_the_settings_unless_the_repo_says(tmp_path: Path) -> None:
    inside = _load(tmp_path, GITHUB + '[repo."acme/api"]\nenvironment = "container"\n').repo(
        "github", "acme/api"
    )
    plain = _load(tmp_path, GITHUB + '[repo."acme/api"]\n').repo("github", "acme/api")
    assert inside is not None and inside.environment is Environment.CONTAINER
    assert plain is not None and plain.environment is None
    _refused(tmp_path, GITHUB + '[repo."acme/api"]\nenvironment = "vm"\n', "environment", "host, container")


def test_a_repositorys_egress_is_found_by_its_url_in_any_spelling(tmp_path: Path) -> None:
    """``egress_of``: a run of the repository a table names, through the CLI or the API, gets its list;
    a URL in any spelling of the same repository (``.git`` or not, another case of the host) finds it."""
    forges = _load(tmp_path, GITHUB + '[repo."acme/api"]\negress = ["registries"]\n[repo."acme/web"]\n')
    assert forges.egress_of("https://github.com/acme/api.git") == "registries"
    assert forges.egress_of("https://GitHub.com/acme/api") == "registries"
    assert forges.egress_of("https://github.com/acme/web.git") is None  # its table sets none
    assert forges.egress_of("https://github.com/other/api.git") is None
    assert forges.egress_of("not a repository at all\n") is None
