"""Repositories on a real SQLite file: guild rules, overrides, blocks, sessions, streams, prompts, audit."""

from __future__ import annotations

import re

import pytest

from bot.store import QuotaLimits, Store

G1, G2 = 111, 222
MOD = 9


async def test_guild_settings_default_then_set_and_audited(store: Store, clock):
    fresh = await store.guilds.get(G1)
    assert fresh.default_limits.is_empty() and fresh.queue_cap is None
    entry = await store.guilds.set_default_limits(G1, QuotaLimits(daily_seconds=300), moderator_id=MOD)
    await store.guilds.set_queue_cap(G1, 4, moderator_id=MOD)
    await store.guilds.set_idle_timeout(G1, 45.0, moderator_id=MOD)
    clock.now += 10
    await store.guilds.set_mod_log_channel(G1, 555, moderator_id=MOD)
    settings = await store.guilds.get(G1)
    assert settings.default_limits == QuotaLimits(daily_seconds=300)
    assert (settings.queue_cap, settings.idle_timeout_seconds, settings.mod_log_channel_id) == (4, 45.0, 555)
    assert settings.updated_at == clock.now
    assert entry.action == "guild_quota_set" and entry.details["daily_seconds"] == 300
    actions = [e.action for e in await store.audit.list(G1)]
    assert actions == ["mod_log_set", "idle_timeout_set", "queue_cap_set", "guild_quota_set"]
    assert (await store.guilds.get(G2)).queue_cap is None
    with pytest.raises(ValueError):
        await store.guilds.set_queue_cap(G1, -1, moderator_id=MOD)


async def test_channel_allowlist(store: Store):
    assert await store.guilds.is_channel_allowed(G1, 5)  # empty list: everywhere
    assert await store.guilds.allow_channel(G1, 7, moderator_id=MOD) is not None
    assert await store.guilds.allow_channel(G1, 7, moderator_id=MOD) is None  # no change, no audit
    assert await store.guilds.is_channel_allowed(G1, 7)
    assert not await store.guilds.is_channel_allowed(G1, 5)
    assert await store.guilds.is_channel_allowed(G2, 5)  # other guild unaffected
    assert await store.guilds.allowed_channels(G1) == {7}
    assert await store.guilds.disallow_channel(G1, 7, moderator_id=MOD) is not None
    assert await store.guilds.disallow_channel(G1, 7, moderator_id=MOD) is None
    assert await store.guilds.is_channel_allowed(G1, 5)


async def test_blocked_words_per_guild(store: Store):
    await store.guilds.add_blocked_word(G1, "latex", moderator_id=MOD)
    await store.guilds.add_blocked_word(G1, "armor", moderator_id=MOD)
    assert await store.guilds.add_blocked_word(G1, "latex", moderator_id=MOD) is None
    assert await store.guilds.blocked_words(G1) == ["armor", "latex"]
    assert await store.guilds.blocked_words(G2) == []
    assert await store.guilds.remove_blocked_word(G2, "latex", moderator_id=MOD) is None
    removed = await store.guilds.remove_blocked_word(G1, "latex", moderator_id=MOD)
    assert removed is not None and removed.target == "latex"
    assert await store.guilds.blocked_words(G1) == ["armor"]


async def test_quota_overrides(store: Store):
    await store.quotas.set_user(G1, 5, QuotaLimits(daily_seconds=60), moderator_id=MOD)
    await store.quotas.set_role(G1, 70, QuotaLimits(monthly_sessions=3), moderator_id=MOD)
    await store.quotas.set_role(G1, 71, QuotaLimits(daily_sessions=9), moderator_id=MOD)
    await store.quotas.set_role(G2, 70, QuotaLimits(daily_sessions=1), moderator_id=MOD)
    user = await store.quotas.get_user(G1, 5)
    assert user is not None and user.limits == QuotaLimits(daily_seconds=60) and user.set_by == MOD
    assert await store.quotas.get_user(G2, 5) is None
    roles = await store.quotas.for_roles(G1, [70, 71, 72])
    assert [(r.subject_id, r.limits) for r in roles] == [
        (70, QuotaLimits(monthly_sessions=3)),
        (71, QuotaLimits(daily_sessions=9)),
    ]
    assert await store.quotas.for_roles(G1, []) == []
    await store.quotas.set_user(G1, 5, QuotaLimits(daily_seconds=120), moderator_id=MOD)  # replace
    assert (await store.quotas.get_user(G1, 5)).limits.daily_seconds == 120  # type: ignore[union-attr]
    assert len(await store.quotas.list(G1)) == 3
    assert await store.quotas.clear_role(G1, 70, moderator_id=MOD) is not None
    assert await store.quotas.clear_role(G1, 70, moderator_id=MOD) is None
    assert await store.quotas.get_role(G2, 70) is not None
    with pytest.raises(ValueError):
        await store.quotas.set_user(G1, 5, QuotaLimits(daily_seconds=-1), moderator_id=MOD)
    audit = await store.audit.list(G1, target_user_id=5)
    assert [e.action for e in audit] == ["quota_user_set", "quota_user_set"]


