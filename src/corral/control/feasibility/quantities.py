"""Kubernetes resource quantities (``500m``, ``12Gi``, ``1e3``) as numbers."""

from __future__ import annotations

from decimal import Decimal

_SUFFIXES = {
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "T": Decimal(10**12),
    "P": Decimal(10**15),
}
GIB = 2**30


def parse_quantity(value: object) -> float:
    """The quantity's value in base units (cores, bytes, devices); ValueError if malformed."""
    text = str(value).strip()
    for suffix in sorted(_SUFFIXES, key=len, reverse=True):
        if text.endswith(suffix) and text[: -len(suffix)]:
            return float(Decimal(text[: -len(suffix)]) * _SUFFIXES[suffix])
    return float(Decimal(text))
