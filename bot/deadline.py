"""Deadlines that hold on Python 3.11: `wait_within` (no lost cancellations) and `cancel_within`."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Collection
from typing import Any, TypeVar

T = TypeVar("T")


async def wait_within(work: Awaitable[T], seconds: float) -> T:
    """Await `work`, cancelling it and raising TimeoutError after `seconds`.

    Use this instead of `asyncio.wait_for`: on 3.11, a task cancelled in the same loop iteration as the
    awaited result arrives gets the result and never sees the CancelledError. A loop that is then told to
    stop (a signaling reader, a keepalive) runs on, and whoever waits for it to end waits forever.
    """
    async with asyncio.timeout(seconds):
        return await work


async def cancel_within(tasks: Collection[asyncio.Task[Any]], seconds: float) -> set[asyncio.Task[Any]]:
    """Cancel `tasks` and wait at most `seconds` for them to end; returns those still running.

    Never waits unbounded: a task that missed its cancellation must not hold up the teardown that follows.
    Exceptions of the tasks that ended are retrieved (their owners report failures their own way).
    """
    for task in tasks:
        task.cancel()
    if not tasks:
        return set()
    ended, stuck = await asyncio.wait(tasks, timeout=seconds)
    for task in ended:
        if not task.cancelled():
            task.exception()
    return stuck