async def test_blocks_with_expiry_and_scope(store: Store, clock):
    await store.blocks.block(G1, 5, moderator_id=MOD, reason="spam")
    await store.blocks.block(G1, 6, moderator_id=MOD, expires_at=clock.now + 60)
    block = await store.blocks.get(G1, 5)
    assert block is not None and (block.reason, block.moderator_id) == ("spam", MOD)
    assert await store.blocks.get(G2, 5) is None
    assert await store.blocks.get(G1, 6) is not None
    clock.now += 61
    assert await store.blocks.get(G1, 6) is None
    assert [b.user_id for b in await store.blocks.list(G1)] == [5]
    assert await store.blocks.unblock(G1, 5, moderator_id=MOD) is not None
    assert await store.blocks.unblock(G1, 5, moderator_id=MOD) is None
    assert await store.blocks.get(G1, 5) is None
    audit = await store.audit.list(G1, target_user_id=5)
    assert [e.action for e in audit] == ["unblock", "block"]
    assert audit[1].details["reason"] == "spam"


async def test_session_lifecycle_and_guild_scope(store: Store, clock):
    session = await store.sessions.create(guild_id=G1, channel_id=2, user_id=3, front_end={"message_id": 44})
    assert re.fullmatch(r"[A-Za-z0-9_-]{11}", session.id)
    assert await store.sessions.get(session.id) == session
    assert await store.sessions.find(G1, session.id) == session
    assert await store.sessions.find(G2, session.id) is None
    clock.now += 5
    assert await store.sessions.set_state(session.id, "streaming")
    await store.sessions.set_photo(session.id, photo_sha256="ab" * 32, orientation="portrait")
    await store.sessions.set_front_end(session.id, {"message_id": 45, "token": "t"})
    clock.now += 5
    assert await store.sessions.set_state(session.id, "failed", error="boom", error_reason="platform")
    done = await store.sessions.get(session.id)
    assert done is not None
    assert (done.state, done.ended_at, done.error, done.error_reason) == (
        "failed",
        clock.now,
        "boom",
        "platform",
    )
    assert done.front_end == {"message_id": 45, "token": "t"}
    assert (done.photo_sha256, done.orientation) == ("ab" * 32, "portrait")
    assert not await store.sessions.set_state("nope", "done")


async def test_heartbeat_never_decreases_and_updates_open_stream(store: Store, clock):
    session = await store.sessions.create(guild_id=G1, channel_id=2, user_id=3, state="streaming")
    first = await store.streams.start(session.id, odyssey_stream_id="s-1", prompt="red coat")
    await store.streams.end(first.id, seconds=150.0, reason="cap")
    second = await store.streams.start(session.id, prompt="red coat")
    await store.streams.set_odyssey_id(second.id, "s-2")
    await store.sessions.heartbeat(session.id, 152.0, stream_seconds=2.0)
    clock.now += 2
    await store.sessions.heartbeat(session.id, 151.0, stream_seconds=1.0)  # late, out-of-order beat
    record = await store.sessions.get(session.id)
    assert record is not None and record.streamed_seconds == 152.0 and record.heartbeat_at == clock.now
    streams = await store.streams.for_session(session.id)
    assert [(s.index, s.odyssey_stream_id, s.seconds) for s in streams] == [
        (0, "s-1", 150.0),
        (1, "s-2", 2.0),
    ]
    assert not await store.streams.end(first.id, seconds=1.0)  # already closed
    found = await store.streams.by_odyssey_id("s-2")
    assert found is not None and found.id == second.id


async def test_events_applied_is_kept_never_lowered_and_survives_a_reopen(tmp_path):
    path = tmp_path / "bot.db"
    async with await Store.open(path) as store:
        session = await store.sessions.create(guild_id=G1, channel_id=2, user_id=3, state="streaming")
        assert session.events_applied == 0
        await store.sessions.mark_events_applied(session.id, 7)
        await store.sessions.mark_events_applied(session.id, 5)  # a late write from before
    async with await Store.open(path) as reopened:  # the bot restarted
        [unfinished] = await reopened.sessions.unfinished()
        assert unfinished.id == session.id and unfinished.events_applied == 7


async def test_prompts(store: Store, clock):
    session = await store.sessions.create(guild_id=G1, channel_id=2, user_id=3)
    first = await store.prompts.add(session.id, "red coat")
    clock.now += 1
    await store.prompts.add(session.id, "bad words", status="refused", refusal_reason="blocked_word")
    clock.now += 1
    second = await store.prompts.add(session.id, "blue suit")
    assert await store.prompts.latest_applied(session.id) is None
    await store.prompts.set_status(first.id, "applied")
    latest = await store.prompts.latest_applied(session.id)
    assert latest is not None and latest.text == "red coat"
    await store.prompts.set_status(second.id, "applied")
    assert (await store.prompts.latest_applied(session.id)).text == "blue suit"  # type: ignore[union-attr]
    statuses = [(p.text, p.status) for p in await store.prompts.for_session(session.id)]
    assert statuses == [("red coat", "applied"), ("bad words", "refused"), ("blue suit", "applied")]
    with pytest.raises(ValueError):
        await store.prompts.add(session.id, "x", status="maybe")


