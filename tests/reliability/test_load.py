"""Load: a burst of 200 slash commands while every slot streams, members who click twice, a busy database.

The real bot runs against the fake Discord (schema-checked) and the emulator (real WebRTC on loopback), with
a real SQLite file. Engine slots are 4 (1 where a test says so); in the burst 4 sessions stream, so every
`/tryon start` of it queues. Figures for docs/reliability.md are printed with `pytest -s` (lines `[load]`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import random
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bench.bench_ack import Latencies
from bot.app import TryOnBot
from bot.config import BotConfig
from bot.emulator import Emulator
from bot.tryon.models import SessionState
from bot.tryon.session import TryOnSession
from tests.fakediscord import BotDriver, Delivered, FakeDiscord, FakeMessage
from tests.fakediscord import payloads as p
from tests.fakediscord.server import LOADING
from tests.helpers import (
    fast_engine,
    make_bot_config,
    photo_option,
    session_id_of,
    start_streaming,
    status_message,
    until,
    user_id,
    wait_status,
)
from tests.reliability.conftest import assert_nothing_running, assert_settled_once, loop_lag_probe

pytestmark = pytest.mark.timeout(120)

SLOTS = 4
QUEUE_CAP = 10  # the engine's default queue_cap_per_guild
DISCORD_ACK_SECONDS = 3.0
BLOCKED_WORD = "fur"
ON_ITS_WAY = re.compile(r"Your try-on `([A-Za-z0-9_-]+)` is on its way")
POSITION = re.compile(r"Waiting in line: position \*\*(\d+)\*\*")
ALREADY = "already have a try-on running"
OUTFITS = ["red summer dress", "blue denim jacket", "green wool coat", "black tuxedo", "yellow raincoat"]


@pytest.fixture
def slots() -> int:
    """Engine slots (a test parametrizes `slots` to change it)."""
    return SLOTS


@pytest.fixture
def bot_config(tmp_path: Path, emulator: Emulator, slots: int) -> BotConfig:
    """Four slots by default, so four streaming sessions hold every one and each new start queues."""
    return make_bot_config(tmp_path, emulator.url, engine=fast_engine(slots=slots))


# ----- the fair order, written out independently of bot.tryon.queue ----------------------------------------


class ExpectedLine:
    """The spec of the waiting line: guilds take turns (the one just served goes last), FIFO inside one."""

    def __init__(self, rotation: Sequence[int], admitted: Iterable[tuple[str, int]]) -> None:
        self.lines: dict[int, list[str]] = {guild: [] for guild in rotation}
        for session_id, guild in admitted:
            self.lines[guild].append(session_id)

    def order(self) -> list[str]:
        """Every waiting session, first to be served first."""
        lines = [line for line in self.lines.values() if line]
        depth = max((len(line) for line in lines), default=0)
        return [line[turn] for turn in range(depth) for line in lines if turn < len(line)]

    def positions(self) -> dict[str, int]:
        """1-based position of each waiting session."""
        return {session_id: index for index, session_id in enumerate(self.order(), start=1)}

    def serve(self) -> str:
        """The next session to get a slot; its guild moves to the back of the rotation."""
        guild, line = next((g, line) for g, line in self.lines.items() if line)
        served = line.pop(0)
        del self.lines[guild]
        self.lines[guild] = line
        return served

    def cancel(self, session_id: str) -> None:
        """Leave the line (the guild keeps its turn unless its line empties)."""
        for guild, line in list(self.lines.items()):
            if session_id in line:
                line.remove(session_id)
                if not line:
                    del self.lines[guild]


# ----- helpers -------------------------------------------------------------------------------------------


@dataclass
class Member:
    """One member of one guild and where they act."""

    name: str
    guild: p.GuildWorld
    ctx: p.InteractionContext

    @property
    def user_id(self) -> int:
        return user_id(self.ctx)


@dataclass
class Sent:
    """One interaction of the burst: who sent what, and what the fake recorded for it."""

    member: Member
    command: str
    kind: str  # what the test expects of it: "start", "pdf", "blocked", "duplicate", "read", "steer"
    delivered: Delivered | None = None

    @property
    def token(self) -> str:
        assert self.delivered is not None
        return self.delivered.token

    @property
    def delivered_at(self) -> float:
        assert self.delivered is not None
        return self.delivered.delivered_at


def final_text(fake: FakeDiscord, token: str) -> str | None:
    """What the member finally reads for an interaction, once it is no longer "thinking" or checking."""
    callback = fake.callbacks.get(token)
    if callback is None:
        return None
    if callback.json["type"] == 4:
        return str(callback.json["data"]["content"])
    original = fake.original_message(token)
    if original is None or original.flags & LOADING or original.content == "Checking your photo…":
        return None
    return original.text or None


def shown_position(fake: FakeDiscord, token: str) -> int | None:
    """The queue position the member's status message shows, if it shows one."""
    status = status_message(fake, token)
    match = POSITION.search(status.text) if status is not None else None
    return int(match.group(1)) if match else None


