"""Routes: recent runs across keys (``/runs``) and one run with its event log (``/runs/<id>``).

A row is one attempt (an agent process), as ``baton runs ls`` shows them; API submissions, CLI runs and
plan tasks all appear. ``/runs/<id>`` takes a run's id or an attempt's (``baton.runner.runids``) and
shows the attempt with the run's other attempts linked. The log is the agent's raw event stream rendered
readably by :mod:`baton.agents.events` (assistant text, tool calls, their output, errors), with the raw
lines behind a toggle; a running run's entries arrive live over the run stream instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from baton.agents.events import Entry, LogRenderer
from baton.environment import setuplog
from baton.errors import BadInput
from baton.models import Outcome, RunRecord
from baton.runner.runids import resolve
from baton.service.dashboard.web import Viewer, page, signed_in, state

router = APIRouter(include_in_schema=False)
PER_PAGE = 50
MAX_LOG = 2 * 1024 * 1024  # bytes of a log rendered on the page (twice: entries and raw); the rest is named
Signed = Annotated[Viewer, Depends(signed_in)]
Text = Annotated[str | None, Query(max_length=4096)]


@dataclass(frozen=True)
class RunFilters:
    agent: str | None
    repo: str | None
    thread: str | None
    outcome: Outcome | None
    page: int

    def url(self, page: int) -> str:
        values = {"agent": self.agent, "repo": self.repo, "thread": self.thread, "page": str(page)}
        values["outcome"] = self.outcome.value if self.outcome else None
        return "/runs?" + urlencode({k: v for k, v in values.items() if v})


@router.get("/runs", response_class=HTMLResponse)
def runs_table(
    request: Request,
    viewer: Signed,
    agent: Text = None,
    repo: Text = None,
    thread: Text = None,
    outcome: Text = None,
    page_no: Annotated[int, Query(alias="page", ge=1, le=10**7)] = 1,
) -> HTMLResponse:
    _settings, store = state(request)
    if outcome and outcome not in {o.value for o in Outcome}:
        raise BadInput(f"outcome {outcome!r}: one of {', '.join(o.value for o in Outcome)}")
    f = RunFilters(
        agent or None, repo or None, thread or None, Outcome(outcome) if outcome else None, page_no
    )
    # one row more than the page tells whether there is a next one
    rows = store.list_runs(f.agent, f.repo, f.thread, PER_PAGE + 1, f.outcome, (f.page - 1) * PER_PAGE)
    agents, repos = store.session_facets()
    return page(
        request,
        "runs.html",
        viewer,
        title="Runs",
        rows=rows[:PER_PAGE],
        more=len(rows) > PER_PAGE,
        f=f,
        agents=agents,
        repos=repos,
        outcomes=[o.value for o in Outcome],
    )


def read_log(record: RunRecord) -> tuple[list[Entry], list[str], int]:
    """The run's rendered entries, its raw lines, and the bytes left out past :data:`MAX_LOG`."""
    path = Path(record.log_path) if record.log_path else None
    if path is None or not path.is_file():
        return [], [], 0
    with path.open("rb") as fh:
        data = fh.read(MAX_LOG)
        left = max(0, path.stat().st_size - len(data))
    lines = data.decode("utf-8", "replace").splitlines()
    renderer = LogRenderer(record.agent)
    entries = [*renderer.feed(lines), *renderer.flush()]
    return entries, lines, left


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run_page(request: Request, viewer: Signed, run_id: str) -> HTMLResponse:
    """A run by its id or an attempt's: the attempt named (else the latest) with its log, and the
    run's other attempts linked; a queued run says so until its first attempt starts."""
    _settings, store = state(request)
    ref = resolve(store, run_id[:200])
    record = ref.attempt
    running = record is None or record.outcome == Outcome.RUNNING
    entries, lines, left = ([], [], 0) if running or record is None else read_log(record)
    logs = Path(record.log_path).parent if record is not None and record.log_path else None
    setup, setup_left = (
        setuplog.read(setuplog.path_of(logs, ref.id)) if logs else ([], 0)
    )  # beside the agent's
    return page(
        request,
        "run.html",
        viewer,
        title=f"run {ref.id}",
        ref=ref,
        r=record,
        running=running,
        entries=entries,
        lines=lines,
        left=left,
        setup=setup,
        setup_left=setup_left,
    )
