"""Session claims on a real NATS server: one owner per session, whoever writes first, never two."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from bot.workers.bus import connect
from bot.workers.claims import CLAIM_MAX_AGE_SECONDS, SessionClaims, claims_bucket
from bot.workers.settings import WorkerSettings

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def bucket(worker_settings: WorkerSettings) -> AsyncIterator[KeyValue]:
    client = await connect(worker_settings, "claims-test")
    try:
        yield await claims_bucket(client, worker_settings)
    finally:
        await client.close()


@pytest.fixture
def claims(bucket: KeyValue) -> SessionClaims:
    return SessionClaims(bucket)


async def test_a_worker_claims_a_fresh_session_and_the_bot_then_finds_it_there(claims: SessionClaims) -> None:
    assert await claims.claim("s1", "w1", 0)
    assert not await claims.claim("s1", "w2", 0)  # a second start of the same session is refused
    claim = await claims.abandon("s1", "w1", 0)  # the bot gives up on w1 too late: w1 owns it
    assert claim.owner == "w1"


async def test_an_abandoned_start_is_never_taken_and_the_next_worker_claims_over_the_tombstone(
    claims: SessionClaims,
) -> None:
    tombstone = await claims.abandon("s1", "w1", 0)
    assert tombstone.owner is None and tombstone.revision > 0
    assert not await claims.claim("s1", "w1", 0)  # w1's start arrives late
    assert await claims.claim("s1", "w2", tombstone.revision)
    assert not await claims.claim("s1", "w3", tombstone.revision)  # one owner only
    assert (await claims.abandon("s1", "w2", tombstone.revision)).owner == "w2"


async def test_a_tombstone_over_a_tombstone_chains_to_the_next_worker(claims: SessionClaims) -> None:
    first = await claims.abandon("s1", "w1", 0)
    second = await claims.abandon("s1", "w2", first.revision)
    assert second.owner is None
    assert not await claims.claim("s1", "w2", first.revision)  # w2 late: the bot gave up on it too
    assert await claims.claim("s1", "w3", second.revision)


async def test_a_released_claim_cannot_be_taken_by_a_start_still_on_its_way(
    claims: SessionClaims, bucket: KeyValue
) -> None:
    tombstone = await claims.abandon("s1", "w1", 0)
    assert await claims.claim("s1", "w2", tombstone.revision)
    await claims.release("s1")
    with pytest.raises(KeyNotFoundError):
        await bucket.get("s1")
    assert not await claims.claim("s1", "w1", 0)
    assert not await claims.claim("s1", "w3", tombstone.revision)


async def test_the_bucket_has_its_max_age(worker_settings: WorkerSettings, bucket: KeyValue) -> None:
    status = await bucket.status()
    assert status.bucket == worker_settings.claims_bucket == "tryon_sessions"
    assert status.ttl == CLAIM_MAX_AGE_SECONDS