async def positions_settle(
    fake: FakeDiscord, start_tokens: dict[str, str], expected: dict[str, int], within: float = 15.0
) -> None:
    """Wait until every queued member's status message shows the expected position; fail with the diff."""

    def shown() -> dict[str, int | None]:
        return {sid: shown_position(fake, start_tokens[sid]) for sid in expected}

    with contextlib.suppress(TimeoutError):
        await fake.wait_for(lambda: shown() == expected, within)
    assert shown() == expected


async def deliver_burst(driver: BotDriver, burst: Sequence[Sent], fake: FakeDiscord) -> None:
    """Deliver back to back, one gateway dispatch per loop iteration (as the gateway reader does)."""
    for index, sent in enumerate(burst):
        options: dict[str, Any] = {}
        if sent.kind in ("start", "duplicate"):
            options = {"photo": photo_option(fake), "outfit": OUTFITS[index % len(OUTFITS)]}
        elif sent.kind == "pdf":
            options = {"photo": photo_option(fake, b"%PDF-1.4", "application/pdf"), "outfit": "red coat"}
        elif sent.kind == "blocked":
            options = {"photo": photo_option(fake), "outfit": f"a {BLOCKED_WORD.upper()} coat"}
        elif sent.kind == "steer":
            options = {"prompt": OUTFITS[index % len(OUTFITS)]}
        sent.delivered = driver.command(sent.member.ctx, sent.command, **options)
        await asyncio.sleep(0)


async def start_streaming_all(driver: BotDriver, members: Sequence[Member]) -> dict[int, str]:
    """Start one session per member at once and wait until all stream; returns user id -> session id."""
    fake = driver.fake
    starts = [
        driver.command(m.ctx, "tryon start", photo=photo_option(fake), outfit=OUTFITS[i])
        for i, m in enumerate(members)
    ]
    statuses = [await wait_status(fake, s.token, "Streaming live") for s in starts]
    return {m.user_id: session_id_of(status) for m, status in zip(members, statuses, strict=True)}


def members_of(driver: BotDriver, world: p.GuildWorld, prefix: str, count: int) -> list[Member]:
    """`count` new members of `world`."""
    return [
        Member(f"{prefix}-{i}", world, driver.context(world, world.add_member(f"{prefix}-{i}")))
        for i in range(count)
    ]


# ----- (a) the burst -------------------------------------------------------------------------------------


