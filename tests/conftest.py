"""Shared test configuration: WebRTC stays on loopback for the whole suite."""

from __future__ import annotations

from bot.loopback_ice import restrict_ice_to_loopback

restrict_ice_to_loopback()
