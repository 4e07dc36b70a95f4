"""Events and commands on the wire: the recording event (links in the fields, the highlight MP4 and the stills
in one payload), the start command (every field of the request reaches the worker as the bot sent it) and
Watch live's parts (a session's broadcast details and its `watch` flag)."""

from __future__ import annotations

import dataclasses

import pytest

from bot.tryon.models import SessionRequest, SessionState
from bot.tryon.presenter import BroadcastReady, Highlight, RecordingLinks, RecordingReady, StatusChanged
from bot.tryon.settings import EngineSettings
from bot.workers import protocol
from bot.workers.protocol import Message, ProtocolError, StartCommand

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


def command(**request: object) -> StartCommand:
    values: dict[str, object] = {
        "guild_id": 1, "user_id": 2, "channel_id": 3, "photo": b"\xff\xd8jpeg", "outfit": "a red coat",
    }  # fmt: skip
    values.update(request)
    return StartCommand(
        session_id="s1",
        request=SessionRequest(**values),  # type: ignore[arg-type]
        allowance_seconds=60.0,
        idle_seconds=30.0,
        pending_prompt_ids=(7,),
        upload_budget_bytes=1024,
        settings=EngineSettings(),
    )


def test_a_start_command_arrives_whole_with_clips_off_and_landscape() -> None:
    sent = command(snippets=False, portrait=False)
    received = StartCommand.from_message(over_the_wire(sent.to_message()))
    assert received == sent
    assert received.request.snippets is False and received.request.portrait is False


def test_a_start_command_from_an_earlier_bot_has_clips_on() -> None:
    message = command().to_message()
    fields = {key: value for key, value in message.fields.items() if key != "snippets"}
    received = StartCommand.from_message(dataclasses.replace(message, fields=fields))
    assert received.request.snippets is True


def start_command(watch: bool) -> StartCommand:
    request = SessionRequest(guild_id=1, user_id=2, channel_id=3, photo=b"jpeg", outfit="a coat", watch=watch)
    return StartCommand("s1", request, 60.0, None, (7,), None, EngineSettings())


def test_broadcast_details_travel_as_an_event() -> None:
    event = BroadcastReady("s1", "stream-1", "https://platform.example/broadcast/stream-1", "spectator-token")
    message = over_the_wire(protocol.broadcast_message(event))
    assert message.kind == "broadcast"
    assert protocol.broadcast_from(message) == event
    assert "spectator-token" not in repr(event)  # kept out of logs


def test_a_start_carries_watch_and_an_older_bot_s_start_means_no_watch() -> None:
    for watch in (True, False):
        parsed = StartCommand.from_message(over_the_wire(start_command(watch).to_message()))
        assert parsed.request.watch is watch
    older = start_command(True).to_message()
    fields = {key: value for key, value in older.fields.items() if key != "watch"}
    assert not StartCommand.from_message(Message("start", fields, older.data)).request.watch


def test_statuses_keep_the_link_and_viewer_count_fields() -> None:
    status = StatusChanged(
        "s1", SessionState.STREAMING, 3.0, "a coat", watch_url="https://x/watch/a", viewers=4
    )
    assert protocol.status_from(over_the_wire(protocol.status_message(status))) == status
    plain = dataclasses.replace(status, watch_url=None, viewers=None)
    assert protocol.status_from(over_the_wire(protocol.status_message(plain))) == plain
