"""The bot's configuration in one typed place: `config.toml` (optional) overlaid by environment variables.

Secrets (the Discord token, the Odyssey API key, NATS credentials) come only from the environment or the
untracked `config.toml`; `config.example.toml` documents every setting with its default. Anything invalid
raises `ConfigError` naming the key, and start-up stops with that message.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bot.store.records import QuotaLimits
from bot.tryon.settings import EngineSettings
from bot.web.settings import WebSettings
from bot.workers.settings import WorkerSettings

DEFAULT_CONFIG_PATH = Path("config.toml")


class ConfigError(Exception):
    """The configuration is invalid; the message names the key and what is wrong."""


@dataclasses.dataclass(frozen=True)
class DiscordSettings:
    """How the bot talks to Discord."""

    token: str | None = dataclasses.field(default=None, repr=False)
    command_prefix: str = "!"
    # Users besides the application's owner(s) who may run owner-only commands such as `!sync`.
    owner_ids: tuple[int, ...] = ()
    # Discord's REST API and gateway; change them only for proxies (e.g. nirn-proxy) or a test double.
    api_base_url: str = "https://discord.com/api/v10"
    gateway_url: str = "wss://gateway.discord.gg/"
    # Where members' attachments may be downloaded from (scheme://host[:port]); the origin of api_base_url is
    # trusted too. Any other URL in an attachment, or a redirect elsewhere, is refused without a request.
    attachment_origins: tuple[str, ...] = ("https://cdn.discordapp.com", "https://media.discordapp.net")
    # Status messages are edited at most this often per session (Discord rate-limits message edits).
    status_edit_seconds: float = 2.0
    # Sessions listed per page of `/tryon history`.
    history_page_size: int = 5

    def __post_init__(self) -> None:
        if not self.command_prefix.strip():
            raise ValueError("command_prefix must not be blank")
        if not self.api_base_url.startswith(("http://", "https://")):
            raise ValueError("api_base_url must be an http(s) URL")
        if not self.gateway_url.startswith(("ws://", "wss://")):
            raise ValueError("gateway_url must be a ws(s) URL")
        if not all(origin.startswith(("http://", "https://")) for origin in self.attachment_origins):
            raise ValueError("attachment_origins must be http(s) URLs")
        if self.status_edit_seconds <= 0:
            raise ValueError("status_edit_seconds must be positive")
        if not 1 <= self.history_page_size <= 10:
            raise ValueError("history_page_size must be between 1 and 10")


@dataclasses.dataclass(frozen=True)
class OdysseySettings:
    """Which Odyssey platform to use: the real one with an API key, otherwise the embedded emulator."""

    api_key: str | None = dataclasses.field(default=None, repr=False)
    api_url: str = "https://api.odyssey.ml"
    # Where the embedded emulator listens when there is no API key (port 0: any free port).
    emulator_host: str = "127.0.0.1"
    emulator_port: int = 0

    def __post_init__(self) -> None:
        if not self.api_url.startswith(("http://", "https://")):
            raise ValueError("api_url must be an http(s) URL")
        if not 0 <= self.emulator_port <= 65535:
            raise ValueError("emulator_port must be between 0 and 65535")


@dataclasses.dataclass(frozen=True)
class StoreSettings:
    """Where the SQLite database lives."""

    database: Path = Path("data/tryon.db")


@dataclasses.dataclass(frozen=True)
class QuotaSettings:
    """The bot-wide default allowance per member; guilds, roles and members may override it."""

    daily_seconds: float | None = 600.0
    monthly_seconds: float | None = 3600.0
    daily_sessions: int | None = None
    monthly_sessions: int | None = None

    def __post_init__(self) -> None:
        for name, value in dataclasses.asdict(self).items():
            if value is not None and value < 0:
                raise ValueError(f"{name} must not be negative")

    @property
    def limits(self) -> QuotaLimits:
        """As the store's limits record."""
        return QuotaLimits(**dataclasses.asdict(self))


@dataclasses.dataclass(frozen=True)
class BotConfig:
    """Everything `python -m bot run` needs."""

    discord: DiscordSettings = dataclasses.field(default_factory=DiscordSettings)
    odyssey: OdysseySettings = dataclasses.field(default_factory=OdysseySettings)
    store: StoreSettings = dataclasses.field(default_factory=StoreSettings)
    engine: EngineSettings = dataclasses.field(default_factory=EngineSettings)
    quota: QuotaSettings = dataclasses.field(default_factory=QuotaSettings)
    workers: WorkerSettings = dataclasses.field(default_factory=WorkerSettings)
    web: WebSettings = dataclasses.field(default_factory=WebSettings)
    log_level: str = "INFO"

    @property
    def uses_emulator(self) -> bool:
        """True when no API key is configured and the embedded emulator stands in for Odyssey."""
        return not self.odyssey.api_key

    @property
    def serves_viewer(self) -> bool:
        """True when the Watch live viewer runs: `[web]` configured, or by default beside the emulator."""
        return self.web.serves(embedded_emulator=self.uses_emulator)


