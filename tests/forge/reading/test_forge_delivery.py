"""A webhook delivery read once, into a typed value (:mod:`baton.forge.reading.delivery`), and acted on by the
worker (:mod:`baton.forge.background.delivery_pool`): the parts each reader keeps, the fields it refuses, any
payload read into a delivery, a reason or :class:`Malformed` (never another exception), and a pending delivery
stored by an earlier version (its string marker) still acted on after a restart."""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from baton.forge.background.delivery_pool import Worker
from baton.forge.data.config import ForgeConfig, ForgeSettings
from baton.forge.data.model import ForgeKind
from baton.forge.data.records import Binding, BindingStatus, DeliveryRecord, DeliveryStatus
from baton.forge.data.tables import delivery_store, forge_store
from baton.forge.kinds import registry
from baton.forge.reading.delivery import BasePushed, Closed, Delivery, DeliveryKind, Reader
from baton.forge.reading.webhook import Ignored, Malformed, Target
from baton.forge.turn.loop import ForgeLoop
from baton.forge.writes import publish
from baton.settings import Settings
from baton.store import Store

GITHUB, GITEA = registry.reader(ForgeKind.GITHUB), registry.reader(ForgeKind.GITEA)
CONFIG = ForgeSettings(
    forges={
        "gh": ForgeConfig(
            "gh", ForgeKind.GITHUB, "https://x/api/v3", "https://x", "T", "baton-bot", "@baton"
        ),
        "gt": ForgeConfig("gt", ForgeKind.GITEA, "https://g/api/v1", "https://g", "T", "baton-bot", "@baton"),
    },
    repos={},
)


def repository(full_name: str = "acme/api") -> dict[str, Any]:
    return {
        "full_name": full_name,
        "clone_url": f"https://x/{full_name}.git",
        "html_url": f"https://x/{full_name}",
    }


def pr_closed(merged: bool = True) -> dict[str, Any]:
    head = {"ref": "feature", "sha": "a" * 40, "repo": repository()}
    pr = {"number": 7, "merged": merged, "head": head, "base": {"ref": "main", "sha": "b" * 40}}
    return {"action": "closed", "number": 7, "pull_request": pr, "repository": repository()}


def push(ref: str = "refs/heads/main", login: str = "alice") -> dict[str, Any]:
    return {"ref": ref, "deleted": False, "repository": repository(), "sender": {"login": login}}


@pytest.mark.parametrize("reader", [GITHUB, GITEA], ids=["github", "gitea"])
def test_a_merged_pr_closed_is_a_cleanup_and_a_closed_thread(reader: Reader) -> None:
    read = reader.read(CONFIG, "pull_request", pr_closed())
    assert isinstance(read, Delivery)
    assert read.kinds == (DeliveryKind.CLEANUP, DeliveryKind.CLOSED)
    forge = "gh" if reader is GITHUB else "gt"
    assert read.closed == Closed(forge, "acme/api", 7, merged=True, pr=True)  # an outcome: the PR was merged
    assert read.target == Target(("x/acme/api",), "feature", merged=True)
    assert Delivery.from_json(read.to_json()) == read
    unmerged = reader.read(CONFIG, "pull_request", pr_closed(merged=False))
    assert isinstance(unmerged, Delivery) and unmerged.closed == Closed(forge, "acme/api", 7, pr=True)
    said = pr_closed()
    said["pull_request"]["merged"] = "true"  # only the forge's boolean says merged
    assert isinstance(read := reader.read(CONFIG, "pull_request", said), Delivery)
    assert read.closed is not None and read.closed.merged is False
    issue = {"action": "closed", "issue": {"number": 7, "merged": True}, "repository": repository()}
    assert isinstance(read := reader.read(CONFIG, "issues", issue), Delivery)
    assert read.closed == Closed(forge, "acme/api", 7)  # an issue is never merged


def test_without_a_forge_loop_only_the_cleanup_is_read() -> None:
    read = GITHUB.read(None, "pull_request", pr_closed())
    assert isinstance(read, Delivery) and read.kinds == (DeliveryKind.CLEANUP,)
    assert GITHUB.read(None, "push", push()) == Ignored("push that does not delete a branch")


