"""Side-by-side gateway benchmark: upstream direct vs a minimal Python relay vs Corral.

Each target runs on its own core (taskset); load generators and the upstream share the other.
Non-streaming load comes from wrk (post.lua); streams from a small uvloop/aiohttp client.

The upstream is Corral's FakeEngine (16 tokens), in one of three shapes a mode picks:

    plain   non-streaming answers
    stream  one HTTP chunk per SSE event, sent at once (as vLLM writes them; the default)
    paced   one chunk per event, 20 ms to the first token and 5 ms between tokens
    whole   the whole stream in one HTTP chunk (the old benchmark's upstream; opt-in)

Every cell runs the three targets back to back, --repeats times, so each repeat yields a
side-by-side share (Corral's req/s over the relay's); the report gives medians, and the CPU
time each target spent per request and per relayed event (robust on a machine busy with other
work). Results go to RESULTS.md (or --out); the "## Notes" section of an existing file is kept.

    python bench/gateway/run.py                 # full run (several minutes)
    python bench/gateway/run.py --quick --check # CI regression check (ratios, under a minute)
"""

from __future__ import annotations

import argparse
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from load import CORES, LOAD_CORE, TARGET_CORE, Cell, median_cell, run_streams, run_wrk

HERE = Path(__file__).resolve().parent
PY = sys.executable
CORRAL = str(Path(PY).with_name("corral"))

PROFILES: dict[str, list[str]] = {
    "event": ["--chunk-per-event"],
    "paced": ["--chunk-per-event", "--ttft", "0.02", "--token-delay", "0.005"],
    "whole": [],
}
"""FakeEngine arguments per upstream shape."""
MODES = {"plain": "event", "stream": "event", "paced": "paced", "whole": "whole"}
"""The upstream shape each mode runs against."""
MODELS = {"event": "fake-chat", "paced": "fake-paced", "whole": "fake-whole"}
"""Corral's model name for each upstream shape."""


@dataclass
class Target:
    name: str
    key: str
    urls: dict[str, str]  # per upstream shape
    pids: dict[str, int]
    idle_rss_mib: float
    runs: dict[tuple[str, int], list[Cell]] = field(default_factory=dict)
    results: list[Cell] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, deadline_s: float = 60) -> None:
    import urllib.error
    import urllib.request

    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return  # it answered
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not come up within {deadline_s} s")


