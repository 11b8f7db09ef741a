"""``--prompt-file`` and ``baton plan run`` read a file, or standard input for ``-`` (``baton.cli.inputs``):
bounded, strict UTF-8, a terminal or an empty stream refused with a clear error before anything is
written — by ``baton run`` in its common form and with other options, and by ``baton submit``, alike."""

from __future__ import annotations

import io
import json
import os
import pty
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from baton.cli import inputs
from baton.cli.inputs import read_input
from baton.errors import BadInput
from tests.conftest import BATON


class Piped:
    """A ``sys.stdin`` whose ``buffer`` is a real pipe holding ``data`` (a fresh one at each use, so
    two readers each get it whole), or the end of a terminal."""

    def __init__(self, data: bytes = b"", tty: bool = False) -> None:
        self.data, self.tty = data, tty
        self.opened: list[io.BufferedReader] = []
        self.terminals: list[int] = []

    @property
    def buffer(self) -> io.BufferedReader:
        if self.tty:
            main, other = pty.openpty()
            self.terminals.append(main)
            self.opened.append(os.fdopen(other, "rb"))
        else:
            read, write = os.pipe()
            with os.fdopen(write, "wb") as fh:  # small enough for the pipe's buffer in tests
                fh.write(self.data)
            self.opened.append(os.fdopen(read, "rb"))
        return self.opened[-1]

    def close(self) -> None:
        for reader in self.opened:
            reader.close()
        for fd in self.terminals:
            os.close(fd)


@pytest.fixture
def stdin(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Piped]]:
    made: list[Piped] = []

    def use(data: bytes = b"", tty: bool = False) -> Piped:
        piped = Piped(data, tty)
        made.append(piped)
        monkeypatch.setattr(sys, "stdin", piped)
        return piped

    yield use
    for piped in made:
        piped.close()


def test_dash_is_standard_input_and_a_file_is_a_file(stdin: Callable[..., Piped], tmp_path: Path) -> None:
    stdin("fix the bug é ✓\r\nthen $(this) --json\n".encode())
    assert read_input("-", "prompt", "--prompt-file") == "fix the bug é ✓\nthen $(this) --json\n"
    (tmp_path / "p.txt").write_bytes(b"from a file\r\n")
    assert read_input(str(tmp_path / "p.txt"), "prompt", "--prompt-file") == "from a file\n"
    before = os.getcwd()
    os.chdir(tmp_path)  # a file named "-" is still reachable as ./-
    try:
        Path("-").write_text("the file named dash")
        assert read_input("./-", "prompt", "--prompt-file") == "the file named dash"
    finally:
        os.chdir(before)  # (the next test in this process must find the directory it had)


def test_a_terminal_is_refused_rather_than_read(stdin: Callable[..., Piped]) -> None:
    main, other = pty.openpty()
    try:
        with pytest.raises(BadInput, match=r"--prompt-file /dev/pts/\d+ is a terminal"):
            read_input(os.ttyname(other), "prompt", "--prompt-file")
    finally:
        os.close(main)
        os.close(other)
    stdin(tty=True)
    with pytest.raises(
        BadInput, match=r"--prompt-file - reads the prompt from standard input, which is a terminal"
    ):
        read_input("-", "prompt", "--prompt-file")


@pytest.mark.parametrize("data", [b"", b"  \n\t\n"])
def test_an_empty_stdin_is_refused(stdin: Callable[..., Piped], data: bytes) -> None:
    stdin(data)
    with pytest.raises(BadInput, match=r"^the prompt from stdin is empty"):
        read_input("-", "prompt", "--prompt-file")


def test_an_empty_file_is_left_to_the_runner(tmp_path: Path) -> None:
    (tmp_path / "empty").write_bytes(b"")  # the runner refuses it ("prompt is empty"), exit 2 as well
    assert read_input(str(tmp_path / "empty"), "prompt", "--prompt-file") == ""


def test_not_utf8_is_refused_alike_from_a_file_and_from_stdin(
    stdin: Callable[..., Piped], tmp_path: Path
) -> None:
    stdin(b"fix \xff this")
    (tmp_path / "bad").write_bytes(b"fix \xff this")
    said = []
    for path in ("-", str(tmp_path / "bad")):
        with pytest.raises(BadInput) as info:
            read_input(path, "prompt", "--prompt-file")
        said.append(str(info.value))
    assert said == [
        "--prompt-file - (standard input) is not UTF-8 text (byte 4: invalid start byte); convert it",
        f"--prompt-file {tmp_path / 'bad'} is not UTF-8 text (byte 4: invalid start byte); convert it",
    ]


