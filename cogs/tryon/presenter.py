"""`DiscordPresenter`: the engine's Presenter for one session, rendered as Discord messages."""

from __future__ import annotations

import io
import logging
from collections.abc import Awaitable, Callable

import discord

from bot.app import TryOnBot
from bot.tryon.models import FINISHING_STATES, TERMINAL_STATES, SessionState
from bot.tryon.presenter import (
    BroadcastReady,
    ErrorReported,
    RecordingReady,
    SnapshotReady,
    SnippetReady,
    StatusChanged,
)
from cogs.tryon.outlet import SessionOutlet
from cogs.tryon.posts import PostLog
from cogs.tryon.render import status_embed
from cogs.tryon.results import final_post
from cogs.tryon.updater import CoalescingUpdater
from cogs.tryon.views import ended_controls, session_controls
from cogs.utils.delivery import describe_failure
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
        posts: PostLog | None = None,
        offer_sharing: bool = False,
    ) -> None:
        self.outlet = outlet
        self.owner_id = owner_id
        # Show "Share live" until the try-on is shared (Watch live runs, and the status is public).
        self.offer_sharing = offer_sharing and not outlet.route.private
        # Called once with (session id, status message id) so a restart can find the message again.
        self._remember_status = remember_status
        self.updater: CoalescingUpdater[StatusChanged] = CoalescingUpdater(self._show_status, status_interval)
        # The session's public posts are written down as they are made, for Delete and /tryon forget.
        self._posts = posts
        self._session_id: str | None = None  # known from the first event on
        if posts is not None:
            outlet.on_posted = self._posted

    async def _posted(self, message: discord.Message) -> None:
        if self._posts is not None and self._session_id is not None:
            await self._posts.kept(self._session_id, message)

    @property
    def _deletable(self) -> bool:
        """Whether Delete can be offered: public posts (a private session's messages are ephemeral)."""
        return self._posts is not None and not self.outlet.route.private

    @property
    def upload_budget_bytes(self) -> int:
        """What Discord accepts in one message here: the interaction's upload limit, lowered after a 413."""
        return self.outlet.filesize_limit

    async def _show_status(self, event: StatusChanged) -> None:
        if event.state in TERMINAL_STATES:
            view = ended_controls(event.session_id) if self._deletable else None
        elif event.state in FINISHING_STATES:
            view = None  # no buttons while it is ending
        else:
            view = session_controls(
                event.session_id,
                streaming=event.state is SessionState.STREAMING,
                shareable=self.offer_sharing and event.watch_url is None,
            )
        before = self.outlet.status_message_id
        await self.outlet.edit_status(embed=status_embed(event, self.owner_id), view=view)
        moved = self.outlet.status_message_id != before
        if moved and self.outlet.status_message_id is not None and self._remember_status is not None:
            await self._remember_status(event.session_id, self.outlet.status_message_id)

    async def status_changed(self, event: StatusChanged) -> None:
        """Coalesce into the status message; a final state (or the last before a restart) is written before
        this returns."""
        self._session_id = event.session_id
        if event.state in TERMINAL_STATES or event.bot_restart == "handing_over":
            await self.updater.close(event)
        else:
            self.updater.publish(event)

    async def snippet_ready(self, event: SnippetReady) -> None:
        """A GIF of the newest outfit, as a new message (if it fits the upload limit)."""
        self._session_id = event.session_id
        caption = f"**{quote_safely(event.outfit, 300)}**"
        await self._post_file(caption, event.data, event.filename, what="The clip of " + caption)

    async def snapshot_ready(self, event: SnapshotReady) -> None:
        """A still of the current frame (if it fits the upload limit)."""
        self._session_id = event.session_id
        caption = f"Snapshot: {quote_safely(event.caption, 300)}"
        await self._post_file(caption, event.data, event.filename, what="The snapshot")

    async def _post_file(self, caption: str, data: bytes, filename: str, *, what: str) -> None:
        """Upload `data` with its caption; if Discord refuses the upload, say so in words instead."""
        if len(data) > self.outlet.filesize_limit:
            log.warning("%s is %d bytes, over the upload limit", filename, len(data))
            return
        try:
            await self.outlet.post(caption, files=[discord.File(io.BytesIO(data), filename)])
            return
        except (discord.HTTPException, TimeoutError) as error:
            why = self._upload_refused(error, len(data))
        await self._post(f"{what} could not be posted ({why}).")

    def _upload_refused(self, error: discord.HTTPException | TimeoutError, size: int) -> str:
        """Log a refused upload and say why, in words; after a 413 no upload that large is tried again."""
        log.warning("upload for a session of %s refused (%s)", self.owner_id, describe_failure(error))
        if isinstance(error, discord.HTTPException) and (error.status == 413 or error.code == 40005):
            self.outlet.filesize_limit = min(self.outlet.filesize_limit, size - 1)
            return "it is over this server's upload limit"
        return "Discord did not accept the upload"

    async def broadcast_ready(self, event: BroadcastReady) -> None:
        """Nothing to post: the status message shows the watch link (the token never reaches Discord)."""

    async def recording_ready(self, event: RecordingReady) -> None:
        """The final message: the highlight video and stills uploaded with it, links, "Get the full video".

        A refused upload is tried again with what still fits (after a 413 the limit is lowered below the
        largest file), and at last without files: the links and the button matter most.
        """
        self._session_id = event.session_id
        post = final_post(event, self.owner_id, self.outlet.filesize_limit, deletable=self._deletable)
        while post.files:
            try:
                await self.outlet.post(
                    post.content, embed=post.embed, files=post.discord_files(), view=post.view
                )
                return
            except (discord.HTTPException, TimeoutError) as error:
                limit = self.outlet.filesize_limit
                self._upload_refused(error, max(len(data) for _, data in post.files))
                too_large = self.outlet.filesize_limit < limit
                limit = self.outlet.filesize_limit if too_large else 0
                post = final_post(event, self.owner_id, limit, deletable=self._deletable)
        await self._post(post.content, embed=post.embed, view=post.view)

    async def error(self, event: ErrorReported) -> None:
        """What went wrong, in the member's words; unexpected failures carry an id for the logs."""
        if event.session_id is not None:
            self._session_id = event.session_id
        text = event.message
        if event.error_id:
            text += f" (error id `{event.error_id}`)"
        if not self.outlet.route.token_alive:
            text = f"<@{self.owner_id}> {text}"  # a channel post: say whom it is about (nobody is pinged)
        await self._post(text)

    async def _post(
        self,
        content: str,
        *,
        embed: discord.Embed | None = None,
        files: list[discord.File] | None = None,
        view: discord.ui.View | None = None,
    ) -> None:
        try:
            await self.outlet.post(content, embed=embed, files=files, view=view)
        except (discord.HTTPException, TimeoutError) as error:
            log.warning("could not post for a session of %s (%s)", self.owner_id, describe_failure(error))


def presenter_for_bot(
    bot: TryOnBot,
    outlet: SessionOutlet,
    owner_id: int,
    remember_status: Callable[[str, int], Awaitable[None]] | None = None,
    *,
    guild_id: int | None = None,
) -> DiscordPresenter:
    """A presenter using the bot's configured status interval (offering "Share live" where it works); with
    `guild_id`, its posts are recorded."""
    posts = None if guild_id is None else PostLog(bot.runtime.store, guild_id, owner_id)
    return DiscordPresenter(
        outlet,
        owner_id,
        status_interval=bot.config.discord.status_edit_seconds,
        remember_status=remember_status,
        posts=posts,
        offer_sharing=bot.runtime.engine.watch_available,
    )
