"""REST calls to the Odyssey API host: authorized requests, session requests (queueing), session tokens."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from bot.odyssey.auth import TokenCache
from bot.odyssey.errors import (
    OdysseyAuthError,
    OdysseyConnectionError,
    OdysseyError,
    usage_error_from_body,
)
from bot.odyssey.models import Capabilities, SessionGrant

log = logging.getLogger(__name__)

QUEUE_POLL_SECONDS = 1.0
DEFAULT_SESSION_TOKEN_LIFETIME = 600.0

QueueProgress = Callable[[float], Awaitable[None]]


class ApiClient:
    """Authorized JSON requests against the API host, sharing one httpx client and one token cache."""

    def __init__(self, http: httpx.AsyncClient, api_url: str, tokens: TokenCache) -> None:
        self._http = http
        self.api_url = api_url
        self.tokens = tokens

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send one request with the bearer token (retried once with a fresh token after a 401)."""
        response = await self._send(method, path, **kwargs)
        if response.status_code == 401:
            self.tokens.invalidate()  # revoked or expired early on the server: exchange the key again
            response = await self._send(method, path, **kwargs)
        return response

    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {await self.tokens.token()}"}
        try:
            return await self._http.request(method, f"{self.api_url}{path}", headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise OdysseyConnectionError(f"{method} {path} failed: {type(exc).__name__}: {exc}") from exc

    async def request_session(
        self,
        latencies: Callable[[], Awaitable[dict[str, int]]],
        *,
        queue_timeout: float,
        on_queue: QueueProgress | None = None,
    ) -> SessionGrant:
        """Reserve a streamer, polling every second while the platform answers 503 (spec §5)."""
        started = time.monotonic()
        while True:
            measured = await latencies()
            body = {"region_latencies": measured} if measured else {}
            response = await self.request("POST", "/sessions/request", json=body)
            if response.status_code != 503:
                return _session_grant(response)
            waited = time.monotonic() - started
            if queue_timeout <= 0:
                raise OdysseyConnectionError("No streamers available. Please try again later.")
            if waited + QUEUE_POLL_SECONDS > queue_timeout:
                raise OdysseyConnectionError(f"Timed out waiting for a streamer ({queue_timeout:g}s)")
            if on_queue is not None:
                await on_queue(waited)
            await asyncio.sleep(QUEUE_POLL_SECONDS)

    async def session_token(self, session_id: str) -> tuple[str, float]:
        """Mint the token that opens the signaling websocket for `session_id`."""
        response = await self.request("POST", "/sessions/token", json={"session_id": session_id})
        if response.status_code == 404:
            raise OdysseyConnectionError("Session not found or not authorized")
        if not response.is_success:
            raise OdysseyConnectionError(
                f"Failed to get session token: {response.status_code} {response.reason_phrase}"
            )
        body = json_body(response)
        token = body.get("session_token")
        if not isinstance(token, str) or not token:
            raise OdysseyConnectionError("Invalid API response: missing session_token")
        lifetime = body.get("expires_in")
        if not isinstance(lifetime, int | float) or isinstance(lifetime, bool):
            lifetime = DEFAULT_SESSION_TOKEN_LIFETIME
        return token, float(lifetime)


def json_body(response: httpx.Response) -> dict[str, Any]:
    """The response's JSON object, or an OdysseyError when it isn't one."""
    try:
        body = response.json()
    except ValueError as exc:
        raise OdysseyError(f"Invalid API response: not JSON (HTTP {response.status_code})") from exc
    if not isinstance(body, dict):
        raise OdysseyError(f"Invalid API response: not an object (HTTP {response.status_code})")
    return body


def _session_grant(response: httpx.Response) -> SessionGrant:
    if response.status_code == 429:
        try:
            payload: Any = response.json()
        except ValueError:
            payload = None
        raise usage_error_from_body(payload)
    if response.status_code == 401:
        raise OdysseyAuthError("Not authorized to request a session")
    if not response.is_success:
        raise OdysseyConnectionError(f"API request failed: {response.status_code} {response.reason_phrase}")
    body = json_body(response)
    session_id = body.get("session_id")
    url = body.get("signalling_url")
    if not isinstance(session_id, str) or not session_id:
        raise OdysseyConnectionError("Invalid API response: missing session_id")
    if not isinstance(url, str) or not url:
        raise OdysseyConnectionError("Invalid API response: missing signalling_url")
    log.info("session %s granted (region %s)", session_id, body.get("region"))
    return SessionGrant(session_id, url, Capabilities.from_json(body.get("capabilities")))
