"""Logging set-up that keeps secrets out of every record: known keys and the token parts of URLs are masked.

discord.py logs each webhook request's URL at DEBUG, and an interaction's webhook URL carries its token
(good for 15 minutes of posting as the bot in that channel). The bot token and the Odyssey API key are never
formatted into a message by our code, but a library or an exception might, so their values are masked too.
Masking happens in a filter on the handler, which sees every record that reaches it, whichever logger
emitted it (filters on loggers do not apply to records propagated from their children).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable

MASK = "***"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_TOKEN_PATTERNS = (
    # Interaction and webhook tokens in Discord URLs: /webhooks/<id>/<token>, /interactions/<id>/<token>/...
    re.compile(r"(/(?:webhooks|interactions)/\d+/)[^/\s?'\"]+"),
    # Credentials in query strings: signaling tokens, signed-URL signatures (Discord's CDN: hm), keys.
    re.compile(r"([?&](?:token|sig|signature|hm|access_token|session_token|api_key|key)=)[^&\s'\"]+", re.I),
    # Authorization headers and bearer tokens, however they are quoted.
    re.compile(r"((?:Bearer|Bot)\s+)[A-Za-z0-9._~+/=-]{16,}"),
    # JSON bodies of the token exchange.
    re.compile(r"""(["'](?:api_key|access_token|session_token|token)["']\s*:\s*["'])[^"']+"""),
    # JSON Web Tokens wherever they appear (Odyssey session tokens are JWTs).
    re.compile(r"()eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
)

_installed: list[logging.Handler] = []


class SecretRedactor(logging.Filter):
    """Masks secret values and token-bearing URL parts in a record's message, traceback and stack."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        super().__init__()
        self._secrets = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        """`text` with every known secret and every token pattern masked."""
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        for pattern in _TOKEN_PATTERNS:
            text = pattern.sub(lambda match: match.group(1) + MASK, text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place (formatted once, here); never drop it."""
        message = record.getMessage()
        clean = self.redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


def configure_logging(
    level: str, secrets: Iterable[str | None] = (), *, handler: logging.Handler | None = None
) -> logging.Handler:
    """Log to stderr (or `handler`) at `level`, masking `secrets` and tokens; returns the handler.

    Calling it again replaces the handler an earlier call installed instead of adding a second one.
    """
    handler = handler or logging.StreamHandler(sys.stderr)
    if handler.formatter is None:
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(SecretRedactor(secrets))
    root = logging.getLogger()
    while _installed:
        root.removeHandler(_installed.pop())
    root.addHandler(handler)
    _installed.append(handler)
    root.setLevel(level)
    return handler
