"""Fixtures for the harness's own tests."""

from tests.fakediscord.fixtures import fake_discord

__all__ = ["fake_discord"]
