"""Admission limits a key, a team or the platform defaults can carry."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

MICROS_PER_USD = 1_000_000


class Limits(BaseModel):
    """Rate, concurrency and budget limits; an unset field means "no limit of this kind here"."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rpm: int | None = Field(None, ge=1, description="Requests per minute.")
    tpm: int | None = Field(
        None, ge=1, description="Tokens per minute (prompt estimate + max_tokens at admission)."
    )
    max_concurrent: int | None = Field(None, ge=1, description="Requests in flight at once.")
    monthly_budget_usd: float | None = Field(
        None, ge=0, description="US dollars per calendar month (UTC); 0 allows no paid requests."
    )

    @property
    def budget_micros(self) -> int | None:
        """The monthly budget in micro-dollars, the unit every counter uses."""
        if self.monthly_budget_usd is None:
            return None
        return round(self.monthly_budget_usd * MICROS_PER_USD)

    def over(self, defaults: Limits) -> Limits:
        """These limits, with every unset field taken from ``defaults``."""
        own = self.model_dump(exclude_none=True)
        return defaults.model_copy(update=own)
