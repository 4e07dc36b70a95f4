"""Going on after a try-on without uploading again: `/tryon start` with the kept photo, "Try another outfit"
on the final post, and "Try on with this photo" on a message (real bot, fake Discord, emulator, SQLite)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.app import TryOnBot
from bot.config import BotConfig
from bot.emulator import Emulator
from tests.fakediscord import BotDriver, FakeDiscord, FakeMessage
from tests.fakediscord import payloads as p
from tests.fakediscord.harness import Delivered
from tests.helpers import (
    PHOTO,
    make_bot_config,
    session_id_of,
    start_streaming,
    until,
    user_id,
    wait_status,
)

Ctx = Callable[..., p.InteractionContext]

pytestmark = pytest.mark.timeout(150)

MENU = "Try on with this photo"


@pytest.fixture
def bot_config(tmp_path: Path, emulator: Emulator) -> BotConfig:
    return make_bot_config(tmp_path, emulator.url)


async def stop_and_get_final_post(
    driver: BotDriver, member: p.InteractionContext, start: Delivered, status: FakeMessage
) -> FakeMessage:
    """Stop the session with its button; the final post once it is there and the session is over."""
    session_id = session_id_of(status)
    await driver.press(member, status, f"tryon:stop:{session_id}").reply()
    await wait_status(driver.fake, start.token, "Done after", within=40)
    final: FakeMessage = await driver.fake.wait_for(
        lambda: next((m for m in driver.fake.messages_for(start.token) if final_post(m)), None), 40
    )
    await over(driver, member)
    return final


def final_post(message: FakeMessage) -> bool:
    return bool(message.embeds) and message.embeds[0].get("title", "").startswith("Your try-on recording")


async def over(driver: BotDriver, member: p.InteractionContext) -> None:
    """Wait until the member's session is over for the engine too (a new one may start)."""
    bot = driver.client
    assert isinstance(bot, TryOnBot)
    await until(lambda: bot.runtime.engine.current(user_id(member)) is None, 20)


async def submit_start_modal(
    driver: BotDriver, member: p.InteractionContext, opened: Delivered, outfit: str
) -> Delivered:
    """Fill in the outfit of the modal `opened` showed; the submit (its own interaction)."""
    modal = await opened.response()
    assert modal.json["type"] == 9, modal.json
    modal_id = modal.json["data"]["custom_id"]
    await driver.modal_opened(modal_id)
    field = modal.json["data"]["components"][0]["components"][0]["custom_id"]
    return driver.submit(member, modal_id, {field: outfit})


def author_of(member: p.InteractionContext) -> p.Payload:
    assert member.member is not None
    user: p.Payload = member.member["user"]
    return user


async def answered(driver: BotDriver, delivered: Delivered, words: str) -> FakeMessage:
    """The interaction's private answer once it says `words` (it may say "Checking your photo…" first)."""
    try:
        found: FakeMessage = await driver.fake.wait_for(
            lambda: (
                (m := driver.fake.original_message(delivered.token)) is not None and words in m.content and m
            ),
            20,
        )
    except TimeoutError:
        said = driver.fake.original_message(delivered.token)
        pytest.fail(f"never said {words!r}; said {said.content if said else None!r}")
    return found


async def photo_hashes(bot: TryOnBot, guild_id: int, member: p.InteractionContext) -> list[str]:
    sessions = await bot.runtime.store.sessions.history(guild_id, user_id(member))
    return [str(record.photo_sha256) for record in reversed(sessions)]  # oldest first


async def test_start_without_a_photo_uses_the_kept_one_and_forget_removes_it(
    driver: BotDriver, world: p.GuildWorld, as_member: Ctx, bot: TryOnBot, tmp_path: Path
) -> None:
    alice = as_member("alice")
    nothing_kept = driver.command(alice, "tryon start", outfit="a red coat")
    await answered(driver, nothing_kept, "No photo of yours is kept here (photos are kept for 24 hours")

    start, status = await start_streaming(driver, alice, "a red coat")
    kept_file = tmp_path / "photos" / f"{world.guild_id}-{user_id(alice)}.jpg"
    assert kept_file.read_bytes()[:2] == b"\xff\xd8"  # the checked JPEG, not the upload
    await stop_and_get_final_post(driver, alice, start, status)

    again = driver.command(alice, "tryon start", outfit="a green parka")
    await answered(driver, again, "is on its way")
    await wait_status(driver.fake, again.token, "Streaming live", within=40)
    first, second = await photo_hashes(bot, world.guild_id, alice)
    assert first == second  # the same photo, known by the upload's hash
    await driver.command(alice, "tryon stop").reply()
    await wait_status(driver.fake, again.token, "Done after", within=40)
    await over(driver, alice)

    ask = await driver.command(alice, "tryon forget").reply()
    await driver.view_attached(ask)
    await driver.press(alice, ask, "tryon:forget:yes").response()
    await driver.fake.wait_for(lambda: "Deleted your kept photo too" in ask.content, 30)
    assert not kept_file.exists()


