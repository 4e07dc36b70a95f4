"""One live connection: signaling websocket + aiortc peer connection, data channels, readiness and replies."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiortc import RTCConfiguration, RTCDataChannel, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack
from aiortc.sdp import candidate_from_sdp
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from bot.deadline import cancel_within, wait_within
from bot.odyssey.callbacks import CallbackRunner, Callbacks
from bot.odyssey.errors import (
    STREAM_ENDING_REASONS,
    OdysseyConnectionError,
    OdysseyError,
    OdysseyStreamError,
    signaling_error_message,
    stream_error_to_exception,
)
from bot.odyssey.frames import FrameQueue, LatestFrameWorker, StreamClock, pump_frames
from bot.odyssey.models import BroadcastInfo, ConnectionStatus

log = logging.getLogger(__name__)

TO_STREAMER = "clientToStreamer"
FROM_STREAMER = "streamerToClient"
DEFAULT_MAX_MESSAGE_SIZE = 65536
_MAX_MESSAGE_SIZE_RE = re.compile(r"^a=max-message-size:(\d+)", re.MULTILINE)

StatusSetter = Callable[[ConnectionStatus, "str | None"], None]


@dataclass(frozen=True)
class ConnectionTimeouts:
    """Seconds to wait for each step; every wait of the client is bounded by one of these."""

    ready: float = 30.0
    start: float = 30.0
    interact: float = 15.0
    end: float = 15.0
    send: float = 10.0
    close: float = 5.0
    keepalive_interval: float = 10.0
    # A server that ends a connection on purpose closes the peer connection first, then the socket
    # (code 1000): wait this long for the socket before calling a lost channel/peer a failure.
    transport_grace: float = 1.0


class _Pending:
    """FIFO waiters for one kind of reply, so overlapping requests each get their own answer."""

    def __init__(self) -> None:
        self._waiters: collections.deque[asyncio.Future[str]] = collections.deque()

    def add(self) -> asyncio.Future[str]:
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        return future

    def discard(self, future: asyncio.Future[str]) -> None:
        with contextlib.suppress(ValueError):
            self._waiters.remove(future)

    def __bool__(self) -> bool:
        return any(not f.done() for f in self._waiters)

    def resolve_oldest(self, value: str) -> None:
        self._settle_oldest(lambda f: f.set_result(value))

    def reject_oldest(self, error: BaseException) -> None:
        self._settle_oldest(lambda f: f.set_exception(error))

    def reject_all(self, error: BaseException) -> None:
        while self._waiters:
            future = self._waiters.popleft()
            if not future.done():
                future.set_exception(error)

    def _settle_oldest(self, settle: Callable[[asyncio.Future[str]], None]) -> None:
        while self._waiters:
            future = self._waiters.popleft()
            if not future.done():
                settle(future)
                return


def remote_max_message_size(sdp: str) -> int:
    """The data-channel message size limit the remote announced (`a=max-message-size`), else 64 KiB."""
    match = _MAX_MESSAGE_SIZE_RE.search(sdp)
    size = int(match.group(1)) if match else 0
    return size if size > 0 else DEFAULT_MAX_MESSAGE_SIZE


class StreamConnection:
    """Owns the websocket, the peer connection and every task of one connection; `close()` releases all."""

    def __init__(
        self,
        *,
        session_id: str,
        websocket: ClientConnection,
        ice_servers: list[RTCIceServer],
        callbacks: Callbacks,
        runner: CallbackRunner,
        frames: FrameQueue,
        set_status: StatusSetter,
        timeouts: ConnectionTimeouts,
    ) -> None:
        self.session_id = session_id
        self.stream_id: str | None = None
        self.last_applied_prompt: str | None = None
        self._ws = websocket
        self._ice_servers = ice_servers
        self._callbacks = callbacks
        self._runner = runner
        self.frames = frames
        self._set_status = set_status
        self._timeouts = timeouts
        self._pc: RTCPeerConnection | None = None
        self._to_streamer: RTCDataChannel | None = None
        self._video_track: MediaStreamTrack | None = None
        self._max_message_size = DEFAULT_MAX_MESSAGE_SIZE
        self._clock = StreamClock()
        self._ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._starts = _Pending()
        self._interacts = _Pending()
        self._ends = _Pending()
        self._tasks: set[asyncio.Task[None]] = set()
        self._frame_worker: LatestFrameWorker | None = None
        self._connected = False
        self._closing = False
        self._teardown: asyncio.Task[None] | None = None
        self._transport_lost = False
        self._close_reason: OdysseyError = OdysseyConnectionError("Connection closed")

    # -- life cycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Begin reading signaling messages and sending keepalives."""
        self._spawn(self._read_signaling(), "signaling-reader")
        self._spawn(self._send_keepalives(), "signaling-keepalive")

    async def wait_ready(self) -> None:
        """Until the video track arrived and `clientToStreamer` is open; raises (and closes) otherwise."""
        try:
            await wait_within(asyncio.shield(self._ready), self._timeouts.ready)
        except TimeoutError:
            missing = [name for name, ok in self._readiness().items() if not ok]
            error = OdysseyConnectionError(f"Connection timed out waiting for: {', '.join(missing)}")
            await self._shutdown(ConnectionStatus.FAILED, error)
            raise error from None
        if self._closing:  # lost in the same moment it became ready: it never counts as connected
            raise self._close_reason
        self._connected = True

    @property
    def is_open(self) -> bool:
        return (
            not self._closing
            and self._ready.done()
            and not self._ready.cancelled()
            and not self._ready.exception()
        )

    @property
    def is_closing(self) -> bool:
        """A teardown (ours or the server's) has begun."""
        return self._closing

    @property
    def dropped_callback_frames(self) -> int:
        return self._frame_worker.dropped if self._frame_worker else 0

    async def close(self) -> None:
        """Graceful disconnect (idempotent): close the peer connection, say `client_disconnecting`, close."""
        await self._shutdown(ConnectionStatus.DISCONNECTED, None)

    async def wait_closed(self) -> None:
        """Until a teardown (started by us or the server) has finished."""
        if self._teardown is not None:
            await asyncio.shield(self._teardown)

    # -- stream requests ------------------------------------------------------------------------------

    async def start_stream(
        self,
        prompt: str,
        *,
        portrait: bool,
        image_data_url: str | None,
        bypass_prompt_expansion: bool | None,
        broadcast: bool,
    ) -> str:
        """Send `interactive_stream_start` and wait for `stream_started`; returns the stream id."""
        message: dict[str, Any] = {
            "type": "interactive_stream_start",
            "prompt": prompt,
            "portrait": portrait,
            "input_image_base64": image_data_url,
            "broadcast": broadcast,
        }
        if bypass_prompt_expansion is not None:
            message["bypass_vlm_expansion"] = bypass_prompt_expansion
        if image_data_url is None:
            text = json.dumps(message)
            over_channel = self._channel_fits(text)
        else:  # tens of megabytes for a large photo sent as is: serialise it off the loop
            text = await asyncio.to_thread(json.dumps, message)
            over_channel = False  # image starts always go over the websocket
        return await self._request(self._starts, text, over_channel, self._timeouts.start, "stream_started")

    async def interact(self, prompt: str) -> str:
        """Send `update` and wait for `update_acknowledged`; returns the applied prompt."""
        text = json.dumps({"type": "update", "prompt": prompt})
        return await self._request(
            self._interacts, text, True, self._timeouts.interact, "update_acknowledged"
        )

    async def end_stream(self) -> None:
        """Send `interactive_stream_end` and wait for `stream_ended`."""
        text = json.dumps({"type": "interactive_stream_end"})
        await self._request(self._ends, text, True, self._timeouts.end, "stream_ended")

    async def _request(
        self, pending: _Pending, text: str, over_channel: bool, limit: float, reply: str
    ) -> str:
        if not self.is_open:
            raise OdysseyStreamError("Not connected")
        future = pending.add()  # registered before sending, so a fast reply can't be missed
        try:
            if over_channel:
                self._send_on_channel(text)
            else:
                await self._send_on_socket(text)
            return await wait_within(future, limit)
        except TimeoutError:
            raise OdysseyStreamError(f"Timed out after {limit:g}s waiting for {reply}") from None
        finally:
            pending.discard(future)

    def _channel_fits(self, text: str) -> bool:
        channel = self._to_streamer
        return (
            channel is not None
            and channel.readyState == "open"
            and len(text.encode()) <= self._max_message_size
        )

    def _send_on_channel(self, text: str) -> None:
        channel = self._to_streamer
        if channel is None or channel.readyState != "open":
            raise OdysseyStreamError("Not connected: data channel is not open")
        channel.send(text)

    async def _send_on_socket(self, text: str) -> None:
        try:
            await wait_within(self._ws.send(text), self._timeouts.send)
        except (ConnectionClosed, TimeoutError) as exc:
            raise OdysseyConnectionError("Signaling connection lost while sending") from exc

    # -- signaling ----------------------------------------------------------------------------------

    async def _read_signaling(self) -> None:
        try:
            async for raw in self._ws:
                message = _parse(raw)
                if message is not None:
                    await self._on_signaling(message)
        except ConnectionClosed:
            pass
        except Exception as exc:
            log.exception("signaling reader failed")
            self._lost(OdysseyConnectionError(f"Signaling failed: {type(exc).__name__}"))
            return
        if not self._closing:
            self._on_socket_closed()

    def _on_socket_closed(self) -> None:
        if self._closing:
            return
        code, reason = self._ws.close_code, self._ws.close_reason or ""
        if code in (1000, 1001):
            log.info("signaling closed by the server (%s %s)", code, reason)
            self._begin_shutdown(ConnectionStatus.DISCONNECTED, None)
        else:
            text = f"Signaling disconnected: {reason}" if reason else "Disconnected from signaling server"
            self._lost(OdysseyConnectionError(text))

    async def _on_signaling(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "offer" and isinstance(message.get("sdp"), str):
            await self._on_offer(message["sdp"])
        elif kind == "ice_candidate":
            await self._on_remote_candidate(message)
        elif kind == "error":
            reason = message.get("reason")
            self._lost(OdysseyConnectionError(signaling_error_message(str(reason or "unknown"))))

    async def _send_keepalives(self) -> None:
        keepalive = json.dumps({"type": "keepalive"})
        try:
            while True:
                await asyncio.sleep(self._timeouts.keepalive_interval)
                await wait_within(self._ws.send(keepalive), self._timeouts.send)
        except ConnectionClosed:
            pass  # the reader reports the close
        except TimeoutError:
            self._lost(OdysseyConnectionError("Signaling connection lost: keepalive could not be sent"))

    async def _on_offer(self, sdp: str) -> None:
        if self._closing:
            return
        if self._pc is not None:
            log.warning("ignoring a second offer: renegotiation is not supported")
            return
        pc = RTCPeerConnection(RTCConfiguration(iceServers=self._ice_servers))
        self._pc = pc
        pc.on("track", self._on_track)
        pc.on("datachannel", self._on_datachannel)
        pc.on("connectionstatechange", self._on_peer_state)
        self._max_message_size = remote_max_message_size(sdp)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        if self._closed_meanwhile():
            return
        await self._send_on_socket(json.dumps({"type": "answer", "sdp": pc.localDescription.sdp}))

    def _closed_meanwhile(self) -> bool:
        """`_closing` re-read after awaits (a method, so the type checker does not keep it narrowed)."""
        return self._closing

    async def _on_remote_candidate(self, message: dict[str, Any]) -> None:
        text = message.get("candidate")
        if self._pc is None or not isinstance(text, str) or not text:
            return  # candidates before the offer, and end-of-candidates markers, carry nothing for us
        try:
            candidate = candidate_from_sdp(text.removeprefix("candidate:"))
            candidate.sdpMid = message.get("sdpMid")
            candidate.sdpMLineIndex = message.get("sdpMLineIndex")
            await self._pc.addIceCandidate(candidate)
        except (ValueError, IndexError, AssertionError) as exc:  # bad line (aiortc asserts): skip it
            log.debug("remote ICE candidate ignored: %s", exc)

    # -- peer connection events -----------------------------------------------------------------------

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind != "video" or self._video_track is not None:
            return
        self._video_track = track
        if self._callbacks.on_video_frame is not None:
            self._frame_worker = LatestFrameWorker(self._callbacks.on_video_frame, self._runner)
            self._spawn(self._frame_worker.run(), "frame-callback")
        self._spawn(pump_frames(track, self._clock, self.frames, self._frame_worker), "frame-pump")
        self._check_ready()

    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        if channel.label == TO_STREAMER:
            self._to_streamer = channel
            channel.on("open", self._check_ready)
        elif channel.label == FROM_STREAMER:
            channel.on("message", self._on_streamer_message)
        else:
            return
        channel.on("close", lambda: self._on_transport_lost(f"Data channel {channel.label} closed"))
        self._check_ready()

    def _on_peer_state(self) -> None:
        state = self._pc.connectionState if self._pc else "closed"
        if state in ("failed", "closed"):
            self._on_transport_lost(f"Peer connection {state}")

    def _on_transport_lost(self, what: str) -> None:
        if not self._closing and not self._transport_lost:
            self._transport_lost = True
            self._spawn(self._fail_unless_socket_closes(OdysseyConnectionError(what)), "transport-lost")

    async def _fail_unless_socket_closes(self, error: OdysseyError) -> None:
        with contextlib.suppress(TimeoutError):
            await wait_within(self._ws.wait_closed(), self._timeouts.transport_grace)
        if self._ws.close_code is not None:
            self._on_socket_closed()  # the server's close code says whether this was on purpose
        else:
            self._lost(error)

    def _readiness(self) -> dict[str, bool]:
        channel = self._to_streamer
        return {
            "video_track": self._video_track is not None,
            "data_channel": channel is not None and channel.readyState == "open",
        }

    def _check_ready(self) -> None:
        if not self._ready.done() and all(self._readiness().values()):
            self._ready.set_result(None)

    # -- streamer messages ----------------------------------------------------------------------------

    def _on_streamer_message(self, raw: str | bytes) -> None:
        message = _parse(raw)
        if message is None:
            return
        kind = message.get("type")
        if kind == "stream_started":
            self._on_stream_started(message)
        elif kind == "update_acknowledged":
            prompt = str(message.get("prompt", ""))
            self.last_applied_prompt = prompt
            self._interacts.resolve_oldest(prompt)
            self._runner.call(self._callbacks.on_interact_acknowledged, prompt)
        elif kind == "stream_ended":
            self._on_stream_over()
            self._ends.resolve_oldest("")
            self._runner.call(self._callbacks.on_stream_ended)
        elif kind == "interactive_stream_error":
            self._on_stream_error(str(message.get("reason") or "unknown"), str(message.get("message") or ""))
        elif kind == "broadcast_ready":
            self._on_broadcast_ready(message)

    def _on_stream_started(self, message: dict[str, Any]) -> None:
        stream_id = str(message.get("stream_id", ""))
        applied = message.get("applied_prompt")
        self.last_applied_prompt = applied if isinstance(applied, str) else None
        self.stream_id = stream_id
        self._clock.start_stream(stream_id)
        self._starts.resolve_oldest(stream_id)
        self._runner.call(self._callbacks.on_stream_started, stream_id)

    def _on_stream_over(self) -> None:
        self.stream_id = None
        self._clock.start_stream(None)

    def _on_stream_error(self, reason: str, text: str) -> None:
        error = stream_error_to_exception(reason, text)
        if reason in STREAM_ENDING_REASONS:
            self._on_stream_over()
            for pending in (self._starts, self._interacts, self._ends):
                pending.reject_all(error)
        elif self._starts:
            self._starts.reject_oldest(error)
        elif self._interacts:
            self._interacts.reject_oldest(error)
        else:
            self._ends.reject_oldest(error)
        self._runner.call(self._callbacks.on_stream_error, reason, text)

    def _on_broadcast_ready(self, message: dict[str, Any]) -> None:
        webrtc_url, token = message.get("webrtc_url"), message.get("spectator_token")
        if not isinstance(webrtc_url, str) or not webrtc_url or not isinstance(token, str) or not token:
            reason, text = "broadcast_error", "Broadcast setup incomplete: missing playback URL or token"
            self._runner.call(self._callbacks.on_stream_error, reason, text)
            return
        hls = message.get("broadcast_url")
        info = BroadcastInfo(webrtc_url, token, hls if isinstance(hls, str) else None)
        self._runner.call(self._callbacks.on_broadcast_ready, info)

    # -- teardown -------------------------------------------------------------------------------------

    def _lost(self, error: OdysseyError) -> None:
        """The connection broke (server error, abnormal close, peer or channel failure)."""
        if not self._closing:
            log.warning("connection %s lost: %s", self.session_id, error)
            self._begin_shutdown(ConnectionStatus.FAILED, error)

    def _begin_shutdown(self, status: ConnectionStatus, error: OdysseyError | None) -> None:
        if self._teardown is None:
            self._closing = True
            self._close_reason = error or OdysseyConnectionError("Connection closed")
            self._teardown = asyncio.create_task(self._teardown_all(status, error), name="odyssey-teardown")

    async def _shutdown(self, status: ConnectionStatus, error: OdysseyError | None) -> None:
        self._begin_shutdown(status, error)
        await self.wait_closed()

    async def _teardown_all(self, status: ConnectionStatus, error: OdysseyError | None) -> None:
        reason = self._close_reason
        if not self._ready.done():
            self._ready.set_exception(reason)
            self._ready.exception()  # mark retrieved: nobody may be waiting any more
        for pending in (self._starts, self._interacts, self._ends):
            pending.reject_all(reason)
        if error is not None:
            self._set_status(ConnectionStatus.FAILED, str(error))
            self._runner.call(self._callbacks.on_error, error, True)
        self.frames.close()
        await self._stop_tasks()  # first, so the reader can't build a peer connection after this
        await self._close_peer()
        await self._close_socket()
        if error is None:
            self._set_status(status, None)
        if self._connected:
            self._runner.call(self._callbacks.on_disconnected)
        await self._runner.drain(self._timeouts.close)

    async def _close_peer(self) -> None:
        if self._pc is None:
            return
        try:
            await wait_within(self._pc.close(), self._timeouts.close)
        except Exception as exc:
            log.warning("closing the peer connection failed: %s", type(exc).__name__)

    async def _close_socket(self) -> None:
        try:
            async with asyncio.timeout(self._timeouts.close):
                with contextlib.suppress(ConnectionClosed):
                    await self._ws.send(json.dumps({"type": "client_disconnecting"}))
                await self._ws.close(1000, "Client disconnect")
        except Exception as exc:
            log.warning("closing the signaling socket failed: %s", type(exc).__name__)

    async def _stop_tasks(self) -> None:
        current = asyncio.current_task()
        tasks = [task for task in self._tasks if task is not current]
        stuck = await cancel_within(tasks, self._timeouts.close)
        if stuck:
            # The socket and peer closed next end a reader or pump for good.
            names = sorted(task.get_name() for task in stuck)
            log.warning("connection %s: %s did not stop when cancelled", self.session_id, ", ".join(names))

    def _spawn(self, coro: Any, name: str) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro, name=f"odyssey-{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _parse(raw: str | bytes) -> dict[str, Any] | None:
    try:
        message = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        log.debug("ignoring a non-JSON message")
        return None
    return message if isinstance(message, dict) and isinstance(message.get("type"), str) else None
