"""One coalescing updater per session: at most one status edit per interval, and always the latest state."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class CoalescingUpdater(Generic[T]):
    """Hands the newest published value to `apply`, never more often than every `interval` seconds.

    Values published while an edit is in flight or the interval has not passed replace each other, so a
    burst of changes costs one edit. `close()` writes the last value (if not yet written) and stops.
    """

    def __init__(
        self,
        apply: Callable[[T], Awaitable[None]],
        interval: float,
        *,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._apply = apply
        self._interval = interval
        self._timeout = timeout
        self._clock = clock
        self._latest: T | None = None
        self._pending = False
        self._wake = asyncio.Event()
        self._closing = False
        self._last_applied = float("-inf")
        self._task: asyncio.Task[None] | None = None
        self.applied = 0

    def publish(self, value: T) -> None:
        """Make `value` the state to show next (replacing any not yet shown)."""
        if self._closing:
            return
        self._latest, self._pending = value, True
        self._wake.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="status-updater")

    async def close(self, final: T | None = None) -> None:
        """Publish `final` (if given), wait until the latest value is written, then stop."""
        if final is not None:
            self.publish(final)
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._pending:
                wait = self._last_applied + self._interval - self._clock()
                if wait > 0:
                    # close() waits this out too: Discord's edit rate limit applies to the last edit as well.
                    await asyncio.sleep(wait)
                await self._write()
            if self._closing and not self._pending:
                return

    async def _write(self) -> None:
        value, self._pending = self._latest, False
        if value is None:
            return
        self._last_applied = self._clock()
        try:
            async with asyncio.timeout(self._timeout):
                await self._apply(value)
        except Exception:
            # A failed edit must not end the updater: the next state will try again.
            log.warning("status update failed", exc_info=True)
        else:
            self.applied += 1
