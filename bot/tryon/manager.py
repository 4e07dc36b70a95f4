"""The session manager: admission, one session per member, global slots, the fair queue, stop, recovery."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from bot.deadline import wait_within
from bot.store.records import AuditEntry, GuildSettings, SessionRecord
from bot.tryon.errors import AlreadyInSession, NoSuchSession, NotAllowed, QueueFull
from bot.tryon.launcher import ManagedSession, RecoveryPresenterFactory, SessionLauncher
from bot.tryon.models import FINISHING_STATES, EndReason, SessionRequest, SessionState
from bot.tryon.presenter import (
    ErrorReported,
    Presenter,
    RecordingLinks,
    RecordingReady,
    SnippetReady,
    StatusChanged,
)
from bot.tryon.queue import FairQueue, WaitEstimator
from bot.tryon.recordings import collect_recording_links, links_from
from bot.tryon.runner import close_client
from bot.tryon.session import SessionServices
from bot.tryon.watch import WatchBoard, WatchingPresenter

if TYPE_CHECKING:
    from bot.store import Store
    from bot.tryon.account import AccountWatch
    from bot.tryon.gate import Gate
    from bot.tryon.models import StreamPhoto
    from bot.tryon.quota import QuotaPolicy

log = logging.getLogger(__name__)

# Audit action written when a moderator stops someone's session.
SESSION_STOPPED = "session_stopped"
WATCH_UNAVAILABLE = "Watch live isn't set up on this bot, so try-ons can't be shared live."


@dataclasses.dataclass
class EngineServices(SessionServices):
    """What the engine's decisions need besides: storage, the quota policy and the checks."""

    store: Store
    quota: QuotaPolicy
    # Raise PhotoRejected, or return the photo to stream.
    check_photo: Callable[[bytes], Awaitable[StreamPhoto]]
    # Checks outfits (and starts) and records refusals.
    gate: Gate
    # Tells moderators and the owner of problems of the Odyssey account itself.
    account: AccountWatch
    # Where watch links live (the viewer's web server); None: sessions can't be shared live.
    watch_board: WatchBoard | None = None


Session = TypeVar("Session", bound=ManagedSession)


