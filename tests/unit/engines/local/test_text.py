"""Stop sequences in streamed text: nothing past a stop is sent, and nothing is lost otherwise."""

from __future__ import annotations

import pytest

from corral.engines.local.text import StopMatcher


def feed_all(stops: tuple[str, ...], pieces: list[str]) -> tuple[str, bool]:
    matcher = StopMatcher(stops)
    sent = []
    for piece in pieces:
        text, stopped = matcher.feed(piece)
        sent.append(text)
        if stopped:
            return "".join(sent), True
    return "".join(sent) + matcher.flush(), False


@pytest.mark.parametrize(
    ("pieces", "expected"),
    [
        (["Hello", " wor", "ld", " END", " more"], ("Hello world", True)),
        (["Hello E", "N", "D"], ("Hello", True)),
        (["EN", "Dless"], ("", True)),
        (["Hello EN", "ough"], ("Hello ENough", False)),
        (["x", "yz"], ("xyz", False)),
    ],
)
def test_stop_across_pieces(pieces: list[str], expected: tuple[str, bool]) -> None:
    assert feed_all((" END", "END"), pieces) == expected


def test_partial_stop_is_held_back_until_it_cannot_match() -> None:
    matcher = StopMatcher(("</s>",))
    assert matcher.feed("answer <") == ("answer ", False)
    assert matcher.feed("/") == ("", False)
    assert matcher.feed("b") == ("</b", False)


def test_earliest_of_several_stops_wins() -> None:
    assert feed_all(("cd", "b"), ["abcd"]) == ("a", True)


def test_no_stops_passes_text_through() -> None:
    matcher = StopMatcher(())
    assert matcher.feed("anything") == ("anything", False)
    assert matcher.flush() == ""
