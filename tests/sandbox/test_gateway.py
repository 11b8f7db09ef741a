"""baton's model gateway (baton.sandbox.gateway, upstream, wire): the agent holds a token of its run,
the model API gets the real key; a token not the run's, or of a run that ended, is refused with 401; a
streamed reply passes through chunk by chunk as the model API sends it; the usage the replies count is
read on the wire in each vendor's format. The real Claude Code, Codex, Gemini and Copilot CLIs,
``model_gateway = on``: the environment their shell tool prints (Copilot's: its own process's) holds
the token and not the key, the mock saw the key, and the usage read on the wire is the usage the CLI
reported (OpenCode: test_gateway_acp.py).
"""

from __future__ import annotations

import http.server
import importlib
import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.client import HTTPConnection
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from baton import RunRequest, run
from baton.agents.base import ModelApi
from baton.models import Access, Outcome
from baton.sandbox import gateway, routes, wire
from baton.settings import Settings, load_settings
from baton.store import open_store
from baton.testing import mock_anthropic, mock_gemini, mock_openai
from baton.testing._http import MockServer
from baton.testing.mock_anthropic import MockAnthropic
from baton.testing.mock_openai import API_KEY_ENV
from tests.conftest import FAST, MOCKS
from tests.sandbox.test_access_real import shell_marker, tool_results

REAL_KEY = "sk-real-key-that-must-stay-outside"
PIECES, PIECE, GAP = 16, 65536, 0.1  # a 1 MiB reply in 64 KiB pieces, 0.1 s apart

ANTHROPIC = ModelApi.ANTHROPIC  # what the mock's calls speak


def _split(text: str, every: int = 7) -> list[bytes]:
    """``text`` cut into pieces that split lines and JSON, as a network would."""
    data = text.encode()
    return [data[i : i + every] for i in range(0, len(data), every)]


def _metered(content_type: str, text: str) -> dict[str, int]:
    meter = wire.Meter(content_type)
    for piece in _split(text):
        meter.feed(piece)
    return meter.usage()


def test_usage_is_read_on_the_wire_in_each_vendors_format() -> None:
    start = {"type": "message_start", "message": {"usage": {"input_tokens": 5, "output_tokens": 1,
             "cache_read_input_tokens": 100, "cache_creation_input_tokens": 7}}}  # fmt: skip
    delta = {"type": "message_delta", "usage": {"output_tokens": 42}}
    anthropic = "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in (start, delta))
    counted = {"input_tokens": 5, "output_tokens": 42, "cache_read_tokens": 100, "cache_write_tokens": 7}
    assert _metered("text/event-stream", anthropic) == counted
    usage = {"input_tokens": 30, "output_tokens": 9, "input_tokens_details": {"cached_tokens": 20}}
    done = {"type": "response.completed", "response": {"usage": usage}}
    responses = (
        f"data: {json.dumps({'type': 'response.created', 'response': {}})}\n\ndata: {json.dumps(done)}\n\n"
    )
    assert _metered("text/event-stream; charset=utf-8", responses) == {
        "input_tokens": 30, "output_tokens": 9, "cache_read_tokens": 20}  # fmt: skip
    chunk = {"object": "chat.completion.chunk", "usage": {"prompt_tokens": 3, "completion_tokens": 4}}
    first = {"object": "chat.completion.chunk", "usage": None}
    chat = f"data: {json.dumps(first)}\n\ndata: {json.dumps(chunk)}\n\ndata: [DONE]\n\n"
    assert _metered("text/event-stream", chat) == {"input_tokens": 3, "output_tokens": 4}
    parts = [{"usageMetadata": {"promptTokenCount": 8, "candidatesTokenCount": n}} for n in (1, 6)]
    gemini = "".join(f"data: {json.dumps(p)}\r\n\r\n" for p in parts)
    assert _metered("text/event-stream", gemini) == {"input_tokens": 8, "output_tokens": 6}
    assert _metered("application/json", json.dumps(parts)) == {"input_tokens": 8, "output_tokens": 6}
    whole = {"type": "message", "usage": {"input_tokens": 2, "output_tokens": 3}}
    assert _metered("application/json", json.dumps(whole)) == {"input_tokens": 2, "output_tokens": 3}
    assert _metered("application/json", "not json") == {}


