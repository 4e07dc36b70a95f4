"""Shared test configuration: WebRTC stays on loopback for the whole suite."""

from __future__ import annotations

from bot.loopback_ice import restrict_ice_to_loopback

restrict_ice_to_loopback()


# ---- emulator fixtures (owner: emulator engineer) -------------------------------------------------------

from collections.abc import AsyncIterator, Awaitable, Callable  # noqa: E402

import pytest  # noqa: E402

from bot.emulator import Emulator, EmulatorConfig  # noqa: E402

EmulatorFactory = Callable[..., Awaitable[Emulator]]


@pytest.fixture
async def emulator_factory() -> AsyncIterator[EmulatorFactory]:
    """Start emulators with small, fast settings plus any `EmulatorConfig` overrides; all stop at teardown."""
    started: list[Emulator] = []

    async def start(**overrides: object) -> Emulator:
        emulator = Emulator(EmulatorConfig.small(**overrides))
        await emulator.start()
        started.append(emulator)
        return emulator

    try:
        yield start
    finally:
        # Every emulator stops even if another one's stop fails; the first failure is then raised.
        results = [await _stop_quietly(emulator) for emulator in reversed(started)]
        failure = next((error for error in results if error is not None), None)
        if failure is not None:
            raise failure


async def _stop_quietly(emulator: Emulator) -> BaseException | None:
    try:
        await emulator.stop()
    except Exception as error:
        return error
    return None


@pytest.fixture
async def emulator(emulator_factory: EmulatorFactory) -> Emulator:
    """A running emulator (quarter-size frames, 8 fps, 1 s loops) accepting `DEV_API_KEY`."""
    return await emulator_factory()
