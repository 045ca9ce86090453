"""A deployment priced by instance type gets the planner table's price at start-up."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from corral.catalog import DeploymentCost
from corral.cli.main import app
from corral.composition.pricing import with_instance_prices
from corral.errors import ConfigError
from corral.settings import CorralSettings


def settings(deployment: dict[str, object]) -> CorralSettings:
    model = {"name": "qwen", "engine": {"kind": "fake"}, "pricing": {"deployment": deployment}}
    return CorralSettings(models=[model])  # type: ignore[list-item]


def test_an_instance_type_is_priced_on_demand_or_spot_from_the_table() -> None:
    # g5.xlarge: $1.006 on demand, $0.45 spot in the packaged table; 2 × 3,600 tokens/hour/s
    on_demand = with_instance_prices(
        settings({"instance_type": "g5.xlarge", "tokens_per_second": 1000})
    )
    cost = on_demand.models[0].pricing.deployment
    assert cost is not None
    assert cost.hourly == pytest.approx(1.006)
    assert on_demand.models[0].pricing.input_per_1m == pytest.approx(1.006 / 3.6)
    spot = with_instance_prices(
        settings({"instance_type": "g5.xlarge", "capacity": "spot", "tokens_per_second": 1000})
    )
    assert spot.models[0].pricing.deployment.hourly == pytest.approx(0.45)  # type: ignore[union-attr]


def test_an_unknown_instance_type_names_the_field_and_close_matches() -> None:
    with pytest.raises(ConfigError) as raised:
        with_instance_prices(settings({"instance_type": "g5.xlarg", "tokens_per_second": 1}))
    message = raised.value.message
    assert message.startswith("models.0.pricing.deployment.instance_type: 'g5.xlarg'")
    assert "g5.xlarge" in message


def test_a_price_is_given_one_way() -> None:
    with pytest.raises(ValidationError, match=r"set usd_per_hour .* or instance_type"):
        DeploymentCost(tokens_per_second=1)
    with pytest.raises(ValidationError, match="one of them"):
        DeploymentCost(usd_per_hour=1.0, instance_type="g5.xlarge", tokens_per_second=1)


def test_an_unresolved_instance_type_is_not_silently_free() -> None:
    cost = DeploymentCost(instance_type="g5.xlarge", tokens_per_second=1)
    with pytest.raises(ConfigError, match="has no price yet"):
        cost.usd_per_1m_tokens  # noqa: B018


def test_config_check_prices_instance_types(tmp_path: Path) -> None:
    path = tmp_path / "corral.yaml"
    path.write_text(
        "models:\n  - name: qwen\n    engine: {kind: fake}\n"
        "    pricing: {deployment: {instance_type: g6.xlarg, tokens_per_second: 500}}\n"
    )
    result = CliRunner().invoke(app, ["config", "check", str(path)])
    assert isinstance(result.exception, ConfigError)  # main() prints it as a clear message
    assert "did you mean g6.xlarge" in result.exception.message
