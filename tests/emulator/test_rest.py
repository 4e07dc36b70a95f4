"""The emulator's REST endpoints: auth, regions, sessions (queueing, usage errors, limits), tokens."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json

import httpx
import pytest
import websockets

from bot.emulator import DEV_API_KEY, ApiKey, Emulator, EmulatorConfig
from bot.emulator.server import USAGE_ERRORS
from tests.emulator.peer import get_token
from tests.helpers import bearer


async def test_auth_token_codes(emulator_factory) -> None:
    emu = await emulator_factory(api_keys={"good": ApiKey(), "off": ApiKey(disabled=True)})
    async with httpx.AsyncClient(base_url=emu.url) as http:
        ok = await http.post("/auth/token", json={"api_key": "good"})
        assert ok.status_code == 200
        assert ok.json()["expires_in"] == 3600 and ok.json()["access_token"]
        assert (await http.post("/auth/token", json={"api_key": "nope"})).status_code == 401
        disabled = await http.post("/auth/token", json={"api_key": "off"})
        assert disabled.status_code == 403 and isinstance(disabled.json()["detail"], str)
        assert (await http.post("/auth/token", json={})).status_code == 422
        assert (await http.post("/auth/token", json={"api_key": 5})).status_code == 422


async def test_regions_ping_config_and_telemetry(emulator: Emulator) -> None:
    async with httpx.AsyncClient(base_url=emulator.url) as http:
        assert (await http.get("/regions")).status_code == 401
        token = await get_token(http)
        regions = (await http.get("/regions", headers=bearer(token))).json()["regions"]
        assert regions == [{"id": "local", "ping_url": f"{emulator.url}/ping"}]
        assert (await http.get(regions[0]["ping_url"])).status_code == 200
        assert (await http.get("/config")).json() == {"iceServers": []}
        assert (await http.post("/telemetry", json={"events": [{"event": "x"}]})).status_code == 204
        assert emulator.observed.telemetry_events == 1


async def test_session_request_and_token_jwt(emulator: Emulator) -> None:
    async with httpx.AsyncClient(base_url=emulator.url) as http:
        token = await get_token(http)
        response = await http.post(
            "/sessions/request", json={"region_latencies": {"local": 3}}, headers=bearer(token)
        )
        session = response.json()
        assert response.status_code == 200
        assert session["signalling_url"] == emulator.url.replace("http://", "ws://")
        assert session["capabilities"] == {"image_to_video": True}
        assert emulator.observed.region_latencies == [{"local": 3}]
        tokens = []
        for _ in range(2):  # the official Python SDK asks twice
            minted = await http.post(
                "/sessions/token", json={"session_id": session["session_id"]}, headers=bearer(token)
            )
            assert minted.status_code == 200 and minted.json()["expires_in"] == 600
            tokens.append(minted.json()["session_token"])
        header, payload, signature = tokens[0].split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        assert claims["session_id"] == session["session_id"] and claims["exp"] - claims["iat"] == 600
        expected = hmac.new(emulator.secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        assert base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)) == expected
        unknown = await http.post("/sessions/token", json={"session_id": "nope"}, headers=bearer(token))
        assert unknown.status_code == 404


async def test_session_token_is_scoped_to_the_owner(emulator_factory) -> None:
    emu = await emulator_factory(api_keys={"a": ApiKey(), "b": ApiKey()})
    async with httpx.AsyncClient(base_url=emu.url) as http:
        token_a, token_b = await get_token(http, "a"), await get_token(http, "b")
        session = (await http.post("/sessions/request", json={}, headers=bearer(token_a))).json()
        other = await http.post(
            "/sessions/token", json={"session_id": session["session_id"]}, headers=bearer(token_b)
        )
        assert other.status_code == 404


async def test_503_times_then_success(emulator: Emulator) -> None:
    emulator.faults.fail_503_times = 2
    async with httpx.AsyncClient(base_url=emulator.url) as http:
        token = await get_token(http)
        codes = [
            (await http.post("/sessions/request", json={}, headers=bearer(token))).status_code
            for _ in range(3)
        ]
    assert codes == [503, 503, 200]


@pytest.mark.parametrize("code", sorted(USAGE_ERRORS))
async def test_forced_429_bodies(emulator: Emulator, code: str) -> None:
    emulator.faults.force_429_code = code
    async with httpx.AsyncClient(base_url=emulator.url) as http:
        token = await get_token(http)
        response = await http.post("/sessions/request", json={}, headers=bearer(token))
    assert response.status_code == 429
    detail = response.json()["detail"]
    assert detail["error"] == code and detail["message"] and detail["action"]
    assert isinstance(detail["details"], dict)


async def test_concurrency_limit_and_streamer_slots(emulator_factory) -> None:
    emu = await emulator_factory(
        api_keys={"a": ApiKey(concurrency_limit=1), "b": ApiKey(), "c": ApiKey()}, streamer_slots=2
    )
    async with httpx.AsyncClient(base_url=emu.url) as http:
        token_a, token_b, token_c = [await get_token(http, k) for k in "abc"]
        assert (await http.post("/sessions/request", json={}, headers=bearer(token_a))).status_code == 200
        limited = await http.post("/sessions/request", json={}, headers=bearer(token_a))
        assert limited.status_code == 429
        assert limited.json()["detail"]["error"] == "CONCURRENT_LIMIT_REACHED"
        assert limited.json()["detail"]["details"] == {"active_count": 1, "limit": 1}
        assert (await http.post("/sessions/request", json={}, headers=bearer(token_b))).status_code == 200
        assert (await http.post("/sessions/request", json={}, headers=bearer(token_c))).status_code == 503


async def test_access_token_expires(emulator_factory) -> None:
    emu = await emulator_factory(access_token_ttl_seconds=1.0)
    async with httpx.AsyncClient(base_url=emu.url) as http:
        token = await get_token(http)
        assert (await http.get("/regions", headers=bearer(token))).status_code == 200
        await asyncio.sleep(1.1)
        assert (await http.get("/regions", headers=bearer(token))).status_code == 401


async def _session(http: httpx.AsyncClient) -> tuple[str, str, str]:
    token = await get_token(http)
    session = (await http.post("/sessions/request", json={}, headers=bearer(token))).json()
    minted = await http.post(
        "/sessions/token", json={"session_id": session["session_id"]}, headers=bearer(token)
    )
    return session["session_id"], session["signalling_url"], minted.json()["session_token"]


async def _handshake_status(url: str) -> int:
    with pytest.raises(websockets.InvalidStatus) as rejected:
        async with websockets.connect(url, open_timeout=5):
            pass
    return rejected.value.response.status_code


async def test_signaling_rejects_bad_tokens(emulator_factory) -> None:
    emu = await emulator_factory(session_token_ttl_seconds=2)
    async with httpx.AsyncClient(base_url=emu.url) as http:
        session_id, url, token = await _session(http)
        other_id, _, other_token = await _session(http)
    assert await _handshake_status(f"{url}/client/{session_id}?token=garbage") == 401
    assert await _handshake_status(f"{url}/client/{session_id}?token={other_token}") == 403
    async with websockets.connect(f"{url}/client/{session_id}?token={token}") as ws:
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "offer"
        assert await _handshake_status(f"{url}/client/{session_id}?token={token}") == 409
    await asyncio.sleep(2.1)  # exp is whole seconds: at most 2 s after minting
    assert await _handshake_status(f"{url}/client/{other_id}?token={other_token}") == 401


async def test_dev_key_is_accepted_by_default(emulator: Emulator) -> None:
    async with httpx.AsyncClient(base_url=emulator.url) as http:
        assert (await http.post("/auth/token", json={"api_key": DEV_API_KEY})).status_code == 200


async def test_a_port_in_use_fails_start_and_leaves_nothing_behind(emulator: Emulator) -> None:
    port = int(emulator.url.rsplit(":", 1)[1])
    second = Emulator(EmulatorConfig.small(port=port))
    with pytest.raises(OSError):
        await second.start()
    assert not second.recordings.root.exists()  # its temporary recordings folder is gone
    await second.stop()  # still safe to call
