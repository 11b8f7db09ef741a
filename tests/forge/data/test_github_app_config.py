"""A GitHub App in config.toml: ``app_id`` with ``private_key_file`` (relative to $BATON_HOME allowed) or
``private_key_env`` instead of ``token_env``; exactly one of a token and an App, read strictly, each
refusal naming the key and never echoing what may be a key; ``user`` and ``mention`` optional."""

from __future__ import annotations

from pathlib import Path

import pytest

from baton.errors import BadInput
from baton.forge.data.appkey import AppKey
from baton.forge.kinds.configured import load_forges

PEM = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----"


def _load(tmp_path: Path, text: str) -> object:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    (home / "config.toml").write_text(text)
    return load_forges(home, environ={}, agents=("claude",))


def _refused(tmp_path: Path, text: str, *needles: str) -> str:
    with pytest.raises(BadInput) as info:
        _load(tmp_path, text)
    message = str(info.value)
    for needle in needles:
        assert needle in message, message
    return message


def test_an_app_with_a_key_file_relative_to_home(tmp_path: Path) -> None:
    found = _load(tmp_path, '[forge.github]\napp_id = 12345\nprivate_key_file = "keys/app.pem"\n')
    forge = found.forges["github"]  # type: ignore[attr-defined]
    assert forge.app == AppKey(12345, key_file=tmp_path / "home" / "keys" / "app.pem")
    assert (forge.user, forge.mention, forge.token_env) == ("", "", "")  # read from GitHub: the App's bot
    with pytest.raises(BadInput, match="authenticates as a GitHub App \\(app_id 12345\\)"):
        forge.token()


def test_an_app_with_a_key_in_a_variable_and_its_own_login(tmp_path: Path) -> None:
    text = '[forge.gh]\nkind = "github"\napp_id = "77"\nprivate_key_env = "BATON_APP_KEY"\n'
    forge = _load(tmp_path, text + 'user = "my-app[bot]"\nmention = "@my-app"\n').forges["gh"]  # type: ignore[attr-defined]
    assert forge.app == AppKey(77, key_env="BATON_APP_KEY")
    assert (forge.user, forge.mention) == ("my-app[bot]", "@my-app")
    absolute = _load(tmp_path, f'[forge.github]\napp_id = 1\nprivate_key_file = "{tmp_path}/k.pem"\n')
    assert absolute.forges["github"].app.key_file == tmp_path / "k.pem"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        (
            'app_id = 1\nprivate_key_file = "k.pem"\ntoken_env = "BATON_GITHUB_TOKEN"\n',
            ("forge.github.token_env and app_id: a forge authenticates with a token or as a GitHub App",),
        ),
        ("app_id = 1\n", ("forge.github.private_key_file or private_key_env (not both) is required",)),
        (
            'app_id = 1\nprivate_key_file = "k.pem"\nprivate_key_env = "K"\n',
            ("forge.github.private_key_file or private_key_env (not both)",),
        ),
        ('private_key_file = "k.pem"\n', ("forge.github.app_id must be the App's id",)),
        ('app_id = 0\nprivate_key_file = "k.pem"\n', ("forge.github.app_id must be the App's id",)),
        ('app_id = "Iv1.abc"\nprivate_key_file = "k.pem"\n', ("forge.github.app_id must be the App's id",)),
        ('app_id = true\nprivate_key_file = "k.pem"\n', ("forge.github.app_id must be the App's id",)),
        ("app_id = 1\nprivate_key_file = 3\n", ("forge.github.private_key_file must be a string",)),
        (
            'app_id = 1\nprivate_key_file = "k.pem"\nuser = "not a login"\n',
            ("forge.github.user must be a login",),
        ),
        (
            'app_id = 1\nprivate_key_file = "k.pem"\nmention = "baton"\n',
            ("forge.github.mention must be '@'",),
        ),
        ('app_id = 1\nprivate_key_file = "k.pem"\nsecret = "x"\n', ("unknown key forge.github.secret",)),
    ],
)
def test_an_app_is_read_strictly(tmp_path: Path, text: str, needles: tuple[str, ...]) -> None:
    _refused(tmp_path, "[forge.github]\n" + text, *needles)


def test_an_app_on_gitea_is_refused(tmp_path: Path) -> None:
    _refused(
        tmp_path,
        '[forge.gitea]\napi_url = "https://g.example/api/v1"\nuser = "b"\n'
        'app_id = 1\nprivate_key_env = "K"\n',
        "forge.gitea.app_id is a GitHub App's: a gitea forge authenticates with token_env",
    )


@pytest.mark.parametrize("key", ["private_key_file", "private_key_env"])
def test_a_key_pasted_in_place_of_its_place_is_refused_and_never_echoed(tmp_path: Path, key: str) -> None:
    pasted = PEM.replace("\n", "\\n")
    message = _refused(tmp_path, f'[forge.github]\napp_id = 1\n{key} = "{pasted}"\n', f"forge.github.{key}")
    assert "MIIEvQ" not in message and "BEGIN" not in message and "never the key itself" in message
    multiline = f"[forge.github]\napp_id = 1\n{key} = '''\n{PEM}\n'''\n"
    message = _refused(tmp_path, multiline, f"forge.github.{key}")
    assert "MIIEvQ" not in message


def test_a_key_file_that_is_not_there_is_said_when_a_jwt_is_signed(tmp_path: Path) -> None:
    key = AppKey(1, key_file=tmp_path / "missing.pem")
    with pytest.raises(BadInput, match=f"the private key file {tmp_path / 'missing.pem'} cannot be read"):
        key.private_key()
    (tmp_path / "big.pem").write_bytes(b"x" * 70_000)
    with pytest.raises(BadInput, match="larger than a private key"):
        AppKey(1, key_file=tmp_path / "big.pem").pem()
