"""Configuration: defaults, file + environment overlay, and errors that name the key."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from bot.config import BotConfig, ConfigError, load_config
from bot.store.records import QuotaLimits
from tests.helpers import ROOT


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_file_or_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(environ={})
    assert config == BotConfig()
    assert config.uses_emulator
    assert config.discord.token is None


def test_file_then_environment_overlay(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        log_level = "debug"
        [discord]
        token = "from-file"
        owner_ids = [1, 2]
        status_edit_seconds = 1.5
        [engine]
        slots = 3
        idle_seconds = 30
        [store]
        database = "x/y.db"
        """,
    )
    config = load_config(path, {"DISCORD_TOKEN": "from-env", "ODYSSEY_API_KEY": "ody"})
    assert config.discord.token == "from-env"
    assert config.discord.owner_ids == (1, 2)
    assert config.discord.status_edit_seconds == 1.5
    assert config.engine.slots == 3 and config.engine.idle_seconds == 30.0
    assert config.store.database == Path("x/y.db")
    assert config.log_level == "DEBUG"
    assert config.odyssey.api_key == "ody" and not config.uses_emulator


def test_secrets_are_not_in_repr(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""), {"DISCORD_TOKEN": "sekrit", "ODYSSEY_API_KEY": "ody-sekrit"})
    assert "sekrit" not in repr(config)


@pytest.mark.parametrize(
    ("text", "environ", "names"),
    [
        ("[engine]\nslots = 'five'", {}, "engine.slots"),
        ("[engine]\nslots = 0", {}, "engine: slots must be at least 1"),
        ("[discord]\nprefix = '?'", {}, "discord.prefix: unknown setting"),
        ("[discord]\nowner_ids = 'me'", {}, "discord.owner_ids"),
        ("[discord]\nhistory_page_size = 50", {}, "history_page_size must be between 1 and 10"),
        ("[odyssey]\napi_url = 'ftp://x'", {}, "odyssey: api_url"),
        ("[odyssey]\nemulator_port = true", {}, "odyssey.emulator_port"),
        ("colour = 'red'", {}, "colour: unknown setting"),
        ("discord = 3", {}, "discord: must be a table"),
        ("log_level = 'LOUD'", {}, "log_level"),
        ("[engine", {}, "not valid TOML"),
        ("", {"TRYON_LOG_LEVEL": "chatty"}, "log_level"),
        ("", {"ODYSSEY_API_URL": "nope"}, "odyssey: api_url"),
    ],
)
def test_invalid_settings_name_the_key(
    tmp_path: Path, text: str, environ: dict[str, str], names: str
) -> None:
    with pytest.raises(ConfigError, match=names):
        load_config(write(tmp_path, text), environ)


def test_missing_explicit_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "absent.toml", {})


EXAMPLE = ROOT / "config.example.toml"


def test_example_documents_every_setting_with_its_default() -> None:
    assert load_config(EXAMPLE, {}) == BotConfig()
    text = EXAMPLE.read_text(encoding="utf-8")
    config = BotConfig()
    for section in ("discord", "odyssey", "store", "quota", "engine", "workers", "web"):
        for field in dataclasses.fields(getattr(config, section)):
            assert f"\n{field.name} = " in text or f"\n# {field.name} = " in text, f"{section}.{field.name}"


def test_quota_defaults_and_unlimited(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "[quota]\ndaily_seconds = 'unlimited'\nmonthly_sessions = 4"), {})
    assert config.quota.limits == QuotaLimits(monthly_seconds=3600.0, monthly_sessions=4)
    with pytest.raises(ConfigError, match="quota: daily_seconds must not be negative"):
        load_config(write(tmp_path, "[quota]\ndaily_seconds = -1"), {})


@pytest.mark.parametrize(
    ("environ", "names"),
    [
        ({"ODYSSEY_API_URL": "nope"}, "odyssey: api_url .* ODYSSEY_API_URL"),
        ({"TRYON_LOG_LEVEL": "chatty"}, "log_level: .* TRYON_LOG_LEVEL"),
    ],
)
def test_invalid_environment_values_name_the_variable(
    tmp_path: Path, environ: dict[str, str], names: str
) -> None:
    with pytest.raises(ConfigError, match=names):
        load_config(write(tmp_path, ""), environ)


def test_workers_take_the_bus_and_its_credentials_from_the_environment(tmp_path: Path) -> None:
    environ = {"TRYON_NATS_URL": "nats://10.0.0.5:4222", "NATS_USER": "bot", "NATS_PASSWORD": "hunter2"}
    workers = load_config(write(tmp_path, "[workers]\ncapacity = 6"), environ).workers
    assert (workers.nats_url, workers.user, workers.password, workers.capacity) == (
        "nats://10.0.0.5:4222",
        "bot",
        "hunter2",
        6,
    )
    assert "hunter2" not in repr(workers) and "hunter2" in workers.secrets
    assert workers.subject("worker", "w1", "start") == "tryon.worker.w1.start"
    with pytest.raises(ConfigError, match=r"workers: nats_url .* TRYON_NATS_URL"):
        load_config(write(tmp_path, ""), {"TRYON_NATS_URL": "http://nope"})
    with pytest.raises(ConfigError, match="a token or a user and password"):
        load_config(write(tmp_path, ""), {"NATS_TOKEN": "t", "NATS_USER": "u", "NATS_PASSWORD": "p"})
    with pytest.raises(ConfigError, match="subject_prefix"):
        load_config(write(tmp_path, '[workers]\nsubject_prefix = "a.b"'), {})


def test_the_viewer_is_off_unless_configured_and_on_beside_the_embedded_emulator(tmp_path: Path) -> None:
    keyed = {"ODYSSEY_API_KEY": "ody_real"}
    assert not load_config(write(tmp_path, ""), keyed).serves_viewer  # the real platform: off
    assert load_config(write(tmp_path, ""), {}).serves_viewer  # the embedded emulator: on, loopback
    configured = load_config(write(tmp_path, "[web]\nport = 8080"), keyed)
    assert configured.serves_viewer and configured.web.port == 8080
    off = load_config(write(tmp_path, "[web]\nenabled = false"), {})
    assert not off.serves_viewer
    public = load_config(
        write(tmp_path, '[web]\nhost = "0.0.0.0"\nport = 80\npublic_url = "https://tryon.example.com"'), keyed
    )
    assert public.web.public_url == "https://tryon.example.com"
    with pytest.raises(ConfigError, match="public_url is needed when host is not a loopback address"):
        load_config(write(tmp_path, '[web]\nhost = "0.0.0.0"\nport = 80'), keyed)
    with pytest.raises(ConfigError, match=r"web\.port: expected a whole number"):
        load_config(write(tmp_path, '[web]\nport = "eighty"'), keyed)
    with pytest.raises(ConfigError, match="web: public_url must be an http"):
        load_config(write(tmp_path, '[web]\npublic_url = "ftp://x"'), keyed)
