"""baton: durable conversations and durable workdirs for coding agents.

The Python API is the core; the CLI (and later the HTTP service and workers) call it.

The names below are re-exported lazily (PEP 562 module ``__getattr__``): ``import baton`` costs
almost nothing, and the first use of, say, ``baton.run`` imports the runner (and SQLAlchemy with it).
That keeps ``baton --help`` and every command that needs no store fast; ``from baton import run``
works exactly as an eager re-export would.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from baton.cancel import CancelWatch, request_cancel
    from baton.errors import (
        AgentError,
        BadInput,
        BatonError,
        Busy,
        DiskFull,
        Fenced,
        GitError,
        NotFound,
        RemoteError,
        StoreError,
    )
    from baton.keys import Key, Repo, make_key, parse_repo
    from baton.leases import LeaseBackend, key_lease
    from baton.lineage import lineage
    from baton.models import (
        Mode,
        OnConflict,
        Outcome,
        PromptKind,
        RunRecord,
        SessionRecord,
        SessionStatus,
        SyncHow,
    )
    from baton.plan_file import Plan, Task, load_plan, parse_plan
    from baton.plans import PlanResult, run_plan
    from baton.request import RunRequest, RunResult
    from baton.runner import run
    from baton.sdk import RedisSessionStore, SqlSessionStore
    from baton.sessions import (
        ResetResult,
        Scope,
        export_session,
        get_session,
        import_session,
        reset_session,
        resolve_key,
    )
    from baton.settings import Settings, load_settings
    from baton.store import Store, open_store
    from baton.sync import SyncReport
    from baton.upstream import restack, sync_thread

# public name → the module that defines it
_EXPORTS = {
    **dict.fromkeys(
        [
            "AgentError",
            "BadInput",
            "BatonError",
            "Busy",
            "DiskFull",
            "Fenced",
            "GitError",
            "NotFound",
            "RemoteError",
            "StoreError",
        ],
        "baton.errors",
    ),
    **dict.fromkeys(["CancelWatch", "request_cancel"], "baton.cancel"),
    **dict.fromkeys(["Key", "Repo", "make_key", "parse_repo"], "baton.keys"),
    **dict.fromkeys(["LeaseBackend", "key_lease"], "baton.leases"),
    **dict.fromkeys(["RedisSessionStore", "SqlSessionStore"], "baton.sdk"),
    **dict.fromkeys(
        [
            "Mode",
            "OnConflict",
            "Outcome",
            "PromptKind",
            "RunRecord",
            "SessionRecord",
            "SessionStatus",
            "SyncHow",
        ],
        "baton.models",
    ),
    "lineage": "baton.lineage",
    "SyncReport": "baton.sync",
    **dict.fromkeys(["restack", "sync_thread"], "baton.upstream"),
    **dict.fromkeys(["Plan", "Task", "load_plan", "parse_plan"], "baton.plan_file"),
    **dict.fromkeys(["PlanResult", "run_plan"], "baton.plans"),
    **dict.fromkeys(["RunRequest", "RunResult"], "baton.request"),
    "run": "baton.runner",
    **dict.fromkeys(
        [
            "ResetResult",
            "Scope",
            "export_session",
            "get_session",
            "import_session",
            "reset_session",
            "resolve_key",
        ],
        "baton.sessions",
    ),
    **dict.fromkeys(["Settings", "load_settings"], "baton.settings"),
    **dict.fromkeys(["Store", "open_store"], "baton.store"),
}

__all__ = [
    "AgentError",
    "BadInput",
    "BatonError",
    "Busy",
    "CancelWatch",
    "DiskFull",
    "Fenced",
    "GitError",
    "Key",
    "LeaseBackend",
    "Mode",
    "NotFound",
    "OnConflict",
    "Outcome",
    "Plan",
    "PlanResult",
    "PromptKind",
    "RedisSessionStore",
    "RemoteError",
    "Repo",
    "ResetResult",
    "RunRecord",
    "RunRequest",
    "RunResult",
    "Scope",
    "SessionRecord",
    "SessionStatus",
    "Settings",
    "SqlSessionStore",
    "Store",
    "StoreError",
    "SyncHow",
    "SyncReport",
    "Task",
    "export_session",
    "get_session",
    "import_session",
    "key_lease",
    "lineage",
    "load_plan",
    "load_settings",
    "make_key",
    "open_store",
    "parse_plan",
    "parse_repo",
    "request_cancel",
    "reset_session",
    "resolve_key",
    "restack",
    "run",
    "run_plan",
    "sync_thread",
]
assert sorted(__all__) == sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use (PEP 562)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'baton' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
