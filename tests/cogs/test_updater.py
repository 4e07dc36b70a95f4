"""The coalescing status updater: one edit per interval, the latest state wins, the final state is written."""

from __future__ import annotations

import asyncio
import itertools

from cogs.tryon.updater import CoalescingUpdater


async def test_burst_is_coalesced_and_latest_wins() -> None:
    shown: list[int] = []
    gate = asyncio.Event()

    async def apply(value: int) -> None:
        await gate.wait()
        shown.append(value)

    updater: CoalescingUpdater[int] = CoalescingUpdater(apply, interval=0.05)
    updater.publish(0)
    await asyncio.sleep(0)  # the first edit is in flight, blocked on the gate
    for value in range(1, 50):
        updater.publish(value)
    gate.set()
    await updater.close()
    assert shown == [0, 49]
    assert updater.applied == 2


async def test_edits_respect_the_interval() -> None:
    shown: list[tuple[float, int]] = []
    loop = asyncio.get_running_loop()

    async def apply(value: int) -> None:
        shown.append((loop.time(), value))

    updater: CoalescingUpdater[int] = CoalescingUpdater(apply, interval=0.1)
    for value in range(3):
        updater.publish(value)
        await asyncio.sleep(0.02)
    await updater.close(final=99)
    values = [value for _, value in shown]
    assert values[0] == 0 and values[-1] == 99 and len(values) < 4  # three publishes within one interval
    gaps = [later - earlier for (earlier, _), (later, _) in itertools.pairwise(shown)]
    assert all(gap >= 0.1 - 0.005 for gap in gaps)


async def test_failed_edit_does_not_stop_later_ones() -> None:
    shown: list[int] = []

    async def apply(value: int) -> None:
        if value == 1:
            raise RuntimeError("discord is down")
        shown.append(value)

    updater: CoalescingUpdater[int] = CoalescingUpdater(apply, interval=0.0)
    updater.publish(1)
    await asyncio.sleep(0.01)
    await updater.close(final=2)
    assert shown == [2]


async def test_publish_after_close_is_ignored() -> None:
    shown: list[int] = []

    async def apply(value: int) -> None:
        shown.append(value)

    updater: CoalescingUpdater[int] = CoalescingUpdater(apply, interval=0.0)
    await updater.close(final=1)
    updater.publish(2)
    await asyncio.sleep(0.01)
    assert shown == [1]
