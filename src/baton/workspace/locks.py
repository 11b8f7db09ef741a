"""Advisory file locks under ``$BATON_HOME/locks`` (per repo cache, per worktree).

``flock`` locks are released by the kernel when their holder dies, so a SIGKILLed runner never leaves
one behind. They protect one machine; leases in the store protect keys across machines.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from baton import retry
from baton.errors import Busy
from baton.files import make_private_dir


@contextmanager
def file_lock(home: Path, name: str, timeout: float | None = None) -> Iterator[None]:
    """Hold the named lock; wait up to ``timeout`` seconds (forever when None), else raise Busy."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name)[:80] + "-" + hashlib.sha256(name.encode()).hexdigest()[:8]
    directory = home / "locks"
    make_private_dir(directory)  # BATON_HOME 0700 too, when a lock is the first thing it holds
    fd = os.open(directory / f"{safe}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if timeout is None:
            fcntl.flock(fd, fcntl.LOCK_EX)  # the kernel waits for it
        else:
            deadline = time.monotonic() + timeout
            try:
                retry.Retrying(
                    retry=retry.retry_if_exception_type(BlockingIOError),
                    wait=retry.wait_fixed(0.05),
                    stop=lambda _state: time.monotonic() >= deadline,
                    sleep=retry.sleep,
                    reraise=True,
                )(fcntl.flock, fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise Busy(f"{name} is locked by another process") from None
        yield
    finally:
        os.close(fd)
