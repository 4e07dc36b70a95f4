"""Watching a broadcast as a spectator over WHEP (§16): `connect_to_stream(webrtc_url, spectator_token)`.

The SDKs' spectator path, with no API key: the `webrtc_url` and `spectator_token` a broadcasting client got
in `broadcast_ready`. The offer is recvonly (video, then audio) with its candidates gathered into the SDP,
POSTed to `<webrtc_url>/whep?token=`; the answer comes back with a `Location` that `disconnect()` DELETEs.
Decoded frames arrive in `SpectatorConnection.frames`, as they do in `Odyssey.frames`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import httpx
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from bot.deadline import cancel_within, wait_within
from bot.loopback_ice import is_loopback_url, restrict_ice_to_loopback
from bot.odyssey.callbacks import Callback, CallbackRunner
from bot.odyssey.errors import (
    OdysseyAuthError,
    OdysseyConnectionError,
    OdysseyError,
    OdysseyStreamError,
    TooManySpectatorsError,
)
from bot.odyssey.frames import (
    DEFAULT_FRAME_QUEUE_SIZE,
    FrameQueue,
    LatestFrameWorker,
    StreamClock,
    pump_frames,
)
from bot.odyssey.signaling import ice_servers_from
from bot.tls import tls_context

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SpectatorTimeouts:
    """Seconds each step of a spectator may take."""

    # The WHEP exchange and the first video track.
    connect: float = 30.0
    # The DELETE on leaving, and closing the peer connection.
    close: float = 5.0


class SpectatorConnection:
    """One spectator of a broadcast: its frames, its state, and `disconnect()` (WHEP DELETE) or `close()`."""

    def __init__(
        self,
        pc: RTCPeerConnection,
        http: httpx.AsyncClient,
        *,
        owns_http: bool,
        session_url: str | None,
        frames: FrameQueue,
        runner: CallbackRunner,
        on_disconnected: Callback | None,
        timeouts: SpectatorTimeouts,
    ) -> None:
        self.frames = frames
        # Where `disconnect()` sends the WHEP DELETE (the answer's `Location`), if the server gave one.
        self.session_url = session_url
        self._pc = pc
        self._http = http
        self._owns_http = owns_http
        self._runner = runner
        self._on_disconnected = on_disconnected
        self._timeouts = timeouts
        self._tasks: set[asyncio.Task[None]] = set()
        self._ended = False
        self._teardown: asyncio.Task[None] | None = None

    async def __aenter__(self) -> SpectatorConnection:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.disconnect()

    @property
    def connection_state(self) -> str:
        """The peer connection's state: "connecting", "connected", "failed" or "closed"."""
        return str(self._pc.connectionState)

    @property
    def is_connected(self) -> bool:
        """True while the broadcast plays for this spectator."""
        return not self._ended and self._pc.connectionState == "connected"

    def start(self, track: MediaStreamTrack, on_video_frame: Callback | None) -> None:
        """Begin moving the video track's decoded frames into `frames` (and `on_video_frame`)."""
        worker = None
        if on_video_frame is not None:
            worker = LatestFrameWorker(on_video_frame, self._runner)
            self._spawn(worker.run(), "spectator-frame-callback")
        clock = StreamClock()
        clock.start_stream(None)
        self._spawn(self._pump(track, clock, worker), "spectator-frames")
        self._pc.on("connectionstatechange", self._on_state)

    async def disconnect(self) -> None:
        """Leave while the broadcast runs: WHEP DELETE (so the slot frees at once), then `close()`."""
        if self.session_url is not None and not self._ended:
            try:
                await wait_within(self._http.delete(self.session_url), self._timeouts.close)
            except (httpx.HTTPError, TimeoutError) as error:
                log.info(
                    "spectator DELETE failed (%s); the server drops the session itself", type(error).__name__
                )
        await self.close()

    async def close(self) -> None:
        """Close without a DELETE (the broadcast ended, or the server will notice); idempotent."""
        self._ended = True
        if self._teardown is None:
            self._teardown = asyncio.ensure_future(self._release())
        await asyncio.shield(self._teardown)

    async def _release(self) -> None:
        self.frames.close()
        current = asyncio.current_task()
        await cancel_within([t for t in self._tasks if t is not current], self._timeouts.close)
        with contextlib.suppress(Exception):
            await wait_within(self._pc.close(), self._timeouts.close)
        await self._runner.drain(self._timeouts.close)
        if self._owns_http:
            await self._http.aclose()

    async def _pump(
        self, track: MediaStreamTrack, clock: StreamClock, worker: LatestFrameWorker | None
    ) -> None:
        await pump_frames(track, clock, self.frames, worker)
        self._broadcast_over()  # the track ended: the broadcast stopped, or the server dropped us

    def _on_state(self) -> None:
        if self._pc.connectionState in ("failed", "closed"):
            self._broadcast_over()

    def _broadcast_over(self) -> None:
        if self._ended:
            return
        self._ended = True
        self.frames.close()
        self._runner.call(self._on_disconnected)
        if self._teardown is None:
            self._teardown = asyncio.ensure_future(self._release())

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def whep_url(webrtc_url: str, spectator_token: str) -> str:
    """`<webrtc_url>/whep?token=<token>` (the token is a secret: never log this)."""
    return f"{webrtc_url.rstrip('/')}/whep?token={quote(spectator_token, safe='')}"


