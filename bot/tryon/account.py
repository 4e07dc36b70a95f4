"""Problems of the bot's Odyssey account itself, told once to those who can fix them, not per member.

Every session write lands in the bot's own ledger (`StoreLedger`), wherever the session ran, so the watch
sees each failure there: the month's streaming time used up (a refused start, or a stream the platform
ended for it), a suspended account, or the API key refused again and again. Each problem is told once per
`every_seconds` to each server's moderators (an audit entry, for the mod-log) and once to the bot's owner;
the claims are kept in SQLite, so a restart does not repeat them.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import enum
import logging
import time
from collections.abc import Awaitable, Callable

from bot.store import NO_GUILD, AuditEntry, Store

log = logging.getLogger(__name__)

# Audit action of an account problem, in the guild where a session met it.
ACCOUNT_PROBLEM = "odyssey_account_problem"
# Told again at most this often (per server's mod-log, and to the owner): a day has room for four reminders
# of a problem nobody fixed, and a problem fixed and back within the hour is not news.
ALERT_EVERY_SECONDS = 6 * 3600.0
# The key refused this many times (distinct sessions) within the window: not a blip, an account problem.
AUTH_FAILURES = 3
AUTH_WINDOW_SECONDS = 600.0


class AccountProblem(enum.StrEnum):
    """What is wrong with the account."""

    MONTHLY_LIMIT = "monthly_limit"
    SUSPENDED = "suspended"
    AUTH_FAILING = "auth_failing"

    @property
    def sentence(self) -> str:
        """What it means and what to do, for moderators and the owner."""
        return _SENTENCES[self]


_SENTENCES = {
    AccountProblem.MONTHLY_LIMIT: (
        "the Odyssey account has used all of its streaming time for this month: every try-on fails until "
        "it resets or the bot's owner raises the plan"
    ),
    AccountProblem.SUSPENDED: (
        "the Odyssey account is suspended: every try-on fails until the bot's owner resolves it with Odyssey"
    ),
    AccountProblem.AUTH_FAILING: (
        f"Odyssey refused the bot's API key {AUTH_FAILURES} times within {AUTH_WINDOW_SECONDS / 60:g} "
        "minutes: the bot's owner should check ODYSSEY_API_KEY"
    ),
}
# Failure reasons (a session's error reason, or why the platform ended a stream) -> the problem they show.
_REASONS = {
    "MONTHLY_LIMIT_REACHED": AccountProblem.MONTHLY_LIMIT,
    "quota_exceeded": AccountProblem.MONTHLY_LIMIT,
    "ACCOUNT_SUSPENDED": AccountProblem.SUSPENDED,
    "OdysseyAuthError": AccountProblem.AUTH_FAILING,
}


@dataclasses.dataclass(frozen=True)
class AccountAlert:
    """One problem to tell: the server's record of it (None: its moderators heard recently), the owner?"""

    problem: AccountProblem
    guild_id: int
    audit_entry: AuditEntry | None
    to_owner: bool


AlertListener = Callable[[AccountAlert], Awaitable[None]]


class AccountWatch:
    """Turns session failures into account alerts; listeners (the front end) deliver them."""

    def __init__(
        self,
        store: Store,
        *,
        every_seconds: float = ALERT_EVERY_SECONDS,
        auth_failures: int = AUTH_FAILURES,
        auth_window_seconds: float = AUTH_WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._every = every_seconds
        self._auth_failures = auth_failures
        self._auth_window = auth_window_seconds
        self._clock = clock
        self._listeners: list[AlertListener] = []
        self._recent_auth: collections.OrderedDict[str, float] = collections.OrderedDict()
        self._deliveries: set[asyncio.Task[None]] = set()

    def listen(self, listener: AlertListener) -> None:
        """Call `listener` with every alert (in the background: a slow delivery holds nothing up)."""
        self._listeners.append(listener)

    async def observe(self, session_id: str, reason: str | None) -> None:
        """A session failed, or the platform ended its stream, for `reason`; never raises."""
        problem = _REASONS.get(reason or "")
        if problem is None:
            return
        try:
            if problem is AccountProblem.AUTH_FAILING and not self._auth_keeps_failing(session_id):
                return
            alert = await self._claim(problem, session_id)
        except Exception:  # telling moderators is a courtesy; the session's own write must go on
            log.exception("could not record an account problem (%s) of session %s", problem, session_id)
            return
        if alert is not None:
            for listener in self._listeners:
                task = asyncio.create_task(self._deliver(listener, alert), name=f"account-alert-{problem}")
                self._deliveries.add(task)
                task.add_done_callback(self._deliveries.discard)

    def _auth_keeps_failing(self, session_id: str) -> bool:
        now = self._clock()
        self._recent_auth[session_id] = now  # a session's failure written twice counts once
        while self._recent_auth and next(iter(self._recent_auth.values())) < now - self._auth_window:
            self._recent_auth.popitem(last=False)
        return len(self._recent_auth) >= self._auth_failures

    async def _claim(self, problem: AccountProblem, session_id: str) -> AccountAlert | None:
        """Claim the guild's and the owner's notice; None when both heard of it within the window."""
        record = await self._store.sessions.get(session_id)
        guild_id = record.guild_id if record is not None else NO_GUILD
        kind = f"account:{problem}"
        notices = self._store.notices
        to_guild = guild_id != NO_GUILD and await notices.claim(guild_id, kind, every_seconds=self._every)
        to_owner = await notices.claim(NO_GUILD, kind, every_seconds=self._every)
        if not (to_guild or to_owner):
            return None
        entry = None
        if to_guild:
            entry = await self._store.audit.record(
                guild_id, ACCOUNT_PROBLEM, actor_id=None, details={"problem": problem.sentence}
            )
        log.warning("Odyssey account problem: %s", problem.sentence)
        return AccountAlert(problem, guild_id, entry, to_owner)

    async def _deliver(self, listener: AlertListener, alert: AccountAlert) -> None:
        try:
            await listener(alert)
        except Exception:
            log.exception("could not deliver the account alert %s", alert.problem)

    async def aclose(self) -> None:
        """Wait a little for deliveries under way, then cancel the rest."""
        if self._deliveries:
            await asyncio.wait(set(self._deliveries), timeout=5.0)
        for task in list(self._deliveries):
            task.cancel()
        await asyncio.gather(*self._deliveries, return_exceptions=True)
