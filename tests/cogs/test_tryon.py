"""`/tryon` through the real bot, the fake Discord and the emulator (real WebRTC on loopback, real SQLite)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bot.app import TryOnBot
from bot.config import BotConfig
from bot.emulator import Emulator
from bot.store import Store
from tests.fakediscord import BotDriver, FakeDiscord, FakeMessage
from tests.fakediscord import payloads as p
from tests.helpers import (
    make_bot_config,
    photo_option,
    session_id_of,
    start_streaming,
    status_message,
    stored_session,
    user_id,
    wait_status,
)

Ctx = Callable[..., p.InteractionContext]

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def bot_config(tmp_path: Path, emulator: Emulator) -> BotConfig:
    return make_bot_config(tmp_path, emulator.url)


async def test_commands_are_guild_only(bot: TryOnBot, fake_discord: FakeDiscord) -> None:
    await bot.tree.sync()
    tryon = next(c for c in fake_discord.synced_commands[None] if c["name"] == "tryon")
    assert tryon["contexts"] == [0] and tryon["integration_types"] == [0]
    assert "default_member_permissions" not in tryon or tryon["default_member_permissions"] is None
    names = {o["name"] for o in tryon["options"]}
    assert names == {
        "start",
        "outfit",
        "snapshot",
        "stop",
        "status",
        "quota",
        "history",
        "show",
        "forget",
        "help",
        "settings",
    }
    start = next(o for o in tryon["options"] if o["name"] == "start")
    orientation = next(o for o in start["options"] if o["name"] == "orientation")
    assert [c["value"] for c in orientation["choices"]] == ["portrait", "landscape"]


async def test_help_tells_what_the_bot_does_photo_limits_what_is_kept_and_forgetting(
    driver: BotDriver, as_member: Ctx
) -> None:
    shown = await driver.command(as_member("alice"), "tryon help").reply()
    assert shown.ephemeral and shown.embeds[0]["title"] == "How try-on works"
    text = shown.text
    for fact in ("One person", "Face and body visible", "Good light", "25 MiB", "256 px", "50 megapixels"):
        assert fact in text, fact
    assert "What is kept, and for how long" in text and "/tryon forget" in text


async def test_the_first_try_on_of_a_server_shows_the_guide_once_even_across_a_restart(
    driver: BotDriver,
    world: p.GuildWorld,
    as_member: Ctx,
    bot: TryOnBot,
    fake_discord: FakeDiscord,
    bot_config: BotConfig,
) -> None:
    alice = as_member("alice")
    first = driver.command(alice, "tryon start", photo=photo_option(fake_discord), outfit="a plaid kilt")
    await wait_status(fake_discord, first.token, "Streaming live")
    original = fake_discord.original_message(first.token)
    assert original is not None and original.ephemeral
    assert "first try-on in this server" in original.content
    assert original.embeds and original.embeds[0]["title"] == "How try-on works"
    await driver.command(alice, "tryon stop").reply()
    await wait_status(fake_discord, first.token, "Done after", within=40)
    await bot.close()

    restarted = TryOnBot(bot_config)  # the same SQLite file: the notice is on record
    try:
        again = BotDriver(fake_discord, restarted)
        await again.login()
        again.add_guild(world)
        bob = again.context(world, world.add_member("bob"))
        second = again.command(bob, "tryon start", photo=photo_option(fake_discord), outfit="a wax jacket")
        await wait_status(fake_discord, second.token, "Streaming live")
        original = fake_discord.original_message(second.token)
        assert original is not None and "is on its way" in original.content
        assert "first try-on" not in original.content and not original.embeds
        await again.command(bob, "tryon stop").reply()
        await wait_status(fake_discord, second.token, "Done after", within=40)
    finally:
        await restarted.close()


async def test_fast_refusals_answer_at_once_and_spend_nothing(
    driver: BotDriver, world: p.GuildWorld, as_member: Ctx, bot: TryOnBot, fake_discord: FakeDiscord
) -> None:
    alice = as_member("alice")
    not_image = driver.command(
        alice,
        "tryon start",
        photo=photo_option(fake_discord, b"%PDF-1.4", "application/pdf"),
        outfit="red coat",
    )
    callback = await not_image.response()
    assert callback.json["type"] == 4 and callback.json["data"]["flags"] == 64
    assert "Please attach a photo" in callback.json["data"]["content"]

    await bot.runtime.store.guilds.add_blocked_word(world.guild_id, "fur", moderator_id=None)
    await bot.runtime.store.guilds.set_mod_log_channel(
        world.guild_id, int(world.channels[1]["id"]), moderator_id=None
    )
    refused = driver.command(
        alice, "tryon start", photo=photo_option(fake_discord), outfit="a FUR coat @everyone"
    )
    reply = await refused.reply()
    assert reply.ephemeral and "a word this server doesn't allow" in reply.content
    entries = await bot.runtime.store.audit.list(world.guild_id, action="prompt_refused")
    assert entries and entries[0].details["prompt"] == "a FUR coat @everyone"
    logged = await fake_discord.wait_for(lambda: fake_discord.channel_messages(int(world.channels[1]["id"])))
    assert "had a prompt refused" in logged[0].content and "@\u200beveryone" in logged[0].content

    await bot.runtime.store.guilds.allow_channel(
        world.guild_id, int(world.channels[1]["id"]), moderator_id=None
    )
    wrong_channel = await driver.command(
        alice, "tryon start", photo=photo_option(fake_discord), outfit="red coat"
    ).reply()
    assert wrong_channel.ephemeral and "isn't enabled in this channel" in wrong_channel.content

    assert await bot.runtime.store.sessions.history(world.guild_id, user_id(alice)) == []


async def test_dm_start_is_refused(driver: BotDriver, fake_discord: FakeDiscord) -> None:
    sent = driver.command(driver.dm_context(p.user(name="dm")), "tryon start", outfit="red coat")
    reply = await sent.reply()
    assert reply.ephemeral and "only works inside a server" in reply.content


async def test_whole_try_on_through_discord(
    driver: BotDriver, world: p.GuildWorld, as_member: Ctx, bot: TryOnBot, fake_discord: FakeDiscord
) -> None:
    alice = as_member("alice")
    start = driver.command(
        alice, "tryon start", photo=photo_option(fake_discord), outfit="a red *summer* dress"
    )
    ack = await start.response()
    assert ack.json["type"] == 5 and ack.json["data"]["flags"] == 64  # private "thinking" within the 3 s
    assert ack.received_at - start.delivered_at < 3.0

    status = await wait_status(fake_discord, start.token, "Streaming live")
    assert not status.ephemeral
    session_id = session_id_of(status)
    assert status.custom_ids() == [
        f"tryon:outfit:{session_id}",
        f"tryon:snap:{session_id}",
        f"tryon:stop:{session_id}",
    ]
    assert "a red \\*summer\\* dress" in status.text
    original = fake_discord.original_message(start.token)
    assert original is not None and original.ephemeral and session_id in original.content

    first_clip = await fake_discord.wait_for(
        lambda: next((m for m in fake_discord.messages_for(start.token) if m.attachments), None), 40
    )
    assert first_clip.attachments[0]["filename"].endswith(".gif")
    upload = next(r for r in fake_discord.requests if r.files and r.files[0].filename.endswith(".gif"))
    assert (
        upload.files[0].data[:6] in (b"GIF87a", b"GIF89a") and len(upload.files[0].data) <= 10 * 1024 * 1024
    )

    # Someone else may not steer it.
    bob = as_member("bob")
    refused = await driver.press(bob, status, f"tryon:outfit:{session_id}").reply()
    assert refused.ephemeral and "Only the member who started" in refused.content

    # The owner opens the modal and sends a new outfit; a new clip follows.
    pressed = driver.press(alice, status, f"tryon:outfit:{session_id}")
    modal = await pressed.response()
    assert modal.json["type"] == 9
    modal_id = modal.json["data"]["custom_id"]
    await driver.modal_opened(modal_id)
    text_input = modal.json["data"]["components"][0]["components"][0]["custom_id"]
    applied = driver.submit(alice, modal_id, {text_input: "a blue denim jacket"})
    assert (await applied.reply(within=40)).content == "New outfit applied."
    await fake_discord.wait_for(
        lambda: any(
            "blue denim jacket" in m.content for m in fake_discord.messages_for(start.token) if m.attachments
        )
    )

    # Stop with the button; the status ends without buttons and the recording links follow.
    stopped = await driver.press(alice, status, f"tryon:stop:{session_id}").reply()
    assert stopped.ephemeral and "Ending" in stopped.content
    done = await wait_status(fake_discord, start.token, "Done after", within=40)
    assert done.custom_ids() == [f"tryon:delete:{session_id}"]  # only Delete is left
    final = await fake_discord.wait_for(
        lambda: next(
            (
                m
                for m in fake_discord.messages_for(start.token)
                if "recording" in m.text.lower()
                and m.embeds
                and m.embeds[0].get("title", "").startswith("Your try-on recording")
            ),
            None,
        ),
        40,
    )
    assert "[video](" in final.text and f"<@{alice.member['user']['id']}>" in final.content  # type: ignore[index]
    names = [a["filename"] for a in final.attachments]
    assert names == ["highlight.mp4", "thumbnail.jpg", "before-after.png"]
    assert final.embeds[0]["image"]["url"] == "attachment://before-after.png"
    assert final.custom_ids() == [
        f"tryon:again:{session_id}",
        f"tryon:full:{session_id}",
        f"tryon:delete:{session_id}",
    ]
    edits = fake_discord.requests_to("PATCH", rf"/messages/{status.id}$")
    assert all("allowed_mentions" in r.json for r in edits)

    # Links are re-issued on demand.
    shown = await driver.command(alice, "tryon show", id=session_id).reply(within=30)
    assert shown.ephemeral and "[video](" in shown.content

    history = await driver.command(alice, "tryon history").reply()
    assert session_id in history.content and "done" in history.content
    nosy = await driver.command(bob, "tryon show", id=session_id).reply()
    assert nosy.ephemeral and "No try-on of yours" in nosy.content

    # Nothing the bot sent could ping anyone.
    for request in fake_discord.requests:
        body = request.json if isinstance(request.json, dict) else {}
        message = body.get("data", body) if "/callback" in request.path else body
        if isinstance(message, dict) and ("content" in message or "embeds" in message):
            assert message.get("allowed_mentions") == {"parse": []}, request.route


async def test_status_shows_the_platform_queue_wait_while_it_lasts(
    driver: BotDriver,
    world: p.GuildWorld,
    as_member: Ctx,
    bot: TryOnBot,
    fake_discord: FakeDiscord,
    emulator: Emulator,
) -> None:
    emulator.faults.fail_503_times = 5  # every streamer busy: Odyssey answers 503 and the client waits
    alice = as_member("alice")
    start = driver.command(alice, "tryon start", photo=photo_option(fake_discord), outfit="a tweed cape")
    queued = await wait_status(fake_discord, start.token, "waiting in its queue")
    assert "so far" in queued.text and "Connecting" not in queued.text
    asked = await driver.command(alice, "tryon status").reply()
    assert "waiting in its queue" in asked.content
    # The wait grows while it lasts (the client asks again every second)...
    await wait_status(fake_discord, start.token, "(2 s so far)", "(3 s so far)")
    # ...and gives way to the stream once a streamer is free.
    streaming = await wait_status(fake_discord, start.token, "Streaming live")
    assert "queue" not in streaming.text
    await driver.command(alice, "tryon stop").reply()
    await wait_status(fake_discord, start.token, "Done after", within=40)


async def test_status_moves_to_the_channel_after_the_token_expires(
    driver: BotDriver, world: p.GuildWorld, as_member: Ctx, bot: TryOnBot, fake_discord: FakeDiscord
) -> None:
    alice = as_member("alice")
    start = driver.command(
        alice,
        "tryon start",
        photo=photo_option(fake_discord),
        outfit="green raincoat",
        orientation="landscape",
    )
    status = await wait_status(fake_discord, start.token, "Streaming live")
    session_id = session_id_of(status)
    landscape = await bot.runtime.store.sessions.get(session_id)
    assert landscape is not None and landscape.orientation == "landscape"
    fake_discord.expire_token(start.token)
    await driver.command(alice, "tryon stop").reply()
    await fake_discord.wait_for(
        lambda: any(
            r.path == f"/channels/{world.channel['id']}/messages/{status.id}"
            for r in fake_discord.requests_to("PATCH", ".")
        ),
        40,
    )
    await wait_status(fake_discord, start.token, "Done after", within=40)
    record = await bot.runtime.store.sessions.get(session_id)
    assert record is not None and record.front_end == {"private": False, "status_message_id": status.id}


async def test_private_session_and_one_at_a_time(
    driver: BotDriver, world: p.GuildWorld, as_member: Ctx, bot: TryOnBot, fake_discord: FakeDiscord
) -> None:
    alice = as_member("alice")
    start = driver.command(
        alice, "tryon start", photo=photo_option(fake_discord), outfit="yellow scarf", private=True
    )
    status = await wait_status(fake_discord, start.token, "Waiting")
    assert status.ephemeral
    again = await driver.command(alice, "tryon start", photo=photo_option(fake_discord), outfit="hat").reply()
    assert again.ephemeral and "already have a try-on running" in again.content
    state = await driver.command(alice, "tryon status").reply()
    assert "session `" in state.content
    await driver.command(alice, "tryon stop").reply()
    await wait_status(fake_discord, start.token, "Done after", "Cancelled", within=40)
    assert all(m.ephemeral for m in fake_discord.messages_for(start.token))


async def test_buttons_of_finished_sessions_read_sqlite(
    driver: BotDriver, world: p.GuildWorld, as_member: Ctx, bot: TryOnBot, fake_discord: FakeDiscord
) -> None:
    alice, bob = as_member("alice"), as_member("bob")
    alice_id = user_id(alice)
    record = await stored_session(
        bot.runtime.store, world.guild_id, alice_id, channel_id=int(world.channel["id"])
    )
    # A status message left from before a restart: only its buttons' custom ids carry the session.
    buttons = [f"tryon:stop:{record.id}", "tryon:stop:doesnotexist"]
    message = FakeMessage(
        id=p.snowflake(),
        channel_id=int(world.channel["id"]),
        author=fake_discord.bot_user,
        components=[p.button_row(*buttons)],
    )
    refused = await driver.press(bob, message, f"tryon:stop:{record.id}").reply()
    assert "Only the member who started" in refused.content
    finished = await driver.press(alice, message, f"tryon:stop:{record.id}").reply()
    assert finished.ephemeral and "already finished" in finished.content
    unknown = await driver.press(alice, message, "tryon:stop:doesnotexist").reply()
    assert "doesn't exist" in unknown.content


async def test_quota_history_and_forget(
    driver: BotDriver, world: p.GuildWorld, as_member: Ctx, bot: TryOnBot, fake_discord: FakeDiscord
) -> None:
    alice, bob = as_member("alice"), as_member("bob")
    alice_id = user_id(alice)
    quota = await driver.command(alice, "tryon quota").reply()
    assert "**Today:** 10 min left" in quota.content and "**This month:** 60 min left" in quota.content

    for _ in range(7):
        await stored_session(bot.runtime.store, world.guild_id, alice_id, state="cancelled")
    page = await driver.command(alice, "tryon history").reply()
    assert page.ephemeral and page.content.count("cancelled") == 5
    assert [c["custom_id"] for c in page.components[0]["components"]] == [
        "tryon:history:prev",
        "tryon:history:next",
    ]
    nothing = await driver.command(bob, "tryon history").reply()
    assert "no try-ons here yet" in nothing.content

    ask = await driver.command(alice, "tryon forget").reply()
    assert "Delete your stored try-ons" in ask.content
    await driver.view_attached(ask)
    intruder = await driver.press(bob, ask, "tryon:forget:yes").reply()
    assert "Only the member who opened this" in intruder.content
    assert len(await bot.runtime.store.sessions.history(world.guild_id, alice_id, limit=50)) == 7
    confirm = driver.press(alice, ask, "tryon:forget:yes")
    assert (await confirm.response()).json["type"] == 6  # acknowledged; the answer replaces the question
    await fake_discord.wait_for(lambda: "Deleted 7 try-on session(s)" in ask.content)
    assert ask.components == [] and "Removed 0 of the bot's posts." in ask.content
    assert await bot.runtime.store.sessions.history(world.guild_id, alice_id) == []


async def test_steering_commands_snapshot_and_moderator_stop(
    driver: BotDriver, world: p.GuildWorld, as_member: Ctx, bot: TryOnBot, fake_discord: FakeDiscord
) -> None:
    alice, mod = as_member("alice"), as_member("mod", moderator=True)
    start, status = await start_streaming(driver, alice, "white linen suit")
    session_id = session_id_of(status)

    applied = await driver.command(alice, "tryon outfit", prompt="black velvet blazer").reply(within=40)
    assert applied.ephemeral and applied.content == "New outfit applied."
    snap = await driver.command(alice, "tryon snapshot").reply(within=20)
    assert snap.ephemeral and snap.content == "Snapshot posted."
    await fake_discord.wait_for(
        lambda: any(
            a["filename"].endswith(".png")
            for m in fake_discord.messages_for(start.token)
            for a in m.attachments
        )
    )
    by_button = await driver.press(mod, status, f"tryon:snap:{session_id}").reply(within=20)
    assert by_button.content == "Snapshot posted."

    listed = await driver.command(mod, "tryonadmin sessions list").reply()
    assert session_id in listed.content and "black velvet blazer" in listed.content
    other = p.guild_world("other")
    driver.add_guild(other)
    outsider = driver.context(other, other.add_member("othermod", moderator=True))
    foreign = await driver.command(outsider, "tryonadmin sessions stop", session_id=session_id).reply()
    assert "doesn't exist" in foreign.content

    stopped = await driver.command(mod, "tryonadmin sessions stop", session_id=session_id).reply()
    assert "Stopping" in stopped.content
    await wait_status(fake_discord, start.token, "a moderator ended it", within=40)
    entries = await bot.runtime.store.audit.list(world.guild_id, action="session_stopped")
    assert entries[0].target == session_id and entries[0].actor_id == user_id(mod)
    gone = await driver.command(alice, "tryon status").reply()
    assert "no try-on running" in gone.content


async def test_restart_settles_interrupted_sessions_and_tells_the_channel(
    driver: BotDriver,
    world: p.GuildWorld,
    as_member: Ctx,
    bot: TryOnBot,
    fake_discord: FakeDiscord,
    bot_config: BotConfig,
) -> None:
    alice_id = user_id(as_member("alice"))
    channel_id = int(world.channel["id"])
    record = await stored_session(
        bot.runtime.store,
        world.guild_id,
        alice_id,
        channel_id=channel_id,
        front_end={"private": False, "status_message_id": None},
        state="streaming",
    )
    restarted = TryOnBot(bot_config)
    try:
        await BotDriver(fake_discord, restarted).login()  # cog_load recovers before any command runs
        stored = await restarted.runtime.store.sessions.get(record.id)
        assert stored is not None and stored.state == "interrupted"
        # The session's status (posted afresh: it had none) says so, then a notice for the member.
        notice = await fake_discord.wait_for(
            lambda: [m for m in fake_discord.channel_messages(channel_id) if m.content]
        )
        assert "interrupted by a restart" in notice[-1].content
        status = fake_discord.channel_messages(channel_id)[0]
        assert status.embeds and "Interrupted by a restart" in status.text
        assert status.custom_ids() == [f"tryon:delete:{record.id}"]
    finally:
        await restarted.close()


async def test_shutdown_ends_and_settles_live_sessions(
    driver: BotDriver, world: p.GuildWorld, as_member: Ctx, bot: TryOnBot, fake_discord: FakeDiscord
) -> None:
    alice = as_member("alice")
    start, status = await start_streaming(driver, alice, "orange puffer jacket")
    session_id = session_id_of(status)
    store = bot.runtime.store
    await bot.close()  # what SIGINT/SIGTERM lead to in `python -m bot run`
    final = status_message(fake_discord, start.token)
    assert final is not None and "the bot is restarting" in final.text
    assert final.custom_ids() == [f"tryon:delete:{session_id}"]
    reopened = await Store.open(store.path)
    try:
        record = await reopened.sessions.get(session_id)
        assert record is not None and record.state == "done" and record.streamed_seconds > 0
        kinds = [entry.kind for entry in await reopened.usage.for_session(session_id)]
        assert "charge" in kinds
    finally:
        await reopened.close()


async def test_rate_limited_status_edits_are_retried_and_end_right(
    driver: BotDriver, world: p.GuildWorld, as_member: Ctx, bot: TryOnBot, fake_discord: FakeDiscord
) -> None:
    alice = as_member("alice")
    start, status = await start_streaming(driver, alice, "grey hoodie")
    fake_discord.rate_limit("PATCH", rf"/messages/{status.id}$", times=2, retry_after=0.05)
    await driver.command(alice, "tryon stop").reply()
    done = await wait_status(fake_discord, start.token, "Done after", within=40)
    assert len(fake_discord.rate_limited) == 2
    assert done.custom_ids() == [f"tryon:delete:{session_id_of(status)}"]


async def test_snippets_respect_the_interaction_upload_limit(
    driver: BotDriver, world: p.GuildWorld, as_member: Ctx, bot: TryOnBot, fake_discord: FakeDiscord
) -> None:
    alice = as_member("alice")
    alice.attachment_size_limit = 1024  # far below any GIF of the stream
    start, _ = await start_streaming(driver, alice, "plaid shirt")
    applied = await driver.command(alice, "tryon outfit", prompt="striped sweater").reply(within=40)
    assert applied.content == "New outfit applied."
    await driver.command(alice, "tryon stop").reply()
    await wait_status(fake_discord, start.token, "Done after", within=40)
    final = await fake_discord.wait_for(
        lambda: next((m for m in fake_discord.messages_for(start.token) if "[video](" in m.text), None), 40
    )
    assert "image" not in final.embeds[0]  # the before/after still did not fit either
    assert [f for r in fake_discord.requests for f in r.files] == []  # nothing over the limit was sent


async def test_private_session_goes_to_dms_after_the_token_expires(
    driver: BotDriver, world: p.GuildWorld, as_member: Ctx, bot: TryOnBot, fake_discord: FakeDiscord
) -> None:
    alice = as_member("alice")
    alice_id = user_id(alice)
    start, _ = await start_streaming(driver, alice, "navy peacoat", private=True)
    fake_discord.expire_token(start.token)
    await driver.command(alice, "tryon stop").reply()
    links = await fake_discord.wait_for(
        lambda: (
            (dm := fake_discord.dm_channels.get(alice_id))
            and next((m for m in fake_discord.channel_messages(dm) if "[video](" in m.text), None)
        ),
        40,
    )
    assert links.interaction_token is None
    public = fake_discord.channel_messages(int(world.channel["id"]))
    assert not any("[video](" in m.text for m in public)  # nothing private leaked into the channel


async def test_closed_dms_drop_private_messages_quietly(
    driver: BotDriver, world: p.GuildWorld, as_member: Ctx, bot: TryOnBot, fake_discord: FakeDiscord
) -> None:
    alice = as_member("alice")
    fake_discord.closed_dms.add(user_id(alice))
    start, _ = await start_streaming(driver, alice, "teal cardigan", private=True)
    fake_discord.expire_token(start.token)
    await driver.command(alice, "tryon stop").reply()
    await fake_discord.wait_for(
        lambda: any(r.status == 403 for r in fake_discord.requests_to("POST", r"^/channels/\d+/messages$")),
        40,
    )
    assert not any("[video](" in m.text for m in fake_discord.channel_messages(int(world.channel["id"])))


async def test_a_failing_page_button_tells_the_member_an_error_id(
    driver: BotDriver,
    world: p.GuildWorld,
    as_member: Ctx,
    bot: TryOnBot,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    alice = as_member("alice")
    alice_id = user_id(alice)
    for _ in range(bot.config.discord.history_page_size + 1):
        await stored_session(bot.runtime.store, world.guild_id, alice_id)
    page = await driver.command(alice, "tryon history").reply()
    await driver.view_attached(page)

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("database gone")

    monkeypatch.setattr(bot.runtime.store.sessions, "history", broken)
    failed = await driver.press(alice, page, "tryon:history:next").reply()
    assert failed.ephemeral and "error id `" in failed.content and "database gone" not in failed.content


async def test_history_buttons_are_removed_when_they_time_out(
    driver: BotDriver, world: p.GuildWorld, as_member: Ctx, bot: TryOnBot, fake_discord: FakeDiscord
) -> None:
    alice = as_member("alice")
    alice_id = user_id(alice)
    for _ in range(bot.config.discord.history_page_size + 1):
        await stored_session(bot.runtime.store, world.guild_id, alice_id)
    page = await driver.command(alice, "tryon history").reply()
    await driver.view_attached(page)
    assert page.components
    view = next(iter(bot._connection._view_store._views[page.id].values())).view
    assert view is not None
    await view.on_timeout()  # what discord.py calls once the view's timeout passes
    assert page.components == []  # no dead buttons that would answer "This interaction failed"


async def test_an_outfit_the_platform_fails_to_apply_is_not_a_refused_prompt(
    driver: BotDriver,
    world: p.GuildWorld,
    as_member: Ctx,
    bot: TryOnBot,
    fake_discord: FakeDiscord,
    emulator: Emulator,
) -> None:
    mod_log = int(world.channels[1]["id"])
    await bot.runtime.store.guilds.set_mod_log_channel(world.guild_id, mod_log, moderator_id=None)
    alice = as_member("alice")
    start, status = await start_streaming(driver, alice, "white linen suit")

    emulator.faults.update_error_reason = "internal_error"
    failed = await driver.command(alice, "tryon outfit", prompt="black velvet blazer").reply(within=40)
    assert failed.ephemeral and "could not be applied right now" in failed.content
    # The platform failed, not the member: no refusal in the audit log, nothing in the mod-log.
    assert await bot.runtime.store.audit.list(world.guild_id, action="prompt_refused") == []
    await driver.command(alice, "tryon stop").reply()
    await wait_status(fake_discord, start.token, "Done after", within=40)
    assert fake_discord.channel_messages(mod_log) == []
    assert session_id_of(status) not in {e.target for e in await bot.runtime.store.audit.list(world.guild_id)}
