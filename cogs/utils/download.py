"""Downloading a member's attachment from Discord's CDN, and from nowhere else.

The attachment object in an interaction names its own URL. Discord fills it in, but the bot does not take it
on trust: it fetches only from Discord's CDN hosts (and the host its Discord API is pointed at: a proxy, or
the fake Discord in tests), follows a redirect only to another such place, and stops reading at the size
limit. Anything else is refused before a single request is made, so a crafted attachment cannot make the
bot call an internal address (e.g. the Odyssey emulator on 127.0.0.1) or read a local file.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

import discord
import httpx
import yarl

from bot.tls import tls_context
from bot.tryon.errors import PhotoRejected

log = logging.getLogger(__name__)

MAX_REDIRECTS = 3
NOT_FROM_DISCORD = "That attachment doesn't come from Discord, so it wasn't downloaded. Attach a photo."
DOWNLOAD_FAILED = "Your photo could not be downloaded from Discord. Please try again."


def _origin(url: yarl.URL) -> tuple[str, str, int | None] | None:
    if url.scheme not in ("http", "https") or not url.host or url.user or url.password:
        return None
    return url.scheme, url.host.lower().rstrip("."), url.port


def trusted_origins(configured: Iterable[str]) -> frozenset[tuple[str, str, int | None]]:
    """The configured CDN origins plus the origin of the Discord API the bot talks to (`Route.BASE`)."""
    origins = set()
    for text in (*configured, discord.http.Route.BASE):
        origin = _origin(yarl.URL(text))
        if origin is not None:
            origins.add(origin)
    return frozenset(origins)


def is_trusted(url: str, origins: frozenset[tuple[str, str, int | None]]) -> bool:
    """True for an http(s) URL without credentials whose scheme, host and port are one of `origins`."""
    try:
        parsed = yarl.URL(url)
    except (TypeError, ValueError):
        return False
    return parsed.is_absolute() and _origin(parsed) in origins


async def download_attachment(
    attachment: discord.Attachment,
    *,
    origins: Iterable[str],
    max_bytes: int,
    within: float,
) -> bytes:
    """The attachment's bytes, fetched from its trusted `url` (or `proxy_url`); PhotoRejected otherwise."""
    trusted = trusted_origins(origins)
    url = next((u for u in (attachment.url, attachment.proxy_url) if u and is_trusted(u, trusted)), None)
    if url is None:
        log.warning("refused attachment %s: its URL is not on Discord's CDN", attachment.id)
        raise PhotoRejected(NOT_FROM_DISCORD, reason="attachment_origin")
    try:
        async with asyncio.timeout(within):
            return await _fetch(url, trusted, max_bytes)
    except (TimeoutError, httpx.HTTPError) as error:
        log.info("attachment %s could not be downloaded: %s", attachment.id, type(error).__name__)
        raise PhotoRejected(DOWNLOAD_FAILED, reason="download_failed") from error


async def _fetch(url: str, trusted: frozenset[tuple[str, str, int | None]], max_bytes: int) -> bytes:
    # trust_env=False: no proxy or .netrc from the environment may change where the request goes.
    async with httpx.AsyncClient(
        follow_redirects=False, trust_env=False, verify=tls_context(False)
    ) as client:
        for _ in range(MAX_REDIRECTS + 1):
            async with client.stream("GET", url) as response:
                if response.is_redirect:
                    target = str(response.url.join(response.headers.get("location", "")))
                    if not is_trusted(target, trusted):
                        log.warning("refused a redirect of an attachment away from Discord's CDN")
                        raise PhotoRejected(NOT_FROM_DISCORD, reason="attachment_origin")
                    url = target
                    continue
                if response.status_code != 200:
                    raise PhotoRejected(DOWNLOAD_FAILED, reason="download_failed")
                return await _read_at_most(response, max_bytes)
    raise PhotoRejected(DOWNLOAD_FAILED, reason="download_failed")


async def _read_at_most(response: httpx.Response, max_bytes: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise PhotoRejected(
                f"That photo is larger than {max_bytes // 2**20} MiB. Please attach a smaller one.",
                reason="photo_too_large",
            )
        chunks.append(chunk)
    return b"".join(chunks)
