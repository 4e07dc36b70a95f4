"""CORS for the emulator's HTTP API: browser apps (like the official JS SDK) call it from their own origin."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping

from aiohttp import web

ALLOWED_METHODS = "GET, POST, DELETE, OPTIONS"
ALLOWED_HEADERS = "Authorization, Content-Type"
PREFLIGHT_MAX_AGE_SECONDS = "600"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _allow_any_origin(headers: MutableMapping[str, str]) -> None:
    # The SDK sends bearer tokens, never cookies, so a wildcard origin is enough.
    headers["Access-Control-Allow-Origin"] = "*"
    headers["Access-Control-Expose-Headers"] = "Location"  # WHEP spectators follow it to DELETE


@web.middleware
async def cors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer preflights and mark every response (errors included) readable by any origin."""
    if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
        preflight = web.Response(status=204)
        _allow_any_origin(preflight.headers)
        preflight.headers["Access-Control-Allow-Methods"] = ALLOWED_METHODS
        preflight.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
        preflight.headers["Access-Control-Max-Age"] = PREFLIGHT_MAX_AGE_SECONDS
        return preflight
    try:
        response = await handler(request)
    except web.HTTPException as error:
        _allow_any_origin(error.headers)
        raise
    if not response.prepared:  # a websocket has already sent its handshake
        _allow_any_origin(response.headers)
    return response