def config_url_of(webrtc_url: str) -> str:
    """The ICE configuration of the broadcast's host: `<scheme>://<host>/config`."""
    parts = urlsplit(webrtc_url)
    return f"{parts.scheme}://{parts.netloc}/config"


async def connect_to_stream(
    webrtc_url: str,
    spectator_token: str,
    *,
    on_video_frame: Callback | None = None,
    on_disconnected: Callback | None = None,
    timeouts: SpectatorTimeouts | None = None,
    frame_queue_size: int = DEFAULT_FRAME_QUEUE_SIZE,
    http: httpx.AsyncClient | None = None,
) -> SpectatorConnection:
    """Watch a broadcast; returns once its video track arrived.

    `on_video_frame` gets RGB `VideoFrame`s (as `Odyssey.connect`'s does); `on_disconnected` is called once
    when the broadcast ends or the connection drops. Raises TooManySpectatorsError when the stream has as
    many spectators as the platform allows, OdysseyAuthError for a bad or expired token, OdysseyStreamError
    when the stream is not (or no longer) broadcasting, OdysseyConnectionError for anything else.
    """
    timeouts = timeouts or SpectatorTimeouts()
    if not webrtc_url.startswith(("http://", "https://")):
        raise OdysseyConnectionError("The broadcast URL must be an http(s) URL")
    local = is_loopback_url(webrtc_url)
    if local:  # the broadcaster is on this machine (the emulator)
        restrict_ice_to_loopback()
    owns_http = http is None
    client = http or httpx.AsyncClient(
        timeout=timeouts.connect, trust_env=not local, verify=tls_context(not local)
    )
    pc: RTCPeerConnection | None = None
    try:
        ice_servers = await ice_servers_from(client, config_url_of(webrtc_url))
        pc = RTCPeerConnection(RTCConfiguration(iceServers=ice_servers))
        track = await wait_within(_negotiate(pc, client, webrtc_url, spectator_token), timeouts.connect)
    except BaseException as error:
        if pc is not None:
            with contextlib.suppress(Exception):
                await wait_within(pc.close(), timeouts.close)
        if owns_http:
            await client.aclose()
        if isinstance(error, TimeoutError):
            raise OdysseyConnectionError("Timed out joining the broadcast") from None
        raise
    video, session_url = track
    connection = SpectatorConnection(
        pc,
        client,
        owns_http=owns_http,
        session_url=session_url,
        frames=FrameQueue(frame_queue_size),
        runner=CallbackRunner(),
        on_disconnected=on_disconnected,
        timeouts=timeouts,
    )
    connection.start(video, on_video_frame)
    return connection


async def _negotiate(
    pc: RTCPeerConnection, http: httpx.AsyncClient, webrtc_url: str, spectator_token: str
) -> tuple[MediaStreamTrack, str | None]:
    """Offer recvonly video+audio, POST it, apply the answer; returns once the video track plays."""
    loop = asyncio.get_running_loop()
    arrived: asyncio.Future[MediaStreamTrack] = loop.create_future()
    connected: asyncio.Future[None] = loop.create_future()

    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        if track.kind == "video" and not arrived.done():
            arrived.set_result(track)

    @pc.on("connectionstatechange")
    def on_state() -> None:
        if connected.done():
            return
        if pc.connectionState == "connected":
            connected.set_result(None)
        elif pc.connectionState in ("failed", "closed"):
            connected.set_exception(OdysseyConnectionError("The broadcast connection failed"))

    pc.addTransceiver("video", direction="recvonly")
    pc.addTransceiver("audio", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())  # aiortc gathers every candidate here
    url = whep_url(webrtc_url, spectator_token)
    try:
        response = await http.post(
            url, content=pc.localDescription.sdp, headers={"Content-Type": "application/sdp"}
        )
    except httpx.HTTPError as error:
        raise OdysseyConnectionError(f"Could not reach the broadcast ({type(error).__name__})") from None
    raise_for_whep_status(response.status_code)
    location = response.headers.get("Location")
    await pc.setRemoteDescription(RTCSessionDescription(sdp=response.text, type="answer"))
    # Connected, not only negotiated: closing a peer connection whose ICE is still completing leaves
    # aioice's consent checks running.
    await connected
    return await arrived, urljoin(url, location) if location else None


def raise_for_whep_status(status: int) -> None:
    """The error a WHEP offer's refusal means (200 and 201 are the answer)."""
    if status in (200, 201):
        return
    error: OdysseyError
    if status in (401, 403):
        error = OdysseyAuthError("Invalid spectator token")
    elif status == 404:
        error = OdysseyStreamError("Stream not found (it may have ended)", reason="stream_not_found")
    elif status == 503:
        error = TooManySpectatorsError("Too many spectators are watching this stream; try again later")
    else:
        error = OdysseyConnectionError(f"WHEP connection failed: HTTP {status}")
    raise error