def test_a_push_is_a_moved_base_unless_baton_pushed_or_the_branch_is_not_one() -> None:
    assert GITHUB.read(CONFIG, "push", push("refs/heads/release/2")) == Delivery(
        pushed=BasePushed("gh", "acme/api", "release/2")
    )
    for payload in (push(login="baton-bot[bot]"), push("refs/tags/v1"), push("refs/heads/a\x1bb"),
                    push("refs/heads/" + "b" * 256)):  # fmt: skip
        read = GITHUB.read(CONFIG, "push", payload)
        assert isinstance(read, Ignored), payload["ref"]
        assert "push that does not delete a branch" in read.reason


def test_a_repository_name_a_marker_could_not_carry_is_kept_whole() -> None:
    """``closed:gh:ev:il/a#1#7`` was split on its last ``#`` and first ``:``: the typed value keeps
    whatever the forge signed, and stores and reads it back unchanged."""
    payload = pr_closed(merged=False)
    payload["repository"]["full_name"] = "ev:il/a#1"
    read = GITHUB.read(CONFIG, "pull_request", payload)
    assert isinstance(read, Delivery) and read.closed == Closed("gh", "ev:il/a#1", 7, pr=True)
    assert Delivery.from_json(read.to_json()).closed == Closed("gh", "ev:il/a#1", 7, pr=True)


@pytest.mark.parametrize(
    "full_name, number",
    [("acme/api/x", 7), ("acme api/x", 7), ("a/" + "n" * 300, 7), ("acme/a\x00", 7), ("acme/api", True),
     ("acme/api", "7"), ("acme/api", 0), ("acme/api", -1), ("acme/api", 2**63), (["acme/api"], 7)],
)  # fmt: skip
def test_a_closed_part_keeps_only_fields_that_pass(full_name: Any, number: Any) -> None:
    payload = {"action": "closed", "issue": {"number": number}, "repository": {"full_name": full_name}}
    try:
        read = GITHUB.read(CONFIG, "issues", payload)
    except Malformed:
        return  # the intake, reading the same payload, refuses it (400)
    assert not (isinstance(read, Delivery) and read.closed), read


def test_a_pending_delivery_of_an_earlier_version_reads_its_marker() -> None:
    closed = Delivery.from_json({"marker": "closed:gh:acme/api#7"})
    assert closed == Delivery(closed=Closed("gh", "acme/api", 7))
    pushed = Delivery.from_json({"marker": "pushed:gh:acme/api:feat/x"})
    assert pushed == Delivery(pushed=BasePushed("gh", "acme/api", "feat/x"))
    with pytest.raises(ValueError, match="unknown marker"):
        Delivery.from_json({"marker": "opened:gh:acme/api#7"})


# -- hostile payloads -------------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=300),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
PATHS = [
    ("action",), ("number",), ("ref",), ("deleted",), ("repository",), ("repository", "full_name"),
    ("repository", "html_url"), ("pull_request",), ("pull_request", "number"), ("pull_request", "head"),
    ("pull_request", "head", "ref"), ("pull_request", "head", "repo"), ("pull_request", "merged"),
    ("issue",), ("issue", "number"), ("sender",), ("sender", "login"),
]  # fmt: skip


def _put(payload: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        inner = payload.get(key)
        if not isinstance(inner, dict):
            return
        payload = inner
    payload[path[-1]] = value


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    reader=st.sampled_from([GITHUB, GITEA]),
    event=st.sampled_from(["pull_request", "issues", "push", "delete"]),
    base=st.sampled_from([pr_closed(), push(), {"action": "closed", "issue": {"number": 3},
                                                 "repository": repository()}]),
    changes=st.lists(st.tuples(st.sampled_from(PATHS), JSON), max_size=4),
)  # fmt: skip
def test_any_payload_is_a_delivery_a_reason_or_malformed(
    reader: Reader, event: str, base: dict[str, Any], changes: list[tuple[tuple[str, ...], Any]]
) -> None:
    payload = copy.deepcopy(base)
    for path, value in changes:
        _put(payload, path, value)
    try:
        read = reader.read(CONFIG, event, payload)
    except Malformed as exc:
        assert str(exc)  # the route's 400 says why
        return
    assert isinstance(read, Delivery | Ignored)
    if isinstance(read, Ignored):
        assert read.reason
        return
    assert read.kinds
    if read.closed:
        assert type(read.closed.number) is int and read.closed.number >= 1
        assert read.closed.repo.count("/") == 1 and len(read.closed.repo) <= 255
    if read.pushed:
        branch = read.pushed.branch
        assert branch and len(branch) <= 255 and all(ord(c) >= 32 and c != "\x7f" for c in branch)
    assert Delivery.from_json(read.to_json()) == read


