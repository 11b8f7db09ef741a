"""docs/compat.md's failure-events table (bench/compat_events.py): what it reads of a column's run
and how it writes it, with no CLI run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import compat_events as cf  # noqa: E402  (bench/ is no package)


def test_cells_read_back_and_the_missing_ones_say_why(tmp_path: Path) -> None:
    cells = tmp_path / "claude.json"
    cells.write_text(json.dumps({"cli": {"version": "2.1"}, "sigkill": {"status": "ok", "mode": "resume"}}))
    report = tmp_path / "r.xml"
    report.write_text(
        '<testsuites><testsuite><testcase name="test_failure_events[claude]">'
        '<failure message="AssertionError: boom">x</failure></testcase></testsuite></testsuites>'
    )
    read = cf.read_events(cells, report)
    assert list(read) == list(cf.EVENTS)
    assert read["sigkill"] == {"status": "ok", "mode": "resume"}
    assert read["moved"] == {"status": "not run", "reason": "AssertionError: boom"}
    assert cf.read_events(tmp_path / "none.json", tmp_path / "none.xml")["race"]["reason"] == (
        "the test did not run"
    )


def test_the_table_numbers_each_fail_and_recap_with_its_reason() -> None:
    events = {key: {"status": "ok", "mode": "resume"} for key in cf.EVENTS}
    events["upgrade"] = {"status": "n/a"}
    events["truncated"] = {"status": "recap", "mode": "recover", "reason": "gone | everywhere"}
    events["corrupted"] = {"status": "fail", "mode": "resume", "reason": "lost", "session_in": "a"}
    events["race"] = {"status": "fail", "reason": "\x1b[91mError:\x1b[0m malformed"}
    rows = [cf.Row("pinned", "1.0", "1.0", "1.0", events)]
    text = cf.section("codex", rows, "2026-11-26", measured_all=False)
    row = next(line for line in text.splitlines() if line.startswith("| pinned"))
    assert row.count("✔ resume") == 5 and "— (same release)" in row
    assert "✘ [1]" in row and "↻ recap [2]" in row and "✘ resume [3]" in row
    assert "1. pinned, two resumes racing: Error: malformed\n" in text  # no terminal colours
    assert "2. pinned, transcript truncated: gone / everywhere\n" in text  # a | would split the table
    assert "3. pinned, transcript corrupted: lost (session a → None). Why: baton judges" in text
    assert "| the other columns | not measured" in text


def test_a_section_s_failure_table_is_replaced_and_its_scenarios_kept() -> None:
    before = "## codex\n\nMeasured 1.\n\n| scenarios |\n\n### Failure events\n\nold table\n"
    after = cf.with_section(before, "### Failure events\n\nnew table")
    assert "| scenarios |" in after and "new table" in after and "old table" not in after
    assert cf.with_section("## codex\n\n| scenarios |\n", "### Failure events\n\nt").endswith("t\n")


def test_the_invariant_catches_a_silent_fresh_start_and_passes_a_recap() -> None:
    from baton.models import Mode, PromptKind, RunRecord
    from tests.agents.test_compat_failures import MARK, never_silently_fresh

    def record(n: int, mode: Mode, kind: PromptKind, into: str | None, out: str, note: str = "") -> RunRecord:
        return RunRecord(
            f"r{n}", "codex", "repo", "t", 1, mode, kind, f"turn {n}",
            started_at=float(n), session_id_in=into, session_id_out=out, note=note or None,
        )  # fmt: skip

    first = record(0, Mode.FRESH, PromptKind.FULL, None, "a")
    resumed = record(1, Mode.RESUME, PromptKind.DELTA, "a", "a")
    recovered = record(2, Mode.RECOVER, PromptKind.RECAP, None, "b", note="gone everywhere")
    texts = [f"{MARK} turn 0", f"{MARK} turn 1", f"recap: {MARK} … turn 2"]
    assert never_silently_fresh([recovered, first, resumed], texts) == []
    silent = record(2, Mode.FRESH, PromptKind.FULL, None, "b")
    breaches = never_silently_fresh([first, resumed, silent], [*texts[:2], "turn 2"])
    assert breaches == ["run r2 (fresh) left a without a note", "run r2 (fresh) left a without the recap"]