async def test_burst_of_200_commands_while_every_slot_streams(
    driver: BotDriver, bot: TryOnBot, fake_discord: FakeDiscord
) -> None:
    fake, store, manager = fake_discord, bot.runtime.store, bot.runtime.engine.manager
    # One busy guild (whose members also hold every slot) and four quieter ones: 18 + 4 x 8 = 50 members.
    busy = p.guild_world("busy")
    quiet = [p.guild_world(f"quiet{i}") for i in range(4)]
    for world in (busy, *quiet):
        driver.add_guild(world)
        await store.guilds.add_blocked_word(world.guild_id, BLOCKED_WORD, moderator_id=None)
    streamers = members_of(driver, busy, "streamer", SLOTS)
    busy_starters = members_of(driver, busy, "busy", 14)
    quiet_members = [members_of(driver, world, f"q{i}", 8) for i, world in enumerate(quiet)]
    everyone = [*streamers, *busy_starters, *(m for ms in quiet_members for m in ms)]
    assert len(everyone) == 50

    streaming = await start_streaming_all(driver, streamers)

    burst = burst_mix(streamers, busy_starters, quiet_members)
    assert len(burst) == 200

    async with loop_lag_probe() as lag:
        await deliver_burst(driver, burst, fake)
        tokens = [sent.token for sent in burst]
        await fake.wait_for(lambda: all(t in fake.callbacks for t in tokens), 30)
    acks = Latencies([fake.callbacks[s.token].received_at - s.delivered_at for s in burst])
    report(
        f"acknowledged {len(acks.values)}/{len(burst)}: p50 {acks.p50 * 1000:.0f} ms, "
        f"p99 {acks.quantile(0.99) * 1000:.0f} ms, max {max(acks.values) * 1000:.0f} ms; "
        f"loop lag max {lag.worst_ms:.0f} ms"
    )
    slowest = sorted(burst, key=lambda s: fake.callbacks[s.token].received_at - s.delivered_at)[-5:]
    report(f"slowest: {[s.command for s in slowest]}")
    assert max(acks.values) < DISCORD_ACK_SECONDS

    # Every interaction gets a final answer in words, and the right one.
    await fake.wait_for(lambda: all(final_text(fake, t) for t in tokens), 40)
    admitted, start_tokens = admissions(fake, burst, busy)
    outcomes = collections.Counter(
        ON_ITS_WAY.sub("admitted", final_text(fake, s.token) or "")[:30]
        for s in burst
        if s.command == "tryon start"
    )
    report(f"start answers: {sorted(outcomes.items(), key=lambda kv: -kv[1])}")
    quiet_starters = [m for ms in quiet_members for m in ms[:6]]
    assert all(m.user_id in admitted for m in quiet_starters)
    assert sum(m.user_id in admitted for m in busy_starters) == QUEUE_CAP
    assert len(admitted) == len(quiet_starters) + QUEUE_CAP

    # No session lost: each admitted one waits, in the engine and in SQLite; the streamers still stream.
    queued_ids = set(admitted.values())
    engine_states = {s.id: s.state for s in manager.sessions()}
    assert engine_states == dict.fromkeys(queued_ids, SessionState.QUEUED) | dict.fromkeys(
        streaming.values(), SessionState.STREAMING
    )
    rows = await stored_rows(store.path)
    assert {sid: state for sid, _, state in rows} == dict.fromkeys(queued_ids, "queued") | dict.fromkeys(
        streaming.values(), "streaming"
    )

    # Positions: what each member is shown is the fair order (written out in ExpectedLine) of the order
    # SQLite saw them admitted in; guilds take turns although the busy guild's members arrived first.
    waiting = [(sid, guild) for sid, guild, state in rows if state == "queued"]
    rotation = list(dict.fromkeys(guild for _, guild in waiting))
    line = ExpectedLine(rotation, waiting)
    assert manager.queue.positions() == line.positions()
    await positions_settle(fake, start_tokens, line.positions())
    assert_round_robin(line.order(), dict(waiting))
    report(f"queue of {len(line.order())}: guild turns {turns_of(line.order(), dict(waiting))}")

    # Cancel all but five, spread over the guilds; the five move up, still in fair order.
    by_guild: dict[int, list[str]] = {}
    for sid, guild in waiting:
        by_guild.setdefault(guild, []).append(sid)
    keep = {*by_guild[busy.guild_id][:2], by_guild[quiet[0].guild_id][0]}
    keep |= {by_guild[quiet[2].guild_id][1], by_guild[quiet[3].guild_id][2]}
    owner = {sid: uid for uid, sid in admitted.items()}
    member_of = {m.user_id: m for m in everyone}
    cancels = [driver.command(member_of[owner[sid]].ctx, "tryon stop") for sid in queued_ids - keep]
    for cancel in cancels:
        assert (await cancel.reply(within=20)).content.startswith("Ending your try-on")
    for sid in queued_ids - keep:
        line.cancel(sid)
        await wait_status(fake, start_tokens[sid], "Cancelled", within=20)
    await positions_settle(fake, start_tokens, line.positions())

    # Each streamer that ends frees its slot for the head of the line, nobody else.
    for streamer in streamers:
        head = line.serve()
        assert (await driver.command(streamer.ctx, "tryon stop").reply()).content.startswith("Ending")
        await wait_status(fake, start_tokens[head], "Connecting", "Streaming live", within=30)
        await positions_settle(fake, start_tokens, line.positions())
    assert len(line.order()) == 1

    # End everything; every session settled exactly once (refunds for the queue, charges for streams).
    for sid in keep:
        stopped = await driver.command(member_of[owner[sid]].ctx, "tryon stop").reply()
        assert stopped.content.startswith("Ending your try-on"), (sid, stopped.content)
    await until(lambda: not manager.sessions(), 40, left=lambda: describe_sessions(manager.sessions()))
    assert_nothing_running(bot)
    for sid in queued_ids - keep:
        assert await assert_settled_once(store, sid) == 0
    for sid in [*keep, *streaming.values()]:
        await assert_settled_once(store, sid)
    for sid in streaming.values():
        assert await assert_settled_once(store, sid) > 0
    final_states = {sid: state for sid, _, state in await stored_rows(store.path)}
    assert set(final_states) == queued_ids | set(streaming.values())
    assert set(final_states.values()) <= {"done", "cancelled"}


