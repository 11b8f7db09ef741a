"""The places a thread's turn is told back to: where its events were said (:mod:`baton.forge.kinds.intake`).
The forge's own conversation is an intake like any other (:class:`ForgeIntake`: a comment on the issue
or pull request); an event another intake delivered names its place in ``source``. A turn's question and
answer go to each place its events came from, in their order; its start and its end to the places other
than the forge, whose status comment says both. An event whose intake is not registered in this process
is answered on the forge instead, so what a person waits for is never lost.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from baton.forge.data.model import ForgeError, ForgeEvent
from baton.forge.data.records import Binding
from baton.forge.kinds import registry
from baton.forge.kinds.intake import FORGE, Intake, Message, split
from baton.forge.turn.loop import ForgeLoop

log = logging.getLogger("baton.forge")

Place = tuple[Intake, str]


class ForgeIntake:
    """The thread's own forge conversation as an intake: what it is told is a comment there."""

    def __init__(self, loop: ForgeLoop, binding: Binding) -> None:
        self.loop, self.binding = loop, binding

    def tell(self, place: str, message: Message) -> str:
        binding = self.binding
        try:
            client = self.loop.client(binding.forge)
            client.post_comment(binding.repo, binding.number, message.text, pr=binding.on_pr)
        except ForgeError as exc:
            log.warning("forge %s: the %s was not posted: %s", binding.conversation, message.said.value, exc)
            return f"failed: {exc}"
        return "posted"


def places(loop: ForgeLoop, binding: Binding, events: Iterable[ForgeEvent]) -> list[Place]:
    """Where the turn made of ``events`` is told back: each place its events were said, in their order,
    the forge's own conversation first when any was said there (and when none names a place)."""
    found: list[Place] = []
    forge = False
    for source in dict.fromkeys(event.source for event in events):
        name, place = split(source)
        intake = registry.intake(name) if name != FORGE else None
        if intake is None:
            if name != FORGE:
                log.warning(
                    "forge %s: intake %r is not registered: told on the forge", binding.conversation, name
                )
            forge = True
        else:
            found.append((intake, place))
    own: list[Place] = [(ForgeIntake(loop, binding), binding.conversation)] if forge or not found else []
    return own + found


def beside_the_forge(where: list[Place]) -> list[Place]:
    """The places other than the forge's own conversation (told a turn's start and end)."""
    return [(intake, place) for intake, place in where if not isinstance(intake, ForgeIntake)]


def tell(where: list[Place], message: Message) -> str:
    """Tell ``message`` at each place: ``"posted"``, or what each place that failed said."""
    failed = [said for intake, place in where if (said := _told(intake, place, message)) != "posted"]
    return "; ".join(failed) if failed else "posted"


def _told(intake: Intake, place: str, message: Message) -> str:
    """One place told: an intake that raises (it should not) fails its place, never the publish."""
    try:
        return intake.tell(place, message)
    except Exception as exc:  # another intake's code: its failure is its place's, not the publish's
        log.warning(
            "forge %s: %s was not told at %r: %s", message.conversation, message.said.value, place, exc
        )
        return f"failed: {exc}"
