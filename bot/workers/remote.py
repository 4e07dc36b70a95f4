"""The bot's side of sessions on workers: placement, commands, events into SQLite, and a worker's loss.

`RemoteLauncher` is the manager's `SessionLauncher` when `[workers] nats_url` is set. Each `RemoteSession`
follows its events from a durable JetStream consumer of its own (`bot-<session id>`, see feed.py), applying
ledger events to the bot's store and showing presenter events to the member, each once, and acknowledging
each only then. If its worker's presence expires, the session is settled from its last heartbeat, its
recordings so far are offered, and its slot is freed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import Error as NatsError

from bot.deadline import wait_within
from bot.store.records import SessionRecord
from bot.tryon.errors import NoSuchSession, NotAllowed, OutfitNotApplied, TryOnError
from bot.tryon.launcher import ManagedSession, RecoveryPresenterFactory
from bot.tryon.ledger import WorkerEventLedger
from bot.tryon.models import (
    ALLOWED_TRANSITIONS,
    FINISHING_STATES,
    TERMINAL_STATES,
    EndReason,
    SessionRequest,
    SessionState,
    SessionSummary,
)
from bot.tryon.presenter import (
    BotRestart,
    ErrorReported,
    Presenter,
    RecordingReady,
    SnapshotReady,
    StatusChanged,
)
from bot.tryon.recordings import collect_recording_links
from bot.tryon.runner import close_client
from bot.tryon.session import SessionServices
from bot.tryon.views import status_of, summary_of
from bot.workers import protocol
from bot.workers.bus import connect
from bot.workers.claims import Claim, SessionClaims, claims_bucket
from bot.workers.events import ensure_events_stream
from bot.workers.feed import EventFeed
from bot.workers.presence import PresenceBoard
from bot.workers.protocol import Message, StartCommand
from bot.workers.settings import WorkerSettings

log = logging.getLogger(__name__)

# A worker answers a start (accept or refuse) within this, or the next worker is tried.
START_REPLY_SECONDS = 5.0
SNAPSHOT_SECONDS = 10.0
STOP_SECONDS = 5.0
STOP_RETRY_SECONDS = 30.0
# Events shown to the member as a new post: recorded as applied (the floor a restarted bot starts from, see
# feed.py) before they are shown. Every other event is applied, then recorded, once per batch: each is
# idempotent (a stream row is added once and closed once, a prompt's status or a state is set to what it is
# or no longer allowed, heartbeats only raise, the quota settles once, a status edits the one status
# message), so one applied again after a crash between the two changes nothing. A post shown again would be
# a duplicate the member sees; recorded first, a crash in between loses that one post: at most once.
POSTS = frozenset({"snippet", "snapshot", "recording", "error"})
WORKER_LOST_MESSAGE = (
    "The machine running your try-on stopped, so your try-on ended early. Your recording follows."
)


class WorkerWatch:
    """Which workers are alive, read from the presence bucket every third of its TTL by one task.

    A worker counts as lost once its entry has been missing from successful reads for half a TTL plus a
    second; a failed read starts the count again, so right after a NATS restart (the entries may have
    expired meanwhile) every worker has that long to announce itself again before anyone is declared lost.
    """

    def __init__(self, board: PresenceBoard, settings: WorkerSettings) -> None:
        self.board = board
        self._period = settings.presence_ttl_seconds / 3
        self._confirm_seconds = settings.presence_ttl_seconds / 2 + 1.0
        self._alive: set[str] = set()
        self._missing_since: dict[str, float] = {}
        self._read_once = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin watching."""
        if self._task is None:
            self._task = asyncio.create_task(self._watch(), name="worker-watch")

    @property
    def any_alive(self) -> bool:
        """True if some worker announced itself lately."""
        return bool(self._alive)

    def is_lost(self, worker_id: str) -> bool:
        """True once the worker's presence has been gone for a confirmed heartbeat period."""
        since = self._missing_since.get(worker_id)
        return since is not None and time.monotonic() - since >= self._confirm_seconds

    def watch(self, worker_id: str) -> None:
        """Start tracking a worker a session was just placed on."""
        self._alive.add(worker_id)

    async def first_read(self, within: float) -> None:
        """Wait until the bucket was read once (at start-up), at most `within` seconds."""
        with contextlib.suppress(TimeoutError):
            await wait_within(self._read_once.wait(), within)

    async def refresh(self) -> None:
        """Read the bucket now (e.g. nobody was alive at the last look)."""
        try:
            live = {info.worker_id for info in await self.board.workers()}
        except Exception as error:
            # NATS away: nobody is declared lost on what cannot be read, nor soon after.
            log.debug("presence not readable: %r", error)
            self._missing_since.clear()
        else:
            self._update(live)

    async def _watch(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(self._period)

    def _update(self, live: set[str]) -> None:
        now = time.monotonic()
        for worker_id in self._alive - live:
            self._missing_since.setdefault(worker_id, now)
        for worker_id in live:
            self._missing_since.pop(worker_id, None)
        self._alive = live | {w for w in self._alive if not self.is_lost(w)}
        self._read_once.set()

    async def aclose(self) -> None:
        """Stop watching."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class RemoteLauncher:
    """Places sessions on workers over NATS; `open()` connects (or keeps trying in the background)."""

    def __init__(self, settings: WorkerSettings, *, sessions_outlive_bot: bool = True) -> None:
        self.settings = settings
        # False for `--local-workers`: those workers stop with the bot, so its sessions end with it too.
        self.sessions_outlive_bot = sessions_outlive_bot
        self.client: Client | None = None
        self.claims: SessionClaims | None = None
        self.watch: WorkerWatch | None = None
        self._connecting: asyncio.Task[None] | None = None

    async def open(self) -> None:
        """Connect now if NATS answers; otherwise refuse try-ons plainly and keep trying to connect."""
        try:
            await self._connect()
        except Exception as error:  # unreachable, or JetStream not (yet) enabled there
            log.warning(
                "workers: %s; try-ons are refused until it is reachable", error or type(error).__name__
            )
            self._connecting = asyncio.create_task(self._keep_connecting(), name="workers-connect")

    async def _connect(self) -> None:
        client = await connect(self.settings, "tryon-bot")
        try:
            await ensure_events_stream(client, self.settings)
            self.claims = SessionClaims(await claims_bucket(client, self.settings))
        except BaseException:
            await client.close()
            raise
        self.watch = WorkerWatch(PresenceBoard(client, self.settings), self.settings)
        self.watch.start()
        self.client = client
        await self.watch.first_read(self.settings.presence_ttl_seconds)

    async def _keep_connecting(self) -> None:
        while self.client is None:
            await asyncio.sleep(self.settings.connect_timeout_seconds)
            try:
                await self._connect()
            except Exception as error:
                log.warning("workers: still unreachable (%s)", type(error).__name__)
        log.info("workers: connected; try-ons can start")

    def create(
        self,
        session_id: str,
        request: SessionRequest,
        presenter: Presenter,
        services: SessionServices,
        *,
        allowance_seconds: float,
        idle_seconds: float | None,
    ) -> RemoteSession:
        """A queued session to be placed on a worker when the manager runs it."""
        return RemoteSession(
            session_id,
            request,
            presenter,
            services,
            self,
            allowance_seconds=allowance_seconds,
            idle_seconds=idle_seconds,
        )

    def watch_worker(self, worker_id: str) -> None:
        """Track a worker a session runs on (placed now, or taken back after a restart)."""
        if self.watch is not None:
            self.watch.watch(worker_id)

    async def check_available(self) -> None:
        """NotAllowed while NATS is unreachable or no worker is alive (nothing is charged)."""
        if self.client is None or not self.client.is_connected:
            raise NotAllowed(
                "The try-on service is unreachable right now, so try-ons can't start. "
                "Please try again later.",
                reason="workers_unreachable",
            )
        if self.watch is not None and not self.watch.any_alive:
            await self.watch.refresh()
        if self.watch is None or not self.watch.any_alive:
            raise NotAllowed(
                "No try-on worker is running right now, so try-ons can't start. Please try again later.",
                reason="no_workers",
            )

    async def reattach(
        self, records: list[SessionRecord], presenter_for: RecoveryPresenterFactory, services: SessionServices
    ) -> list[RemoteSession]:
        """The sessions of `records` a worker still runs (it answers their `status`), taken back live."""
        if self.client is None:
            return []  # NATS unreachable: they cannot be reached, so they end as interrupted
        answers = await asyncio.gather(*(self._status_of(record.id) for record in records))
        adopted = []
        for record, answer in zip(records, answers, strict=True):
            presenter = presenter_for(record) if answer is not None else None
            if answer is not None and presenter is not None:
                adopted.append(RemoteSession.taken_back(record, answer, presenter, services, self))
        return adopted

    async def _status_of(self, session_id: str) -> dict[str, Any] | None:
        subject = protocol.command_subject(self.settings, session_id, "status")
        try:
            msg = await self.connected().request(
                subject, b"", timeout=START_REPLY_SECONDS, headers=Message("status").headers()
            )
            answer: dict[str, Any] = json.loads(msg.data)
        except (NatsError, TimeoutError, ValueError, TryOnError):
            return None
        return answer if answer.get("ok") else None

    def detach(self, session: ManagedSession) -> bool:
        """At a graceful stop: leave a session streaming on its worker for the next start to take back."""
        return self.sessions_outlive_bot and isinstance(session, RemoteSession) and session.detach()

    def connected(self) -> Client:
        """The NATS client (NotAllowed while unreachable)."""
        if self.client is None:
            raise NotAllowed("The try-on service is unreachable right now.", reason="workers_unreachable")
        return self.client

    def session_claims(self) -> SessionClaims:
        """The claims bucket (NotAllowed while NATS is unreachable)."""
        self.connected()
        assert self.claims is not None  # set before the client
        return self.claims

    async def aclose(self) -> None:
        """Stop watching and connecting, and close the connection."""
        if self._connecting is not None:
            self._connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connecting
        if self.watch is not None:
            await self.watch.aclose()
        if self.client is not None:
            with contextlib.suppress(Exception):
                await wait_within(self.client.drain(), 5.0)


def worker_event_ledger(services: SessionServices) -> WorkerEventLedger:
    """The bot's ledger, which keeps how far each session's events were applied (StoreLedger does)."""
    if not isinstance(services.ledger, WorkerEventLedger):
        raise TypeError("sessions on workers need a ledger that records their events as applied")
    return services.ledger


class NoWorkerFree(TryOnError):
    """Every worker refused, vanished or was full when the session's turn came."""

    default_reason = "no_worker"
    default_message = (
        "No try-on worker could take your try-on right now. Nothing was charged; please try again."
    )


class RemoteSession:
    """A try-on running on a worker, as the manager sees it: placed, steered and followed over NATS."""

    def __init__(
        self,
        session_id: str,
        request: SessionRequest,
        presenter: Presenter,
        services: SessionServices,
        launcher: RemoteLauncher,
        *,
        allowance_seconds: float,
        idle_seconds: float | None,
    ) -> None:
        self.id = session_id
        self.request = request
        self.presenter = presenter
        self.services = services
        self.ledger = worker_event_ledger(services)
        self.settings = services.settings
        self.launcher = launcher
        self.allowance_seconds = min(allowance_seconds, self.settings.max_session_seconds)
        self.idle_seconds = idle_seconds
        self.state = SessionState.QUEUED
        self.end_reason: EndReason | None = None
        self.started_at: float | None = None
        self.pending_prompt_ids: list[int] = []
        self.done_streaming = asyncio.Event()
        self.finished = asyncio.Event()
        self.latest_outfit = request.outfit
        self.streamed_seconds = 0.0
        # Decoded frames, as of the worker's last heartbeat (for monitoring and the benchmarks).
        self.frames_received = 0
        self.stream_ids: list[str] = []
        self.worker_id: str | None = None
        self.queue_position: int | None = None
        self.estimated_wait_seconds: float | None = None
        self.last_status: StatusChanged | None = None
        self._stream_seconds: float | None = None
        # The last of its events recorded in SQLite as applied.
        self._events_recorded = 0
        self._feed: EventFeed | None = None
        self._settled = False
        self._worker_done = False
        self._placed = asyncio.Event()
        # Taken back after the bot's restart: already running on `worker_id`.
        self._taken_back = False
        self._detached = False
        self._snapshots: list[asyncio.Future[SnapshotReady]] = []
        self._background: set[asyncio.Task[Any]] = set()

    @classmethod
    def taken_back(
        cls,
        record: SessionRecord,
        status: dict[str, Any],
        presenter: Presenter,
        services: SessionServices,
        launcher: RemoteLauncher,
    ) -> RemoteSession:
        """A session a worker kept running through the bot's restart, as the worker describes it."""
        request = SessionRequest(
            guild_id=record.guild_id,
            user_id=record.user_id,
            channel_id=record.channel_id,
            photo=b"",  # the worker holds it
            outfit=str(status["outfit"]),
            front_end=record.front_end,
        )
        session = cls(
            record.id,
            request,
            presenter,
            services,
            launcher,
            allowance_seconds=services.settings.max_session_seconds,
            idle_seconds=None,
        )
        session.state = SessionState(status["state"])
        session.worker_id = str(status["worker_id"])
        session.streamed_seconds = float(status["streamed_seconds"])
        session.stream_ids = [str(i) for i in status["stream_ids"]]
        session.end_reason = EndReason(status["end_reason"]) if status["end_reason"] else None
        session.started_at = time.monotonic()
        session._events_recorded = record.events_applied
        session._taken_back = True
        session._placed.set()
        return session

    # ----- reading ------------------------------------------------------------------------------------------

    @property
    def is_finished(self) -> bool:
        """True once the session reached a terminal state."""
        return self.state in TERMINAL_STATES

    @property
    def remaining_seconds(self) -> float:
        """Streaming seconds left (as the worker last reported, or from the allowance)."""
        if self.last_status is not None and self.last_status.remaining_seconds is not None:
            return self.last_status.remaining_seconds
        return max(0.0, self.allowance_seconds - self.streamed_seconds)

    @property
    def events_dropped(self) -> int:
        """Events that came again (after a lost acknowledgement or a restart) and were dropped."""
        return 0 if self._feed is None else self._feed.dropped

    def summary(self) -> SessionSummary:
        """What a front end may know of the session right now."""
        return summary_of(self)

    # ----- steering -----------------------------------------------------------------------------------------

    async def apply_outfit(self, outfit: str, prompt_id: int) -> None:
        """Before placement: kept for the start. After: sent to the worker; returns once it is on screen.

        The snippet reaches the presenter as an event, so this returns None.
        """
        if self.is_finished or self.state in FINISHING_STATES:
            raise NoSuchSession()
        if self.started_at is None:
            self.pending_prompt_ids.append(prompt_id)
            self.latest_outfit = outfit
            return
        await self._wait_placed()
        timeout = self.settings.ack_timeout_seconds + self.settings.snippet_seconds * 3 + 10.0
        answer = await self._command("outfit", {"outfit": outfit, "prompt_id": prompt_id}, timeout)
        if answer.get("error") == "no_session":
            raise NoSuchSession()
        if "error" in answer:
            raise OutfitNotApplied()
        self.latest_outfit = outfit

    async def snapshot(self) -> SnapshotReady | None:
        """Have the worker present a still; returns it once it arrived here (None before the first frame)."""
        if self.worker_id is None or self.is_finished:
            return None
        arrived: asyncio.Future[SnapshotReady] = asyncio.get_running_loop().create_future()
        self._snapshots.append(arrived)
        try:
            answer = await self._command("snapshot", {}, SNAPSHOT_SECONDS)
            if not answer.get("ok"):
                return None
            return await wait_within(asyncio.shield(arrived), SNAPSHOT_SECONDS)
        except (TryOnError, TimeoutError):
            return None
        finally:
            with contextlib.suppress(ValueError):
                self._snapshots.remove(arrived)

    async def share_live(self) -> None:
        """Before placement: the start carries broadcast mode. After: the worker starts a broadcast part."""
        if self.is_finished or self.state in FINISHING_STATES:
            raise NoSuchSession()
        if self.started_at is None:
            self.request = dataclasses.replace(self.request, watch=True)
            return
        await self._wait_placed()
        answer = await self._command("share", {}, self.settings.start_timeout_seconds)
        if answer.get("error") == "no_session":
            raise NoSuchSession()
        if "error" in answer:
            raise TryOnError("The try-on could not be shared right now. Please try again.", reason="share")

    def detach(self) -> bool:
        """Stop following the session but leave it streaming (the bot is stopping; its next start takes the
        session back); False unless it is live on a worker."""
        if self.worker_id is None or self.state is not SessionState.STREAMING or self.end_reason is not None:
            return False
        self._detached = True
        return True

    def stop(self, reason: EndReason) -> None:
        """Ask the session to end; the first reason wins. The worker is told in the background."""
        if self.end_reason is None:
            self.end_reason = reason
        if self.worker_id is not None and not self._worker_done and not self.finished.is_set():
            self._spawn(self._send_stop(reason))

    async def _send_stop(self, reason: EndReason) -> None:
        # Repeated until the worker answers (e.g. through a NATS restart) or the session is over; a worker
        # gone for good is noticed by its presence instead.
        give_up = time.monotonic() + STOP_RETRY_SECONDS
        while not self._worker_done and not self.finished.is_set() and time.monotonic() < give_up:
            try:
                await self._command("stop", {"reason": str(reason)}, STOP_SECONDS)
                return
            except TryOnError:
                await asyncio.sleep(1.0)

    async def cancel_queued(self, reason: EndReason = EndReason.MEMBER) -> None:
        """Leave the queue before placement: refund and mark cancelled."""
        self.end_reason = self.end_reason or reason
        await self._settle(0.0)
        await self._set_state(SessionState.CANCELLED)
        await self._report_status()
        self.finished.set()

    async def report_queue_position(self, position: int | None, wait_seconds: float | None) -> None:
        """Tell the member where they stand in the queue."""
        if position == self.queue_position and self.state is SessionState.QUEUED:
            return
        self.queue_position = position
        self.estimated_wait_seconds = wait_seconds
        await self._report_status()

    # ----- the run ------------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Place the session on a worker and follow its events to the end; never raises."""
        self.started_at = time.monotonic()
        feed = None
        try:
            feed = await self._open_feed()
            if self._taken_back:
                assert self.worker_id is not None
                self.launcher.watch_worker(self.worker_id)
                await self._report_status(bot_restart="taken_back")
            else:
                await self._place()
                if self.end_reason is not None:  # stopped while being placed
                    self._spawn(self._send_stop(self.end_reason))
            await self._follow(feed)
            if self._detached:
                await self._report_status(bot_restart="handing_over")
                return
            if not self._settled:  # the worker ended without its settlement reaching us
                await self._settle(self.streamed_seconds)
        except TryOnError as error:
            await self._fail(error.message, error=error)
        except Exception as error:
            log.exception("session %s: lost its worker's events", self.id)
            await self._fail(
                "Something went wrong on our side. Please try again.", error=None, reason=type(error).__name__
            )
        finally:
            if self.worker_id is not None and not self._worker_done and self.is_finished:
                # Given up here (lost or failed): make sure the worker does not stream on unseen.
                with contextlib.suppress(TryOnError):
                    await self._command("stop", {"reason": str(EndReason.CONNECTION_LOST)}, STOP_SECONDS)
            self._placed.set()
            for task in list(self._background):
                task.cancel()
            await asyncio.gather(*self._background, return_exceptions=True)
            if feed is not None:
                # Cancelled (the bot stopping hard) with the session still live on its worker: the consumer
                # and its events stay for the restarted bot to take back.
                await feed.close(delete=self.is_finished or self.worker_id is None)
            if self.is_finished:
                await self._release_claim()
            self.done_streaming.set()
            self.finished.set()

    async def _place(self) -> None:
        """Start the session on the freest worker; one that refuses is skipped, and so is a silent one.

        A worker that does not answer may have claimed the session all the same: then it runs there.
        """
        watch = self.launcher.watch
        assert watch is not None  # set together with the client
        start = self._start_command()
        tried: set[str] = set()
        while (worker := await watch.board.place(frozenset(tried))) is not None:
            tried.add(worker.worker_id)
            answer = await self._offer(worker.worker_id, start)
            if answer is None:
                claim = await self._abandon(worker.worker_id, start.claim_revision)
                if claim.owner is not None:
                    self._placed_on(claim.owner)
                    return
                start = dataclasses.replace(start, claim_revision=claim.revision)
            elif answer.get("accepted"):
                self._placed_on(worker.worker_id)
                return
            else:
                reason = answer.get("reason")
                log.info("session %s: worker %s refused (%s)", self.id, worker.worker_id, reason)
        raise NoWorkerFree()

    def _start_command(self) -> StartCommand:
        return StartCommand(
            session_id=self.id,
            # The latest outfit: one sent while queued replaces the first (its prompt id is pending too).
            request=dataclasses.replace(self.request, outfit=self.latest_outfit),
            allowance_seconds=self.allowance_seconds,
            idle_seconds=self.idle_seconds,
            pending_prompt_ids=tuple(self.pending_prompt_ids),
            upload_budget_bytes=self.presenter.upload_budget_bytes,
            settings=self.settings,
        )

    async def _offer(self, worker_id: str, start: StartCommand) -> dict[str, Any] | None:
        """Send the start to one worker; its answer, or None if none came in time."""
        message = start.to_message()
        subject = protocol.start_subject(self.launcher.settings, worker_id)
        try:
            msg = await self.launcher.connected().request(
                subject, message.data, timeout=START_REPLY_SECONDS, headers=message.headers()
            )
            answer: dict[str, Any] = json.loads(msg.data)
        except (NatsError, TimeoutError, ValueError) as error:
            log.warning("session %s: worker %s did not answer the start (%r)", self.id, worker_id, error)
            return None
        return answer

    async def _abandon(self, worker_id: str, claim_revision: int) -> Claim:
        """Make sure a worker that left the start unanswered never starts it later; who owns it now."""
        try:
            claim = await self.launcher.session_claims().abandon(self.id, worker_id, claim_revision)
        except (NatsError, TimeoutError) as error:
            # Whether that worker took it cannot be known now, so no other worker may have it.
            log.warning("session %s: could not give up on worker %s (%r)", self.id, worker_id, error)
            raise NoWorkerFree() from error
        if claim.owner is not None:
            log.warning("session %s: worker %s started it but its reply was lost", self.id, claim.owner)
        return claim

    def _placed_on(self, worker_id: str) -> None:
        watch = self.launcher.watch
        assert watch is not None  # set together with the client
        self.worker_id = worker_id
        watch.watch(worker_id)
        self.pending_prompt_ids = []
        self._placed.set()
        log.info("session %s: placed on worker %s", self.id, worker_id)

    async def _release_claim(self) -> None:
        """The session is settled: no start can be pending any more, so its claim goes."""
        claims = self.launcher.claims
        if claims is not None:
            with contextlib.suppress(Exception):
                await claims.release(self.id)

    async def _open_feed(self) -> EventFeed:
        """The session's events, from a durable consumer made before the start so none can be missed.

        Taken back after a restart, the consumer is made again from its acknowledgement floor: what the
        crashed bot took but never acknowledged comes again at once, and the floor drops what it applied.
        """
        settings = self.launcher.settings
        feed = EventFeed(self.launcher.connected(), settings, self.id, self._events_recorded)
        await feed.open(rewind=self._taken_back)
        self._feed = feed
        return feed

    async def _follow(self, feed: EventFeed) -> None:
        """Apply events until the worker reports the end, or its presence expires."""
        watch = self.launcher.watch
        assert watch is not None and self.worker_id is not None
        this = asyncio.current_task()
        while not self._worker_done and not self._detached:
            await self._take_events(feed)
            if this is not None and this.cancelling():
                # nats-py's fetch can swallow a cancellation (the bot stopping): honour it here.
                raise asyncio.CancelledError()
            if not self._worker_done and watch.is_lost(self.worker_id):
                while await self._take_events(feed):  # whatever it stored before it went
                    pass
                if not self._worker_done:
                    await self._worker_lost()
                return

    async def _take_events(self, feed: EventFeed) -> int:
        """Apply the next new events in order, then record how far; how many there were."""
        events = await feed.next_events()
        for event in events:
            if event.kind in POSTS and event.sequence is not None:
                await self._record_applied(event.sequence)
            await self._apply(event.msg)
            await feed.done(event)
        await self._record_applied(feed.applied_through)
        return len(events)

    async def _record_applied(self, sequence: int) -> None:
        """Keep the floor in SQLite, where a bot restarted after a crash reads it."""
        if sequence <= self._events_recorded:
            return
        try:
            await self.ledger.events_applied(self.id, sequence)
        except Exception:
            log.exception("session %s: could not record its events as applied", self.id)
            return
        self._events_recorded = sequence

    # ----- events -------------------------------------------------------------------------------------------

    async def _apply(self, msg: Msg) -> None:
        try:
            message = Message.parse(msg.headers, msg.data)
        except protocol.ProtocolError as error:
            log.warning("session %s: not an event (%s); skipped", self.id, error)
            return
        for attempt in range(3):
            try:
                await self._apply_event(message)
                return
            except Exception:
                if attempt == 2:
                    log.exception("session %s: could not apply a %s event", self.id, message.kind)
                    return
                await asyncio.sleep(0.5)

    async def _apply_event(self, message: Message) -> None:
        f, ledger = message.fields, self.services.ledger
        kind = message.kind
        if kind == "state":
            # Events come in order and once (feed.py); one applied again after a crash between applying and
            # recording it is a move the state machine no longer allows, so it changes nothing.
            state = SessionState(f["state"])
            if state in ALLOWED_TRANSITIONS[self.state]:
                await self._set_state(state, error=f["error"], error_reason=f["error_reason"])
        elif kind == "heartbeat":
            if float(f["streamed_seconds"]) >= self.streamed_seconds:
                self.streamed_seconds = float(f["streamed_seconds"])
                self._stream_seconds = f["stream_seconds"]
                # Absent from a worker of an earlier version.
                self.frames_received = int(f.get("frames_received") or self.frames_received)
                await ledger.heartbeat(self.id, self.streamed_seconds, self._stream_seconds)
        elif kind == "stream_started":
            if f["stream_id"] not in self.stream_ids:
                self.stream_ids.append(f["stream_id"])
            await ledger.stream_started(self.id, f["stream_id"], f["prompt"])
        elif kind == "stream_ended":
            self._stream_seconds = None
            await ledger.stream_ended(self.id, f["stream_id"], float(f["seconds"]), f["reason"])
        elif kind == "prompt":
            await ledger.prompt_status(int(f["prompt_id"]), f["status"], f["refusal_reason"])
        elif kind == "settle":
            await self._settle(float(f["streamed_seconds"]))
        elif kind == "finished":
            self._worker_done = True
            if self.end_reason is None and f["end_reason"]:
                self.end_reason = EndReason(f["end_reason"])
        else:
            await self._present(message)

    async def _present(self, message: Message) -> None:
        """A presenter event: shown to the member (a failing or hung front end never stops the events)."""
        try:
            await wait_within(self._show(message), 30.0)
        except Exception:
            log.exception("session %s: presenter failed", self.id)

    async def _show(self, message: Message) -> None:
        presenter = self.presenter
        if message.kind == "status":
            status = protocol.status_from(message)
            self.last_status = status
            self.latest_outfit = status.outfit or self.latest_outfit
            await presenter.status_changed(status)
        elif message.kind == "snippet":
            await presenter.snippet_ready(protocol.snippet_from(message))
        elif message.kind == "snapshot":
            still = protocol.snapshot_from(message)
            try:
                await presenter.snapshot_ready(still)
            finally:
                for arrived in self._snapshots:
                    if not arrived.done():
                        arrived.set_result(still)
        elif message.kind == "broadcast":
            await presenter.broadcast_ready(protocol.broadcast_from(message))
        elif message.kind == "recording":
            await presenter.recording_ready(protocol.recording_from(message))
        elif message.kind == "error":
            await presenter.error(protocol.error_from(message))
        else:
            log.warning("session %s: unknown event %r; skipped", self.id, message.kind)

    # ----- endings ------------------------------------------------------------------------------------------

    async def _worker_lost(self) -> None:
        """The worker vanished: settle from the last heartbeat, offer the recordings so far, end."""
        log.warning("session %s: worker %s is gone", self.id, self.worker_id)
        self.end_reason = self.end_reason or EndReason.CONNECTION_LOST
        self.done_streaming.set()
        await self._say(WORKER_LOST_MESSAGE)
        if self.stream_ids and self._stream_seconds is not None:
            current = self.stream_ids[-1]
            await self.services.ledger.stream_ended(self.id, current, self._stream_seconds, "worker_lost")
        await self._settle(self.streamed_seconds)
        await self._set_state(SessionState.INTERRUPTED, error_reason="worker_lost")
        await self._report_status()
        links = []
        if self.stream_ids:
            client = self.services.client_factory()
            try:
                links = await collect_recording_links(client, self.stream_ids, self.settings)
            finally:
                await close_client(client, self.settings.end_timeout_seconds)
        if links:
            await self._present_safely(self.presenter.recording_ready(RecordingReady(self.id, tuple(links))))
        else:
            await self._say("Nothing of it was recorded.")

    async def _fail(self, message: str, *, error: TryOnError | None, reason: str | None = None) -> None:
        if self.is_finished:
            return
        try:
            await self._settle(self.streamed_seconds)
            await self._set_state(
                SessionState.FAILED,
                error=message,
                error_reason=error.reason if error is not None else reason,
            )
        except Exception:
            log.exception("session %s: could not record the failure", self.id)
        await self._present_safely(self.presenter.error(ErrorReported(self.id, message, error)))
        await self._report_status()

    async def _settle(self, streamed_seconds: float) -> None:
        if self._settled:
            return
        self.streamed_seconds = streamed_seconds
        await self.services.ledger.settle(self.id, streamed_seconds)
        self._settled = True  # only once written: a failed write is tried again

    async def _set_state(
        self, state: SessionState, *, error: str | None = None, error_reason: str | None = None
    ) -> None:
        self.state = state
        if state in FINISHING_STATES or state in TERMINAL_STATES:
            self.done_streaming.set()
        await self.services.ledger.state_changed(self.id, state, error=error, error_reason=error_reason)

    # ----- helpers ------------------------------------------------------------------------------------------

    async def _command(self, command: str, fields: dict[str, Any], within: float) -> dict[str, Any]:
        """Send a command to the session's worker; TryOnError if it cannot be reached."""
        subject = protocol.command_subject(self.launcher.settings, self.id, command)
        message = Message(command, fields)
        try:
            client = self.launcher.connected()
            msg = await client.request(subject, b"", timeout=within, headers=message.headers())
            answer: dict[str, Any] = json.loads(msg.data)
            return answer
        except (NatsError, TimeoutError, ValueError) as error:
            log.warning("session %s: %s not answered (%r)", self.id, command, error)
            raise TryOnError("The try-on could not be reached. Please try again.", reason="worker") from error

    async def _wait_placed(self) -> None:
        with contextlib.suppress(TimeoutError):
            await wait_within(self._placed.wait(), START_REPLY_SECONDS * 3)
        if self.worker_id is None:
            raise NoSuchSession()

    async def _report_status(self, bot_restart: BotRestart | None = None) -> None:
        event = status_of(self, bot_restart=bot_restart)
        self.last_status = event
        await self._present_safely(self.presenter.status_changed(event))

    async def _say(self, text: str) -> None:
        await self._present_safely(self.presenter.error(ErrorReported(self.id, text)))

    async def _present_safely(self, call: Any) -> None:
        try:
            await wait_within(call, 30.0)
        except Exception:
            log.exception("session %s: presenter failed", self.id)

    def _spawn(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
