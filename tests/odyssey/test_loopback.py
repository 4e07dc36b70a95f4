"""ICE stays on 127.0.0.1 only when the peer (the signaling host) is on this machine."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

import bot.odyssey.client as client_module
from bot.loopback_ice import is_loopback_candidate_address, is_loopback_url
from bot.odyssey import ClientCredentials, Odyssey, OdysseyConnectionError, RetryPolicy


def token_for(session_id: str) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'HS256'})}.{part({'session_id': session_id})}.signature"


@pytest.mark.parametrize(
    ("signaling_url", "restricted"),
    [("ws://127.0.0.1:9000", True), ("localhost:9000", True), ("wss://signalling.odyssey.ml", False)],
)
async def test_only_a_loopback_signaling_host_restricts_ice(
    monkeypatch: pytest.MonkeyPatch, signaling_url: str, restricted: bool
) -> None:
    calls: list[str] = []

    async def no_config(*args: Any) -> list[Any]:
        return []

    async def refused(*args: Any, **kwargs: Any) -> Any:
        raise OdysseyConnectionError("Failed to connect to signaling server: refused")

    monkeypatch.setattr(client_module, "restrict_ice_to_loopback", lambda: calls.append("restrict"))
    monkeypatch.setattr(client_module, "fetch_ice_servers", no_config)
    monkeypatch.setattr(client_module, "open_signaling", refused)
    # A local API host (e.g. a proxy in front of the platform) says nothing about where the peer is.
    async with Odyssey(api_key="", api_url="http://127.0.0.1:1", retry=RetryPolicy(max_retries=0)) as client:
        credentials = ClientCredentials(signaling_url=signaling_url, session_token=token_for("s1"))
        with pytest.raises(OdysseyConnectionError):
            await client.connect_with_credentials(credentials)
    assert calls == (["restrict"] if restricted else [])


def test_loopback_urls_and_candidates() -> None:
    assert is_loopback_url("http://127.0.0.1:8080") and is_loopback_url("ws://[::1]:1")
    assert is_loopback_url("localhost") and is_loopback_url("https://localhost/x")
    assert not is_loopback_url("https://api.odyssey.ml") and not is_loopback_url("ws://10.0.0.5:80")
    assert is_loopback_candidate_address("127.0.0.1") and is_loopback_candidate_address("::1")
    assert not is_loopback_candidate_address("192.168.1.4")
    assert not is_loopback_candidate_address("abc.local")
