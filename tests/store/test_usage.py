"""The usage ledger: exactly-once settlement, adjustments, window sums, reports, and `forget`."""

from __future__ import annotations

import datetime as dt

import pytest

from bot.store import SettlementError, Store

G1, G2 = 111, 222
MOD = 9


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> float:
    return dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.UTC).timestamp()


async def _started(store: Store, user_id: int = 3, guild_id: int = G1) -> str:
    session = await store.sessions.create(guild_id=guild_id, channel_id=2, user_id=user_id)
    await store.usage.open_session(guild_id=guild_id, user_id=user_id, session_id=session.id)
    return session.id


async def test_charge_is_exactly_once(store: Store):
    session_id = await _started(store)
    again = await store.usage.open_session(guild_id=G1, user_id=3, session_id=session_id)
    assert again.sessions == 1
    first = await store.usage.charge(session_id, 42.5)
    repeat = await store.usage.charge(session_id, 99.0)
    assert repeat == first and first.seconds == 42.5
    assert await store.usage.refund(session_id) is None  # charged sessions are not refunded
    kinds = [(e.kind, e.seconds, e.sessions) for e in await store.usage.for_session(session_id)]
    assert kinds == [("session", 0.0, 1), ("charge", 42.5, 0)]


async def test_refund_gives_the_session_back_once(store: Store, clock):
    session_id = await _started(store)
    refund = await store.usage.refund(session_id)
    assert refund is not None and refund.sessions == -1
    assert await store.usage.refund(session_id) == refund
    with pytest.raises(SettlementError, match="refunded"):
        await store.usage.charge(session_id, 1.0)
    totals = await store.usage.totals(G1, 3, since=0, until=clock.now + 1)
    assert (totals.seconds, totals.sessions) == (0.0, 0)


async def test_settling_an_unknown_session_fails(store: Store):
    with pytest.raises(SettlementError, match="no start"):
        await store.usage.charge("unknown", 1.0)
    with pytest.raises(ValueError):
        await store.usage.charge(await _started(store), -1.0)


async def test_window_sums_are_half_open_and_per_guild(store: Store, clock):
    clock.now = utc(2026, 3, 1, 0, 0, 0)
    first = await _started(store)
    await store.usage.charge(first, 10.0)
    clock.now = utc(2026, 3, 1, 23, 59, 59)
    second = await _started(store)
    await store.usage.charge(second, 20.0)
    other = await _started(store, guild_id=G2)
    await store.usage.charge(other, 500.0)
    day = await store.usage.totals(G1, 3, since=utc(2026, 3, 1), until=utc(2026, 3, 2))
    assert (day.seconds, day.sessions) == (30.0, 2)
    next_day = await store.usage.totals(G1, 3, since=utc(2026, 3, 2), until=utc(2026, 3, 3))
    assert (next_day.seconds, next_day.sessions) == (0.0, 0)


async def test_adjust_is_audited(store: Store, clock):
    entry, audit = await store.usage.adjust(
        guild_id=G1, user_id=3, seconds=-30.0, moderator_id=MOD, note="oops"
    )
    assert (entry.kind, entry.seconds, entry.actor_id) == ("adjust", -30.0, MOD)
    assert (audit.action, audit.target_user_id, audit.details["seconds"]) == ("usage_adjust", 3, -30.0)
    totals = await store.usage.totals(G1, 3, since=0, until=clock.now + 1)
    assert totals.seconds == -30.0


async def test_unsettled_seconds_follow_heartbeats(store: Store):
    session_id = await _started(store)
    assert await store.usage.unsettled_seconds(G1, 3) == 0.0
    await store.sessions.heartbeat(session_id, 12.0)
    assert await store.usage.unsettled_seconds(G1, 3) == 12.0
    assert await store.usage.unsettled_seconds(G2, 3) == 0.0
    await store.usage.charge(session_id, 12.0)
    assert await store.usage.unsettled_seconds(G1, 3) == 0.0


async def test_unsettled_sessions_are_listed_until_charged_or_refunded(store: Store):
    charged, refunded, open_one, forgotten = [await _started(store, user_id) for user_id in (3, 4, 5, 6)]
    await store.usage.charge(charged, 10.0)
    await store.usage.refund(refunded)
    await store.sessions.set_state(forgotten, "failed")
    await store.forget(6)  # its ledger rows stay, without their session link
    assert await store.usage.unsettled_session_ids() == [open_one]


