"""Moderator commands (`/tryonadmin`), loaded as the `cogs.admin` extension."""

from cogs.admin._cog import TryOnAdmin, is_moderator, setup

__all__ = ["TryOnAdmin", "is_moderator", "setup"]
