"""The try-on engine: sessions, fair queue, quotas, moderation and media; no Discord imports."""
