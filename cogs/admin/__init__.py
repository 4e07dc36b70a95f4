"""Moderator commands (`/tryonadmin`), loaded as the `cogs.admin` extension."""

from cogs.admin._cog import TryOnAdmin, setup
from cogs.utils.checks import is_moderator

__all__ = ["TryOnAdmin", "is_moderator", "setup"]
