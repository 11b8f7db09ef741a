"""``/docs`` and ``/redoc`` work without internet: their scripts and styles come from the service (the
``fastapi-offline`` package ships them), checked in real Chromium on a real uvicorn. FastAPI's own
pages load Swagger UI and ReDoc from a CDN, so offline they are blank: these tests then fail (no
operation appears, and the CDN requests are listed)."""

from __future__ import annotations

from tests.browser_fixtures import Tab, Tabs, browser_fixture, tabs_fixture  # noqa: F401 (fixtures)
from tests.service_fixtures import Service, service_fixture  # noqa: F401 (the `service` fixture)


def watched(tabs: Tabs, service: Service) -> tuple[Tab, list[str]]:
    """A tab on the service and the list every request it makes is appended to."""
    tab = tabs.open(service.url)
    requests: list[str] = []
    tab.page.on("request", lambda request: requests.append(request.url))
    return tab, requests


def outside(service: Service, requests: list[str], allowed: tuple[str, ...] = ()) -> list[str]:
    own = (service.url + "/", f"blob:{service.url}/", "data:", *allowed)
    return [u for u in requests if not u.startswith(own)]


def test_swagger_ui_renders_the_operations_from_the_service_alone(service: Service, tabs: Tabs) -> None:
    tab, requests = watched(tabs, service)
    assert tab.goto("/docs") == 200
    tab.page.wait_for_selector(".opblock-summary-path")  # Swagger UI's script ran and rendered the schema
    assert "/v1/runs" in tab.page.locator(".opblock-summary-path").all_inner_texts()
    assert not outside(service, requests), f"requests outside the service: {outside(service, requests)}"
    assert f"{service.url}/static-offline-docs/swagger-ui-bundle.js" in requests


def test_redoc_renders_the_operations_offline(service: Service, tabs: Tabs) -> None:
    """ReDoc too; its "API docs by Redocly" footer image still names a CDN (an <img>: a missing
    picture, nothing else)."""
    tab, requests = watched(tabs, service)
    tab.expect_errors(r"cdn\.redoc\.ly/redoc/logo-mini\.svg")
    assert tab.goto("/redoc") == 200
    tab.page.wait_for_selector("[id^='operation/']", state="attached")
    assert "/v1/runs" in tab.page.inner_text("body")
    left = outside(service, requests, allowed=("https://cdn.redoc.ly/redoc/logo-mini.svg",))
    assert not left, f"requests outside the service: {left}"
