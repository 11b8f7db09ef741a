"""Install hints say how to add an extra to *this* baton: no release is on PyPI yet, so a hint names the
checkout, the git URL or the directory pip installed it from (its ``direct_url.json``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest

from baton import install
from baton.install import extra_hint, installed_from


def test_a_checkout_is_installed_editable_from_its_own_path(tmp_path: Path) -> None:
    (tmp_path / "Makefile").write_text("")
    (tmp_path / "package-lock.json").write_text("{}")
    assert extra_hint("redis", root=tmp_path) == f"pip install -e '{tmp_path}[redis]'"


@pytest.mark.parametrize(
    ("source", "hint"),
    [
        (
            "git+https://example.org/acme/baton@v1",
            "pip install 'agent-baton[celery] @ git+https://example.org/acme/baton@v1'",
        ),
        ("/srv/baton", "pip install '/srv/baton[celery]'"),
        ("", "pip install 'agent-baton[celery]'"),  # from an index
    ],
)
def test_a_wheel_names_where_it_came_from(tmp_path: Path, source: str, hint: str) -> None:
    assert extra_hint("celery", root=tmp_path, source=source) == hint


@dataclass
class Recorded:
    """A distribution whose ``direct_url.json`` says ``text``."""

    text: str

    def read_text(self, name: str) -> str:
        assert name == "direct_url.json"
        return self.text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"url": "https://example.org/a/b", "vcs_info": {"vcs": "git"}}', "git+https://example.org/a/b"),
        ('{"url": "file:///srv/baton", "dir_info": {}}', "/srv/baton"),
        ("not json", None),
        ("", None),
    ],
)
def test_installed_from_reads_pip_s_record(
    monkeypatch: pytest.MonkeyPatch, text: str, expected: str | None
) -> None:
    monkeypatch.setattr(
        install,
        "metadata",
        SimpleNamespace(distribution=lambda _name: Recorded(text), PackageNotFoundError=LookupError),
    )
    assert installed_from() == expected


def test_this_checkout_s_hint_is_the_editable_one() -> None:
    assert extra_hint("server") == f"pip install -e '{install.CHECKOUT}[server]'"
