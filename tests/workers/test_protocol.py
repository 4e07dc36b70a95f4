"""The wire format's Watch live parts: a session's broadcast details and its `watch` flag survive the bus."""

from __future__ import annotations

import dataclasses

from bot.tryon.models import SessionRequest, SessionState
from bot.tryon.presenter import BroadcastReady, StatusChanged
from bot.tryon.settings import EngineSettings
from bot.workers import protocol
from bot.workers.protocol import Message, StartCommand


def over_the_bus(message: Message) -> Message:
    """What the other side parses: the headers and bytes NATS carries."""
    return Message.parse(message.headers(), message.data)


def start_command(watch: bool) -> StartCommand:
    request = SessionRequest(guild_id=1, user_id=2, channel_id=3, photo=b"jpeg", outfit="a coat", watch=watch)
    return StartCommand("s1", request, 60.0, None, (7,), None, EngineSettings())


def test_broadcast_details_travel_as_an_event() -> None:
    event = BroadcastReady("s1", "stream-1", "https://platform.example/broadcast/stream-1", "spectator-token")
    message = over_the_bus(protocol.broadcast_message(event))
    assert message.kind == "broadcast"
    assert protocol.broadcast_from(message) == event
    assert "spectator-token" not in repr(event)  # kept out of logs


def test_a_start_carries_watch_and_an_older_bot_s_start_means_no_watch() -> None:
    for watch in (True, False):
        parsed = StartCommand.from_message(over_the_bus(start_command(watch).to_message()))
        assert parsed.request.watch is watch
    older = start_command(True).to_message()
    fields = {key: value for key, value in older.fields.items() if key != "watch"}
    assert not StartCommand.from_message(Message("start", fields, older.data)).request.watch


def test_statuses_keep_the_link_and_viewer_count_fields() -> None:
    status = StatusChanged(
        "s1", SessionState.STREAMING, 3.0, "a coat", watch_url="https://x/watch/a", viewers=4
    )
    assert protocol.status_from(over_the_bus(protocol.status_message(status))) == status
    plain = dataclasses.replace(status, watch_url=None, viewers=None)
    assert protocol.status_from(over_the_bus(protocol.status_message(plain))) == plain
