"""User callbacks: sync or async, never allowed to break the client, async ones tracked until they finish."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

Callback = Callable[..., Any]

CALLBACK_NAMES = (
    "on_connected",
    "on_disconnected",
    "on_video_frame",
    "on_stream_started",
    "on_stream_ended",
    "on_interact_acknowledged",
    "on_stream_error",
    "on_error",
    "on_status_change",
    "on_broadcast_ready",
    "on_queue",
)


@dataclass(frozen=True)
class Callbacks:
    """The callbacks given to `connect()`; any may be None, a function or a coroutine function."""

    on_connected: Callback | None = None
    on_disconnected: Callback | None = None
    on_video_frame: Callback | None = None
    on_stream_started: Callback | None = None
    on_stream_ended: Callback | None = None
    on_interact_acknowledged: Callback | None = None
    on_stream_error: Callback | None = None
    on_error: Callback | None = None
    on_status_change: Callback | None = None
    on_broadcast_ready: Callback | None = None
    on_queue: Callback | None = None


class CallbackRunner:
    """Calls user callbacks: exceptions are logged, coroutines run as tracked tasks."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def call(self, callback: Callback | None, *args: Any) -> None:
        """Call now; an async callback is scheduled and not waited for (it must not block the caller)."""
        if callback is None:
            return
        try:
            result = callback(*args)
        except Exception:
            log.exception("callback %s raised", _name(callback))
            return
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(self._guard(result, callback))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def call_and_wait(self, callback: Callback | None, *args: Any) -> None:
        """Call and, for an async callback, wait for it (used where back-pressure is wanted)."""
        if callback is None:
            return
        try:
            result = callback(*args)
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("callback %s raised", _name(callback))

    async def drain(self, grace_seconds: float) -> None:
        """Wait for scheduled async callbacks, cancelling those still running after `grace_seconds`."""
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=grace_seconds)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _guard(self, awaitable: Awaitable[Any], callback: Callback) -> None:
        try:
            await awaitable
        except Exception:
            log.exception("callback %s raised", _name(callback))


def _name(callback: Callback) -> str:
    return getattr(callback, "__qualname__", repr(callback))
