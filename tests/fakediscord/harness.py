"""Drives a real discord.py client against `FakeDiscord`: real login, gateway dispatches fed by hand."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import discord

from tests.fakediscord import payloads
from tests.fakediscord.server import FakeDiscord, FakeMessage, RecordedRequest

FAKE_TOKEN = "fake.bot.token"


@dataclass
class Delivered:
    """An interaction handed to the bot, with when it was handed over (perf_counter seconds)."""

    payload: payloads.Payload
    delivered_at: float
    fake: FakeDiscord = field(repr=False)

    @property
    def token(self) -> str:
        """The interaction token."""
        return str(self.payload["token"])

    async def response(self, within: float = 10.0) -> RecordedRequest:
        """The interaction callback request (defer, message, modal...) once it arrives."""
        found: RecordedRequest = await self.fake.wait_for(lambda: self.fake.callbacks.get(self.token), within)
        return found

    async def original(self, predicate: Any = None, within: float = 10.0) -> FakeMessage:
        """The original response message, once it exists and `predicate(message)` holds."""

        def ready() -> FakeMessage | None:
            message = self.fake.original_message(self.token)
            if message is None or (predicate is not None and not predicate(message)):
                return None
            return message

        found: FakeMessage = await self.fake.wait_for(ready, within)
        return found

    async def reply(self, predicate: Any = None, within: float = 10.0) -> FakeMessage:
        """The first message sent through this interaction (original or followup) with visible content."""

        def ready() -> FakeMessage | None:
            for message in self.fake.messages_for(self.token):
                if (message.text or message.attachments) and (predicate is None or predicate(message)):
                    return message
            return None

        found: FakeMessage = await self.fake.wait_for(ready, within)
        return found


class BotDriver:
    """Owns the link between one running client and the fake: login, guild state, interaction delivery."""

    def __init__(self, fake: FakeDiscord, client: discord.Client) -> None:
        self.fake = fake
        self.client = client

    async def login(self) -> None:
        """The real `login()` (GET /users/@me, application info, then `setup_hook`)."""
        await self.client.login(FAKE_TOKEN)

    def dispatch(self, event: str, data: payloads.Payload) -> None:
        """Feed one gateway dispatch (e.g. GUILD_CREATE) through the client's own parser table."""
        self.client._connection.parsers[event](data)

    def add_guild(self, world: payloads.GuildWorld) -> None:
        """Make the bot see this guild, its roles, channels and members (a GUILD_CREATE)."""
        for channel in world.channels:
            self.fake.add_channel(int(channel["id"]))
        self.dispatch("GUILD_CREATE", world.guild_create())

    def context(
        self,
        world: payloads.GuildWorld,
        member: payloads.Payload,
        *,
        channel: payloads.Payload | None = None,
        created_at: float | None = None,
    ) -> payloads.InteractionContext:
        """Where `member` acts: a channel of `world` (the first by default)."""
        return payloads.InteractionContext(
            application_id=self.fake.application_id,
            channel=channel or world.channel,
            guild_id=world.guild_id,
            member=member,
            created_at=created_at,
        )

    def dm_context(self, user: payloads.Payload) -> payloads.InteractionContext:
        """A direct message between the bot and `user`."""
        return payloads.InteractionContext(
            application_id=self.fake.application_id, channel=payloads.dm_channel(user), user=user
        )

    def deliver(self, payload: payloads.Payload) -> Delivered:
        """An INTERACTION_CREATE dispatch, exactly as the gateway would hand it to the client."""
        self.fake.register_interaction(payload)
        delivered_at = time.perf_counter()
        self.dispatch("INTERACTION_CREATE", payload)
        return Delivered(payload, delivered_at, self.fake)

    def command(self, ctx: payloads.InteractionContext, command: str, **options: Any) -> Delivered:
        """Deliver a slash command: `command(ctx, "tryon start", photo=opt_attachment(a), outfit="x")`."""
        return self.deliver(payloads.slash_command(ctx, command, options))

    def press(self, ctx: payloads.InteractionContext, message: FakeMessage, custom_id: str) -> Delivered:
        """Press the button `custom_id` on `message`."""
        payload = message.payload()
        payload["guild_id"] = str(ctx.guild_id) if ctx.guild_id else None
        return self.deliver(payloads.component(ctx, custom_id, payload))

    async def modal_opened(self, custom_id: str, within: float = 5.0) -> None:
        """Wait until the client has registered the modal it sent (it does so after Discord's answer)."""
        async with asyncio.timeout(within):
            # discord.py offers no event for "modal stored"; a short poll is the honest way to wait.
            while custom_id not in self.client._connection._view_store._modals:  # noqa: ASYNC110
                await asyncio.sleep(0.005)

    async def view_attached(self, message: FakeMessage, within: float = 5.0) -> None:
        """Wait until the client has attached its view to `message` (it does so after Discord's answer)."""
        async with asyncio.timeout(within):
            while message.id not in self.client._connection._view_store._views:  # noqa: ASYNC110
                await asyncio.sleep(0.005)

    def submit(self, ctx: payloads.InteractionContext, custom_id: str, values: dict[str, str]) -> Delivered:
        """Submit a modal."""
        return self.deliver(payloads.modal_submit(ctx, custom_id, values))
