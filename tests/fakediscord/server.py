"""A loopback fake of Discord's REST API and CDN that records every request and answers like Discord does."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from tests.fakediscord import payloads
from tests.fakediscord.openapi import OpenApiValidator

API_PREFIX = "/api/v10"
EPHEMERAL = 1 << 6
LOADING = 1 << 7
Payload = dict[str, Any]
Handler = Callable[["RecordedRequest", re.Match[str]], Awaitable[web.Response]]


@dataclass(frozen=True)
class UploadedFile:
    """One file part of a multipart upload."""

    field: str
    filename: str
    content_type: str
    data: bytes


@dataclass
class RecordedRequest:
    """One request the bot made: what, where, with which body and files, and when it arrived."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any
    files: list[UploadedFile]
    received_at: float
    status: int = 0

    @property
    def route(self) -> str:
        """`METHOD /path` for readable assertions."""
        return f"{self.method} {self.path}"


@dataclass
class FakeMessage:
    """A message as the fake stores it; `payload()` is what Discord returns for it."""

    id: int
    channel_id: int
    author: Payload
    content: str = ""
    embeds: list[Payload] = field(default_factory=list)
    components: list[Payload] = field(default_factory=list)
    attachments: list[Payload] = field(default_factory=list)
    flags: int = 0
    interaction_token: str | None = None
    edits: int = 0
    deleted: bool = False

    def payload(self) -> Payload:
        """The message object."""
        return {
            "id": str(self.id),
            "channel_id": str(self.channel_id),
            "type": 0,
            "author": self.author,
            "content": self.content,
            "timestamp": payloads.iso_now(),
            "edited_timestamp": payloads.iso_now() if self.edits else None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": self.attachments,
            "embeds": self.embeds,
            "components": self.components,
            "pinned": False,
            "flags": self.flags,
        }

    @property
    def ephemeral(self) -> bool:
        """Whether only the invoking member sees it."""
        return bool(self.flags & EPHEMERAL)

    @property
    def text(self) -> str:
        """Content plus embed titles/descriptions/fields, for simple assertions."""
        parts = [self.content]
        for embed in self.embeds:
            parts += [embed.get("title", ""), embed.get("description", "")]
            parts += [f"{f.get('name', '')} {f.get('value', '')}" for f in embed.get("fields", [])]
            parts.append(embed.get("footer", {}).get("text", ""))
        return "\n".join(p for p in parts if p)

    def custom_ids(self) -> list[str]:
        """Custom ids of every component on the message."""
        return [
            c["custom_id"] for row in self.components for c in row.get("components", []) if "custom_id" in c
        ]


@dataclass
class InteractionRecord:
    """What the fake knows about one interaction token."""

    interaction_id: int
    token: str
    channel_id: int
    responded: bool = False
    response_type: int | None = None
    original_message_id: int | None = None
    expired: bool = False
    modal: Payload | None = None
    component_message_id: int | None = None


# Discord's messages for the error codes tests inject most (any code may be given with its own message).
ERROR_MESSAGES = {
    0: "General error",
    10003: "Unknown Channel",
    10008: "Unknown Message",
    10015: "Unknown Webhook",
    10062: "Unknown interaction",
    40005: "Request entity too large",
    50001: "Missing Access",
    50007: "Cannot send messages to this user",
    50013: "Missing Permissions",
    50027: "Invalid Webhook Token",
}
# What Discord's edge answers with when the API behind it fails: not JSON, not in the OpenAPI description.
_EDGE_PAGES = {
    502: ("text/html", "<html><head><title>502 Bad Gateway</title></head><body>cloudflare</body></html>"),
    503: ("text/plain", "upstream connect error or disconnect/reset before headers. reset reason: overflow"),
    504: (
        "text/html",
        "<html><head><title>504 Gateway Time-out</title></head><body>cloudflare</body></html>",
    ),
}


