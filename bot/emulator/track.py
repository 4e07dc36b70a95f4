"""A video track that replays pre-encoded VP8 loops, so serving a stream costs no encoding."""

from __future__ import annotations

import asyncio
import logging
import time
from fractions import Fraction

import av
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCRtpSender
from aiortc.mediastreams import MediaStreamError

from bot.emulator.loops import EncodedClip

log = logging.getLogger(__name__)

VIDEO_CLOCK = 90_000
MAX_LAG_SECONDS = 1.0


class LoopTrack(MediaStreamTrack):
    """Streams an optional intro clip and then a loop, paced at the frame rate, as `av.Packet`s."""

    kind = "video"

    def __init__(self, fps: int, loop: EncodedClip) -> None:
        super().__init__()
        self.fps = fps
        self.frames_sent = 0
        self.bytes_sent = 0  # VP8 payload handed to the sender (RTP and SRTP overhead not included)
        self.keyframe_restarts = 0
        self._clip = loop
        self._intro: EncodedClip | None = None
        self._index = 0
        self._clock_start: float | None = None
        self._pending: tuple[int, EncodedClip, EncodedClip] | None = None
        self._keyframe_wanted = False
        self._mirrors: set[LoopTrack] = set()
        self._mirrored: LoopTrack | None = None

    def mirror(self) -> LoopTrack:
        """A track for another receiver (a spectator) following every switch of this one, on its own clock."""
        follower = LoopTrack(self.fps, self._clip)
        follower._mirrored = self
        follower._pending = self._pending  # a switch still waiting for its point in the loop
        self._mirrors.add(follower)
        return follower

    def stop(self) -> None:
        """End the track (and stop following the track it mirrors)."""
        super().stop()
        if self._mirrored is not None:
            self._mirrored._mirrors.discard(self)

    def attach_sender(self, sender: RTCRtpSender) -> bool:
        """Restart at a keyframe whenever the receiver asks for one (RTCP PLI/FIR) through this sender.

        aiortc answers PLI/FIR by calling the sender's `_send_keyframe()`, which only flags its own
        encoder; our packets are pre-encoded, so we wrap that method. It is private: if an aiortc release
        drops it we log once and carry on, and receivers then recover at the loop's next keyframe (every
        `loop_seconds`). Returns whether the hook is in place (a test pins the aiortc behaviour).
        """
        original = getattr(sender, "_send_keyframe", None)
        if not callable(original):
            log.warning("aiortc has no RTCRtpSender._send_keyframe: keyframe requests wait for the loop")
            return False

        def on_keyframe_request() -> None:
            self.request_keyframe()
            original()

        sender._send_keyframe = on_keyframe_request  # type: ignore[method-assign]
        return True

    def request_keyframe(self) -> None:
        """Make the next packet a keyframe (the current loop restarts; an intro is cut short)."""
        self._keyframe_wanted = True

    @property
    def loop_position(self) -> int:
        """Index of the next loop frame (0 while an intro plays)."""
        return 0 if self._intro is not None else self._index

    def show(self, loop: EncodedClip, intro: EncodedClip | None = None) -> None:
        """Switch at the next frame: play `intro` once (if given), then `loop` from its keyframe."""
        for follower in self._mirrors:
            follower.show(loop, intro)
        self._switch(loop, intro)

    def _switch(self, loop: EncodedClip, intro: EncodedClip | None) -> None:
        self._pending = None
        self._clip = loop
        self._intro = intro if intro is not None and intro.packets else None
        self._index = 0

    def show_from(self, position: int, loop: EncodedClip, intro: EncodedClip) -> None:
        """Like `show`, but start once the current loop reaches `position`, where `intro` picks up the motion.

        If that point has already passed (or an intro is playing), switch at once.
        """
        for follower in self._mirrors:
            follower.show_from(position, loop, intro)
        self._pending = (position, loop, intro)

    def _apply_pending_switch(self) -> None:
        if self._pending is None:
            return
        position, loop, intro = self._pending
        frames_ahead = (position - self._index) % max(1, len(self._clip.packets))
        if self._intro is not None or frames_ahead == 0 or frames_ahead > len(self._clip.packets) // 2:
            self._switch(loop, intro)

    async def recv(self) -> av.Packet:  # type: ignore[type-arg]
        """The next frame's packet, released at its presentation time."""
        if self.readyState != "live":
            raise MediaStreamError
        await self._wait_for_frame_time()
        self._apply_pending_switch()
        if self._keyframe_wanted:
            self._keyframe_wanted = False
            self.keyframe_restarts += 1
            self._intro = None
            self._index = 0
        payload = self._next_payload()
        self.bytes_sent += len(payload)
        packet = av.Packet(payload)
        packet.pts = self.frames_sent * VIDEO_CLOCK // self.fps
        packet.time_base = Fraction(1, VIDEO_CLOCK)
        self.frames_sent += 1
        return packet

    def _next_payload(self) -> bytes:
        if self._intro is not None:
            payload: bytes = self._intro.packets[self._index]
            self._index += 1
            if self._index >= len(self._intro.packets):
                self._intro = None
                self._index = 0
            return payload
        looped: bytes = self._clip.packets[self._index % len(self._clip.packets)]
        self._index = (self._index + 1) % len(self._clip.packets)
        return looped

    async def _wait_for_frame_time(self) -> None:
        now = time.monotonic()
        if self._clock_start is None:
            self._clock_start = now
        due = self._clock_start + self.frames_sent / self.fps
        if now - due > MAX_LAG_SECONDS:  # fell far behind (overload): resume the clock instead of bursting
            self._clock_start = now - self.frames_sent / self.fps
            return
        if due > now:
            await asyncio.sleep(due - now)


def send_vp8_only(pc: RTCPeerConnection, sender: RTCRtpSender) -> None:
    """Negotiate VP8 for this sender: the replayed packets are VP8 (offer and answer alike)."""
    transceiver = next(t for t in pc.getTransceivers() if t.sender is sender)
    vp8 = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType.lower() == "video/vp8"]
    transceiver.setCodecPreferences(vp8)
