"""Which worker owns a session: one claim per session in the key-value bucket `<prefix>_sessions`.

A worker writes `session id -> its id` before it starts a session, and only over the revision the bot
named in the `start` (0: no entry may exist). A bot whose `start` went unanswered writes a tombstone
over that same revision: exactly one of the two writes succeeds, so either the worker runs the session
and the bot adopts it there, or the worker can never start it and the next worker is offered the
tombstone's revision. The bot removes the claim once the session is settled.
"""

from __future__ import annotations

import dataclasses

from nats.aio.client import Client
from nats.js.errors import BucketNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from bot.deadline import wait_within
from bot.workers.events import KEEP_SECONDS
from bot.workers.presence import KV_SECONDS
from bot.workers.settings import WorkerSettings

# Claims go by themselves after this, should the bot that would remove them be gone for good. A claim
# only matters while a start may still reach a worker (seconds), but it must also outlive any session
# and a bot down for a while; a bot away longer than this has lost the session's events anyway.
CLAIM_MAX_AGE_SECONDS = KEEP_SECONDS
ABANDONED = "abandoned:"


@dataclasses.dataclass(frozen=True)
class Claim:
    """A session's claim as the bot left it: held by a worker (`owner`), or a tombstone at `revision`."""

    revision: int
    owner: str | None


async def claims_bucket(client: Client, settings: WorkerSettings) -> KeyValue:
    """The deployment's claims bucket, created on first use (by the bot or a worker)."""
    js = client.jetstream(timeout=KV_SECONDS)
    try:
        return await wait_within(js.key_value(settings.claims_bucket), KV_SECONDS)
    except BucketNotFoundError:
        created = js.create_key_value(bucket=settings.claims_bucket, ttl=CLAIM_MAX_AGE_SECONDS)
        return await wait_within(created, KV_SECONDS)


class SessionClaims:
    """Claiming, abandoning and releasing sessions in the claims bucket."""

    def __init__(self, bucket: KeyValue) -> None:
        self._bucket = bucket

    async def claim(self, session_id: str, worker_id: str, over_revision: int) -> bool:
        """The worker's side: take the session; False if the bot gave up on this start or it is taken."""
        return await self._replace(session_id, worker_id, over_revision) is not None

    async def abandon(self, session_id: str, worker_id: str, over_revision: int) -> Claim:
        """The bot's side, after `worker_id` left a start unanswered: make sure it never starts it.

        Returns the tombstone (the next worker claims over its revision), or, when the worker had claimed
        the session after all, the claim naming it.
        """
        revision = await self._replace(session_id, ABANDONED + worker_id, over_revision)
        if revision is not None:
            return Claim(revision, None)
        entry = await wait_within(self._bucket.get(session_id), KV_SECONDS)
        value = (entry.value or b"").decode()
        return Claim(entry.revision or 0, None if value.startswith(ABANDONED) else value)

    async def release(self, session_id: str) -> None:
        """Remove the claim of a settled session.

        What stays is a delete marker, not nothing: a start still on its way to some worker names an
        older revision and fails against it.
        """
        await wait_within(self._bucket.delete(session_id), KV_SECONDS)

    async def _replace(self, session_id: str, value: str, over_revision: int) -> int | None:
        # `update(last=0)` rather than `create`: nats-py's create also succeeds over a removed claim.
        try:
            return await wait_within(
                self._bucket.update(session_id, value.encode(), last=over_revision), KV_SECONDS
            )
        except KeyWrongLastSequenceError:
            return None
