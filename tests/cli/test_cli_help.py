"""Every command's help is whole: each option says what it does, and ``baton answer`` offers only what
an answer can choose (not ``baton run``'s copy with its fork, handoff, mode and internal ``--answers``)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import typer.main

from baton.cli.app import app


def _commands(cmd: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, Any]]:
    """Every command under ``cmd`` by its name (Typer carries its own click: duck-typed)."""
    if hasattr(cmd, "commands"):
        for name, sub in cmd.commands.items():
            yield from _commands(sub, (*path, name))
    else:
        yield " ".join(path), cmd


def _is_option(param: Any) -> bool:
    return bool(param.param_type_name == "option")


def test_every_option_of_every_command_says_what_it_does() -> None:
    silent = [
        f"baton {name} {'/'.join(p.opts)}"
        for name, cmd in _commands(typer.main.get_command(app))
        for p in cmd.params
        if _is_option(p) and not p.hidden and not (p.help or "").strip()
    ]
    assert silent == []


def _flags(name: str) -> set[str]:
    cmd = dict(_commands(typer.main.get_command(app)))[name]
    return {flag for p in cmd.params for flag in p.opts}


def test_answer_offers_what_an_answer_can_choose_and_not_runs_copy() -> None:
    answer, run = _flags("answer"), _flags("run")
    never = {"--fork-from", "--handoff-from", "--answers", "--mode", "--base-thread", "--branch", "--base"}
    assert never <= run and not never & answer
    assert {"--agent", "--repo", "--thread", "--prompt-file", "--access", "--max-usd", "--json"} <= answer


def test_budget_says_what_each_raise_raises() -> None:
    cmd = dict(_commands(typer.main.get_command(app)))["budget"]
    helps = {p.opts[0]: p.help or "" for p in cmd.params if _is_option(p)}
    for flag, cap in (
        ("--usd", "USD"),
        ("--tokens", "tokens"),
        ("--minutes", "minutes"),
        ("--turns", "turns"),
    ):
        assert "raise the cap on" in helps[flag] and cap in helps[flag] and "by N" in helps[flag]


MARKUP = re.compile(r":(?:mod|func|class|meth|data|attr|exc):`|``")


def test_no_help_shows_the_codes_markup() -> None:
    """A command's docstring is its help: no Sphinx role or double backtick reaches a person."""
    marked = []
    for name, cmd in _commands(typer.main.get_command(app)):
        texts = [cmd.help or "", cmd.epilog or "", *(p.help or "" for p in cmd.params if _is_option(p))]
        texts += [getattr(p, "help", None) or "" for p in cmd.params if not _is_option(p)]
        marked += [f"baton {name}: {text!r}" for text in texts if MARKUP.search(text)]
    assert marked == []


def test_answer_says_its_argument_is_the_answer() -> None:
    cmd = dict(_commands(typer.main.get_command(app)))["answer"]
    (argument,) = [p for p in cmd.params if not _is_option(p)]
    assert argument.help == "the answer to the thread's question"
    assert "read the answer from a file (-: standard input)" in {p.help for p in cmd.params if _is_option(p)}
