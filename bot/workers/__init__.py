"""Live sessions on worker processes, reached over NATS (nats-py): the wire format, the worker, the bot's
side, presence and the local NATS server of `--local-workers`. Without `[workers] nats_url` or
`--local-workers` nothing here runs and sessions stay in the bot's own process (docs/workers.md).
"""