@dataclass
class Fault:
    """One injected failure: which requests it refuses, how, how many more times, and whom it refused."""

    method: str
    pattern: re.Pattern[str]
    status: int
    code: int
    message: str | None
    times: int | None
    retry_after: float
    when: Callable[[RecordedRequest], bool] | None
    hits: list[RecordedRequest] = field(default_factory=list)

    def matches(self, recorded: RecordedRequest) -> bool:
        """Whether this fault refuses `recorded` (and has refusals left)."""
        return (
            (self.times is None or self.times > 0)
            and self.method in ("*", recorded.method)
            and bool(self.pattern.search(recorded.path))
            and (self.when is None or self.when(recorded))
        )

    def hit(self, recorded: RecordedRequest) -> None:
        """Count one refusal."""
        self.hits.append(recorded)
        if self.times is not None:
            self.times -= 1

    def lift(self) -> None:
        """Stop failing: the route works again."""
        self.times = 0

    def response(self) -> web.Response:
        """The answer Discord gives for this failure."""
        if self.status == 429:
            body = {
                "message": self.message or "You are being rate limited.",
                "code": self.code,
                "retry_after": self.retry_after,
                "global": False,
            }
            response = _json(body, status=429)
            response.headers.update(
                {
                    "Retry-After": str(max(1, round(self.retry_after))),
                    "X-RateLimit-Limit": "5",
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset-After": str(self.retry_after),
                    "X-RateLimit-Bucket": "fake-bucket",
                    "X-RateLimit-Scope": "user",
                    # Discord's own 429s come through its proxy; clients treat a 429 without `Via` as a
                    # Cloudflare ban and do not retry.
                    "Via": "1.1 google",
                }
            )
            return response
        if self.status in _EDGE_PAGES:
            content_type, text = _EDGE_PAGES[self.status]
            return web.Response(text=text, status=self.status, content_type=content_type)
        if self.status >= 500:
            return _error(self.status, 0, self.message or f"{self.status}: Internal Server Error")
        return _error(self.status, self.code, self.message or ERROR_MESSAGES.get(self.code, "General error"))


