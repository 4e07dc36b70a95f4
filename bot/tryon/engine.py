"""The engine as front ends see it: what members and moderators may do, decided here, rendered there.

`build_engine` assembles it from its parts (store, quota policy, gate, snippet encoder, client factory).
Front ends call only `Engine`'s methods and read `SessionSummary` values; they never reach into sessions or
the engine's services. Refusals are `TryOnError`s; those moderators should see carry their audit entry.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar, overload

from bot.media.snippets import SnippetEncoder
from bot.odyssey import Odyssey
from bot.store import QuotaLimits, Store
from bot.store.photos import KeptPhoto
from bot.store.records import AuditEntry, SessionRecord
from bot.tryon.account import AccountWatch, AlertListener
from bot.tryon.errors import NoSuchSession, NotAllowed, PhotoRejected, TryOnError
from bot.tryon.gate import Gate
from bot.tryon.launcher import InProcess, ManagedSession, RecoveryPresenterFactory, SessionLauncher
from bot.tryon.ledger import StoreLedger
from bot.tryon.manager import EngineServices, SessionManager
from bot.tryon.models import EndReason, SessionRequest, SessionSummary, StreamPhoto
from bot.tryon.photos import check_photo
from bot.tryon.presenter import Presenter, RecordingLinks
from bot.tryon.quota import QuotaPolicy, Remaining
from bot.tryon.runner import ClientFactory
from bot.tryon.session import TryOnSession
from bot.tryon.settings import EngineSettings
from bot.tryon.watch import WatchBoard


def client_factory(api_key: str, api_url: str | None = None) -> ClientFactory:
    """Fresh Odyssey clients for one platform: the real one, or an emulator by its URL (same code)."""
    return functools.partial(Odyssey, api_key, api_url)


async def checked_photo(data: bytes) -> StreamPhoto:
    """Run the photo checks (off the loop); PhotoRejected on a bad photo, else the upright JPEG to stream."""
    photo = await check_photo(data)
    return StreamPhoto(data=photo.jpeg, sha256=photo.sha256)  # of the upload, hashed in the worker thread


Session = TypeVar("Session", bound=ManagedSession)

NO_PHOTOS_KEPT = "This server keeps no photos, so please attach one: `/tryon start` with `photo`."
PHOTO_NOT_KEPT = (
    "No photo of yours is kept here (photos are kept for {hours} hours after a try-on). "
    "Please attach one: `/tryon start` with `photo`."
)
OTHER_PHOTO_KEPT = (
    "That try-on's photo is no longer kept (only your latest photo is). "
    "Please attach it again: `/tryon start` with `photo`."
)


@dataclasses.dataclass
class Engine(Generic[Session]):
    """The running engine: everything a front end may ask, plus the parts it owns and must close.

    `manager` and `services` are the engine's own: the Discord cogs never touch them; tests, benchmarks and
    the console demo (which watches its one session roll over) look inside.
    """

    # Its sessions are TryOnSessions in-process, remote ones with workers (see bot/tryon/launcher.py).
    manager: SessionManager[Session]
    services: EngineServices
    # (session id, outfit) being applied right now: a double submit is refused instead of sent twice.
    _outfits_in_flight: set[tuple[str, str]] = dataclasses.field(default_factory=set, init=False, repr=False)

    # ----- reading ---------------------------------------------------------------------------------------

    def current(self, user_id: int, guild_id: int | None = None) -> SessionSummary | None:
        """The member's queued or live session (in `guild_id`, if given), or None."""
        session = self.manager.session_for(user_id)
        if session is None or (guild_id is not None and session.request.guild_id != guild_id):
            return None
        return session.summary()

    def sessions(self, guild_id: int) -> list[SessionSummary]:
        """Queued and live sessions of one guild, oldest first."""
        return [session.summary() for session in self.manager.sessions(guild_id)]

    async def remaining_quota(self, guild_id: int, user_id: int, role_ids: tuple[int, ...]) -> Remaining:
        """What the member has left here today and this month."""
        return await self.services.quota.remaining(guild_id, user_id, role_ids)

    # ----- starting ----------------------------------------------------------------------------------------

    def check_not_running(self, user_id: int) -> None:
        """AlreadyInSession if the member has a session (answerable without any await)."""
        self.manager.check_one_session(user_id)

    async def check_start(
        self, guild_id: int, user_id: int, channel_id: int | None, role_ids: tuple[int, ...], outfit: str
    ) -> None:
        """Every check of a start that needs no photo, for a front end to ask before fetching one."""
        await self.manager.precheck(guild_id, user_id, channel_id, role_ids, outfit)

    async def start(self, request: SessionRequest, presenter: Presenter) -> SessionSummary:
        """Admit a try-on (checked again, quota reserved); its progress goes to `presenter`."""
        return (await self.manager.admit(request, presenter)).summary()

    async def check_kept_photo(self, guild_id: int, user_id: int, *, of_session: str | None = None) -> None:
        """PhotoRejected unless the member's photo (the one `of_session` used) is kept here; reads no file."""
        entry = await self.services.store.photos.find(guild_id, user_id)
        await self._refuse_unless_kept(guild_id, user_id, entry.upload_sha256 if entry else None, of_session)

    async def kept_photo(self, guild_id: int, user_id: int, *, of_session: str | None = None) -> KeptPhoto:
        """The member's kept photo here (the one `of_session` used, if given); PhotoRejected if none."""
        kept = await self.services.store.photos.get(guild_id, user_id)
        await self._refuse_unless_kept(guild_id, user_id, kept.upload_sha256 if kept else None, of_session)
        assert kept is not None  # refused above otherwise
        return kept

    async def _refuse_unless_kept(
        self, guild_id: int, user_id: int, kept_sha256: str | None, of_session: str | None
    ) -> None:
        if kept_sha256 is None:
            hours = (await self.services.store.guilds.get(guild_id)).photo_retention
            if hours <= 0:
                raise PhotoRejected(NO_PHOTOS_KEPT, reason="no_kept_photo")
            raise PhotoRejected(PHOTO_NOT_KEPT.format(hours=f"{hours:g}"), reason="no_kept_photo")
        if of_session is not None:
            record = await self.services.store.sessions.get(of_session)
            if record is None or record.user_id != user_id or record.photo_sha256 != kept_sha256:
                raise PhotoRejected(OTHER_PHOTO_KEPT, reason="no_kept_photo")

    async def sweep_photos(self) -> int:
        """Remove every kept photo past its server's retention time; how many."""
        return await self.services.store.photos.sweep()

    # ----- steering ----------------------------------------------------------------------------------------

    async def steer(self, session_id: str, *, guild_id: int, user_id: int, text: str) -> None:
        """Apply an outfit to a session the member may control; returns once it is on screen.

        PromptRejected (audited) for a refused outfit, OutfitNotApplied when the platform failed to apply it.
        """
        session = self.manager.get(session_id, guild_id=guild_id)
        in_flight = (session_id, " ".join(text.split()).casefold())
        if in_flight in self._outfits_in_flight:
            raise TryOnError("That outfit is already being applied.", reason="outfit_in_flight")
        self._outfits_in_flight.add(in_flight)
        try:
            await self.manager.steer(session, text, by_user_id=user_id)
        finally:
            self._outfits_in_flight.discard(in_flight)

    @property
    def watch_available(self) -> bool:
        """True when try-ons can be shared live (the Watch live viewer runs)."""
        return self.manager.watch_available

    def check_watch_available(self) -> None:
        """NotAllowed unless try-ons can be shared live (answerable without any await)."""
        self.manager.check_watch_available()

    async def share_live(self, session_id: str, *, guild_id: int, user_id: int) -> str:
        """Share the member's own queued or live try-on: its watch link; the video is broadcast from a fresh
        stream part, started at once (seamless, like a roll-over)."""
        session = self.manager.get(session_id, guild_id=guild_id)
        if session.request.user_id != user_id:
            raise NotAllowed("Only the member who started this try-on can share it live.")
        return await self.manager.share_live(session)

    async def snapshot(self, session_id: str, *, guild_id: int) -> bool:
        """Send a still of the current frame to the session's presenter; False before the first frame."""
        return await self.manager.get(session_id, guild_id=guild_id).snapshot() is not None

    async def may_control(self, session_id: str, *, guild_id: int, user_id: int, moderator: bool) -> None:
        """NotAllowed unless the member owns the session (live or finished) or moderates its guild.

        A live session's owner is known in memory, so this needs no database (which may be busy); only a
        finished session's owner is read from SQLite. NoSuchSession for an id unknown in this guild.
        """
        try:
            owner_id = self.manager.get(session_id, guild_id=guild_id).request.user_id
        except NoSuchSession:
            record = await self.services.store.sessions.find(guild_id, session_id)
            if record is None:
                raise
            owner_id = record.user_id
        if owner_id != user_id and not moderator:
            raise NotAllowed(
                "Only the member who started this try-on (or a moderator) can use these buttons."
            )

    def is_live(self, session_id: str) -> bool:
        """Whether the session is queued or live (answerable without any await)."""
        try:
            self.manager.get(session_id)
        except NoSuchSession:
            return False
        return True

    def check_live(self, session_id: str, *, guild_id: int) -> None:
        """NoSuchSession unless the session is queued or live in this guild (answerable without any await)."""
        self.manager.get(session_id, guild_id=guild_id)

    def end(
        self, session_id: str, *, guild_id: int, user_id: int, moderator: bool
    ) -> Coroutine[Any, Any, AuditEntry] | None:
        """End a session (or take it out of the queue) at once: its owner's, or someone's as a moderator.

        A moderator's stop is audited: it returns the writing of the audit entry, to await (after
        acknowledging them: the database may be busy); the owner's own stop returns None.
        """
        session = self.manager.get(session_id, guild_id=guild_id)
        if session.request.user_id == user_id:
            self.manager.stop(session_id, user_id=user_id, reason=EndReason.MEMBER)
            return None
        if not moderator:
            raise NotAllowed("Only the member who started this try-on (or a moderator) can end it.")
        return self.end_as_moderator(session_id, guild_id=guild_id, moderator_id=user_id)

    def end_as_moderator(
        self, session_id: str, *, guild_id: int, moderator_id: int
    ) -> Coroutine[Any, Any, AuditEntry]:
        """A moderator ends any session of their guild (their own too) at once; returns the audit writing."""
        return self.manager.moderator_stop(session_id, guild_id=guild_id, moderator_id=moderator_id)

    # ----- afterwards --------------------------------------------------------------------------------------

    async def recording_links(
        self,
        session_id: str,
        *,
        guild_id: int,
        user_id: int,
        moderator: bool,
        shown_to_channel: Callable[[SessionRecord], bool] | None = None,
    ) -> list[RecordingLinks]:
        """Fresh links to a session's recordings, for its owner or a moderator of its guild.

        `shown_to_channel` tells from the session's record whether the front end showed its results to
        everyone in its channel; if so, any member of the guild may have fresh links too.
        """
        record = await self.services.store.sessions.find(guild_id, session_id)
        if record is None and shown_to_channel is not None:
            raise NoSuchSession("That try-on is no longer kept here (its member may have deleted it).")
        public = record is not None and shown_to_channel is not None and shown_to_channel(record)
        if record is None or (record.user_id != user_id and not moderator and not public):
            raise NoSuchSession("No try-on of yours has that id in this server.")
        return await self.manager.recording_links(session_id, guild_id=guild_id)

    def on_account_problem(self, listener: AlertListener) -> None:
        """Call `listener` when the Odyssey account itself fails (told once per window, not per member)."""
        self.services.account.listen(listener)

    async def reattach(self, presenter_for: RecoveryPresenterFactory) -> int:
        """At start-up, before `interrupt_crashed`: take back sessions workers kept streaming; how many."""
        return len(await self.manager.reattach(presenter_for))

    async def interrupt_crashed(self) -> list[SessionRecord]:
        """At start-up, before any admission: settle the sessions a crash left open (quick)."""
        return await self.manager.interrupt_crashed()

    async def offer_recovered(
        self, records: list[SessionRecord], presenter_for: RecoveryPresenterFactory
    ) -> None:
        """Offer the recordings of sessions a crash interrupted (slow: run it in the background)."""
        await self.manager.offer_recovered(records, presenter_for)

    async def aclose(self, grace_seconds: float = 60.0) -> None:
        """End and settle every session, then release the launcher and stop the encoder's processes."""
        try:
            await self.manager.shutdown(grace_seconds)
        finally:
            await self.manager.launcher.aclose()
            await self.services.encoder.aclose()
            await self.services.account.aclose()


