"""`wait_within`: deadlines that never swallow a cancellation, and the rule that the bot uses nothing else."""

from __future__ import annotations

import asyncio
import re

import pytest

from bot.deadline import wait_within
from tests.helpers import ROOT


async def test_the_work_is_cancelled_and_timeout_raised_at_the_deadline() -> None:
    cancelled = asyncio.Event()

    async def slow() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with pytest.raises(TimeoutError):
        await wait_within(slow(), 0.05)
    assert cancelled.is_set()
    assert await wait_within(asyncio.sleep(0, result="done"), 1) == "done"


async def test_a_cancellation_arriving_with_the_result_stops_a_loop() -> None:
    """The interleaving that left a connection's teardown waiting forever for its keepalive loop."""
    sends: list[asyncio.Future[None]] = []

    async def keepalive_loop() -> None:
        while True:
            sends.append(asyncio.get_running_loop().create_future())
            await wait_within(sends[-1], 5)

    for _ in range(20):
        sends.clear()
        loop_task = asyncio.create_task(keepalive_loop())
        await asyncio.sleep(0)
        sends[-1].set_result(None)  # the send completes ...
        loop_task.cancel()  # ... and the owner cancels the loop in the same iteration
        with pytest.raises(asyncio.CancelledError):
            await wait_within(loop_task, 1)  # asyncio.wait_for on 3.11: runs on, TimeoutError here
        assert len(sends) == 1


def test_no_code_of_the_bot_uses_asyncio_wait_for() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for folder in ("bot", "cogs")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if path != ROOT / "bot" / "deadline.py"  # it says why in its docstring
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if re.search(r"asyncio\.wait_for\b|from asyncio import .*\bwait_for\b", line)
    ]
    assert offenders == [], f"use bot.deadline.wait_within instead of asyncio.wait_for: {offenders}"
