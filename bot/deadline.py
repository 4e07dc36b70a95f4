"""`wait_within`: await with a deadline, without Python 3.11's `asyncio.wait_for` losing a cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def wait_within(work: Awaitable[T], seconds: float) -> T:
    """Await `work`, cancelling it and raising TimeoutError after `seconds`.

    Use this instead of `asyncio.wait_for`: on 3.11, a task cancelled in the same loop iteration as the
    awaited result arrives gets the result and never sees the CancelledError. A loop that is then told to
    stop (a signaling reader, a keepalive) runs on, and whoever waits for it to end waits forever.
    """
    async with asyncio.timeout(seconds):
        return await work
