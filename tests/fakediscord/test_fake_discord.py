"""The harness itself: a real discord.py bot logs in, syncs, answers commands and modals via the fake."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import discord
import pytest
from discord import app_commands
from discord.ext import commands

from tests.fakediscord import BotDriver, FakeDiscord
from tests.fakediscord import payloads as p
from tests.fakediscord.openapi import OpenApiValidator


class EchoModal(discord.ui.Modal, title="Echo"):
    text: discord.ui.TextInput[EchoModal] = discord.ui.TextInput(label="Text", custom_id="echo-text")

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(f"you said {self.text.value}", ephemeral=True)


class EchoCog(commands.Cog):
    @app_commands.command(name="echo")
    async def echo(self, interaction: discord.Interaction, photo: discord.Attachment, words: str) -> None:
        await interaction.response.defer(thinking=True)
        data = await photo.read()
        view = discord.ui.View()
        view.add_item(discord.ui.Button(label="Again", custom_id="echo-again"))
        await interaction.followup.send(
            f"{words}: {len(data)} bytes",
            file=discord.File(__import__("io").BytesIO(data[::-1]), "reversed.bin"),
            view=view,
        )

    @app_commands.command(name="ask")
    async def ask(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_modal(EchoModal(custom_id="echo-modal"))


@pytest.fixture
async def driver(fake_discord: FakeDiscord) -> AsyncIterator[BotDriver]:
    bot = commands.Bot(command_prefix="!", intents=discord.Intents.default())
    driver = BotDriver(fake_discord, bot)
    await bot.add_cog(EchoCog())
    await driver.login()
    try:
        yield driver
    finally:
        await bot.close()


async def test_login_uses_real_http_client(driver: BotDriver, fake_discord: FakeDiscord) -> None:
    me = fake_discord.requests[0]
    assert me.route == "GET /users/@me"
    assert me.headers["Authorization"] == "Bot fake.bot.token"
    assert driver.client.user is not None and driver.client.user.id == fake_discord.application_id
    assert driver.client.application_id == fake_discord.application_id


async def test_sync_records_commands(driver: BotDriver, fake_discord: FakeDiscord) -> None:
    synced = await driver.client.tree.sync()  # type: ignore[attr-defined]
    assert sorted(c.name for c in synced) == ["ask", "echo"]
    assert {c["name"] for c in fake_discord.synced_commands[None]} == {"ask", "echo"}


async def test_command_with_attachment_defers_downloads_and_uploads(
    driver: BotDriver, fake_discord: FakeDiscord
) -> None:
    world = p.guild_world()
    driver.add_guild(world)
    alice = world.add_member("alice")
    photo = fake_discord.add_attachment("me.png", b"\x89PNG-bytes", "image/png", width=4, height=4)
    sent = driver.command(driver.context(world, alice), "echo", photo=p.opt_attachment(photo), words="hello")
    callback = await sent.response()
    assert callback.json["type"] == 5
    reply = await sent.reply()
    assert reply.content == "hello: 10 bytes"
    assert reply.custom_ids() == ["echo-again"]
    followup = fake_discord.requests_to("POST", rf"^/webhooks/{fake_discord.application_id}/{sent.token}$")[0]
    assert followup.files[0].filename == "reversed.bin"
    assert followup.files[0].data == b"\x89PNG-bytes"[::-1]
    assert reply.attachments[0]["filename"] == "reversed.bin"


async def test_modal_round_trip(driver: BotDriver, fake_discord: FakeDiscord) -> None:
    world = p.guild_world()
    driver.add_guild(world)
    ctx = driver.context(world, world.add_member("bob"))
    sent = driver.command(ctx, "ask")
    callback = await sent.response()
    assert callback.json["type"] == 9
    assert callback.json["data"]["custom_id"] == "echo-modal"
    await driver.modal_opened("echo-modal")
    submitted = driver.submit(ctx, "echo-modal", {"echo-text": "*hi*"})
    reply = await submitted.reply()
    assert reply.content == "you said *hi*"
    assert reply.ephemeral


async def test_expired_token_answers_like_discord(driver: BotDriver, fake_discord: FakeDiscord) -> None:
    world = p.guild_world()
    driver.add_guild(world)
    sent = driver.command(driver.context(world, world.add_member("carol")), "ask")
    await sent.response()
    fake_discord.expire_token(sent.token)
    webhook = discord.Webhook.partial(fake_discord.application_id, sent.token, client=driver.client)
    with pytest.raises(discord.HTTPException) as caught:
        await webhook.send("late", wait=True)
    assert caught.value.status == 401 and caught.value.code == 50027


def test_validator_catches_bad_bodies() -> None:
    validator = OpenApiValidator.load()
    assert (
        validator.validate("POST", "/interactions/1/tok/callback", {"type": 5, "data": {"flags": 64}}) == []
    )
    assert validator.validate("PATCH", "/webhooks/1/t/messages/@original", {"content": 5})
    assert (
        validator.match("/webhooks/1/t/messages/@original")
        == "/webhooks/{webhook_id}/{webhook_token}/messages/@original"
    )
    assert validator.validate("POST", "/nowhere", None)


def test_validator_checks_queries_and_the_fakes_answers() -> None:
    validator = OpenApiValidator.load()
    assert validator.validate("POST", "/webhooks/1/t", {"content": "x"}, {"wait": "true"}) == []
    assert validator.validate("POST", "/webhooks/1/t", {"content": "x"}, {"wiat": "true"})
    message = {"type": 4, "message": {"id": "1"}}  # far from a whole message object
    answer = {"interaction": {"id": "1", "type": 2}, "resource": message}
    assert validator.validate_response("POST", "/interactions/1/t/callback", 200, answer)
    deferred = {"interaction": {"id": "1", "type": 2, "response_message_loading": True}}
    assert validator.validate_response("POST", "/interactions/1/t/callback", 200, deferred) == []
    error = {"message": "Unknown interaction", "code": 10062}
    assert validator.validate_response("POST", "/interactions/1/t/callback", 404, error) == []
    assert validator.validate_response("POST", "/interactions/1/t/callback", 404, {"message": "x"})
    assert validator.validate_response("DELETE", "/channels/1/messages/2", 204, None) == []
    assert validator.validate_response("DELETE", "/channels/1/messages/2", 200, {"id": "2"})


async def test_injected_faults_answer_like_discord(driver: BotDriver, fake_discord: FakeDiscord) -> None:
    world = p.guild_world()
    driver.add_guild(world)
    channel = driver.client.get_partial_messageable(int(world.channel["id"]))
    forbidden = fake_discord.fail("POST", r"^/channels/\d+/messages$", status=403, code=50013)
    with pytest.raises(discord.Forbidden) as refused:
        await channel.send("hello")
    assert refused.value.code == 50013 and refused.value.text == "Missing Permissions"
    message = await channel.send("hello again")  # times=1: the route works again
    assert len(forbidden.hits) == 1 and fake_discord.channel_messages(channel.id)[0].id == message.id

    # discord.py retries a 502 (Cloudflare's HTML page) after a second, and a 429 after its retry_after.
    fake_discord.fail("PATCH", rf"/messages/{message.id}$", status=502)
    fake_discord.rate_limit("PATCH", rf"/messages/{message.id}$", retry_after=0.05)
    await message.edit(content="edited")
    assert fake_discord.messages[message.id].content == "edited"
    assert [r.status for r in fake_discord.requests_to("PATCH", ".")] == [502, 429, 200]

    # A 503 on the bot API is raised at once; `times=None` fails until lifted.
    down = fake_discord.fail("*", rf"/messages/{message.id}$", status=503, times=None)
    for _ in range(2):
        with pytest.raises(discord.DiscordServerError):
            await message.edit(content="not applied")
    down.lift()
    await message.edit(content="applied")
    assert len(down.hits) == 2 and fake_discord.messages[message.id].content == "applied"

    # `when` narrows a fault, e.g. to uploads only.
    too_big = fake_discord.fail(
        "POST", r"^/channels/\d+/messages$", status=413, code=40005, times=None, when=lambda r: bool(r.files)
    )
    with pytest.raises(discord.HTTPException) as over:
        await channel.send(file=discord.File(io.BytesIO(b"x" * 100), "big.bin"))
    assert over.value.status == 413 and over.value.code == 40005
    await channel.send("text still works")
    assert len(too_big.hits) == 1
