"""`/tryon`: what members can do: start, steer, snapshot, stop, status, quota, history, show, forget, help."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import TryOnBot
from bot.store.records import GuildSettings, MemberSettings, SessionRecord
from bot.tryon.engine import Engine
from bot.tryon.errors import NoSuchSession, NotAllowed, PhotoRejected, TryOnError
from bot.tryon.models import SessionRequest, SessionSummary
from bot.tryon.photos import MAX_PHOTO_BYTES
from cogs.tryon.guide import FIRST_TRY_ON_NOTICE, GuideFacts, help_embed
from cogs.tryon.outlet import SessionOutlet
from cogs.tryon.posts import removal_text, remove_posts
from cogs.tryon.presenter import DiscordPresenter, presenter_for_bot
from cogs.tryon.render import (
    history_line,
    member_settings_text,
    quota_text,
    recording_links_text,
    status_line,
)
from cogs.tryon.results import LOCAL_LINKS_NOTE, full_video_answer, full_video_limit_text, links_are_local
from cogs.tryon.views import (
    ForgetConfirmation,
    HistoryPages,
    OutfitModal,
    PhotoFetcher,
    PostButton,
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
# "Get the full video" asks the video service for new links each time: each member may press it this many
# times per window (all posts together). Kept in memory: a restart or a reload of the cog starts afresh.
FULL_VIDEO_PRESSES = 3
FULL_VIDEO_WINDOW_SECONDS = 300.0
# Audit action written when a moderator deletes the posts of someone else's try-on.
POSTS_DELETED = "posts_deleted"
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


def _posted_publicly(record: SessionRecord) -> bool:
    """Whether the session's messages went to its channel (not private): its final post is for everyone."""
    return not (record.front_end or {}).get("private", False)


@dataclasses.dataclass(frozen=True)
class StartChoices:
    """How a new try-on runs: what the command said, else the member's settings, else the defaults."""

    private: bool
    portrait: bool | None  # None: the engine's default orientation
    snippets: bool

    @classmethod
    def resolve(
        cls,
        prefs: MemberSettings,
        server: GuildSettings,
        *,
        private: bool | None,
        orientation: str | None,
    ) -> StartChoices:
        """The command's options win over the member's `/tryon settings`, then the server's, the defaults.

        (A server with clips off has none whatever the member chose: the engine decides that.)
        """
        chosen_private = next(
            (choice for choice in (private, prefs.private, server.private_by_default) if choice is not None),
            False,
        )
        chosen_orientation = orientation if orientation is not None else prefs.orientation
        return cls(
            private=bool(chosen_private),
            portrait=None if chosen_orientation is None else chosen_orientation == "portrait",
            snippets=prefs.snippets is not False,
        )


