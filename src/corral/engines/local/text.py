"""Tokenizer port, incremental detokenization and stop-sequence matching for streamed text."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from tokenizers import Tokenizer
from tokenizers.decoders import DecodeStream


class TextStream(Protocol):
    """Turns generated token ids into text, one token at a time."""

    def step(self, token: int) -> str:
        """The text that ``token`` completes (empty while a character is still partial)."""
        ...


class TokenizerPort(Protocol):
    """What the scheduler and the server need from a tokenizer."""

    def encode(self, text: str, *, special: bool) -> list[int]:
        """Token ids for ``text``; ``special`` adds the model's BOS/EOS markers if it has any."""
        ...

    def stream(self) -> TextStream:
        """A fresh incremental decoder for one generated sequence."""
        ...


class _HFStream:
    def __init__(self, tokenizer: Tokenizer) -> None:
        self._tokenizer = tokenizer
        self._decoder = DecodeStream(skip_special_tokens=True)

    def step(self, token: int) -> str:
        return self._decoder.step(self._tokenizer, token) or ""


class HFTokenizer:
    """A Hugging Face ``tokenizer.json`` behind the TokenizerPort."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self._tokenizer = tokenizer

    @classmethod
    def from_dir(cls, directory: Path) -> HFTokenizer:
        return cls(Tokenizer.from_file(str(directory / "tokenizer.json")))

    def encode(self, text: str, *, special: bool) -> list[int]:
        return list(self._tokenizer.encode(text, add_special_tokens=special).ids)

    def stream(self) -> TextStream:
        return _HFStream(self._tokenizer)


class StopMatcher:
    """Finds stop sequences in streamed text, holding back text that may begin one."""

    def __init__(self, stops: tuple[str, ...]) -> None:
        self._stops = tuple(s for s in stops if s)
        self._held = ""

    def feed(self, text: str) -> tuple[str, bool]:
        """Text safe to send now, and whether a stop sequence was reached (text before it only)."""
        if not self._stops:
            return text, False
        buffer = self._held + text
        cut = min((i for i in (buffer.find(s) for s in self._stops) if i >= 0), default=-1)
        if cut >= 0:
            self._held = ""
            return buffer[:cut], True
        keep = self._partial_suffix(buffer)
        self._held = buffer[len(buffer) - keep :]
        return buffer[: len(buffer) - keep], False

    def flush(self) -> str:
        """Whatever was held back, once the sequence ends for another reason."""
        held, self._held = self._held, ""
        return held

    def _partial_suffix(self, buffer: str) -> int:
        """Length of the longest end of ``buffer`` that is the start of some stop sequence."""
        longest = 0
        for stop in self._stops:
            for size in range(min(len(stop) - 1, len(buffer)), longest, -1):
                if buffer.endswith(stop[:size]):
                    longest = size
                    break
        return longest
