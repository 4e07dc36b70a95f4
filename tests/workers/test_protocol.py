"""The start command on the wire: every field of the request reaches the worker as the bot sent it."""

from __future__ import annotations

import dataclasses

from bot.tryon.models import SessionRequest
from bot.tryon.settings import EngineSettings
from bot.workers.protocol import Message, StartCommand


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


def over_the_wire(message: Message) -> Message:
    return Message.parse(message.headers(), message.data)


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
