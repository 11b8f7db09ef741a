"""GitLab's texts made fit for a prompt: a job's log as a person reads it on the job's page
(:func:`log_text`: without the runner's ANSI colours, its collapsible sections' markers, the lines a
``\\r`` overwrote and the runner's time stamps), the lines of a merge request's diff that end at a
diff note's line (:func:`hunk_around`, as GitHub's ``diff_hunk`` does), and a draft's title
(:func:`is_draft`, :func:`ready_title`). Pure functions.
"""

from __future__ import annotations

import re

HUNK_LINES = 20  # a diff note's hunk: its header and at most this many lines, ending at the note's line
# the runner's section markers: "section_start:1700000000:step_script[collapsed=true]\r\x1b[0K"
_SECTION = re.compile(
    rb"(?:\x1b\[0K)?section_(?:start|end):\d+:[A-Za-z0-9_.-]+(?:\[[^\]\r\n]*\])?\r?(?:\x1b\[0K)?"
)
_ANSI = re.compile(rb"\x1b(?:\[[0-9;?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
# a runner's time stamps (FF_TIMESTAMPS, GitLab 17.x): "2024-09-17T13:45:33.620286Z 00O " (a "+" marks
# a line continued)
_STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z [0-9a-f]{2}[OE]\+? ?", re.MULTILINE)
_HUNK = re.compile(r"^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@")
# GitLab's draft prefixes (MergeRequest::DRAFT_REGEX), any case, any number of them
_DRAFT = re.compile(r"^\s*(?:\[draft\]|draft:|\(draft\)|draft\s+-)\s*", re.IGNORECASE)


def is_draft(title: str) -> bool:
    """A merge request's title that makes it a draft."""
    return _DRAFT.match(title) is not None


def ready_title(title: str) -> str:
    """The title without its draft prefixes."""
    while (match := _DRAFT.match(title)) is not None and match.end() > 0:
        title = title[match.end() :]
    return title.strip() or "Untitled"


def log_text(data: bytes) -> str:
    """A job log's bytes as the text a person sees on the job's page."""
    data = _ANSI.sub(b"", _SECTION.sub(b"", data))
    lines = []
    for line in data.decode("utf-8", "replace").split("\n"):
        line = line.removesuffix("\r")
        if "\r" in line:  # a progress line redrawn: what was drawn last
            line = next((part for part in reversed(line.split("\r")) if part), "")
        lines.append(line)
    return _STAMP.sub("", "\n".join(lines))


def hunk_around(diff: str, new_line: int | None, old_line: int | None, limit: int = HUNK_LINES) -> str:
    """The hunk header and the lines of ``diff`` (a file's unified diff, as GitLab gives it) that end at
    the note's line: ``new_line`` on the new side (an added or unchanged line), else ``old_line`` on
    the old side (a removed one); at most ``limit`` lines. ``""`` when the diff has no such line (the
    note is on an older version of the merge request, or the diff was too large to be given)."""
    header, start, old, new = "", 0, 0, 0
    lines = diff.split("\n")
    for index, line in enumerate(lines):
        match = _HUNK.match(line)
        if match:
            header, start = line, index + 1
            old, new = int(match.group(1)), int(match.group(2))
            continue
        if not header or line.startswith("\\"):  # before the first hunk; "\ No newline at end of file"
            continue
        kind = line[:1] or " "
        at_new = kind in " +" and new_line is not None and new == new_line
        at_old = kind in " -" and new_line is None and old_line is not None and old == old_line
        if at_new or at_old:
            return "\n".join([header, *lines[max(start, index - limit + 1) : index + 1]])
        if kind in " -":
            old += 1
        if kind in " +":
            new += 1
    return ""
