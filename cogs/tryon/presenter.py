"""`DiscordPresenter`: the engine's Presenter for one session, rendered as Discord messages."""

from __future__ import annotations

import io
import logging
from collections.abc import Awaitable, Callable

import discord

from bot.app import TryOnBot
from bot.tryon.presenter import ErrorReported, RecordingReady, SnapshotReady, SnippetReady, StatusChanged
from bot.tryon.session import TERMINAL_STATES, SessionState
from cogs.tryon.outlet import SessionOutlet
from cogs.tryon.render import recording_embed, status_embed
from cogs.tryon.updater import CoalescingUpdater
from cogs.tryon.views import session_controls
from cogs.utils.formatting import quote_safely

log = logging.getLogger(__name__)


class DiscordPresenter:
    """One status message per session, edited in place through a coalescing updater; media as new messages.

    Every method returns quickly and never raises: a failed Discord call is logged and the session goes on.
    """

    def __init__(
        self,
        outlet: SessionOutlet,
        owner_id: int,
        *,
        status_interval: float,
        remember_status: Callable[[str, int], Awaitable[None]] | None = None,
    ) -> None:
        self.outlet = outlet
        self.owner_id = owner_id
        # Called once with (session id, status message id) so a restart can find the message again.
        self._remember_status = remember_status
        self.updater: CoalescingUpdater[StatusChanged] = CoalescingUpdater(self._show_status, status_interval)
        self.last_status: StatusChanged | None = None

    async def _show_status(self, event: StatusChanged) -> None:
        if event.state in TERMINAL_STATES or event.state in (SessionState.ENDING, SessionState.FINALISING):
            view: discord.ui.View | None = None  # no buttons once it is ending
        else:
            view = session_controls(event.session_id, streaming=event.state is SessionState.STREAMING)
        first = self.outlet.status_message_id is None
        await self.outlet.edit_status(embed=status_embed(event, self.owner_id), view=view)
        if first and self.outlet.status_message_id is not None and self._remember_status is not None:
            await self._remember_status(event.session_id, self.outlet.status_message_id)

    async def status_changed(self, event: StatusChanged) -> None:
        """Coalesce into the status message; a final state is written before this returns."""
        self.last_status = event
        if event.state in TERMINAL_STATES:
            await self.updater.close(event)
        else:
            self.updater.publish(event)

    async def snippet_ready(self, event: SnippetReady) -> None:
        """A GIF of the newest outfit, as a new message (if it fits the upload limit)."""
        if len(event.data) > self.outlet.filesize_limit:
            log.warning("snippet of %s is %d bytes, over the upload limit", event.session_id, len(event.data))
            return
        caption = f"**{quote_safely(event.outfit, 300)}**"
        await self._post(caption, files=[discord.File(io.BytesIO(event.data), event.filename)])

    async def snapshot_ready(self, event: SnapshotReady) -> None:
        """A still of the current frame (if it fits the upload limit)."""
        if len(event.data) > self.outlet.filesize_limit:
            log.warning("snapshot of %s is over the upload limit", event.session_id)
            return
        caption = f"Snapshot: {quote_safely(event.caption, 300)}"
        await self._post(caption, files=[discord.File(io.BytesIO(event.data), event.filename)])

    async def recording_ready(self, event: RecordingReady) -> None:
        """The final message: recording links, thumbnail, and the before/after still."""
        files = []
        still = event.before_after_png
        if still and len(still) <= self.outlet.filesize_limit:
            files.append(discord.File(io.BytesIO(still), "before-after.png"))
        embed = recording_embed(event, with_still=bool(files))
        await self._post(f"<@{self.owner_id}>", embed=embed, files=files)

    async def error(self, event: ErrorReported) -> None:
        """What went wrong, in the member's words; unexpected failures carry an id for the logs."""
        text = event.message
        if event.error_id:
            text += f" (error id `{event.error_id}`)"
        if not self.outlet.token_alive:
            text = f"<@{self.owner_id}> {text}"  # a channel post: say whom it is about (nobody is pinged)
        await self._post(text)

    async def _post(
        self, content: str, *, embed: discord.Embed | None = None, files: list[discord.File] | None = None
    ) -> None:
        try:
            await self.outlet.post(content, embed=embed, files=files)
        except discord.HTTPException:
            log.warning("could not post for a session of %s", self.owner_id, exc_info=True)


def presenter_for_bot(
    bot: TryOnBot,
    outlet: SessionOutlet,
    owner_id: int,
    remember_status: Callable[[str, int], Awaitable[None]] | None = None,
) -> DiscordPresenter:
    """A presenter using the bot's configured status interval."""
    return DiscordPresenter(
        outlet,
        owner_id,
        status_interval=bot.config.discord.status_edit_seconds,
        remember_status=remember_status,
    )
