"""Store fixtures: a real database file in tmp_path with a settable clock."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.store import Store


class FakeClock:
    """A clock tests move by hand (UTC unix seconds)."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def store(tmp_path, clock) -> AsyncIterator[Store]:
    async with await Store.open(tmp_path / "bot.db", clock=clock) as opened:
        yield opened
