"""Properties of key validation (hypothesis): whatever text comes in, a thread or repo is either
accepted as something safe to use as (part of) a path, or refused with BadInput — never another
exception, never a name that leaves the directory it is joined under."""

from __future__ import annotations

import os
import posixpath

from hypothesis import example, given, settings
from hypothesis import strategies as st

from baton.errors import BadInput
from baton.keys import parse_repo, validate_thread

# Modest example counts keep the suite fast; no example database (nothing written into the tree).
SETTINGS = settings(max_examples=200, deadline=None, database=None)
BASE = "/srv/baton/worktrees/agent"

# Text made mostly of the characters the rules are about, so accepted values are generated often.
_THREAD_ALPHABET = st.sampled_from([*"abcXYZ019._-/\\ \t\n\x00\x7f~:é", ".lock", "..", "."])
threads = st.one_of(
    st.text(),
    st.lists(_THREAD_ALPHABET, max_size=20).map("".join),
    st.text(alphabet="a.-_", min_size=120, max_size=135),
)

_URL_PIECES = st.sampled_from(
    [*"abcXY019.-_~%:@[]/\\?# ", "..", ".", "%2e%2e", ".git", "github.com", "::1", "user:pw@", "-"]
)
_pieces = st.lists(_URL_PIECES, max_size=12).map("".join)
repo_specs = st.one_of(
    st.text(),
    st.builds(
        "{}://{}{}{}/{}".format,
        st.sampled_from(["https", "http", "ssh", "git", "file", "ftp", "HTTPS"]),
        st.sampled_from(["", "git@", "user:pw@", "token@"]),
        _pieces,
        st.sampled_from(["", ":22", ":8443", ":abc", ":99999", ":"]),
        _pieces,
    ),
    st.builds("{}:{}".format, _pieces, _pieces),  # scp-like: host:path
    st.builds("~{}/{}".format, _pieces, _pieces),  # a home directory, maybe of a user that does not exist
    st.text(alphabet="ab.", min_size=250, max_size=400),  # a path component longer than NAME_MAX
)


def _inside(base: str, relative: str) -> bool:
    joined = posixpath.normpath(posixpath.join(base, relative))
    return joined.startswith(base + "/")


@SETTINGS
@given(threads)
@example("..")
@example(".")
@example("x" * 128)
def test_a_thread_is_a_safe_path_component_or_bad_input(thread: str) -> None:
    try:
        accepted = validate_thread(thread)
    except BadInput as exc:
        assert "thread" in str(exc)
        return
    assert accepted == thread
    assert 1 <= len(thread) <= 128
    assert thread not in (".", "..") and ".." not in thread
    assert "/" not in thread and "\\" not in thread
    assert not any(ord(c) < 32 or ord(c) == 127 for c in thread)
    assert not thread.startswith("-")  # never read as an option where it reaches argv
    assert posixpath.basename(posixpath.join(BASE, thread)) == thread
    assert posixpath.dirname(posixpath.normpath(posixpath.join(BASE, thread))) == BASE


@SETTINGS
@given(repo_specs)
@example("https://../x/y")
@example("..:owner/repo")
@example("https://./x")
@example("https://host:abc/x")
@example("http://[::1/x")
@example("~nosuch-user-for-baton-tests/x")
@example("a" * 300)
@example("example.com:" + "c" * 300)
@example("https://a\\..\\b/x")
def test_a_repo_spec_is_a_contained_slug_or_bad_input(spec: str) -> None:
    try:
        repo = parse_repo(spec)
    except BadInput as exc:
        assert str(exc)
        return
    slug = repo.slug
    parts = slug.split("/")
    assert all(parts), slug  # no empty component: not absolute, no '//'
    assert not any(p in (".", "..") for p in parts), slug
    assert "\\" not in slug and not any(ord(c) < 32 for c in slug), slug
    for base in (BASE, "/srv/baton/repos"):
        assert _inside(base, slug), slug
        assert _inside(base, slug + ".git"), slug
    assert os.path.isabs(repo.url) if repo.local else "://" in repo.url or ":" in repo.url
