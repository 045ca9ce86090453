"""The runtimes' autoscalers on a step in load: they act after exactly their delays."""

from __future__ import annotations

from typing import Any

import pytest

from corral.control.spec import DeploymentSpec, parse_spec
from corral.simulation.autoscalers import LoadSample
from corral.simulation.hpa import HorizontalPodAutoscaler, behaviour_of

pytest.importorskip("ray.serve.autoscaling_policy")

from corral.simulation.ray_serve import (
    CORRAL_LLM_AWARE,
    RayServeAutoscaler,
)


def _spec(runtime: str = "rayservice", **replicas: Any) -> DeploymentSpec:
    return parse_spec(
        {
            "name": "m",
            "model": {"source": "meta-llama/Llama-3.2-3B-Instruct"},
            "accelerator": {"type": "l4"},
            "engine": {"runtime": runtime},
            "replicas": {"min": 1, "max": 4, "target_ongoing_requests": 16, **replicas},
        }
    )


def _sample(at: float, ongoing: int, ready: int = 1) -> LoadSample:
    return LoadSample(at, ongoing, 0, ongoing * 100, ready)


def _first_change(
    autoscaler: Any, load: Any, *, until: float, ready: int = 1, target: int = 1
) -> float:
    """Drive the autoscaler at its own cadence; the time its target first moves."""
    ticks = round(until / autoscaler.interval_s)
    per_sample = round(autoscaler.sample_interval_s / autoscaler.interval_s)
    for tick in range(ticks + 1):
        now = tick * autoscaler.interval_s
        if tick % per_sample == 0:
            autoscaler.observe(_sample(now, load(now), ready))
        if autoscaler.decide(now, ready, target) != target:
            return now
    raise AssertionError("the target never moved")


def test_ray_default_scales_up_exactly_upscale_delay_after_it_first_wants_to() -> None:
    """Load steps from 0 to 48 ongoing at t = 100 s; target 16 per replica.

    Replicas record every 6 s (0.2 × look_back 30 s) and push every 10 s. The sample at 102 s
    reaches the controller at 110 s: the window [80, 110] holds 84, 90, 96, 102, 108 → mean
    (0+0+0+48+48)/5 = 19.2 > 16, so Ray's policy first asks for 2 replicas at 110.0 s and,
    with upscale_delay_s 30, decides at 140.0 s."""
    autoscaler = RayServeAutoscaler(_spec(upscale_delay_s=30.0))
    assert autoscaler.interval_s == pytest.approx(0.1)
    assert autoscaler.sample_interval_s == pytest.approx(6.0)
    changed = _first_change(autoscaler, lambda t: 48 if t >= 100 else 0, until=400)
    assert changed == pytest.approx(140.0, abs=1e-6)


def test_ray_default_scales_down_exactly_downscale_delay_after_load_goes() -> None:
    """Two replicas carrying 30 (under their 2 × 16) until t = 100 s, then nothing.

    At 110 s the pushed window [80, 110] holds 84, 90, 96 at 30 and 102, 108 at 0: mean 18,
    and 2 × 18/32 rounds up to 2 (no change). The window start passes the sample at 84 s on
    the first tick after 114 s: at 114.1 s it holds 90, 96 at 30 and 102, 108 at 0 → mean 15
    → 2 × 15/32 = 0.94 → 1 replica wanted; with downscale_delay_s 60 the decision lands at
    174.1 s."""
    autoscaler = RayServeAutoscaler(_spec(downscale_delay_s=60.0))
    changed = _first_change(
        autoscaler, lambda t: 30 if t < 100 else 0, until=400, ready=2, target=2
    )
    assert changed == pytest.approx(174.1, abs=1e-6)


def test_corral_llm_aware_policy_scales_on_tokens_through_rays_delays() -> None:
    """Corral's own policy (imported, as Ray runs it) with Ray's 30 s upscale delay."""
    autoscaler = RayServeAutoscaler(_spec(upscale_delay_s=30.0), CORRAL_LLM_AWARE)
    # 48 requests × 100 tokens is far under 16 × 512 tokens per replica: requests decide.
    changed = _first_change(autoscaler, lambda t: 48 if t >= 100 else 0, until=400)
    assert changed == pytest.approx(140.0, abs=1e-6)


def test_ray_cold_start_from_zero_skips_the_delay() -> None:
    """Ray's cold-start fast path: zero replicas and any request → one replica at once."""
    autoscaler = RayServeAutoscaler(_spec(min=0, upscale_delay_s=30.0))
    changed = _first_change(
        autoscaler, lambda t: 1 if t >= 100 else 0, until=400, ready=0, target=0
    )
    # The sample at 102 s is pushed at 110 s; no delay applies from zero.
    assert changed == pytest.approx(110.0, abs=1e-6)


def test_hpa_scales_up_at_the_first_sync_that_sees_the_load() -> None:
    """Deployment runtime, scale-up window 0: the 30 s scrape at 120 s sees 48 ongoing on one
    pod (target 16): ratio 3 → 3 pods, allowed by the +4 pods per 15 s policy; the next sync
    of the 15 s loop is at 120 s too."""
    hpa = HorizontalPodAutoscaler(behaviour_of(_spec("deployment", upscale_delay_s=0.0)))
    assert _first_change(hpa, lambda t: 48 if t >= 100 else 0, until=400) == pytest.approx(120.0)


def test_hpa_scale_up_waits_for_its_stabilization_window() -> None:
    """With a 60 s scale-up window the lowest recommendation of the last 60 s must be higher:
    recommendations are 3 from 120 s on, so the window is all 3s at 180 s."""
    hpa = HorizontalPodAutoscaler(behaviour_of(_spec("deployment", upscale_delay_s=60.0)))
    assert _first_change(hpa, lambda t: 48 if t >= 100 else 0, until=400) == pytest.approx(180.0)


def test_the_simulated_ray_config_is_the_one_corral_deploy_renders() -> None:
    """The simulator builds Ray's AutoscalingConfig from the RayService manifest's serve config,
    so tuned defaults are simulated exactly as deployed."""
    import yaml

    from corral.control.planner.instances import load_price_table
    from corral.control.render.rayservice import render_rayservice

    spec = _spec()
    manifest = render_rayservice(spec, load_price_table())
    serve = yaml.safe_load(manifest["spec"]["serveConfigV2"])
    rendered = serve["applications"][0]["args"]["llm_configs"][0]["deployment_config"]
    config = RayServeAutoscaler(spec).config
    for key, value in rendered["autoscaling_config"].items():
        assert getattr(config, key) == value, key
