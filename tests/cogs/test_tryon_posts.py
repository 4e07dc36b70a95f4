"""Members in charge of what the bot posted: Delete, `/tryon forget` removing posts, `/tryon settings`.

Through the real bot, the fake Discord (bodies checked against Discord's OpenAPI description) and the
emulator; posts are recorded in a real SQLite file as the bot makes them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bot.app import TryOnBot
from bot.config import BotConfig
from bot.emulator import Emulator
from tests.fakediscord import BotDriver, Delivered, FakeDiscord, FakeMessage
from tests.fakediscord import payloads as p
from tests.helpers import (
    make_bot_config,
    photo_option,
    session_id_of,
    start_streaming,
    user_id,
    wait_status,
)

Ctx = Callable[..., p.InteractionContext]

pytestmark = pytest.mark.timeout(150)


@pytest.fixture
def bot_config(tmp_path: Path, emulator: Emulator) -> BotConfig:
    return make_bot_config(tmp_path, emulator.url)


async def finished_try_on(
    driver: BotDriver, member: p.InteractionContext, outfit: str
) -> tuple[Delivered, str, FakeMessage]:
    """A public try-on run to its end: the start, the session id and its final (recording) post."""
    fake = driver.fake
    start, status = await start_streaming(driver, member, outfit)
    await fake.wait_for(lambda: any(m.attachments for m in fake.messages_for(start.token)), 40)
    await driver.command(member, "tryon stop").reply()
    await wait_status(fake, start.token, "Done after", within=40)
    final = await fake.wait_for(
        lambda: next((m for m in fake.messages_for(start.token) if "[video](" in m.text), None), 40
    )
    return start, session_id_of(status), final


def removed(count: int) -> str:
    """How the answer counts removed posts."""
    return f"Removed {count} of the bot's post{'s' if count != 1 else ''}"


def public_posts(fake: FakeDiscord, start: Delivered) -> list[FakeMessage]:
    """The try-on's messages everyone can see (its status, clips, final post)."""
    return [m for m in fake.messages_for(start.token) if not m.ephemeral]


async def test_delete_removes_a_try_ons_posts_reports_gone_and_refused_ones_and_is_audited(
    driver: BotDriver, world: p.GuildWorld, as_member: Ctx, bot: TryOnBot, fake_discord: FakeDiscord
) -> None:
    alice, bob, mod = as_member("alice"), as_member("bob"), as_member("mod", moderator=True)
    store = bot.runtime.store
    start, session_id, final = await finished_try_on(driver, alice, "a corduroy blazer")
    posts = public_posts(fake_discord, start)
    assert len(posts) >= 3  # status, at least one clip, the final post
    recorded = await store.posts.for_session(world.guild_id, session_id)
    assert {r.message_id for r in recorded} == {m.id for m in posts}
    delete_id = f"tryon:delete:{session_id}"
    status = next(m for m in posts if m.embeds and m.embeds[0].get("title") == "Try-on")
    assert delete_id in final.custom_ids() and status.custom_ids() == [delete_id]

    refused = await driver.press(bob, final, delete_id).reply()
    assert refused.ephemeral and "Only the member who started" in refused.content
    assert all(not m.deleted for m in posts)

    clip = next(m for m in posts if m.attachments and m is not final)
    fake_discord.delete_message(clip.id)  # a moderator removed it by hand: 404 from now on
    locked = fake_discord.fail("DELETE", rf"/messages/{status.id}$", status=403, code=50001, times=None)
    answer = await driver.press(alice, final, delete_id).reply(within=30)
    assert answer.ephemeral
    assert f"{removed(len(posts) - 2)} (1 already gone)." in answer.content
    assert "Could not remove 1" in answer.content and str(status.id) in answer.content
    assert [m.id for m in posts if not m.deleted] == [status.id]
    assert [r.message_id for r in await store.posts.for_session(world.guild_id, session_id)] == [status.id]

    # Once the bot may again, a moderator's Delete removes what was left, and the mod-log hears of it.
    locked.lift()
    again = await driver.press(mod, status, delete_id).reply(within=30)
    assert f"{removed(1)}." in again.content
    assert status.deleted and await store.posts.for_session(world.guild_id, session_id) == []
    entries = await store.audit.list(world.guild_id, action="posts_deleted")
    assert entries[0].actor_id == user_id(mod) and entries[0].target_user_id == user_id(alice)


