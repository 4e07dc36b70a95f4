"""HS256 JSON Web Tokens and HMAC-signed, expiring file URLs (standard library only)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import time
from typing import Any
from urllib.parse import urlencode


class TokenError(Exception):
    """A token that is malformed, wrongly signed or expired."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode_jwt(claims: dict[str, Any], secret: bytes) -> str:
    """A compact HS256 JWT carrying the claims."""
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = _b64url(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}".encode("ascii")
    signature = _b64url(hmac.new(secret, signing_input, hashlib.sha256).digest())
    return f"{header}.{payload}.{signature}"


def decode_jwt(token: str, secret: bytes, now: float | None = None) -> dict[str, Any]:
    """The claims of a JWT whose HS256 signature and `exp` check out; raises TokenError otherwise."""
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenError("not a JWT")
    signing_input = f"{parts[0]}.{parts[1]}".encode("ascii")
    expected = hmac.new(secret, signing_input, hashlib.sha256).digest()
    try:
        header = json.loads(_b64url_decode(parts[0]))
        claims = json.loads(_b64url_decode(parts[1]))
        signature = _b64url_decode(parts[2])
    except ValueError as error:
        raise TokenError("malformed token") from error
    if not isinstance(header, dict) or header.get("alg") != "HS256":
        raise TokenError("unsupported algorithm")
    if not hmac.compare_digest(signature, expected):
        raise TokenError("bad signature")
    if not isinstance(claims, dict):
        raise TokenError("claims are not an object")
    expiry = claims.get("exp")
    if not isinstance(expiry, int | float) or expiry <= (time.time() if now is None else now):
        raise TokenError("token expired")
    return claims


def sign_path(path: str, secret: bytes, ttl_seconds: float, now: float | None = None) -> str:
    """`path?expires=…&sig=…`: the path stays valid until the expiry time."""
    expires = math.ceil((time.time() if now is None else now) + ttl_seconds)
    return f"{path}?{urlencode({'expires': expires, 'sig': _path_signature(path, expires, secret)})}"


def verify_signed_path(path: str, expires: str, signature: str, secret: bytes) -> bool:
    """True when the signature matches the path and expiry and the expiry is still ahead."""
    try:
        expiry = int(expires)
    except ValueError:
        return False
    if expiry < time.time():
        return False
    return hmac.compare_digest(signature, _path_signature(path, expiry, secret))


def _path_signature(path: str, expires: int, secret: bytes) -> str:
    return hmac.new(secret, f"{path}\n{expires}".encode(), hashlib.sha256).hexdigest()
