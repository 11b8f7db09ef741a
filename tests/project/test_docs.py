"""The documentation: the MkDocs site (``mkdocs.yml``, ``docs/``) builds in strict mode, where a broken
link or anchor is an error; the README is a front page of at most 300 lines whose relative links all
resolve, anchors included, by GitHub's rules; and no page names the project's internal issues."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README_MAX_LINES = 300
# docs/<page>.md → <site>/<page>/index.html (the front page: <site>/index.html)
PAGES = [
    "cli",
    "agents",
    "configuration",
    "service",
    "fleet",
    "deploy",
    "security",
    "architecture",
    "agent-clis",
    "benchmarks",
    "development",
    "release",
]
SCREENSHOTS = [f"dashboard-{name}.png" for name in ("overview", "session", "run", "fleet-disk")]

FENCE = re.compile(r"^\s*(```|~~~)")
CODE_SPAN = re.compile(r"`[^`]*`")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
INTERNAL_ISSUE = re.compile(r"\bissues? \d|\bthe next issue\b", re.IGNORECASE)


def prose_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of the lines of a Markdown file outside fenced code blocks."""
    lines, fenced = [], False
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append((number, line))
    return lines


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: its text (markup dropped, a link's text kept), lowercased,
    every character but letters, digits, ``-``, ``_`` and spaces dropped, spaces turned into ``-``."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a Markdown file, a repeated one with GitHub's ``-1``, ``-2`` suffixes."""
    seen: dict[str, int] = {}
    found = set()
    for _, line in prose_lines(path):
        heading = re.match(r"#{1,6}\s+(.+?)\s*#*\s*$", line)
        if not heading:
            continue
        slug = github_slug(heading.group(1))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def broken_links(path: Path) -> list[str]:
    """The relative links of a Markdown file (outside code) whose file is missing, or whose ``#anchor`` is
    no heading of that file (for a Markdown file), each as ``line N: target (why)``."""
    problems = []
    for number, line in prose_lines(path):
        for target in LINK.findall(CODE_SPAN.sub("", line)):
            if re.match(r"[a-z][a-z0-9+.-]*:", target, re.IGNORECASE) or target.startswith("//"):
                continue  # an absolute URL (https:, mailto:): not this repository's to check
            file_part, _, anchor = target.partition("#")
            linked = (path.parent / file_part).resolve() if file_part else path
            if not linked.exists():
                problems.append(f"line {number}: {target} (no such file)")
            elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
                problems.append(f"line {number}: {target} (no heading #{anchor} in {linked.name})")
    return problems


def test_the_site_builds_in_strict_mode_with_every_page(tmp_path: Path) -> None:
    site = tmp_path / "site"
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", site],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},  # Material's notice about its successor, not ours
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    front = (site / "index.html").read_text()
    assert "A five-minute tour" in front and "baton demo" in front, "docs/index.md shows the README's tour"
    missing = [page for page in PAGES if not (site / page / "index.html").is_file()]
    assert not missing, f"pages missing from the site: {missing}"
    assert "<table>" in (site / "cli" / "index.html").read_text(), "the exit codes table renders"
    assert "<table>" in (site / "benchmarks" / "index.html").read_text(), "the benchmark table renders"
    assert all((site / name).is_file() for name in SCREENSHOTS)


def test_the_readme_is_a_front_page_whose_links_resolve() -> None:
    readme = ROOT / "README.md"
    length = len(readme.read_text().splitlines())
    assert length <= README_MAX_LINES, f"README.md: {length} lines, over {README_MAX_LINES}: not a front page"
    assert broken_links(readme) == [], "README.md"
    assert broken_links(ROOT / "bench" / "README.md") == [], "bench/README.md"
    linked = {target.partition("#")[0] for _, line in prose_lines(readme) for target in LINK.findall(line)}
    pages = {f"docs/{path.name}" for path in (ROOT / "docs").glob("*.md") if path.name != "index.md"}
    assert pages <= linked, f"docs pages the README does not link to: {sorted(pages - linked)}"


def test_github_slugs() -> None:
    assert github_slug("Service (`baton serve`)") == "service-baton-serve"
    assert github_slug("Access levels (measured 2026-11-23)") == "access-levels-measured-2026-11-23"
    assert github_slug("The Claude Agent SDK's `SessionStore`") == "the-claude-agent-sdks-sessionstore"
    assert github_slug("1a, 1b. A turn: baton ÷ `claude -p`") == "1a-1b-a-turn-baton--claude--p"


def test_no_page_names_internal_issues() -> None:
    """Phrases such as "issue 11", "issue 18's" or "the next issue" describe the tracker, not the product
    (a thread named ``issue-42`` is an example of user data, and fine)."""
    pages = [ROOT / "README.md", ROOT / "bench" / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in pages
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if INTERNAL_ISSUE.search(line)
    ]
    assert not found, "pages that name internal issues (say the substance instead):\n" + "\n".join(found)
