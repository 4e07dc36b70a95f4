"""The streamer side of one signaling connection: the WebRTC offer, data channels and stream logic."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import WSMsgType, web
from aiortc import RTCConfiguration, RTCDataChannel, RTCPeerConnection, RTCSessionDescription
from aiortc.sdp import candidate_from_sdp

from bot.deadline import cancel_within, wait_within
from bot.emulator.broadcast import BroadcastHub
from bot.emulator.config import EmulatorConfig, Faults
from bot.emulator.loops import Scene, SceneLibrary
from bot.emulator.recordings import RecordingStore, Segment
from bot.emulator.track import LoopTrack, send_vp8_only
from bot.loopback_ice import is_loopback_candidate_address

log = logging.getLogger(__name__)

WATCHDOG_INTERVAL_SECONDS = 0.1
SEND_TIMEOUT_SECONDS = 10.0
PENDING_REQUEST_LIMIT = 64  # queued client messages per connection; beyond it they are refused
LARGE_MESSAGE_CHARS = 1 << 20  # parsed in a worker thread (an image start is up to ~34 MB of JSON)


class StreamerSession(Protocol):
    """The reservation a connection streams for (the service's `Session`)."""

    @property
    def session_id(self) -> str: ...

    @property
    def api_key(self) -> str: ...


@dataclass(frozen=True)
class StreamerContext:
    """What one streamer connection uses of the service around it."""

    config: EmulatorConfig
    library: SceneLibrary
    recordings: RecordingStore
    broadcasts: BroadcastHub
    base_url: str
    faults: Callable[[], Faults]  # read at each use: tests replace the service's Faults while it runs
    is_privileged: Callable[[str], bool]
    release: Callable[[], None]  # frees this connection's streamer slot


class StreamRefused(Exception):
    """A start or update the streamer answers with `interactive_stream_error`."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass
class ActiveStream:
    """The stream currently playing on a connection."""

    stream_id: str
    portrait: bool
    size: tuple[int, int]
    image_bytes: bytes | None
    scene: Scene
    started: float
    started_at: float
    segments: list[Segment] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)

    def elapsed(self) -> float:
        """Seconds since `stream_started`."""
        return time.monotonic() - self.started

    def log_event(self, event_type: str, **fields: Any) -> None:
        """Append a line to the stream's events log."""
        self.events.append({"type": event_type, "t": round(self.elapsed(), 3), **fields})


@dataclass(frozen=True)
class StreamStats:
    """What one connection's track has sent so far, and the look it is showing (None while idle)."""

    session_id: str
    frames_sent: int
    bytes_sent: int
    keyframe_restarts: int  # loop restarts for the receiver's PLI/FIR
    scene_key: str | None  # the scene cache key: equal keys share one encoded loop
    prompt: str | None
    size: tuple[int, int] | None
    image_bytes: int | None


class QueuedChannel:
    """Sends on a data channel, holding messages until it opens (aiortc raises before that)."""

    def __init__(self, channel: RTCDataChannel) -> None:
        self.channel = channel
        self._pending: list[str] = []
        channel.on("open", self._flush)

    def send(self, message: dict[str, Any]) -> None:
        """Send now if open, later if still connecting, never if closed."""
        text = json.dumps(message)
        if self.channel.readyState == "open":
            self.channel.send(text)
        elif self.channel.readyState == "connecting":
            self._pending.append(text)

    def _flush(self) -> None:
        for text in self._pending:
            self.channel.send(text)
        self._pending.clear()


def decode_data_url(value: object, max_bytes: int) -> bytes | None:
    """The image bytes of an `input_image_base64` value (missing/null → None); raises StreamRefused."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise StreamRefused("invalid_image", "input_image_base64 must be a data URL string")
    payload = value.split(",", 1)[1] if value.startswith("data:") and "," in value else value
    if len(payload) * 3 // 4 > max_bytes + 3:
        raise StreamRefused("invalid_image", f"Image exceeds maximum size of {max_bytes // (1024 * 1024)}MB")
    try:
        image = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as error:
        raise StreamRefused("invalid_image", "Image is not valid base64") from error
    if len(image) > max_bytes:
        raise StreamRefused("invalid_image", f"Image exceeds maximum size of {max_bytes // (1024 * 1024)}MB")
    if not image:
        raise StreamRefused("invalid_image", "Image is empty")
    return image


class StreamerConnection:
    """One client's signaling websocket and the peer connection behind it."""

    def __init__(self, context: StreamerContext, session: StreamerSession, ws: web.WebSocketResponse) -> None:
        self.context = context
        self.config = context.config
        self.session = session
        self.ws = ws
        self.pc: RTCPeerConnection | None = None
        self.track: LoopTrack | None = None
        self.outbox: QueuedChannel | None = None
        self.stream: ActiveStream | None = None
        self.connected_at = time.monotonic()
        self.idle_since = time.monotonic()
        self._starting = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False
        self._seconds_per_transition_frame = 0.02
        self._close_task: asyncio.Future[None] | None = None
        self._inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue(PENDING_REQUEST_LIMIT)

    def stats(self) -> StreamStats | None:
        """The track's counters and the current look (None before the offer or after the close)."""
        track, stream = self.track, self.stream
        if track is None or self.pc is None:
            return None
        return StreamStats(
            session_id=self.session.session_id,
            frames_sent=track.frames_sent,
            bytes_sent=track.bytes_sent,
            keyframe_restarts=track.keyframe_restarts,
            scene_key=None if stream is None else stream.scene.key,
            prompt=None if stream is None else stream.scene.prompt,
            size=None if stream is None else stream.size,
            image_bytes=None if stream is None or stream.image_bytes is None else len(stream.image_bytes),
        )

    # ---- lifecycle -------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Offer, then handle websocket messages until either side closes."""
        faults = self.context.faults()
        try:
            if faults.signaling_error_reason is not None:
                await self._send_ws({"type": "error", "reason": faults.signaling_error_reason})
                await self.ws.close(code=1000, message=b"error")
                return
            await self._offer()
            if faults.ws_close_code_on_connect is not None:
                await self.ws.close(code=faults.ws_close_code_on_connect, message=b"injected close")
                return
            self._spawn(self._watchdog())
            self._spawn(self._process_inbox())
            async for message in self.ws:
                if message.type == WSMsgType.TEXT:
                    await self._on_ws_text(message.data)
                elif message.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                    break
        except ConnectionResetError:
            # The client left before we could answer (e.g. it gave up while we built the offer): routine.
            log.info("session %s: client went away during signaling", self.session.session_id)
        finally:
            await self.close()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """End the stream (keeping its recording), close the peer connection and the websocket."""
        if self._close_task is None:
            self._closing = True
            self._close_task = asyncio.ensure_future(self._teardown(code, reason))
        await asyncio.shield(self._close_task)

    async def _teardown(self, code: int, reason: str) -> None:
        self._finish_stream("connection_closed")
        # Bounded: a task that missed its cancellation must not keep the streamer slot taken forever.
        await cancel_within(list(self._tasks), SEND_TIMEOUT_SECONDS)
        await self._close_peer()
        if not self.ws.closed:
            with contextlib.suppress(Exception):
                await wait_within(self.ws.close(code=code, message=reason.encode()), SEND_TIMEOUT_SECONDS)
        self.context.release()

    async def _close_peer(self) -> None:
        pc, self.pc = self.pc, None
        if self.track is not None:
            self.track.stop()
        if pc is not None:
            with contextlib.suppress(Exception):
                await wait_within(pc.close(), SEND_TIMEOUT_SECONDS)

    async def drop_peer(self) -> None:
        """Fault injection: the streamer's peer connection vanishes while the websocket stays up."""
        self._finish_stream("peer_dropped")
        await self._close_peer()

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("streamer task failed", exc_info=task.exception())

    # ---- signaling ------------------------------------------------------------------------------------

    async def _offer(self) -> None:
        size = self.config.frame_size(portrait=True)
        idle = await self.context.library.idle(size)
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.track = LoopTrack(self.config.fps, idle.loop)
        sender = self.pc.addTrack(self.track)
        self.track.attach_sender(sender)
        send_vp8_only(self.pc, sender)
        inbound = self.pc.createDataChannel("clientToStreamer")
        self.outbox = QueuedChannel(self.pc.createDataChannel("streamerToClient"))
        inbound.on("message", self._on_dc_message)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        await self._send_ws({"type": "offer", "sdp": self.pc.localDescription.sdp})

    async def _send_ws(self, message: dict[str, Any]) -> None:
        if not self.ws.closed:
            await wait_within(self.ws.send_str(json.dumps(message)), SEND_TIMEOUT_SECONDS)

    async def _on_ws_text(self, text: str) -> None:
        try:
            if len(text) < LARGE_MESSAGE_CHARS:
                message = json.loads(text)
            else:
                message = await asyncio.to_thread(json.loads, text)
        except ValueError:
            return
        if not isinstance(message, dict):
            return
        kind = message.get("type")
        if kind == "answer" and self.pc is not None and isinstance(message.get("sdp"), str):
            try:
                await self.pc.setRemoteDescription(RTCSessionDescription(sdp=message["sdp"], type="answer"))
            except Exception:
                log.warning("unusable answer from session %s", self.session.session_id, exc_info=True)
                self._spawn(self.close(1008, "Unusable answer"))
        elif kind == "ice_candidate":
            await self._add_remote_candidate(message)
        elif kind == "keepalive" and self.config.keepalive_resets_idle:
            self.idle_since = time.monotonic()
        elif kind == "client_disconnecting":
            self._spawn(self.close())
        elif kind == "interactive_stream_start":
            self._enqueue(message)

    async def _add_remote_candidate(self, message: dict[str, Any]) -> None:
        text = message.get("candidate")
        if self.pc is None or not isinstance(text, str) or not text.strip():
            return
        try:
            candidate = candidate_from_sdp(text.split(":", 1)[1] if text.startswith("candidate:") else text)
        except (ValueError, IndexError):
            return
        if not is_loopback_candidate_address(candidate.ip):
            return  # browsers send mDNS names or their LAN address; loopback checks still reach us
        candidate.sdpMid = message.get("sdpMid")
        candidate.sdpMLineIndex = message.get("sdpMLineIndex")
        with contextlib.suppress(Exception):
            await self.pc.addIceCandidate(candidate)

    def _on_dc_message(self, data: str | bytes) -> None:
        try:
            message = json.loads(data)
        except ValueError:
            return
        if isinstance(message, dict) and not self._closing:
            self._enqueue(message)

    def _enqueue(self, message: dict[str, Any]) -> None:
        try:
            self._inbox.put_nowait(message)
        except asyncio.QueueFull:
            log.warning(
                "session %s: over %d pending requests", self.session.session_id, PENDING_REQUEST_LIMIT
            )
            self._send(
                {
                    "type": "interactive_stream_error",
                    "reason": "too_many_requests",
                    "message": "Too many requests are waiting; wait for the answers before sending more",
                }
            )

    async def _process_inbox(self) -> None:
        # One message at a time, in arrival order, like a single streamer process.
        while True:
            await self._handle(await self._inbox.get())

    # ---- stream logic ---------------------------------------------------------------------------------

    def _send(self, message: dict[str, Any]) -> None:
        if self.outbox is not None:
            self.outbox.send(message)

    async def _handle(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        try:
            if kind == "interactive_stream_start":
                await self._start(message)
            elif kind == "update":
                await self._update(message)
            elif kind == "interactive_stream_end":
                self._finish_stream("client_end")
                self._send({"type": "stream_ended"})
        except StreamRefused as refusal:
            self._send(
                {"type": "interactive_stream_error", "reason": refusal.reason, "message": refusal.message}
            )

    async def _start(self, message: dict[str, Any]) -> None:
        if self.stream is not None or self._starting:
            raise StreamRefused("stream_already_active", "A stream is already running on this connection")
        self._starting = True
        try:
            await self._start_stream(message)
        finally:
            self._starting = False

    async def _start_stream(self, message: dict[str, Any]) -> None:
        prompt = message.get("prompt", "")
        portrait = message.get("portrait", True)
        if not isinstance(prompt, str) or not isinstance(portrait, bool):
            raise StreamRefused("invalid_request", "prompt must be a string and portrait a boolean")
        image = await asyncio.to_thread(
            decode_data_url, message.get("input_image_base64"), self.config.max_image_bytes
        )
        if message.get("bypass_vlm_expansion") and not self.context.is_privileged(self.session.api_key):
            raise StreamRefused("bypass_not_allowed", "Bypassing prompt expansion needs a privileged account")
        faults = self.context.faults()
        if faults.stream_error_reason is not None:
            raise StreamRefused(faults.stream_error_reason, faults.stream_error_message)
        size = self.config.frame_size(portrait)
        try:
            scene = await self.context.library.scene(size, prompt.strip(), image)
        except Exception as error:
            if image is None:
                raise
            # Pillow raises several unrelated types for unreadable, truncated or oversized pictures.
            raise StreamRefused("invalid_image", f"Could not decode the image: {error}") from error
        delay = faults.stream_start_delay_seconds
        await asyncio.sleep(self.config.stream_start_delay_seconds if delay is None else delay)
        if self._closing or self.track is None:
            return
        self.track.show(scene.loop)
        stream = ActiveStream(
            stream_id=str(uuid.uuid4()),
            portrait=portrait,
            size=size,
            image_bytes=image,
            scene=scene,
            started=time.monotonic(),
            started_at=time.time(),
        )
        stream.segments.append(Segment(0.0, scene))
        stream.log_event("stream_started", prompt=scene.prompt, portrait=portrait, image=image is not None)
        self.context.recordings.stream_started(
            stream.stream_id,
            self.session.api_key,
            stream.segments[0],
            stream.started_at,
            image,
            stream.events[-1],
        )
        self.stream = stream
        self._send({"type": "stream_started", "stream_id": stream.stream_id, "applied_prompt": scene.prompt})
        if message.get("broadcast") is True:
            self._send(self.context.broadcasts.open(stream.stream_id, self.track, self.context.base_url))

    async def _update(self, message: dict[str, Any]) -> None:
        prompt = message.get("prompt")
        if not isinstance(prompt, str):
            raise StreamRefused("invalid_request", "prompt must be a string")
        stream = self.stream
        if stream is None or self.track is None:
            raise StreamRefused("no_active_stream", "No stream is running on this connection")
        faults = self.context.faults()
        if faults.update_error_reason is not None:
            raise StreamRefused(faults.update_error_reason, faults.stream_error_message)
        library = self.context.library
        scene = await library.scene(stream.size, prompt.strip(), stream.image_bytes)
        # Begin the crossfade where the old loop will be once the clip is encoded, so motion carries on.
        playing = self.track.loop_position
        lead = math.ceil(
            (library.loop_frames - playing) * self._seconds_per_transition_frame * self.config.fps
        )
        position = library.transition_start(playing, lead + 1)
        began = time.monotonic()
        transition = await library.transition(stream.scene, scene, position)
        took = time.monotonic() - began
        self._seconds_per_transition_frame = took / max(1, len(transition.packets))
        if self.stream is not stream or self.track is None:
            return
        self.track.show_from(position, scene.loop, transition)
        stream.segments.append(Segment(stream.elapsed(), scene, stream.scene, position))
        stream.scene = scene
        stream.log_event("update", prompt=scene.prompt)
        self.context.recordings.stream_updated(stream.stream_id, stream.segments[-1], stream.events[-1])
        self._send({"type": "update_acknowledged", "prompt": scene.prompt})

    def _finish_stream(self, why: str) -> None:
        stream, self.stream = self.stream, None
        if stream is None:
            return
        duration = stream.elapsed()
        stream.log_event("stream_ended", reason=why)
        self.context.broadcasts.end(stream.stream_id)
        self.idle_since = time.monotonic()
        if self.track is not None and not self._closing:
            idle = self.context.library.idle_now(self.config.frame_size(True))
            if idle is not None:
                self.track.show(idle.loop)
        self.context.recordings.add(
            stream.stream_id,
            self.session.api_key,
            stream.segments,
            duration,
            stream.started_at,
            stream.events,
        )

    def stream_error(self, reason: str, message: str) -> None:
        """Fault injection: fail the running stream with a reason."""
        if self.stream is not None:
            self._finish_stream(reason)
            self._send({"type": "interactive_stream_error", "reason": reason, "message": message})

    async def _watchdog(self) -> None:
        config = self.config
        dropped_peer = False
        while not self._closing:
            await asyncio.sleep(WATCHDOG_INTERVAL_SECONDS)
            now = time.monotonic()
            stream = self.stream
            if stream is not None and stream.elapsed() >= config.stream_cap_seconds:
                self.stream_error("session_timeout", "Stream ended: credit lease expired")
                await asyncio.sleep(0.2)  # let the error leave on the data channel before the drop
                self._spawn(self.close(1000, "Stream ended: credit lease expired"))
                return
            drop_after = self.context.faults().drop_peer_after_seconds
            if (
                stream is not None
                and drop_after is not None
                and not dropped_peer
                and stream.elapsed() >= drop_after
            ):
                dropped_peer = True
                await self.drop_peer()
            if self._connection_expired(now):
                await self._send_ws({"type": "error", "reason": "duration_limit_reached"})
                self._spawn(self.close(1000, "Connection exceeded maximum allowed duration"))
                return
            if self._idle_expired(now):
                self._spawn(self.close(1000, "Connection timed out due to inactivity"))
                return

    def _idle_expired(self, now: float) -> bool:
        limit = self.config.idle_timeout_seconds
        busy = self.stream is not None or self._starting
        return limit is not None and not busy and now - self.idle_since >= limit

    def _connection_expired(self, now: float) -> bool:
        limit = self.config.connection_max_seconds
        return limit is not None and now - self.connected_at >= limit
