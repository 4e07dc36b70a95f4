"""The store's parts for members and moderators: notices, posts, member settings, on a real SQLite file."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.store import MemberSettings, Store
from tests.store.conftest import FakeClock

GUILD = 111


async def test_a_notice_is_claimed_once_and_survives_a_reopen(store: Store, tmp_path: Path) -> None:
    assert await store.notices.claim(GUILD, "help")
    assert not await store.notices.claim(GUILD, "help")
    assert await store.notices.claim(GUILD + 1, "help")  # per guild
    assert await store.notices.claim(GUILD, "other")  # per kind
    async with await Store.open(store.path) as reopened:
        assert not await reopened.notices.claim(GUILD, "help")


async def test_a_windowed_notice_is_due_again_only_after_its_window(store: Store, clock: FakeClock) -> None:
    assert await store.notices.claim(0, "account:suspended", every_seconds=3600)
    first = clock.now
    clock.now += 3599
    assert not await store.notices.claim(0, "account:suspended", every_seconds=3600)
    assert await store.notices.sent_at(0, "account:suspended") == first
    clock.now += 1
    assert await store.notices.claim(0, "account:suspended", every_seconds=3600)
    assert await store.notices.sent_at(0, "account:suspended") == clock.now
    with pytest.raises(ValueError):
        await store.notices.claim(0, "x", every_seconds=0)


async def test_posts_are_listed_per_session_and_member_and_removed(store: Store) -> None:
    for message_id, session_id, user_id, guild_id in (
        (1, "s1", 10, GUILD),
        (2, "s1", 10, GUILD),
        (3, "s2", 10, GUILD + 1),
        (4, "s3", 20, GUILD),
    ):
        await store.posts.add(
            message_id=message_id, channel_id=500, guild_id=guild_id, session_id=session_id, user_id=user_id
        )
    await store.posts.add(message_id=1, channel_id=500, guild_id=GUILD, session_id="s1", user_id=10)
    assert [p.message_id for p in await store.posts.for_session(GUILD, "s1")] == [1, 2]
    assert await store.posts.for_session(GUILD + 1, "s1") == []  # read per guild
    assert [p.message_id for p in await store.posts.for_member(10)] == [1, 2, 3]  # every guild
    assert [p.message_id for p in await store.posts.for_member(10, except_sessions={"s1"})] == [3]
    assert await store.posts.remove([1, 3, 99]) == 2
    assert [p.message_id for p in await store.posts.for_member(10)] == [2]
    assert await store.posts.remove([]) == 0


async def test_member_settings_change_one_at_a_time_survive_a_reopen_and_are_forgotten(
    store: Store,
) -> None:
    assert await store.members.get(10) == MemberSettings(user_id=10)
    await store.members.update(10, private=True)
    both = await store.members.update(10, orientation="landscape", snippets=False)
    assert both == MemberSettings(user_id=10, private=True, orientation="landscape", snippets=False)
    with pytest.raises(ValueError):
        await store.members.update(10, orientation="sideways")
    async with await Store.open(store.path) as reopened:
        assert await reopened.members.get(10) == both
        assert (await reopened.forget(10)).member_settings_deleted == 1
        assert await reopened.members.get(10) == MemberSettings(user_id=10)


async def test_guild_settings_update_checks_audits_only_changes_and_survive_a_reopen(store: Store) -> None:
    entry = await store.guilds.update(
        GUILD,
        {"photo_retention_hours": 0, "paused": True, "pause_message": "  see   #news  "},
        moderator_id=7,
    )
    assert entry is not None and entry.action == "guild_settings_set"
    assert entry.details == {"photo_retention_hours": 0.0, "paused": True, "pause_message": "see #news"}
    assert await store.guilds.update(GUILD, {"paused": True}, moderator_id=7) is None  # nothing changed
    for bad in ({"queue_cap": -1}, {"idle_timeout_seconds": 5}, {"paused": "yes"}, {"pause_message": ""}):
        with pytest.raises(ValueError):
            await store.guilds.update(GUILD, bad, moderator_id=7)
    with pytest.raises(ValueError, match="not a server setting"):
        await store.guilds.update(GUILD, {"mod_log_channel_id": 1}, moderator_id=7)
    async with await Store.open(store.path) as reopened:
        settings = await reopened.guilds.get(GUILD)
        assert settings.paused is True and settings.pause_message == "see #news"
        assert settings.photo_retention_hours == 0 and settings.photo_retention == 0
        assert (await reopened.guilds.get(GUILD + 1)).photo_retention == 24  # the default
        await reopened.guilds.update(GUILD, {"paused": None}, moderator_id=7)
        assert (await reopened.guilds.get(GUILD)).paused is None
