"""Imported first by run.py: when baton is not importable by this interpreter (say ``python3
bench/run.py`` with the system Python), re-run the same command with the project's ``.venv``."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

if importlib.util.find_spec("baton") is None:
    venv_python = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "python"
    if venv_python.is_file() and not os.environ.get("BATON_BENCH_REEXEC"):
        os.environ["BATON_BENCH_REEXEC"] = "1"
        os.execv(venv_python, [str(venv_python), *sys.argv])
    sys.exit("baton is not importable: pip install -e '.[test]', or run this with .venv/bin/python")
