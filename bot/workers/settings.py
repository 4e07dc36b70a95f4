"""How the bot and its workers reach NATS: the server, credentials, subjects, capacity, presence."""

from __future__ import annotations

import dataclasses
import re

_PREFIX = re.compile(r"[A-Za-z0-9_-]{1,32}")


@dataclasses.dataclass(frozen=True)
class WorkerSettings:
    """`[workers]`: no `nats_url` keeps every session in the bot's own process (the default)."""

    nats_url: str | None = None
    # Credentials come from the environment (NATS_TOKEN, or NATS_USER and NATS_PASSWORD), never the logs.
    token: str | None = dataclasses.field(default=None, repr=False)
    user: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)
    # Subjects and buckets of one deployment start with this, so several can share a NATS cluster.
    subject_prefix: str = "tryon"
    # Sessions one worker runs at once (`python -m bot worker --capacity N` overrides it).
    capacity: int = 4
    # A worker's presence expires this long after its last heartbeat (it heartbeats 3 times as often):
    # a killed worker is noticed within this, plus the front end's next look.
    presence_ttl_seconds: float = 3.0
    connect_timeout_seconds: float = 5.0
    # `python -m bot run --local-workers N`: start a NATS server and N workers as the bot's children.
    local_workers: int = 0

    def __post_init__(self) -> None:
        if self.nats_url is not None and not self.nats_url.startswith(
            ("nats://", "tls://", "ws://", "wss://")
        ):
            raise ValueError("nats_url must be a nats://, tls://, ws:// or wss:// URL")
        if not _PREFIX.fullmatch(self.subject_prefix):
            raise ValueError("subject_prefix must be 1-32 letters, digits, '-' or '_'")
        if not 0 <= self.local_workers <= 64:
            raise ValueError("local_workers must be between 0 and 64")
        if self.capacity < 1:
            raise ValueError("capacity must be at least 1")
        if not 1.0 <= self.presence_ttl_seconds <= 60.0:
            raise ValueError("presence_ttl_seconds must be between 1 and 60")
        if self.connect_timeout_seconds <= 0:
            raise ValueError("connect_timeout_seconds must be positive")
        if self.token is not None and (self.user is not None or self.password is not None):
            raise ValueError("use a token or a user and password, not both")
        if (self.user is None) != (self.password is None):
            raise ValueError("user and password go together")

    @property
    def secrets(self) -> tuple[str | None, ...]:
        """What must never appear in a log line."""
        return (self.token, self.password)

    def subject(self, *parts: str) -> str:
        """A subject of this deployment, e.g. `tryon.worker.w1.start`."""
        return ".".join((self.subject_prefix, *parts))

    @property
    def presence_bucket(self) -> str:
        """The key-value bucket holding live workers."""
        return f"{self.subject_prefix}_workers"

    @property
    def claims_bucket(self) -> str:
        """The key-value bucket saying which worker owns each session (`bot/workers/claims.py`)."""
        return f"{self.subject_prefix}_sessions"
