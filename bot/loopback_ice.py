"""Keep WebRTC on 127.0.0.1 when both peers are on this machine (the emulator, tests, benchmarks).

aioice leaves 127.0.0.1 out when it gathers host candidates, so two local peers would talk over the
machine's other interface. Against the real platform none of this applies: ICE runs as usual.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

import aioice.ice

LOOPBACK_ADDRESS = "127.0.0.1"
_original_get_host_addresses = aioice.ice.get_host_addresses


def _loopback_only(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    return [LOOPBACK_ADDRESS] if use_ipv4 else []


def restrict_ice_to_loopback() -> None:
    """Make every peer connection created from now on in this process gather only 127.0.0.1."""
    aioice.ice.get_host_addresses = _loopback_only


def restore_default_ice() -> None:
    """Undo `restrict_ice_to_loopback` (for tests that check both behaviours)."""
    aioice.ice.get_host_addresses = _original_get_host_addresses


def is_loopback_url(url: str) -> bool:
    """True when the URL's host is this machine (localhost or a loopback address)."""
    host = urlsplit(url if "//" in url else f"//{url}").hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_loopback_candidate_address(address: str) -> bool:
    """True for a remote ICE candidate address the emulator may use (browsers also send mDNS names)."""
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False
