"""Crash and concurrency: a writer SIGKILLed mid-way, writers in several processes and connections."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

from bot.store import Store
from tests.helpers import ROOT


def _spawn(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.store.writer_process", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _read_until_beat(child: subprocess.Popen[str], beats: int) -> tuple[str, int]:
    assert child.stdout is not None
    session_id, last = "", 0
    for line in child.stdout:
        kind, value = line.split()
        if kind == "session":
            session_id = value
        else:
            last = int(value)
            if last >= beats:
                break
    return session_id, last


async def test_sigkill_mid_write_then_reopen(tmp_path):
    path = tmp_path / "bot.db"
    child = _spawn("heartbeat", str(path))
    try:
        session_id, reported = await asyncio.to_thread(_read_until_beat, child, 40)
        child.send_signal(signal.SIGKILL)  # mid-stream: it keeps writing until the signal lands
    finally:
        child.kill()
        child.wait(timeout=10)
        assert child.stdout is not None and child.stderr is not None
        child.stdout.close()
        child.stderr.close()
    assert child.returncode == -signal.SIGKILL
    assert session_id and reported >= 40

    async with await Store.open(path) as store:
        assert await store.integrity_check() == "ok"
        session = await store.sessions.get(session_id)
        assert session is not None
        # Everything the child saw committed survived; at most the beat in flight is extra.
        assert session.streamed_seconds >= reported
        ledger = await store.usage.for_member(1, 3, limit=100_000)
        adjustments = [e for e in ledger if e.kind == "adjust"]
        assert len(adjustments) >= reported
        assert sorted(int(e.note or 0) for e in adjustments) == list(range(1, len(adjustments) + 1))
        assert session.streamed_seconds in (len(adjustments), len(adjustments) + 1)
        interrupted = await store.sessions.interrupt_unfinished()
        assert [item.session.id for item in interrupted] == [session_id]


async def test_writers_in_several_processes(tmp_path):
    path = tmp_path / "bot.db"
    async with await Store.open(path):
        pass  # migrate once up front; the children then only write
    children = [_spawn("append", str(path), str(writer), "60") for writer in range(3)]
    outputs = [await asyncio.to_thread(child.communicate, timeout=120) for child in children]
    for child, (out, err) in zip(children, outputs, strict=True):
        assert child.returncode == 0, err
        assert out.strip() == "done"
    async with await Store.open(path) as store:
        assert await store.integrity_check() == "ok"
        for writer in range(3):
            totals = await store.usage.totals(1, writer, since=0, until=1e12)
            assert totals.seconds == 60.0


async def test_two_connections_write_concurrently(tmp_path):
    path = tmp_path / "bot.db"
    async with await Store.open(path) as first, await Store.open(path) as second:

        async def write(store: Store, user_id: int) -> None:
            for _ in range(50):
                session = await store.sessions.create(guild_id=1, channel_id=2, user_id=user_id)
                await store.usage.open_session(guild_id=1, user_id=user_id, session_id=session.id)
                await store.sessions.heartbeat(session.id, 1.0)

        await asyncio.gather(write(first, 1), write(second, 2), write(first, 3), write(second, 4))
        for user_id in (1, 2, 3, 4):
            assert await first.sessions.count_for_user(1, user_id) == 50
            assert (await second.usage.totals(1, user_id, since=0, until=1e12)).sessions == 50


async def test_concurrent_settlement_charges_once(tmp_path):
    async with await Store.open(tmp_path / "bot.db") as store:
        session = await store.sessions.create(guild_id=1, channel_id=2, user_id=3)
        await store.usage.open_session(guild_id=1, user_id=3, session_id=session.id)
        results = await asyncio.gather(*(store.usage.charge(session.id, float(n)) for n in range(10)))
        assert len({entry.id for entry in results}) == 1
        charges = [e for e in await store.usage.for_session(session.id) if e.kind == "charge"]
        assert len(charges) == 1


async def test_cancelled_transaction_rolls_back_and_frees_the_connection(tmp_path):
    async with await Store.open(tmp_path / "bot.db") as store:
        inside = asyncio.Event()

        async def cancelled_writer() -> None:
            async with store.db.transaction() as tx:
                await tx.execute("INSERT INTO blocked_words (guild_id, word, added_at) VALUES (1, 'x', 0)")
                inside.set()
                await asyncio.Event().wait()  # cancelled here, mid-transaction

        task = asyncio.create_task(cancelled_writer())
        await inside.wait()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert task.cancelled()
        assert await store.guilds.blocked_words(1) == []  # rolled back
        await store.guilds.add_blocked_word(1, "y", moderator_id=None)  # the connection still works
        assert await store.guilds.blocked_words(1) == ["y"]


async def test_a_transaction_left_open_is_rolled_back_by_the_next_one(tmp_path):
    async with await Store.open(tmp_path / "bot.db") as store:
        raw = store.db._conn  # simulate what a doubly-cancelled holder could leave behind
        await raw.execute("BEGIN IMMEDIATE")
        await raw.execute("INSERT INTO blocked_words (guild_id, word, added_at) VALUES (1, 'left', 0)")
        await store.guilds.add_blocked_word(1, "mine", moderator_id=None)
        assert await store.guilds.blocked_words(1) == ["mine"]


async def test_charge_and_refund_racing_on_two_connections_settle_once(tmp_path):
    path = tmp_path / "bot.db"
    async with await Store.open(path) as first, await Store.open(path) as second:
        for round_ in range(10):
            session = await first.sessions.create(guild_id=1, channel_id=2, user_id=3)
            await first.usage.open_session(guild_id=1, user_id=3, session_id=session.id)
            racers = [first.usage.charge(session.id, 5.0), second.usage.refund(session.id)]
            if round_ % 2:
                racers.reverse()
            await asyncio.gather(*racers, return_exceptions=True)
            settled = [e.kind for e in await second.usage.for_session(session.id) if e.kind != "session"]
            assert settled in (["charge"], ["refund"])
