"""Passive outlier ejection with plain-number time: thresholds, back-off, the share cap, probes."""

from __future__ import annotations

import pytest

from corral.gateway.policies.outliers import Ejection, OutlierConfig, OutlierDetector

CONFIG = OutlierConfig(
    consecutive_failures=3, base_ejection_s=10.0, max_ejection_s=80.0, max_ejected_share=0.5
)


def fail(detector: OutlierDetector, index: int, times: int, now: float) -> list[Ejection | None]:
    return [detector.record_failure(index, now) for _ in range(times)]


def eject(detector: OutlierDetector, index: int, now: float) -> Ejection:
    """Fail ``index`` until the threshold; only the last failure ejects."""
    *before, last = fail(detector, index, CONFIG.consecutive_failures, now)
    assert before == [None] * (CONFIG.consecutive_failures - 1)
    assert last is not None
    return last


def test_n_consecutive_failures_eject_for_the_base_back_off() -> None:
    detector = OutlierDetector(4, CONFIG)
    assert fail(detector, 0, 2, now=100.0) == [None, None]
    assert detector.record_failure(0, 100.0) == Ejection(
        0, until=110.0, back_off_s=10.0, ejections=1
    )
    assert detector.is_ejected(0, 100.0)
    assert detector.is_ejected(0, 109.9)
    assert not detector.is_ejected(0, 110.0)  # re-admitted when the back-off ends
    assert detector.ejected(105.0) == frozenset({0})


def test_a_success_resets_the_count() -> None:
    detector = OutlierDetector(4, CONFIG)
    fail(detector, 1, 2, now=0.0)
    detector.record_success(1)
    assert fail(detector, 1, 2, now=1.0) == [None, None]
    assert not detector.is_ejected(1, 1.0)


def test_back_off_doubles_up_to_the_max() -> None:
    detector = OutlierDetector(4, CONFIG)
    now, lengths = 0.0, []
    for _ in range(6):
        ejection = eject(detector, 2, now)
        lengths.append(ejection.back_off_s)
        now = ejection.until + 1.0
        detector.record_success(2)  # proves itself, then fails again
    assert lengths == [10.0, 20.0, 40.0, 80.0, 80.0, 80.0]


def test_a_failure_right_after_readmission_ejects_again_at_once() -> None:
    detector = OutlierDetector(4, CONFIG)
    fail(detector, 0, 3, now=0.0)
    ejection = detector.record_failure(0, 10.5)  # first answer after the back-off fails
    assert ejection == Ejection(0, until=30.5, back_off_s=20.0, ejections=2)


def test_a_long_clean_spell_forgives_earlier_ejections() -> None:
    detector = OutlierDetector(4, CONFIG)
    fail(detector, 0, 3, now=0.0)
    detector.record_success(0)
    later = 10.0 + CONFIG.max_ejection_s
    ejection = eject(detector, 0, later)
    assert (ejection.back_off_s, ejection.ejections) == (10.0, 1)


def test_the_ejection_count_only_grows_even_when_the_back_off_is_forgiven() -> None:
    detector = OutlierDetector(4, CONFIG)
    assert detector.ejections(0) == 0
    fail(detector, 0, 3, now=0.0)
    detector.record_success(0)
    eject(detector, 0, 10.0 + CONFIG.max_ejection_s)  # back-off forgiven: ejections=1 again
    assert detector.ejections(0) == 2
    assert detector.ejections(1) == 0


def test_failures_while_ejected_do_not_extend_the_ejection() -> None:
    detector = OutlierDetector(4, CONFIG)
    fail(detector, 0, 3, now=0.0)
    assert fail(detector, 0, 5, now=5.0) == [None] * 5
    assert detector.health(0).ejected_until == 10.0


def test_never_more_than_the_share_is_ejected_at_once() -> None:
    detector = OutlierDetector(4, CONFIG)  # 50 % of 4 = 2
    eject(detector, 0, now=0.0)
    eject(detector, 1, now=5.0)
    assert fail(detector, 2, 3, now=5.0) == [None] * 3
    assert fail(detector, 3, 3, now=5.0) == [None] * 3
    assert detector.ejected(5.0) == frozenset({0, 1})
    assert detector.max_ejected() == 2
    # endpoint 0 comes back at 10; the next failure of 2, already over the threshold, ejects it
    assert detector.record_failure(2, 10.0) is not None
    assert detector.ejected(10.0) == frozenset({1, 2})


@pytest.mark.parametrize(("endpoints", "share", "most"), [(1, 0.5, 0), (2, 0.1, 1), (3, 1.0, 2)])
def test_one_may_always_go_and_one_always_stays(endpoints: int, share: float, most: int) -> None:
    config = OutlierConfig(consecutive_failures=1, max_ejected_share=share)
    detector = OutlierDetector(endpoints, config)
    for index in range(endpoints):
        detector.record_failure(index, 0.0)
    assert detector.max_ejected() == most
    assert len(detector.ejected(0.0)) == most


def test_a_probe_success_readmits_early() -> None:
    detector = OutlierDetector(4, CONFIG)
    fail(detector, 3, 3, now=0.0)
    assert detector.record_probe(3, ok=True, now=2.0) is None
    assert not detector.is_ejected(3, 2.0)
    assert detector.record_failure(3, 2.5) is None  # proven by the probe: no probation


def test_probe_failures_count_like_request_failures() -> None:
    detector = OutlierDetector(4, CONFIG)
    detector.record_failure(0, 0.0)
    assert detector.record_probe(0, ok=False, now=1.0) is None
    ejection = detector.record_probe(0, ok=False, now=2.0)
    assert ejection is not None
    assert ejection.until == 12.0


def test_resize_keeps_known_state_and_adds_healthy_endpoints() -> None:
    detector = OutlierDetector(2, CONFIG)
    fail(detector, 0, 3, now=0.0)
    detector.resize(3)
    assert detector.is_ejected(0, 1.0)
    assert not detector.is_ejected(2, 1.0)
    detector.resize(1)
    assert detector.endpoints == 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"consecutive_failures": 0},
        {"base_ejection_s": 0.0},
        {"base_ejection_s": 10.0, "max_ejection_s": 5.0},
        {"max_ejected_share": 1.5},
    ],
)
def test_config_refuses_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must"):
        OutlierConfig(**kwargs)  # type: ignore[arg-type]
