"""Local engine benchmark: stream tok/s (1 and 4 streams), TTFT, embeddings/s, cold start, peak RSS.

Without --base-url it starts both default engines itself through the launcher (so cold start and
memory are the engines' own) and measures them directly. With --base-url it measures whatever
serves OpenAI there, e.g. `corral up` (pass --api-key, and --pids of the processes to weigh).

    python bench/local/bench.py                              # engines directly
    python bench/local/bench.py --base-url http://127.0.0.1:8000/v1 --api-key KEY --pids 123
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from corral.catalog import LocalEngineConfig
from corral.engines.local.launcher import RunningEngine, launch_local_engine

STORY = "Write a long story about a dragon who learns to fly. Make it detailed."
SENTENCES = [f"Sentence number {i} is about cats, dogs and the weather today." for i in range(64)]


@dataclass
class Target:
    chat_url: str
    embed_url: str
    chat_model: str
    embed_model: str
    headers: dict[str, str]


async def stream_once(
    session: aiohttp.ClientSession, target: Target, prompt: str, max_tokens: int
) -> tuple[float, float, int]:
    """(seconds to first content, seconds in all, completion tokens) for one streamed chat."""
    body = {
        "model": target.chat_model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    started = time.perf_counter()
    first, tokens = 0.0, 0
    async with session.post(
        f"{target.chat_url}/chat/completions", json=body, headers=target.headers
    ) as reply:
        reply.raise_for_status()
        async for raw in reply.content:
            line = raw.strip()
            if not line.startswith(b"data: {"):
                continue
            event = json.loads(line[6:])
            if event.get("usage"):
                tokens = event["usage"]["completion_tokens"]
            for choice in event.get("choices", []):
                if choice["delta"].get("content") and not first:
                    first = time.perf_counter() - started
    return first, time.perf_counter() - started, tokens


async def chat_numbers(session: aiohttp.ClientSession, target: Target) -> dict[str, float]:
    await stream_once(session, target, "Hi", 8)  # warm the path
    singles = [await stream_once(session, target, STORY, 128) for _ in range(3)]
    single = statistics.median(tokens / total for _, total, tokens in singles)
    rates = []
    for _ in range(3):
        started = time.perf_counter()
        runs = await asyncio.gather(*(stream_once(session, target, STORY, 128) for _ in range(4)))
        rates.append(sum(r[2] for r in runs) / (time.perf_counter() - started))
    ttfts = [(await stream_once(session, target, "Hi!", 1))[0] for _ in range(10)]
    return {
        "single_stream_tok_s": round(single, 1),
        "concurrent4_total_tok_s": round(statistics.median(rates), 1),
        "ttft_short_prompt_ms_p50": round(statistics.median(ttfts) * 1000, 1),
        "ttft_short_prompt_ms_max": round(max(ttfts) * 1000, 1),
    }


async def embed_numbers(
    session: aiohttp.ClientSession, target: Target, encoding: str
) -> dict[str, float]:
    body = {"model": target.embed_model, "input": SENTENCES, "encoding_format": encoding}
    url = f"{target.embed_url}/embeddings"

    async def one() -> None:
        async with session.post(url, json=body, headers=target.headers) as reply:
            reply.raise_for_status()
            await reply.read()

    await one()
    started = time.perf_counter()
    for _ in range(10):
        await one()
    sequential = 10 * len(SENTENCES) / (time.perf_counter() - started)
    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(10)))
    concurrent = 10 * len(SENTENCES) / (time.perf_counter() - started)
    return {
        f"embeddings_{encoding}_sentences_s_sequential": round(sequential, 1),
        f"embeddings_{encoding}_sentences_s_10_concurrent": round(concurrent, 1),
    }


def peak_rss_mib(pids: list[int]) -> float:
    """Sum of each process's peak resident set (VmHWM), children included."""
    seen = set(pids)
    for pid in list(pids):
        seen |= _children(pid)
    total = 0
    for pid in seen:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return round(total / 1024, 1)


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            found.add(int(entry.name))
            found |= _children(int(entry.name))
    return found


async def launch_engines(
    data_dir: Path, backend: str
) -> tuple[list[RunningEngine], dict[str, float]]:
    chat_config = LocalEngineConfig.model_validate({"model": "smollm2", "backend": backend})
    embed_config = LocalEngineConfig.model_validate(
        {"model": "minilm", "task": "embeddings", "backend": backend}
    )
    started = time.perf_counter()
    chat, embed = await asyncio.gather(
        launch_local_engine("smollm2-135m-instruct", chat_config, data_dir, print),
        launch_local_engine("all-minilm-l6-v2", embed_config, data_dir, print),
    )
    return [chat, embed], {"cold_start_s_both_engines": round(time.perf_counter() - started, 2)}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url")
    parser.add_argument("--api-key", default="")
    parser.add_argument("--chat-model", default="smollm2-135m-instruct")
    parser.add_argument("--embed-model", default="all-minilm-l6-v2")
    parser.add_argument("--pids", type=int, nargs="*", default=[])
    parser.add_argument("--data-dir", type=Path, default=Path(".corral"))
    parser.add_argument("--backend", default="auto", choices=["auto", "onnx", "transformers"])
    args = parser.parse_args()
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    engines: list[RunningEngine] = []
    results: dict[str, object] = {"load_average": os.getloadavg()}
    if args.base_url:
        target = Target(args.base_url, args.base_url, args.chat_model, args.embed_model, headers)
        pids = args.pids
    else:
        engines, started = await launch_engines(args.data_dir, args.backend)
        results.update(started)
        urls = [e.base_url for e in engines]
        target = Target(urls[0], urls[1], args.chat_model, args.embed_model, headers)
        pids = [e.pid for e in engines]
    try:
        timeout = aiohttp.ClientTimeout(total=300)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            results.update(await chat_numbers(session, target))
            results.update(await embed_numbers(session, target, "float"))
            results.update(await embed_numbers(session, target, "base64"))
        if pids:
            results["peak_rss_mib_sum"] = peak_rss_mib(pids)
    finally:
        for engine in engines:
            await engine.stop()
    results["load_average_after"] = os.getloadavg()
    json.dump(results, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    asyncio.run(main())
