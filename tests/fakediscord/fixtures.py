"""Pytest fixtures for the fake Discord: import them into a conftest.py to use them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import discord
import pytest

from tests.fakediscord.server import FakeDiscord


@pytest.fixture
async def fake_discord(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeDiscord]:
    """A started fake with every discord.py REST route (bot API and webhooks) pointed at it.

    Fails the test if a request (query, body) or the fake's own answer (status, body) breaks Discord's
    OpenAPI description, or if the bot hit a route the fake lacks.
    """
    fake = FakeDiscord()
    await fake.start()
    monkeypatch.setattr(discord.http.Route, "BASE", fake.api_base)
    try:
        yield fake
    finally:
        await fake.stop()
    assert not fake.schema_errors, "requests that break Discord's OpenAPI schema:\n" + "\n".join(
        fake.schema_errors
    )
    assert not fake.unhandled, f"routes the fake does not know: {[r.route for r in fake.unhandled]}"
