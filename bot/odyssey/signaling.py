"""Signaling host: URL normalisation, ICE servers from `/config`, and opening the client websocket."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from aiortc import RTCIceServer
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidHandshake, InvalidURI

from bot.odyssey.errors import OdysseyConnectionError

log = logging.getLogger(__name__)
# websockets logs the request line (with the `token` query parameter) at DEBUG: keep its logger above that.
_socket_log = logging.getLogger(f"{__name__}.socket")
_socket_log.setLevel(logging.INFO)

MAX_INBOUND_MESSAGE_BYTES = 64 * 1024 * 1024
CONFIG_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of the signaling step (spec §8.6): delays 1, 2, 2, 2, 2 s by default."""

    max_retries: int = 5
    initial_delay: float = 1.0
    max_delay: float = 2.0
    multiplier: float = 2.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (0-based)."""
        return float(min(self.initial_delay * self.multiplier**attempt, self.max_delay))


def normalize_signaling_url(url: str) -> str:
    """ws(s) URL without a trailing slash: http->ws, https->wss, bare host -> ws://host."""
    url = url.strip().rstrip("/")
    if url.startswith(("ws://", "wss://")):
        return url
    if url.startswith("https://"):
        return "wss://" + url[len("https://") :]
    if url.startswith("http://"):
        return "ws://" + url[len("http://") :]
    return "ws://" + url


def config_url(signaling_url: str) -> str:
    """The signaling host's `/config` endpoint (http or https)."""
    url = normalize_signaling_url(signaling_url)
    scheme, rest = url.split("://", 1)
    return f"{'https' if scheme == 'wss' else 'http'}://{rest}/config"


def client_socket_url(signaling_url: str, session_id: str, session_token: str) -> str:
    """`<signaling>/client/<session_id>?token=<token>` (the token is a secret: never log this)."""
    base = normalize_signaling_url(signaling_url)
    return f"{base}/client/{quote(session_id, safe='')}?token={quote(session_token, safe='')}"


async def fetch_ice_servers(http: httpx.AsyncClient, signaling_url: str) -> list[RTCIceServer]:
    """ICE servers from the signaling host's `/config` (see `ice_servers_from`)."""
    return await ice_servers_from(http, config_url(signaling_url))


async def ice_servers_from(http: httpx.AsyncClient, url: str) -> list[RTCIceServer]:
    """ICE servers from a `/config` URL, TURN credentials kept; an empty list (no public STUN) on failure."""
    try:
        response = await http.get(url, timeout=CONFIG_TIMEOUT_SECONDS)
        body: Any = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        log.warning("ICE config unavailable (%s); using no ICE servers", type(exc).__name__)
        return []
    servers = body.get("iceServers") if isinstance(body, dict) else None
    if not isinstance(servers, list):
        return []
    return [server for item in servers if (server := ice_server_from_json(item)) is not None]


def ice_server_from_json(item: Any) -> RTCIceServer | None:
    """One browser-shaped `RTCIceServer` entry; `url` accepted as an alias of `urls`."""
    if not isinstance(item, dict):
        return None
    urls = item.get("urls", item.get("url"))
    if isinstance(urls, list):
        urls = [u for u in urls if isinstance(u, str)]
    if not urls or not isinstance(urls, str | list):
        return None
    username = item.get("username")
    credential = item.get("credential")
    return RTCIceServer(
        urls=urls,
        username=username if isinstance(username, str) else None,
        credential=credential if isinstance(credential, str) else None,
    )


async def open_signaling(
    signaling_url: str,
    session_id: str,
    session_token: str,
    *,
    open_timeout: float,
) -> ClientConnection:
    """Open the client websocket once; failures become OdysseyConnectionError without leaking the token."""
    url = client_socket_url(signaling_url, session_id, session_token)
    try:
        return await connect(
            url,
            max_size=MAX_INBOUND_MESSAGE_BYTES,
            open_timeout=open_timeout,
            proxy=None,
            compression=None,
            logger=_socket_log,
        )
    except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
        message = str(exc).replace(session_token, "***").replace(quote(session_token, safe=""), "***")
        raise OdysseyConnectionError(f"Failed to connect to signaling server: {message}") from exc