def _meter(content_type: str, text: str) -> wire.Meter:
    meter = wire.Meter(content_type)
    for piece in _split(text):
        meter.feed(piece)
    meter.usage()
    return meter


def _sse(objects: list[dict[str, Any]], end: str = "\n\n") -> str:
    return "".join(f"data: {json.dumps(o)}{end}" for o in objects)


def test_the_meter_reads_the_model_each_reply_names_and_its_billed_counts() -> None:
    """The mocks' own reply shapes (a recorded Chat chunk's): the model the reply names, and the counts
    as a price list bills them (OpenAI's and Gemini's input less its cached part, Gemini's thoughts as
    output)."""
    body = {"model": "claude-sonnet-4-5", "stream": True}
    msg = mock_anthropic._message(body, [{"type": "text", "text": "hi"}], 1, 30)
    msg["usage"] |= {"cache_read_input_tokens": 100, "cache_creation_input_tokens": 7}
    streamed = "".join(
        f"event: {n}\ndata: {json.dumps(d)}\n\n" for n, d in mock_anthropic._stream_events(msg)
    )
    meter = _meter("text/event-stream", streamed)
    assert meter.model == "claude-sonnet-4-5"
    billed = {"input_tokens": 30, "output_tokens": 12, "cache_read_tokens": 100, "cache_write_tokens": 7}
    assert meter.billed() == billed
    whole = _meter("application/json", json.dumps({**msg, "model": "claude-opus-4-1"}))
    assert whole.model == "claude-opus-4-1" and whole.billed() == billed

    responses = mock_openai.events({"model": "gpt-5-codex"}, "hi", 1, 2, tokens=50)
    responses[-1]["response"]["usage"]["input_tokens_details"] = {"cached_tokens": 20}
    meter = _meter("text/event-stream", _sse(responses))
    assert meter.model == "gpt-5-codex"
    assert meter.billed() == {"input_tokens": 30, "output_tokens": meter.found["output_tokens"],
                              "cache_read_tokens": 20}  # fmt: skip
    done = responses[-1]["response"]
    assert _meter("application/json", json.dumps(done)).model == "gpt-5-codex"

    chunk = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o-2024-08-06",
        "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": None}],
        "usage": None,
    }
    last = {**chunk, "choices": [], "usage": {"prompt_tokens": 40, "completion_tokens": 4,
                                              "prompt_tokens_details": {"cached_tokens": 32}}}  # fmt: skip
    meter = _meter("text/event-stream", _sse([chunk, last]) + "data: [DONE]\n\n")
    assert meter.model == "gpt-4o-2024-08-06"
    assert meter.billed() == {"input_tokens": 8, "output_tokens": 4, "cache_read_tokens": 32}

    parts = [mock_gemini._response("h", 1, "gemini-2.5-pro", False),
             mock_gemini._response("i", 1, "gemini-2.5-pro", True, tokens=70)]  # fmt: skip
    parts[-1]["usageMetadata"] |= {"thoughtsTokenCount": 5, "cachedContentTokenCount": 60}
    for meter in (
        _meter("text/event-stream", _sse(parts, "\r\n\r\n")),
        _meter("application/json", json.dumps(parts)),
    ):
        assert meter.model == "gemini-2.5-pro"
        assert meter.billed() == {"input_tokens": 10, "output_tokens": 17, "cache_read_tokens": 60}
    assert _meter("application/json", json.dumps({"type": "message", "model": 7})).model is None


MESSAGE = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}


