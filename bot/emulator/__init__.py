"""A local Odyssey-compatible service: the embedded default backend for running and testing offline.

Start it with `async with Emulator(EmulatorConfig()) as emu:` (then point a client at `emu.url`) or from the
command line with `python -m bot emulator --host 127.0.0.1 --port 0 [--api-key KEY]`. Without a configured
key it accepts the development key `DEV_API_KEY` = "ody_emulator_dev_key".

How it stays cheap: every scene (photo hash, prompt, size) is rendered and VP8-encoded once as a short loop
in a worker thread, and each stream's track replays those packets (aiortc only packetises them); a prompt
change plays a keyframe-first crossfade clip into the new loop. Recordings remux H.264 versions of the same
loops along the stream's timeline.

Tests steer a running emulator through `emu.faults` (see `Faults`), `emu.drop_connections(code)`,
`emu.drop_peer_connections()`, `emu.fail_streams(reason, message)`, and read `emu.observed`. Benchmarks read
what it sends per stream (`emu.stream_stats()`) and what its render threads did (`emu.library.work`).

Deliberate choices where the real service cannot be observed: the emulator is the WebRTC offerer and sends
VP8 only; the idle timeout counts time without a running stream, since keepalives arrive every 10 s from any
live client (`keepalive_resets_idle` switches to §20.2's other reading). Broadcast (`broadcast: true`) sends
`broadcast_ready` right after `stream_started` with a WHEP endpoint (`POST <webrtc_url>/whep?token=`,
`DELETE` on the Location) that streams the same packets to each spectator, at most
`max_spectators_per_stream` of them (`--max-spectators`; more get 503); there is no HLS (`broadcast_url` is
null).
"""

from bot.emulator.config import DEV_API_KEY, ApiKey, EmulatorConfig, Faults
from bot.emulator.scene import garment_box, parse_outfit
from bot.emulator.server import Emulator

__all__ = ["DEV_API_KEY", "ApiKey", "Emulator", "EmulatorConfig", "Faults", "garment_box", "parse_outfit"]
