"""`[web]`: where the bot's small web server (the Watch live viewer) listens and how its links look."""

from __future__ import annotations

import dataclasses

from bot.loopback_ice import is_loopback_url


@dataclasses.dataclass(frozen=True)
class WebSettings:
    """Off unless `port` is set (0: any free port); with the embedded emulator it is on by default."""

    # Listen here; anything but a loopback address needs `public_url` (the address members can reach).
    host: str = "127.0.0.1"
    port: int | None = None
    # The base of the links posted to Discord, e.g. "https://tryon.example.com" (behind a TLS proxy).
    # Unset: http://host:port, which only works for people on the bot's own machine when host is loopback.
    public_url: str | None = None
    # False turns the viewer off even with the embedded emulator; None: on when `port` is set or the
    # embedded emulator runs.
    enabled: bool | None = None
    # Pages open on one watch link at once (each holds a connection); more are told there are too many.
    max_viewers_per_link: int = 100

    def __post_init__(self) -> None:
        if not self.host.strip():
            raise ValueError("host must not be blank")
        if self.port is not None and not 0 <= self.port <= 65535:
            raise ValueError("port must be between 0 and 65535")
        if self.public_url is not None and not self.public_url.startswith(("http://", "https://")):
            raise ValueError("public_url must be an http(s) URL")
        if self.public_url is None and not is_loopback_url(f"//{self.host}"):
            raise ValueError("public_url is needed when host is not a loopback address")
        if self.max_viewers_per_link < 1:
            raise ValueError("max_viewers_per_link must be at least 1")

    def serves(self, *, embedded_emulator: bool) -> bool:
        """Whether the viewer runs: configured (a port), or on by default beside the embedded emulator."""
        if self.enabled is not None:
            return self.enabled
        return self.port is not None or embedded_emulator