class FakeDiscord:
    """Discord's REST API on 127.0.0.1: answers the bot's routes, records everything, validates bodies."""

    def __init__(
        self, *, application_id: int | None = None, owner: Payload | None = None, validate: bool = True
    ) -> None:
        self.application_id = application_id or payloads.snowflake()
        # Set to make every other bot token fail like a revoked one (401 on GET /users/@me).
        self.accepted_token: str | None = None
        self.bot_user = payloads.user(self.application_id, "tryon-bot", bot=True)
        self.owner = owner or payloads.user(name="app-owner")
        self.requests: list[RecordedRequest] = []
        self.schema_errors: list[str] = []
        self.unhandled: list[RecordedRequest] = []
        self.messages: dict[int, FakeMessage] = {}
        self.interactions: dict[str, InteractionRecord] = {}
        # The first callback request per interaction token (for cheap waits on acknowledgements).
        self.callbacks: dict[str, RecordedRequest] = {}
        self.synced_commands: dict[int | None, list[Payload]] = {}
        self.channels: set[int] = set()
        # Direct messages: the DM channel opened per user, and users who do not accept DMs from the bot.
        self.dm_channels: dict[int, int] = {}
        self.closed_dms: set[int] = set()
        self._cdn: dict[str, tuple[bytes, str]] = {}
        # Injected failures (`fail`, `rate_limit`), checked in order before any route runs.
        self.faults: list[Fault] = []
        self.rate_limited: list[RecordedRequest] = []
        self._changed = asyncio.Condition()
        # Benchmarks switch validation off: it is the harness's work, not the bot's.
        self._validator = OpenApiValidator.load() if validate else None
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        # The gateway: guilds announced after READY, the IDENTIFY received, the connected socket.
        self.gateway_guilds: list[Payload] = []
        self.identify: Payload | None = None
        self._gateway: web.WebSocketResponse | None = None
        self._sequence = 0
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = [
            ("GET", re.compile(r"^/gateway(/bot)?$"), self._get_gateway),
            ("GET", re.compile(r"^/users/@me$"), self._get_me),
            ("GET", re.compile(r"^/oauth2/applications/@me$"), self._get_application),
            ("GET", re.compile(r"^/applications/@me$"), self._get_application),
            ("PUT", re.compile(r"^/applications/(\d+)/commands$"), self._put_commands),
            ("PUT", re.compile(r"^/applications/(\d+)/guilds/(\d+)/commands$"), self._put_commands),
            ("GET", re.compile(r"^/applications/(\d+)/commands$"), self._get_commands),
            ("POST", re.compile(r"^/interactions/(\d+)/([^/]+)/callback$"), self._interaction_callback),
            ("POST", re.compile(r"^/webhooks/(\d+)/([^/]+)$"), self._followup),
            (
                "GET",
                re.compile(r"^/webhooks/(\d+)/([^/]+)/messages/(@original|\d+)$"),
                self._get_webhook_message,
            ),
            (
                "PATCH",
                re.compile(r"^/webhooks/(\d+)/([^/]+)/messages/(@original|\d+)$"),
                self._edit_webhook_message,
            ),
            (
                "DELETE",
                re.compile(r"^/webhooks/(\d+)/([^/]+)/messages/(@original|\d+)$"),
                self._delete_webhook_message,
            ),
            ("POST", re.compile(r"^/channels/(\d+)/messages$"), self._create_channel_message),
            ("POST", re.compile(r"^/users/@me/channels$"), self._open_dm),
            ("PATCH", re.compile(r"^/channels/(\d+)/messages/(\d+)$"), self._edit_channel_message),
            ("GET", re.compile(r"^/channels/(\d+)/messages/(\d+)$"), self._get_channel_message),
            ("DELETE", re.compile(r"^/channels/(\d+)/messages/(\d+)$"), self._delete_channel_message),
        ]

    # lifecycle

    async def start(self) -> None:
        """Listen on a free loopback port."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/cdn/{name}", self._serve_cdn)
        app.router.add_get("/gateway-ws", self._gateway_socket)
        app.router.add_route("*", API_PREFIX + "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def api_base(self) -> str:
        """The value for `discord.http.Route.BASE`."""
        return self.base_url + API_PREFIX

    # test-facing helpers

    def add_attachment(
        self,
        filename: str,
        data: bytes,
        content_type: str,
        *,
        width: int | None = None,
        height: int | None = None,
    ) -> Payload:
        """Serve `data` from the fake CDN and return the attachment object pointing at it."""
        name = f"{payloads.snowflake()}-{filename}"
        self._cdn[name] = (data, content_type)
        url = f"{self.base_url}/cdn/{name}"
        return payloads.attachment(url, filename, len(data), content_type, width=width, height=height)

    def add_channel(self, channel_id: int) -> None:
        """Make a channel known (messages to unknown channels get Discord's 404 Unknown Channel)."""
        self.channels.add(channel_id)

    def rate_limit(self, method: str, pattern: str, *, times: int = 1, retry_after: float = 0.05) -> Fault:
        """Answer the next `times` matching requests with Discord's 429 (the client must wait and retry)."""
        return self.fail(method, pattern, status=429, times=times, retry_after=retry_after)

    def fail(
        self,
        method: str,
        pattern: str,
        *,
        status: int,
        code: int = 0,
        message: str | None = None,
        times: int | None = 1,
        retry_after: float = 1.0,
        when: Callable[[RecordedRequest], bool] | None = None,
    ) -> Fault:
        """Refuse matching requests the way Discord does, instead of carrying them out.

        `method` is an HTTP method or "*"; `pattern` a regex searched in the API path; `when` narrows it
        further (e.g. `lambda r: bool(r.files)` for uploads only). The next `times` matches fail (None: until
        `fault.lift()`). 429s carry Retry-After and the rate-limit headers, 4xx Discord's JSON error (`code`,
        `message`), 500 a JSON error, 502/504 Cloudflare's HTML page and 503 its proxy's plain text.
        """
        fault = Fault(method, re.compile(pattern), status, code, message, times, retry_after, when)
        self.faults.append(fault)
        return fault

    def _fault_for(self, recorded: RecordedRequest) -> web.Response | None:
        for fault in self.faults:
            if fault.matches(recorded):
                fault.hit(recorded)
                if fault.status == 429:
                    self.rate_limited.append(recorded)
                return fault.response()
        return None

    def register_interaction(self, payload: Payload) -> None:
        """Remember an interaction the test is about to deliver, so its token is valid."""
        message = payload.get("message")
        self.interactions[payload["token"]] = InteractionRecord(
            int(payload["id"]),
            payload["token"],
            int(payload["channel"]["id"]),
            component_message_id=int(message["id"]) if message else None,
        )
        self.channels.add(int(payload["channel"]["id"]))

    def expire_token(self, token: str) -> None:
        """Make an interaction token behave like one older than 15 minutes (401 Invalid Webhook Token)."""
        self.interactions[token].expired = True

    def delete_message(self, message_id: int) -> None:
        """Delete a message as a moderator would (later edits of it get 404 Unknown Message)."""
        self.messages[message_id].deleted = True

    def original_message(self, token: str) -> FakeMessage | None:
        """The interaction's original response message, if any."""
        record = self.interactions.get(token)
        if record is None or record.original_message_id is None:
            return None
        return self.messages[record.original_message_id]

    def messages_for(self, token: str) -> list[FakeMessage]:
        """Every message created through this interaction token (original first, then followups)."""
        return [m for m in self.messages.values() if m.interaction_token == token and not m.deleted]

    def channel_messages(self, channel_id: int) -> list[FakeMessage]:
        """Every live message in a channel, oldest first."""
        return [m for m in self.messages.values() if m.channel_id == channel_id and not m.deleted]

    def requests_to(self, method: str, pattern: str) -> list[RecordedRequest]:
        """Recorded requests with this method whose path matches the regex `pattern`."""
        regex = re.compile(pattern)
        return [r for r in self.requests if r.method == method and regex.search(r.path)]

    async def wait_for(self, predicate: Callable[[], Any], within: float = 10.0) -> Any:
        """Wait until `predicate()` is truthy (re-checked after every request) and return its value."""
        async with asyncio.timeout(within), self._changed:
            while not (value := predicate()):
                await self._changed.wait()
            return value

    async def wait_for_request(
        self, method: str, pattern: str, *, count: int = 1, within: float = 10.0
    ) -> RecordedRequest:
        """Wait until at least `count` requests match and return the `count`-th."""
        matches: list[RecordedRequest] = await self.wait_for(
            lambda: (found := self.requests_to(method, pattern)) and len(found) >= count and found, within
        )
        return matches[count - 1]

    # gateway (for running the whole bot, `bot.start()` included, e.g. `python -m bot run` in a subprocess)

    @property
    def gateway_url(self) -> str:
        """The fake gateway's websocket URL."""
        return self.base_url.replace("http://", "ws://") + "/gateway-ws"

    async def _get_gateway(self, recorded: RecordedRequest, match: re.Match[str]) -> web.Response:
        limit = {"total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1}
        return _json({"url": self.gateway_url, "shards": 1, "session_start_limit": limit})

    async def _gateway_socket(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self._gateway = socket
        await socket.send_json({"op": 10, "d": {"heartbeat_interval": 41250}, "s": None, "t": None})
        async for message in socket:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            frame = json.loads(message.data)
            if frame["op"] == 1:  # heartbeat
                await socket.send_json({"op": 11, "d": None, "s": None, "t": None})
            elif frame["op"] == 2:  # identify
                self.identify = frame["d"]
                await self._ready()
        self._gateway = None
        return socket

    async def _ready(self) -> None:
        await self.gateway_dispatch(
            "READY",
            {
                "v": 10,
                "user": self.bot_user,
                "guilds": [{"id": g["id"], "unavailable": True} for g in self.gateway_guilds],
                "session_id": "fake-session",
                "resume_gateway_url": self.gateway_url,
                "application": {"id": str(self.application_id), "flags": 0},
                "private_channels": [],
                "relationships": [],
            },
        )
        for guild in self.gateway_guilds:
            await self.gateway_dispatch("GUILD_CREATE", guild)

    async def gateway_dispatch(self, event: str, data: Payload) -> None:
        """Send one dispatch (op 0) over the connected gateway socket."""
        if self._gateway is None:
            raise RuntimeError("no gateway connection")
        self._sequence += 1
        await self._gateway.send_json({"op": 0, "t": event, "s": self._sequence, "d": data})
        async with self._changed:
            self._changed.notify_all()

    # request plumbing

    async def _record(self, request: web.Request, path: str) -> RecordedRequest:
        body: Any = None
        files: list[UploadedFile] = []
        if request.content_type.startswith("multipart/"):
            reader = await request.multipart()
            async for part in reader:
                if not isinstance(part, aiohttp.BodyPartReader):
                    continue
                data = await part.read()
                if part.name == "payload_json":
                    body = json.loads(data)
                else:
                    files.append(
                        UploadedFile(
                            part.name or "",
                            part.filename or "",
                            part.headers.get("Content-Type", ""),
                            bytes(data),
                        )
                    )
        elif request.can_read_body:
            raw = await request.read()
            body = json.loads(raw) if raw else None
        return RecordedRequest(
            method=request.method,
            path=path,
            query=dict(request.query),
            headers=dict(request.headers),
            json=body,
            files=files,
            received_at=time.perf_counter(),
        )

    async def _dispatch(self, request: web.Request) -> web.Response:
        path = "/" + request.match_info["tail"]
        recorded = await self._record(request, path)
        self.requests.append(recorded)
        if self._validator is not None:
            self.schema_errors += self._validator.validate(
                recorded.method, path, recorded.json, recorded.query
            )
        response = self._fault_for(recorded) or await self._route(recorded)
        recorded.status = response.status
        if self._validator is not None:
            self.schema_errors += self._validator.validate_response(
                recorded.method, path, response.status, _body_of(response)
            )
        async with self._changed:
            self._changed.notify_all()
        return response

    async def _route(self, recorded: RecordedRequest) -> web.Response:
        for method, pattern, handler in self._routes:
            match = pattern.match(recorded.path)
            if method == recorded.method and match:
                return await handler(recorded, match)
        self.unhandled.append(recorded)
        return _error(404, 0, "404: Not Found")

    async def _serve_cdn(self, request: web.Request) -> web.Response:
        item = self._cdn.get(request.match_info["name"])
        if item is None:
            return web.Response(status=404)
        data, content_type = item
        return web.Response(body=data, content_type=content_type)

    # routes

    async def _get_me(self, recorded: RecordedRequest, match: re.Match[str]) -> web.Response:
        authorization = recorded.headers.get("Authorization", "")
        if not authorization.startswith("Bot ") or (
            self.accepted_token is not None and authorization != f"Bot {self.accepted_token}"
        ):
            return _error(401, 0, "401: Unauthorized")
        return _json(dict(self.bot_user, mfa_enabled=False, locale="en-US"))

    async def _get_application(self, recorded: RecordedRequest, match: re.Match[str]) -> web.Response:
        return _json(
            {
                "id": str(self.application_id),
                "name": "tryon-bot",
                "icon": None,
                "description": "",
                "type": None,
                "flags_new": "0",
                "role_connections_verification_url": None,
                "approximate_guild_count": 1,
                "approximate_user_install_count": 0,
                "approximate_user_authorization_count": 0,
                "explicit_content_filter": 0,
                "eligible_oauth2_scopes": ["bot", "applications.commands"],
                "bot_public": True,
                "bot_require_code_grant": False,
                "owner": self.owner,
                "team": None,
                "verify_key": "0" * 64,
                "flags": 0,
                "summary": "",
                "bot": self.bot_user,
                "interactions_endpoint_url": None,
                "redirect_uris": [],
                "tags": [],
            }
        )

    async def _put_commands(self, recorded: RecordedRequest, match: re.Match[str]) -> web.Response:
        guild_id = int(match.group(2)) if match.lastindex and match.lastindex >= 2 else None
        commands = []
        for command in recorded.json or []:
            stored = dict(
                command, id=str(payloads.snowflake()), application_id=str(self.application_id), version="1"
            )
            stored.setdefault("description", "")
            stored.setdefault("type", 1)
            # Discord answers permissions as a string (or null), whatever form the request used.
            permissions = stored.get("default_member_permissions")
            stored["default_member_permissions"] = None if permissions is None else str(permissions)
            if stored.get("integration_types") is None:
                stored["integration_types"] = [0]  # guild install, the default of a bot application
            if guild_id is not None:
                stored["guild_id"] = str(guild_id)
            commands.append(stored)
        self.synced_commands[guild_id] = commands
        return _json(commands)

    async def _get_commands(self, recorded: RecordedRequest, match: re.Match[str]) -> web.Response:
        return _json(self.synced_commands.get(None, []))

    def _new_message(
        self, channel_id: int, body: Payload, files: list[UploadedFile], token: str | None
    ) -> FakeMessage:
        message = FakeMessage(
            id=payloads.snowflake(), channel_id=channel_id, author=self.bot_user, interaction_token=token
        )
        self._apply(message, body, files)
        self.messages[message.id] = message
        return message

    def _apply(self, message: FakeMessage, body: Payload, files: list[UploadedFile]) -> None:
        if "content" in body:
            message.content = body["content"] or ""
        if "embeds" in body:
            message.embeds = body["embeds"] or []
        if "components" in body:
            message.components = _numbered(body["components"] or [])
        if "flags" in body and body["flags"] is not None:
            message.flags = (message.flags & EPHEMERAL) | (body["flags"] & ~LOADING)
        if "attachments" in body or files:
            kept = [
                a
                for a in message.attachments
                if any(str(k.get("id")) == a["id"] for k in body.get("attachments", []))
            ]
            for upload in files:
                attachment = self.add_attachment(
                    upload.filename, upload.data, upload.content_type or "application/octet-stream"
                )
                kept.append(attachment)
            message.attachments = kept

    def _interaction(self, token: str) -> InteractionRecord | None:
        record = self.interactions.get(token)
        if record is None or record.expired:
            return None
        return record

    async def _interaction_callback(self, recorded: RecordedRequest, match: re.Match[str]) -> web.Response:
        self.callbacks.setdefault(match.group(2), recorded)
        record = self._interaction(match.group(2))
        if record is None or record.interaction_id != int(match.group(1)):
            return _error(404, 10062, "Unknown interaction")
        if record.responded:
            return _error(400, 40060, "Interaction has already been acknowledged.")
        body = recorded.json or {}
        kind = body.get("type")
        data = body.get("data") or {}
        record.responded, record.response_type = True, kind
        # Discord documents a `resource` only for a message sent (4) or updated (7); defers and modals
        # are described by the `interaction` part alone.
        resource: Payload = {"type": kind}
        interaction: Payload = {"id": str(record.interaction_id), "type": 2}
        if kind in (4, 5):
            flags = data.get("flags", 0) or 0
            message = self._new_message(record.channel_id, data, recorded.files, record.token)
            message.flags = (flags & EPHEMERAL) | (LOADING if kind == 5 else 0)
            record.original_message_id = message.id
            if kind == 4:
                resource["message"] = message.payload()
            interaction.update(
                response_message_id=str(message.id),
                response_message_loading=kind == 5,
                response_message_ephemeral=bool(flags & EPHEMERAL),
            )
        elif kind in (6, 7):
            # A component's interaction responds on the message it sits on: that is its original.
            record.original_message_id = record.component_message_id
            target = self.messages.get(record.component_message_id or 0)
            if target is not None and kind == 7:
                self._apply(target, data, recorded.files)
                target.edits += 1
                resource["message"] = target.payload()
        elif kind == 9:
            record.modal = data
        answer: Payload = {"interaction": interaction}
        if "message" in resource:
            answer["resource"] = resource
        return _json(answer)

    async def _followup(self, recorded: RecordedRequest, match: re.Match[str]) -> web.Response:
        record = self._interaction(match.group(2))
        if record is None or int(match.group(1)) != self.application_id:
            return _error(401, 50027, "Invalid Webhook Token")
        if not record.responded:
            return _error(400, 10015, "Unknown Webhook")
        original = self.messages.get(record.original_message_id or 0)
        if original is not None and original.flags & LOADING:
            # Discord: the first followup after a deferred response replaces the "thinking" message and keeps
            # its visibility (an ephemeral flag on the followup cannot change it).
            original.flags &= ~LOADING
            body = {k: v for k, v in (recorded.json or {}).items() if k != "flags"}
            self._apply(original, body, recorded.files)
            original.edits += 1
            return _json(original.payload())
        message = self._new_message(record.channel_id, recorded.json or {}, recorded.files, record.token)
        message.flags = (recorded.json or {}).get("flags", 0) or 0
        return _json(message.payload())

    def _webhook_message(self, match: re.Match[str]) -> FakeMessage | web.Response:
        record = self._interaction(match.group(2))
        if record is None or int(match.group(1)) != self.application_id:
            return _error(401, 50027, "Invalid Webhook Token")
        ident = match.group(3)
        message_id = record.original_message_id if ident == "@original" else int(ident)
        message = self.messages.get(message_id or 0)
        own = message is not None and (
            message.interaction_token == record.token or message.id == record.original_message_id
        )
        if message is None or message.deleted or not own:
            return _error(404, 10008, "Unknown Message")
        return message

    async def _get_webhook_message(self, recorded: RecordedRequest, match: re.Match[str]) -> web.Response:
        found = self._webhook_message(match)
        return found if isinstance(found, web.Response) else _json(found.payload())

    async def _edit_webhook_message(self, recorded: RecordedRequest, match: re.Match[str]) -> web.Response:
        found = self._webhook_message(match)
        if isinstance(found, web.Response):
            return found
        found.flags &= ~LOADING
        self._apply(found, recorded.json or {}, recorded.files)
        found.edits += 1
        return _json(found.payload())

    async def _delete_webhook_message(self, recorded: RecordedRequest, match: re.Match[str]) -> web.Response:
        found = self._webhook_message(match)
        if isinstance(found, web.Response):
            return found
        found.deleted = True
        return web.Response(status=204)

    async def _open_dm(self, recorded: RecordedRequest, match: re.Match[str]) -> web.Response:
        recipient_id = int((recorded.json or {})["recipient_id"])
        channel_id = self.dm_channels.setdefault(recipient_id, payloads.snowflake())
        self.channels.add(channel_id)
        recipient = payloads.user(recipient_id, f"user-{recipient_id}")
        return _json(payloads.dm_channel(recipient, channel_id))

    async def _create_channel_message(self, recorded: RecordedRequest, match: re.Match[str]) -> web.Response:
        channel_id = int(match.group(1))
        if channel_id not in self.channels:
            return _error(404, 10003, "Unknown Channel")
        if any(self.dm_channels.get(user_id) == channel_id for user_id in self.closed_dms):
            return _error(403, 50007, "Cannot send messages to this user")
        message = self._new_message(channel_id, recorded.json or {}, recorded.files, None)
        return _json(message.payload())

    def _channel_message(self, match: re.Match[str]) -> FakeMessage | web.Response:
        message = self.messages.get(int(match.group(2)))
        if (
            message is None
            or message.deleted
            or message.channel_id != int(match.group(1))
            or message.ephemeral
        ):
            return _error(404, 10008, "Unknown Message")
        return message

    async def _edit_channel_message(self, recorded: RecordedRequest, match: re.Match[str]) -> web.Response:
        found = self._channel_message(match)
        if isinstance(found, web.Response):
            return found
        self._apply(found, recorded.json or {}, recorded.files)
        found.edits += 1
        return _json(found.payload())

    async def _get_channel_message(self, recorded: RecordedRequest, match: re.Match[str]) -> web.Response:
        found = self._channel_message(match)
        return found if isinstance(found, web.Response) else _json(found.payload())

    async def _delete_channel_message(self, recorded: RecordedRequest, match: re.Match[str]) -> web.Response:
        found = self._channel_message(match)
        if isinstance(found, web.Response):
            return found
        found.deleted = True
        return web.Response(status=204)


def _json(data: Any, status: int = 200) -> web.Response:
    # discord.py only parses a body whose Content-Type is exactly `application/json`, as Discord sends it.
    return web.Response(
        body=json.dumps(data).encode(), status=status, headers={"Content-Type": "application/json"}
    )


def _numbered(components: list[Payload]) -> list[Payload]:
    """Components as Discord stores them: every one (rows and their children) gets a numeric `id`."""
    counter = iter(range(1, 1000))

    def number(component: Payload) -> Payload:
        numbered = dict(component)
        numbered.setdefault("id", next(counter))
        if "components" in numbered:
            numbered["components"] = [number(child) for child in numbered["components"]]
        return numbered

    return [number(component) for component in components]


def _body_of(response: web.Response) -> Any:
    """The JSON a response carries (None without a body), as the client will parse it."""
    if (
        not isinstance(response.body, bytes)
        or not response.body
        or response.content_type != "application/json"
    ):
        return None
    return json.loads(response.body)


def _error(status: int, code: int, message: str) -> web.Response:
    return _json({"message": message, "code": code}, status=status)
