"""Request bodies are bounded (baton.service.limits): a body past 32 MiB is refused with 413 before it
is read into memory, by its Content-Length or, when chunked, as it arrives; nothing is stored."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from baton.service.limits import MAX_BODY
from tests.service_fixtures import Service, service_fixture  # noqa: F401 (the `service` fixture)


def _chunks(total: int, size: int = 1 << 20) -> Iterator[bytes]:
    yield b'{"prompt": "'
    for _ in range(total // size):
        yield b"x" * size
    yield b'"}'


def test_a_body_past_the_bound_is_413_and_writes_nothing(service: Service, src_repo: Path) -> None:
    with service.client("run") as http:
        big = http.post(
            "/v1/runs",
            content=b"x" * (MAX_BODY + 1),
            headers={"content-type": "application/json"},
        )
        assert big.status_code == 413 and "MiB" in big.json()["detail"]
        chunked = http.post(
            "/v1/runs", content=_chunks(MAX_BODY + (1 << 20)), headers={"content-type": "application/json"}
        )
        assert chunked.status_code == 413
        small = http.post(
            "/v1/runs", json={"agent": "fake", "repo": str(src_repo), "thread": "t1", "prompt": "hi"}
        )
        assert small.status_code == 202
    assert [job.request["prompt"] for job in service.store.list_jobs()] == ["hi"]
