"""`/tryon`: what members can do — start, steer, snapshot, stop, status, quota, history, show, forget."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import TryOnBot
from bot.store.records import SessionRecord
from bot.tryon.engine import Engine
from bot.tryon.errors import NoSuchSession, PhotoRejected, TryOnError
from bot.tryon.models import SessionRequest, SessionSummary
from bot.tryon.photos import MAX_PHOTO_BYTES
from cogs.tryon.outlet import SessionOutlet
from cogs.tryon.presenter import DiscordPresenter, presenter_for_bot
from cogs.tryon.render import history_line, quota_text, recording_links_text, status_line
from cogs.tryon.views import (
    AgainButton,
    ForgetConfirmation,
    HistoryPages,
    OutfitModal,
    PhotoFetcher,
    SessionButton,
    StartModal,
)
from cogs.utils.checks import is_moderator
from cogs.utils.delivery import NO_MENTIONS, post_to_mod_log, send_reply
from cogs.utils.download import download_attachment
from cogs.utils.formatting import duration

log = logging.getLogger(__name__)

PHOTO_DOWNLOAD_SECONDS = 20.0
# Expired photos are never used (reads check the time); the sweep only removes their files.
PHOTO_SWEEP_SECONDS = 600.0
PHOTO_TYPES = (
    "image/jpeg",
    "image/png",
    "image/webp",
    "image/gif",
    "image/bmp",
    "image/heic",
    "image/heif",
    "image/avif",
)


def _is_image(attachment: discord.Attachment) -> bool:
    return (attachment.content_type or "").split(";")[0] in PHOTO_TYPES


def _check_attachment(photo: discord.Attachment) -> None:
    """Refusals that need no await at all: answered directly, without even a defer."""
    if photo.content_type is not None and photo.content_type.split(";")[0] not in PHOTO_TYPES:
        raise PhotoRejected("Please attach a photo (JPEG, PNG or WebP), not another kind of file.")
    if photo.size > MAX_PHOTO_BYTES:
        raise PhotoRejected(
            f"That photo is larger than {MAX_PHOTO_BYTES // 2**20} MiB. Please attach a smaller one."
        )


def _check_shareable(private: bool) -> None:
    if private:
        raise TryOnError(
            "A private try-on can't be shared live. Leave out `private` to share it.", reason="watch_private"
        )


def _member_roles(interaction: discord.Interaction[TryOnBot]) -> tuple[int, ...]:
    user = interaction.user
    return tuple(role.id for role in user.roles) if isinstance(user, discord.Member) else ()


@app_commands.allowed_contexts(guilds=True, dms=False, private_channels=False)
@app_commands.allowed_installs(guilds=True, users=False)
class TryOn(
    commands.GroupCog, group_name="tryon", group_description="Try outfits on your own photo as live video"
):
    """Members' commands. Checks that can fail fast run before anything is spent; the engine does the work."""

    def __init__(self, bot: TryOnBot) -> None:
        self.bot = bot
        super().__init__()
        # Context menus cannot live in a group cog's class body: made here, added to the tree on load.
        self.try_on_menu = app_commands.ContextMenu(name="Try on with this photo", callback=self._try_on_menu)
        self.try_on_menu.allowed_contexts = app_commands.AppCommandContext(guild=True)
        self.try_on_menu.allowed_installs = app_commands.AppInstallationType(guild=True)

    @property
    def engine(self) -> Engine[Any]:
        """The engine: it decides, this cog renders."""
        return self.bot.runtime.engine

    async def cog_load(self) -> None:
        """Register the persistent buttons; take back sessions still live on workers; settle the others a
        crash left behind and offer their recordings.

        Settling is quick and happens before any command can admit a session; offering the recordings may
        take minutes (or wait out an Odyssey outage), so it runs alongside the bot instead of holding up
        start-up.
        """
        self.bot.add_dynamic_items(SessionButton, AgainButton)
        self.bot.tree.add_command(self.try_on_menu)
        if not self.bot.has_runtime:
            return
        self.bot.run_in_background(self._sweep_photos(), name="tryon-sweep-photos")
        taken_back = await self.engine.reattach(self._recovery_presenter)
        if taken_back:
            log.info("took back %d sessions still streaming on workers", taken_back)
        recovered = await self.engine.interrupt_crashed()
        if recovered:
            log.info("settled %d sessions interrupted by a restart", len(recovered))
            offer = self.engine.offer_recovered(recovered, self._recovery_presenter)
            self.bot.run_in_background(offer, name="tryon-offer-recovered")

    async def cog_unload(self) -> None:
        """Stop routing presses and the menu to this cog."""
        self.bot.remove_dynamic_items(SessionButton, AgainButton)
        self.bot.tree.remove_command(self.try_on_menu.name, type=self.try_on_menu.type)

    async def _sweep_photos(self) -> None:
        """Remove kept photos past their time: at start-up, then every few minutes."""
        while True:
            try:
                removed = await self.engine.sweep_photos()
            except Exception:
                log.exception("could not sweep kept photos")
            else:
                if removed:
                    log.info("removed %d kept photos past their time", removed)
            await asyncio.sleep(PHOTO_SWEEP_SECONDS)

    async def _try_on_menu(
        self, interaction: discord.Interaction[TryOnBot], message: discord.Message
    ) -> None:
        await self.try_on_message(interaction, message)

    def _recovery_presenter(self, record: SessionRecord) -> DiscordPresenter:
        # After a restart there is no interaction token: public sessions hear back in their channel,
        # private ones in the member's DMs.
        front_end = record.front_end or {}
        outlet = SessionOutlet(
            self.bot,
            record.channel_id,
            status_message_id=front_end.get("status_message_id"),
            private=bool(front_end.get("private")),
            owner_id=record.user_id,
        )
        return presenter_for_bot(self.bot, outlet, record.user_id)

    @staticmethod
    def _guild_id(interaction: discord.Interaction[TryOnBot]) -> int:
        assert interaction.guild_id is not None  # the tree refuses DMs before any command runs
        return interaction.guild_id

    # start

    @app_commands.command(name="start", description="Start a live try-on with your photo and an outfit")
    @app_commands.describe(
        photo="A clear photo of yourself (JPEG, PNG or WebP); left out: your last photo here, if kept",
        outfit="The outfit to try, e.g. 'a red wool coat with brass buttons'",
        orientation="Tall (portrait, the default) or wide (landscape) video",
        private="Only you see the live status and clips",
        watch="Share it live: a link anyone can open to watch it in a browser",
    )
    async def start(
        self,
        interaction: discord.Interaction[TryOnBot],
        outfit: app_commands.Range[str, 1, 300],
        photo: discord.Attachment | None = None,
        orientation: Literal["portrait", "landscape"] | None = None,
        private: bool = False,
        watch: bool = False,
    ) -> None:
        if photo is not None:
            _check_attachment(photo)
        if watch:
            _check_shareable(private)
            self.engine.check_watch_available()
        self.engine.check_not_running(interaction.user.id)
        portrait = None if orientation is None else orientation == "portrait"
        fetch = self._downloader(photo) if photo is not None else self._kept_photo(interaction, None)
        await self.begin(interaction, fetch, outfit, private=private, portrait=portrait, watch=watch)

    async def begin(
        self,
        interaction: discord.Interaction[TryOnBot],
        fetch_photo: PhotoFetcher,
        outfit: str,
        *,
        private: bool = False,
        portrait: bool | None = None,
        watch: bool = False,
    ) -> None:
        """Start a try-on (command, modal or button); the photo is fetched once the cheap checks pass."""
        # Acknowledge privately before any await on the database or the network: the member hears back at
        # once, refusals replace this private message, and the status message that follows is a message of
        # its own (public unless `private`).
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            session = await self._begin(interaction, fetch_photo, outfit, private, portrait, watch)
        except TryOnError as error:
            try:
                await interaction.edit_original_response(content=error.message, allowed_mentions=NO_MENTIONS)
            finally:
                await post_to_mod_log(self.bot, error.audit_entry)
            return
        where = "Only you can see it." if private else "Its status is posted below."
        if watch:
            where += " The Watch live link is on it: anyone with the link can watch."
        await interaction.edit_original_response(
            content=f"Your try-on `{session.id}` is on its way. {where}", allowed_mentions=NO_MENTIONS
        )

    def _downloader(self, photo: discord.Attachment) -> PhotoFetcher:
        async def fetch() -> tuple[bytes, str | None]:
            data = await download_attachment(
                photo,
                origins=self.bot.config.discord.attachment_origins,
                max_bytes=MAX_PHOTO_BYTES,
                within=PHOTO_DOWNLOAD_SECONDS,
            )
            return data, None

        return fetch

    def _kept_photo(self, interaction: discord.Interaction[TryOnBot], of_session: str | None) -> PhotoFetcher:
        async def fetch() -> tuple[bytes, str | None]:
            kept = await self.engine.kept_photo(
                self._guild_id(interaction), interaction.user.id, of_session=of_session
            )
            return kept.data, kept.upload_sha256

        return fetch

    async def _begin(
        self,
        interaction: discord.Interaction[TryOnBot],
        fetch_photo: PhotoFetcher,
        outfit: str,
        private: bool,
        portrait: bool | None,
        watch: bool,
    ) -> SessionSummary:
        """The engine's checks that need no photo, then the photo, then the admission (quota reserved)."""
        guild_id, user_id, roles = (
            self._guild_id(interaction),
            interaction.user.id,
            _member_roles(interaction),
        )
        await self.engine.check_start(guild_id, user_id, interaction.channel_id, roles, outfit)
        await interaction.edit_original_response(content="Checking your photo…", allowed_mentions=NO_MENTIONS)
        data, kept_sha256 = await fetch_photo()
        request = SessionRequest(
            guild_id=guild_id,
            user_id=user_id,
            channel_id=interaction.channel_id,
            photo=data,
            outfit=outfit,
            role_ids=roles,
            front_end={"private": private},
            portrait=portrait,
            kept_photo_sha256=kept_sha256,
            watch=watch,
        )
        outlet = SessionOutlet(
            self.bot, interaction.channel_id, interaction=interaction, private=private, owner_id=user_id
        )
        presenter = presenter_for_bot(self.bot, outlet, user_id, self._remember_status(private))
        return await self.engine.start(request, presenter)

    # going on: the same photo again, or a photo already posted

    async def try_again(self, interaction: discord.Interaction[TryOnBot], session_id: str) -> None:
        """ "Try another outfit" on a finished try-on: its owner picks an outfit for the same photo."""
        record = await self.bot.runtime.store.sessions.get(session_id)
        if record is None or record.guild_id != interaction.guild_id:
            raise NoSuchSession()
        if record.user_id != interaction.user.id:
            await send_reply(
                interaction, "Only the member whose try-on this was can try another outfit on it."
            )
            return
        self.engine.check_not_running(interaction.user.id)
        fetch = self._kept_photo(interaction, session_id)
        await fetch()  # said now, before the member types an outfit for a photo that is gone
        await interaction.response.send_modal(StartModal(interaction.user.id, fetch))

    async def try_on_message(
        self, interaction: discord.Interaction[TryOnBot], message: discord.Message
    ) -> None:
        """The "Try on with this photo" menu: the first image of a message the member posted."""
        image = next((a for a in message.attachments if _is_image(a)), None)
        if image is None:
            raise PhotoRejected("That message has no photo attached.", reason="no_photo")
        if message.author.id != interaction.user.id:
            raise PhotoRejected(
                "You can only try outfits on a photo you posted yourself.", reason="not_own_photo"
            )
        _check_attachment(image)
        self.engine.check_not_running(interaction.user.id)
        await interaction.response.send_modal(StartModal(interaction.user.id, self._downloader(image)))

    def _remember_status(self, private: bool) -> Callable[[str, int], Awaitable[None]]:
        async def remember(session_id: str, message_id: int) -> None:
            data = {"private": private, "status_message_id": message_id}
            await self.bot.runtime.store.sessions.set_front_end(session_id, data)

        return remember

    # steering

    def _own_session(self, interaction: discord.Interaction[TryOnBot]) -> SessionSummary:
        session = self.engine.current(interaction.user.id, self._guild_id(interaction))
        if session is None:
            raise NoSuchSession("You have no try-on running here. Start one with /tryon start.")
        return session

    @app_commands.command(name="outfit", description="Change the outfit of your running try-on")
    @app_commands.describe(prompt="The next outfit")
    async def outfit(
        self, interaction: discord.Interaction[TryOnBot], prompt: app_commands.Range[str, 1, 300]
    ) -> None:
        session = self._own_session(interaction)
        await self.apply_outfit(interaction, session.id, prompt)

    async def apply_outfit(
        self, interaction: discord.Interaction[TryOnBot], session_id: str, text: str
    ) -> None:
        """Check and apply an outfit (command or modal); the clip follows as its own message."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        await self.engine.steer(
            session_id, guild_id=self._guild_id(interaction), user_id=interaction.user.id, text=text
        )
        await send_reply(interaction, "New outfit applied.")

    @app_commands.command(name="snapshot", description="Post a still of your try-on right now")
    async def snapshot(self, interaction: discord.Interaction[TryOnBot]) -> None:
        await self._snapshot(interaction, self._own_session(interaction).id)

    async def _snapshot(self, interaction: discord.Interaction[TryOnBot], session_id: str) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        taken = await self.engine.snapshot(session_id, guild_id=self._guild_id(interaction))
        await send_reply(
            interaction, "Snapshot posted." if taken else "Nothing to capture yet; wait for the video."
        )

    @app_commands.command(name="stop", description="End your try-on (or leave the queue)")
    async def stop(self, interaction: discord.Interaction[TryOnBot]) -> None:
        await self._end(interaction, self._own_session(interaction).id, "Ending your try-on")

    async def _end(self, interaction: discord.Interaction[TryOnBot], session_id: str, said: str) -> None:
        audit = self.engine.end(  # stopped before anything else can run, e.g. the member's next start
            session_id,
            guild_id=self._guild_id(interaction),
            user_id=interaction.user.id,
            moderator=is_moderator(interaction),
        )
        try:
            await send_reply(interaction, f"{said}; the recording follows.")
        finally:
            if audit is not None:
                await post_to_mod_log(self.bot, await audit)

    # buttons

    async def may_control(self, interaction: discord.Interaction[TryOnBot], session_id: str) -> bool:
        """The session's owner or a moderator of its server; everyone else gets a private refusal."""
        await self.engine.may_control(
            session_id,
            guild_id=self._guild_id(interaction),
            user_id=interaction.user.id,
            moderator=is_moderator(interaction),
        )
        return True

    async def press(self, interaction: discord.Interaction[TryOnBot], action: str, session_id: str) -> None:
        """A session button was pressed by someone allowed to."""
        if action == "stop":
            await self._end(interaction, session_id, "Ending the try-on")
        elif action == "snap":
            await self._snapshot(interaction, session_id)
        elif action == "share":
            await self._share(interaction, session_id)
        else:
            self.engine.check_live(session_id, guild_id=self._guild_id(interaction))
            await interaction.response.send_modal(OutfitModal(session_id, interaction.user.id))

    async def _share(self, interaction: discord.Interaction[TryOnBot], session_id: str) -> None:
        """ "Share live": the owner's try-on goes out from a fresh stream part; the status has the link."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        url = await self.engine.share_live(
            session_id, guild_id=self._guild_id(interaction), user_id=interaction.user.id
        )
        await send_reply(
            interaction,
            f"Shared live: anyone with this link can watch, until the try-on ends: {url}\n"
            "The link and how many people are watching are on the status message.",
        )

    # reading

    @app_commands.command(name="status", description="Where your try-on stands")
    async def status(self, interaction: discord.Interaction[TryOnBot]) -> None:
        session = self._own_session(interaction)
        last = session.last_status
        line = status_line(last) if last is not None else f"State: {session.state}."
        await send_reply(
            interaction, f"{line}\nTime left: {duration(session.remaining_seconds)} · session `{session.id}`"
        )

    @app_commands.command(name="quota", description="How much try-on time you have left")
    async def quota(self, interaction: discord.Interaction[TryOnBot]) -> None:
        # Acknowledged before the queries: under load they may wait behind other writes for seconds.
        await interaction.response.defer(ephemeral=True, thinking=True)
        remaining = await self.engine.remaining_quota(
            self._guild_id(interaction), interaction.user.id, _member_roles(interaction)
        )
        await send_reply(interaction, quota_text(remaining))

    @app_commands.command(name="history", description="Your past try-ons in this server")
    async def history(self, interaction: discord.Interaction[TryOnBot]) -> None:
        guild_id, user_id = self._guild_id(interaction), interaction.user.id
        size = self.bot.config.discord.history_page_size
        # Acknowledged before the query, which may wait behind other writes (the page replaces "thinking").
        await interaction.response.defer(ephemeral=True, thinking=True)

        async def render(page: int) -> tuple[str, bool]:
            rows = await self.bot.runtime.store.sessions.history(
                guild_id, user_id, limit=size + 1, offset=page * size
            )
            if not rows:
                empty = "You have no try-ons here yet. Start one with /tryon start."
                return (empty if page == 0 else "No more try-ons."), False
            lines = "\n".join(history_line(r) for r in rows[:size])
            return f"**Your try-ons (page {page + 1})**\n{lines}", len(rows) > size

        text, has_next = await render(0)
        pages = HistoryPages(user_id, 0, has_next, render)
        pages.origin = interaction
        await send_reply(interaction, text, view=pages)

    @app_commands.command(name="show", description="Fresh links to one of your recordings")
    @app_commands.describe(id="The session id (see /tryon history)")
    async def show(
        self, interaction: discord.Interaction[TryOnBot], id: app_commands.Range[str, 1, 40]
    ) -> None:
        guild_id = self._guild_id(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)
        links = await self.engine.recording_links(
            id, guild_id=guild_id, user_id=interaction.user.id, moderator=is_moderator(interaction)
        )
        await send_reply(
            interaction, f"Session `{id}` (links expire in about an hour):\n{recording_links_text(links)}"
        )

    @app_commands.command(name="forget", description="Delete your stored try-on data")
    async def forget(self, interaction: discord.Interaction[TryOnBot]) -> None:
        async def confirmed(pressed: discord.Interaction[TryOnBot]) -> None:
            result = await self.bot.runtime.store.forget(pressed.user.id)
            kept = (
                f" {result.live_sessions_kept} running session(s) were kept."
                if result.live_sessions_kept
                else ""
            )
            photos = (
                f" Deleted your kept photo{'s' if result.photos_deleted > 1 else ''} too."
                if result.photos_deleted
                else ""
            )
            deleted = f"Deleted {result.sessions_deleted} try-on session(s) and their prompts."
            await pressed.response.edit_message(
                content=f"{deleted}{photos}{kept}",
                view=None,
            )

        question = ForgetConfirmation(interaction.user.id, confirmed)
        question.origin = interaction
        await send_reply(
            interaction,
            "Delete your stored try-ons, prompts and recording links in every server? Usage this month is "
            "kept (it counts toward quotas) but no longer linked to the sessions.",
            view=question,
        )


async def setup(bot: TryOnBot) -> None:
    """Extension entry point."""
    await bot.add_cog(TryOn(bot))
