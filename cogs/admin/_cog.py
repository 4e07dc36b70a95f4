"""`/tryonadmin`: settings, quotas, blocks, channels, blocklist, live sessions, usage, mod-log, audit log."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import time
from typing import Any, Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import TryOnBot
from bot.media.charts import UsageChart, usage_chart_png
from bot.store import Store
from bot.store.records import AuditEntry, GuildSettings, QuotaLimits, UsageReport
from bot.store.store import month_start
from bot.tryon.account import AccountAlert
from bot.tryon.prompts import normalise_blocklist_entry
from cogs.admin.alerts import announce_account_problem
from cogs.utils.checks import is_moderator
from cogs.utils.delivery import post_to_mod_log, send_reply
from cogs.utils.formatting import audit_line, duration, limits_text, quote_safely, timestamp

SettingName = Literal[
    "queue_cap",
    "idle_timeout",
    "photo_retention_hours",
    "snippets",
    "private_by_default",
    "paused",
    "pause_message",
]
# The command's option names -> the stored settings' names.
_SETTING_COLUMNS = {
    "queue_cap": "queue_cap",
    "idle_timeout": "idle_timeout_seconds",
    "photo_retention_hours": "photo_retention_hours",
    "snippets": "snippets_enabled",
    "private_by_default": "private_by_default",
    "paused": "paused",
    "pause_message": "pause_message",
}

DAY = 86400.0
Minutes = app_commands.Range[float, 0, 44640]  # up to a 31-day month
Sessions = app_commands.Range[int, 0, 10000]


def _limits(
    daily_minutes: float | None,
    monthly_minutes: float | None,
    daily_sessions: int | None,
    monthly_sessions: int | None,
) -> QuotaLimits:
    return QuotaLimits(
        daily_seconds=None if daily_minutes is None else daily_minutes * 60,
        monthly_seconds=None if monthly_minutes is None else monthly_minutes * 60,
        daily_sessions=daily_sessions,
        monthly_sessions=monthly_sessions,
    )


_LIMIT_DESCRIBE = {
    "daily_minutes": "Streaming minutes per UTC day (leave out to inherit)",
    "monthly_minutes": "Streaming minutes per calendar month (leave out to inherit)",
    "daily_sessions": "Sessions per UTC day (leave out to inherit)",
    "monthly_sessions": "Sessions per calendar month (leave out to inherit)",
}


@app_commands.default_permissions(manage_guild=True)
@app_commands.allowed_contexts(guilds=True, dms=False, private_channels=False)
@app_commands.allowed_installs(guilds=True, users=False)
class TryOnAdmin(
    commands.GroupCog, group_name="tryonadmin", group_description="Moderate try-on in this server"
):
    """Moderator tools; each action is guild-scoped, audited, and posted to the mod-log."""

    quota = app_commands.Group(name="quota", description="Streaming allowances")
    channels = app_commands.Group(name="channels", description="Where try-on may be used")
    blocklist = app_commands.Group(name="blocklist", description="Words outfit prompts may not use")
    sessions = app_commands.Group(name="sessions", description="Live and queued try-ons in this server")

    def __init__(self, bot: TryOnBot) -> None:
        self.bot = bot
        super().__init__()

    async def cog_load(self) -> None:
        """Deliver the engine's alerts about the Odyssey account (to mod-logs and the owner)."""
        if self.bot.has_runtime:
            self.bot.runtime.engine.on_account_problem(self._account_problem)

    async def _account_problem(self, alert: AccountAlert) -> None:
        await announce_account_problem(self.bot, alert)

    async def interaction_check(self, interaction: discord.Interaction[TryOnBot]) -> bool:  # type: ignore[override]
        """Enforce Manage Server at run time (server admins can override `default_permissions`), then defer.

        Every subcommand reads or writes SQLite before it answers; deferring first keeps the
        acknowledgement within Discord's 3 s even while the database is busy.
        """
        if not is_moderator(interaction):
            raise app_commands.MissingPermissions(["manage_guild"])
        await interaction.response.defer(ephemeral=True, thinking=True)
        return True

    @property
    def store(self) -> Store:
        """The bot's store."""
        return self.bot.runtime.store

    async def _done(
        self, interaction: discord.Interaction[TryOnBot], text: str, entry: AuditEntry | None
    ) -> None:
        await send_reply(interaction, text)
        await post_to_mod_log(self.bot, entry)

    @staticmethod
    def _guild_id(interaction: discord.Interaction[TryOnBot]) -> int:
        assert interaction.guild_id is not None  # the tree's interaction_check refuses DMs
        return interaction.guild_id

    # server settings

    @app_commands.command(name="settings", description="Show or change this server's try-on settings")
    @app_commands.describe(
        queue_cap="Members who may wait in the queue at once (0-100)",
        idle_timeout="End a try-on after this many seconds without a new outfit (10-3600)",
        photo_retention_hours="Keep a member's photo this long for another try-on (0-720; 0 keeps none)",
        snippets="Post a short clip after each outfit",
        private_by_default="New try-ons are private unless the member chooses otherwise",
        paused="Refuse new try-ons here (running ones go on)",
        pause_message="What members are told while paused",
        reset="Put one setting back to the bot's default",
    )
    async def settings(
        self,
        interaction: discord.Interaction[TryOnBot],
        queue_cap: app_commands.Range[int, 0, 100] | None = None,
        idle_timeout: app_commands.Range[int, 10, 3600] | None = None,
        photo_retention_hours: app_commands.Range[int, 0, 720] | None = None,
        snippets: bool | None = None,
        private_by_default: bool | None = None,
        paused: bool | None = None,
        pause_message: app_commands.Range[str, 1, 200] | None = None,
        reset: SettingName | None = None,
    ) -> None:
        given = {
            "queue_cap": queue_cap,
            "idle_timeout": idle_timeout,
            "photo_retention_hours": photo_retention_hours,
            "snippets": snippets,
            "private_by_default": private_by_default,
            "paused": paused,
            "pause_message": pause_message,
        }
        changes: dict[str, Any] = {_SETTING_COLUMNS[k]: v for k, v in given.items() if v is not None}
        if reset is not None:
            if reset in (name for name, value in given.items() if value is not None):
                await send_reply(interaction, f"Not saved: `{reset}` can't be both set and reset.")
                return
            changes[_SETTING_COLUMNS[reset]] = None
        guild_id = self._guild_id(interaction)
        entry = None
        if changes:
            try:
                entry = await self.store.guilds.update(guild_id, changes, moderator_id=interaction.user.id)
            except ValueError as error:
                await send_reply(interaction, f"Not saved: {error}.")
                return
        current = await self.store.guilds.get(guild_id)
        heading = "Saved." if entry else ("Nothing changed." if changes else "")
        await send_reply(interaction, heading or None, embed=self._settings_embed(current))
        await post_to_mod_log(self.bot, entry)

    def _settings_embed(self, settings: GuildSettings) -> discord.Embed:
        """Every per-server value, saying which are the bot's defaults."""
        engine = self.bot.config.engine

        def shown(value: object, default: str) -> str:
            return default + " (default)" if value is None else str(value)

        def switch(value: bool | None, default: bool) -> str:
            on = default if value is None else value
            return ("on" if on else "off") + (" (default)" if value is None else "")

        embed = discord.Embed(title="Try-on settings of this server")
        embed.add_field(name="Queue cap", value=shown(settings.queue_cap, str(engine.queue_cap_per_guild)))
        idle = settings.idle_timeout_seconds
        embed.add_field(
            name="Idle timeout",
            value=shown(None if idle is None else duration(idle), duration(engine.idle_seconds)),
        )
        retention = settings.photo_retention_hours
        embed.add_field(
            name="Photo retention",
            value=shown(None if retention is None else f"{retention:g} h", f"{settings.photo_retention:g} h"),
        )
        embed.add_field(name="Clips after each outfit", value=switch(settings.snippets_enabled, True))
        embed.add_field(name="Private by default", value=switch(settings.private_by_default, False))
        embed.add_field(name="Paused", value=switch(settings.paused, False))
        if settings.pause_message:
            embed.add_field(
                name="Pause message", value=quote_safely(settings.pause_message, 200), inline=False
            )
        return embed

    # quotas

    @quota.command(name="set-member", description="Set a member's own allowance")
    @app_commands.describe(member="Whose allowance", **_LIMIT_DESCRIBE)
    async def quota_set_member(
        self,
        interaction: discord.Interaction[TryOnBot],
        member: discord.Member,
        daily_minutes: Minutes | None = None,
        monthly_minutes: Minutes | None = None,
        daily_sessions: Sessions | None = None,
        monthly_sessions: Sessions | None = None,
    ) -> None:
        limits = _limits(daily_minutes, monthly_minutes, daily_sessions, monthly_sessions)
        entry = await self.store.quotas.set_user(
            self._guild_id(interaction), member.id, limits, moderator_id=interaction.user.id
        )
        await self._done(interaction, f"{member.mention}'s quota is now: {limits_text(limits)}.", entry)

    @quota.command(name="set-role", description="Set the allowance of everyone with a role")
    @app_commands.describe(role="Which role (the most generous role of a member wins)", **_LIMIT_DESCRIBE)
    async def quota_set_role(
        self,
        interaction: discord.Interaction[TryOnBot],
        role: discord.Role,
        daily_minutes: Minutes | None = None,
        monthly_minutes: Minutes | None = None,
        daily_sessions: Sessions | None = None,
        monthly_sessions: Sessions | None = None,
    ) -> None:
        limits = _limits(daily_minutes, monthly_minutes, daily_sessions, monthly_sessions)
        entry = await self.store.quotas.set_role(
            self._guild_id(interaction), role.id, limits, moderator_id=interaction.user.id
        )
        await self._done(interaction, f"{role.mention}'s quota is now: {limits_text(limits)}.", entry)

    @quota.command(name="set-default", description="Set the server's default allowance")
    @app_commands.describe(**_LIMIT_DESCRIBE)
    async def quota_set_default(
        self,
        interaction: discord.Interaction[TryOnBot],
        daily_minutes: Minutes | None = None,
        monthly_minutes: Minutes | None = None,
        daily_sessions: Sessions | None = None,
        monthly_sessions: Sessions | None = None,
    ) -> None:
        limits = _limits(daily_minutes, monthly_minutes, daily_sessions, monthly_sessions)
        entry = await self.store.guilds.set_default_limits(
            self._guild_id(interaction), limits, moderator_id=interaction.user.id
        )
        await self._done(interaction, f"The server's default quota is now: {limits_text(limits)}.", entry)

    @quota.command(name="reset-member", description="Remove a member's own allowance (inherit again)")
    async def quota_reset_member(
        self, interaction: discord.Interaction[TryOnBot], member: discord.Member
    ) -> None:
        entry = await self.store.quotas.clear_user(
            self._guild_id(interaction), member.id, moderator_id=interaction.user.id
        )
        text = (
            f"{member.mention} now inherits their quota." if entry else f"{member.mention} had no own quota."
        )
        await self._done(interaction, text, entry)

    @quota.command(name="reset-role", description="Remove a role's allowance")
    async def quota_reset_role(self, interaction: discord.Interaction[TryOnBot], role: discord.Role) -> None:
        entry = await self.store.quotas.clear_role(
            self._guild_id(interaction), role.id, moderator_id=interaction.user.id
        )
        text = f"{role.mention} no longer has a quota." if entry else f"{role.mention} had no quota."
        await self._done(interaction, text, entry)

    @quota.command(name="reset-default", description="Go back to the bot's built-in default allowance")
    async def quota_reset_default(self, interaction: discord.Interaction[TryOnBot]) -> None:
        entry = await self.store.guilds.set_default_limits(
            self._guild_id(interaction), QuotaLimits(), moderator_id=interaction.user.id
        )
        await self._done(interaction, "The server uses the bot's built-in default quota again.", entry)

    @quota.command(name="show", description="Show the allowance of a member, a role, or the server")
    @app_commands.describe(member="A member (their usage too)", role="A role")
    async def quota_show(
        self,
        interaction: discord.Interaction[TryOnBot],
        member: discord.Member | None = None,
        role: discord.Role | None = None,
    ) -> None:
        guild_id = self._guild_id(interaction)
        settings = await self.store.guilds.get(guild_id)
        embed = discord.Embed(title="Try-on quota")
        embed.add_field(name="Server default", value=limits_text(settings.default_limits), inline=False)
        if role is not None:
            override = await self.store.quotas.get_role(guild_id, role.id)
            limits = override.limits if override else None
            embed.add_field(
                name=f"Role @{quote_safely(role.name, 80)}", value=limits_text(limits), inline=False
            )
        if member is not None:
            await self._describe_member(embed, guild_id, member)
        await send_reply(interaction, embed=embed)

    async def _describe_member(self, embed: discord.Embed, guild_id: int, member: discord.Member) -> None:
        own = await self.store.quotas.get_user(guild_id, member.id)
        roles = await self.store.quotas.for_roles(guild_id, [r.id for r in member.roles])
        block = await self.store.blocks.get(guild_id, member.id)
        now = time.time()
        today = await self.store.usage.totals(guild_id, member.id, since=now - now % DAY, until=now + 1)
        month = await self.store.usage.totals(guild_id, member.id, since=month_start(now), until=now + 1)
        embed.add_field(
            name=f"{quote_safely(member.display_name, 80)}'s own",
            value=limits_text(own.limits if own else None),
            inline=False,
        )
        if roles:
            # Mentions render in field values only, never in names.
            lines = [f"<@&{override.subject_id}>: {limits_text(override.limits)}" for override in roles]
            embed.add_field(name="Through their roles", value="\n".join(lines)[:1024], inline=False)
        embed.add_field(
            name="Used",
            value=f"today {duration(today.seconds)} in {today.sessions} sessions; "
            f"this month {duration(month.seconds)} in {month.sessions} sessions",
            inline=False,
        )
        if block is not None:
            embed.add_field(
                name="Blocked", value=quote_safely(block.reason or "no reason given"), inline=False
            )

    # blocks

    @app_commands.command(name="block", description="Block a member from try-on in this server")
    @app_commands.describe(
        member="Who", reason="Shown in the audit log", days="Lift the block after this many days"
    )
    async def block(
        self,
        interaction: discord.Interaction[TryOnBot],
        member: discord.Member,
        reason: app_commands.Range[str, 1, 200] | None = None,
        days: app_commands.Range[int, 1, 365] | None = None,
    ) -> None:
        expires_at = None if days is None else time.time() + days * DAY
        entry = await self.store.blocks.block(
            self._guild_id(interaction),
            member.id,
            moderator_id=interaction.user.id,
            reason=reason,
            expires_at=expires_at,
        )
        until = f" until {timestamp(expires_at)}" if expires_at else ""
        await self._done(interaction, f"{member.mention} is blocked from try-on{until}.", entry)

    @app_commands.command(name="unblock", description="Lift a member's block")
    async def unblock(self, interaction: discord.Interaction[TryOnBot], member: discord.Member) -> None:
        entry = await self.store.blocks.unblock(
            self._guild_id(interaction), member.id, moderator_id=interaction.user.id
        )
        text = f"{member.mention} may use try-on again." if entry else f"{member.mention} was not blocked."
        await self._done(interaction, text, entry)

    # channels

    @channels.command(name="allow", description="Allow try-on in a channel (once any is allowed, only those)")
    async def channels_allow(
        self, interaction: discord.Interaction[TryOnBot], channel: discord.TextChannel
    ) -> None:
        entry = await self.store.guilds.allow_channel(
            self._guild_id(interaction), channel.id, moderator_id=interaction.user.id
        )
        text = (
            f"Try-on is allowed in {channel.mention}." if entry else f"{channel.mention} was already allowed."
        )
        await self._done(interaction, text, entry)

    @channels.command(name="remove", description="Remove a channel from the allowed channels")
    async def channels_remove(
        self, interaction: discord.Interaction[TryOnBot], channel: discord.TextChannel
    ) -> None:
        entry = await self.store.guilds.disallow_channel(
            self._guild_id(interaction), channel.id, moderator_id=interaction.user.id
        )
        text = (
            f"{channel.mention} is no longer allowed." if entry else f"{channel.mention} was not in the list."
        )
        await self._done(interaction, text, entry)

    @channels.command(name="list", description="Show the allowed channels")
    async def channels_list(self, interaction: discord.Interaction[TryOnBot]) -> None:
        allowed = await self.store.guilds.allowed_channels(self._guild_id(interaction))
        if not allowed:
            await send_reply(interaction, "Try-on is allowed in every channel (no allowlist).")
            return
        await send_reply(
            interaction, "Try-on is allowed in: " + ", ".join(f"<#{c}>" for c in sorted(allowed))
        )

    # prompt blocklist

    @blocklist.command(name="add", description="Refuse outfit prompts containing this word or phrase")
    async def blocklist_add(
        self, interaction: discord.Interaction[TryOnBot], word: app_commands.Range[str, 1, 60]
    ) -> None:
        normalised = normalise_blocklist_entry(word)
        if not normalised:
            await send_reply(interaction, "That has no letters or digits to match; give a word or phrase.")
            return
        entry = await self.store.guilds.add_blocked_word(
            self._guild_id(interaction), normalised, moderator_id=interaction.user.id
        )
        shown = quote_safely(normalised)
        await self._done(
            interaction, f"Blocked “{shown}”." if entry else f"“{shown}” was already blocked.", entry
        )

    @blocklist.command(name="remove", description="Allow a blocked word again")
    async def blocklist_remove(
        self, interaction: discord.Interaction[TryOnBot], word: app_commands.Range[str, 1, 60]
    ) -> None:
        normalised = normalise_blocklist_entry(word)
        entry = await self.store.guilds.remove_blocked_word(
            self._guild_id(interaction), normalised, moderator_id=interaction.user.id
        )
        shown = quote_safely(normalised)
        await self._done(
            interaction, f"Unblocked “{shown}”." if entry else f"“{shown}” was not blocked.", entry
        )

    @blocklist.command(name="list", description="Show the blocked words")
    async def blocklist_list(self, interaction: discord.Interaction[TryOnBot]) -> None:
        words = await self.store.guilds.blocked_words(self._guild_id(interaction))
        text = ", ".join(f"“{quote_safely(w)}”" for w in words) if words else "No words are blocked."
        await send_reply(interaction, text[:1900])

    # live sessions

    @sessions.command(name="list", description="Live and queued try-ons in this server")
    async def sessions_list(self, interaction: discord.Interaction[TryOnBot]) -> None:
        live = self.bot.runtime.engine.sessions(self._guild_id(interaction))
        if not live:
            await send_reply(interaction, "No try-ons are running or waiting here.")
            return
        lines = [
            f"`{s.id}` <@{s.user_id}> · {s.state} · {duration(s.streamed_seconds)} · "
            f"{quote_safely(s.outfit, 80)}"
            for s in live
        ]
        await send_reply(interaction, "\n".join(lines)[:1900])

    @sessions.command(name="stop", description="End someone's try-on (it is settled and its recording kept)")
    @app_commands.describe(session_id="The id shown by /tryonadmin sessions list")
    async def sessions_stop(
        self, interaction: discord.Interaction[TryOnBot], session_id: app_commands.Range[str, 1, 40]
    ) -> None:
        entry = await self.bot.runtime.engine.end_as_moderator(
            session_id, guild_id=self._guild_id(interaction), moderator_id=interaction.user.id
        )
        await self._done(interaction, f"Stopping <@{entry.target_user_id}>'s try-on `{session_id}`.", entry)

    # reports and logs

    @app_commands.command(name="usage", description="Usage report: totals, top members, by day")
    @app_commands.describe(days="How many days back (default 30)")
    async def usage(
        self, interaction: discord.Interaction[TryOnBot], days: app_commands.Range[int, 1, 366] = 30
    ) -> None:
        now = time.time()
        report = await self.store.usage.report(
            self._guild_id(interaction), since=now - days * DAY, until=now + 1
        )
        embed = discord.Embed(title=f"Try-on usage, last {days} days")
        embed.add_field(
            name="Total",
            value=f"{duration(report.totals.seconds)} in {report.totals.sessions} sessions",
            inline=False,
        )
        top = "\n".join(
            f"<@{m.user_id}>: {duration(m.seconds)}, {m.sessions} sessions" for m in report.top_members
        )
        embed.add_field(name="Top members", value=top or "nobody yet", inline=False)
        by_day = "\n".join(
            f"{d.day}: {duration(d.seconds)}, {d.sessions} sessions" for d in report.by_day[-14:]
        )
        embed.add_field(name="By day", value=by_day or "no usage", inline=False)
        chart = self._usage_chart(interaction, report, days, now)
        png = await asyncio.to_thread(usage_chart_png, chart)  # drawing is CPU work: off the event loop
        embed.set_image(url="attachment://usage.png")
        await send_reply(interaction, embed=embed, file=discord.File(io.BytesIO(png), "usage.png"))

    @staticmethod
    def _usage_chart(
        interaction: discord.Interaction[TryOnBot], report: UsageReport, days: int, now: float
    ) -> UsageChart:
        """Minutes on every UTC day of the window (none: 0) and per top member, by name where known."""
        minutes_by_day = {day.day: day.seconds / 60 for day in report.by_day}
        today = dt.datetime.fromtimestamp(now, tz=dt.UTC).date()
        dates = [today - dt.timedelta(days=back) for back in range(days - 1, -1, -1)]
        guild = interaction.guild

        def name(user_id: int) -> str:
            member = guild.get_member(user_id) if guild is not None else None
            return member.display_name if member is not None else f"user …{str(user_id)[-4:]}"

        return UsageChart(
            title=f"Try-on minutes per day, last {days} days",
            days=[(f"{d:%m-%d}", minutes_by_day.get(d.isoformat(), 0.0)) for d in dates],
            members=[(name(m.user_id), m.seconds / 60) for m in report.top_members],
        )

    @app_commands.command(
        name="modlog", description="Post moderator actions and refused prompts to a channel"
    )
    @app_commands.describe(channel="Where to post (leave out to stop posting)")
    async def modlog(
        self, interaction: discord.Interaction[TryOnBot], channel: discord.TextChannel | None = None
    ) -> None:
        entry = await self.store.guilds.set_mod_log_channel(
            self._guild_id(interaction), channel.id if channel else None, moderator_id=interaction.user.id
        )
        text = f"The mod-log now goes to {channel.mention}." if channel else "The mod-log is switched off."
        await self._done(interaction, text, entry)

    @app_commands.command(name="audit", description="Recent moderator actions and refused prompts")
    @app_commands.describe(member="Only entries about this member", page="Page, newest first")
    async def audit(
        self,
        interaction: discord.Interaction[TryOnBot],
        member: discord.Member | None = None,
        page: app_commands.Range[int, 1, 100] = 1,
    ) -> None:
        entries = await self.store.audit.list(
            self._guild_id(interaction), limit=page * 15, target_user_id=member.id if member else None
        )
        shown = entries[(page - 1) * 15 :]
        if not shown:
            await send_reply(interaction, "No audit entries.")
            return
        embed = discord.Embed(
            title=f"Audit log, page {page}", description="\n".join(map(audit_line, shown))[:4000]
        )
        await send_reply(interaction, embed=embed)


async def setup(bot: TryOnBot) -> None:
    """Extension entry point."""
    await bot.add_cog(TryOnAdmin(bot))
