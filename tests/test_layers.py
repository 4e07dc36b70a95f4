"""The package map holds: imports point down, cogs only ask the engine, nothing reads outside the repo."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import ROOT

BELOW_THE_FRONT_END = (
    "bot/tryon",
    "bot/media",
    "bot/odyssey",
    "bot/store",
    "bot/emulator",
    "bot/workers",
    "bot/web",
)
# What the engine keeps to itself: cogs call `Engine`'s methods and read `SessionSummary` values.
ENGINE_INTERNALS = ("bot.tryon.session", "bot.tryon.manager", "bot.tryon.runner", "bot.tryon.gate")
ENGINE_PARTS = {"services", "manager"}


def modules(*folders: str) -> Iterator[tuple[Path, ast.Module]]:
    """Every Python module under the folders, parsed."""
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            yield path, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def imported(tree: ast.Module) -> Iterator[str]:
    """The names of the modules a module imports (anywhere in it, TYPE_CHECKING blocks included)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            yield node.module


def within(name: str, *packages: str) -> bool:
    return any(name == package or name.startswith(package + ".") for package in packages)


@pytest.mark.parametrize("folder", BELOW_THE_FRONT_END)
def test_nothing_below_the_front_end_imports_discord_or_the_cogs(folder: str) -> None:
    wrong = [
        f"{path.relative_to(ROOT)}: {name}"
        for path, tree in modules(folder)
        for name in imported(tree)
        if within(name, "discord", "cogs", "bot.app")
    ]
    assert wrong == []


def test_the_engine_the_client_and_the_store_never_import_the_emulator() -> None:
    wrong = [
        f"{path.relative_to(ROOT)}: {name}"
        for path, tree in modules("bot/tryon", "bot/media", "bot/odyssey", "bot/store")
        for name in imported(tree)
        if within(name, "bot.emulator")
    ]
    assert wrong == []


def test_the_viewer_and_the_engine_meet_only_through_the_watch_interface() -> None:
    # The engine feeds watch links through its own `WatchBoard` protocol (bot/tryon/watch.py); only
    # bot/app.py hands it the web server's registry. The web server knows nothing of sessions' insides.
    engine_side = [
        f"{path.relative_to(ROOT)}: {name}"
        for path, tree in modules("bot/tryon", "bot/media", "bot/odyssey", "bot/store", "bot/workers", "cogs")
        for name in imported(tree)
        if within(name, "bot.web")
    ]
    web_side = [
        f"{path.relative_to(ROOT)}: {name}"
        for path, tree in modules("bot/web")
        for name in imported(tree)
        if within(name, "bot.tryon", "bot.workers", "bot.store", "bot.odyssey", "bot.emulator")
    ]
    assert engine_side == [] and web_side == []


def test_the_cogs_only_ask_the_engine() -> None:
    reaching = [
        f"{path.relative_to(ROOT)}:{node.lineno}: .{node.attr}"
        for path, tree in modules("cogs")
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr in ENGINE_PARTS
    ]
    importing = [
        f"{path.relative_to(ROOT)}: {name}"
        for path, tree in modules("cogs")
        for name in imported(tree)
        if within(name, *ENGINE_INTERNALS)
    ]
    assert reaching == [] and importing == []


def test_nothing_reads_outside_the_repository() -> None:
    # The team's reading folder sits beside the repository; a clone alone does not have it.
    outside = re.compile(r"\.\./shared|[\"']shared[\"']\s*[/)]|parents\[\d+\]\s*/\s*[\"']shared")
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for folder in ("bot", "cogs", "tests", "bench")
        for path in sorted((ROOT / folder).rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if outside.search(line) and path != Path(__file__)
    ]
    for name in ("Makefile", ".ci/run"):
        text = (ROOT / name).read_text(encoding="utf-8")
        found += [f"{name}:{n}" for n, line in enumerate(text.splitlines(), 1) if outside.search(line)]
    assert found == []
