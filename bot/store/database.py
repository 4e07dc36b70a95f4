"""The shared aiosqlite connection, behind one lock so coroutines never interleave their transactions."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any

import aiosqlite

Params = Sequence[Any] | dict[str, Any]
Clock = Callable[[], float]


class Tx:
    """Statements on the connection while the caller holds the lock (inside or outside a transaction)."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; return the number of rows it changed."""
        async with self._conn.execute(sql, params) as cursor:
            return cursor.rowcount

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        """Run one statement for many parameter rows."""
        await self._conn.executemany(sql, rows)

    async def insert(self, sql: str, params: Params = ()) -> int:
        """Run an INSERT; return the new rowid."""
        async with self._conn.execute(sql, params) as cursor:
            rowid = cursor.lastrowid
        if rowid is None:
            raise RuntimeError("INSERT did not produce a rowid")
        return rowid

    async def fetch_one(self, sql: str, params: Params = ()) -> aiosqlite.Row | None:
        """First row of a query, or None."""
        async with self._conn.execute(sql, params) as cursor:
            row: aiosqlite.Row | None = await cursor.fetchone()
        return row

    async def fetch_all(self, sql: str, params: Params = ()) -> list[aiosqlite.Row]:
        """All rows of a query."""
        async with self._conn.execute(sql, params) as cursor:
            rows = await cursor.fetchall()
        return list(rows)


class Database:
    """Serialises access to one connection: single statements autocommit, `transaction()` groups several."""

    def __init__(self, conn: aiosqlite.Connection, clock: Clock) -> None:
        self._conn = conn
        self._tx = Tx(conn)
        self._lock = asyncio.Lock()
        self.clock = clock

    def now(self, at: float | None = None) -> float:
        """`at` if given, else the store's clock (UTC unix seconds)."""
        return self.clock() if at is None else float(at)

    async def execute(self, sql: str, params: Params = ()) -> int:
        """One statement in its own (implicit) transaction; rows changed."""
        async with self._lock:
            return await self._tx.execute(sql, params)

    async def insert(self, sql: str, params: Params = ()) -> int:
        """One INSERT in its own transaction; the new rowid."""
        async with self._lock:
            return await self._tx.insert(sql, params)

    async def fetch_one(self, sql: str, params: Params = ()) -> aiosqlite.Row | None:
        """First row of a query, or None."""
        async with self._lock:
            return await self._tx.fetch_one(sql, params)

    async def fetch_all(self, sql: str, params: Params = ()) -> list[aiosqlite.Row]:
        """All rows of a query."""
        async with self._lock:
            return await self._tx.fetch_all(sql, params)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK if the block raises (including on cancellation)."""
        async with self._lock:
            await self._begin()
            try:
                yield self._tx
            except BaseException:
                await self._rollback_quietly()
                raise
            await self._conn.execute("COMMIT")

    async def _begin(self) -> None:
        try:
            await self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            if "within a transaction" not in str(error):
                raise
            # A holder of the lock was cancelled twice before its ROLLBACK ran, leaving its uncommitted
            # work open. It can never commit now (we hold the lock), so roll it back and start ours.
            await self._rollback_quietly()
            await self._conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            # Cancelled while BEGIN was queued: it may still run on aiosqlite's thread. Statements run in
            # order there, so a ROLLBACK queued now closes it if it did.
            await self._rollback_quietly()
            raise

    async def _rollback_quietly(self) -> None:
        with contextlib.suppress(sqlite3.OperationalError):  # "no transaction is active"
            await self._conn.execute("ROLLBACK")
