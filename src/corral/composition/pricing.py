"""Self-hosted prices from the planner's instance table, filled into the settings at start-up."""

from __future__ import annotations

import difflib

from corral.control.planner.instances import PriceTable, load_price_table
from corral.errors import ConfigError
from corral.settings import CorralSettings


def with_instance_prices(
    settings: CorralSettings, table: PriceTable | None = None
) -> CorralSettings:
    """``settings`` where every ``pricing.deployment.instance_type`` has its price per hour
    (on-demand or spot, as the deployment says); ConfigError naming the field for an instance
    type the table does not have."""
    if not any(_named(spec.pricing.deployment) for spec in settings.models):
        return settings
    table = table or load_price_table()
    by_name = {instance.name: instance for instance in table.instances}
    models = []
    for index, spec in enumerate(settings.models):
        cost = spec.pricing.deployment
        if cost is None or cost.instance_type is None:
            models.append(spec)
            continue
        instance = by_name.get(cost.instance_type)
        if instance is None:
            close = difflib.get_close_matches(cost.instance_type, by_name, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ConfigError(
                f"models.{index}.pricing.deployment.instance_type: {cost.instance_type!r} is "
                f"not in the price table ({table.region}, prices of {table.as_of}){hint}"
            )
        hourly = (
            table.spot_price(instance)
            if cost.capacity == "spot"
            else instance.on_demand_usd_per_hour
        )
        priced = cost.model_copy(update={"usd_per_hour": hourly})
        models.append(
            spec.model_copy(
                update={"pricing": spec.pricing.model_copy(update={"deployment": priced})}
            )
        )
    return settings.model_copy(update={"models": models})


def _named(cost: object) -> bool:
    return getattr(cost, "instance_type", None) is not None
