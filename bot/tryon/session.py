"""One member's try-on: an explicit state machine that streams, steers, rolls over, ends and settles."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from bot.deadline import wait_within
from bot.media.framebuffer import FrameBuffer
from bot.media.highlight import HighlightReel
from bot.media.snippets import SnippetEncoder, SnippetTooLargeError
from bot.media.stills import before_after_png, thumbnail_jpeg
from bot.odyssey import BroadcastInfo, OdysseyError, OdysseyStreamError, OdysseyUsageError
from bot.tryon.errors import NoSuchSession, OutfitNotApplied, TryOnError
from bot.tryon.models import (
    FINISHING_STATES,
    TERMINAL_STATES,
    EndReason,
    SessionRequest,
    SessionState,
    SessionSummary,
    check_transition,
)
from bot.tryon.presenter import (
    BroadcastReady,
    ErrorReported,
    Highlight,
    Presenter,
    RecordingLinks,
    RecordingReady,
    SnapshotReady,
    SnippetReady,
    StatusChanged,
)
from bot.tryon.recordings import collect_recording_links, start_failure_message, usage_error_message
from bot.tryon.runner import ClientFactory, LiveStream, StreamRunner, StreamStopped, close_client
from bot.tryon.settings import EngineSettings
from bot.tryon.views import status_of, summary_of

if TYPE_CHECKING:
    from bot.tryon.ledger import SessionLedger

log = logging.getLogger(__name__)

# The final message's JSON and multipart framing travel in the same request as its files.
UPLOAD_OVERHEAD_BYTES = 64 * 1024


@dataclasses.dataclass
class SessionServices:
    """What a live session needs, in whichever process runs it: its ledger, encoder, Odyssey clients."""

    ledger: SessionLedger
    encoder: SnippetEncoder
    client_factory: ClientFactory
    settings: EngineSettings


class TryOnSession:
    """One member's try-on from the queue to the recording links.

    The manager creates it (QUEUED), then runs `run()` once a slot is free; its `StreamRunner` (`streams`)
    holds the Odyssey side. The engine steers it with `apply_outfit()`, `snapshot()` and `stop()`; it
    reports every change to its Presenter. Every state change is checked against ALLOWED_TRANSITIONS and
    written to its ledger before it is reported.
    """

    def __init__(
        self,
        session_id: str,
        request: SessionRequest,
        presenter: Presenter,
        services: SessionServices,
        *,
        allowance_seconds: float,
        idle_seconds: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.id = session_id
        self.request = request
        self.presenter = presenter
        self.services = services
        self.settings = services.settings
        self.state = SessionState.QUEUED
        self.end_reason: EndReason | None = None
        self.allowance_seconds = min(allowance_seconds, self.settings.max_session_seconds)
        self.idle_seconds = idle_seconds if idle_seconds is not None else self.settings.idle_seconds
        self.latest_outfit = request.outfit
        # Shared live: every stream part from the next one on is broadcast (spectators watch over WHEP).
        self.broadcasting = request.watch
        # The current broadcast part's details, shown again if the session is shared again.
        self.last_broadcast: BroadcastReady | None = None
        # Prompts stored as pending before the first stream started; it applies the latest of them.
        self.pending_prompt_ids: list[int] = []
        self.buffer = FrameBuffer(
            sample_fps=self.settings.snippet_fps,
            window_seconds=self.settings.buffer_seconds,
            max_width=self.settings.snippet_width,
        )
        # A sample of the whole session for its highlight video; memory bound: highlight_memory_bytes.
        self.reel = HighlightReel(
            fps=min(self.settings.highlight_fps, self.settings.snippet_fps),  # it samples the buffer's frames
            max_frames=self.settings.highlight_max_frames,
            max_bytes=self.settings.highlight_memory_bytes,
            max_width=self.settings.highlight_width,
        )
        self._clock = clock
        self._stop = asyncio.Event()
        self.streams = StreamRunner(
            self,
            services.client_factory,
            self.settings,
            photo=request.photo,
            portrait=self.settings.portrait if request.portrait is None else request.portrait,
            buffer=self.buffer,
            stopped=self._stop,
            label=session_id,
            clock=clock,
            reel=self.reel,
        )
        # The pending prompts a stream about to start carries.
        self._carried_prompt_ids: list[int] = []
        self._watchdog: asyncio.Task[None] | None = None
        # Set by a shutdown even after the session ended for another reason: cuts the recording wait short.
        self._shutdown = asyncio.Event()
        self._last_activity = clock()
        self._steer_lock = asyncio.Lock()
        self._settled = False
        self._background: set[asyncio.Task[Any]] = set()
        self.queue_position: int | None = None
        # The last status reported to the presenter.
        self.last_status: StatusChanged | None = None
        self.estimated_wait_seconds: float | None = None
        self.started_at: float | None = None
        # Set once the session holds no platform connection any more and only settles and fetches recordings.
        self.done_streaming = asyncio.Event()
        self.finished = asyncio.Event()

    # ----- reading -------------------------------------------------------------------------------------

    @property
    def streamed_seconds(self) -> float:
        """Seconds actually streamed so far, over every stream of the session."""
        return self.streams.streamed_seconds

    @property
    def stream_ids(self) -> list[str]:
        """The platform's ids of the session's streams so far, oldest first."""
        return self.streams.stream_ids

    @property
    def rollovers(self) -> int:
        """How many times the session moved to a fresh stream."""
        return self.streams.rollovers

    @property
    def frames_received(self) -> int:
        """Decoded frames taken from the platform (for monitoring and the benchmarks)."""
        return self.streams.frames_received

    @property
    def remaining_seconds(self) -> float:
        """Streaming seconds left before the session stops on its quota or session limit."""
        return max(0.0, self.allowance_seconds - self.streamed_seconds)

    @property
    def is_finished(self) -> bool:
        """True once the session reached a terminal state."""
        return self.state in TERMINAL_STATES

    def summary(self) -> SessionSummary:
        """What a front end may know of the session right now."""
        return summary_of(self)

    # ----- steering (called by front ends) ---------------------------------------------------------------

    async def apply_outfit(self, outfit: str, prompt_id: int) -> SnippetReady | None:
        """Apply an outfit the engine checked and recorded as `prompt_id`, then snippet what follows.

        Before the stream runs, the outfit is kept and applied at the start. Returns the snippet, if any.
        """
        if self.is_finished or self.state in FINISHING_STATES:
            raise NoSuchSession()
        self.latest_outfit = outfit
        self._last_activity = self._clock()
        if self.state in (SessionState.QUEUED, SessionState.CONNECTING):
            self.pending_prompt_ids.append(prompt_id)
            return None
        return await self._steer(outfit, [prompt_id])

    async def _steer(self, outfit: str, prompt_ids: list[int]) -> SnippetReady | None:
        """Send `outfit` to the live stream, mark its prompts applied, and snippet what follows the ack."""
        ledger = self.services.ledger
        async with self._steer_lock:
            try:
                await self.streams.apply(outfit)
            except (OdysseyError, TimeoutError) as exc:
                live = self.streams.live
                if self.latest_outfit == outfit and live is not None:
                    # Not on screen: neither shown as current nor carried into the next stream.
                    self.latest_outfit = live.prompt
                for prompt_id in prompt_ids:
                    await ledger.prompt_status(prompt_id, "refused", type(exc).__name__)
                raise OutfitNotApplied() from exc
            # The snippet starts at the acknowledgement: frames before it still show the old outfit.
            mark = self._timeline_now()
            self.reel.begin_chapter(outfit)
            for prompt_id in prompt_ids:
                await ledger.prompt_status(prompt_id, "applied")
            await self._report_status()
            return await self._snippet(outfit, since=mark)

    async def _apply_outfits_sent_while_connecting(self) -> None:
        """Outfits sent after the start went out: apply the latest now (the start carried an older one)."""
        prompt_ids, self.pending_prompt_ids = self.pending_prompt_ids, []
        try:
            await self._steer(self.latest_outfit, prompt_ids)
        except (OutfitNotApplied, NoSuchSession) as exc:
            log.info("session %s: outfit sent while connecting not applied: %r", self.id, exc)

    async def snapshot(self) -> SnapshotReady | None:
        """Send a still of the current frame to the presenter (None before the first frame)."""
        data = await self.buffer.snapshot("PNG")
        if data is None:
            return None
        event = SnapshotReady(
            session_id=self.id,
            data=data,
            filename=f"tryon-{self.id}-{int(self.streamed_seconds)}s.png",
            caption=f"{self.latest_outfit} ({self.streamed_seconds:.0f} s)",
        )
        await self._present(self.presenter.snapshot_ready(event))
        return event

    async def share_live(self) -> None:
        """Broadcast from now on: the first stream if none runs yet, else a fresh stream part at once (a
        roll-over on the same connection, as before the cap). Already shared: its details are shown again."""
        if self.is_finished or self.state in FINISHING_STATES:
            raise NoSuchSession()
        if not self.broadcasting:
            self.broadcasting = True
            self.streams.roll_over_now()
        elif self.last_broadcast is not None:
            await self._present(self.presenter.broadcast_ready(self.last_broadcast))

    def stop(self, reason: EndReason) -> None:
        """Ask the session to end; the first reason wins. Safe to call in any state, any number of times."""
        if self.end_reason is None:
            self.end_reason = reason
        if reason is EndReason.SHUTDOWN:
            self._shutdown.set()
        self._stop.set()

    # ----- the run -----------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, stream (rolling over at the cap), end, settle and report; never raises."""
        self.started_at = self._clock()
        try:
            await self._transition(SessionState.CONNECTING)
            await self._stream_until_stopped()
            await self._finish()
        except StreamStopped:
            await self._cancel_before_streaming()
        except TryOnError as exc:
            await self._fail(exc.message, error=exc)
        except OdysseyUsageError as exc:
            await self._fail(usage_error_message(exc), error=None, reason=exc.code)
        except (OdysseyError, TimeoutError) as exc:
            log.warning("session %s: the platform failed: %r", self.id, exc)
            reason = exc.reason if isinstance(exc, OdysseyStreamError) and exc.reason else type(exc).__name__
            await self._fail(start_failure_message(exc), error=None, reason=reason)
        except asyncio.CancelledError:
            await asyncio.shield(self._fail("The try-on was stopped unexpectedly.", error=None))
            raise
        except Exception as exc:
            error_id = uuid.uuid4().hex[:8]
            log.exception("session %s failed (error id %s)", self.id, error_id)
            await self._fail(
                f"Something went wrong on our side (error id {error_id}). Please try again.",
                error=None,
                error_id=error_id,
                reason=type(exc).__name__,
            )
        finally:
            await self._close_background()
            self.buffer.clear()
            self.reel.clear()
            self.finished.set()

    async def _stream_until_stopped(self) -> None:
        """Stream (the runner rolls over as needed) while the watchdog stops it on idle, quota or limit."""
        try:
            await self.streams.run()
        finally:
            if self._watchdog is not None:
                self._watchdog.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._watchdog

    async def _keep_watch(self) -> None:
        """While streaming: heartbeat the streamed seconds; stop on idle, spent quota or the session limit."""
        next_heartbeat = self._clock() + self.settings.heartbeat_seconds
        while not self._stop.is_set():
            now = self._clock()
            if now - self._last_activity >= self.idle_seconds:
                self.stop(EndReason.IDLE)
                return
            if self.remaining_seconds <= 0:
                self.stop(EndReason.QUOTA if self._quota_bound else EndReason.LIMIT)
                return
            if now >= next_heartbeat:
                live = self.streams.live
                running = now - live.started if live is not None else None
                await self.services.ledger.heartbeat(self.id, self.streamed_seconds, running)
                next_heartbeat = now + self.settings.heartbeat_seconds
            deadline = min(
                next_heartbeat, self._last_activity + self.idle_seconds, now + self.remaining_seconds
            )
            with contextlib.suppress(TimeoutError):
                await wait_within(self._stop.wait(), max(0.0, deadline - now) + 0.01)

    def _watchdog_ended(self, task: asyncio.Task[None]) -> None:
        # A failed heartbeat write must not leave the stream running unwatched (no idle or quota stop):
        # stop the streams; `_stream_until_stopped` then re-raises the failure and the session fails.
        if not task.cancelled() and task.exception() is not None:
            self._stop.set()

    @property
    def _quota_bound(self) -> bool:
        return self.allowance_seconds < self.settings.max_session_seconds

    # ----- what the stream runner tells the session (StreamHost) -----------------------------------------

    def outfit_for_start(self) -> str:
        """The latest outfit; the pending prompts it covers are applied once the stream runs."""
        self._carried_prompt_ids = list(self.pending_prompt_ids)
        return self.latest_outfit

    def broadcast_for_start(self) -> bool:
        """Broadcast once shared live."""
        return self.broadcasting

    async def broadcast_ready(self, stream_id: str | None, info: BroadcastInfo) -> None:
        """Tell the presenter where spectators join this stream part."""
        event = BroadcastReady(self.id, stream_id, info.webrtc_url, info.spectator_token)
        self.last_broadcast = event
        await self._present(self.presenter.broadcast_ready(event))

    async def stream_started(self, stream: LiveStream) -> None:
        """Record the stream and mark the prompts it carries applied."""
        ledger = self.services.ledger
        await ledger.stream_started(self.id, stream.stream_id, stream.prompt)
        carried = self._carried_prompt_ids
        for prompt_id in carried:
            await ledger.prompt_status(prompt_id, "applied")
        # No await from here on: the stream becomes current right after this returns.
        self.pending_prompt_ids = [i for i in self.pending_prompt_ids if i not in carried]
        self._carried_prompt_ids = []
        if stream.index == 0:
            self._last_activity = stream.started
            self.reel.begin_chapter(stream.prompt)  # before the stream's first frame is pumped

    async def stream_running(self, stream: LiveStream) -> None:
        """The first stream: the session is streaming; a later one: tell the member it carries on."""
        if stream.index > 0:
            await self._report_status(continuing=True)
            return
        await self._transition(SessionState.STREAMING)
        self._watchdog = asyncio.create_task(self._keep_watch(), name=f"watch-{self.id}")
        self._watchdog.add_done_callback(self._watchdog_ended)
        if self.pending_prompt_ids:
            self._spawn(self._apply_outfits_sent_while_connecting())
        else:
            self._spawn(self._snippet(stream.prompt, since=0.0))

    async def stream_ended(self, stream: LiveStream, seconds: float, reason: str | None) -> None:
        """Store the stream's seconds and why it ended."""
        if reason is None:
            reason = str(self.end_reason) if self.end_reason else "rollover"
        await self.services.ledger.stream_ended(self.id, stream.stream_id, seconds, reason)

    async def waiting_for_platform(self, waited_seconds: float) -> None:
        """Show how long the platform has queued the connection."""
        await self._report_status(platform_wait_seconds=waited_seconds)

    def stream_dropped(self) -> None:
        """Say so now: a fresh connection can take a while."""
        notice = "The live video dropped; reconnecting you now…"
        self._spawn(self._present(self.presenter.error(ErrorReported(self.id, notice))))

    async def could_not_continue(self, error: OdysseyError | TimeoutError) -> None:
        """End the session early; the recordings so far follow."""
        self.stop(EndReason.CONNECTION_LOST)
        message = "The live stream could not continue, so your try-on ended early. Your recording follows."
        if isinstance(error, OdysseyUsageError):
            message += f" {usage_error_message(error)}"  # e.g. the month's video time is used up
        await self._present(self.presenter.error(ErrorReported(self.id, message)))

    # ----- endings ---------------------------------------------------------------------------------------

    async def _finish(self) -> None:
        """The normal end after streaming: settle usage, collect the recordings and make the highlight and
        stills meanwhile, report them."""
        if self.end_reason is None:
            self.end_reason = EndReason.CONNECTION_LOST
        # Every stream is closed: the slot may go to the next member while the recordings are fetched.
        self.done_streaming.set()
        await self._transition(SessionState.ENDING)
        await self._settle()
        await self._transition(SessionState.FINALISING)
        recordings, event = await asyncio.gather(self._collect_recordings(), self._results())
        event = dataclasses.replace(event, recordings=tuple(recordings))
        await self._present(self.presenter.recording_ready(event))
        await self._transition(SessionState.DONE)

    async def _results(self) -> RecordingReady:
        """The stills and the highlight (without links yet); whatever fails is left out, never raised."""
        before_after = await self._before_after()
        thumbnail = await self._thumbnail()
        # The highlight comes first in the message's upload budget; the stills go along if they fit.
        budget = self._upload_budget(self.settings.highlight_budget_bytes) - UPLOAD_OVERHEAD_BYTES
        highlight = await self._highlight(budget - len(thumbnail or b""))
        return RecordingReady(
            self.id, (), before_after_png=before_after, highlight=highlight, thumbnail_jpeg=thumbnail
        )

    async def _highlight(self, budget_bytes: int) -> Highlight | None:
        """The session's highlight MP4, encoded in the snippet pool; None without frames or room for it."""
        frames = self.reel.frames()
        if len(frames) < 2 or budget_bytes <= 0:
            return None
        try:
            clip = await self.services.encoder.encode_mp4(
                frames,
                fps=self.reel.fps,
                budget_bytes=budget_bytes,
                max_width=self.settings.highlight_width,
                crf=self.settings.highlight_crf,
            )
        except SnippetTooLargeError:
            log.warning("session %s: the highlight does not fit %d bytes", self.id, budget_bytes)
            return None
        except Exception:
            log.exception("session %s: highlight encoding failed", self.id)
            return None
        return Highlight(clip.data, clip.duration_seconds, clip.width, clip.height, self.reel.outfits)

    async def _thumbnail(self) -> bytes | None:
        latest = self.buffer.latest()
        if latest is None:
            return None
        try:
            return await asyncio.to_thread(thumbnail_jpeg, latest)
        except (OSError, ValueError):
            log.warning("session %s: no thumbnail", self.id, exc_info=True)
            return None

    async def _collect_recordings(self) -> list[RecordingLinks]:
        """Poll every stream's recording; once the bot shuts down, wait only a little longer."""
        client = self.services.client_factory()
        collecting = asyncio.ensure_future(collect_recording_links(client, self.stream_ids, self.settings))
        shutdown = asyncio.ensure_future(self._shutdown.wait())
        try:
            await asyncio.wait({collecting, shutdown}, return_when="FIRST_COMPLETED")
            if not collecting.done():
                # Don't hold the bot up (also when the wait began before): links can be re-issued later.
                await asyncio.wait({collecting}, timeout=self.settings.shutdown_recording_poll_seconds)
            if collecting.done():
                return collecting.result()
            log.info("session %s: shutting down before its recordings were ready", self.id)
            return []
        finally:
            shutdown.cancel()
            if not collecting.done():
                collecting.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await collecting
            await close_client(client, self.settings.end_timeout_seconds)

    async def _before_after(self) -> bytes | None:
        latest = self.buffer.latest()
        if latest is None:
            return None
        try:
            return await asyncio.to_thread(before_after_png, self.request.photo, latest)
        except (OSError, ValueError):
            log.warning("session %s: no before/after still", self.id, exc_info=True)
            return None

    async def cancel_queued(self, reason: EndReason = EndReason.MEMBER) -> None:
        """Leave the queue before a slot was granted: refund and mark cancelled (called by the manager)."""
        self.stop(reason)
        await self._cancel_before_streaming()
        self.finished.set()

    async def _cancel_before_streaming(self) -> None:
        await self._settle()
        await self._transition(SessionState.CANCELLED)

    async def _fail(
        self,
        message: str,
        *,
        error: TryOnError | None,
        error_id: str | None = None,
        reason: str | None = None,
    ) -> None:
        if self.is_finished:
            return
        try:
            await self._settle()
            self.state = SessionState.FAILED
            await self.services.ledger.state_changed(
                self.id,
                SessionState.FAILED,
                error=message,
                error_reason=error.reason if error is not None else reason,
            )
        except Exception:
            log.exception("session %s: could not record the failure", self.id)
        await self._present(self.presenter.error(ErrorReported(self.id, message, error, error_id)))
        await self._report_status()

    async def _settle(self) -> None:
        """Charge the seconds streamed, or refund the reservation when nothing streamed; exactly once."""
        if self._settled:
            return
        await self.services.ledger.settle(self.id, self.streamed_seconds)
        self._settled = True  # only once written: `_fail` tries a failed settlement again

    # ----- helpers ---------------------------------------------------------------------------------------

    async def _transition(self, new: SessionState) -> None:
        check_transition(self.state, new)
        self.state = new
        await self.services.ledger.state_changed(self.id, new)
        await self._report_status()

    async def report_queue_position(self, position: int | None, wait_seconds: float | None) -> None:
        """Tell the member where they stand in the queue (called by the manager)."""
        if position == self.queue_position and self.state is SessionState.QUEUED:
            return
        self.queue_position = position
        self.estimated_wait_seconds = wait_seconds
        await self._report_status()

    async def _report_status(
        self, *, continuing: bool = False, platform_wait_seconds: float | None = None
    ) -> None:
        event = status_of(self, continuing=continuing, platform_wait_seconds=platform_wait_seconds)
        self.last_status = event
        await self._present(self.presenter.status_changed(event))

    async def _present(self, call: Awaitable[None]) -> None:
        """Deliver one event; a failing or slow front end never breaks the session."""
        try:
            await wait_within(call, 30.0)
        except Exception:
            log.exception("session %s: presenter failed", self.id)

    def _upload_budget(self, own: int) -> int:
        """One of the engine's byte budgets, lowered to what the presenter can show in one message."""
        shown = self.presenter.upload_budget_bytes
        return own if shown is None else min(own, shown)

    def _timeline_now(self) -> float:
        latest = self.buffer.latest()
        return latest.timeline_seconds if latest is not None else 0.0

    async def _snippet(self, outfit: str, *, since: float) -> SnippetReady | None:
        """Encode the stream's next `snippet_seconds` after timeline second `since` and present it."""
        if not self.request.snippets:
            return None
        wanted = self.settings.snippet_seconds
        deadline = self._clock() + wanted * 3 + 5.0
        frames = self.buffer.since(since)
        while (
            not frames
            or frames[-1].timeline_seconds - frames[0].timeline_seconds < wanted - self.buffer.period
        ):
            if self._clock() > deadline or self._stop.is_set():
                break
            await asyncio.sleep(self.buffer.period)
            frames = self.buffer.since(since)
        frames = (
            [f for f in frames if f.timeline_seconds < frames[0].timeline_seconds + wanted] if frames else []
        )
        if len(frames) < 2:
            return None
        try:
            snippet = await self.services.encoder.encode_gif(
                frames,
                fps=self.buffer.sample_fps,
                budget_bytes=self._upload_budget(self.settings.snippet_budget_bytes),
                max_width=self.settings.snippet_width,
            )
        except SnippetTooLargeError:
            log.warning("session %s: snippet does not fit the budget", self.id, exc_info=True)
            return None
        except Exception:
            # The outfit was applied all the same; a missing preview must not fail the steer.
            log.exception("session %s: snippet encoding failed", self.id)
            return None
        event = SnippetReady(
            session_id=self.id,
            data=snippet.data,
            filename=f"tryon-{self.id}-{len(self.stream_ids)}-{int(frames[0].timeline_seconds)}s.{snippet.kind}",
            caption=outfit,
            outfit=outfit,
            stream_seconds=frames[0].timeline_seconds,
        )
        await self._present(self.presenter.snippet_ready(event))
        return event

    def _spawn(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _close_background(self) -> None:
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
