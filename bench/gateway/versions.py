"""Corral at a baseline revision vs the working tree, side by side with the bare relay.

The three gateways run at once on the target core, in front of one FakeEngine; each repeat
measures them back to back, so the CPU each spends per request and per relayed SSE event can
be compared on a machine busy with other work (where req/s alone cannot).

    python bench/gateway/versions.py --baseline main            # per-event streams, c=16,64
    python bench/gateway/versions.py --baseline HEAD~3 --modes stream,plain --levels 16
    python bench/gateway/versions.py --baseline main --upstream "--chunk-per-event --ttft 0.02 \
        --token-delay 0.005"                                    # paced
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))

from load import LOAD_CORE, TARGET_CORE, Cell, run_streams, run_wrk  # noqa: E402
from run import (  # noqa: E402
    CORRAL,
    PY,
    _drain,
    corral_config,
    free_port,
    process,
    read_key,
    wait_http,
)


def _source_at(revision: str, into: Path) -> Path:
    """The ``src`` tree of ``revision``, unpacked under ``into``."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", revision, "src"], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "src"


def _corral(
    stack: ExitStack, tmp: Path, name: str, src: Path, upstream: str
) -> tuple[str, str, int]:
    port = free_port()
    data = tmp / name
    data.mkdir()
    # Two gateways at once: each its own /metrics port (server.metrics_port 0: any free one).
    env = {**os.environ, "PYTHONPATH": str(src), "CORRAL_SERVER__METRICS_PORT": "0"}
    proc = stack.enter_context(
        process(
            [CORRAL, "up", "--config", str(corral_config(data, upstream, port))], TARGET_CORE, env
        )
    )
    key = read_key(proc)
    threading.Thread(target=_drain, args=(proc,), daemon=True).start()
    wait_http(f"http://127.0.0.1:{port}/readyz")
    return f"http://127.0.0.1:{port}", key, proc.pid


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline", required=True, help="git revision to compare against")
    parser.add_argument("--upstream", default="--chunk-per-event", help="FakeEngine arguments")
    parser.add_argument("--modes", default="stream", help="stream and/or plain")
    parser.add_argument("--levels", default="16,64")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    up = free_port()
    upstream = f"http://127.0.0.1:{up}/v1"
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        baseline = _source_at(args.baseline, Path(tmp))
        stack.enter_context(
            process([CORRAL, "fake-engine", "--port", str(up), *args.upstream.split()], LOAD_CORE)
        )
        wait_http(f"http://127.0.0.1:{up}/health")
        relay_port = free_port()
        relay = stack.enter_context(
            process([PY, str(HERE / "minimal_relay.py"), upstream, str(relay_port)], TARGET_CORE)
        )
        wait_http(f"http://127.0.0.1:{relay_port}/")
        targets = {
            "relay": (f"http://127.0.0.1:{relay_port}", "", relay.pid),
            "baseline": _corral(stack, Path(tmp), "baseline", baseline, upstream),
            "working tree": _corral(stack, Path(tmp), "work", REPO / "src", upstream),
        }
        time.sleep(0.5)
        print(f"baseline {args.baseline}; upstream: fake-engine {args.upstream}")
        print("| mode | conc | target | req/s | CPU share of relay | CPU µs/req | CPU µs/event |")
        print("|---|---|---|---|---|---|---|")
        for mode in args.modes.split(","):
            for concurrency in (int(x) for x in args.levels.split(",")):
                _compare(targets, mode, concurrency, args.seconds, args.repeats)
    return 0


def _compare(
    targets: dict[str, tuple[str, str, int]],
    mode: str,
    concurrency: int,
    seconds: float,
    repeats: int,
) -> None:
    run = run_wrk if mode == "plain" else run_streams
    cells: dict[str, list[Cell]] = {name: [] for name in targets}
    for _ in range(repeats):
        for name, (url, key, pid) in targets.items():
            cells[name].append(run(url, key, "fake-chat", concurrency, seconds, pid))
    relay = cells["relay"]
    for name, runs in cells.items():
        share = statistics.median(
            r.cpu_us_per_request / c.cpu_us_per_request for r, c in zip(relay, runs, strict=True)
        )
        per_event = statistics.median(c.cpu_us_per_event for c in runs)
        print(
            f"| {mode} | {concurrency} | {name} | {statistics.median(c.rps for c in runs):.0f} "
            f"| {share:.0%} | {statistics.median(c.cpu_us_per_request for c in runs):.0f} "
            f"| {f'{per_event:.1f}' if mode != 'plain' else '-'} |",
            flush=True,
        )


if __name__ == "__main__":
    raise SystemExit(main())
