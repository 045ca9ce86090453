"""Fair sharing on a saturated model: does a light team keep its latency under a flood?

An upstream with fixed timing (Corral's FakeEngine: 0.2 s to the first token, then 20 tokens
20 ms apart, one HTTP chunk per SSE event as vLLM sends them) behind a Corral gateway that lets
4 requests in flight (one endpoint, ``max_in_flight_per_endpoint: 4``) and queues the rest
fairly across teams. A heavy team keeps 64 streaming requests in flight with ``max_tokens: 20``;
a light team sends one streaming request every 0.5 s with no ``max_tokens``, 20, or 200; and the
other way round, a flood with no ``max_tokens`` against a light team asking for 20. Every
request is served 20 tokens. Reported per light variant: the light team's time to first byte
(p50/p95) alone and under the flood, its refusals, and both teams' share of tokens served; then
two teams flooding with weights 3:1. Loopback only; every phase is bounded in count and time.

    python bench/fairness/run.py                # 3 runs, medians, writes RESULTS.md
    python bench/fairness/run.py --runs 1 --light 20 --out /tmp/fair.md   # quicker look
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("gateway_bench", HERE.parent / "gateway" / "run.py")
if _spec is None or _spec.loader is None:
    raise ImportError("bench/gateway/run.py is missing")
_gateway_bench = sys.modules[_spec.name] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_gateway_bench)
free_port, wait_http = _gateway_bench.free_port, _gateway_bench.wait_http

PY = sys.executable
SLOTS = 4
FLOOD = 64
TOKENS = 20
TTFT_S = 0.2
TOKEN_DELAY_S = 0.02
LIGHT_EVERY_S = 0.5
# name: (light team's max_tokens, heavy team's max_tokens); None leaves it unset (4096 allowed)
VARIANTS: dict[str, tuple[int | None, int | None]] = {
    "none / 20": (None, 20),
    "20 / 20": (20, 20),
    "200 / 20": (200, 20),
    "20 / none": (20, None),
}


@dataclass
class Sample:
    """One light request: when its first byte came, how long it took, how it ended."""

    ttfb_s: float | None = None
    total_s: float = 0.0
    status: int = 0


@dataclass
class Phase:
    """What one phase measured."""

    light: list[Sample] = field(default_factory=list)
    tokens: dict[str, int] = field(default_factory=dict)

    def ttfb_ms(self, q: int) -> float:
        values = sorted(s.ttfb_s for s in self.light if s.status == 200 and s.ttfb_s is not None)
        if len(values) < 2:
            return 1000 * values[0] if values else float("nan")
        return 1000 * statistics.quantiles(values, n=100, method="inclusive")[q - 1]

    @property
    def refused(self) -> int:
        return sum(1 for s in self.light if s.status != 200)

    @property
    def service_ms(self) -> float:
        return 1000 * statistics.median(s.total_s for s in self.light if s.status == 200)

    def share(self, team: str) -> float:
        total = sum(self.tokens.values())
        return self.tokens.get(team, 0) / total if total else float("nan")


@contextmanager
def process(args: list[str], env: dict[str, str] | None = None) -> Iterator[None]:
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def serve_gateway(port: int, upstream: str, weights: dict[str, float]) -> None:
    """The gateway process: Corral with fair queuing and one key per team (from the env)."""
    import uvloop

    from corral.catalog import Endpoint, FairQueueing, ModelSpec, OpenAIEngine
    from corral.composition.platform import Platform, running_platform
    from corral.composition.serving import serve
    from corral.principals import KeyDirectory, Principal, Role
    from corral.settings import CorralSettings, LoggingSettings

    keys = KeyDirectory(b"bench-secret")
    for team, key in json.loads(os.environ["FAIRNESS_KEYS"]).items():
        keys.add(keys.hash(key), Principal(key_id=f"key_{team}", role=Role.DEVELOPER, team_id=team))
    spec = ModelSpec(
        name="fake-chat",
        engine=OpenAIEngine(endpoints=[Endpoint(url=upstream)]),
        fair_queueing=FairQueueing(max_in_flight_per_endpoint=SLOTS, team_weights=weights),
    )
    settings = CorralSettings(
        models=[spec],
        data_dir=Path(tempfile.mkdtemp(prefix="corral-fairness-")),
        logging=LoggingSettings(level="warning", access_log=False),
    )

    @asynccontextmanager
    async def factory() -> AsyncIterator[Platform]:
        async with running_platform(settings, keys=keys) as platform:
            yield platform

    uvloop.run(serve(factory, "127.0.0.1", port, lambda _: None, drain_grace=0))


@contextmanager
def gateway(upstream: str, keys: dict[str, str], weights: dict[str, float]) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "FAIRNESS_KEYS": json.dumps(keys)}
    args = [PY, __file__, "--serve", str(port), upstream, json.dumps(weights)]
    with process(args, env):
        wait_http(f"http://127.0.0.1:{port}/readyz")
        yield f"http://127.0.0.1:{port}"


async def one_request(
    session: aiohttp.ClientSession,
    url: str,
    key: str,
    max_tokens: int | None,
    tokens: dict[str, int],
) -> Sample:
    body: dict[str, object] = {
        "model": "fake-chat",
        "messages": [{"role": "user", "content": "Say hello in one short sentence."}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    headers = {"Authorization": f"Bearer {key}"}
    sample, start = Sample(), time.perf_counter()
    async with session.post(f"{url}/v1/chat/completions", json=body, headers=headers) as r:
        sample.status = r.status
        if r.status != 200:
            await r.read()
        else:
            tail = b""
            async for chunk in r.content.iter_any():
                if sample.ttfb_s is None:
                    sample.ttfb_s = time.perf_counter() - start
                tail = (tail + chunk)[-2048:]
            usage = tail.rsplit(b'"completion_tokens":', 1)
            if len(usage) == 2:
                tokens[key] = tokens.get(key, 0) + int(usage[1].split(b",")[0].split(b"}")[0])
    sample.total_s = time.perf_counter() - start
    return sample


async def flood(
    url: str, key: str, max_tokens: int | None, stop: asyncio.Event, tokens: dict[str, int]
) -> None:
    """Keep FLOOD requests in flight until ``stop``."""
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def worker() -> None:
            while not stop.is_set():
                sample = await one_request(session, url, key, max_tokens, tokens)
                if sample.status != 200:
                    await asyncio.sleep(0.05)  # refused: do not spin

        await asyncio.gather(*(worker() for _ in range(FLOOD)))


async def light_team(
    url: str, key: str, max_tokens: int | None, count: int, tokens: dict[str, int]
) -> list[Sample]:
    """``count`` requests, one every LIGHT_EVERY_S (open loop: they do not wait for each other)."""
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        tasks = []
        for _ in range(count):
            tasks.append(asyncio.create_task(one_request(session, url, key, max_tokens, tokens)))
            await asyncio.sleep(LIGHT_EVERY_S)
        return list(await asyncio.gather(*tasks))


async def light_phase(
    url: str,
    keys: dict[str, str],
    max_tokens: tuple[int | None, int | None],
    count: int,
    *,
    flooded: bool,
) -> Phase:
    phase, stop = Phase(), asyncio.Event()
    counts: dict[str, int] = {}
    flooder = None
    if flooded:
        flooder = asyncio.create_task(flood(url, keys["heavy"], max_tokens[1], stop, counts))
        await asyncio.sleep(3.0)  # the queue fills before the light team starts
        counts.clear()
    phase.light = await light_team(url, keys["light"], max_tokens[0], count, counts)
    phase.tokens = {team: counts.get(key, 0) for team, key in keys.items()}
    stop.set()
    if flooder is not None:
        await flooder
    return phase


async def weighted_phase(url: str, keys: dict[str, str], seconds: float) -> Phase:
    stop, counts = asyncio.Event(), {}
    floods = [asyncio.create_task(flood(url, k, TOKENS, stop, counts)) for k in keys.values()]
    await asyncio.sleep(3.0)
    counts.clear()
    await asyncio.sleep(seconds)
    phase = Phase(tokens={team: counts.get(key, 0) for team, key in keys.items()})
    stop.set()
    await asyncio.gather(*floods)
    return phase


def one_run(upstream: str, light_count: int, weighted_s: float) -> dict[str, Phase]:
    keys = {team: f"ck-bench-{team}-{os.urandom(8).hex()}" for team in ("heavy", "light")}
    phases: dict[str, Phase] = {}
    for name, max_tokens in VARIANTS.items():
        for flooded in (False, True):
            with gateway(upstream, keys, {}) as url:
                count = light_count if flooded else max(6, light_count // 4)
                phase = asyncio.run(light_phase(url, keys, max_tokens, count, flooded=flooded))
            phases[f"{name}|{'flood' if flooded else 'alone'}"] = phase
            print(
                f"  {name:15} {'flood' if flooded else 'alone':5} p50 {phase.ttfb_ms(50):7.0f} ms"
                f" p95 {phase.ttfb_ms(95):7.0f} ms refused {phase.refused}",
                flush=True,
            )
    with gateway(upstream, keys, {"heavy": 3.0, "light": 1.0}) as url:
        phases["weighted"] = asyncio.run(weighted_phase(url, keys, weighted_s))
    print(f"  weighted 3:1 heavy share {phases['weighted'].share('heavy'):.3f}", flush=True)
    return phases


def write_report(runs: list[dict[str, Phase]], args: argparse.Namespace) -> str:
    def med(name: str, how: str) -> float:
        pick = {
            "p50": lambda p: p.ttfb_ms(50),
            "p95": lambda p: p.ttfb_ms(95),
            "service": lambda p: p.service_ms,
            "refused": lambda p: p.refused,
            "sent": lambda p: len(p.light),
            "heavy": lambda p: p.share("heavy"),
            "light": lambda p: p.share("light"),
        }[how]
        return statistics.median(pick(run[name]) for run in runs)

    lines = [
        "# Fair sharing benchmark",
        "",
        f"Generated by `bench/fairness/run.py` on {time.strftime('%Y-%m-%d %H:%M UTC')}; "
        f"{os.cpu_count()} cores shared with other work, so absolute times are noisy. "
        f"Medians of {len(runs)} runs. Upstream: FakeEngine, {TTFT_S:g} s to the first token, "
        f"{TOKENS} tokens {TOKEN_DELAY_S * 1000:g} ms apart, one chunk per SSE event; gateway: one "
        f"endpoint, {SLOTS} in flight, the rest fairly queued. Heavy team: {FLOOD} streams in "
        f"flight. Light team: one stream every {LIGHT_EVERY_S:g} s "
        f"({args.light} under the flood). Every request is served {TOKENS} tokens. TTFT is the "
        "time to the first byte of the stream at the client.",
        "",
        "| `max_tokens` light / heavy | light TTFT alone p50 / p95 ms | service alone ms "
        "| light TTFT flood p50 / p95 ms (p95 per run) | bound ms | light refused "
        "| heavy / light token share |",
        "|---|---|---|---|---|---|---|",
    ]
    for variant in VARIANTS:
        alone, flood = f"{variant}|alone", f"{variant}|flood"
        bound = med(alone, "p95") + med(alone, "service")
        ok = "ok" if med(flood, "p95") <= bound else "OVER"
        lines.append(
            f"| {variant} | {med(alone, 'p50'):.0f} / {med(alone, 'p95'):.0f} | "
            f"{med(alone, 'service'):.0f} | {med(flood, 'p50'):.0f} / {med(flood, 'p95'):.0f} "
            f"({', '.join(f'{run[flood].ttfb_ms(95):.0f}' for run in runs)}) | "
            f"{bound:.0f} ({ok}) | {med(flood, 'refused'):.0f} of {med(flood, 'sent'):.0f} | "
            f"{med(flood, 'heavy'):.3f} / {med(flood, 'light'):.3f} |"
        )
    heavy = med("weighted", "heavy")
    lines += [
        "",
        "bound = TTFT alone p95 + one request's service time alone (the issue's target); "
        "none = `max_tokens` unset, so the model default (4096) is allowed.",
        "",
        f"Weighted, heavy 3 : light 1, both teams keeping {FLOOD} streams in flight for "
        f"{args.weighted:g} s: heavy token share {heavy:.3f} (target 0.750, off by "
        f"{abs(heavy - 0.75) / 0.75:.1%}), light {1 - heavy:.3f} (target 0.250, off by "
        f"{abs(0.25 - (1 - heavy)) / 0.25:.1%}). Per run: "
        + ", ".join(
            f"{run['weighted'].share('heavy'):.3f} ({run['weighted'].tokens['heavy']} / "
            f"{run['weighted'].tokens['light']} tokens)"
            for run in runs
        )
        + ".",
    ]
    text = "\n".join(lines) + "\n"
    args.out.write_text(text)
    return text


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--light", type=int, default=40, help="light requests under the flood")
    parser.add_argument("--weighted", type=float, default=15.0, help="seconds of weighted flood")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--serve", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        port, upstream, weights = args.serve
        serve_gateway(int(port), upstream, json.loads(weights))
        return 0
    up_port = free_port()
    corral_bin = str(Path(PY).with_name("corral"))
    engine = [corral_bin, "fake-engine", "--port", str(up_port), "--tokens", str(TOKENS)]
    engine += ["--ttft", str(TTFT_S), "--token-delay", str(TOKEN_DELAY_S)]
    runs = []
    with process(engine):
        wait_http(f"http://127.0.0.1:{up_port}/health")
        for i in range(args.runs):
            print(f"run {i + 1} of {args.runs}", flush=True)
            runs.append(one_run(f"http://127.0.0.1:{up_port}/v1", args.light, args.weighted))
    print(write_report(runs, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
