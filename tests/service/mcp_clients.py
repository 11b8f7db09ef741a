"""The MCP SDK's own client on baton's two transports, for the MCP tests: ``baton mcp`` started as a child
on stdio, and ``/mcp`` of a running ``baton serve``; each collects the progress notifications of its
calls."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, TextContent

from tests.conftest import BATON
from tests.service_fixtures import Service


def stdio_params(service: Service, token: str) -> StdioServerParameters:
    env = {**os.environ, "BATON_HOME": str(service.settings.home), "BATON_URL": service.url}
    return StdioServerParameters(
        command=BATON[0], args=[*BATON[1:], "mcp"], env={**env, "BATON_TOKEN": token}
    )


@asynccontextmanager
async def http_client(service: Service, token: str) -> AsyncIterator[Client]:
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=120) as http:
        transport = streamable_http_client(f"{service.url}/mcp", http_client=http)
        async with Client(transport, read_timeout_seconds=120) as client:
            yield client


class Progress:
    """A progress callback that keeps each notification's message."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        self.messages.append(message or "")


def text(result: CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))
