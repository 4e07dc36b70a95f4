"""A loopback fake of Discord's REST API plus payload builders, to run the real discord.py stack in tests."""

from tests.fakediscord.harness import BotDriver, Delivered
from tests.fakediscord.server import FakeDiscord, FakeMessage, Fault, RecordedRequest, UploadedFile

__all__ = ["BotDriver", "Delivered", "FakeDiscord", "FakeMessage", "Fault", "RecordedRequest", "UploadedFile"]
