"""The recording event on the wire: links in the fields, the highlight MP4 and the stills in one payload."""

from __future__ import annotations

import dataclasses

import pytest

from bot.tryon.presenter import Highlight, RecordingLinks, RecordingReady
from bot.workers import protocol
from bot.workers.protocol import Message, ProtocolError

LINKS = RecordingLinks("stream-1", "https://v/1.mp4", None, "https://t/1.jpg", None, 12.5)
HIGHLIGHT = Highlight(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40, 7.5, 360, 656, 3)


def over_the_wire(message: Message) -> Message:
    """What the other side parses: the headers and the payload, as NATS carries them."""
    return Message.parse(message.headers(), message.data)


@pytest.mark.parametrize(
    "event",
    [
        RecordingReady(
            "s1",
            (LINKS,),
            before_after_png=b"\x89PNG after",
            highlight=HIGHLIGHT,
            thumbnail_jpeg=b"\xff\xd8 thumb",
        ),
        RecordingReady("s1", (LINKS,), highlight=HIGHLIGHT),
        RecordingReady("s1", (LINKS,), before_after_png=b"\x89PNG", thumbnail_jpeg=b""),
        RecordingReady("s1", (), recovered=True),
    ],
    ids=["everything", "highlight only", "stills only (one empty)", "recovered, no files"],
)
def test_the_recording_event_round_trips(event: RecordingReady) -> None:
    message = protocol.recording_message(event)
    assert message.data.count(HIGHLIGHT.data) == (1 if event.highlight else 0)  # sent as is, once
    assert protocol.recording_from(over_the_wire(message)) == event


def test_an_event_of_an_earlier_worker_still_shows_its_still() -> None:
    earlier = Message(
        "recording",
        {"session_id": "s1", "recordings": [dataclasses.asdict(LINKS)], "recovered": False}
        | {"has_still": True},
        b"\x89PNG old",
    )
    event = protocol.recording_from(over_the_wire(earlier))
    assert event.before_after_png == b"\x89PNG old"
    assert event.highlight is None and event.thumbnail_jpeg is None


@pytest.mark.parametrize("extra", [b"x", -1])
def test_files_that_do_not_add_up_to_the_payload_are_refused(extra: bytes | int) -> None:
    message = protocol.recording_message(RecordingReady("s1", (), highlight=HIGHLIGHT))
    if isinstance(extra, bytes):
        broken = Message(message.kind, message.fields, message.data + extra)
    else:
        broken = Message(message.kind, message.fields, message.data[:extra])
    with pytest.raises(ProtocolError):
        protocol.recording_from(over_the_wire(broken))
