"""SQLite state via aiosqlite: versioned migrations, WAL, small repositories (see `Store`).

Conventions:
- Times are UTC unix seconds (float) everywhere; repositories take `at=`/`now=` to inject time in tests.
- Guild id 0 (`NO_GUILD`) stands for "no guild" (DMs, the console demo).
- Anything a member or moderator can see is read per guild (`sessions.find(guild_id, id)`, `audit.list`,
  `usage.report`...); engine-only lookups by id (`sessions.get`) are not.
- Moderator mutators take `moderator_id=` and write their audit entry in the same transaction; they return
  that entry (for the mod-log channel), or None when nothing changed.
- The usage ledger is append-only; `Store.forget` documents the one exception and why.
"""

from bot.store.migrations import MIGRATIONS, Migration, SchemaError
from bot.store.records import (
    INTERRUPTED_STATE,
    LIVE_STATES,
    NO_GUILD,
    QUEUED_STATE,
    UNFINISHED_STATES,
    AuditEntry,
    Block,
    BotPost,
    DayUsage,
    ForgetResult,
    GuildSettings,
    LedgerEntry,
    MemberSettings,
    MemberUsage,
    PromptRecord,
    QuotaLimits,
    QuotaOverride,
    SessionRecord,
    StreamRecord,
    UsageReport,
    UsageTotals,
)
from bot.store.sessions import TERMINAL_STATES, InterruptedSession
from bot.store.store import Store
from bot.store.usage import SettlementError

__all__ = [
    "INTERRUPTED_STATE",
    "LIVE_STATES",
    "MIGRATIONS",
    "NO_GUILD",
    "QUEUED_STATE",
    "TERMINAL_STATES",
    "UNFINISHED_STATES",
    "AuditEntry",
    "Block",
    "BotPost",
    "DayUsage",
    "ForgetResult",
    "GuildSettings",
    "InterruptedSession",
    "LedgerEntry",
    "MemberSettings",
    "MemberUsage",
    "Migration",
    "PromptRecord",
    "QuotaLimits",
    "QuotaOverride",
    "SchemaError",
    "SessionRecord",
    "SettlementError",
    "Store",
    "StreamRecord",
    "UsageReport",
    "UsageTotals",
]