def burst_mix(
    streamers: list[Member], busy_starters: list[Member], quiet_members: list[list[Member]]
) -> list[Sent]:
    """The 200 commands: each quiet guild has 6 valid starts, a PDF "photo" and a blocklisted outfit; the busy
    guild sends 14 starts into a queue capped at 10; 8 members start twice; everyone reads status, quota and
    (most) history; the streamers also steer. The busy guild's starts rush in first, the rest shuffled."""
    rng = random.Random(5)
    busy_first = [Sent(m, "tryon start", "start") for m in busy_starters]
    starts: list[Sent] = []
    for members in quiet_members:
        starts += [Sent(m, "tryon start", "start") for m in members[:6]]
        starts += [Sent(members[6], "tryon start", "pdf"), Sent(members[7], "tryon start", "blocked")]
    twice = busy_starters[:4] + [members[0] for members in quiet_members]
    duplicates = [Sent(m, "tryon start", "duplicate") for m in twice]
    waiting = busy_starters + [m for members in quiet_members for m in members]
    reads = [Sent(m, f"tryon {c}", "read") for m in waiting for c in ("status", "quota")]
    reads += [Sent(m, "tryon history", "read") for m in rng.sample(waiting, 38)]
    reads += [Sent(m, f"tryon {c}", "read") for m in streamers for c in ("status", "quota", "history")]
    steers = [Sent(m, "tryon outfit", "steer") for m in streamers]
    others = [*starts, *duplicates, *reads, *steers]
    rng.shuffle(others)
    return busy_first + others


