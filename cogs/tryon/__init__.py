"""Members' commands (`/tryon`), loaded as the `cogs.tryon` extension."""

from cogs.tryon._cog import TryOn, setup

__all__ = ["TryOn", "setup"]
