"""The agent's answer of a forge turn, as the forge shows it: its final message, attributed (agent,
thread, turn, run), bounded to what a forge comment holds, folded under ``<details>`` when long. The
text is the agent's, posted as written but for NUL (no forge stores it) and the values of the secrets
in baton's environment (a model key the agent was given, a forge token), which a prompt-injected agent
could echo onto a public forge: baton never reads it as anything, and its own comments never trigger a
turn (:func:`baton.forge.turn.trust.judge`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from baton.asking.questions import Question
from baton.caps.model import Reached
from baton.caps.words import forge_text
from baton.forge.data.records import Binding
from baton.models import JobRecord

FOLD_AT = 1_500  # characters: a longer answer is folded, so the conversation stays readable
MAX_CHARS = 60_000  # GitHub refuses a comment over 65,536 characters; room left for the rest
SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIALS?)(_|$)", re.IGNORECASE)
SECRET_MIN = 8  # characters: a shorter value would blank ordinary words
LOGIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,98}[A-Za-z0-9\]])?")  # a forge login, as mentioned


def shown(text: str, environ: Mapping[str, str] = os.environ) -> str:
    """``text`` as the forge may show it: NUL replaced, and each value of a secret-named variable of
    ``environ`` (``*_KEY``, ``*_TOKEN``, ``*SECRET*``, ``*PASSWORD*``) replaced by ``***``."""
    text = text.replace("\0", "\ufffd")
    for name, value in environ.items():
        if len(value) >= SECRET_MIN and value in text and SECRET_NAME.search(name):
            text = text.replace(value, "***")
    return text


def answer_of(job: JobRecord) -> str | None:
    """The agent's final message of ``job``'s run; None when it said nothing."""
    text = (job.result or {}).get("result")
    return text if isinstance(text, str) and text.strip() else None


def answer_text(binding: Binding, job: JobRecord, answer: str) -> str:
    """The comment that carries ``answer``: who said it in which turn, then the answer, cut at
    :data:`MAX_CHARS` (saying how much more there was) and folded past :data:`FOLD_AT`."""
    body = shown(answer)
    cut = ""
    if len(body) > MAX_CHARS:
        cut = f"\n\n*… {len(body) - MAX_CHARS:,} more characters: the whole answer is on baton's dashboard*"
        body = body[:MAX_CHARS]
    if len(answer) > FOLD_AT:
        summary = f"the agent's answer ({len(answer):,} characters)"
        body = f"<details><summary>{summary}</summary>\n\n{body}\n\n</details>"
    return f"{attribution(binding, job)}</sub>\n\n{body}{cut}\n"


def attribution(binding: Binding, job: JobRecord) -> str:
    """How the answer of ``job`` starts (who said it in which turn), up to the closing ``</sub>``."""
    run_id = (job.result or {}).get("run_id")
    run = f" · run `{run_id}`" if isinstance(run_id, str) and run_id != job.id else ""
    return f"<sub>`{binding.agent}` on thread `{binding.thread}` · turn `{job.id}`{run}"


def section(job: JobRecord) -> list[str]:
    """The answer as lines of the status comment (``reply = "status"``): short, never folded text."""
    answer = answer_of(job)
    if answer is None:
        return []
    text = shown(answer)
    if len(text) > FOLD_AT:
        text = text[:FOLD_AT] + f" … ({len(answer) - FOLD_AT:,} more characters on baton's dashboard)"
    return ["", "**The agent's answer:**", "", text]


def question_of(job: JobRecord) -> Question | None:
    """What ``job``'s turn asked a person (it ended ``needs_input``); None when it asked nothing."""
    return Question.from_json((job.result or {}).get("question"))


def question_text(binding: Binding, job: JobRecord, question: Question, asked_by: list[str]) -> str:
    """The comment that puts the agent's question to the people the work is for: attributed like an
    answer, mentioning who asked for the work (logins the forge gave, nothing else), the question quoted
    (never folded: it must be read) and how to answer."""
    mentions = " ".join(f"@{login}" for login in dict.fromkeys(asked_by) if LOGIN.fullmatch(login))
    text = shown(question.text)
    if len(text) > MAX_CHARS:
        text = text[:MAX_CHARS] + f" … ({len(text) - MAX_CHARS:,} more characters on baton's dashboard)"
    quoted = "\n".join(f"> {line}" for line in text.splitlines() or [""])
    options = "".join(f"\n{n}. {shown(o)}" for n, o in enumerate(question.options, 1))
    return (
        f"{attribution(binding, job)}</sub>\n\n**The agent asks{(' ' + mentions) if mentions else ''}:**\n\n"
        f"{quoted}\n{options}\n\nThe thread waits for an answer: a reply here from someone with write access "
        "resumes the same conversation with it.\n"
    )


def cap_of(job: JobRecord) -> Reached | None:
    """The spending cap ``job``'s turn parked at (its question is baton's), or None."""
    question = (job.result or {}).get("question")
    return Reached.from_json(question.get("cap")) if isinstance(question, dict) else None


def cap_text(binding: Binding, job: JobRecord, reached: Reached, mention: str, asked_by: list[str]) -> str:
    """The comment of a turn parked at a spending cap: baton's notice (what was spent of which cap,
    how to raise it with a reply), to the people who asked for the work; the agent did not run."""
    mentions = " ".join(f"@{login}" for login in dict.fromkeys(asked_by) if LOGIN.fullmatch(login))
    whom, notice = f" for {mentions}" if mentions else "", forge_text(reached, mention)
    return (
        f"{attribution(binding, job)}</sub>\n\n**baton paused this thread{whom}:** {notice}"
        "\n\nThe agent did not start this turn; a raise runs its instruction.\n"
    )