@app_commands.allowed_contexts(guilds=True, dms=False, private_channels=False)
@app_commands.allowed_installs(guilds=True, users=False)
class TryOn(
    commands.GroupCog, group_name="tryon", group_description="Try outfits on your own photo as live video"
):
    """Members' commands. Checks that can fail fast run before anything is spent; the engine does the work."""

    def __init__(self, bot: TryOnBot) -> None:
        self.bot = bot
        self.full_video_presses: commands.CooldownMapping[int] = commands.CooldownMapping.from_cooldown(
            FULL_VIDEO_PRESSES, FULL_VIDEO_WINDOW_SECONDS, lambda member_id: member_id
        )
        super().__init__()
        self._photo_sweeper: asyncio.Task[None] | None = None
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
        self.bot.add_dynamic_items(SessionButton, PostButton)
        self.bot.tree.add_command(self.try_on_menu)
        if not self.bot.has_runtime:
            return
        self._photo_sweeper = self.bot.run_in_background(self._sweep_photos(), name="tryon-sweep-photos")
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
        self.bot.remove_dynamic_items(SessionButton, PostButton)
        self.bot.tree.remove_command(self.try_on_menu.name, type=self.try_on_menu.type)
        if self._photo_sweeper is not None:  # a reloaded cog starts its own
            self._photo_sweeper.cancel()

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
        return presenter_for_bot(self.bot, outlet, record.user_id, guild_id=record.guild_id)

    @staticmethod
    def _guild_id(interaction: discord.Interaction[TryOnBot]) -> int:
        assert interaction.guild_id is not None  # the tree refuses DMs before any command runs
        return interaction.guild_id

    # start

    @app_commands.command(name="start", description="Start a live try-on with your photo and an outfit")
    @app_commands.describe(
        photo="A clear photo of yourself (JPEG, PNG or WebP); left out: your last photo here, if kept",
        outfit="The outfit to try, e.g. 'a red wool coat with brass buttons'",
        orientation="Tall (portrait) or wide (landscape) video (default: your /tryon settings)",
        private="Only you see the live status and clips (default: your /tryon settings)",
        watch="Share it live: a link anyone can open to watch it in a browser",
    )
    async def start(
        self,
        interaction: discord.Interaction[TryOnBot],
        outfit: app_commands.Range[str, 1, 300],
        photo: discord.Attachment | None = None,
        orientation: Literal["portrait", "landscape"] | None = None,
        private: bool | None = None,
        watch: bool = False,
    ) -> None:
        if photo is not None:
            _check_attachment(photo)
        if watch:
            self.engine.check_watch_available()
        self.engine.check_not_running(interaction.user.id)
        fetch = self._downloader(photo) if photo is not None else self._kept_photo(interaction, None)
        await self.begin(interaction, fetch, outfit, private=private, orientation=orientation, watch=watch)

    async def begin(
        self,
        interaction: discord.Interaction[TryOnBot],
        fetch_photo: PhotoFetcher,
        outfit: str,
        *,
        private: bool | None = None,
        orientation: str | None = None,
        watch: bool = False,
    ) -> None:
        """Start a try-on (command, modal or button); the photo is fetched once the cheap checks pass."""
        # Acknowledge privately before any await on the database or the network: the member hears back at
        # once, refusals replace this private message, and the status message that follows is a message of
        # its own (public unless `private`).
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            store = self.bot.runtime.store
            prefs = await store.members.get(interaction.user.id)
            server = await store.guilds.get(self._guild_id(interaction))
            choices = StartChoices.resolve(prefs, server, private=private, orientation=orientation)
            if watch:
                _check_shareable(choices.private)
            session = await self._begin(interaction, fetch_photo, outfit, choices, watch)
        except TryOnError as error:
            try:
                await interaction.edit_original_response(content=error.message, allowed_mentions=NO_MENTIONS)
            finally:
                await post_to_mod_log(self.bot, error.audit_entry)
            return
        where = "Only you can see it." if choices.private else "Its status is posted below."
        if watch:
            where += " The Watch live link is on it: anyone with the link can watch."
        content = f"Your try-on `{session.id}` is on its way. {where}"
        guide = await self._first_try_on_guide(self._guild_id(interaction), server)
        if guide is not None:
            content += (
                "\nThe first try-on in this server: here is how it works (`/tryon help` shows it again)."
            )
        await interaction.edit_original_response(content=content, embed=guide, allowed_mentions=NO_MENTIONS)

    async def _first_try_on_guide(self, guild_id: int, server: GuildSettings) -> discord.Embed | None:
        """The guide, the first time a try-on starts in this server (claimed in SQLite: once, ever)."""
        try:
            first = await self.bot.runtime.store.notices.claim(guild_id, FIRST_TRY_ON_NOTICE)
        except Exception:  # the session runs either way; the guide is a courtesy
            log.exception("could not record the first try-on notice of guild %s", guild_id)
            return None
        return help_embed(self._guide_facts(server)) if first else None

    def _guide_facts(self, server: GuildSettings) -> GuideFacts:
        engine = self.bot.config.engine
        idle = server.idle_timeout_seconds
        return GuideFacts(
            idle_seconds=engine.idle_seconds if idle is None else idle,
            max_session_seconds=engine.max_session_seconds,
            photo_retention_hours=server.photo_retention,
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
        choices: StartChoices,
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
            front_end={"private": choices.private},
            portrait=choices.portrait,
            snippets=choices.snippets,
            kept_photo_sha256=kept_sha256,
            watch=watch,
        )
        outlet = SessionOutlet(
            self.bot,
            interaction.channel_id,
            interaction=interaction,
            private=choices.private,
            owner_id=user_id,
        )
        presenter = presenter_for_bot(
            self.bot, outlet, user_id, self._remember_status(choices.private), guild_id=guild_id
        )
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
        # Said now, before the member types an outfit for a photo that is gone; the photo is read at submit.
        await self.engine.check_kept_photo(
            self._guild_id(interaction), interaction.user.id, of_session=session_id
        )
        await interaction.response.send_modal(
            StartModal(interaction.user.id, self._kept_photo(interaction, session_id))
        )

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

    async def send_full_video(self, interaction: discord.Interaction[TryOnBot], session_id: str) -> None:
        """ "Get the full video" on a final post: fresh links, privately, to anyone who can see the post."""
        retry_after = self.full_video_presses.update_rate_limit(interaction.user.id)
        if retry_after is not None:
            text = full_video_limit_text(FULL_VIDEO_PRESSES, FULL_VIDEO_WINDOW_SECONDS, retry_after)
            await send_reply(interaction, text)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        links = await self.engine.recording_links(
            session_id,
            guild_id=self._guild_id(interaction),
            user_id=interaction.user.id,
            moderator=is_moderator(interaction),
            shown_to_channel=_posted_publicly,
        )
        await send_reply(interaction, embed=full_video_answer(session_id, links))

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
        local = f"\n{LOCAL_LINKS_NOTE}" if links_are_local(links) else ""
        await send_reply(
            interaction,
            f"Session `{id}` (links expire in about an hour):\n{recording_links_text(links)}{local}",
        )

    @app_commands.command(name="help", description="How try-on works, good photos, what is kept, forgetting")
    async def help(self, interaction: discord.Interaction[TryOnBot]) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)  # the server's settings are read
        server = await self.bot.runtime.store.guilds.get(self._guild_id(interaction))
        await send_reply(interaction, embed=help_embed(self._guide_facts(server)))

    @app_commands.command(name="forget", description="Delete your stored try-on data and the bot's posts")
    async def forget(self, interaction: discord.Interaction[TryOnBot]) -> None:
        question = ForgetConfirmation(interaction.user.id, self._forget)
        question.origin = interaction
        await send_reply(
            interaction,
            "Delete your stored try-ons, prompts, recording links and settings in every server, and the "
            "bot's posts of your try-ons? Usage this month is kept (it counts toward quotas) but no longer "
            "linked to the sessions.",
            view=question,
        )

    async def _forget(self, pressed: discord.Interaction[TryOnBot]) -> None:
        """Remove the member's posts (but a running try-on's), then their data; say what was done."""
        await pressed.response.defer()  # deleting posts takes a call each: the answer replaces the question
        store, user_id = self.bot.runtime.store, pressed.user.id
        running = self.engine.current(user_id)
        posts = await store.posts.for_member(
            user_id, except_sessions=() if running is None else (running.id,)
        )
        removal = await remove_posts(self.bot, store, posts)
        result = await store.forget(user_id)
        kept = (
            f" {result.live_sessions_kept} running session(s) were kept." if result.live_sessions_kept else ""
        )
        photos = (
            f" Deleted your kept photo{'s' if result.photos_deleted > 1 else ''} too."
            if result.photos_deleted
            else ""
        )
        await pressed.edit_original_response(
            content=f"Deleted {result.sessions_deleted} try-on session(s) and their prompts.{photos}{kept}\n"
            + removal_text(removal),
            view=None,
            allowed_mentions=NO_MENTIONS,
        )

    async def delete_posts(self, interaction: discord.Interaction[TryOnBot], session_id: str) -> None:
        """Delete pressed by the owner or a moderator: remove the try-on's posts, say what was removed."""
        if self.engine.is_live(session_id):
            raise NotAllowed("This try-on is still running. Stop it first, then delete its posts.")
        await interaction.response.defer(ephemeral=True, thinking=True)
        guild_id, store = self._guild_id(interaction), self.bot.runtime.store
        posts = await store.posts.for_session(guild_id, session_id)
        removal = await remove_posts(self.bot, store, posts)
        await send_reply(interaction, removal_text(removal))
        owner_id = posts[0].user_id if posts else None
        if owner_id is not None and owner_id != interaction.user.id:
            entry = await store.audit.record(
                guild_id,
                POSTS_DELETED,
                actor_id=interaction.user.id,
                target_user_id=owner_id,
                target=session_id,
                details={"removed": len(removal.removed), "refused": len(removal.refused)},
            )
            await post_to_mod_log(self.bot, entry)

    @app_commands.command(name="settings", description="Your defaults for new try-ons (every server)")
    @app_commands.describe(
        private="Only you see new try-ons' status and clips",
        orientation="Tall (portrait) or wide (landscape) video",
        snippets="A short clip after each outfit",
    )
    async def settings(
        self,
        interaction: discord.Interaction[TryOnBot],
        private: bool | None = None,
        orientation: Literal["portrait", "landscape"] | None = None,
        snippets: bool | None = None,
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        members = self.bot.runtime.store.members
        user_id = interaction.user.id
        if private is None and orientation is None and snippets is None:
            prefs = await members.get(user_id)
            heading = "Your try-on settings"
        else:
            prefs = await members.update(user_id, private=private, orientation=orientation, snippets=snippets)
            heading = "Saved. Your try-on settings"
        await send_reply(interaction, f"**{heading}** (for new try-ons):\n{member_settings_text(prefs)}")


async def setup(bot: TryOnBot) -> None:
    """Extension entry point."""
    await bot.add_cog(TryOn(bot))
