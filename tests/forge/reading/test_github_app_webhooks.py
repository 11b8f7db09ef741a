"""A GitHub App's ``installation`` and ``installation_repositories`` webhooks, from the fake GitHub (its
payloads built from GitHub's examples and checked against GitHub's webhook description) to a real
``baton serve``: read into a typed delivery, stored once, and acted on — a repository added is known
without a look-up, one removed mints nothing more, a deleted installation's token is dropped. Signed but
hostile payloads are refused with 400 and nothing is stored; a wrong signature is a 401."""

from __future__ import annotations

import json

import pytest

from baton.forge.data.model import ForgeError
from baton.forge.data.records import DeliveryStatus
from baton.forge.data.tables import delivery_store
from baton.forge.kinds import registry
from baton.forge.kinds.configured import load_forges
from baton.forge.kinds.github.app import GitHubApp, app_of
from baton.forge.kinds.github.app_events import Installed
from baton.forge.reading.delivery import Delivery, DeliveryKind
from baton.testing.fake_forge import FakeForge
from baton.testing.fake_forge_hooks import Delivery as Sent
from baton.testing.fake_forge_hooks import post
from tests.conftest import wait_for
from tests.forge_fixtures import REPO, SECRET, agent_fixture  # noqa: F401
from tests.github_app_fixtures import app_fake_fixture, app_service_fixture, token_lifetime_fixture  # noqa: F401
from tests.service_fixtures import Service


def the_app(service: Service) -> GitHubApp:
    """The service's own App (it runs in this process): the one its webhooks tell."""
    return app_of(load_forges(service.settings.home).forges["github"])


def handled(service: Service, fake: FakeForge, event: str) -> dict[str, object]:
    """The result of the fake's last ``event`` delivery, once the service has acted on it."""
    fake.settle()
    sent = fake.last_delivery(event)
    assert sent.status == 202, sent.statuses
    deliveries = delivery_store(service.store)

    def done() -> bool:
        found = deliveries.get_delivery("github", sent.id)
        return found is not None and found.status != DeliveryStatus.PENDING

    wait_for(done, timeout=30, what=f"the {event} delivery to be handled")
    found = deliveries.get_delivery("github", sent.id)
    assert found is not None and found.status == DeliveryStatus.DONE, found
    return found.result


def test_installed_repositories_are_kept_current(fake: FakeForge, app_service: Service) -> None:
    app = the_app(app_service)
    installation = app.installation(REPO)
    assert app.lookups == 1
    fake.create_repo("acme/web")
    fake.add_to_installation(installation, ["acme/web"])
    result = handled(app_service, fake, "installation_repositories")
    assert result["installation"] == {
        "forge": "github",
        "installation": installation,
        "action": "added",
        "added": ["acme/web"],
        "removed": [],
    }
    assert app.token("acme/web").startswith("ghs_") and app.lookups == 1  # no look-up: the webhook said
    minted = fake.app.minted  # type: ignore[union-attr]
    fake.remove_from_installation(installation, [REPO])
    handled(app_service, fake, "installation_repositories")
    with pytest.raises(ForgeError, match=f"not installed on {REPO}"):
        app.token(REPO)
    assert app.lookups == 1 and fake.app.minted == minted  # type: ignore[union-attr]  # nothing minted for it
    fake.uninstall_app(installation)
    result = handled(app_service, fake, "installation")
    assert result["installation"]["action"] == "deleted"  # type: ignore[index]
    assert app.tokens.peek(installation) is None


def test_new_permissions_accepted_make_the_next_token_carry_them(
    fake: FakeForge, app_service: Service
) -> None:
    app = the_app(app_service)
    installation = app.installation(REPO)
    assert "workflows" not in app.minted(REPO).details["permissions"]
    fake.set_installation_permissions(installation, {**fake.app.permissions, "workflows": "write"})  # type: ignore[union-attr]
    handled(app_service, fake, "installation")
    assert app.minted(REPO).details["permissions"]["workflows"] == "write"


def _payload(fake: FakeForge) -> dict[str, object]:
    fake.create_repo("acme/web")
    installation = next(iter(fake.app.installations))  # type: ignore[union-attr]
    fake.hold = True  # built and kept, not sent
    fake.add_to_installation(installation, ["acme/web"])
    fake.hold = False
    return fake.held.pop().payload


@pytest.mark.parametrize(
    "spoil",
    [
        lambda p: p["installation"].update(id="957387"),
        lambda p: p.pop("installation"),
        lambda p: p["repositories_added"].append({"full_name": "../../etc"}),
        lambda p: p["repositories_added"].append({"full_name": "a/b c"}),
        lambda p: p.update(repositories_added="acme/web"),
        lambda p: p.update(repositories_added=[{"full_name": f"o/r{i}"} for i in range(10_001)]),
        lambda p: p["installation"].update(app_id="1"),
    ],
)
def test_hostile_installation_payloads_are_refused_and_nothing_is_stored(
    fake: FakeForge, app_service: Service, spoil: object
) -> None:
    payload = _payload(fake)
    spoil(payload)  # type: ignore[operator]
    sent = Sent("hostile-1", "installation_repositories", "added", json.dumps(payload).encode())
    assert post(f"{app_service.url}/webhooks/github", sent, SECRET) == 400
    assert delivery_store(app_service.store).get_delivery("github", "hostile-1") is None
    assert post(f"{app_service.url}/webhooks/github", sent, SECRET, forged=True) == 401


def test_an_action_baton_does_not_act_on_is_ignored(fake: FakeForge, app_service: Service) -> None:
    payload = _payload(fake)
    payload["action"] = "renamed"
    sent = Sent("odd-1", "installation_repositories", "renamed", json.dumps(payload).encode())
    assert post(f"{app_service.url}/webhooks/github", sent, SECRET) == 202
    found = delivery_store(app_service.store).get_delivery("github", "odd-1")
    assert found is not None and found.status == DeliveryStatus.IGNORED


def test_an_installed_part_survives_the_store() -> None:
    part = Installed("github", 12, "removed", (), ("acme/api",))
    again = Delivery.from_json(json.loads(json.dumps(Delivery(part=part).to_json())), registry.stored_parts())
    assert again.part == part and again.kinds == (DeliveryKind.FORGE,) and again.feedback
