"""A child process that writes to a store and reports each commit on stdout (used by the crash tests)."""

from __future__ import annotations

import asyncio
import sys

from bot.store import Store


async def heartbeat_forever(path: str) -> None:
    """Create a session, then heartbeat and append ledger rows until killed, printing each committed beat."""
    async with await Store.open(path) as store:
        session = await store.sessions.create(guild_id=1, channel_id=2, user_id=3, state="streaming")
        await store.usage.open_session(guild_id=1, user_id=3, session_id=session.id)
        print(f"session {session.id}", flush=True)
        beat = 0
        while True:
            beat += 1
            await store.sessions.heartbeat(session.id, float(beat))
            await store.usage.adjust(guild_id=1, user_id=3, seconds=1.0, moderator_id=None, note=str(beat))
            print(f"beat {beat}", flush=True)


async def append_rows(path: str, writer: int, count: int) -> None:
    """Append `count` ledger rows, one transaction each, then exit."""
    async with await Store.open(path) as store:
        for index in range(count):
            await store.usage.adjust(
                guild_id=1, user_id=writer, seconds=1.0, moderator_id=None, note=str(index)
            )
    print("done", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "heartbeat":
        asyncio.run(heartbeat_forever(sys.argv[2]))
    else:
        asyncio.run(append_rows(sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