# Environment variables and the `section.key` each one sets.
ENVIRONMENT = {
    "DISCORD_TOKEN": "discord.token",
    "ODYSSEY_API_KEY": "odyssey.api_key",
    "ODYSSEY_API_URL": "odyssey.api_url",
    "TRYON_DATABASE": "store.database",
    "TRYON_LOG_LEVEL": "log_level",
    "TRYON_NATS_URL": "workers.nats_url",
    "NATS_TOKEN": "workers.token",
    "NATS_USER": "workers.user",
    "NATS_PASSWORD": "workers.password",
}
_SECTIONS: dict[str, type[Any]] = {
    "discord": DiscordSettings,
    "odyssey": OdysseySettings,
    "store": StoreSettings,
    "engine": EngineSettings,
    "quota": QuotaSettings,
    "workers": WorkerSettings,
    "web": WebSettings,
}
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def load_config(path: Path | None = None, environ: Mapping[str, str] | None = None) -> BotConfig:
    """Read `path` (default `config.toml` if it exists), overlay the environment, validate everything."""
    environ = os.environ if environ is None else environ
    raw = _read_file(path)
    overridden = []
    for variable, dotted in ENVIRONMENT.items():
        value = environ.get(variable)
        if value:
            section, _, key = dotted.rpartition(".")
            target = raw.setdefault(section, {}) if section else raw
            if not isinstance(target, dict):
                raise ConfigError(f"{section}: must be a table")
            target[key] = value
            overridden.append((variable, section, key))
    try:
        return _build(raw)
    except ConfigError as error:
        # The value came from the environment, not the file: say where to look.
        message = str(error)
        for variable, section, key in overridden:
            if message.startswith((f"{section}.{key}:", f"{section}: {key} ", f"{key}:")):
                raise ConfigError(f"{message} (set by the environment variable {variable})") from None
        raise


def _read_file(path: Path | None) -> dict[str, Any]:
    if path is None:
        if not DEFAULT_CONFIG_PATH.exists():
            return {}
        path = DEFAULT_CONFIG_PATH
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise ConfigError(f"config file {path} does not exist") from error
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from error


def _build(raw: dict[str, Any]) -> BotConfig:
    sections: dict[str, Any] = {}
    for name, value in raw.items():
        if name == "log_level":
            level = str(value).upper()
            if level not in _LOG_LEVELS:
                raise ConfigError(f"log_level: must be one of {', '.join(_LOG_LEVELS)}, got {value!r}")
            sections["log_level"] = level
        elif name in _SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(f"{name}: must be a table ([{name}])")
            sections[name] = _section(name, _SECTIONS[name], value)
        else:
            raise ConfigError(f"{name}: unknown setting (known: {', '.join([*_SECTIONS, 'log_level'])})")
    return BotConfig(**sections)


def _section(name: str, cls: type[Any], values: dict[str, Any]) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {field.name for field in dataclasses.fields(cls)}
    converted: dict[str, Any] = {}
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(f"{name}.{key}: unknown setting")
        converted[key] = _convert(f"{name}.{key}", hints[key], value)
    try:
        return cls(**converted)
    except ValueError as error:
        raise ConfigError(f"{name}: {error}") from error


def _convert(key: str, hint: Any, value: Any) -> Any:
    """Coerce a TOML or environment value to the field's type, or raise ConfigError naming `key`."""
    args = typing.get_args(hint)
    if type(None) in args:  # Optional[X]: "unlimited" (TOML has no null) or empty means unset
        if value is None or value == "" or value == "unlimited":
            return None
        hint = next(arg for arg in args if arg is not type(None))
    try:
        if hint is bool:
            return _to_bool(value)
        if hint is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if hint is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if hint is str:
            if not isinstance(value, str) or not value.strip():
                raise ValueError
            return value.strip()
        if hint is Path:
            if not isinstance(value, str) or not value:
                raise ValueError
            return Path(value)
        if typing.get_origin(hint) is tuple:
            if not isinstance(value, list):
                raise ValueError
            return tuple(_convert(key, args[0], item) for item in value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key}: expected {_describe(hint)}, got {value!r}") from None
    raise ConfigError(f"{key}: unsupported setting type {hint!r}")


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        return value.lower() in ("1", "true", "yes", "on")
    raise ValueError


def _describe(hint: Any) -> str:
    names = {bool: "true or false", int: "a whole number", float: "a number", str: "a non-empty string"}
    if hint in names:
        return names[hint]
    if hint is Path:
        return "a file path"
    if typing.get_origin(hint) is tuple:
        return f"a list of {_describe(typing.get_args(hint)[0])}s"
    return str(hint)
