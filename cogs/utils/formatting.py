"""Text helpers shared by the cogs: safe echoing of member text, durations, quota limits, audit lines."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata

import discord

from bot.store.records import AuditEntry, QuotaLimits

# Characters that reorder or hide text: bidi controls, zero-width and other invisible format characters.
# A zero-width joiner stays only inside an emoji sequence (👩‍🚀), where it is what joins the emoji.
_EMOJI = "\U0001f000-\U0001faff\u2600-\u27bf\ufe0f"
_HIDDEN = re.compile(
    "[\u00ad\u061c\u180e\u200b\u200c\u200e\u200f\u202a-\u202e\u2060-\u2069\ufeff]"
    f"|(?<![{_EMOJI}])\u200d|\u200d(?![{_EMOJI}])"
)
_WHITESPACE = re.compile(r"\s+")
# `@everyone`/`@here`, and the start of every mention-like markup: users, roles, channels, slash commands.
_MASS_MENTION = re.compile(r"@(everyone|here)")
_MENTION_START = re.compile(r"<(?=[@#/])")


def quote_safely(text: str, limit: int = 200) -> str:
    """Member-written text on one line, shortened and escaped: it cannot format, mention, ping or reorder.

    Bidi controls and invisible characters are dropped (they could reverse or hide what moderators read),
    control characters and line breaks become spaces (no fake lines in a log), and every mention-like
    markup gets a zero-width space so Discord shows it as text, whatever the id looks like.
    """
    text = "".join(" " if unicodedata.category(c) == "Cc" else c for c in _HIDDEN.sub("", text))
    text = _WHITESPACE.sub(" ", text).strip()
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    text = discord.utils.escape_markdown(text)  # backslashes included
    text = _MASS_MENTION.sub("@\u200b\\1", text)
    return _MENTION_START.sub("<\u200b", text)


def duration(seconds: float) -> str:
    """`75` -> `1 min 15 s`; `3600` -> `60 min`."""
    whole = round(seconds)
    minutes, secs = divmod(whole, 60)
    if minutes and secs:
        return f"{minutes} min {secs} s"
    if minutes:
        return f"{minutes} min"
    return f"{secs} s"


def timestamp(unix_seconds: float, style: str = "f") -> str:
    """Discord's localised timestamp markup."""
    moment = dt.datetime.fromtimestamp(unix_seconds, tz=dt.UTC)
    return discord.utils.format_dt(moment, style)  # type: ignore[arg-type]


def limits_text(limits: QuotaLimits | None) -> str:
    """One line per set limit, or "not set"."""
    if limits is None or limits.is_empty():
        return "not set"
    parts = []
    if limits.daily_seconds is not None:
        parts.append(f"{duration(limits.daily_seconds)} per day")
    if limits.monthly_seconds is not None:
        parts.append(f"{duration(limits.monthly_seconds)} per month")
    if limits.daily_sessions is not None:
        parts.append(f"{limits.daily_sessions} sessions per day")
    if limits.monthly_sessions is not None:
        parts.append(f"{limits.monthly_sessions} sessions per month")
    return ", ".join(parts)


_ACTION_WORDS = {
    "guild_quota_set": "set the server's default quota",
    "quota_user_set": "set the quota of",
    "quota_user_cleared": "reset the quota of",
    "quota_role_set": "set the quota of role",
    "quota_role_cleared": "reset the quota of role",
    "queue_cap_set": "set the queue cap",
    "idle_timeout_set": "set the idle timeout",
    "guild_settings_set": "changed the server's try-on settings",
    "odyssey_account_problem": "reports a problem with its Odyssey account",
    "block": "blocked",
    "unblock": "unblocked",
    "channel_allowed": "allowed try-on in",
    "channel_disallowed": "removed from the allowed channels",
    "blocklist_add": "blocked the word",
    "blocklist_remove": "unblocked the word",
    "mod_log_set": "set the mod-log channel",
    "session_stopped": "stopped session",
    "posts_deleted": "deleted the posts of try-on",
    "usage_adjust": "adjusted usage of",
    "prompt_refused": "had a prompt refused",
}


def _target_text(entry: AuditEntry) -> str:
    kind, _, ident = (entry.target or "").partition(":")
    if kind == "role" and ident.isdigit():
        return f" <@&{ident}>"
    if kind == "user" and ident.isdigit():
        return "" if entry.target_user_id else f" <@{ident}>"
    if entry.action.startswith(("channel_", "mod_log")) and (entry.target or "").isdigit():
        return f" <#{entry.target}>"
    return f" `{quote_safely(entry.target or '', 80)}`"


def audit_line(entry: AuditEntry) -> str:
    """One readable line for an audit entry (mentions render as names; nobody is pinged)."""
    actor = f"<@{entry.actor_id}>" if entry.actor_id else "the bot"
    words = _ACTION_WORDS.get(entry.action, entry.action.replace("_", " "))
    target = ""
    if entry.target_user_id:
        target += f" <@{entry.target_user_id}>"
    if entry.target:
        target += _target_text(entry)
    details = {k: v for k, v in entry.details.items() if v is not None and k != "prompt"}
    extra = (
        f" ({', '.join(f'{k}={quote_safely(str(v), 80)}' for k, v in details.items())})" if details else ""
    )
    prompt = entry.details.get("prompt")
    if prompt:
        extra += f": “{quote_safely(str(prompt), 120)}”"
    return f"{timestamp(entry.at, 'f')} {actor} {words}{target}{extra}"