@overload
def build_engine(
    store: Store,
    clients: ClientFactory,
    settings: EngineSettings | None = None,
    *,
    quota_defaults: QuotaLimits | None = None,
    encoder: SnippetEncoder | None = None,
    watch_board: WatchBoard | None = None,
) -> Engine[TryOnSession]: ...


@overload
def build_engine(
    store: Store,
    clients: ClientFactory,
    settings: EngineSettings | None = None,
    *,
    quota_defaults: QuotaLimits | None = None,
    encoder: SnippetEncoder | None = None,
    launcher: SessionLauncher[Session],
    watch_board: WatchBoard | None = None,
) -> Engine[Session]: ...


@overload
def build_engine(
    store: Store,
    clients: ClientFactory,
    settings: EngineSettings | None = None,
    *,
    quota_defaults: QuotaLimits | None = None,
    encoder: SnippetEncoder | None = None,
    launcher: SessionLauncher[Any] | None,
    watch_board: WatchBoard | None = None,
) -> Engine[Any]: ...


def build_engine(
    store: Store,
    clients: ClientFactory,
    settings: EngineSettings | None = None,
    *,
    quota_defaults: QuotaLimits | None = None,
    encoder: SnippetEncoder | None = None,
    launcher: SessionLauncher[Any] | None = None,
    watch_board: WatchBoard | None = None,
) -> Engine[Any]:
    """An engine on `store` that makes Odyssey clients with `clients`; defaults match the Free plan.

    Sessions run in this process unless a `launcher` places them elsewhere (bot/workers). With a
    `watch_board` (the viewer's registry) members can share a try-on live.
    """
    settings = settings or EngineSettings()
    quota = QuotaPolicy(store, quota_defaults or QuotaLimits(), min_start_seconds=settings.min_start_seconds)
    account = AccountWatch(store)
    services = EngineServices(
        ledger=StoreLedger(store, quota, account),
        store=store,
        quota=quota,
        encoder=encoder or SnippetEncoder(),
        client_factory=clients,
        settings=settings,
        check_photo=checked_photo,
        gate=Gate(store, quota),
        account=account,
        watch_board=watch_board,
    )
    return Engine(SessionManager(services, launcher or InProcess()), services)
