"""The reliability helpers themselves: the lag probe sees a stall, the ledger check sees a missing charge."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from bot.store import Store
from tests.reliability.conftest import assert_settled_once, loop_lag_probe


async def test_lag_probe_sees_a_blocked_loop() -> None:
    async with loop_lag_probe() as lag:
        await asyncio.sleep(0.03)
        time.sleep(0.15)  # noqa: ASYNC251 - a deliberate stall: what the probe must catch
        await asyncio.sleep(0.03)
    assert lag.ticks > 0 and lag.worst_ms >= 100


async def test_settled_once_needs_exactly_one_settlement(tmp_path: Path) -> None:
    async with await Store.open(tmp_path / "tryon.db") as store:
        record = await store.sessions.create(
            guild_id=1, channel_id=None, user_id=2, photo_sha256="0" * 64, orientation="portrait"
        )
        await store.usage.open_session(guild_id=1, user_id=2, session_id=record.id)
        with pytest.raises(AssertionError):
            await assert_settled_once(store, record.id)
        await store.usage.charge(record.id, 3.0)
        assert await assert_settled_once(store, record.id) == 3.0
