"""Tokens that expire, each renewed ahead of its expiry (:class:`TokenCache`): a GitHub App's
installation tokens (:mod:`baton.forge.kinds.github.app`). Every request reads its token here. With less than
:func:`renew_ahead` of its life left (5 minutes of GitHub's hour), a renewal starts in the background and
the token at hand, still good, is returned: no request waits for a mint while its token is merely close
to expiry. Only a token gone, or within :func:`usable_floor` of its end, is minted on the spot, once for
all who ask meanwhile. A keeper thread renews the tokens read recently ahead of expiry
(:meth:`TokenCache.renew_due`); unused ones lapse. A token the forge refused is dropped
(:meth:`TokenCache.refused`): the next read mints. A forked process starts empty.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

log = logging.getLogger("baton.forge")
K = TypeVar("K", bound=Hashable)
MAX_AHEAD, MAX_FLOOR = 300.0, 60.0  # seconds, for GitHub's one-hour installation tokens


def renew_ahead(lifetime: float) -> float:
    """How long before its expiry a token is renewed in the background."""
    return min(MAX_AHEAD, lifetime / 3)


def usable_floor(lifetime: float) -> float:
    """A token with less than this left is not handed out: a new one is minted first."""
    return min(MAX_FLOOR, lifetime / 6)


def keep_warm(lifetime: float) -> float:
    """How long after its last read a token is still renewed by the keeper."""
    return 2 * lifetime + 60.0


@dataclass(frozen=True)
class Minted:
    """One token and when it expires, on this process's clock (``time.time``'s, or the cache's)."""

    token: str = field(repr=False)
    expires_at: float
    lifetime: float  # seconds from its mint to its expiry
    details: Mapping[str, Any] = field(default_factory=dict)  # what the forge said of it (no secret)


@dataclass
class _Slot:
    minted: Minted | None = None
    minting: bool = False  # a mint is in flight (in the background or on the spot)
    read_at: float = 0.0  # the last read, for the keeper
    retired: list[str] = field(default_factory=list)  # recent tokens, for scrubbing


def _spawn(work: Callable[[], None]) -> None:
    threading.Thread(target=work, name="baton-token-renewal", daemon=True).start()


