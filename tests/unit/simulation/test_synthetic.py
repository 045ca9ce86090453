"""The synthetic diurnal/bursty trace: reproducible, shaped as asked, readable as Azure CSV."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral.control.planner.trace import read_azure_trace
from corral.simulation.synthetic import DiurnalBursty, diurnal_bursty, write_azure_trace

SHORT = DiurnalBursty(duration_s=1200.0, day_s=1200.0, bursts_per_hour=0.0)


def test_same_seed_same_trace_and_other_seed_another() -> None:
    assert diurnal_bursty(SHORT, 5) == diurnal_bursty(SHORT, 5)
    assert diurnal_bursty(SHORT, 5) != diurnal_bursty(SHORT, 6)


def test_the_middle_of_the_day_is_busier_than_its_ends() -> None:
    requests = diurnal_bursty(SHORT, 1)
    ends = sum(1 for r in requests if r.at_s < 200 or r.at_s >= 1000)
    middle = sum(1 for r in requests if 500 <= r.at_s < 700)
    # Expected: ends ~ 0.3-1.5/s over 400 s (~270), middle ~ 4.7-5/s over 200 s (~970).
    assert middle > 2 * ends


def test_written_csv_reads_back(tmp_path: Path) -> None:
    requests = diurnal_bursty(SHORT, 2)[:50]
    path = tmp_path / "t.csv"
    write_azure_trace(path, requests)
    back = read_azure_trace(path)
    first = requests[0].at_s
    # Timestamps keep microseconds (the trace's 7th digit is written as 0).
    assert [r.at_s + first for r in back] == pytest.approx([r.at_s for r in requests], abs=2e-6)
    assert [(r.prompt_tokens, r.output_tokens) for r in back] == [
        (r.prompt_tokens, r.output_tokens) for r in requests
    ]
