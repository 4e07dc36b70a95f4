"""Where one session's messages go: the interaction's webhook while its token lives, then the channel."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any

import discord

from bot.app import NO_MENTIONS, TryOnBot

log = logging.getLogger(__name__)

# Stop using the token a little before Discord's 15 minutes, so no edit races its expiry.
TOKEN_MARGIN = dt.timedelta(seconds=60)
# One Discord call, discord.py's own retries included (it waits 1 s, 3 s, 5 s... between 5xx answers): a
# 429 or a single 5xx still lands in time, anything longer gives way to a fallback the member sees within 5 s.
CALL_SECONDS = 3.5
# discord.py raises some 5xx at once (503 on the bot API); the edit is tried again after this pause.
SERVER_ERROR_PAUSE = 0.5
# A status message that cannot be edited (deleted, forbidden, failing) is posted again at most this often.
MAX_STATUS_MOVES = 3
MISSING: Any = discord.utils.MISSING


def _token_gone(error: discord.HTTPException) -> bool:
    # 404 alone is not enough: a deleted message answers 404 Unknown Message (10008) on a live token.
    return error.status == 401 or error.code in (50027, 10015, 10062)


def describe(error: BaseException) -> str:
    """A short log form of a failed Discord call."""
    if isinstance(error, discord.HTTPException):
        return f"{error.status} {error.code or ''} {error.text[:80]}".strip()
    return "no answer in time" if isinstance(error, TimeoutError) else repr(error)


class SessionOutlet:
    """Posts the session's one status message, edits it in place, and posts its other messages.

    Through the interaction's webhook while the token lives (the original response must already have been
    answered, so followups are new messages), through the channel afterwards, and through the member's DMs
    when neither works (a private session without its token, or a channel the bot may not post in).

    A status message that cannot be edited any more (deleted by a moderator, forbidden, failing past
    `CALL_SECONDS`) is posted again wherever messages can still go, and edited there from then on.
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
        self.status_moves = 0
        self._token_dead = interaction is None
        self._channel_closed = False  # the bot may not post or edit in the channel (403)
        self._status_dm: int | None = None  # the DM channel holding the status message, once moved there
        self._last_dm: int | None = None

    @property
    def token_alive(self) -> bool:
        """Whether the interaction webhook can still be used."""
        if self._token_dead or self.interaction is None:
            return False
        return discord.utils.utcnow() < self.interaction.expires_at - TOKEN_MARGIN

    def _channel(self) -> discord.PartialMessageable | None:
        if self.private or self.channel_id is None or self._channel_closed:
            return None
        return self.bot.get_partial_messageable(self.channel_id)

    async def edit_status(self, *, embed: discord.Embed, view: discord.ui.View | None = MISSING) -> None:
        """Show the status: the first call posts the status message, later calls edit it in place.

        `view` replaces the buttons (None removes them; left out, they stay as they are).
        """
        if self.status_message_id is not None:
            try:
                async with asyncio.timeout(CALL_SECONDS):
                    if await self._edit_in_place(self.status_message_id, embed, view):
                        return
            except (discord.HTTPException, TimeoutError) as error:
                log.warning(
                    "status message %s could not be edited (%s)", self.status_message_id, describe(error)
                )
            if self.status_moves >= MAX_STATUS_MOVES:
                return
            self.status_moves += 1
        await self._post_status(embed, view)

    async def _post_status(self, embed: discord.Embed, view: discord.ui.View | None) -> None:
        self._last_dm = None
        try:
            message = await self.post(embed=embed, view=view or None)
        except (discord.HTTPException, TimeoutError) as error:
            log.warning("status message could not be posted (%s)", describe(error))
            return
        if message is not None:
            self.status_message_id, self._status_dm = message.id, self._last_dm

    async def _edit_in_place(
        self, message_id: int, embed: discord.Embed, view: discord.ui.View | None
    ) -> bool:
        """Edit the status message where it is; False when no route reaches it any more."""
        while True:
            try:
                return await self._edit_once(message_id, embed, view)
            except discord.DiscordServerError:
                await asyncio.sleep(SERVER_ERROR_PAUSE)

    async def _edit_once(self, message_id: int, embed: discord.Embed, view: discord.ui.View | None) -> bool:
        options: dict[str, Any] = {"content": None, "embed": embed, "allowed_mentions": NO_MENTIONS}
        if self._status_dm is not None:
            # No buttons in DMs: presses there carry no server and would be refused.
            dm = self.bot.get_partial_messageable(self._status_dm)
            await dm.get_partial_message(message_id).edit(view=None, **options)
            return True
        if self.token_alive and self.interaction is not None:
            try:
                await self.interaction.followup.edit_message(message_id, view=view, **options)
                return True
            except discord.HTTPException as error:
                if not _token_gone(error):
                    raise
                self._token_dead = True
        channel = self._channel()
        if channel is None:
            log.info("status of session message %s unreachable without the interaction token", message_id)
            return False
        try:
            await channel.get_partial_message(message_id).edit(view=view, **options)
        except discord.Forbidden:
            self._channel_closed = True
            raise
        return True

    async def post(
        self,
        content: str | None = None,
        *,
        embed: discord.Embed | None = None,
        files: list[discord.File] | None = None,
        view: discord.ui.View | None = None,
    ) -> discord.Message | None:
        """A new message in the session's place (ephemeral for private sessions).

        Raises discord.HTTPException, or TimeoutError after `CALL_SECONDS`, when the place refuses it.
        """
        options: dict[str, Any] = {"allowed_mentions": NO_MENTIONS}
        if embed is not None:
            options["embed"] = embed
        if files:
            options["files"] = files
        if view is not None:
            options["view"] = view
        async with asyncio.timeout(CALL_SECONDS):
            return await self._post_somewhere(content, options)

    async def _post_somewhere(self, content: str | None, options: dict[str, Any]) -> discord.Message | None:
        if self.token_alive and self.interaction is not None:
            try:
                return await self.interaction.followup.send(
                    content or MISSING, ephemeral=self.private, wait=True, **options
                )
            except discord.HTTPException as error:
                if not _token_gone(error):
                    raise
                self._token_dead = True
                _rewind(options)
        channel = self._channel()
        if channel is not None:
            try:
                return await channel.send(content, **options)
            except discord.Forbidden as error:
                self._channel_closed = True
                log.warning(
                    "may not post in channel %s (%s); session messages go to DMs",
                    self.channel_id,
                    describe(error),
                )
                _rewind(options)
        return await self._send_privately(content, options)

    async def _send_privately(self, content: str | None, options: dict[str, Any]) -> discord.Message | None:
        """Once neither the token nor the channel works: to the member's DMs, if they accept them."""
        if self.owner_id is None:
            log.info("session message dropped: no interaction token, channel or member to send it to")
            return None
        options = {key: value for key, value in options.items() if key != "view"}
        try:
            dm = await self.bot.create_dm(discord.Object(id=self.owner_id))
            message = await dm.send(content, **options)
        except discord.HTTPException as error:
            log.warning(
                "could not DM member %s (%s); session message dropped", self.owner_id, describe(error)
            )
            return None
        self._last_dm = dm.id
        return message


def _rewind(options: dict[str, Any]) -> None:
    """Files are read once per attempt; rewind them before sending through another route."""
    for file in options.get("files", []):
        file.reset()
