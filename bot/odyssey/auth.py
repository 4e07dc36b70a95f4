"""API key -> access token exchange (`POST /auth/token`) with an expiry-aware cache."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx

from bot.odyssey.errors import OdysseyAuthError, OdysseyConnectionError

REFRESH_EARLY_SECONDS = 60.0
DEFAULT_TOKEN_LIFETIME = 3600.0


class TokenCache:
    """Hands out a valid access token, exchanging the API key again shortly before the old one expires."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        api_url: str,
        api_key: str,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http
        self._url = f"{api_url}/auth/token"
        self._api_key = api_key
        self._clock = clock
        self._token: str | None = None
        self._refresh_at = 0.0
        self._lock = asyncio.Lock()

    def invalidate(self) -> None:
        """Forget the cached token (e.g. after the server answered 401 to it)."""
        self._token = None

    async def token(self) -> str:
        """A current access token; one exchange at a time even with concurrent callers."""
        async with self._lock:
            if self._token is None or self._clock() >= self._refresh_at:
                self._token, lifetime = await self._exchange()
                self._refresh_at = self._clock() + lifetime - REFRESH_EARLY_SECONDS
            return self._token

    async def _exchange(self) -> tuple[str, float]:
        try:
            response = await self._http.post(self._url, json={"api_key": self._api_key})
        except httpx.HTTPError as exc:
            raise OdysseyConnectionError(f"Authentication request failed: {type(exc).__name__}") from exc
        if response.status_code == 401:
            raise OdysseyAuthError("Invalid API key")
        if response.status_code == 403:
            raise OdysseyAuthError(_detail_text(response) or "API key access denied")
        if response.status_code == 422:
            raise OdysseyAuthError("Invalid API key format")
        if not response.is_success:
            raise OdysseyAuthError(f"Authentication failed: {response.status_code} {response.reason_phrase}")
        body = _json_or_none(response)
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise OdysseyAuthError("Invalid API response: missing access_token")
        lifetime = body.get("expires_in") if isinstance(body, dict) else None
        if not isinstance(lifetime, int | float) or isinstance(lifetime, bool):
            lifetime = DEFAULT_TOKEN_LIFETIME
        return token, float(lifetime)


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _detail_text(response: httpx.Response) -> str | None:
    body = _json_or_none(response)
    detail = body.get("detail") if isinstance(body, dict) else None
    return detail if isinstance(detail, str) and detail else None
