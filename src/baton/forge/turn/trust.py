"""Who may start or steer a thread: the trust policy, enforced here in code — never by the prompt.
:func:`judge` decides about one event's actor by ordered rules, the first that speaks deciding (the
forge's own CI and conflict news, baton's own user, ``deny``, bots, ``only_allow``, ``allow``, the
actor's permission asked of the forge through :class:`Permissions`, a short cache; the untrusted
dropped or quoted at ``read``), and every decision carries a reason naming what decided, for the audit
log. The rules in order: :func:`judge`; what they guarantee and what not: docs/forge.md (Who may
trigger) and docs/security.md (The forge loop's trust policy).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

from baton.errors import BadInput
from baton.forge.data.config import PERMISSIONS, BotPolicy, ForgeConfig, RepoConfig, Untrusted
from baton.forge.data.model import Decision, ForgeError, ForgeEvent
from baton.forge.data.records import FeedbackKind
from baton.models import Access

RANK = {name: rank for rank, name in enumerate(PERMISSIONS)}  # an unknown answer ranks as none
SYSTEM_KINDS = {FeedbackKind.CI_FAILURE: "a CI failure", FeedbackKind.CONFLICT: "a merge conflict"}
_PRUNE_AT = 10_000  # cached answers kept before the expired ones are dropped


class Permissions:
    """The forge's answer to "what may LOGIN do in REPO", kept ``ttl`` seconds per (repo, login) (both
    in any case). Thread-safe; concurrent asks of one pair share one lookup. A failing lookup (its
    ForgeError) reaches every caller that waited on it and is not kept: the next ask asks again."""

    def __init__(
        self,
        lookup: Callable[[str, str], str],
        ttl: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lookup, self.ttl, self._clock = lookup, ttl, clock
        self._lock = threading.Lock()
        self._answers: dict[tuple[str, str], tuple[float, str]] = {}  # -> (expires at, permission)
        self._asking: dict[tuple[str, str], Future[str]] = {}

    def get(self, repo: str, login: str) -> str:
        key = (repo.casefold(), login.casefold())
        with self._lock:
            answer = self._answers.get(key)
            if answer is not None and self._clock() < answer[0]:
                return answer[1]
            asking = self._asking.get(key)
            if asking is None:
                mine: Future[str] = Future()
                self._asking[key] = mine
        if asking is not None:
            return asking.result()
        try:
            permission = self._lookup(repo, login)
        except BaseException as exc:
            with self._lock:
                del self._asking[key]
            mine.set_exception(exc)
            raise
        with self._lock:
            del self._asking[key]
            if self.ttl > 0:
                self._answers[key] = (self._clock() + self.ttl, permission)
                if len(self._answers) > _PRUNE_AT:
                    now = self._clock()
                    self._answers = {k: v for k, v in self._answers.items() if now < v[0]}
        mine.set_result(permission)
        return permission

    def clear(self) -> None:
        """Forget every answer (a collaborator was added or removed)."""
        with self._lock:
            self._answers.clear()


def judge(
    event: ForgeEvent, repo: RepoConfig, forge: ForgeConfig, permission: Callable[[str], str]
) -> Decision:
    """Whether ``event`` runs, at which access, as an instruction or as quoted context, and why.
    ``permission(login)`` is the actor's permission on ``repo`` (raising ForgeError when the forge
    cannot say). Raises that ForgeError when it is transient (nothing was decided: retry).

    In this order, the first rule that speaks deciding:

    1. A CI failure or a merge conflict (``FeedbackKind.CI_FAILURE``/``CONFLICT``) is the forge's own
       event about a bound pull request, not anyone's words: accepted. It comes first because its actor
       is whoever pushed the head — often baton itself — or a CI app's bot. (A fork's PR still runs at
       read.)
    2. baton's own user (any case; ``name`` and ``name[bot]`` are one): refused — its own comments and
       pushes never trigger anything, whatever ``bots`` says.
    3. ``deny``: refused.
    4. A bot (the forge says so, or the login ends in ``[bot]``): ``bots = "none"`` refused;
       ``"allow-list"`` accepted when in ``bot_allow`` (no permission asked), else refused; ``"all"``
       goes on to the rules for people.
    5. ``only_allow``: trusted when in ``allow``, else untrusted.
    6. ``allow``: trusted.
    7. The actor's permission on the repository, asked of the forge (through :class:`Permissions`, a
       short cache): at least ``trusted`` (none < read < triage < write < maintain < admin) is trusted,
       anything less untrusted. A lookup the forge refuses (401, 403, 404, ...; or no token) refuses
       the event, with the forge's words (fail closed); a transient failure (no answer, 429, 5xx)
       raises its ForgeError, so the caller retries the event later instead of losing a trusted
       actor's words.
    8. Untrusted: ``untrusted = "drop"`` refused; ``"quote"`` accepted as quoted, attributed context
       at read access.

    An accepted instruction runs at its trigger's access (feedback, or a trigger the repository has
    not enabled: the repository's ``access``), never above read for a pull request from a fork. The
    judge speaks of the actor only: whether an event may *bind* a thread (an enabled trigger, its
    label, never quoted words) is the dispatcher's question (:mod:`baton.forge.turn.dispatch`).

    Bot loops: two bots replying to each other trigger nothing with the default ``bots = "none"``
    (rule 4), and with ``bots = "all"`` baton's own comments still never trigger (rule 2), so baton
    never answers itself; another bot it answers is judged like a person (its permission on the
    repository)."""
    login = event.actor.login
    config = repo.trigger(event.trigger)  # None: not enabled here; the dispatcher binds no thread then
    if event.kind in SYSTEM_KINDS:
        return _accept(
            event, config.access if config else repo.access, f"{SYSTEM_KINDS[event.kind]} on the PR"
        )
    if not login:
        return _refuse("the event names no actor")
    if _bare(login) == _bare(forge.user):
        return _refuse(f"{login} is baton's own user: its own comments and pushes never trigger anything")
    trusted, reason = _trust(event, repo, permission)
    if trusted:
        return _accept(event, config.access if config else repo.access, reason)
    if trusted is None or repo.untrusted is Untrusted.DROP:
        return _refuse(reason if trusted is None else f"{reason}: dropped")
    return Decision(True, Access.READ, True, f"{reason}: quoted as read-only context")


def _trust(event: ForgeEvent, repo: RepoConfig, permission: Callable[[str], str]) -> tuple[bool | None, str]:
    """True: trusted; False: untrusted (``untrusted`` decides); None: refused. And why."""
    login = event.actor.login
    if _listed(login, repo.deny):
        return None, f"{login} is in deny"
    if event.actor.bot or login.casefold().endswith("[bot]"):
        if repo.bots is BotPolicy.NONE:
            return None, f"{login} is a bot and bots = none"
        if repo.bots is BotPolicy.ALLOW_LIST:
            listed = _listed(login, repo.bot_allow)
            return (True if listed else None), f"{login} is a bot {'in' if listed else 'not in'} bot_allow"
    if repo.only_allow:
        listed = _listed(login, repo.allow)
        return listed, f"{login} is {'in' if listed else 'not in'} allow, and only_allow = true"
    if _listed(login, repo.allow):
        return True, f"{login} is in allow"
    return _by_permission(login, repo, permission)


def _by_permission(login: str, repo: RepoConfig, permission: Callable[[str], str]) -> tuple[bool | None, str]:
    try:
        level = permission(login)
    except ForgeError as exc:
        if exc.transient:
            raise  # no answer, 429 or 5xx: the caller retries the event (none is lost, none runs)
        return None, f"the forge could not say what {login} may do: {exc}"
    except BadInput as exc:  # the forge's token is not set
        return None, f"the forge could not say what {login} may do: {exc}"
    level = level.strip().lower()
    if RANK.get(level, 0) >= RANK[repo.trusted]:
        return True, f"{login} has {level} access"
    return False, f"{login} has {level or 'no'} access (needs {repo.trusted})"


def _accept(event: ForgeEvent, access: Access, reason: str) -> Decision:
    if event.from_fork and access is not Access.READ:
        access, reason = Access.READ, f"{reason}; from a fork: read only"
    return Decision(True, access, False, reason)


def _refuse(reason: str) -> Decision:
    return Decision(False, None, False, reason)


def is_own(login: str, forge: ForgeConfig) -> bool:
    """Whether ``login`` is baton's own user on ``forge`` (``name`` and ``name[bot]`` alike)."""
    return bool(login) and _bare(login) == _bare(forge.user)


def _bare(login: str) -> str:
    return login.casefold().removesuffix("[bot]")


def _listed(login: str, names: tuple[str, ...]) -> bool:
    return login.casefold() in {name.casefold() for name in names}