async def test_try_another_outfit_on_the_final_post(
    driver: BotDriver, world: p.GuildWorld, as_member: Ctx, bot: TryOnBot
) -> None:
    alice, bob = as_member("alice"), as_member("bob")
    start, status = await start_streaming(driver, alice, "a red coat")
    final = await stop_and_get_final_post(driver, alice, start, status)
    again_id = f"tryon:again:{session_id_of(status)}"
    assert again_id in final.custom_ids()

    refused = await driver.press(bob, final, again_id).reply()
    assert refused.ephemeral and "Only the member whose try-on this was" in refused.content

    submitted = await submit_start_modal(
        driver, alice, driver.press(alice, final, again_id), "a yellow raincoat"
    )
    await wait_status(driver.fake, submitted.token, "Streaming live", within=40)
    first, second = await photo_hashes(bot, world.guild_id, alice)
    assert first == second
    await driver.command(alice, "tryon stop").reply()
    await wait_status(driver.fake, submitted.token, "Done after", within=40)
    await over(driver, alice)

    # Another photo since: the old post's button says so instead of using the wrong photo.
    other = driver.fake.add_attachment("other.png", await asyncio.to_thread(_other_photo), "image/png")
    start3 = driver.command(alice, "tryon start", photo=p.opt_attachment(other), outfit="a grey suit")
    await wait_status(driver.fake, start3.token, "Streaming live", within=40)
    await driver.command(alice, "tryon stop").reply()
    await wait_status(driver.fake, start3.token, "Done after", within=40)
    await over(driver, alice)
    stale = await driver.press(alice, final, again_id).reply()
    assert "That try-on's photo is no longer kept" in stale.content


def _other_photo() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (512, 640), (30, 90, 160)).save(buffer, "PNG")
    return buffer.getvalue()


async def test_try_on_with_a_photo_from_a_message(
    driver: BotDriver, world: p.GuildWorld, as_member: Ctx, bot: TryOnBot, fake_discord: FakeDiscord
) -> None:
    alice, bob = as_member("alice"), as_member("bob")
    photo = fake_discord.add_attachment("me.jpg", PHOTO, "image/jpeg", width=512, height=512)
    channel_id = int(world.channel["id"])
    author = author_of(alice)
    alices_post = FakeMessage(
        id=p.snowflake(), channel_id=channel_id, author=author, attachments=[photo]
    ).payload()
    words_only = FakeMessage(
        id=p.snowflake(), channel_id=channel_id, author=author, content="hello"
    ).payload()

    not_hers = await driver.deliver(p.message_command(bob, MENU, alices_post)).reply()
    assert not_hers.ephemeral and "only try outfits on a photo you posted yourself" in not_hers.content
    no_photo = await driver.deliver(p.message_command(alice, MENU, words_only)).reply()
    assert "no photo attached" in no_photo.content

    opened = driver.deliver(p.message_command(alice, MENU, alices_post))
    submitted = await submit_start_modal(driver, alice, opened, "a velvet blazer")
    status = await wait_status(fake_discord, submitted.token, "Streaming live", within=40)
    assert "a velvet blazer" in status.text
    await driver.command(alice, "tryon stop").reply()
    await wait_status(fake_discord, submitted.token, "Done after", within=40)


async def test_a_server_that_keeps_no_photos(
    driver: BotDriver, world: p.GuildWorld, as_member: Ctx, bot: TryOnBot, tmp_path: Path
) -> None:
    await bot.runtime.store.guilds.update(world.guild_id, {"photo_retention_hours": 0}, moderator_id=None)
    alice = as_member("alice")
    start, status = await start_streaming(driver, alice, "a red coat")
    assert not (tmp_path / "photos").exists() or not list((tmp_path / "photos").iterdir())
    await stop_and_get_final_post(driver, alice, start, status)
    refused = driver.command(alice, "tryon start", outfit="a green parka")
    await answered(driver, refused, "This server keeps no photos")
