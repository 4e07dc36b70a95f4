"""The account watch on a real SQLite file: which failures are account problems, told once per window,
repeated auth failures only, and not again after a restart."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.store import Store
from bot.tryon.account import ACCOUNT_PROBLEM, AccountAlert, AccountProblem, AccountWatch
from tests.helpers import stored_session


class Clock:
    """Seconds that tests move by hand (for the store's time and the watch's)."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


async def watched(store: Store, clock: Clock) -> tuple[AccountWatch, list[AccountAlert]]:
    alerts: list[AccountAlert] = []

    async def collect(alert: AccountAlert) -> None:
        alerts.append(alert)

    watch = AccountWatch(store, every_seconds=3600, clock=clock)
    watch.listen(collect)
    return watch, alerts


async def session_in(store: Store, guild_id: int) -> str:
    return (await stored_session(store, guild_id, 42)).id


async def settled(watch: AccountWatch) -> None:
    await asyncio.sleep(0)  # deliveries run as tasks
    await watch.aclose()


async def test_an_account_problem_is_told_once_per_guild_and_to_the_owner_once(tmp_path: Path) -> None:
    clock = Clock()
    async with await Store.open(tmp_path / "bot.db", clock=clock) as store:
        watch, alerts = await watched(store, clock)
        await watch.observe(await session_in(store, 1), "MONTHLY_LIMIT_REACHED")
        await watch.observe(await session_in(store, 1), "quota_exceeded")  # the same problem, mid-stream
        await watch.observe(await session_in(store, 2), "MONTHLY_LIMIT_REACHED")  # another server
        await watch.observe(await session_in(store, 1), "CONCURRENT_LIMIT_REACHED")  # not the account's
        await watch.observe(await session_in(store, 1), None)
        await settled(watch)
        assert [(a.problem, a.guild_id, a.to_owner) for a in alerts] == [
            (AccountProblem.MONTHLY_LIMIT, 1, True),
            (AccountProblem.MONTHLY_LIMIT, 2, False),
        ]
        entries = await store.audit.list(1, action=ACCOUNT_PROBLEM)
        assert len(entries) == 1 and "streaming time" in entries[0].details["problem"]

    async with await Store.open(tmp_path / "bot.db", clock=clock) as store:  # a restart
        watch, alerts = await watched(store, clock)
        await watch.observe(await session_in(store, 1), "MONTHLY_LIMIT_REACHED")
        await settled(watch)
        assert alerts == []
        clock.now += 3600  # the window has passed: told again
        watch, alerts = await watched(store, clock)
        await watch.observe(await session_in(store, 1), "MONTHLY_LIMIT_REACHED")
        await settled(watch)
        assert [(a.guild_id, a.to_owner) for a in alerts] == [(1, True)]


async def test_auth_failures_are_a_problem_only_when_they_repeat(tmp_path: Path) -> None:
    clock = Clock()
    async with await Store.open(tmp_path / "bot.db", clock=clock) as store:
        watch, alerts = await watched(store, clock)
        first = await session_in(store, 1)
        await watch.observe(first, "OdysseyAuthError")
        await watch.observe(first, "OdysseyAuthError")  # the same session written twice counts once
        clock.now += 601  # too long ago to count with the next ones
        await watch.observe(await session_in(store, 1), "OdysseyAuthError")
        await watch.observe(await session_in(store, 1), "OdysseyAuthError")
        assert alerts == []
        await watch.observe(await session_in(store, 1), "OdysseyAuthError")
        await watch.observe(await session_in(store, 1), "ACCOUNT_SUSPENDED")
        await settled(watch)
        assert [a.problem for a in alerts] == [AccountProblem.AUTH_FAILING, AccountProblem.SUSPENDED]
