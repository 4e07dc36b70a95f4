"""Where one session's messages go: its status message, edited in place, and its other messages."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import discord

from bot.app import TryOnBot
from cogs.utils.delivery import NO_MENTIONS, Route, describe_failure

log = logging.getLogger(__name__)

# One Discord call, discord.py's own retries included (it waits 1 s, 3 s, 5 s... between 5xx answers): a
# 429 or a single 5xx still lands in time, anything longer gives way to a fallback the member sees within 5 s.
CALL_SECONDS = 3.5
# discord.py raises some 5xx at once (503 on the bot API); the edit is tried again after this pause.
SERVER_ERROR_PAUSE = 0.5
# A status message that cannot be edited (deleted, forbidden, failing) is posted again at most this often.
MAX_STATUS_MOVES = 3
MISSING: Any = discord.utils.MISSING


class SessionOutlet:
    """Posts the session's one status message, edits it in place, and posts its other messages.

    Messages take the session's `Route` (the interaction's webhook while the token lives, then the channel,
    then the member's DMs). A status message that cannot be edited any more (deleted by a moderator,
    forbidden, failing past `CALL_SECONDS`) is posted again wherever messages can still go, and edited
    there from then on.
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
        self.route = Route(
            bot, interaction=interaction, channel_id=channel_id, private=private, owner_id=owner_id
        )
        self.status_message_id = status_message_id
        self.filesize_limit = interaction.filesize_limit if interaction is not None else 10 * 1024 * 1024
        self.status_moves = 0
        self._status_dm: int | None = None  # the DM channel holding the status message, once moved there
        # Told of every message posted (the status message too), e.g. to record it for Delete; never raises.
        self.on_posted: Callable[[discord.Message], Awaitable[None]] | None = None

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
                    "status message %s could not be edited (%s)",
                    self.status_message_id,
                    describe_failure(error),
                )
            if self.status_moves >= MAX_STATUS_MOVES:
                return
            self.status_moves += 1
        await self._post_status(embed, view)

    async def _post_status(self, embed: discord.Embed, view: discord.ui.View | None) -> None:
        try:
            message = await self.post(embed=embed, view=view or None)
        except (discord.HTTPException, TimeoutError) as error:
            log.warning("status message could not be posted (%s)", describe_failure(error))
            return
        if message is not None:
            self.status_message_id, self._status_dm = message.id, self.route.last_dm

    async def _edit_in_place(
        self, message_id: int, embed: discord.Embed, view: discord.ui.View | None
    ) -> bool:
        """Edit the status message where it is; False when no route reaches it any more."""
        options: dict[str, Any] = {"content": None, "embed": embed, "allowed_mentions": NO_MENTIONS}
        while True:
            try:
                if self._status_dm is not None:
                    # No buttons in DMs: presses there carry no server and would be refused.
                    dm = self.bot.get_partial_messageable(self._status_dm)
                    await dm.get_partial_message(message_id).edit(view=None, **options)
                    return True
                return await self.route.edit(message_id, {**options, "view": view})
            except discord.DiscordServerError:
                await asyncio.sleep(SERVER_ERROR_PAUSE)

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
            message = await self.route.send(content, options)
        if message is not None and self.on_posted is not None:
            await self.on_posted(message)
        return message
