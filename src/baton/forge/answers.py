"""The agent's answer of a forge turn, as the forge shows it: its final message, attributed (agent,
thread, turn, run), bounded to what a forge comment holds, folded under ``<details>`` when long. The
text is the agent's, posted as written (only NUL, which no forge stores, is replaced): baton never
reads it as anything, and its own comments never trigger a turn (:func:`baton.forge.trust.judge`).
"""

from __future__ import annotations

from baton.forge.records import Binding
from baton.models import JobRecord

FOLD_AT = 1_500  # characters: a longer answer is folded, so the conversation stays readable
MAX_CHARS = 60_000  # GitHub refuses a comment over 65,536 characters; room left for the rest


def answer_of(job: JobRecord) -> str | None:
    """The agent's final message of ``job``'s run; None when it said nothing."""
    text = (job.result or {}).get("result")
    return text if isinstance(text, str) and text.strip() else None


def answer_text(binding: Binding, job: JobRecord, answer: str) -> str:
    """The comment that carries ``answer``: who said it in which turn, then the answer, cut at
    :data:`MAX_CHARS` (saying how much more there was) and folded past :data:`FOLD_AT`."""
    run_id = (job.result or {}).get("run_id")
    about = f"`{binding.agent}` on thread `{binding.thread}` · turn `{job.id}`" + (
        f" · run `{run_id}`" if isinstance(run_id, str) and run_id != job.id else ""
    )
    body = answer.replace("\0", "\ufffd")
    cut = ""
    if len(body) > MAX_CHARS:
        cut = f"\n\n*… {len(body) - MAX_CHARS:,} more characters: the whole answer is on baton's dashboard*"
        body = body[:MAX_CHARS]
    if len(answer) > FOLD_AT:
        summary = f"the agent's answer ({len(answer):,} characters)"
        body = f"<details><summary>{summary}</summary>\n\n{body}\n\n</details>"
    return f"<sub>{about}</sub>\n\n{body}{cut}\n"


def section(job: JobRecord) -> list[str]:
    """The answer as lines of the status comment (``reply = "status"``): short, never folded text."""
    answer = answer_of(job)
    if answer is None:
        return []
    shown = answer.replace("\0", "\ufffd")
    if len(shown) > FOLD_AT:
        shown = shown[:FOLD_AT] + f" … ({len(answer) - FOLD_AT:,} more characters on baton's dashboard)"
    return ["", "**The agent's answer:**", "", shown]