def test_the_gateway_swaps_the_runs_token_for_the_key() -> None:
    with MockAnthropic() as mock:
        mine = gateway.admit("run-a", gateway.Upstream(mock.url, "x-api-key", REAL_KEY, ANTHROPIC))
        other = gateway.admit("run-b", gateway.Upstream(mock.url, "x-api-key", "other-key", ANTHROPIC))
        with httpx.Client() as http:

            def send(url: str, token: str, **kw: Any) -> httpx.Response:
                return http.post(f"{url}/v1/messages", headers={"x-api-key": token}, **kw)

            streamed = send(mine.url, mine.token, json={**MESSAGE, "stream": True})
            assert streamed.status_code == 200 and "message_stop" in streamed.text
            assert send(mine.url, mine.token, json=MESSAGE).json()["type"] == "message"
            assert mock.keys_seen == [REAL_KEY, REAL_KEY]
            assert mine.usage() == {"input_tokens": 20, "output_tokens": 24, "requests": 2}
            for url, token in ((mine.url, other.token), (mine.url, "forged"), (other.url, mine.token)):
                refused = send(url, token, json=MESSAGE)
                assert refused.status_code == 401, refused.text
                assert refused.json()["error"]["type"] == "authentication_error"
            mine.close()
            assert send(mine.url, mine.token, json=MESSAGE).status_code == 401, "the run has ended"
            bearer_auth = {"authorization": f"Bearer {other.token}"}
            bearer = http.post(f"{other.url}/v1/messages", headers=bearer_auth, json=MESSAGE)
            assert bearer.status_code == 200
            other.close()
        assert len(mock.keys_seen) == 3 and mock.keys_seen[-1] == "other-key", "no refused request went on"


