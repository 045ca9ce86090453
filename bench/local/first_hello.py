"""A new user's first call: "Hello!" to the default chat model with no parameters set.

Starts the chat model from corral.yaml through the launcher twice: with its configured
generation defaults (engine.max_tokens, temperature, top_p), and with what the engine did
before they existed (the whole context's room, temperature 1, top_p 1). Each answers the same
bare request a few times; prints completion tokens and seconds per answer, side by side.

    python bench/local/first_hello.py [--runs 3] [--data-dir .corral]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path

import aiohttp

from corral.catalog import LocalEngineConfig
from corral.engines.local.launcher import launch_local_engine
from corral.settings import load_settings

REPO = Path(__file__).resolve().parents[2]
HELLO = {"messages": [{"role": "user", "content": "Hello!"}]}


async def answers(config: LocalEngineConfig, data_dir: Path, runs: int) -> list[tuple[int, float]]:
    """(completion tokens, seconds) for ``runs`` bare "Hello!" requests."""
    engine = await launch_local_engine("chat", config, data_dir, lambda line: print("  ", line))
    found = []
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(runs):
                started = time.perf_counter()
                async with http.post(
                    f"{engine.base_url}/chat/completions", json={"model": "chat", **HELLO}
                ) as reply:
                    reply.raise_for_status()
                    body = await reply.json()
                found.append((body["usage"]["completion_tokens"], time.perf_counter() - started))
    finally:
        await engine.stop()
    return found


def summary(name: str, found: list[tuple[int, float]]) -> str:
    tokens = [t for t, _ in found]
    seconds = [s for _, s in found]
    return (
        f"| {name} | {statistics.mean(tokens):.0f} (max {max(tokens)}) "
        f"| {statistics.mean(seconds):.2f} (max {max(seconds):.2f}) |"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--data-dir", type=Path, default=REPO / ".corral")
    args = parser.parse_args()
    spec = load_settings(REPO / "corral.yaml").models[0]
    assert isinstance(spec.engine, LocalEngineConfig)
    configured = spec.engine
    before = configured.model_copy(
        update={"max_tokens": configured.context_length, "temperature": 1.0, "top_p": 1.0}
    )
    rows = []
    for name, config in (
        ("defaults (corral.yaml)", configured),
        ("before: whole context, T=1", before),
    ):
        print(f"{name}: {config.max_tokens=} {config.temperature=} {config.top_p=}")
        rows.append(summary(name, await answers(config, args.data_dir, args.runs)))
    print(f"\n{spec.name}, {args.runs} bare 'Hello!' requests each\n")
    print("| engine settings | completion tokens, mean | seconds per answer, mean |")
    print("|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    asyncio.run(main())
