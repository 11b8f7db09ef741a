"""baton: durable conversations and durable workdirs for coding agents.

The Python API is the core; the CLI (and later the HTTP service and workers) call it.

The names below are re-exported lazily (PEP 562 module ``__getattr__``): ``import baton`` costs
almost nothing, and the first use of, say, ``baton.run`` imports the runner (and SQLAlchemy with it).
That keeps ``baton --help`` and every command that needs no store fast; ``from baton import run``
works exactly as an eager re-export would.
"""

from __future__ import annotations

# not typing's: importing typing costs ~7 ms, inside the window where a Ctrl-C before the `baton`
# command's handler (baton.cli) would print a traceback; mypy reads this name as typing's
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from baton.errors import (
        AgentError,
        BadInput,
        BatonError,
        Busy,
        DiskFull,
        Fenced,
        GitError,
        NotFound,
        QuotaHeld,
        RemoteError,
        StoreError,
    )
    from baton.fleet.cancel import CancelWatch, request_cancel
    from baton.housekeeping.quotas import QuotaView, clear_breaker, quota_views
    from baton.keys import Key, Repo, make_key, parse_repo
    from baton.models import (
        Mode,
        OnConflict,
        OnInstructions,
        Outcome,
        PromptKind,
        QuotaRecord,
        QuotaState,
        RunRecord,
        SessionRecord,
        SessionStatus,
        SyncHow,
    )
    from baton.plans.file import Plan, Task, load_plan, parse_plan
    from baton.plans.runner import PlanResult, run_plan
    from baton.runner.request import RunRequest, RunResult
    from baton.runner.run import run
    from baton.sessions.lineage import lineage
    from baton.sessions.manage import (
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
    from baton.store.leases import LeaseBackend, key_lease
    from baton.store.sdk.redis_store import RedisSessionStore
    from baton.store.sdk.sql_store import SqlSessionStore
    from baton.sync.engine import SyncReport
    from baton.sync.upstream import restack, sync_thread

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
            "QuotaHeld",
            "RemoteError",
            "StoreError",
        ],
        "baton.errors",
    ),
    **dict.fromkeys(["CancelWatch", "request_cancel"], "baton.fleet.cancel"),
    **dict.fromkeys(["QuotaView", "clear_breaker", "quota_views"], "baton.housekeeping.quotas"),
    **dict.fromkeys(["Key", "Repo", "make_key", "parse_repo"], "baton.keys"),
    **dict.fromkeys(["LeaseBackend", "key_lease"], "baton.store.leases"),
    "RedisSessionStore": "baton.store.sdk.redis_store",
    "SqlSessionStore": "baton.store.sdk.sql_store",
    **dict.fromkeys(
        [
            "Mode",
            "OnConflict",
            "OnInstructions",
            "Outcome",
            "PromptKind",
            "QuotaRecord",
            "QuotaState",
            "RunRecord",
            "SessionRecord",
            "SessionStatus",
            "SyncHow",
        ],
        "baton.models",
    ),
    "lineage": "baton.sessions.lineage",
    "SyncReport": "baton.sync.engine",
    **dict.fromkeys(["restack", "sync_thread"], "baton.sync.upstream"),
    **dict.fromkeys(["Plan", "Task", "load_plan", "parse_plan"], "baton.plans.file"),
    **dict.fromkeys(["PlanResult", "run_plan"], "baton.plans.runner"),
    **dict.fromkeys(["RunRequest", "RunResult"], "baton.runner.request"),
    "run": "baton.runner.run",
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
        "baton.sessions.manage",
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
    "OnInstructions",
    "Outcome",
    "Plan",
    "PlanResult",
    "PromptKind",
    "QuotaHeld",
    "QuotaRecord",
    "QuotaState",
    "QuotaView",
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
    "clear_breaker",
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
    "quota_views",
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
    value = getattr(__import__(module, fromlist=[name]), name)  # not importlib: one import less at start
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