class TokenCache(Generic[K]):
    """Tokens per key (an installation), minted by ``mint(key)``. ``clock``: seconds since the epoch;
    ``spawn``: starts a background renewal (a thread; a test's list); ``keeper``: whether a thread
    renews ahead of expiry on its own (off in unit tests, which call :meth:`renew_due`)."""

    def __init__(
        self,
        mint: Callable[[K], Minted],
        *,
        clock: Callable[[], float] = time.time,
        spawn: Callable[[Callable[[], None]], None] = _spawn,
        keeper: bool = True,
        name: str = "tokens",
    ) -> None:
        self._mint, self._clock, self._spawn, self._keeper_on, self.name = mint, clock, spawn, keeper, name
        self.mints = 0  # how many were minted (tests, the benchmark)
        self.waits = 0  # reads that waited for a mint (no good token at hand)
        self._fresh()

    def _fresh(self) -> None:
        self._pid = os.getpid()
        self._cond = threading.Condition()
        self._slots: dict[K, _Slot] = {}
        self._keeper: threading.Thread | None = None
        self._closed, self._wake = threading.Event(), threading.Event()

    def _forked(self) -> None:
        if os.getpid() != self._pid:
            self._fresh()

    # -- reading ----------------------------------------------------------------------------------------

    def get(self, key: K) -> Minted:
        """A good token for ``key``: the one at hand (a renewal started when it is close to expiry), or
        one minted now when there is none good enough. Raises what ``mint`` raises."""
        self._forked()
        with self._cond:
            slot = self._slots.setdefault(key, _Slot())
            while True:
                now = self._clock()
                minted = slot.minted
                if minted is not None and now < minted.expires_at - usable_floor(minted.lifetime):
                    slot.read_at = now
                    if now >= minted.expires_at - renew_ahead(minted.lifetime) and not slot.minting:
                        slot.minting = True
                        self._spawn(lambda: self._renew(key, quiet=True))
                    return minted
                if not slot.minting:
                    slot.minting, slot.read_at = True, now  # read: the keeper renews what it mints
                    self.waits += 1
                    break
                self._cond.wait(1.0)  # another caller's mint: its token, or its failure
        self._renew(key, quiet=False)
        with self._cond:
            slot.read_at = self._clock()
            if slot.minted is None:  # a refusal dropped it meanwhile: the next read mints again
                raise RuntimeError(f"{self.name}: the token minted for {key!r} was dropped at once")
            return slot.minted

    def _renew(self, key: K, *, quiet: bool) -> None:
        """Mint ``key``'s token (the caller set ``minting``); a quiet (background) failure is logged and
        leaves the token at hand to its expiry: the next read near it mints on the spot and says why."""
        try:
            minted = self._mint(key)
        except Exception as exc:
            with self._cond:
                self._slots.setdefault(key, _Slot()).minting = False
                self._cond.notify_all()
            if not quiet:
                raise
            log.warning("%s: renewing the token of %r ahead of its expiry failed: %s", self.name, key, exc)
            return
        with self._cond:
            slot = self._slots.setdefault(key, _Slot())
            if slot.minted is not None:
                slot.retired = [*slot.retired[-3:], slot.minted.token]
            slot.minted, slot.minting = minted, False
            self.mints += 1
            self._cond.notify_all()
            self._start_keeper()
        self._wake.set()  # the keeper's next renewal may be sooner now

    def refused(self, key: K, token: str) -> bool:
        """The forge refused ``token`` (401): dropped, so the next read mints. True when it was ``key``'s
        token at hand (or one already renewed): worth one more try with the next."""
        self._forked()
        with self._cond:
            slot = self._slots.get(key)
            if slot is None:
                return False
            if slot.minted is not None and slot.minted.token == token:
                slot.retired = [*slot.retired[-3:], token]
                slot.minted = None
                return True
            return token in slot.retired

    def forget(self, key: K) -> None:
        """Drop ``key``'s token (its installation was removed, or its permissions changed)."""
        self._forked()
        with self._cond:
            slot = self._slots.get(key)
            if slot is not None and slot.minted is not None:
                slot.retired = [*slot.retired[-3:], slot.minted.token]
                slot.minted = None

    def peek(self, key: K) -> Minted | None:
        """The token at hand for ``key`` (good or not), without minting."""
        self._forked()
        with self._cond:
            slot = self._slots.get(key)
            return slot.minted if slot else None

    def secrets(self) -> list[str]:
        """Every token at hand and the few before each (what errors are scrubbed of)."""
        with self._cond:
            found = [s.minted.token for s in self._slots.values() if s.minted is not None]
            return found + [t for s in self._slots.values() for t in s.retired]

    def owner(self, token: str) -> K | None:
        """The key whose token (at hand or recent) ``token`` is."""
        with self._cond:
            for key, slot in self._slots.items():
                if (slot.minted is not None and slot.minted.token == token) or token in slot.retired:
                    return key
        return None

    # -- the keeper -------------------------------------------------------------------------------------

    def renew_due(self) -> float:
        """Renew every token read recently that is due (within :func:`renew_ahead` of its expiry); the
        seconds until the next is due (an hour when none is)."""
        now, due, wait = self._clock(), [], 3600.0
        with self._cond:
            for key, slot in self._slots.items():
                minted = slot.minted
                if minted is None or slot.minting or now - slot.read_at > keep_warm(minted.lifetime):
                    continue
                at = minted.expires_at - renew_ahead(minted.lifetime)
                if now >= at:
                    slot.minting = True
                    due.append(key)
                else:
                    wait = min(wait, at - now)
        for key in due:
            self._renew(key, quiet=True)
        return 0.05 if due else max(0.05, wait)

    def _start_keeper(self) -> None:
        """(Under the lock.) The keeper thread, once per process."""
        if not self._keeper_on or (self._keeper is not None and self._keeper.is_alive()):
            return
        self._keeper = threading.Thread(target=self._keep, name=f"baton-{self.name}-keeper", daemon=True)
        self._keeper.start()

    def _keep(self) -> None:
        pid = self._pid
        while not self._closed.is_set() and os.getpid() == pid:
            try:
                wait = self.renew_due()
            except Exception:  # never let the keeper die: a read mints on the spot anyway
                log.exception("%s: the keeper failed", self.name)
                wait = 5.0
            self._wake.wait(wait)
            self._wake.clear()

    def close(self) -> None:
        """Stop the keeper (the tokens at hand stay usable to their expiry)."""
        self._closed.set()
        self._wake.set()
