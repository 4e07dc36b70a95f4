"""REST pieces against an in-memory httpx transport: token cache, auth errors, region deadline, URLs."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import httpx
import pytest

from bot.odyssey import ClientCredentials, OdysseyAuthError, OdysseyError
from bot.odyssey.auth import TokenCache
from bot.odyssey.models import session_id_from_token
from bot.odyssey.regions import UNMEASURED_LATENCY_MS, RegionProber
from bot.odyssey.signaling import RetryPolicy, client_socket_url, config_url, ice_server_from_json

Handler = Callable[[httpx.Request], httpx.Response]


def http(handler: Handler) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


async def test_token_is_cached_until_sixty_seconds_before_expiry() -> None:
    calls: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(json.loads(request.content))
        return httpx.Response(200, json={"access_token": f"t{len(calls)}", "expires_in": 100})

    now = [0.0]
    async with http(handler) as client:
        cache = TokenCache(client, "http://api", "ody_key", clock=lambda: now[0])
        assert list(await asyncio.gather(cache.token(), cache.token(), cache.token())) == ["t1"] * 3
        now[0] = 39.0
        assert await cache.token() == "t1"
        now[0] = 40.0
        assert await cache.token() == "t2"
    assert calls == [{"api_key": "ody_key"}] * 2


@pytest.mark.parametrize(
    ("status", "content", "message"),
    [
        (401, b"{}", "Invalid API key"),
        (403, b'{"detail": "Key disabled by admin"}', "Key disabled by admin"),
        (403, b"<html>nope</html>", "API key access denied"),
        (422, b'{"detail": []}', "Invalid API key format"),
        (500, b"oops", "Authentication failed: 500"),
        (200, b'{"token_type": "bearer"}', "missing access_token"),
    ],
)
async def test_auth_failures_are_auth_errors(status: int, content: bytes, message: str) -> None:
    async with http(lambda request: httpx.Response(status, content=content)) as client:
        with pytest.raises(OdysseyAuthError, match=message):
            await TokenCache(client, "http://api", "k").token()


async def test_region_probe_returns_by_the_deadline_and_slow_pings_update_later() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/regions":
            assert request.headers["authorization"] == "Bearer tok"
            regions = [
                {"id": "fast", "ping_url": "http://fast/ping"},
                {"id": "slow", "ping_url": "http://slow/p"},
            ]
            return httpx.Response(200, json={"regions": regions})
        if request.url.host == "slow":
            await asyncio.sleep(0.6)
        return httpx.Response(200)

    async with http(handler) as client:  # type: ignore[arg-type]
        prober = RegionProber(client)
        started = time.monotonic()
        await prober.probe("http://api/regions", "tok", deadline=0.3)
        assert time.monotonic() - started < 0.55
        measured = prober.measured()
        assert measured["fast"] < UNMEASURED_LATENCY_MS and measured["slow"] == UNMEASURED_LATENCY_MS
        await asyncio.sleep(0.5)
        assert prober.measured()["slow"] < UNMEASURED_LATENCY_MS
        await prober.aclose()


async def test_region_failures_mean_no_latencies() -> None:
    async with http(lambda request: httpx.Response(500)) as client:
        prober = RegionProber(client)
        await prober.probe("http://api/regions", "tok")
        assert prober.measured() == {}


@pytest.mark.parametrize(
    ("url", "socket", "config"),
    [
        ("wss://sig.example/", "wss://sig.example/client/s%2F1?token=a%2Bb", "https://sig.example/config"),
        ("https://sig.example", "wss://sig.example/client/s%2F1?token=a%2Bb", "https://sig.example/config"),
        ("http://127.0.0.1:9", "ws://127.0.0.1:9/client/s%2F1?token=a%2Bb", "http://127.0.0.1:9/config"),
        ("localhost:8090", "ws://localhost:8090/client/s%2F1?token=a%2Bb", "http://localhost:8090/config"),
    ],
)
def test_signaling_urls(url: str, socket: str, config: str) -> None:
    assert client_socket_url(url, "s/1", "a+b") == socket
    assert config_url(url) == config


def test_ice_servers_keep_turn_credentials() -> None:
    server = ice_server_from_json({"urls": ["turn:t:3478"], "username": "u", "credential": "c"})
    assert server is not None and (server.urls, server.username, server.credential) == (
        ["turn:t:3478"],
        "u",
        "c",
    )
    assert ice_server_from_json({"url": "stun:s"}) is not None
    assert ice_server_from_json({"username": "u"}) is None


def test_retry_delays() -> None:
    assert [RetryPolicy().delay(n) for n in range(5)] == [1, 2, 2, 2, 2]


def jwt(claims: str) -> str:
    import base64

    payload = base64.urlsafe_b64encode(claims.encode()).decode().rstrip("=")
    return f"eyJhbGciOiJIUzI1NiJ9.{payload}.sig"


def test_credentials_round_trip_and_session_claim() -> None:
    token = jwt('{"session_id": "abc", "exp": 1}')
    creds = ClientCredentials.from_dict({"signalingUrl": "ws://h", "sessionToken": token, "expiresIn": 60})
    assert creds.token_session_id() == "abc"
    again = ClientCredentials.from_dict(creds.to_dict())
    assert again.to_dict()["session_id"] == "abc" and again.signaling_url == "ws://h"
    with pytest.raises(OdysseyError):
        session_id_from_token(jwt('{"sub": "x"}'))
    with pytest.raises(OdysseyError):
        session_id_from_token("not-a-jwt")
    with pytest.raises(ValueError):
        ClientCredentials.from_dict({"signaling_url": "ws://h"})


async def test_ice_config_failure_means_no_servers_not_public_stun() -> None:
    from bot.odyssey.signaling import fetch_ice_servers

    async with http(lambda request: httpx.Response(200, content=b"not json")) as client:
        assert await fetch_ice_servers(client, "ws://sig") == []

    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    async with http(unreachable) as client:
        assert await fetch_ice_servers(client, "ws://sig") == []

    turn = {"iceServers": [{"urls": "turn:t", "username": "u", "credential": "c"}, {"bogus": 1}]}
    async with http(lambda request: httpx.Response(200, json=turn)) as client:
        servers = await fetch_ice_servers(client, "wss://sig/")
    assert [(s.urls, s.username, s.credential) for s in servers] == [("turn:t", "u", "c")]


async def test_ids_are_one_path_segment() -> None:
    from bot.odyssey.auth import TokenCache as Tokens
    from bot.odyssey.recordings import get_recording
    from bot.odyssey.rest import ApiClient
    from bot.odyssey.simulations import cancel_simulation, get_simulate_status

    paths: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/auth/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 3600})
        paths.append(request.url.raw_path.decode())
        return httpx.Response(404)

    async with http(handler) as client:
        api = ApiClient(client, "http://api", Tokens(client, "http://api", "k"))
        for call in (get_recording, get_simulate_status, cancel_simulation):
            with pytest.raises(OdysseyError, match="not found"):
                await call(api, "../auth/token?x=1")
    assert paths == [
        "/recordings/..%2Fauth%2Ftoken%3Fx%3D1",
        "/simulation-jobs/..%2Fauth%2Ftoken%3Fx%3D1",
        "/simulation-jobs/..%2Fauth%2Ftoken%3Fx%3D1",
    ]