def test_more_than_the_bound_is_refused_without_reading_it_all(
    stdin: Callable[..., Piped], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inputs, "MAX_INPUT", 1000)
    stdin(b"x" * 1000)
    assert len(read_input("-", "prompt", "--prompt-file")) == 1000  # the bound itself is fine
    stdin(b"x" * 1001)
    with pytest.raises(BadInput, match=r"--prompt-file - \(standard input\) holds more than"):
        read_input("-", "prompt", "--prompt-file")
    with pytest.raises(BadInput, match="/dev/zero holds more than"):  # endless: read only to the bound
        read_input("/dev/zero", "prompt", "--prompt-file")


def test_a_closed_stdin_and_a_missing_file_are_clear_errors(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(sys, "stdin", None)
    with pytest.raises(BadInput, match=r"cannot read --prompt-file - \(standard input\)"):
        read_input("-", "prompt", "--prompt-file")
    with pytest.raises(BadInput, match=r"cannot read --prompt-file .*nope: No such file"):
        read_input(str(tmp_path / "nope"), "prompt", "--prompt-file")


# -- the command line: baton run and submit -------------------------------------------------------------


def baton(args: list[str], env: dict[str, str], stdin: bytes | int | None = None) -> tuple[int, str, str]:
    """``baton ARGS`` with ``stdin`` piped in (bytes), as its standard input (a descriptor) or none."""
    done = subprocess.run(
        [*BATON, *args],
        env={**os.environ, **env},
        input=stdin if isinstance(stdin, bytes) else None,
        stdin=subprocess.DEVNULL if stdin is None else None if isinstance(stdin, bytes) else stdin,
        capture_output=True,
        timeout=120,
    )
    return done.returncode, done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace")


def prompt_of(home: Path, result: str) -> str:
    from baton.store import open_store

    store = open_store(f"sqlite:///{home / 'baton.db'}")
    try:
        found = store.get_run(json.loads(result)["attempt_id"])
    finally:
        store.close()
    assert found is not None
    return found.prompt


def test_a_piped_prompt_runs_in_the_common_form_and_with_other_options(
    src_repo: Path, baton_env: dict[str, str], home: Path
) -> None:
    key = ["run", "-a", "fake", "-r", str(src_repo), "-t", "piped", "--json"]
    prompt = "fix it é ✓\n--json $(rm -rf /) `x`\n" + "y" * 200_000  # more than a pipe's buffer
    code, out, err = baton([*key, "--prompt-file", "-"], baton_env, prompt.encode())  # the common form
    assert code == 0, err
    assert json.loads(out)["mode"] == "fresh" and prompt_of(home, out) == prompt
    code, out, err = baton(
        [*key, "--timeout", "60", "--prompt-file=-"], baton_env, b"second\n"
    )  # with another option
    assert code == 0, err
    assert json.loads(out)["mode"] == "resume" and prompt_of(home, out) == "second\n"


def test_stdin_that_is_no_prompt_is_refused_the_same_way_everywhere_and_nothing_is_written(
    src_repo: Path, baton_env: dict[str, str], home: Path
) -> None:
    key = ["-a", "fake", "-r", str(src_repo), "-t", "refused"]
    forms = [
        ["run", *key, "--prompt-file", "-"],
        ["run", *key, "--timeout", "60", "--prompt-file", "-"],
        ["submit", *key, "--prompt-file", "-"],  # queued
    ]
    cases: list[tuple[bytes | int | None, str]] = [
        (None, "error: the prompt from stdin is empty"),
        (
            b"fix \xff this",
            "error: --prompt-file - (standard input) is not UTF-8 text (byte 4: invalid start byte)",
        ),
    ]
    for stdin, message in cases:
        said = [baton(form, baton_env, stdin) for form in forms]
        for form, (code, _out, err) in zip(forms, said, strict=True):
            assert code == 2 and err.startswith(message) and "Traceback" not in err, (form, err)
    for form in forms[:2]:  # as a NUL byte in an argument or a file (submit: after its broker's check)
        code, _out, err = baton(form, baton_env, b"fix \0 this")
        assert code == 2 and err.startswith("error: the prompt contains a NUL byte"), (form, err)
    main, other = pty.openpty()
    try:
        code, _out, err = baton(["run", *key, "--prompt-file", "-"], baton_env, other)
    finally:
        os.close(main)
        os.close(other)
    assert code == 2 and "reads the prompt from standard input, which is a terminal" in err, err
    assert not home.exists()
