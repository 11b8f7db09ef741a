"""The Claude Agent SDK's session store over the SQL store: transcript entries per (project key,
session id, subpath), appended in order, deduplicated by their ``uuid``. (Being built for issue 10;
:mod:`baton.sdk` adapts it to the SDK's ``SessionStore`` protocol.)"""

from __future__ import annotations

from contextlib import AbstractContextManager

from sqlalchemy.engine import Connection


class SdkEntryTables:
    """Mixed into :class:`baton.store.sql.SQLStore`, which provides ``_tx``."""

    def _tx(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError
