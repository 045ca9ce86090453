"""`corral endpoints` reads replica state from a Corral /metrics page."""

from __future__ import annotations

import pytest

from corral.cli.endpoints import endpoint_rows

METRICS = """\
# HELP corral_endpoint_in_flight Requests in flight to each endpoint.
# TYPE corral_endpoint_in_flight gauge
corral_endpoint_in_flight{model="m",replica="10.0.0.1:8000"} 3.0
corral_endpoint_in_flight{model="m",replica="10.0.0.2:8000"} 0.0
# HELP corral_endpoint_ejected 1 while an endpoint is out of rotation after failures.
# TYPE corral_endpoint_ejected gauge
corral_endpoint_ejected{model="m",replica="10.0.0.1:8000"} 0.0
corral_endpoint_ejected{model="m",replica="10.0.0.2:8000"} 1.0
# HELP corral_endpoint_first_byte_seconds Smoothed time to the first byte from each endpoint.
# TYPE corral_endpoint_first_byte_seconds gauge
corral_endpoint_first_byte_seconds{model="m",replica="10.0.0.1:8000"} 0.042
"""


def test_rows_combine_the_three_families_per_replica() -> None:
    rows = endpoint_rows(METRICS)
    assert rows == [
        {
            "model": "m",
            "replica": "10.0.0.1:8000",
            "in_flight": 3.0,
            "ejected": 0.0,
            "first_byte_s": 0.042,
        },
        {"model": "m", "replica": "10.0.0.2:8000", "in_flight": 0.0, "ejected": 1.0},
    ]


def test_version_is_printed() -> None:
    from typer.testing import CliRunner

    from corral.cli.main import app

    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.startswith("corral ")


@pytest.mark.parametrize(
    ("given", "base", "metrics"),
    [
        (None, "http://127.0.0.1:8000", "http://127.0.0.1:8000/metrics"),
        ("http://h:9/v1/", "http://h:9", "http://h:9/metrics"),
        ("http://h:9/admin/v1", "http://h:9", "http://h:9/metrics"),
        ("http://node:9400/metrics", "http://node:9400", "http://node:9400/metrics"),
        ("http://node:9400/custom", "http://node:9400/custom", "http://node:9400/custom"),
    ],
)
def test_addresses_people_paste_mean_the_same_corral(
    given: str | None, base: str, metrics: str
) -> None:
    from corral.cli.address import base_url, metrics_url

    assert base_url(given) == base
    assert metrics_url(given) == metrics
