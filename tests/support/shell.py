"""One bash, as a person pastes blocks into it: :meth:`Shell.paste` sends a block (no ``set -e``) and
waits until the shell has run it. ``curl`` is a function that runs the real one and keeps, per call,
its status, method, URL and body (:class:`Call`), printing the body as curl would: a test checks what
each pasted call answered without changing the text it pastes."""

from __future__ import annotations

import json
import queue
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

DONE = "@@pasted@@"
WRAPPER = r"""
curl() {
  local body; body=$(mktemp "$SHELL_CURLS/body.XXXXXX")
  command curl "$@" -o "$body" -w "%{http_code} %{method} %{url_effective} $body\n" >>"$SHELL_CURLS/log"
  local rc=$?; cat "$body"; return $rc
}
"""


@dataclass(frozen=True)
class Call:
    """One ``curl`` the block made: its method, path (with its query), HTTP status and body."""

    method: str
    path: str
    status: int
    body: str

    def json(self) -> Any:
        return json.loads(self.body)


class Shell:
    """``with Shell(env, curls_dir) as shell: calls = shell.paste(block)``; :attr:`output` is all it
    printed (stdout and stderr)."""

    def __init__(self, env: dict[str, str], curls: Path) -> None:
        curls.mkdir(parents=True)
        self.env, self.curls, self.output, self.seen = {**env, "SHELL_CURLS": str(curls)}, curls, "", 0
        self.lines: queue.Queue[str] = queue.Queue()
        self.proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> Self:
        self.proc = subprocess.Popen(
            ["bash", "--noprofile", "--norc", "-s"],
            env=self.env,
            cwd=self.curls.parent,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.paste(WRAPPER)
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put("")

    def paste(self, block: str, timeout: float = 180) -> list[Call]:
        """Run ``block``; the curl calls it made, in order."""
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(f"{block}\nprintf '\\n{DONE}\\n'\n")
        self.proc.stdin.flush()
        while (line := self.lines.get(timeout=timeout)) != f"{DONE}\n":
            assert line, f"the shell ended:\n{self.output[-4000:]}"
            self.output += line
        return self._calls()

    def _calls(self) -> list[Call]:
        log = self.curls / "log"
        lines = log.read_text().splitlines() if log.exists() else []
        calls = []
        for line in lines[self.seen :]:
            status, method, url, body = line.split(" ")
            parts = urlsplit(url)
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            calls.append(Call(method, path, int(status), Path(body).read_text()))
        self.seen = len(lines)
        return calls

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self.proc is not None and self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(timeout=10)
        self.proc.stdout.close()