class SessionManager(Generic[Session]):
    """Admits try-ons, runs at most `settings.slots` at once, and queues the rest fairly across guilds.

    `Engine` calls it on behalf of front ends (`precheck`, `admit`, `stop`, `moderator_stop`, ...), which
    never hold a session themselves; the console demo drives its one session directly. The bot calls
    `interrupt_crashed` once at start and `shutdown` once at the end.
    """

    def __init__(self, services: EngineServices, launcher: SessionLauncher[Session]) -> None:
        self.services = services
        self.launcher = launcher
        self.settings = services.settings
        self.queue: FairQueue[Session] = FairQueue(self.settings.queue_cap_per_guild)
        self.estimator = WaitEstimator(
            self.settings.slots, self.settings.default_session_seconds, self.settings.duration_samples
        )
        self._sessions: dict[str, Session] = {}
        # Sessions a worker kept running through the bot's restart, taken back at start-up.
        self._adopted: set[str] = set()
        self._by_user: dict[int, str] = {}
        # Every session's run until it finished; `_holding` are those still holding a slot (not finishing up).
        self._running: dict[str, asyncio.Task[None]] = {}
        self._holding: set[str] = set()
        self._admission = asyncio.Lock()
        self._closing = False
        self._notify_tasks: set[asyncio.Task[Any]] = set()
        # Each session's presenter as wrapped for Watch live (only with a watch board).
        self._watching: dict[str, WatchingPresenter] = {}

    # ----- reading -------------------------------------------------------------------------------------

    @property
    def running_count(self) -> int:
        """Sessions holding a slot right now (a session fetching its recordings no longer does)."""
        return len(self._holding)

    def get(self, session_id: str, *, guild_id: int | None = None) -> Session:
        """A queued or live session; NoSuchSession if unknown, finished or in another guild."""
        session = self._sessions.get(session_id)
        if session is None or session.is_finished:
            raise NoSuchSession()
        if guild_id is not None and session.request.guild_id != guild_id:
            raise NoSuchSession()
        return session

    def session_for(self, user_id: int) -> Session | None:
        """The member's queued or live session, if any."""
        session_id = self._by_user.get(user_id)
        return self._sessions.get(session_id) if session_id is not None else None

    def sessions(self, guild_id: int | None = None) -> list[Session]:
        """Queued and live sessions (of one guild, or all), oldest first."""
        return [
            session
            for session in self._sessions.values()
            if guild_id is None or session.request.guild_id == guild_id
        ]

    # ----- admission -----------------------------------------------------------------------------------

    async def admit(self, request: SessionRequest, presenter: Presenter) -> Session:
        """Check the request (cheap checks first), reserve quota, queue it and start it when a slot frees.

        Raises a TryOnError (AlreadyInSession, Paused, PhotoRejected, PromptRejected, Blocked,
        ChannelNotAllowed, QueueFull, QuotaExceeded) with nothing spent; the session's own progress goes to
        `presenter`. The server's rules are honoured: pause, queue cap, idle timeout, clips on or off.
        """
        self._refuse_while_closing()
        self.check_one_session(request.user_id)
        if request.watch:
            self.check_watch_available()
        await self.launcher.check_available()
        store, gate = self.services.store, self.services.gate
        rules = await gate.open(request.guild_id)
        await gate.place(request.guild_id, request.channel_id)
        photo = await self.services.check_photo(request.photo)
        outfit = await gate.outfit(request.guild_id, request.user_id, request.outfit)
        await gate.not_blocked(request.guild_id, request.user_id)
        async with self._admission:
            # Re-checked under the lock: a shutdown may have begun during the checks (it would never start
            # or settle this session), and two quick clicks must not both get in.
            self._refuse_while_closing()
            self.check_one_session(request.user_id)
            must_wait = self.running_count >= self.settings.slots or len(self.queue) > 0
            cap = rules.queue_cap if rules.queue_cap is not None else self.settings.queue_cap_per_guild
            if must_wait and self.queue.waiting_in(request.guild_id) >= cap:
                raise QueueFull()
            portrait = self.settings.portrait if request.portrait is None else request.portrait
            record = await store.sessions.create(
                guild_id=request.guild_id,
                channel_id=request.channel_id,
                user_id=request.user_id,
                photo_sha256=request.kept_photo_sha256 or photo.sha256,
                orientation="portrait" if portrait else "landscape",
                front_end=request.front_end,
            )
            try:
                reservation = await self.services.quota.reserve(
                    record.id, request.guild_id, request.user_id, request.role_ids
                )
            except BaseException:
                await store.sessions.set_state(record.id, SessionState.CANCELLED, error_reason="refused")
                raise
            checked = SessionRequest(
                guild_id=request.guild_id,
                user_id=request.user_id,
                channel_id=request.channel_id,
                photo=photo.data,
                outfit=outfit,
                role_ids=request.role_ids,
                front_end=request.front_end,
                portrait=request.portrait,
                snippets=request.snippets and rules.snippets_enabled is not False,
                watch=request.watch,
            )
            allowance = reservation.seconds_allowed
            session = self.launcher.create(
                record.id,
                checked,
                self._watched(record.id, presenter, shared=request.watch),
                self.services,
                allowance_seconds=allowance if allowance is not None else self.settings.max_session_seconds,
                idle_seconds=rules.idle_timeout_seconds,
            )
            session.pending_prompt_ids.append((await store.prompts.add(record.id, outfit)).id)
            self._sessions[session.id] = session
            self._by_user[request.user_id] = session.id
            position = self.queue.push(session.id, request.guild_id, session, cap=cap)
        if request.kept_photo_sha256 is None:
            await self._keep_photo(request, photo, rules)
        wait = self.estimator.wait_seconds(position) if must_wait else 0.0
        await session.report_queue_position(position, wait)
        await self._dispatch()
        return session

    async def _keep_photo(self, request: SessionRequest, photo: StreamPhoto, rules: GuildSettings) -> None:
        """Keep the checked photo as long as the server says (for "try another outfit"); never fails."""
        hours = rules.photo_retention
        try:
            await self.services.store.photos.keep(
                request.guild_id, request.user_id, photo.data, photo.sha256, hours=hours
            )
        except Exception:
            log.exception("could not keep the photo of a session of %s", request.user_id)

    def _watched(self, session_id: str, presenter: Presenter, *, shared: bool) -> Presenter:
        """The session's presenter, wrapped to keep its watch link (made now when `shared`)."""
        board = self.services.watch_board
        if board is None:
            return presenter
        watching = WatchingPresenter(presenter, board, session_id)
        self._watching[session_id] = watching
        if shared:
            watching.open()
        return watching

    @property
    def watch_available(self) -> bool:
        """True when sessions can be shared live (a viewer runs)."""
        return self.services.watch_board is not None

    def check_watch_available(self) -> None:
        """NotAllowed unless sessions can be shared live."""
        if not self.watch_available:
            raise NotAllowed(WATCH_UNAVAILABLE, reason="watch_unavailable")

    async def share_live(self, session: Session) -> str:
        """Share a queued or live session: its watch link (made now, or the one it has) and, from the next
        stream part on, broadcast mode."""
        self.check_watch_available()
        watching = self._watching.get(session.id)
        if watching is None or session.is_finished or session.state in FINISHING_STATES:
            raise NoSuchSession()
        url = watching.open()
        await session.share_live()
        return url

    async def precheck(
        self, guild_id: int, user_id: int, channel_id: int | None, role_ids: tuple[int, ...], outfit: str
    ) -> None:
        """The checks `admit` makes that need no photo, for a front end to run before fetching one.

        Raises what `admit` would (AlreadyInSession, Paused, ChannelNotAllowed, PromptRejected, Blocked,
        QuotaExceeded); nothing is reserved, and `admit` checks again.
        """
        self._refuse_while_closing()
        self.check_one_session(user_id)
        await self.launcher.check_available()
        gate = self.services.gate
        await gate.open(guild_id)
        await gate.place(guild_id, channel_id)
        await gate.outfit(guild_id, user_id, outfit)
        await gate.quota(guild_id, user_id, role_ids)

    def _refuse_while_closing(self) -> None:
        if self._closing:
            raise NotAllowed("The bot is restarting. Please try again in a minute.", reason="shutting_down")

    def check_one_session(self, user_id: int) -> None:
        """AlreadyInSession if the member has a session; one that was stopped and is finishing says so."""
        existing = self.session_for(user_id)
        if existing is None:
            return
        if existing.end_reason is not None or existing.state in FINISHING_STATES:
            raise AlreadyInSession(
                "Your last try-on is still finishing. Please start again in a few seconds.",
                session_id=existing.id,
            )
        raise AlreadyInSession(session_id=existing.id)

    # ----- steering ------------------------------------------------------------------------------------

    async def steer(
        self, session: Session, text: str, *, by_user_id: int | None = None
    ) -> SnippetReady | None:
        """Check and record a new outfit, then have the session apply it; returns its snippet, if any.

        `by_user_id`: who typed it (the owner unless a moderator steers), named in a refusal's audit entry.
        """
        if session.is_finished or session.state in FINISHING_STATES:
            raise NoSuchSession()
        author = session.request.user_id if by_user_id is None else by_user_id
        guild_id = session.request.guild_id
        outfit = await self.services.gate.outfit(guild_id, author, text, session_id=session.id)
        prompt_id = (await self.services.store.prompts.add(session.id, outfit)).id
        return await session.apply_outfit(outfit, prompt_id)

    async def cancel(self, session_id: str, *, user_id: int | None = None) -> None:
        """Leave the queue (refunding the reservation), or end the session if it already runs."""
        session = self._owned(session_id, user_id)
        if self.queue.remove(session_id) is not None:
            await self._left_queue(session, EndReason.MEMBER)
            return
        session.stop(EndReason.MEMBER)

    def stop(
        self, session_id: str, *, user_id: int | None = None, reason: EndReason = EndReason.MEMBER
    ) -> None:
        """End a session: its member's (`user_id` checked), or any with no `user_id` and another `reason`.

        A queued session leaves the queue at once; its refund follows in the background.
        """
        session = self._owned(session_id, user_id)
        if self.queue.remove(session_id) is not None:
            self._spawn(self._left_queue(session, reason))
            return
        session.stop(reason)

    async def _left_queue(self, session: Session, reason: EndReason) -> None:
        """Refund and cancel a session just taken out of the queue, then move everyone behind it up."""
        await session.cancel_queued(reason)
        self._forget(session)
        await self._report_positions()

    def moderator_stop(
        self, session_id: str, *, guild_id: int, moderator_id: int
    ) -> Coroutine[Any, Any, AuditEntry]:
        """A moderator ends (or removes from the queue) a session of their guild, at once.

        Returns the writing of its audit entry, for the caller to await when it suits (e.g. after
        acknowledging the moderator): a busy or failing database never keeps the session running.
        """
        session = self.get(session_id, guild_id=guild_id)
        self.stop(session_id, reason=EndReason.MODERATOR)
        return self.services.store.audit.record(
            guild_id,
            SESSION_STOPPED,
            actor_id=moderator_id,
            target_user_id=session.request.user_id,
            target=session_id,
        )

    def _owned(self, session_id: str, user_id: int | None) -> Session:
        session = self.get(session_id)
        if user_id is not None and session.request.user_id != user_id:
            raise NotAllowed("Only the member who started this try-on can do that.")
        return session

    # ----- slots ---------------------------------------------------------------------------------------

    async def _dispatch(self) -> None:
        """Start queued sessions while slots are free, then tell everyone still waiting where they stand."""
        async with self._admission:
            while not self._closing and self.running_count < self.settings.slots:
                entry = self.queue.pop()
                if entry is None:
                    break
                session = entry.item
                task = asyncio.create_task(self._run(session), name=f"session-{session.id}")
                self._running[session.id] = task
                self._holding.add(session.id)
        await self._report_positions()

    async def _run(self, session: Session) -> None:
        releaser = asyncio.create_task(self._release_when_done_streaming(session), name=f"slot-{session.id}")
        try:
            await session.run()
        finally:
            releaser.cancel()
            self._running.pop(session.id, None)
            self._release_slot(session)
            self._forget(session)
            if not self._closing:
                self._spawn(self._dispatch())

    async def _release_when_done_streaming(self, session: Session) -> None:
        """Give the slot to the next member once the session's streams are closed (recordings can be slow)."""
        await session.done_streaming.wait()
        self._release_slot(session)
        if not self._closing:
            self._spawn(self._dispatch())

    def _release_slot(self, session: Session) -> None:
        if session.id not in self._holding:
            return
        self._holding.discard(session.id)
        if session.started_at is not None and session.streamed_seconds > 0:
            # The whole time the slot was held, connecting included.
            self.estimator.record(time.monotonic() - session.started_at)

    async def _report_positions(self) -> None:
        for key, position in self.queue.positions().items():
            session = self._sessions.get(key)
            if session is not None:
                await session.report_queue_position(position, self.estimator.wait_seconds(position))

    def _forget(self, session: Session) -> None:
        watching = self._watching.pop(session.id, None)
        if watching is not None:
            watching.end()  # also when the session ended without a final status (its link must die)
        self._sessions.pop(session.id, None)
        self._adopted.discard(session.id)
        if self._by_user.get(session.request.user_id) == session.id:
            del self._by_user[session.request.user_id]

    def _spawn(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._notify_tasks.add(task)
        task.add_done_callback(self._notify_tasks.discard)

    # ----- recordings, shutdown, recovery --------------------------------------------------------------

    async def recording_links(self, session_id: str, *, guild_id: int | None = None) -> list[RecordingLinks]:
        """Fresh presigned links for every stream of a finished session (links expire after about an hour)."""
        store = self.services.store
        record = await store.sessions.get(session_id)
        if record is None or (guild_id is not None and record.guild_id != guild_id):
            raise NoSuchSession()
        stream_ids = await self._stored_stream_ids(session_id)
        client = self.services.client_factory()
        try:
            links: list[RecordingLinks] = []
            for stream_id in stream_ids:
                try:
                    recording = await wait_within(
                        client.get_recording(stream_id), self.settings.end_timeout_seconds
                    )
                except Exception:
                    log.warning("no recording for stream %s", stream_id, exc_info=True)
                    continue
                links.append(links_from(recording))
            return links
        finally:
            await close_client(client, self.settings.end_timeout_seconds)

    async def shutdown(self, grace_seconds: float = 60.0) -> None:
        """End every session: queued ones are cancelled and refunded; live ones end, settle and report,
        unless the launcher lets them stream on for the next start to take back (remote workers)."""
        self._closing = True
        async with self._admission:
            waiting = []
            while (entry := self.queue.pop()) is not None:
                waiting.append(entry.item)
        for session in waiting:
            await session.cancel_queued()
            self._forget(session)
        for session in list(self._sessions.values()):
            if not self.launcher.detach(session):
                session.stop(EndReason.SHUTDOWN)
        tasks = list(self._running.values())
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace_seconds)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        # Refunds of sessions that just left the queue finish; position updates need not.
        notify = list(self._notify_tasks)
        if notify:
            _, pending = await asyncio.wait(notify, timeout=self.settings.end_timeout_seconds)
            for task in pending:
                task.cancel()
            await asyncio.gather(*notify, return_exceptions=True)

    async def recover(self, presenter_for: RecoveryPresenterFactory | None = None) -> list[SessionRecord]:
        """At start-up: mark sessions a crash left live as interrupted, settle them, offer recordings.

        Usage is settled from each session's last heartbeat; the recordings are fetched for all sessions at
        once (each waits at most `recording_poll_limit_seconds`).
        """
        records = await self.interrupt_crashed()
        if presenter_for is not None:
            await self.offer_recovered(records, presenter_for)
        return records

    async def reattach(self, presenter_for: RecoveryPresenterFactory) -> Sequence[Session]:
        """At start-up, before `interrupt_crashed`: take back the sessions workers kept streaming.

        Each goes on where it was (status, buttons, steering); its member is not told anything broke.
        """
        records = await self.services.store.sessions.unfinished()
        if not records:
            return []

        def watched_presenter_for(record: SessionRecord) -> Presenter | None:
            # Links do not outlive the bot: a session taken back can be shared again (a new link).
            presenter = presenter_for(record)
            return None if presenter is None else self._watched(record.id, presenter, shared=False)

        adopted = await self.launcher.reattach(records, watched_presenter_for, self.services)
        async with self._admission:
            for session in adopted:
                self._adopted.add(session.id)
                self._sessions[session.id] = session
                self._by_user[session.request.user_id] = session.id
                self._running[session.id] = asyncio.create_task(
                    self._run(session), name=f"session-{session.id}"
                )
                self._holding.add(session.id)
        return adopted

    async def interrupt_crashed(self) -> list[SessionRecord]:
        """The quick half of `recover`: mark sessions a crash left live as interrupted; settle every open one.

        Must run before the first admission: the store marks EVERY unfinished session, so a session of this
        process admitted earlier would be marked too (RuntimeError instead). Offering the recordings, which
        may take minutes, can then run in the background with `offer_recovered`.
        """
        store = self.services.store
        async with self._admission:
            if set(self._sessions) - self._adopted:
                raise RuntimeError("recover before admitting: live sessions would be marked interrupted")
            interrupted = await store.sessions.interrupt_unfinished(keep=self._adopted)
            # Also those an earlier start-up marked but crashed before settling: nothing of this process
            # has started yet, so every open ledger entry belongs to a session no one will settle otherwise
            # (except those taken back live, which settle at their end).
            unsettled = set(await store.usage.unsettled_session_ids()) - self._adopted
        for session_id in sorted(unsettled):
            record = await store.sessions.get(session_id)
            await self.services.quota.settle(session_id, record.streamed_seconds if record else 0.0)
        return [item.session for item in interrupted]

    async def offer_recovered(
        self, records: list[SessionRecord], presenter_for: RecoveryPresenterFactory
    ) -> None:
        """The slow half of `recover`: fetch the recordings of interrupted sessions and offer them."""
        await asyncio.gather(*(self._offer_recovered(record, presenter_for) for record in records))

    async def _offer_recovered(self, record: SessionRecord, presenter_for: RecoveryPresenterFactory) -> None:
        presenter = presenter_for(record)
        if presenter is None:
            return
        try:
            # First, at once: the status still says "streaming" (with live buttons) from before the crash.
            await presenter.status_changed(await self._interrupted_status(record))
        except Exception:
            log.exception("could not show interrupted session %s as interrupted", record.id)
        try:
            links = await self._recovered_links(record.id)
            if links:
                await presenter.recording_ready(RecordingReady(record.id, tuple(links), recovered=True))
            else:
                message = "Your try-on was interrupted by a restart before anything was recorded."
                await presenter.error(ErrorReported(record.id, message))
        except Exception:
            log.exception("could not offer the recordings of interrupted session %s", record.id)

    async def _interrupted_status(self, record: SessionRecord) -> StatusChanged:
        outfit = await self.services.store.prompts.latest_applied(record.id)
        return StatusChanged(
            session_id=record.id,
            state=SessionState.INTERRUPTED,
            elapsed_seconds=round(record.streamed_seconds, 1),
            outfit=None if outfit is None else outfit.text,
            end_reason="interrupted",
        )

    async def _recovered_links(self, session_id: str) -> list[RecordingLinks]:
        stream_ids = await self._stored_stream_ids(session_id)
        if not stream_ids:
            return []
        client = self.services.client_factory()
        try:
            return await collect_recording_links(client, stream_ids, self.settings)
        finally:
            await close_client(client, self.settings.end_timeout_seconds)

    async def _stored_stream_ids(self, session_id: str) -> list[str]:
        streams = await self.services.store.streams.for_session(session_id)
        return [stream.odyssey_stream_id for stream in streams if stream.odyssey_stream_id]
