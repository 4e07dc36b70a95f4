"""Exceptions raised by the Odyssey client, and the mappings from server error payloads to them."""

from __future__ import annotations

from typing import Any


class OdysseyError(Exception):
    """Base class of every error this client raises."""


class OdysseyAuthError(OdysseyError):
    """The API key was refused (unknown, revoked, malformed or not allowed)."""


class OdysseyConnectionError(OdysseyError):
    """The connection could not be made, or was lost."""


class TooManySpectatorsError(OdysseyConnectionError):
    """A broadcast already has as many spectators as the platform allows (WHEP 503); try again later."""


class OdysseyStreamError(OdysseyError):
    """A stream could not be started, updated or ended; `reason` is the streamer's code when it sent one."""

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason


class OdysseyUsageError(OdysseyError):
    """The account hit a usage limit (HTTP 429 on a session request, or a stream error)."""

    def __init__(
        self,
        message: str,
        *,
        code: str = "UNKNOWN",
        action: str | None = None,
        action_url: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.action = action
        self.action_url = action_url
        self.details: dict[str, Any] = dict(details or {})


class MonthlyLimitReachedError(OdysseyUsageError):
    """The plan's monthly streaming hours are used up."""

    @property
    def used_hours(self) -> Any:
        return self.details.get("used_hours")

    @property
    def limit_hours(self) -> Any:
        return self.details.get("limit_hours")

    @property
    def reset_date(self) -> Any:
        return self.details.get("reset_date")


class ConcurrentLimitReachedError(OdysseyUsageError):
    """The plan's number of concurrent sessions is reached."""

    @property
    def active_count(self) -> Any:
        return self.details.get("active_count")

    @property
    def limit(self) -> Any:
        return self.details.get("limit")


class StreamDurationExceededError(OdysseyUsageError):
    """A stream ran into the platform's per-stream time cap."""

    @property
    def max_duration_seconds(self) -> Any:
        return self.details.get("max_duration_seconds")


class AccountSuspendedError(OdysseyUsageError):
    """The account is suspended."""

    @property
    def reason(self) -> Any:
        return self.details.get("reason")


class RateLimitError(OdysseyUsageError):
    """Too many requests; retry after `retry_after_seconds`."""

    @property
    def retry_after_seconds(self) -> Any:
        return self.details.get("retry_after_seconds")


USAGE_ERROR_CLASSES: dict[str, type[OdysseyUsageError]] = {
    "MONTHLY_LIMIT_REACHED": MonthlyLimitReachedError,
    "CONCURRENT_LIMIT_REACHED": ConcurrentLimitReachedError,
    "STREAM_DURATION_EXCEEDED": StreamDurationExceededError,
    "ACCOUNT_SUSPENDED": AccountSuspendedError,
    "RATE_LIMITED": RateLimitError,
}


def usage_error_from_body(body: Any) -> OdysseyError:
    """The exception for a 429 body (spec §5.1): a typed usage error, or a plain one when it doesn't match."""
    payload = body.get("detail", body) if isinstance(body, dict) else body
    if isinstance(payload, dict) and _is_usage_payload(payload):
        code = str(payload.get("error") or payload.get("code") or "") or "UNKNOWN"
        details = payload.get("details")
        action_url = payload.get("action_url")
        return USAGE_ERROR_CLASSES.get(code, OdysseyUsageError)(
            str(payload["message"]),
            code=code,
            action=str(payload["action"]),
            action_url=action_url if isinstance(action_url, str) else None,
            details=details if isinstance(details, dict) else None,
        )
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, str) and detail:
        return OdysseyUsageError(detail, code="UNKNOWN")
    return OdysseyUsageError("Request limit exceeded", code="UNKNOWN")


def _is_usage_payload(payload: dict[str, Any]) -> bool:
    return "message" in payload and "action" in payload and ("error" in payload or "code" in payload)


# Reasons after which the stream is over (the server stops it), as opposed to a refused prompt.
STREAM_ENDING_REASONS = frozenset(
    {"session_timeout", "quota_exceeded", "concurrent_limit_exceeded", "lease_denied"}
)


def stream_error_to_exception(reason: str, message: str) -> OdysseyError:
    """The exception for an `interactive_stream_error` (spec §10.4)."""
    if reason == "quota_exceeded":
        return MonthlyLimitReachedError(
            message or "Monthly usage limit reached", code="MONTHLY_LIMIT_REACHED"
        )
    if reason == "concurrent_limit_exceeded":
        return ConcurrentLimitReachedError(
            message or "Concurrent session limit reached", code="CONCURRENT_LIMIT_REACHED"
        )
    if reason == "lease_denied":
        return OdysseyStreamError("Stream request denied - please try again", reason=reason)
    if reason == "session_timeout":
        return StreamDurationExceededError(
            message or "Stream ended: maximum stream duration reached", code="STREAM_DURATION_EXCEEDED"
        )
    return OdysseyStreamError(f"{reason}: {message}" if message else reason, reason=reason)


SIGNALING_ERROR_MESSAGES = {
    "streamer_not_available": "Streamer not available. Please ensure the streamer is running.",
    "streamer_disconnected": "Streamer has disconnected.",
    "duration_limit_reached": "Connection exceeded maximum allowed duration.",
    "unknown": "An unknown error occurred.",
}


def signaling_error_message(reason: str) -> str:
    """The human sentence for a signaling `error` message's reason (spec §8.4)."""
    return SIGNALING_ERROR_MESSAGES.get(reason, f"Server error: {reason}")