def admissions(
    fake: FakeDiscord, burst: Sequence[Sent], busy: p.GuildWorld
) -> tuple[dict[int, str], dict[str, str]]:
    """Check every final answer is the right one; returns user id -> session id admitted, and session id ->
    the token of the start that admitted it."""
    admitted: dict[int, str] = {}
    start_tokens: dict[str, str] = {}
    for sent in burst:
        text = final_text(fake, sent.token) or ""
        assert "went wrong" not in text, (sent.command, text)
        original = fake.original_message(sent.token)
        assert original is None or original.ephemeral, (sent.command, text)
        if sent.kind == "pdf":
            assert "Please attach a photo" in text
        elif sent.kind == "blocked":
            assert "a word this server doesn't allow" in text
        elif sent.kind in ("start", "duplicate"):
            if match := ON_ITS_WAY.search(text):
                assert sent.member.user_id not in admitted, f"{sent.member.name} got two sessions"
                admitted[sent.member.user_id] = match.group(1)
                start_tokens[match.group(1)] = sent.token
            elif not (sent.member.guild is busy and "queue for this server is full" in text):
                assert ALREADY in text, (sent.member.name, text)
    for sent in burst:
        if ALREADY in (final_text(fake, sent.token) or ""):
            assert sent.member.user_id in admitted  # refused only because one of theirs got in
    return admitted, start_tokens


def turns_of(order: Sequence[str], guild_of: dict[str, int]) -> list[int]:
    """For each place in the line, which turn of its guild it is (0: the guild's first waiting member)."""
    seen: dict[int, int] = {}
    turns = []
    for sid in order:
        guild = guild_of[sid]
        turns.append(seen.get(guild, 0))
        seen[guild] = seen.get(guild, 0) + 1
    return turns


def assert_round_robin(order: Sequence[str], guild_of: dict[str, int]) -> None:
    """Nobody's second turn comes before every guild's first: turns never go down along the line."""
    turns = turns_of(order, guild_of)
    assert turns == sorted(turns), turns


async def stored_rows(path: Path) -> list[tuple[str, int, str]]:
    """(id, guild, state) of every session row, in the order they were written, read with plain sqlite3."""

    def read() -> list[tuple[str, int, str]]:
        with contextlib.closing(sqlite3.connect(path)) as conn:
            return list(conn.execute("SELECT id, guild_id, state FROM sessions ORDER BY rowid"))

    return await asyncio.to_thread(read)


def describe_sessions(sessions: Iterable[TryOnSession]) -> str:
    """Each session's state, end reason and what its run is awaiting (the innermost frames of its task)."""
    tasks = {task.get_name(): task for task in asyncio.all_tasks()}
    lines = []
    for session in sessions:
        task = tasks.get(f"session-{session.id}")
        chain = awaiting(task.get_coro()) if task else []
        lines.append(f"{session.id} {session.state} end={session.end_reason} awaiting {' > '.join(chain)}")
    return "\n".join(lines)


def awaiting(coro: Any) -> list[str]:
    """The chain of coroutines `coro` is suspended in, outermost first (`name:line` each)."""
    chain = []
    while coro is not None and hasattr(coro, "cr_frame"):
        if coro.cr_frame is not None:
            chain.append(f"{coro.cr_code.co_name}:{coro.cr_frame.f_lineno}")
        coro = coro.cr_await
    if coro is not None:
        chain.append(repr(coro)[:120])  # a future or task it waits on
    return chain


def report(line: str) -> None:
    """Figures for docs/reliability.md (shown with `pytest -s`)."""
    print(f"[load] {line}")


# ----- (b) double clicks and concurrent commands from one member -------------------------------------------


async def acknowledged_in_time(fake: FakeDiscord, sent: Sequence[Delivered]) -> None:
    """Every interaction is acknowledged, each within Discord's 3 s of its delivery."""
    await fake.wait_for(lambda: all(d.token in fake.callbacks for d in sent), 10)
    seconds = {what(d): fake.callbacks[d.token].received_at - d.delivered_at for d in sent}
    assert all(s < DISCORD_ACK_SECONDS for s in seconds.values()), seconds


def what(delivered: Delivered) -> str:
    """A command's name or a component's custom id, for messages."""
    data = delivered.payload["data"]
    if "custom_id" in data:
        return str(data["custom_id"])
    return " ".join([data["name"], *(o["name"] for o in data.get("options", []) if o["type"] == 1)])


