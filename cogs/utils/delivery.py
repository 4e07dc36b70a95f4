"""Delivery to Discord: the one place that decides interaction token, channel or DMs, and how errors read.

Every new message and status edit the bot sends a member goes through a `Route`: the interaction's webhook
while its token lives, then the channel (never for private messages), then the member's DMs when the
caller knows who they are (editing an interaction's own original response needs no route). One rule says
when a token is dead. `send_reply` answers an interaction the same way; `report_error` is the one place
errors become sentences, and engine refusals reach the mod-log (`post_to_mod_log`, also used for
moderators' own actions).
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands

from bot.tryon.errors import TryOnError
from cogs.utils.formatting import audit_line

if TYPE_CHECKING:
    from bot.app import TryOnBot
    from bot.store.records import AuditEntry

log = logging.getLogger(__name__)

NO_MENTIONS = discord.AllowedMentions.none()
# Stop using a token a little before Discord's 15 minutes, so no call races its expiry.
TOKEN_MARGIN = dt.timedelta(seconds=60)
MISSING: Any = discord.utils.MISSING


def token_gone(error: discord.HTTPException) -> bool:
    """Whether a failed webhook call means the interaction token can no longer be used.

    404 alone is not enough: a deleted message answers 404 Unknown Message (10008) on a live token.
    """
    return error.status == 401 or error.code in (50027, 10015, 10062)


def describe_failure(error: BaseException) -> str:
    """A short log form of a failed Discord call."""
    if isinstance(error, discord.HTTPException):
        return f"{error.status} {error.code or ''} {error.text[:80]}".strip()
    return "no answer in time" if isinstance(error, TimeoutError) else repr(error)


class Route:
    """Where messages for one interaction (or, after a restart, one channel and member) can go.

    The interaction's webhook while its token lives (followups are new messages), then the channel unless
    the messages are private or the bot may not post there (403), then the member's DMs if `owner_id` is
    known. Each route that fails for good is not tried again.
    """

    def __init__(
        self,
        client: discord.Client,
        *,
        interaction: discord.Interaction[Any] | None = None,
        channel_id: int | None = None,
        private: bool = False,
        owner_id: int | None = None,
    ) -> None:
        self.client = client
        self.interaction = interaction
        self.channel_id = channel_id
        self.private = private
        self.owner_id = owner_id
        # The DM channel the last `send` went to (None: it went elsewhere).
        self.last_dm: int | None = None
        self._token_dead = interaction is None
        self._channel_closed = False

    @property
    def token_alive(self) -> bool:
        """Whether the interaction webhook can still be used."""
        if self._token_dead or self.interaction is None:
            return False
        return discord.utils.utcnow() < self.interaction.expires_at - TOKEN_MARGIN

    def token_failed(self, error: discord.HTTPException) -> None:
        """Note a failed webhook call: re-raises it unless it means the token is dead."""
        if not token_gone(error):
            raise error
        self._token_dead = True

    def channel(self) -> discord.PartialMessageable | None:
        """The channel, unless messages are private or the bot may not post there."""
        if self.private or self.channel_id is None or self._channel_closed:
            return None
        return self.client.get_partial_messageable(self.channel_id)

    async def send(self, content: str | None, options: dict[str, Any]) -> discord.Message | None:
        """A new message by the first route that takes it; None if none does (logged).

        Raises discord.HTTPException when a route refuses it for another reason than being gone.
        """
        self.last_dm = None
        if self.token_alive and self.interaction is not None:
            try:
                return await self.interaction.followup.send(
                    content or MISSING, ephemeral=self.private, wait=True, **options
                )
            except discord.HTTPException as error:
                self.token_failed(error)
                _rewind(options)
        channel = self.channel()
        if channel is not None:
            try:
                return await channel.send(content, **options)
            except discord.Forbidden as error:
                self._channel_closed = True
                log.warning(
                    "may not post in channel %s (%s); messages go to DMs",
                    self.channel_id,
                    describe_failure(error),
                )
                _rewind(options)
        return await self._send_privately(content, options)

    async def edit(self, message_id: int, options: dict[str, Any]) -> bool:
        """Edit a message this route posted; False when no route reaches it any more."""
        if self.token_alive and self.interaction is not None:
            try:
                await self.interaction.followup.edit_message(message_id, **options)
                return True
            except discord.HTTPException as error:
                self.token_failed(error)
        channel = self.channel()
        if channel is None:
            log.info("message %s unreachable without the interaction token", message_id)
            return False
        try:
            await channel.get_partial_message(message_id).edit(**options)
        except discord.Forbidden:
            self._channel_closed = True
            raise
        return True

    async def _send_privately(self, content: str | None, options: dict[str, Any]) -> discord.Message | None:
        """Once neither the token nor the channel works: to the member's DMs, if they accept them."""
        if self.owner_id is None:
            log.info("message dropped: no interaction token, channel or member to send it to")
            return None
        # No buttons in DMs: presses there carry no server and would be refused.
        options = {key: value for key, value in options.items() if key != "view"}
        try:
            dm = await self.client.create_dm(discord.Object(id=self.owner_id))
            message = await dm.send(content, **options)
        except discord.HTTPException as error:
            reason = describe_failure(error)
            log.warning("could not DM member %s (%s); message dropped", self.owner_id, reason)
            return None
        self.last_dm = dm.id
        return message


