"""Where one session's messages go: the interaction's webhook while its token lives, then the channel."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import discord

from bot.app import NO_MENTIONS, TryOnBot

log = logging.getLogger(__name__)

# Stop using the token a little before Discord's 15 minutes, so no edit races its expiry.
TOKEN_MARGIN = dt.timedelta(seconds=60)
MISSING: Any = discord.utils.MISSING


def _token_gone(error: discord.HTTPException) -> bool:
    return error.status in (401, 404) or error.code in (50027, 10015, 10062)


class SessionOutlet:
    """Posts the session's one status message, edits it in place, and posts its other messages.

    Through the interaction's webhook while the token lives (the original response must already have been
    answered, so followups are new messages), through the channel afterwards.

    Private (ephemeral) sessions can only be reached through the token; once it is gone, their status stays
    as it was and new messages (clips, recording links) go to the member's DMs instead of the channel.
    """

    def __init__(
        self,
        bot: TryOnBot,
        channel_id: int | None,
        *,
        interaction: discord.Interaction[TryOnBot] | None = None,
        status_message_id: int | None = None,
        private: bool = False,
        owner_id: int | None = None,
    ) -> None:
        self.bot = bot
        self.owner_id = owner_id
        self.channel_id = channel_id
        self.interaction = interaction
        self.status_message_id = status_message_id
        self.private = private
        self.filesize_limit = interaction.filesize_limit if interaction is not None else 10 * 1024 * 1024
        self._token_dead = interaction is None

    @property
    def token_alive(self) -> bool:
        """Whether the interaction webhook can still be used."""
        if self._token_dead or self.interaction is None:
            return False
        return discord.utils.utcnow() < self.interaction.expires_at - TOKEN_MARGIN

    def _channel(self) -> discord.PartialMessageable | None:
        if self.private or self.channel_id is None:
            return None
        return self.bot.get_partial_messageable(self.channel_id)

    async def edit_status(self, *, embed: discord.Embed, view: discord.ui.View | None = MISSING) -> None:
        """Show the status: the first call posts the status message, later calls edit it in place.

        `view` replaces the buttons (None removes them; left out, they stay as they are).
        """
        if self.status_message_id is None:
            message = await self.post(embed=embed, view=view or None)
            self.status_message_id = message.id if message is not None else None
            return
        if self.token_alive and self.interaction is not None:
            try:
                await self.interaction.followup.edit_message(
                    self.status_message_id, content=None, embed=embed, view=view, allowed_mentions=NO_MENTIONS
                )
                return
            except discord.HTTPException as error:
                if not _token_gone(error):
                    raise
                self._token_dead = True
        channel = self._channel()
        if channel is None:
            log.info("status of a private session not shown: its interaction token expired")
            return
        await channel.get_partial_message(self.status_message_id).edit(
            content=None, embed=embed, view=view, allowed_mentions=NO_MENTIONS
        )

    async def post(
        self,
        content: str | None = None,
        *,
        embed: discord.Embed | None = None,
        files: list[discord.File] | None = None,
        view: discord.ui.View | None = None,
    ) -> discord.Message | None:
        """A new message in the session's place (ephemeral for private sessions)."""
        options: dict[str, Any] = {"allowed_mentions": NO_MENTIONS}
        if embed is not None:
            options["embed"] = embed
        if files:
            options["files"] = files
        if view is not None:
            options["view"] = view
        if self.token_alive and self.interaction is not None:
            try:
                return await self.interaction.followup.send(
                    content or MISSING, ephemeral=self.private, wait=True, **options
                )
            except discord.HTTPException as error:
                if not _token_gone(error):
                    raise
                self._token_dead = True
                for file in files or []:
                    file.reset()
        channel = self._channel()
        if channel is not None:
            return await channel.send(content, **options)
        return await self._send_privately(content, options)

    async def _send_privately(self, content: str | None, options: dict[str, Any]) -> discord.Message | None:
        """A private session's message once the token is gone: to the member's DMs, if they accept them."""
        if self.owner_id is None:
            log.info("message of a private session dropped: its interaction token expired")
            return None
        try:
            dm = await self.bot.create_dm(discord.Object(id=self.owner_id))
            return await dm.send(content, **options)
        except discord.HTTPException as error:
            log.info("could not DM member %s (%s); private message dropped", self.owner_id, error)
            return None
