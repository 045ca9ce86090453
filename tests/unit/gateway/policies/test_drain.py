"""The drain state machine: readiness drops at once, new work stops after the grace."""

from __future__ import annotations

import pytest

from corral.gateway.policies.drain import DrainPhase, DrainState


def test_serving_accepts_and_is_ready() -> None:
    state = DrainState(grace_s=5.0, stream_cap_s=30.0)
    assert (state.phase(0.0), state.ready(), state.accepting_new(0.0)) == (
        DrainPhase.SERVING,
        True,
        True,
    )
    assert state.stream_deadline() is None
    assert not state.may_exit(0.0, open_streams=0)


def test_drain_walks_through_its_phases() -> None:
    state = DrainState(grace_s=5.0, stream_cap_s=30.0).begin(100.0)
    assert not state.ready()
    assert [state.phase(t) for t in (100.0, 104.9, 105.0, 134.9, 135.0)] == [
        DrainPhase.DRAINING,
        DrainPhase.DRAINING,
        DrainPhase.REFUSING,
        DrainPhase.REFUSING,
        DrainPhase.CLOSED,
    ]
    assert state.accepting_new(104.9)
    assert not state.accepting_new(105.0)
    assert state.stream_deadline() == 135.0


def test_exit_waits_for_the_grace_then_for_open_streams_up_to_the_cap() -> None:
    state = DrainState(grace_s=5.0, stream_cap_s=30.0).begin(0.0)
    assert not state.may_exit(1.0, open_streams=0)  # still inside the grace
    assert not state.may_exit(10.0, open_streams=3)
    assert state.may_exit(10.0, open_streams=0)
    assert state.may_exit(35.0, open_streams=3)  # the cap cuts the rest


def test_a_second_signal_keeps_the_first_start_and_close_ends_it() -> None:
    state = DrainState(grace_s=5.0, stream_cap_s=30.0).begin(0.0)
    assert state.begin(50.0) is state
    closed = state.close()
    assert closed.phase(1.0) is DrainPhase.CLOSED
    assert closed.may_exit(1.0, open_streams=9)
    assert not closed.accepting_new(1.0)


def test_negative_durations_are_refused() -> None:
    with pytest.raises(ValueError, match="must"):
        DrainState(grace_s=-1.0)