class _Slow(http.server.BaseHTTPRequestHandler):
    """1 MiB of server-sent events in pieces, ``GAP`` seconds apart (a model streaming its answer)."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for index in range(PIECES):
            piece = f"data: {index:04d}".encode().ljust(PIECE - 2, b"x") + b"\n\n"
            self.wfile.write(b"%x\r\n%b\r\n" % (len(piece), piece))
            self.wfile.flush()
            time.sleep(GAP)
        self.wfile.write(b"0\r\n\r\n")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def slow() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_streamed_reply_arrives_as_the_model_sends_it(slow: str) -> None:
    """The first bytes arrive long before the model API has finished, the pieces keep its pace, and
    the whole 1 MiB arrives intact."""
    admitted = gateway.admit("run-slow", gateway.Upstream(slow, "x-api-key", REAL_KEY, ANTHROPIC))
    arrived: list[tuple[float, int]] = []
    body = bytearray()
    started = time.monotonic()
    url, auth = f"{admitted.url}/v1/messages", {"x-api-key": admitted.token}
    with httpx.Client() as http, http.stream("POST", url, headers=auth, json=MESSAGE) as reply:
        assert reply.status_code == 200
        for piece in reply.iter_raw():
            arrived.append((time.monotonic() - started, len(piece)))
            body += piece
    admitted.close()
    total = arrived[-1][0]
    assert total >= (PIECES - 1) * GAP * 0.9
    # the model API sends for 1.5 s: its first piece is through before it is half done
    assert arrived[0][0] < (PIECES - 1) * GAP / 2, f"first byte after {arrived[0][0]:.2f}s of {total:.2f}s"
    halfway = next(t for t, _ in _running(arrived) if _ >= len(body) // 2)
    assert total * 0.3 < halfway < total * 0.8, "half the reply arrived at half time"
    expected = b"".join(f"data: {i:04d}".encode().ljust(PIECE - 2, b"x") + b"\n\n" for i in range(PIECES))
    assert bytes(body) == expected


def _running(arrived: list[tuple[float, int]]) -> Iterator[tuple[float, int]]:
    seen = 0
    for when, size in arrived:
        seen += size
        yield when, seen


# what a prompt-injected agent would use the key for: none is a model call
OFF_ROUTE = (
    ("POST", "/v1/files"),
    ("POST", "/v1/messages/batches"),
    ("GET", "/v1/organizations/me"),
    ("DELETE", "/v1/messages"),
    ("POST", "/v1/../v1/files"),
    ("POST", "/v1/messages/../files"),
    ("POST", "/v1/%2e%2e/admin"),
    ("POST", "/v1/messages/%2E%2E%2Ffiles"),
    ("POST", "/v1//messages"),
    ("POST", "/v1/messages\\..\\files"),
)


ROUTES = (  # (the API, a call, whether the key is lent for it)
    (ModelApi.ANTHROPIC, "POST", "/v1/messages", True),
    (ModelApi.ANTHROPIC, "POST", "/v1/messages/count_tokens", True),
    (ModelApi.OPENAI, "POST", "/responses", True),
    (ModelApi.OPENAI, "POST", "/v1/chat/completions", True),
    (ModelApi.OPENAI, "GET", "/models", True),
    (ModelApi.GEMINI, "POST", "/v1beta/models/gemini-2.5-pro:streamGenerateContent", True),
    (ModelApi.GEMINI, "POST", "/v1beta/models/gemini-2.5-pro%3AcountTokens", True),
    (ModelApi.GEMINI, "GET", "/v1beta/models", True),
    (ModelApi.OPENAI, "POST", "/v1/messages", False),  # another vendor's call
    (ModelApi.OPENAI, "POST", "/files", False),
    (ModelApi.OPENAI, "POST", "/batches", False),
    (ModelApi.OPENAI, "GET", "/responses", False),
    (ModelApi.GEMINI, "POST", "/v1beta/files", False),
    (ModelApi.GEMINI, "POST", "/v1beta/models/m:batchGenerateContent", False),
    (ModelApi.GEMINI, "POST", "/v1beta/tunedModels", False),
)


def test_the_key_is_lent_only_for_the_models_own_calls() -> None:
    told: list[tuple[str, str]] = []
    guard = gateway.Guard(
        lambda _t, _m: None, lambda _s, _h, _b: None, lambda m, p, _why: told.append((m, p))
    )
    with MockAnthropic() as mock:
        mine = gateway.admit("run-routes", gateway.Upstream(mock.url, "x-api-key", REAL_KEY, ANTHROPIC))
        mine.guard = guard
        where = urlsplit(mine.url)
        http = HTTPConnection(where.hostname or "", where.port)  # sends a path as it is (httpx folds "..")
        for method, path in OFF_ROUTE:
            http.request(method, where.path + path, json.dumps(MESSAGE), {"x-api-key": mine.token})
            refused = http.getresponse()
            body = json.loads(refused.read())
            assert refused.status == 403 and body["error"]["type"] == "permission_error", (path, body)
        http.close()
        assert mock.keys_seen == [], "no refused request reached the model API"
        assert told == list(OFF_ROUTE)  # each one told to the run's guard (which audits it)
    for api, method, path, lent in ROUTES:
        assert (routes.refusal(api, method, path) is None) == lent, (api, method, path)


def test_a_model_api_that_cannot_be_reached_is_a_502() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    admitted = gateway.admit(
        "run-down", gateway.Upstream(f"http://127.0.0.1:{port}", "x-api-key", "k", ANTHROPIC)
    )
    reply = httpx.post(f"{admitted.url}/v1/messages", headers={"x-api-key": admitted.token}, json=MESSAGE)
    admitted.close()
    assert reply.status_code == 502 and "could not reach the model API" in reply.text


# -- the real CLIs -------------------------------------------------------------------------------------

KEY_VARIABLE = {
    "claude": "ANTHROPIC_API_KEY",
    "codex": API_KEY_ENV,
    "gemini": "GEMINI_API_KEY",
    "copilot": "COPILOT_PROVIDER_API_KEY",
}


# Copilot keeps its own variables from its shell: its process's environment is read instead
SHOW_ENV = {"copilot": "cat /proc/$PPID/cmdline; echo; tr '\\0' '\\n' < /proc/$PPID/environ"}


@pytest.fixture
def model(
    agent: str, home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[MockServer[Any]]:
    (tmp_path / "user-home").mkdir()  # the CLI's shells skip this machine's ~/.bashrc
    monkeypatch.setenv("HOME", str(tmp_path / "user-home"))
    monkeypatch.delenv("BATON_GEMINI_MODEL", raising=False)
    monkeypatch.delenv("GEMINI_MODEL", raising=False)
    module, name = MOCKS[agent]
    with getattr(importlib.import_module(module), name)() as server:
        for key, value in server.env().items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv(KEY_VARIABLE[agent], REAL_KEY)
        server.configure_home(home / "homes" / agent)
        yield server


def gateway_settings(home: Path, egress: str) -> Settings:
    values = {"home": str(home), **FAST, "egress": egress, "model_gateway": "on"}
    return load_settings(overrides=values, environ={})


@pytest.mark.slow
@pytest.mark.parametrize(
    ("agent", "egress"),
    [("claude", "open"), ("claude", "none"), ("codex", "none"), ("gemini", "open"), ("copilot", "none")],
)
def test_the_real_cli_holds_only_its_runs_token(
    home: Path, src_repo: Path, agent: str, egress: str, model: MockServer[Any]
) -> None:
    """The CLI at ``full`` runs ``env`` through its shell tool: the key is not there, the run's token
    is; every request reached the mock with the real key; the token is refused once the run has
    ended; the usage read on the wire is the usage the CLI reported."""
    request = RunRequest(
        agent=agent,
        repo=str(src_repo),
        thread=f"gateway-{egress}",
        prompt=f"show me {shell_marker(agent, SHOW_ENV.get(agent, 'env'))}",
        access=Access.FULL,
    )
    settings = gateway_settings(home, egress)
    result = run(request, settings=settings)
    assert result.run.outcome == Outcome.SUCCEEDED, result.run.error
    assert refused_calls(settings) == [], "every call the CLI made is a model call the key is lent for"
    output = "\n".join(tool_results(agent, model))
    variables = dict(line.partition("=")[::2] for line in output.splitlines() if "=" in line)
    token = variables[KEY_VARIABLE[agent]]
    assert REAL_KEY not in output and token.startswith(f"baton-run-{result.run.id}."), output
    assert model.keys_seen and set(model.keys_seen) == {REAL_KEY}
    url = f"{gateway_url(result.run.id)}/v1/messages"
    assert httpx.post(url, headers={"x-api-key": token}, json=MESSAGE).status_code == 401, "the run ended"
    usage = result.run.usage
    print(agent, usage)
    wire_usage = usage["wire"]
    assert wire_usage["requests"] == len(model.conversation()) >= 2
    said = {
        k: int(usage.get(k, usage.get(acp, 0)))
        for k, acp in (("input_tokens", "inputTokens"), ("output_tokens", "outputTokens"))
    }
    assert wire_usage["output_tokens"] == said["output_tokens"] > 0, usage
    cached = usage.get("cache_read_input_tokens", 0) if agent == "gemini" else 0  # its input leaves it out
    assert wire_usage["input_tokens"] == said["input_tokens"] + cached > 0, usage


@pytest.mark.slow
@pytest.mark.parametrize("agent", ["claude"])
def test_with_no_setting_the_agent_holds_a_token_and_reaches_no_unlisted_host(
    home: Path, src_repo: Path, agent: str, model: MockServer[Any]
) -> None:
    """A new install's defaults (no ``egress``, no ``model_gateway``): Claude Code at ``full`` finds a
    token of its run in its environment, never the key; its ``curl`` to a host off the default list
    (the registries and its repository's remote) gets the proxy's 403, audited; its turn goes on."""
    command = f"env; curl -s -o /dev/null -w 'status %{{http_code}}\\n' http://{UNLISTED}/x"
    request = RunRequest(
        agent=agent,
        repo=str(src_repo),
        thread="defaults",
        prompt=f"show me {shell_marker(agent, command)}",
        access=Access.FULL,
    )
    settings = load_settings(overrides={"home": str(home), **FAST}, environ={})
    assert settings.egress == "registries, remote" and settings.model_gateway == "on"
    result = run(request, settings=settings)
    assert result.run.outcome == Outcome.SUCCEEDED, result.run.error
    output = "\n".join(tool_results(agent, model))
    variables = dict(line.partition("=")[::2] for line in output.splitlines() if "=" in line)
    assert REAL_KEY not in output and variables[KEY_VARIABLE[agent]].startswith(f"baton-run-{result.run.id}.")
    assert "status 403" in output, output
    assert set(model.keys_seen) == {REAL_KEY}
    store = open_store(settings.resolved_store_url)
    try:
        rows = [a["detail"] for a in store.list_audit(500) if a["action"] == "egress.refused"]
    finally:
        store.close()
    assert [(d["host"], d["run_id"]) for d in rows] == [(UNLISTED, result.run.id)], rows
    assert "OPEN" not in (result.run.note or "") and "model_gateway = off" not in (result.run.note or "")


UNLISTED = "unlisted.example"


def refused_calls(settings: Settings) -> list[tuple[str, str]]:
    """The calls the gateway refused as no model call (their audit rows): method and path."""
    store = open_store(settings.resolved_store_url)
    try:
        rows = [a["detail"] for a in store.list_audit(500) if a["action"] == "gateway.refused"]
    finally:
        store.close()
    return [(d["method"], d["path"]) for d in reversed(rows)]


@pytest.mark.slow
@pytest.mark.parametrize("agent", ["claude"])
def test_an_agent_cannot_use_its_token_for_more_than_its_models_calls(
    home: Path, src_repo: Path, agent: str, model: MockServer[Any]
) -> None:
    """Claude Code at ``full``, told by its prompt to try the key for other calls of the vendor's API
    (its files, batches, the organisation, a path climbing out of the base): each is refused with 403
    by the gateway, audited, and none reaches the model API; its own turn goes on."""
    calls = " ".join(f'"{method} {path}"' for method, path in OFF_ROUTE[:6])
    command = (  # each call's status on a line of its own
        f"for call in {calls}; do set -- $call; curl -s --path-as-is -o /dev/null -w '%{{http_code}}\\n' "
        '-X "$1" -H "x-api-key: $ANTHROPIC_API_KEY" -d "{}" "$ANTHROPIC_BASE_URL$2"; done'
    )
    settings = gateway_settings(home, "none")
    request = RunRequest(
        agent=agent,
        repo=str(src_repo),
        thread="greedy",
        prompt=f"try {shell_marker(agent, command)}",
        access=Access.FULL,
    )
    result = run(request, settings=settings)
    assert result.run.outcome == Outcome.SUCCEEDED, result.run.error
    output = "\n".join(tool_results(agent, model))
    assert output.split() == ["403"] * 6, output
    assert refused_calls(settings) == list(OFF_ROUTE[:6])
    assert set(model.keys_seen) == {REAL_KEY} and len(model.keys_seen) == len(model.conversation())


def gateway_url(run_id: str) -> str:
    return f"http://127.0.0.1:{gateway._gateway().port}{gateway.PREFIX}{run_id}"


def test_doctor_names_the_agents_that_keep_their_own_credential(home: Path) -> None:
    from baton.housekeeping.doctor import check_model_gateway

    settings = gateway_settings(home, "open")
    environ = {"ANTHROPIC_API_KEY": "k", "GEMINI_API_KEY": "k", "CODEX_API_KEY": "k", "GH_TOKEN": "g"}
    said = check_model_gateway(settings, environ)
    assert said.status.value == "warn", said
    assert "claude: ANTHROPIC_API_KEY held by the gateway" in said.detail
    assert "gemini: GEMINI_API_KEY held by the gateway" in said.detail
    assert "codex: keeps its own credential (CODEX_API_KEY" in said.detail  # the built-in openai provider
    assert "copilot: keeps its own credential (GH_TOKEN: a GitHub login, which only GitHub" in said.detail
    assert "opencode: keeps its own credential (ANTHROPIC_API_KEY" in said.detail  # no model configured
    none = check_model_gateway(settings, {})
    assert none.status.value == "ok" and none.detail == "on: no agent has credentials here"
    off = check_model_gateway(settings.with_(model_gateway="off"), environ)
    assert off.status.value == "warn" and off.detail.startswith("OFF (model_gateway = off)"), off  # loudly


def test_codex_is_pointed_at_the_gateway_by_its_model_providers_base_url(tmp_path: Path) -> None:
    """The key of the provider baton makes of ``OPENAI_BASE_URL``, or of the home's own provider, is
    stood in for; its ``base_url`` becomes the gateway's through a ``-c`` before ``resume``. The built-in
    ``openai`` provider (a ChatGPT login, ``auth.json``) keeps its credential."""
    from baton.agents.codex import BASE_URL_PROVIDER, CodexAgent
    from baton.models import Mode

    agent = CodexAgent(tmp_path / "codex-home", "/opt/codex/bin/codex")
    assert agent.gateway_key({"CODEX_API_KEY": "k"}) is None
    env = {"OPENAI_BASE_URL": "https://llm.example/v1", "OPENAI_API_KEY": "k"}
    key = agent.gateway_key(env)
    assert key is not None and key.keys == (("OPENAI_API_KEY", "authorization"),) and not key.base_url
    assert key.config == f"model_providers.{BASE_URL_PROVIDER}.base_url"
    thread = "0199a0b1-1111-7222-8333-444455556666"
    resumed = agent.behind_gateway(agent.launch(Mode.RESUME, "go on", thread), key.config, "http://gw/run/r1")
    at = resumed.argv.index("resume")
    assert resumed.argv[at - 2 : at] == ["-c", f'{key.config}="http://gw/run/r1"']
    assert resumed.argv[at:] == ["resume", thread, "-"]
    agent.home.mkdir(parents=True)
    provider = '[model_providers.acme]\nbase_url = "https://acme.example/v1"\nenv_key = "ACME_KEY"\n'
    (agent.home / "config.toml").write_text('model_provider = "acme"\n' + provider)
    own = agent.gateway_key({"ACME_KEY": "k"})
    assert own is not None and own.keys == (("ACME_KEY", "authorization"),)
    assert own.config == "model_providers.acme.base_url"
    assert agent.model_url({}) == "https://acme.example/v1"
    fresh = agent.behind_gateway(agent.launch(Mode.FRESH, "hi", None), own.config, "http://gw/run/r2")
    assert fresh.argv[-3:] == ["-c", 'model_providers.acme.base_url="http://gw/run/r2"', "-"]


def test_copilot_and_opencode_keys_are_stood_in_for_where_they_can_be(home: Path) -> None:
    """Copilot's own provider: its key in the header of the provider's type, a bearer token first;
    a GitHub login, a key a command prints and the WebSocket transport keep their own. OpenCode: its
    model's provider's key, OpenAI- or Anthropic-compatible, found where it finds it; ``doctor`` says
    so, naming the upstream ``model_gateway_upstream`` sets."""
    from baton.agents.copilot import CopilotAgent
    from baton.agents.opencode import GATEWAY_KEY, OpenCodeAgent
    from baton.housekeeping.doctor import check_model_gateway

    copilot = CopilotAgent("copilot", home / "copilot")
    own = {"COPILOT_PROVIDER_BASE_URL": "https://llm.example/v1", "COPILOT_PROVIDER_API_KEY": "k"}
    key = copilot.gateway_key(own)
    assert key is not None and key.base_url == "COPILOT_PROVIDER_BASE_URL"
    assert key.keys == (
        ("COPILOT_PROVIDER_BEARER_TOKEN", "authorization"),
        ("COPILOT_PROVIDER_API_KEY", "authorization"),
    )
    anthropic = copilot.gateway_key({**own, "COPILOT_PROVIDER_TYPE": "anthropic"})
    assert anthropic is not None and anthropic.keys[1] == ("COPILOT_PROVIDER_API_KEY", "x-api-key")
    for kept in ({"GH_TOKEN": "g"}, {**own, "COPILOT_PROVIDER_API_KEY_COMMAND": "pass show k"}):
        assert copilot.gateway_key(kept) is None
    assert copilot.gateway_key({**own, "COPILOT_PROVIDER_TRANSPORT": "websockets"}) is None
    base = home / "homes" / "opencode"
    opencode = OpenCodeAgent("opencode", base)
    config = base / "config" / "opencode" / "opencode.json"
    config.parent.mkdir(parents=True)
    provider = {
        "npm": "@ai-sdk/anthropic",
        "options": {"baseURL": "https://a.example/v1", "apiKey": "{env:ACME}"},
    }
    config.write_text(json.dumps({"model": "acme/m", "provider": {"acme": provider}}))
    key = opencode.gateway_key({"ACME": "secret"})
    assert key is not None and key.secret == "secret" and key.also == ("ACME",)
    assert key.keys == ((GATEWAY_KEY, "x-api-key"),) and key.config == "acme"
    config.write_text(json.dumps({"model": "g/m", "provider": {"g": {**provider, "npm": "@ai-sdk/google"}}}))
    assert opencode.gateway_key({"ACME": "secret"}) is None  # Google's API: the gateway does not speak it
    config.write_text(json.dumps({"model": "openai/gpt-5.5"}))  # its built-in provider, its variable
    settings = gateway_settings(home, "open").with_(
        model_gateway_upstream="opencode=https://llm.example:8443/v1"
    )
    said = check_model_gateway(settings, {**own, "OPENAI_API_KEY": "k"})
    assert "opencode: OPENAI_API_KEY held by the gateway (to https://llm.example:8443)" in said.detail
    assert "copilot: COPILOT_PROVIDER_API_KEY held by the gateway (to https://llm.example)" in said.detail


def test_curl_with_a_large_body_is_told_to_go_on_once(tmp_path: Path) -> None:
    """curl sends ``Expect: 100-continue`` with a large body: the gateway answers it and keeps it from
    the model API (whose own ``100 Continue`` would otherwise be taken for the reply)."""
    body = tmp_path / "body.json"
    body.write_text(json.dumps({**MESSAGE, "messages": [{"role": "user", "content": "x" * 2_000_000}]}))
    with MockAnthropic() as mock:
        admitted = gateway.admit("run-curl", gateway.Upstream(mock.url, "x-api-key", REAL_KEY, ANTHROPIC))
        auth = ["-H", f"x-api-key: {admitted.token}", "-H", "content-type: application/json"]
        args = ["curl", "-sS", "-w", "\n%{http_code}", *auth, "--data-binary", f"@{body}"]
        done = subprocess.run(
            [*args, f"{admitted.url}/v1/messages"], capture_output=True, text=True, timeout=30
        )
        admitted.close()
    reply, _, status = done.stdout.rpartition("\n")
    assert status == "200" and json.loads(reply)["type"] == "message", done.stdout[-300:] + done.stderr
    assert mock.keys_seen == [REAL_KEY]


class _Broken(http.server.BaseHTTPRequestHandler):
    """A model API that breaks its chunked reply after the first piece."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.write(b"6\r\ndata: \r\nzz\r\n")
        self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


def test_a_reply_broken_midway_is_cut_short_and_the_gateway_goes_on() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Broken)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    upstream = gateway.Upstream(f"http://127.0.0.1:{server.server_address[1]}", "x-api-key", "k", ANTHROPIC)
    broken = gateway.admit("run-broken", upstream)
    started = time.monotonic()
    with pytest.raises(httpx.RemoteProtocolError):  # at once: no waiting out a timeout
        httpx.post(f"{broken.url}/v1/messages", headers={"x-api-key": broken.token}, json=MESSAGE, timeout=20)
    assert time.monotonic() - started < 5
    broken.close()
    server.shutdown()
    server.server_close()
    with MockAnthropic() as mock:
        fine = gateway.admit("run-fine", gateway.Upstream(mock.url, "x-api-key", "k", ANTHROPIC))
        reply = httpx.post(f"{fine.url}/v1/messages", headers={"x-api-key": fine.token}, json=MESSAGE)
        fine.close()
    assert reply.status_code == 200 and reply.json()["type"] == "message"


def test_the_gateway_and_the_proxy_listen_on_loopback_alone() -> None:
    """Where the agent has no network namespace, the walls allow the gateway's and the proxy's ports on
    any address: they answer on 127.0.0.1 alone, never on the host's other addresses."""
    import psutil

    from baton.sandbox import netns

    sock = netns.listener()
    try:
        ports = {gateway._gateway().port, sock.getsockname()[1]}
        found = [
            c.laddr
            for c in psutil.Process().net_connections(kind="tcp")
            if c.status == "LISTEN" and c.laddr.port in ports
        ]
        assert sorted(a.port for a in found) == sorted(ports) and {a.ip for a in found} == {"127.0.0.1"}, (
            found
        )
    finally:
        sock.close()
