"""Model pricing: list prices, or a self-hosted deployment's cost and its effective rate."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from corral.catalog import DeploymentCost, FakeEngineConfig, ModelSpec, Pricing


def spec(pricing: object) -> ModelSpec:
    return ModelSpec.model_validate(
        {"name": "m", "engine": FakeEngineConfig().model_dump(), "pricing": pricing}
    )


def test_list_prices_are_charged_as_configured() -> None:
    pricing = spec({"input_per_1m": 0.15, "output_per_1m": 0.6}).pricing
    assert (pricing.input_per_1m, pricing.output_per_1m) == (0.15, 0.6)
    assert pricing.basis == "list"
    assert pricing.deployment is None


def test_a_deployment_is_charged_at_its_effective_rate() -> None:
    # $3.60 per replica-hour over 1,000 tokens/s (3.6M tokens/hour) is $1.00 per 1M tokens,
    # whatever the replica count; prompt and completion tokens cost the same.
    pricing = spec(
        {"deployment": {"usd_per_hour": 3.6, "replicas": 4, "tokens_per_second": 1000}}
    ).pricing
    assert pricing.input_per_1m == pytest.approx(1.0)
    assert pricing.output_per_1m == pytest.approx(1.0)
    assert pricing.basis == "attributed"
    # $12.30/h over 1,500 tokens/s: 12.3e6 / 5.4e6 = $2.2777... per 1M tokens
    cost = DeploymentCost(usd_per_hour=12.3, replicas=2, tokens_per_second=1500)
    assert cost.usd_per_1m_tokens == pytest.approx(2.277_777_78)


def test_a_deployment_costs_every_replica_for_every_hour() -> None:
    cost = DeploymentCost(usd_per_hour=2.0, replicas=3, tokens_per_second=100)
    assert cost.usd_between(0.0, 1800.0) == pytest.approx(3.0)  # 2 × 3 × 0.5 h
    assert cost.usd_between(100.0, 50.0) == 0.0


def test_list_prices_and_a_deployment_cannot_both_be_set() -> None:
    with pytest.raises(ValidationError) as caught:
        spec(
            {
                "input_per_1m": 1.0,
                "deployment": {"usd_per_hour": 3.6, "tokens_per_second": 1000},
            }
        )
    text = str(caught.value)
    assert "pricing" in text
    assert "input_per_1m/output_per_1m" in text
    assert "deployment" in text


@pytest.mark.parametrize(
    ("deployment", "field"),
    [
        ({"usd_per_hour": 3.6}, "tokens_per_second"),
        ({"usd_per_hour": 0, "tokens_per_second": 10}, "usd_per_hour"),
        ({"usd_per_hour": 1, "tokens_per_second": 10, "replicas": 0}, "replicas"),
        ({"usd_per_hour": 1, "tokens_per_second": 10, "gpus": 8}, "gpus"),
    ],
)
def test_a_bad_deployment_cost_names_the_field(deployment: object, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        spec({"deployment": deployment})
    assert f"pricing.deployment.{field}" in str(caught.value)


def test_pricing_round_trips_through_its_dump() -> None:
    pricing = Pricing.model_validate(
        {"deployment": {"usd_per_hour": 3.6, "tokens_per_second": 1000}}
    )
    assert Pricing.model_validate(pricing.model_dump(by_alias=True)) == pricing
    assert Pricing.model_validate(pricing.model_dump()) == pricing
