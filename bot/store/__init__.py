"""SQLite state via aiosqlite: versioned migrations, WAL, small repositories (see `Store`)."""

from bot.store.migrations import MIGRATIONS, Migration, SchemaError
from bot.store.records import (
    INTERRUPTED_STATE,
    LIVE_STATES,
    NO_GUILD,
    QUEUED_STATE,
    UNFINISHED_STATES,
    AuditEntry,
    Block,
    DayUsage,
    ForgetResult,
    GuildSettings,
    LedgerEntry,
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
    "DayUsage",
    "ForgetResult",
    "GuildSettings",
    "InterruptedSession",
    "LedgerEntry",
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
