"""One verifying TLS context per process for every HTTPS client the bot opens.

Building a context reads the whole CA bundle: 30-50 ms of CPU, and `httpx.AsyncClient()` builds a fresh one
each time it is created. The bot creates clients on the event loop (one per Odyssey connection, one per photo
download), so each creation stalled every session for that long. `warm_up()` builds the contexts once in a
worker thread at start-up; afterwards a client costs a fraction of a millisecond.
"""

from __future__ import annotations

import asyncio
import functools
import ssl

import httpx


@functools.cache
def tls_context(trust_env: bool = True) -> ssl.SSLContext:
    """httpx's own default context (certifi, or $SSL_CERT_FILE/$SSL_CERT_DIR when `trust_env`), built once."""
    return httpx.create_ssl_context(trust_env=trust_env)


async def warm_up() -> None:
    """Build both contexts off the event loop, so no client ever builds one on it."""
    await asyncio.to_thread(tls_context, True)
    await asyncio.to_thread(tls_context, False)
