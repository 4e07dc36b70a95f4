"""Permission checks shared by the cogs, made at run time from the interaction's resolved permissions."""

from __future__ import annotations

from typing import Any

import discord


def is_moderator(interaction: discord.Interaction[Any]) -> bool:
    """Manage Server (or Administrator, which implies it) in this guild.

    Discord resolves an administrator's permissions to every bit, but the check does not rely on that: a
    payload with the Administrator bit alone still counts.
    """
    if interaction.guild_id is None:
        return False
    permissions = interaction.permissions
    return permissions.administrator or permissions.manage_guild
