"""Growing past one process: live sessions on worker processes, reached over NATS (nats-py).

So far: the bus connection and its settings (`bus.py`, `settings.py`) and worker presence with free
capacity in a key-value bucket whose entries expire when a worker stops heartbeating (`presence.py`),
and a local nats-server child process for `--local-workers` (`nats_server.py`).
Without `[workers] nats_url` nothing here runs and sessions stay in the bot's own process.
"""
