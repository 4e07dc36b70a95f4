"""Worker presence: each worker heartbeats its free capacity into a NATS key-value bucket with a TTL.

A worker that stops heartbeating (killed, frozen, cut off) drops out of the bucket once the TTL passes, with
no goodbye needed; a worker that exits cleanly withdraws at once. The front end reads the bucket to place a
session on the worker with the most free room, spreading ties.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import socket
from collections.abc import Callable

from nats.aio.client import Client
from nats.js.errors import BucketNotFoundError, KeyDeletedError, KeyNotFoundError
from nats.js.kv import KeyValue

from bot.deadline import wait_within
from bot.workers.settings import WorkerSettings

log = logging.getLogger(__name__)

# Every bucket operation: a NATS server that does not answer within this is treated as unavailable.
KV_SECONDS = 5.0


@dataclasses.dataclass(frozen=True)
class WorkerInfo:
    """One worker as it last announced itself."""

    worker_id: str
    capacity: int
    running: int
    host: str
    pid: int
    # Set when the worker drains (SIGTERM): it finishes its sessions but takes no new ones.
    draining: bool = False

    @property
    def free(self) -> int:
        """Sessions it could still take."""
        return 0 if self.draining else max(0, self.capacity - self.running)

    def to_bytes(self) -> bytes:
        """The bucket value."""
        return json.dumps(dataclasses.asdict(self)).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> WorkerInfo:
        """Parse a bucket value; ValueError if it is not one."""
        try:
            fields = json.loads(data)
            return cls(
                worker_id=str(fields["worker_id"]),
                capacity=int(fields["capacity"]),
                running=int(fields["running"]),
                host=str(fields["host"]),
                pid=int(fields["pid"]),
                draining=bool(fields.get("draining", False)),
            )
        except (KeyError, TypeError, json.JSONDecodeError) as error:
            raise ValueError(f"not a worker announcement: {error!r}") from error


async def presence_bucket(client: Client, settings: WorkerSettings) -> KeyValue:
    """The deployment's presence bucket, created on first use with the configured TTL."""
    js = client.jetstream(timeout=KV_SECONDS)
    try:
        return await wait_within(js.key_value(settings.presence_bucket), KV_SECONDS)
    except BucketNotFoundError:
        created = js.create_key_value(bucket=settings.presence_bucket, ttl=settings.presence_ttl_seconds)
        return await wait_within(created, KV_SECONDS)


class Presence:
    """A worker's side: announce now, then heartbeat every third of the TTL until `withdraw()`."""

    def __init__(
        self,
        client: Client,
        settings: WorkerSettings,
        worker_id: str,
        capacity: int,
        running: Callable[[], int],
    ) -> None:
        self._client = client
        self._settings = settings
        self._running = running
        self.info = WorkerInfo(worker_id, capacity, 0, socket.gethostname(), os.getpid())
        self._bucket: KeyValue | None = None
        self._beat: asyncio.Task[None] | None = None

    async def announce(self) -> None:
        """Put the current state now and keep heartbeating in the background."""
        self._bucket = await presence_bucket(self._client, self._settings)
        await self._put()
        if self._beat is None:
            self._beat = asyncio.create_task(self._heartbeat(), name=f"presence-{self.info.worker_id}")

    async def refresh(self) -> None:
        """Announce the running count now (e.g. a session just ended) rather than at the next heartbeat."""
        await self._put()

    async def drain(self) -> None:
        """Take no new sessions (announced at once); running ones go on."""
        self.info = dataclasses.replace(self.info, draining=True)
        await self._put()

    async def withdraw(self) -> None:
        """Stop heartbeating and remove the entry (a clean exit)."""
        if self._beat is not None:
            self._beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beat
            self._beat = None
        if self._bucket is not None:
            with contextlib.suppress(Exception):
                await wait_within(self._bucket.delete(self.info.worker_id), KV_SECONDS)

    async def _put(self) -> None:
        if self._bucket is None:
            return
        self.info = dataclasses.replace(self.info, running=self._running())
        await wait_within(self._bucket.put(self.info.worker_id, self.info.to_bytes()), KV_SECONDS)

    async def _heartbeat(self) -> None:
        period = self._settings.presence_ttl_seconds / 3
        wait = period
        while True:
            await asyncio.sleep(wait)
            try:
                await self._put()
                wait = period
            except Exception as error:
                # NATS away (restarting, cut off): the entry expires meanwhile, as it should; try often, so
                # the worker is back on the board within moments of NATS.
                reason = type(error).__name__
                log.warning("worker %s: presence heartbeat failed (%s)", self.info.worker_id, reason)
                wait = min(period, 0.2)


class PresenceBoard:
    """The front end's side: which workers are alive, and where the next session should go."""

    def __init__(self, client: Client, settings: WorkerSettings) -> None:
        self._client = client
        self._settings = settings
        self._bucket: KeyValue | None = None
        # Sessions this board placed on a worker since the announcement (by its revision) they are not in.
        self._placed: dict[str, tuple[int, int]] = {}

    async def workers(self) -> list[WorkerInfo]:
        """The live workers, by id (an entry whose worker stopped heartbeating has expired)."""
        return [info for info, _ in await self._live()]

    async def place(self, exclude: frozenset[str] = frozenset()) -> WorkerInfo | None:
        """The worker to start the next session on (most free room, then fewest running), or None.

        Counts the placement, so sessions placed before the worker's next announcement spread out.
        """
        candidates = [
            (info, revision)
            for info, revision in await self._live()
            if info.free > 0 and info.worker_id not in exclude
        ]
        if not candidates:
            return None
        chosen, revision = max(candidates, key=lambda c: (c[0].free, -c[0].running, c[0].worker_id))
        _, placed = self._placed.get(chosen.worker_id, (revision, 0))
        self._placed[chosen.worker_id] = (revision, placed + 1)
        return chosen

    async def _live(self) -> list[tuple[WorkerInfo, int]]:
        """Each live worker with this board's recent placements counted in, and its entry's revision."""
        live = []
        for info, revision in await self._entries():
            placed_revision, placed = self._placed.get(info.worker_id, (revision, 0))
            if placed_revision != revision:
                # The worker announced since: its own count includes them.
                self._placed.pop(info.worker_id, None)
                placed = 0
            live.append((dataclasses.replace(info, running=info.running + placed), revision))
        return live

    async def _entries(self) -> list[tuple[WorkerInfo, int]]:
        if self._bucket is None:
            self._bucket = await presence_bucket(self._client, self._settings)
        found = []
        for key in await self._keys():
            try:
                entry = await wait_within(self._bucket.get(key), KV_SECONDS)
                found.append((WorkerInfo.from_bytes(entry.value or b""), entry.revision or 0))
            except (KeyNotFoundError, KeyDeletedError):
                continue  # expired or withdrawn between the listing and the read
            except ValueError:
                log.warning("presence entry %r is not a worker announcement; ignored", key)
        return found

    async def _keys(self) -> list[str]:
        """The keys holding a message, from the bucket's stream state.

        nats-py's `KeyValue.keys()` opens a consumer per call; polled often it failed now and then
        (BadRequest, or no keys at all while one was live), so the stream's subject counts are read instead.
        """
        bucket = self._settings.presence_bucket
        js = self._client.jetstream(timeout=KV_SECONDS)
        info = await wait_within(
            js.stream_info(f"KV_{bucket}", subjects_filter=f"$KV.{bucket}.>"), KV_SECONDS
        )
        subjects = info.state.subjects or {}
        return sorted(subject.removeprefix(f"$KV.{bucket}.") for subject in subjects)
