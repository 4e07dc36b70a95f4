"""The NATS connection of a bot or a worker: bounded connect, reconnects, errors logged without secrets."""

from __future__ import annotations

import logging

import nats
from nats.aio.client import Client

from bot.deadline import wait_within
from bot.workers.settings import WorkerSettings

log = logging.getLogger(__name__)

PENDING_BYTES = 64 * 1024 * 1024


class BusUnavailable(Exception):
    """NATS could not be reached within the connect timeout."""


async def connect(settings: WorkerSettings, name: str) -> Client:
    """A connected client named `name` (shown in the server's connection list); BusUnavailable if not.

    Once connected, a lost server is reconnected to for as long as it takes.
    """
    if settings.nats_url is None:
        raise BusUnavailable("no [workers] nats_url is configured")

    async def on_error(error: Exception) -> None:
        log.warning("NATS (%s): %s", name, type(error).__name__)

    connected: list[Client] = []

    async def on_disconnected() -> None:
        if connected and (connected[0].is_closed or connected[0].is_draining):
            log.debug("NATS (%s): disconnected (closing)", name)  # our own close: nothing to warn about
        else:
            log.warning("NATS (%s): disconnected, reconnecting", name)

    async def on_reconnected() -> None:
        log.info("NATS (%s): reconnected", name)

    opening = nats.connect(
        settings.nats_url,
        name=name,
        token=settings.token,
        user=settings.user,
        password=settings.password,
        connect_timeout=max(1, round(settings.connect_timeout_seconds)),
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
        error_cb=on_error,
        disconnected_cb=on_disconnected,
        reconnected_cb=on_reconnected,
        # Publishes made while reconnecting wait in this buffer; the default 2 MiB holds no big snippet.
        pending_size=PENDING_BYTES,
    )
    try:
        connected.append(await wait_within(opening, settings.connect_timeout_seconds + 1.0))
        return connected[0]
    except Exception as error:
        where = server_address(settings.nats_url)
        raise BusUnavailable(f"NATS at {where} is unreachable ({type(error).__name__})") from error


def server_address(url: str) -> str:
    """The URL without any user:password@ part, for messages and logs."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.rpartition('@')[2]}"
