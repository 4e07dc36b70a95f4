"""Small pure parts of the session: platform usage errors in plain words."""

from __future__ import annotations

import pytest

from bot.odyssey import (
    AccountSuspendedError,
    ConcurrentLimitReachedError,
    MonthlyLimitReachedError,
    OdysseyUsageError,
    RateLimitError,
)
from bot.tryon.recordings import usage_error_message


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (
            MonthlyLimitReachedError("x", code="MONTHLY_LIMIT_REACHED", details={"reset_date": "2026-12-01"}),
            "resets on 2026-12-01",
        ),
        (ConcurrentLimitReachedError("x", code="CONCURRENT_LIMIT_REACHED"), "as many try-ons as its plan"),
        (AccountSuspendedError("x", code="ACCOUNT_SUSPENDED"), "suspended"),
        (RateLimitError("x", code="RATE_LIMITED", details={"retry_after_seconds": 30}), "about 30 seconds"),
        (OdysseyUsageError("x", code="SOMETHING_NEW"), "try again later"),
    ],
)
def test_usage_errors_in_plain_words(error: OdysseyUsageError, words: str) -> None:
    message = usage_error_message(error)
    assert words in message
    assert error.code not in message  # no codes or jargon for members
