"""Owner-only housekeeping: `!sync` publishes the slash commands (never done automatically on start)."""

from __future__ import annotations

from discord.ext import commands

from bot.app import TryOnBot, sync_commands


class Meta(commands.Cog):
    """Commands for the bot's owner."""

    def __init__(self, bot: TryOnBot) -> None:
        self.bot = bot

    @commands.command(name="sync")
    @commands.is_owner()
    async def sync(self, ctx: commands.Context[TryOnBot], scope: str | None = None) -> None:
        """`!sync` publishes globally; `!sync here` copies the commands to this server only (instant)."""
        guild_id = None
        if scope == "here":
            if ctx.guild is None:
                await ctx.send("`!sync here` only works inside a server.")
                return
            guild_id = ctx.guild.id
        elif scope is not None:
            await ctx.send("Use `!sync` (global) or `!sync here` (this server).")
            return
        published = await sync_commands(self.bot, guild_id)
        where = "this server" if guild_id else "every server"
        await ctx.send(f"Published {len(published)} commands to {where}.")

    async def cog_command_error(self, ctx: commands.Context[TryOnBot], error: Exception) -> None:  # type: ignore[override]
        """Tell non-owners no, quietly; anything else is a bug and propagates to the log."""
        if isinstance(error, commands.NotOwner):
            await ctx.send("Only the bot's owner can do that.")
            return
        raise error


async def setup(bot: TryOnBot) -> None:
    """Extension entry point."""
    await bot.add_cog(Meta(bot))