# -- the worker, after a restart --------------------------------------------------------------------


@pytest.fixture
def loop(settings: Settings, store: Store) -> Iterator[ForgeLoop]:
    made = publish.compose(settings, store, CONFIG, lambda _job: None)
    yield made
    made.close()


def _bound(store: Store, number: int) -> Binding:
    now = time.time()
    binding = Binding(
        forge="gh", repo="acme/api", number=number, agent="fake", repo_slug="x/acme/api",
        thread=f"issue-{number}", repo_url="https://x/acme/api.git", status=BindingStatus.ACTIVE,
        created_at=now, updated_at=now,
    )  # fmt: skip
    stored, new = forge_store(store).bind(binding)
    assert new
    return stored


def _wait_done(store: Store, delivery_id: str) -> DeliveryRecord:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        record = delivery_store(store).get_delivery("github", delivery_id)
        if record is not None and record.status != DeliveryStatus.PENDING:
            return record
        time.sleep(0.02)
    raise AssertionError(f"delivery {delivery_id} still pending")


def test_pending_deliveries_old_and_new_are_acted_on_after_a_restart(
    settings: Settings, store: Store, loop: ForgeLoop
) -> None:
    """One stored by an earlier version (its string marker), one by this one (typed): both close
    their binding when a restarted service re-queues them."""
    old, new = _bound(store, 7), _bound(store, 8)
    now = time.time()
    typed = Delivery(closed=Closed("gh", "acme/api", 8)).to_json()
    assert "marker" not in typed and typed == {"closes": {"forge": "gh", "repo": "acme/api", "number": 8}}
    assert delivery_store(store).add_deliveries([
        DeliveryRecord("github", "d-old", "issues", now, result={"marker": "closed:gh:acme/api#7"}),
        DeliveryRecord("github", "d-new", "issues", now, result=typed),
    ]) == [True, True]  # fmt: skip
    worker = Worker(store, settings, threads=1, loop=loop)
    assert worker.requeue_pending() == 2
    worker.start()
    try:
        for delivery_id, binding in (("d-old", old), ("d-new", new)):
            record = _wait_done(store, delivery_id)
            assert record.status == DeliveryStatus.DONE, record.result
            assert record.result == {"marker": {"closed": binding.conversation}}
            stored = forge_store(store).get_binding("gh", "acme/api", binding.number)
            assert stored is not None and stored.status == BindingStatus.CLOSED
    finally:
        worker.stop()


@pytest.mark.parametrize("reader", [GITHUB, GITEA], ids=["github", "gitea"])
def test_a_branch_deleted_is_cleaned_up_while_a_forge_loop_runs(reader: Reader) -> None:
    """The forge loop finds nothing in a branch's deletion: its cleanup is still the delivery's work
    (it was once read as ignored whenever a forge was configured)."""
    deleted = reader.read(
        CONFIG, "delete", {"ref_type": "branch", "ref": "feature", "repository": repository()}
    )
    assert isinstance(deleted, Delivery) and deleted.target == Target(("x/acme/api",), "feature")
    push = {
        "ref": "refs/heads/feature",
        "deleted": True,
        "repository": repository(),
        "sender": {"login": "a"},
    }
    pushed = reader.read(CONFIG, "push", push)
    assert isinstance(pushed, Delivery) and pushed.kinds == (DeliveryKind.CLEANUP,)
