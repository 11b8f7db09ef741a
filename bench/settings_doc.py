"""The settings' table of docs/configuration.md, generated from their definitions in
``src/baton/settings.py``: each :class:`~baton.settings.Settings` field (its name, type, default and
:class:`~baton.settings.About`) and each setting read from the environment only
(:data:`~baton.settings.ENV_ONLY`) is one row, so the table cannot drift from the code:
``tests/ground/test_settings_doc.py`` fails, with the diff, when the page differs from what this prints.

    .venv/bin/python bench/settings_doc.py            rewrite the table in docs/configuration.md
    .venv/bin/python bench/settings_doc.py --check    exit 1 with the diff when the page is stale

The table sits between two HTML comments (:data:`BEGIN`, :data:`END`); the page's prose around it is
written by hand. A default is the field's own value, shown as people read it (``30``, ```wait```, ``—``
for empty); only an empty default may be said in words (``About.default``: what baton computes then),
so a changed number is never left stale in the docs.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import sys
from pathlib import Path
from typing import Any

from baton.settings import CHOICES, ENV_ONLY, About, Settings

PAGE = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
COMMAND = ".venv/bin/python bench/settings_doc.py"
BEGIN = f"<!-- generated from src/baton/settings.py by `{COMMAND}`: edit the settings there, not here -->"
END = "<!-- end of the generated settings table -->"
HEADER = "| setting | type | default | meaning |\n|---|---|---|---|"
TYPES = {"float": "number", "int": "integer", "str": "text", "Path": "path"}
NOT_SETTINGS = ("extra",)  # Settings fields that no variable or file sets


def _words(choices: tuple[str, ...]) -> str:
    """``a``, ``b`` or ``c``, as code."""
    quoted = [f"`{c}`" for c in choices]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"


def _cell(text: str) -> str:
    """Text in one table cell: a ``|`` would end it."""
    return text.replace("|", "\\|")


def shown_default(name: str, value: Any, about: About) -> str:
    """The default as people read it; ``About.default`` only for an empty one (else ValueError)."""
    if about.default is not None:
        if value not in ("", dataclasses.MISSING):
            raise ValueError(f"setting {name}: a default said in words ({about.default!r}) hides {value!r}")
        return about.default
    if isinstance(value, float):
        return f"{int(value)}" if value.is_integer() else f"{value}"
    if isinstance(value, int):
        return str(value)
    return f"`{value}`" if value else "—"


def row(name: str, kind: str, default: str, about: About, env_only: bool = False) -> str:
    where = " (environment only)" if env_only or about.env_only else ""
    return f"| `{name}` | {_cell(kind + where)} | {_cell(default)} | {_cell(about.meaning)} |"


def field_row(f: dataclasses.Field[Any]) -> str:
    """One field of a settings dataclass as a row; ValueError when it has no :class:`About`."""
    about = f.metadata.get("about")
    if not isinstance(about, About):
        raise ValueError(f"setting {f.name} has no meaning: give it metadata=about('...') in settings.py")
    kind = about.kind or (_words(CHOICES[f.name]) if f.name in CHOICES else TYPES[str(f.type)])
    return row(f"BATON_{f.name.upper()}", kind, shown_default(f.name, f.default, about), about)


def table(schema: type = Settings) -> str:
    """Every setting of ``schema`` in its order, each environment-only one after the field it follows."""
    lines = [HEADER]
    for f in dataclasses.fields(schema):
        if f.name in NOT_SETTINGS:
            continue
        lines.append(field_row(f))
        for env in (e for e in ENV_ONLY if e.after == f.name):
            lines.append(row(env.name, "text", shown_default(env.name, "", env.about), env.about, True))
    placed = {e.after for e in ENV_ONLY} & {f.name for f in dataclasses.fields(schema)}
    lost = [e.name for e in ENV_ONLY if e.after not in placed]
    if lost:
        raise ValueError(f"{', '.join(lost)}: 'after' names no setting")
    return "\n".join(lines)


def render(page: str, schema: type = Settings) -> str:
    """``page`` with the text between :data:`BEGIN` and :data:`END` replaced by the table."""
    head, begin, rest = page.partition(BEGIN)
    _, end, tail = rest.partition(END)
    if not begin or not end:
        raise ValueError(f"the page has no {BEGIN!r} ... {END!r} block for the table")
    # blank lines around the table: a comment line right above it would make it part of an HTML block
    return f"{head}{BEGIN}\n\n{table(schema)}\n\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate docs/configuration.md's settings table.")
    parser.add_argument("--check", action="store_true", help="change nothing: exit 1 with the diff if stale")
    parser.add_argument("--page", type=Path, default=PAGE, help="the page (default: docs/configuration.md)")
    args = parser.parse_args(argv)
    page = args.page.read_text()
    wanted = render(page)
    if wanted == page:
        return 0
    if args.check:
        diff = difflib.unified_diff(page.splitlines(True), wanted.splitlines(True), "page", "generated")
        sys.stdout.writelines(diff)
        print(f"\n{args.page} is stale: run {COMMAND}")
        return 1
    args.page.write_text(wanted)
    print(f"{args.page}: the settings table rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