def rss_mib(pid: int, field_name: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


@contextmanager
def process(
    args: list[str], core: str, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[str]]:
    cmd = ["taskset", "-c", core, *args] if shutil.which("taskset") else args
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def corral_config(
    data_dir: Path,
    upstream: str,
    port: int,
    *,
    workers: int = 1,
    redis_prefix: str = "",
    more_models: dict[str, str] | None = None,
) -> Path:
    """Corral in front of ``upstream`` as model fake-chat (and ``more_models``: name → upstream)
    with limits and metering on (``redis_prefix``: count limits in Redis under it, as several
    workers must)."""
    path = data_dir / f"corral-{workers}.yaml"
    redis = f"\n  redis_url: redis://127.0.0.1:6379/0\n  redis_prefix: {redis_prefix!r}"
    models = {"fake-chat": upstream, **(more_models or {})}
    entries = "".join(
        f"""  - name: {name}
    engine: {{kind: openai, endpoints: [{{url: "{url}"}}]}}
    pricing: {{input_per_1m: 0.5, output_per_1m: 1.5}}
"""
        for name, url in models.items()
    )
    path.write_text(
        f"""data_dir: {data_dir / f"data-{workers}"}
server: {{host: 127.0.0.1, port: {port}, max_in_flight: 4096, workers: {workers}, drain_grace: 0}}
logging: {{access_log: false, level: warning}}
limits:{redis if redis_prefix else ""}
  # Limits on, set high enough never to refuse: the benchmark measures their cost.
  key_defaults: {{rpm: 100000000, tpm: 10000000000, max_concurrent: 100000}}
  team_defaults: {{rpm: 100000000, tpm: 10000000000, monthly_budget_usd: 1000000000}}
models:
{entries}"""
    )
    return path


def read_key(proc: subprocess.Popen[str], deadline_s: float = 60) -> str:
    assert proc.stdout is not None
    end = time.monotonic() + deadline_s
    seen = []
    while time.monotonic() < end:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        match = re.search(r"(ck-[A-Za-z0-9_\-]{20,})", line)
        if match:
            return match.group(1)
    raise RuntimeError("Corral did not print its bootstrap key:\n" + "".join(seen[-20:]))


def _drain(proc: subprocess.Popen[str]) -> None:
    """Keep reading a child's output so a full pipe never blocks it."""
    assert proc.stdout is not None
    for _ in proc.stdout:
        pass


def measure(
    targets: list[Target], mode: str, concurrency: int, seconds: float, repeats: int
) -> None:
    """Run one cell on every target, the targets back to back in each repeat."""
    profile = MODES[mode]
    run = run_wrk if mode == "plain" else run_streams
    for _ in range(repeats):
        cells = []
        for target in targets:
            model = MODELS[profile] if target.name == "corral" else "fake-chat"
            cell = run(
                target.urls[profile], target.key, model, concurrency, seconds, target.pids[profile]
            )
            cell.target, cell.mode = target.name, mode
            target.runs.setdefault((mode, concurrency), []).append(cell)
            cells.append(cell)
        relay = cells[1] if len(cells) > 1 else None
        for cell in cells:
            if relay is not None and relay.rps and cell.cpu_us_per_request:
                cell.share = cell.rps / relay.rps
                cell.cpu_share = relay.cpu_us_per_request / cell.cpu_us_per_request
        time.sleep(0.2)
    for target in targets:
        cell = median_cell(target.runs[(mode, concurrency)])
        target.results.append(cell)
        print(
            f"  {target.name:8} {mode:6} c={concurrency:<3} {cell.rps:9.0f}/s "
            f"p50 {cell.p50_ms:.3f} ms  share {cell.share:.0%} (CPU {cell.cpu_share:.0%})  "
            f"CPU {cell.cpu_us_per_request:.0f} µs/req {cell.cpu_us_per_event:.1f} µs/event",
            flush=True,
        )


def _row(c: Cell, base: Cell, rss: float) -> str:
    streamed = c.mode != "plain"
    added_ttft = f"{c.ttfb_p50_ms - base.ttfb_p50_ms:+.3f}" if streamed else "-"
    per_event = f"{c.cpu_us_per_event:.1f}" if streamed else "-"
    return (
        f"| {c.target} | {c.mode} | {c.concurrency} | {c.rps:.0f} | {c.p50_ms:.3f} | "
        f"{c.p99_ms:.3f} | {c.p50_ms - base.p50_ms:+.3f} | {added_ttft} | {c.share:.0%} | "
        f"{c.cpu_share:.0%} | "
        f"{c.events_per_s:.0f} | {c.cpu_us_per_request:.0f} | {per_event} | {c.errors} | "
        f"{rss:.0f} |"
    )


def targets_met(targets: list[Target]) -> list[str]:
    """The issue's targets, each with what this run measured."""
    cells = {(t.name, c.mode, c.concurrency): c for t in targets for c in t.results}
    lines = []

    def line(label: str, value: str, ok: bool) -> None:
        lines.append(f"| {label} | {value} | {'met' if ok else 'MISSED'} |")

    def share(mode: str, conc: int, what: str, floor: float) -> None:
        if (c := cells.get(("corral", mode, conc))) is not None:
            label = f"{what} share of the relay, c={conc} (≥ {floor:.0%})"
            value = f"{c.share:.0%} (CPU {c.cpu_share:.0%})"
            line(label, value, min(c.share, c.cpu_share) >= floor)

    def added_at_1(mode: str, what: str, measure: str) -> None:
        c, d = cells.get(("corral", mode, 1)), cells.get(("direct", mode, 1))
        if c is not None and d is not None:
            added = getattr(c, measure) - getattr(d, measure)
            line(f"added {what}, c=1 (≤ 0.5 ms)", f"{added:.3f} ms", added <= 0.5)

    for conc in (16, 64):
        share("stream", conc, "per-event streams/s", 0.5)
        c, r = cells.get(("corral", "stream", conc)), cells.get(("relay", "stream", conc))
        if c is not None and r is not None and c.cpu_us_per_event and r.cpu_us_per_event:
            rate, relay_rate = 1e6 / c.cpu_us_per_event, 1e6 / r.cpu_us_per_event
            line(
                f"relayed events per CPU-second, c={conc} (≥ 55,000)",
                f"{rate:,.0f} (relay: {relay_rate:,.0f})",
                rate >= 55_000,
            )
    added_at_1("stream", "TTFT p50, per-event stream", "ttfb_p50_ms")
    c, r = cells.get(("corral", "stream", 64)), cells.get(("relay", "stream", 64))
    if c is not None and r is not None:
        ratio = c.p99_ms / r.p99_ms
        line("p99 per-event stream, c=64 (≤ 2× relay)", f"{ratio:.2f}×", ratio <= 2)
    for conc in (16, 64):
        share("plain", conc, "non-streaming req/s", 0.55)
    added_at_1("plain", "p50, non-streaming", "p50_ms")
    return lines


def write_report(targets: list[Target], out: Path, args: argparse.Namespace) -> str:
    direct = {(c.mode, c.concurrency): c for c in targets[0].results}
    notes = ""
    if out.exists() and "\n## Notes" in (old := out.read_text()):
        notes = old[old.index("\n## Notes") :]
    lines = [
        "# Gateway benchmark",
        "",
        f"Generated by `bench/gateway/run.py` on {time.strftime('%Y-%m-%d %H:%M UTC')}; "
        f"{CORES} cores; each target pinned to core {TARGET_CORE}, wrk/stream client and upstream "
        f"on core {LOAD_CORE}; {args.repeats} repeats of {args.seconds:g} s per cell, the three "
        "targets back to back in each repeat; medians (share: median of the per-repeat shares "
        "of the relay's req/s). Upstream: Corral's FakeEngine, 16 tokens (18 SSE events with "
        "`[DONE]`); `stream`: one HTTP chunk per event at once, `paced`: one chunk per event, "
        "20 ms to the first token and 5 ms between tokens, `whole`: the stream in one chunk. "
        "Corral runs with auth, rate limits and metering on (SQLite store), access log off. "
        "CPU: the target process's user+system time over the cell, per request (stream) and "
        "per relayed SSE event; `vs relay, CPU`: the relay's CPU per request over the "
        "target's, the share each would reach on a core of its own (robust when other work "
        "shares the machine, where req/s shares are not).",
        "",
        "| target | mode | conc | req/s | p50 ms | p99 ms | added p50 ms | added TTFT p50 ms "
        "| vs relay | vs relay, CPU | SSE events/s | CPU µs/req | CPU µs/event | errors "
        "| idle RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for target in targets:
        lines += [
            _row(c, direct[(c.mode, c.concurrency)], target.idle_rss_mib) for c in target.results
        ]
    met = targets_met(targets)
    if met:
        lines += ["", "| target (issue 25) | measured | |", "|---|---|---|", *met]
    text = "\n".join(lines) + "\n" + notes
    out.write_text(text)
    return text


def check(targets: list[Target], min_ratio: float) -> bool:
    ok = True
    for c in targets[2].results:
        if c.mode == "paced":
            continue  # bound by the upstream's pace, not the gateway's cost
        # The lower of the two shares: on a busy runner the req/s share flatters the slower
        # target (both get slices of a contended core), the CPU share does not.
        share = min(c.share, c.cpu_share)
        status = "ok" if share >= min_ratio else "REGRESSION"
        ok &= share >= min_ratio
        print(
            f"check: corral/relay {c.mode} c={c.concurrency}: "
            f"{c.share:.0%}, CPU {c.cpu_share:.0%} (min {min_ratio:.0%}) {status}"
        )
    return ok


def start_targets(stack: ExitStack, tmp: Path, profiles: set[str]) -> list[Target]:
    """The upstreams (one per shape), a relay in front of each, and one Corral for all."""
    up_urls, relay_urls, up_pids, relay_pids = {}, {}, {}, {}
    for profile in sorted(profiles):
        port = free_port()
        up = stack.enter_context(
            process([CORRAL, "fake-engine", "--port", str(port), *PROFILES[profile]], LOAD_CORE)
        )
        wait_http(f"http://127.0.0.1:{port}/health")
        up_urls[profile], up_pids[profile] = f"http://127.0.0.1:{port}", up.pid
    for profile in sorted(profiles):
        port = free_port()
        upstream = up_urls[profile] + "/v1"
        rel = stack.enter_context(
            process([PY, str(HERE / "minimal_relay.py"), upstream, str(port)], TARGET_CORE)
        )
        wait_http(f"http://127.0.0.1:{port}/")
        relay_urls[profile], relay_pids[profile] = f"http://127.0.0.1:{port}", rel.pid
    port = free_port()
    more = {MODELS[p]: up_urls[p] + "/v1" for p in profiles if p != "event"}
    config = corral_config(
        tmp, up_urls.get("event", "http://127.0.0.1:9/") + "/v1", port, more_models=more
    )
    cor = stack.enter_context(process([CORRAL, "up", "--config", str(config)], TARGET_CORE))
    key = read_key(cor)
    threading.Thread(target=_drain, args=(cor,), daemon=True).start()
    wait_http(f"http://127.0.0.1:{port}/readyz")
    time.sleep(0.5)
    corral_url = f"http://127.0.0.1:{port}"
    first = sorted(profiles)[0]
    return [
        Target("direct", "", up_urls, up_pids, rss_mib(up_pids[first])),
        Target("relay", "", relay_urls, relay_pids, rss_mib(relay_pids[first])),
        Target(
            "corral",
            key,
            dict.fromkeys(profiles, corral_url),
            dict.fromkeys(profiles, cor.pid),
            rss_mib(cor.pid),
        ),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--levels", default="1,16,64")
    parser.add_argument("--modes", default="plain,stream,paced", help="of " + ",".join(MODES))
    parser.add_argument(
        "--quick", action="store_true", help="CI size: 2 s cells, 1 repeat, c=16, plain+stream"
    )
    parser.add_argument(
        "--check", action="store_true", help="fail when Corral/relay drops below --min-ratio"
    )
    parser.add_argument("--min-ratio", type=float, default=0.40)
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.repeats, args.levels, args.modes = 2.0, 1, "16", "plain,stream"
        if args.out == HERE / "RESULTS.md":
            args.out = Path(tempfile.gettempdir()) / "corral-bench-quick.md"
    if not shutil.which("wrk"):
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2
    levels = [int(x) for x in args.levels.split(",")]
    modes = args.modes.split(",")
    unknown = set(modes) - set(MODES)
    if unknown:
        parser.error(
            f"unknown mode(s) {', '.join(sorted(unknown))}; choose from {', '.join(MODES)}"
        )
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        targets = start_targets(stack, Path(tmp), {MODES[m] for m in modes})
        for mode in modes:
            for concurrency in levels:
                measure(targets, mode, concurrency, args.seconds, args.repeats)
    print(write_report(targets, args.out, args))
    if args.check and not check(targets, args.min_ratio):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