def _rewind(options: dict[str, Any]) -> None:
    """Files are read once per attempt; rewind them before sending through another route."""
    for file in options.get("files", []):
        file.reset()


async def send_reply(
    interaction: discord.Interaction[Any],
    content: str | None = None,
    *,
    embed: discord.Embed | None = None,
    view: discord.ui.View | None = None,
    file: discord.File | None = None,
    ephemeral: bool = True,
) -> discord.Message | None:
    """Answer the interaction, or follow up if it is answered, or post in its channel once the token is gone.

    Private answers cannot go through the channel; after the token is gone they are dropped (and logged).
    """
    options: dict[str, Any] = {"allowed_mentions": NO_MENTIONS}
    if embed is not None:
        options["embed"] = embed
    if view is not None:
        options["view"] = view
    if file is not None:
        options["files"] = [file]
    route = Route(
        interaction.client, interaction=interaction, channel_id=interaction.channel_id, private=ephemeral
    )
    if route.token_alive and not interaction.response.is_done():
        try:
            await interaction.response.send_message(content, ephemeral=ephemeral, **options)
            return None
        except discord.HTTPException as error:
            route.token_failed(error)
            _rewind(options)
    return await route.send(content, options)


def describe_error(error: BaseException, interaction: discord.Interaction[Any] | None = None) -> str:
    """The sentence a member sees for `error`; unexpected errors are logged under a fresh id."""
    cause = error.original if isinstance(error, app_commands.CommandInvokeError) else error
    if isinstance(cause, TryOnError):
        return cause.message
    if isinstance(cause, app_commands.MissingPermissions):
        return "You need the Manage Server permission to do that."
    if isinstance(cause, app_commands.NoPrivateMessage):
        return "Try-on only works inside a server, not in direct messages."
    if isinstance(cause, app_commands.CommandOnCooldown):
        retry_at = discord.utils.utcnow() + dt.timedelta(seconds=cause.retry_after)
        return f"Slow down a little: try again {discord.utils.format_dt(retry_at, 'R')}."
    if isinstance(cause, app_commands.CheckFailure):
        return "You're not allowed to do that."
    if isinstance(cause, app_commands.TransformerError):
        shown = discord.utils.escape_markdown(str(cause.value))[:100]
        return f"That value can't be used here: {shown}. Please pick another one."
    error_id = uuid.uuid4().hex[:8]
    command = interaction.command.qualified_name if interaction and interaction.command else "?"
    log.error("unexpected error %s in /%s", error_id, command, exc_info=cause)
    return f"Something went wrong on our side. If it keeps happening, tell a moderator error id `{error_id}`."


async def post_to_mod_log(bot: TryOnBot, entry: AuditEntry | None) -> None:
    """Post one audit entry to its guild's mod-log channel, if one is set and reachable.

    The audit log in SQLite is the record; the channel is a convenience, so failures are logged, not raised.
    """
    if entry is None:
        return
    settings = await bot.runtime.store.guilds.get(entry.guild_id)
    if settings.mod_log_channel_id is None:
        return
    channel = bot.get_channel(settings.mod_log_channel_id)
    if not isinstance(channel, discord.TextChannel) or channel.guild.id != entry.guild_id:
        log.info(
            "mod-log channel %s of guild %s is not available", settings.mod_log_channel_id, entry.guild_id
        )
        return
    try:
        await channel.send(audit_line(entry), allowed_mentions=NO_MENTIONS)
    except discord.HTTPException as error:
        log.warning("could not post to the mod-log of guild %s: %s", entry.guild_id, error)


async def report_error(interaction: discord.Interaction[TryOnBot], error: BaseException) -> None:
    """Tell the member what went wrong; a refusal the engine recorded for moderators goes to the mod-log."""
    cause = error.original if isinstance(error, app_commands.CommandInvokeError) else error
    try:
        await send_reply(interaction, describe_error(error, interaction))
    finally:
        if isinstance(cause, TryOnError):
            await post_to_mod_log(interaction.client, cause.audit_entry)


class TryOnCommandTree(app_commands.CommandTree["TryOnBot"]):
    """The one place app-command errors are turned into replies: members' errors politely, bugs with an id."""

    async def interaction_check(self, interaction: discord.Interaction[TryOnBot]) -> bool:
        """Every command works in servers only; a DM (should Discord deliver one) gets a clear answer."""
        if interaction.guild_id is None:
            await send_reply(interaction, "Try-on only works inside a server, not in direct messages.")
            return False
        return True

    async def on_error(
        self, interaction: discord.Interaction[TryOnBot], error: app_commands.AppCommandError
    ) -> None:
        """Render what went wrong for the member; log anything unexpected with an id they can quote."""
        await report_error(interaction, error)
