"""The session state machine's transition table."""

from __future__ import annotations

import itertools

import pytest

from bot.tryon.models import (
    ALLOWED_TRANSITIONS,
    TERMINAL_STATES,
    InvalidTransition,
    SessionState,
    check_transition,
)

S = SessionState


def test_every_state_has_a_row() -> None:
    assert set(ALLOWED_TRANSITIONS) == set(SessionState)


def test_terminal_states_are_final() -> None:
    for state in TERMINAL_STATES:
        assert ALLOWED_TRANSITIONS[state] == frozenset()
        with pytest.raises(InvalidTransition):
            check_transition(state, S.STREAMING)


@pytest.mark.parametrize(
    ("path"),
    [
        [S.QUEUED, S.CONNECTING, S.STREAMING, S.ENDING, S.FINALISING, S.DONE],
        [S.QUEUED, S.CANCELLED],
        [S.QUEUED, S.CONNECTING, S.CANCELLED],
        [S.QUEUED, S.CONNECTING, S.FAILED],
        [S.QUEUED, S.CONNECTING, S.STREAMING, S.FAILED],
        [S.QUEUED, S.CONNECTING, S.STREAMING, S.ENDING, S.FINALISING, S.FAILED],
    ],
)
def test_the_lifecycles_we_use_are_allowed(path: list[SessionState]) -> None:
    for current, new in itertools.pairwise(path):
        check_transition(current, new)


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (S.QUEUED, S.STREAMING),  # must connect first
        (S.STREAMING, S.CONNECTING),  # a roll-over stays in streaming
        (S.STREAMING, S.DONE),  # must end and finalise (settle, recordings) first
        (S.STREAMING, S.CANCELLED),  # streamed time is charged, never cancelled away
        (S.ENDING, S.STREAMING),
        (S.DONE, S.FAILED),
    ],
)
def test_shortcuts_are_refused(current: SessionState, new: SessionState) -> None:
    with pytest.raises(InvalidTransition):
        check_transition(current, new)


def test_every_live_state_can_reach_an_end() -> None:
    for start in set(SessionState) - TERMINAL_STATES:
        seen, frontier = {start}, [start]
        while frontier:
            for nxt in ALLOWED_TRANSITIONS[frontier.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    frontier.append(nxt)
        assert seen & TERMINAL_STATES, start


def test_states_are_stored_as_plain_text() -> None:
    assert str(S.FINALISING) == "finalising"
    assert S("interrupted") is S.INTERRUPTED
