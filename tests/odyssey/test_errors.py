"""Usage-error bodies (§5.1), stream-error reasons (§10.4) and signaling error messages."""

from __future__ import annotations

from typing import Any

import pytest

from bot.odyssey import (
    AccountSuspendedError,
    ConcurrentLimitReachedError,
    MonthlyLimitReachedError,
    OdysseyStreamError,
    OdysseyUsageError,
    RateLimitError,
    StreamDurationExceededError,
)
from bot.odyssey.errors import signaling_error_message, stream_error_to_exception, usage_error_from_body


def body(code: str, key: str = "error", details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"detail": {key: code, "message": f"{code} happened", "action": "wait", "details": details or {}}}


@pytest.mark.parametrize(
    ("code", "cls", "attribute", "value"),
    [
        ("MONTHLY_LIMIT_REACHED", MonthlyLimitReachedError, "used_hours", 10),
        ("CONCURRENT_LIMIT_REACHED", ConcurrentLimitReachedError, "active_count", 5),
        ("STREAM_DURATION_EXCEEDED", StreamDurationExceededError, "max_duration_seconds", 150),
        ("ACCOUNT_SUSPENDED", AccountSuspendedError, "reason", "abuse"),
        ("RATE_LIMITED", RateLimitError, "retry_after_seconds", 3),
    ],
)
def test_each_usage_code_has_its_class(code: str, cls: type, attribute: str, value: Any) -> None:
    error = usage_error_from_body(body(code, details={attribute: value}))
    assert type(error) is cls
    assert isinstance(error, OdysseyUsageError)
    assert error.code == code and error.message == f"{code} happened" and error.action == "wait"
    assert getattr(error, attribute) == value


def test_legacy_code_key_and_unwrapped_body() -> None:
    error = usage_error_from_body(body("RATE_LIMITED", key="code")["detail"])
    assert isinstance(error, RateLimitError)


def test_unknown_code_is_a_plain_usage_error() -> None:
    error = usage_error_from_body(body("SOMETHING_NEW"))
    assert type(error) is OdysseyUsageError and error.code == "SOMETHING_NEW"
    assert usage_error_from_body(body(""))


@pytest.mark.parametrize(
    ("payload", "text"),
    [
        ({"detail": "Slow down"}, "Slow down"),
        ({"detail": {"message": "no action"}}, "Request limit exceeded"),
        (None, "Request limit exceeded"),
        ("not json", "Request limit exceeded"),
    ],
)
def test_non_matching_bodies(payload: Any, text: str) -> None:
    error = usage_error_from_body(payload)
    assert type(error) is OdysseyUsageError and str(error) == text


@pytest.mark.parametrize(
    ("reason", "cls", "code"),
    [
        ("quota_exceeded", MonthlyLimitReachedError, "MONTHLY_LIMIT_REACHED"),
        # One code per condition however it arrives (the official SDK uses "..._EXCEEDED" here, §21.20).
        ("concurrent_limit_exceeded", ConcurrentLimitReachedError, "CONCURRENT_LIMIT_REACHED"),
        ("session_timeout", StreamDurationExceededError, "STREAM_DURATION_EXCEEDED"),
    ],
)
def test_stream_error_usage_reasons(reason: str, cls: type, code: str) -> None:
    error = stream_error_to_exception(reason, "msg")
    assert type(error) is cls and error.code == code  # type: ignore[attr-defined]


def test_stream_error_other_reasons() -> None:
    assert str(stream_error_to_exception("lease_denied", "x")) == "Stream request denied - please try again"
    error = stream_error_to_exception("moderation_blocked", "nope")
    assert type(error) is OdysseyStreamError and str(error) == "moderation_blocked: nope"


def test_signaling_error_messages() -> None:
    assert "Streamer not available" in signaling_error_message("streamer_not_available")
    assert signaling_error_message("weird") == "Server error: weird"
