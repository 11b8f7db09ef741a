"""baton: durable conversations and durable workdirs for coding agents.

The Python API is the core; the CLI (and later the HTTP service and workers) call it.
"""

from baton.errors import AgentError, BadInput, BatonError, Busy, GitError, NotFound, StoreError
from baton.keys import Key, Repo, make_key, parse_repo
from baton.models import Mode, Outcome, PromptKind, RunRecord, SessionRecord, SessionStatus
from baton.plan_file import Plan, Task, load_plan, parse_plan
from baton.plans import PlanResult, run_plan
from baton.request import RunRequest, RunResult
from baton.runner import run
from baton.sessions import Scope, export_session, get_session, import_session, reset_session, resolve_key
from baton.settings import Settings, load_settings
from baton.store import Store, open_store

__all__ = [
    "AgentError",
    "BadInput",
    "BatonError",
    "Busy",
    "GitError",
    "Key",
    "Mode",
    "NotFound",
    "Outcome",
    "Plan",
    "PlanResult",
    "PromptKind",
    "Repo",
    "RunRecord",
    "RunRequest",
    "RunResult",
    "Scope",
    "SessionRecord",
    "SessionStatus",
    "Settings",
    "Store",
    "StoreError",
    "Task",
    "export_session",
    "get_session",
    "import_session",
    "load_plan",
    "load_settings",
    "make_key",
    "open_store",
    "parse_plan",
    "parse_repo",
    "reset_session",
    "resolve_key",
    "run",
    "run_plan",
]
