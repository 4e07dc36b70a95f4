"""QuotaPolicy on a real SQLite file: limit resolution, blocks, windows and their boundaries, settlement."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import pytest

from bot.store import QuotaLimits, Store
from bot.tryon.errors import Blocked, QuotaExceeded
from bot.tryon.quota import QuotaPolicy, day_window, month_window

G1, G2 = 111, 222
USER, MOD = 5, 9
DEFAULTS = QuotaLimits(daily_seconds=300, monthly_seconds=3000, daily_sessions=5, monthly_sessions=50)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> float:
    return dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.UTC).timestamp()


@pytest.fixture
async def store(tmp_path) -> AsyncIterator[Store]:
    async with await Store.open(tmp_path / "bot.db", clock=lambda: utc(2026, 3, 10, 12)) as opened:
        yield opened


@pytest.fixture
def policy(store: Store) -> QuotaPolicy:
    return QuotaPolicy(store, DEFAULTS, min_start_seconds=5)


async def _session(store: Store, guild_id: int = G1, user_id: int = USER) -> str:
    return (await store.sessions.create(guild_id=guild_id, channel_id=1, user_id=user_id)).id


async def _use(policy: QuotaPolicy, store: Store, seconds: float, now: float, guild_id: int = G1) -> str:
    session_id = await _session(store, guild_id)
    await policy.reserve(session_id, guild_id, USER, now=now)
    await policy.charge(session_id, seconds, now=now)
    return session_id


def test_windows_are_utc_calendar_day_and_month():
    assert day_window(utc(2026, 3, 10, 23, 59, 59)) == (utc(2026, 3, 10), utc(2026, 3, 11))
    assert month_window(utc(2026, 12, 31, 23)) == (utc(2026, 12, 1), utc(2027, 1, 1))
    assert month_window(utc(2028, 2, 29, 12)) == (utc(2028, 2, 1), utc(2028, 3, 1))


async def test_fresh_member_has_the_bot_defaults(policy: QuotaPolicy):
    now = utc(2026, 3, 10, 12)
    remaining = await policy.remaining(G1, USER, now=now)
    assert (remaining.seconds_left, remaining.sessions_left) == (300, 5)
    assert remaining.binding is remaining.daily and remaining.resets_at == utc(2026, 3, 11)
    assert set(remaining.limits.sources.values()) == {"default"}


async def test_unlimited_default_field(store: Store):
    policy = QuotaPolicy(store, QuotaLimits(daily_seconds=None, monthly_seconds=None, daily_sessions=2))
    remaining = await policy.remaining(G1, USER)
    assert remaining.seconds_left is None and remaining.sessions_left == 2
    assert remaining.binding is remaining.daily


async def test_guild_role_user_resolution(policy: QuotaPolicy, store: Store):
    await store.guilds.set_default_limits(G1, QuotaLimits(daily_seconds=200), moderator_id=MOD)
    await store.quotas.set_role(G1, 10, QuotaLimits(daily_seconds=100, daily_sessions=9), moderator_id=MOD)
    await store.quotas.set_role(G1, 11, QuotaLimits(daily_seconds=600), moderator_id=MOD)
    await store.quotas.set_role(G2, 12, QuotaLimits(daily_seconds=9999), moderator_id=MOD)

    limits = await policy.limits(G1, USER, [])
    assert (limits.daily_seconds, limits.sources["daily_seconds"]) == (200, "guild")
    assert limits.monthly_seconds == 3000 and limits.sources["monthly_seconds"] == "default"
    stricter = await policy.limits(G1, USER, [10])  # a role can be stricter than the guild default
    assert (stricter.daily_seconds, stricter.daily_sessions) == (100, 9)
    generous = await policy.limits(G1, USER, [10, 11, 12])  # most generous role; role 12 is G2's
    assert (generous.daily_seconds, generous.sources["daily_seconds"]) == (600, "role:11")
    assert generous.sources["daily_sessions"] == "role:10"

    await store.quotas.set_user(G1, USER, QuotaLimits(daily_seconds=50), moderator_id=MOD)
    personal = await policy.limits(G1, USER, [10, 11])  # the user's override beats every role
    assert (personal.daily_seconds, personal.sources["daily_seconds"]) == (50, "user")
    assert personal.daily_sessions == 9
    assert (await policy.limits(G2, USER, [12])).daily_seconds == 9999


async def test_block_beats_everything_and_is_per_guild(policy: QuotaPolicy, store: Store):
    now = utc(2026, 3, 10, 12)
    await store.quotas.set_user(G1, USER, QuotaLimits(daily_seconds=10_000), moderator_id=MOD)
    await store.blocks.block(G1, USER, moderator_id=MOD, reason="spamming", expires_at=now + 3600)
    remaining = await policy.remaining(G1, USER, now=now)
    assert remaining.blocked and remaining.seconds_left == 0 and remaining.sessions_left == 0
    with pytest.raises(Blocked) as refused:
        await policy.reserve(await _session(store), G1, USER, now=now)
    assert refused.value.reason == "blocked"
    assert refused.value.message == (
        "A moderator has blocked you from using try-on in this server until 2026-03-10 13:00 UTC."
        " Reason: spamming."
    )
    await policy.reserve(await _session(store, G2), G2, USER, now=now)  # other guild unaffected
    later = await policy.reserve(await _session(store), G1, USER, now=now + 3601)  # block expired
    assert later.seconds_allowed == 3000  # the monthly default now binds


async def test_daily_time_runs_out_and_resets_at_midnight(policy: QuotaPolicy, store: Store):
    await _use(policy, store, 290.0, utc(2026, 3, 10, 9))
    late = utc(2026, 3, 10, 23, 59, 59)
    reservation = await policy.reserve(await _session(store), G1, USER, now=late)
    assert reservation.seconds_allowed == 10.0  # the session's hard stop
    await policy.charge(reservation.session_id, 10.0, now=late)
    with pytest.raises(QuotaExceeded) as refused:
        await policy.reserve(await _session(store), G1, USER, now=late)
    error = refused.value
    assert (error.reason, error.window, error.resets_at) == ("quota_daily_time", "daily", utc(2026, 3, 11))
    assert "daily" in error.message and "2026-03-11 00:00 UTC" in error.message
    fresh = await policy.reserve(await _session(store), G1, USER, now=utc(2026, 3, 11))  # exactly midnight
    assert fresh.seconds_allowed == 300
    assert fresh.remaining.monthly.seconds_used == 300.0


async def test_less_than_the_minimum_start_is_refused(policy: QuotaPolicy, store: Store):
    now = utc(2026, 3, 10, 12)
    await _use(policy, store, 296.0, now)
    with pytest.raises(QuotaExceeded, match="daily"):
        await policy.reserve(await _session(store), G1, USER, now=now)


async def test_monthly_window_binds_and_resets_next_month(policy: QuotaPolicy, store: Store):
    for day in range(1, 11):
        await _use(policy, store, 300.0, utc(2026, 12, day, 12))
    now = utc(2026, 12, 31, 23, 0)
    remaining = await policy.remaining(G1, USER, now=now)
    assert remaining.daily.seconds_left == 300 and remaining.monthly.seconds_left == 0
    assert remaining.binding is remaining.monthly and remaining.resets_at == utc(2027, 1, 1)
    with pytest.raises(QuotaExceeded) as refused:
        await policy.reserve(await _session(store), G1, USER, now=now)
    assert (refused.value.window, refused.value.resets_at) == ("monthly", utc(2027, 1, 1))
    assert (await policy.reserve(await _session(store), G1, USER, now=utc(2027, 1, 1))).seconds_allowed == 300


async def test_monthly_binds_when_it_has_less_left_than_today(policy: QuotaPolicy, store: Store):
    for day in range(1, 10):
        await _use(policy, store, 300.0, utc(2026, 3, day, 12))
    await _use(policy, store, 100.0, utc(2026, 3, 10, 8))
    remaining = await policy.remaining(G1, USER, now=utc(2026, 3, 10, 12))
    assert (remaining.daily.seconds_left, remaining.monthly.seconds_left) == (200, 200)
    await _use(policy, store, 0.0, utc(2026, 3, 10, 9))  # no time used, but daily sessions keep counting
    await store.usage.adjust(guild_id=G1, user_id=USER, seconds=50.0, moderator_id=MOD, at=utc(2026, 3, 9))
    remaining = await policy.remaining(G1, USER, now=utc(2026, 3, 10, 12))
    assert remaining.seconds_left == 150 and remaining.binding is remaining.monthly


async def test_session_count_limit(policy: QuotaPolicy, store: Store):
    now = utc(2026, 3, 10, 12)
    for _ in range(5):
        await _use(policy, store, 1.0, now)
    with pytest.raises(QuotaExceeded) as refused:
        await policy.reserve(await _session(store), G1, USER, now=now)
    assert refused.value.reason == "quota_daily_sessions" and "sessions" in refused.value.message


async def test_refund_before_streaming_gives_the_session_back(policy: QuotaPolicy, store: Store):
    now = utc(2026, 3, 10, 12)
    session_id = await _session(store)
    await policy.reserve(session_id, G1, USER, now=now)
    assert (await policy.remaining(G1, USER, now=now)).sessions_left == 4
    assert await policy.settle(session_id, 0.0, now=now) is not None  # never streamed: refunded
    assert (await policy.remaining(G1, USER, now=now)).sessions_left == 5
    assert await policy.refund(session_id) is not None  # idempotent
    assert (await policy.remaining(G1, USER, now=now)).sessions_left == 5


async def test_charge_settles_exactly_once(policy: QuotaPolicy, store: Store):
    now = utc(2026, 3, 10, 12)
    session_id = await _session(store)
    await policy.reserve(session_id, G1, USER, now=now)
    first = await policy.settle(session_id, 42.0, now=now)
    assert first is not None and first.seconds == 42.0
    assert await policy.charge(session_id, 42.0, now=now) == first
    assert await policy.settle(session_id, 0.0, now=now) == first  # a late "never streamed" keeps the charge
    assert await policy.refund(session_id) is None
    assert (await policy.remaining(G1, USER, now=now)).daily.seconds_used == 42.0


async def test_reserve_is_idempotent_on_session_id(policy: QuotaPolicy, store: Store):
    now = utc(2026, 3, 10, 12)
    await store.quotas.set_user(G1, USER, QuotaLimits(daily_sessions=1), moderator_id=MOD)
    session_id = await _session(store)
    first = await policy.reserve(session_id, G1, USER, now=now)
    again = await policy.reserve(session_id, G1, USER, now=now)  # a retry must not be refused or double count
    assert again.entry == first.entry
    assert (await policy.remaining(G1, USER, now=now)).daily.sessions_used == 1


async def test_running_session_heartbeats_count_against_what_is_left(policy: QuotaPolicy, store: Store):
    now = utc(2026, 3, 10, 12)
    session_id = await _session(store)
    await policy.reserve(session_id, G1, USER, now=now)
    await store.sessions.heartbeat(session_id, 120.0, at=now)
    assert (await policy.remaining(G1, USER, now=now)).seconds_left == 180.0
    await policy.charge(session_id, 125.0, now=now)
    assert (await policy.remaining(G1, USER, now=now)).seconds_left == 175.0


async def test_moderator_adjustment(policy: QuotaPolicy, store: Store):
    now = utc(2026, 3, 10, 12)
    await _use(policy, store, 300.0, now)
    entry, audit = await policy.adjust(G1, USER, seconds=-120.0, moderator_id=MOD, note="sorry", now=now)
    assert entry.seconds == -120.0 and audit.action == "usage_adjust" and audit.actor_id == MOD
    assert (await policy.remaining(G1, USER, now=now)).seconds_left == 120.0
    with pytest.raises(ValueError):
        await policy.adjust(G1, USER, moderator_id=MOD)


async def test_usage_in_one_guild_does_not_touch_another(policy: QuotaPolicy, store: Store):
    now = utc(2026, 3, 10, 12)
    await _use(policy, store, 300.0, now, guild_id=G2)
    assert (await policy.remaining(G1, USER, now=now)).seconds_left == 300
    assert (await policy.remaining(G2, USER, now=now)).seconds_left == 0


async def test_settling_a_session_that_was_never_reserved_is_a_no_op(policy: QuotaPolicy, store: Store):
    session_id = await _session(store)  # e.g. a crash between creating the session and reserving quota
    assert await policy.settle(session_id, 0.0) is None
    assert await policy.settle(session_id, 12.0) is None
    assert await store.usage.for_session(session_id) == []


async def test_a_refund_after_midnight_gives_back_the_start_it_cancels(policy: QuotaPolicy, store: Store):
    session_id = await _session(store)
    await policy.reserve(session_id, G1, USER, now=utc(2026, 3, 31, 23, 59, 50))
    assert await policy.settle(session_id, 0.0, now=utc(2026, 4, 1, 0, 0, 10)) is not None
    march = await policy.remaining(G1, USER, now=utc(2026, 3, 31, 23, 59, 55))
    assert (march.daily.sessions_used, march.monthly.sessions_used) == (0, 0)
    april = await policy.remaining(G1, USER, now=utc(2026, 4, 1, 12))
    assert (april.daily.sessions_used, april.monthly.sessions_used) == (0, 0)  # not -1: no extra start
    assert april.sessions_left == 5


async def test_a_session_recovered_after_a_crash_is_charged_when_it_last_streamed(
    policy: QuotaPolicy, store: Store
):
    session_id = await _session(store)
    await policy.reserve(session_id, G1, USER, now=utc(2026, 3, 9, 23, 50))
    await store.sessions.heartbeat(session_id, 100.0, at=utc(2026, 3, 9, 23, 58))
    # The bot restarts the next day (the store's clock: 2026-03-10 12:00) and settles from the heartbeat.
    [interrupted] = await store.sessions.interrupt_unfinished()
    charge = await policy.settle(session_id, interrupted.session.streamed_seconds)
    assert charge is not None and charge.at == utc(2026, 3, 9, 23, 58)
    crash_day = await policy.remaining(G1, USER, now=utc(2026, 3, 9, 23, 59))
    assert crash_day.daily.seconds_used == 100.0
    restart_day = await policy.remaining(G1, USER, now=utc(2026, 3, 10, 12))
    assert restart_day.daily.seconds_used == 0.0 and restart_day.monthly.seconds_used == 100.0


async def test_exactly_the_minimum_start_left_is_allowed(policy: QuotaPolicy, store: Store):
    now = utc(2026, 3, 10, 12)
    await _use(policy, store, 295.0, now)
    reservation = await policy.reserve(await _session(store), G1, USER, now=now)
    assert reservation.seconds_allowed == 5.0


async def test_a_zero_allowance_is_not_called_used_up(policy: QuotaPolicy, store: Store):
    await store.quotas.set_role(G1, 10, QuotaLimits(daily_sessions=0), moderator_id=MOD)
    with pytest.raises(QuotaExceeded) as refused:
        await policy.reserve(await _session(store), G1, USER, [10], now=utc(2026, 3, 10, 12))
    assert refused.value.reason == "quota_daily_sessions"
    assert "used" not in refused.value.message and "resets" not in refused.value.message
    assert "no daily try-on sessions" in refused.value.message