async def test_report(store: Store, clock):
    clock.now = utc(2026, 3, 1, 12)
    for user, seconds in ((3, 10.0), (4, 50.0), (3, 15.0)):
        await store.usage.charge(await _started(store, user_id=user), seconds)
    clock.now = utc(2026, 3, 2, 12)
    await store.usage.charge(await _started(store, user_id=5), 5.0)
    await store.usage.charge(await _started(store, user_id=6, guild_id=G2), 999.0)
    report = await store.usage.report(G1, since=utc(2026, 3, 1), until=utc(2026, 4, 1), top=2)
    assert (report.totals.seconds, report.totals.sessions) == (80.0, 4)
    assert [(m.user_id, m.seconds, m.sessions) for m in report.top_members] == [(4, 50.0, 1), (3, 25.0, 2)]
    assert [(d.day, d.seconds, d.sessions) for d in report.by_day] == [
        ("2026-03-01", 75.0, 3),
        ("2026-03-02", 5.0, 1),
    ]


async def test_forget_deletes_own_data_keeps_what_quotas_need(store: Store, clock):
    clock.now = utc(2026, 2, 20)
    old = await _started(store)
    await store.usage.charge(old, 100.0)
    await store.sessions.set_state(old, "done")
    clock.now = utc(2026, 3, 5)
    recent = await _started(store)
    await store.streams.start(recent)
    await store.prompts.add(recent, "red coat", status="applied")
    await store.usage.charge(recent, 40.0)
    await store.sessions.set_state(recent, "done")
    live = await _started(store)
    await store.sessions.set_state(live, "streaming")
    someone_else = await _started(store, user_id=4)
    await store.audit.record(
        G1, "prompt_refused", actor_id=3, target_user_id=3, details={"prompt": "x", "r": 1}
    )
    await store.blocks.block(G1, 3, moderator_id=MOD, reason="spam")

    result = await store.forget(3)

    assert (result.sessions_deleted, result.live_sessions_kept) == (2, 1)
    assert (result.ledger_rows_deleted, result.ledger_rows_anonymised) == (2, 2)
    assert result.audit_rows_redacted == 1
    assert await store.sessions.get(recent) is None and await store.sessions.get(old) is None
    assert await store.streams.for_session(recent) == [] and await store.prompts.for_session(recent) == []
    assert await store.sessions.get(live) is not None and await store.sessions.get(someone_else) is not None
    month = await store.usage.totals(G1, 3, since=utc(2026, 3, 1), until=utc(2026, 4, 1))
    assert (month.seconds, month.sessions) == (40.0, 2)  # quota still enforced after forgetting
    refused = (await store.audit.list(G1, action="prompt_refused"))[0]
    assert refused.details == {"r": 1, "redacted": 1}
    assert await store.blocks.get(G1, 3) is not None
    assert await store.integrity_check() == "ok"


async def test_settlement_and_quota_lookups_use_indexes(store: Store, clock):
    """Every ledger query of a session's life is an index search, never a scan of the whole ledger.

    The ledger holds every guild's history; a scan per settlement (or per session of the member, for the
    seconds still in flight) would slow every quota check as the bot ages.
    """
    refunded = await _started(store)
    await store.usage.refund(refunded)
    statements: list[str] = []
    await store.db._conn.set_trace_callback(statements.append)
    session_id = await _started(store)
    await store.sessions.heartbeat(session_id, 5.0)
    await store.usage.unsettled_seconds(G1, 3)
    await store.usage.charge(session_id, 5.0)
    await store.usage.refund(session_id)
    await store.usage.for_session(session_id)
    await store.usage.totals(G1, 3, since=0, until=clock.now + 1)
    # sqlite3 takes None to stop tracing; aiosqlite's annotation leaves it out.
    await store.db._conn.set_trace_callback(None)  # type: ignore[arg-type]

    queries = [sql for sql in statements if sql.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE"))]
    assert any("NOT EXISTS" in sql for sql in queries) and any("kind = 'charge'" in sql for sql in queries)
    for sql in queries:
        plan = [row["detail"] for row in await store.db.fetch_all(f"EXPLAIN QUERY PLAN {sql}")]
        assert not [step for step in plan if step.startswith("SCAN")], (sql, plan)