async def test_history_live_and_foreign_keys(store: Store, clock):
    ids = []
    for _ in range(3):
        clock.now += 1
        ids.append((await store.sessions.create(guild_id=G1, channel_id=2, user_id=3)).id)
    await store.sessions.create(guild_id=G2, channel_id=2, user_id=3)
    await store.sessions.set_state(ids[0], "done")
    await store.sessions.set_state(ids[1], "streaming")
    page = await store.sessions.history(G1, 3, limit=2)
    assert [s.id for s in page] == [ids[2], ids[1]]
    assert [s.id for s in await store.sessions.history(G1, 3, limit=2, offset=2)] == [ids[0]]
    assert await store.sessions.count_for_user(G1, 3) == 3
    assert [s.id for s in await store.sessions.live(G1)] == [ids[1], ids[2]]
    assert len(await store.sessions.unfinished_for_user(3)) == 3  # both guilds
    with pytest.raises(Exception, match="FOREIGN KEY"):
        await store.streams.start("no-such-session")


async def test_interrupt_unfinished_after_crash(store: Store, clock):
    queued = await store.sessions.create(guild_id=G1, channel_id=2, user_id=3)
    live = await store.sessions.create(guild_id=G1, channel_id=2, user_id=4, state="streaming")
    done = await store.sessions.create(guild_id=G2, channel_id=2, user_id=5, state="done")
    stream = await store.streams.start(live.id, odyssey_stream_id="s-1")
    clock.now += 30
    await store.sessions.heartbeat(live.id, 30.0, stream_seconds=30.0)
    beat = clock.now
    clock.now += 500  # the bot was down for a while
    interrupted = await store.sessions.interrupt_unfinished()
    by_id = {item.session.id: item for item in interrupted}
    assert set(by_id) == {queued.id, live.id}
    assert by_id[live.id].previous_state == "streaming" and by_id[queued.id].previous_state == "queued"
    assert by_id[live.id].session.state == "interrupted"
    assert by_id[live.id].session.ended_at == beat  # last moment we know it was alive
    assert by_id[queued.id].session.ended_at == clock.now
    assert by_id[live.id].session.streamed_seconds == 30.0
    closed = (await store.streams.for_session(live.id))[0]
    assert (closed.id, closed.ended_at, closed.seconds, closed.end_reason) == (
        stream.id,
        beat,
        30.0,
        "interrupted",
    )
    assert (await store.sessions.get(done.id)).state == "done"  # type: ignore[union-attr]
    assert await store.sessions.interrupt_unfinished() == []


async def test_audit_is_scoped_and_paged(store: Store, clock):
    for index in range(5):
        clock.now += 1
        await store.audit.record(G1, "prompt_refused", actor_id=3, target_user_id=3, details={"n": index})
    await store.audit.record(G2, "block", actor_id=MOD, target_user_id=3)
    first = await store.audit.list(G1, limit=2)
    assert [e.details["n"] for e in first] == [4, 3]
    second = await store.audit.list(G1, limit=2, before_id=first[-1].id)
    assert [e.details["n"] for e in second] == [2, 1]
    assert all(e.guild_id == G1 for e in await store.audit.list(G1, limit=100))
    assert [e.action for e in await store.audit.list(G2)] == ["block"]
    assert await store.audit.list(G1, action="block") == []


async def test_prompt_refused_is_audited_and_forgettable(store: Store):
    entry = await store.audit.prompt_refused(
        G1, 3, "a naked mannequin", reason="prompt_blocked_word", blocked_entry="naked", session_id="abc"
    )
    assert (entry.action, entry.actor_id, entry.target_user_id, entry.target) == (
        "prompt_refused",
        3,
        3,
        "abc",
    )
    assert entry.details == {
        "prompt": "a naked mannequin",
        "reason": "prompt_blocked_word",
        "blocked_entry": "naked",
    }
    assert (await store.forget(3)).audit_rows_redacted == 1
    (kept,) = await store.audit.list(G1)
    assert kept.details == {"reason": "prompt_blocked_word", "blocked_entry": "naked", "redacted": 1}


async def test_negative_guild_default_limits_are_refused(store: Store):
    with pytest.raises(ValueError, match="daily_sessions"):
        await store.guilds.set_default_limits(G1, QuotaLimits(daily_sessions=-1), moderator_id=MOD)
    assert (await store.guilds.get(G1)).default_limits.is_empty()
