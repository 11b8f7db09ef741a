"""What an operator types for a forge conversation, read in one place for every command that takes one
(``baton forge show|bind|unbind``): ``github:acme/api#42``, GitLab's merge request ``gitlab:group/api!7``,
``acme/api#42`` when one forge is configured. ``#N`` is always the issue and ``!N`` always the merge
request: on a forge that numbers them apart (GitLab) ``#N`` never falls through to merge request ``!N``'s
thread; on one that numbers both in one sequence (GitHub, Gitea) ``#N`` is the issue or PR of that
number, and ``!N`` is refused (that forge never writes it). The text is hostile input: refused whole,
named, before anything is read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from baton.errors import BadInput
from baton.forge.data.config import ForgeSettings
from baton.forge.kinds.registry import facts

CONVERSATION = re.compile(
    r"(?:(?P<forge>[A-Za-z0-9][A-Za-z0-9_-]{0,63}):)?(?P<repo>[^#!\s:\x00-\x1f\x7f]+/[^#!\s:\x00-\x1f\x7f]+)"
    r"(?P<sign>[#!])"
    r"(?P<number>[0-9]{1,10})"
)
EXAMPLE = "write FORGE:OWNER/NAME#N, e.g. github:acme/api#42 (a GitLab merge request: gitlab:group/api!7)"


@dataclass(frozen=True)
class Ref:
    """A conversation as an operator named it."""

    forge: str  # a configured forge's name
    repo: str
    number: int
    pr: bool  # written ``!N``: the merge request's thread (only where the forge numbers them apart)

    def __str__(self) -> str:
        return f"{self.forge}:{self.repo}{'!' if self.pr else '#'}{self.number}"


def parse_ref(config: ForgeSettings, text: str) -> Ref:
    """``text`` read as a conversation of a configured forge; :class:`BadInput` naming what is wrong."""
    found = CONVERSATION.fullmatch(text.strip())
    if found is None:
        raise BadInput(f"{text!r} is not a conversation: {EXAMPLE}")
    forge = found["forge"]
    if forge is None:
        if len(config.forges) != 1:
            raise BadInput(f"name the forge: {', '.join(sorted(config.forges)) or 'none is configured'}")
        forge = next(iter(config.forges))
    if forge not in config.forges:
        raise BadInput(f"no forge named {forge!r} in the configuration")
    ref = Ref(forge, found["repo"], int(found["number"]), found["sign"] == "!")
    kind = facts(config.forges[forge].kind)
    if ref.pr and not kind.numbers_apart:
        raise BadInput(
            f"{text!r}: {kind.kind} numbers issues and pull requests in one sequence and writes both "
            f"#N: {forge}:{ref.repo}#{ref.number}"
        )
    return ref