async def final_answers(fake: FakeDiscord, sent: Sequence[Delivered]) -> list[str]:
    """What each member finally read, once every interaction has a final answer; none is an internal error."""
    await acknowledged_in_time(fake, sent)
    await fake.wait_for(lambda: all(final_text(fake, d.token) for d in sent), 30)
    answers = [final_text(fake, d.token) or "" for d in sent]
    assert not any("went wrong" in text for text in answers), answers
    for delivered in sent:
        original = fake.original_message(delivered.token)
        assert original is None or original.ephemeral
    return answers


def recording_messages(fake: FakeDiscord, token: str) -> list[FakeMessage]:
    """The final "Your try-on recording" messages of a session."""
    return [
        m
        for m in fake.messages_for(token)
        if m.embeds and str(m.embeds[0].get("title", "")).startswith("Your try-on recording")
    ]


def same_user_in(driver: BotDriver, world: p.GuildWorld, member: Member) -> Member:
    """The same Discord user as a member of another guild."""
    user = member.ctx.member["user"]  # type: ignore[index]
    payload = p.member(user, roles=[int(world.member_role["id"])])
    world.members.append(payload)
    return Member(member.name, world, driver.context(world, payload))


async def end_and_settle(
    driver: BotDriver, bot: TryOnBot, member: Member, session_id: str, start_token: str
) -> float:
    """Stop the member's session, wait until it is over, check it settled once; returns seconds charged."""
    await driver.command(member.ctx, "tryon stop").reply()
    await wait_status(driver.fake, start_token, "Done after", "Cancelled", within=30)
    await until(lambda: not bot.runtime.engine.manager.sessions(), 30)
    return await assert_settled_once(bot.runtime.store, session_id)


@pytest.mark.parametrize(
    ("starts", "guilds"),
    [(2, 1), (5, 1), (2, 2)],
    ids=["start-twice", "start-five-times", "start-in-two-guilds"],
)
async def test_concurrent_starts_make_one_session(
    driver: BotDriver, bot: TryOnBot, fake_discord: FakeDiscord, starts: int, guilds: int
) -> None:
    fake = fake_discord
    worlds = [p.guild_world(f"g{i}") for i in range(guilds)]
    for world in worlds:
        driver.add_guild(world)
    alice = members_of(driver, worlds[0], "alice", 1)[0]
    places = [alice, *(same_user_in(driver, world, alice) for world in worlds[1:])]
    sent = [
        driver.command(places[i % guilds].ctx, "tryon start", photo=photo_option(fake), outfit=OUTFITS[i])
        for i in range(starts)
    ]

    answers = await final_answers(fake, sent)
    admitted = [
        (d, m.group(1)) for d, text in zip(sent, answers, strict=True) if (m := ON_ITS_WAY.search(text))
    ]
    assert len(admitted) == 1, answers
    assert sum(ALREADY in text for text in answers) == starts - 1, answers
    ((start, session_id),) = admitted
    rows = await stored_rows(bot.runtime.store.path)
    assert [sid for sid, _, _ in rows] == [session_id]
    assert [s.id for s in bot.runtime.engine.manager.sessions()] == [session_id]

    await wait_status(fake, start.token, "Streaming live")
    winner = places[sent.index(start) % guilds]
    assert await end_and_settle(driver, bot, winner, session_id, start.token) > 0
    assert len(recording_messages(fake, start.token)) == 1
    assert_nothing_running(bot)


STOPS = {
    "stop-button-twice": ("button", "button"),
    "stop-command-and-button": ("command", "button"),
    "stop-command-twice": ("command", "command"),
}