async def test_forget_removes_the_members_reachable_posts_and_says_what_it_could_not(
    driver: BotDriver, world: p.GuildWorld, as_member: Ctx, bot: TryOnBot, fake_discord: FakeDiscord
) -> None:
    alice, bob = as_member("alice"), as_member("bob")
    store = bot.runtime.store
    start, session_id, final = await finished_try_on(driver, alice, "a quilted vest")
    posts = public_posts(fake_discord, start)
    fake_discord.delete_message(final.id)  # already gone: counted, not an error
    status = next(m for m in posts if m.embeds and m.embeds[0].get("title") == "Try-on")
    fake_discord.fail("DELETE", rf"/messages/{status.id}$", status=403, code=50013, times=None)
    await store.posts.add(  # bob's post stays whatever alice forgets
        message_id=p.snowflake(), channel_id=int(world.channel["id"]), guild_id=world.guild_id,
        session_id="bobs", user_id=user_id(bob),
    )  # fmt: skip

    ask = await driver.command(alice, "tryon forget").reply()
    assert "the bot's posts" in ask.content
    await driver.view_attached(ask)
    confirm = driver.press(alice, ask, "tryon:forget:yes")
    assert (await confirm.response()).json["type"] == 6  # acknowledged at once; the answer follows
    await fake_discord.wait_for(lambda: "Deleted" in ask.content, 30)
    assert "Deleted 1 try-on session(s)" in ask.content and ask.components == []
    assert f"{removed(len(posts) - 2)} (1 already gone)." in ask.content
    assert "Could not remove 1" in ask.content and str(status.id) in ask.content
    assert [m.id for m in posts if not m.deleted] == [status.id]
    assert await store.sessions.get(session_id) is None
    # The post it could not remove stays on record, so a later forget can try again; bob's is untouched.
    assert [r.message_id for r in await store.posts.for_member(user_id(alice))] == [status.id]
    assert len(await store.posts.for_member(user_id(bob))) == 1


async def test_member_settings_survive_a_restart_and_shape_new_try_ons(
    driver: BotDriver,
    world: p.GuildWorld,
    as_member: Ctx,
    bot: TryOnBot,
    fake_discord: FakeDiscord,
    bot_config: BotConfig,
) -> None:
    alice = as_member("alice")
    empty = await driver.command(alice, "tryon settings").reply()
    assert empty.ephemeral and "**Private:** default (public)" in empty.content
    saved = await driver.command(
        alice, "tryon settings", private=True, orientation="landscape", snippets=False
    ).reply()
    assert "Saved" in saved.content and "**Clips after each outfit:** off" in saved.content
    await bot.close()

    restarted = TryOnBot(bot_config)  # the same SQLite file
    try:
        again = BotDriver(fake_discord, restarted)
        await again.login()
        again.add_guild(world)
        shown = await again.command(alice, "tryon settings").reply()
        assert "**Private:** yes" in shown.content and "**Orientation:** landscape" in shown.content
        start = again.command(alice, "tryon start", photo=photo_option(fake_discord), outfit="a rain cape")
        status = await wait_status(fake_discord, start.token, "Streaming live")
        assert status.ephemeral and status.components  # private: only she sees it
        record = await restarted.runtime.store.sessions.get(session_id_of(status))
        assert record is not None and record.orientation == "landscape"
        applied = await again.command(alice, "tryon outfit", prompt="a yellow sou'wester").reply(within=40)
        assert applied.content == "New outfit applied."
        await again.command(alice, "tryon stop").reply()
        await wait_status(fake_discord, start.token, "Done after", within=40)
        assert not any(f.filename.endswith(".gif") for r in fake_discord.requests for f in r.files)
        # Private messages are the member's alone: nothing to record, no Delete to offer.
        assert await restarted.runtime.store.posts.for_member(user_id(alice)) == []
        done = await wait_status(fake_discord, start.token, "Done after")
        assert done.components == []
    finally:
        await restarted.close()
