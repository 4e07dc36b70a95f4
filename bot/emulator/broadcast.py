"""Spectators of a `broadcast: true` stream over WHEP (§16): the same packets as the interactive client."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from bot.deadline import wait_within
from bot.emulator.tokens import TokenError, decode_jwt, encode_jwt
from bot.emulator.track import LoopTrack, send_vp8_only

log = logging.getLogger(__name__)

NEGOTIATION_TIMEOUT_SECONDS = 10.0
CLOSE_TIMEOUT_SECONDS = 5.0
GONE_SPECTATOR_GRACE_SECONDS = 2.0


@dataclass
class Broadcast:
    """One broadcast stream: the interactive track to mirror and its spectators' peer connections."""

    stream_id: str
    track: LoopTrack
    spectators: dict[str, RTCPeerConnection] = field(default_factory=dict)


class BroadcastHub:
    """Hands out `broadcast_ready` details and serves the WHEP endpoints for every broadcast stream."""

    def __init__(self, secret: bytes, token_ttl_seconds: float, max_spectators: int) -> None:
        self._secret = secret
        self._token_ttl_seconds = token_ttl_seconds
        self._max_spectators = max_spectators
        self._broadcasts: dict[str, Broadcast] = {}
        self._closing: set[asyncio.Future[None]] = set()
        self.spectators_joined = 0  # for tests: successful WHEP offers and DELETEs
        self.spectators_left = 0

    def add_routes(self, app: web.Application) -> None:
        """WHEP: `POST /broadcast/{id}/whep?token=` (SDP offer in, answer out), `DELETE` the Location."""
        app.add_routes(
            [
                web.post("/broadcast/{stream_id}/whep", self._whep_offer),
                web.delete("/broadcast/{stream_id}/whep/{spectator_id}", self._whep_delete),
            ]
        )

    def open(self, stream_id: str, track: LoopTrack, base_url: str) -> dict[str, Any]:
        """Start broadcasting a stream; returns the `broadcast_ready` message for its client."""
        self._broadcasts[stream_id] = Broadcast(stream_id, track)
        claims = {"stream_id": stream_id, "exp": int(time.time() + self._token_ttl_seconds)}
        return {
            "type": "broadcast_ready",
            "broadcast_url": None,  # no HLS here; WHEP only
            "webrtc_url": f"{base_url}/broadcast/{stream_id}",
            "spectator_token": encode_jwt(claims, self._secret),
        }

    def end(self, stream_id: str) -> None:
        """End a broadcast: its spectators' sessions go away (a later DELETE gets 404, as with MediaMTX)."""
        broadcast = self._broadcasts.pop(stream_id, None)
        if broadcast is None:
            return
        for pc in broadcast.spectators.values():
            self._close_later(pc)

    def _forget_when_gone(self, broadcast: Broadcast, spectator_id: str, pc: RTCPeerConnection) -> None:
        # A spectator that leaves without DELETE (a closed tab) ends its DTLS session or fails ICE. The
        # SDK's own disconnect() sends DELETE and closes at once, so the close often arrives first: keep
        # the session a moment longer for that DELETE to find it.
        def forget() -> None:
            if broadcast.spectators.get(spectator_id) is pc:
                del broadcast.spectators[spectator_id]
                self._close_later(pc)

        @pc.on("connectionstatechange")
        def on_state_change() -> None:
            if pc.connectionState in ("failed", "closed"):
                asyncio.get_running_loop().call_later(GONE_SPECTATOR_GRACE_SECONDS, forget)

    def _close_later(self, pc: RTCPeerConnection) -> None:
        # Answer first: closing a peer connection can take a while; close() waits for these.
        task = asyncio.ensure_future(_close_spectator(pc))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        """End every broadcast and wait until all spectator connections are closed (emulator shutdown)."""
        for stream_id in list(self._broadcasts):
            self.end(stream_id)
        await asyncio.gather(*self._closing, return_exceptions=True)

    def spectator_count(self, stream_id: str) -> int:
        """How many spectators a broadcast has (0 once it ended)."""
        broadcast = self._broadcasts.get(stream_id)
        return 0 if broadcast is None else len(broadcast.spectators)

    async def _whep_offer(self, request: web.Request) -> web.Response:
        broadcast = self._authorised_broadcast(request)
        if len(broadcast.spectators) >= self._max_spectators:
            return web.Response(status=503, text="too many spectators for this stream")
        offer = await request.text()
        if "m=video" not in offer:
            return web.Response(status=400, text="the body must be an SDP offer with a video section")
        if self._broadcasts.get(broadcast.stream_id) is not broadcast:
            raise web.HTTPNotFound(text="stream not found (it has ended)")
        spectator_id = secrets.token_urlsafe(12)
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        track = broadcast.track.mirror()
        broadcast.spectators[spectator_id] = pc
        self._forget_when_gone(broadcast, spectator_id, pc)
        try:
            answer = await wait_within(_answer(pc, track, offer), NEGOTIATION_TIMEOUT_SECONDS)
        except Exception as error:
            broadcast.spectators.pop(spectator_id, None)
            track.stop()
            await _close_spectator(pc)
            log.info("WHEP offer for %s refused: %s", broadcast.stream_id, error)
            return web.Response(status=400, text=f"could not answer the offer: {error}")
        if self._broadcasts.get(broadcast.stream_id) is not broadcast:  # ended (and closed us) meanwhile
            raise web.HTTPNotFound(text="stream not found (it has ended)")
        self.spectators_joined += 1
        location = f"/broadcast/{broadcast.stream_id}/whep/{spectator_id}"
        return web.Response(
            status=201, text=answer, content_type="application/sdp", headers={"Location": location}
        )

    async def _whep_delete(self, request: web.Request) -> web.Response:
        broadcast = self._broadcasts.get(request.match_info["stream_id"])
        pc = None if broadcast is None else broadcast.spectators.pop(request.match_info["spectator_id"], None)
        if pc is None:
            return web.Response(status=404, text="no such spectator session")
        self.spectators_left += 1
        self._close_later(pc)
        return web.Response(status=200)

    def _authorised_broadcast(self, request: web.Request) -> Broadcast:
        stream_id = request.match_info["stream_id"]
        try:
            claims = decode_jwt(request.query.get("token", ""), self._secret)
        except TokenError as error:
            raise web.HTTPUnauthorized(text=f"invalid spectator token: {error}") from error
        if claims.get("stream_id") != stream_id:
            raise web.HTTPUnauthorized(text="the spectator token is for another stream")
        broadcast = self._broadcasts.get(stream_id)
        if broadcast is None:
            raise web.HTTPNotFound(text="stream not found (it may have ended)")
        return broadcast


async def _answer(pc: RTCPeerConnection, track: LoopTrack, offer: str) -> str:
    """Answer a recvonly offer (video, usually audio too) with the mirrored VP8 track; ICE is in the SDP."""
    await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
    sender = pc.addTrack(track)
    track.attach_sender(sender)
    send_vp8_only(pc, sender)
    await pc.setLocalDescription(await pc.createAnswer())
    return str(pc.localDescription.sdp)


async def _close_spectator(pc: RTCPeerConnection) -> None:
    for sender in pc.getSenders():
        if sender.track is not None:
            sender.track.stop()
    with contextlib.suppress(Exception):
        await wait_within(pc.close(), CLOSE_TIMEOUT_SECONDS)