@pytest.mark.parametrize("slots", [1])
@pytest.mark.parametrize("queued", [False, True], ids=["streaming", "queued"])
@pytest.mark.parametrize("how", list(STOPS.values()), ids=list(STOPS))
async def test_concurrent_stops_end_once(
    driver: BotDriver,
    bot: TryOnBot,
    fake_discord: FakeDiscord,
    queued: bool,
    how: tuple[str, str],
) -> None:
    fake = fake_discord
    world = p.guild_world()
    driver.add_guild(world)
    alice, other = members_of(driver, world, "m", 2)
    blocker: dict[int, str] = {}
    if queued:  # someone else holds the only slot
        blocker = await start_streaming_all(driver, [other])
    start = driver.command(alice.ctx, "tryon start", photo=photo_option(fake), outfit="red coat")
    status = await wait_status(fake, start.token, "Waiting in line" if queued else "Streaming live")
    session_id = session_id_of(status)

    def stop(way: str) -> Delivered:
        if way == "button":
            return driver.press(alice.ctx, status, f"tryon:stop:{session_id}")
        return driver.command(alice.ctx, "tryon stop")

    sent = [stop(way) for way in how]
    answers = await final_answers(fake, sent)
    assert any(text.startswith("Ending") for text in answers), answers
    assert all(text.startswith("Ending") or "already finished" in text for text in answers), answers
    final = await wait_status(fake, start.token, "Cancelled" if queued else "Done after", within=30)
    assert final.custom_ids() == [f"tryon:delete:{session_id}"]  # only Delete is left
    charged = await assert_settled_once(bot.runtime.store, session_id)
    assert charged == 0 if queued else charged > 0
    assert len(recording_messages(fake, start.token)) == (0 if queued else 1)
    rows = {sid: state for sid, _, state in await stored_rows(bot.runtime.store.path)}
    assert rows[session_id] == ("cancelled" if queued else "done")
    for blocking_user, blocking_id in blocker.items():
        assert blocking_user == other.user_id
        await driver.command(other.ctx, "tryon stop").reply()
        await until(lambda: not bot.runtime.engine.manager.sessions(), 30)
        await assert_settled_once(bot.runtime.store, blocking_id)
    await until(lambda: not bot.runtime.engine.manager.sessions(), 30)
    assert_nothing_running(bot)


async def test_start_right_after_stop_says_the_last_one_is_finishing(
    driver: BotDriver, bot: TryOnBot, fake_discord: FakeDiscord, emulator: Emulator
) -> None:
    fake = fake_discord
    world = p.guild_world()
    driver.add_guild(world)
    alice = members_of(driver, world, "alice", 1)[0]
    start, status = await start_streaming(driver, alice.ctx, "red coat")
    session_id = session_id_of(status)
    emulator.faults.recording_delay_seconds = 1.5  # the platform still processes the recording

    def start_again() -> Delivered:
        return driver.command(alice.ctx, "tryon start", photo=photo_option(fake), outfit="blue coat")

    sent = [driver.command(alice.ctx, "tryon stop"), start_again()]
    await wait_status(fake, start.token, "Finishing up")
    sent.append(start_again())
    answers = await final_answers(fake, sent)
    assert answers[0].startswith("Ending your try-on"), answers
    # Not "Stop it first": they just did. The old session holds on only while it finishes.
    for text in answers[1:]:
        assert text == "Your last try-on is still finishing. Please start again in a few seconds.", answers
    assert await assert_settled_once(bot.runtime.store, session_id) > 0
    await wait_status(fake, start.token, "Done after", within=30)
    await until(lambda: not bot.runtime.engine.manager.sessions(), 10)
    later = start_again()
    (text,) = await final_answers(fake, [later])
    assert ON_ITS_WAY.search(text), text
    new_session = bot.runtime.engine.manager.session_for(alice.user_id)
    assert new_session is not None and new_session.id != session_id
    await end_and_settle(driver, bot, alice, new_session.id, later.token)
    assert_nothing_running(bot)


