"""The store's parts for members and moderators: notices sent once, on a real SQLite file."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.store import Store
from tests.store.conftest import FakeClock

GUILD = 111


async def test_a_notice_is_claimed_once_and_survives_a_reopen(store: Store, tmp_path: Path) -> None:
    assert await store.notices.claim(GUILD, "help")
    assert not await store.notices.claim(GUILD, "help")
    assert await store.notices.claim(GUILD + 1, "help")  # per guild
    assert await store.notices.claim(GUILD, "other")  # per kind
    async with await Store.open(store.path) as reopened:
        assert not await reopened.notices.claim(GUILD, "help")


async def test_a_windowed_notice_is_due_again_only_after_its_window(store: Store, clock: FakeClock) -> None:
    assert await store.notices.claim(0, "account:suspended", every_seconds=3600)
    first = clock.now
    clock.now += 3599
    assert not await store.notices.claim(0, "account:suspended", every_seconds=3600)
    assert await store.notices.sent_at(0, "account:suspended") == first
    clock.now += 1
    assert await store.notices.claim(0, "account:suspended", every_seconds=3600)
    assert await store.notices.sent_at(0, "account:suspended") == clock.now
    with pytest.raises(ValueError):
        await store.notices.claim(0, "x", every_seconds=0)
