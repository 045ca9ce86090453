"""`corral endpoints` reads replica state from a Corral /metrics page."""

from __future__ import annotations

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