async def test_new_outfit_pressed_and_submitted_twice(
    driver: BotDriver, bot: TryOnBot, fake_discord: FakeDiscord
) -> None:
    fake = fake_discord
    world = p.guild_world()
    driver.add_guild(world)
    alice = members_of(driver, world, "alice", 1)[0]
    start, status = await start_streaming(driver, alice.ctx, "red coat")
    session_id = session_id_of(status)

    presses = [driver.press(alice.ctx, status, f"tryon:outfit:{session_id}") for _ in range(2)]
    await acknowledged_in_time(fake, presses)
    modals = [fake.callbacks[d.token].json for d in presses]
    assert [m["type"] for m in modals] == [9, 9]
    modal_id = modals[0]["data"]["custom_id"]
    await driver.modal_opened(modal_id)
    text_input = modals[0]["data"]["components"][0]["components"][0]["custom_id"]
    submits = [driver.submit(alice.ctx, modal_id, {text_input: "a blue denim jacket"}) for _ in range(2)]
    answers = await final_answers(fake, submits)
    # One applies it; the repeat (a double submit) is told so instead of posting the same clip twice.
    assert sorted(answers) == ["New outfit applied.", "That outfit is already being applied."], answers
    clips = [m for m in fake.messages_for(start.token) if m.attachments and "blue denim jacket" in m.content]
    assert len(clips) == 1
    assert await end_and_settle(driver, bot, alice, session_id, start.token) > 0
    assert_nothing_running(bot)


# ----- acknowledgements never wait for SQLite -------------------------------------------------------------


@contextlib.asynccontextmanager
async def database_held(path: Path, seconds: float) -> AsyncIterator[None]:
    """Another process's write transaction holds the SQLite file's lock for `seconds` (a backup, an admin)."""
    taken = asyncio.Event()
    loop = asyncio.get_running_loop()

    def hold() -> None:
        with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
            conn.execute("BEGIN IMMEDIATE")
            loop.call_soon_threadsafe(taken.set)
            time.sleep(seconds)
            conn.execute("COMMIT")

    holder = asyncio.create_task(asyncio.to_thread(hold))
    await taken.wait()
    try:
        yield
    finally:
        await holder


async def test_acknowledgements_do_not_wait_for_a_busy_database(
    driver: BotDriver, bot: TryOnBot, fake_discord: FakeDiscord
) -> None:
    fake = fake_discord
    world = p.guild_world()
    driver.add_guild(world)
    alice, bob = members_of(driver, world, "m", 2)
    mod = driver.context(world, world.add_member("mod", moderator=True))
    target = world.add_member("target")
    start, status = await start_streaming(driver, alice.ctx, "red coat")
    session_id = session_id_of(status)

    async with database_held(bot.runtime.store.path, DISCORD_ACK_SECONDS + 1.0):
        # The session's next heartbeat write now waits for the lock, and every query queues behind it.
        await asyncio.sleep(0.5)
        sent = [
            driver.command(alice.ctx, "tryon quota"),
            driver.command(alice.ctx, "tryon history"),
            driver.command(alice.ctx, "tryon show", id=session_id),
            driver.command(alice.ctx, "tryon status"),
            driver.press(alice.ctx, status, f"tryon:snap:{session_id}"),
            driver.command(bob.ctx, "tryon quota"),
            driver.command(mod, "tryonadmin sessions list"),
            driver.command(mod, "tryonadmin usage", days=7),
            driver.command(mod, "tryonadmin quota set-member", member=p.opt_member(target), daily_sessions=9),
            driver.command(bob.ctx, "tryon start", photo=photo_option(fake), outfit="blue coat"),
        ]
        modal = driver.press(alice.ctx, status, f"tryon:outfit:{session_id}")
        await acknowledged_in_time(fake, [*sent, modal])
    assert fake.callbacks[modal.token].json["type"] == 9
    answers = await final_answers(fake, sent)
    assert answers[-1].startswith("Your try-on"), answers
    bob_session = bot.runtime.engine.manager.session_for(bob.user_id)
    assert bob_session is not None
    await driver.command(bob.ctx, "tryon stop").reply()
    assert await end_and_settle(driver, bot, alice, session_id, start.token) > 0
    await assert_settled_once(bot.runtime.store, bob_session.id)
