"""Kubernetes CEL library functions that cel-python lacks, for those whose meaning is plain."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import re2
from celpy import celtypes
from celpy.evaluation import CELEvalError, base_functions

MACROS = frozenset({"has", "all", "exists", "exists_one", "map", "filter", "dyn"})
"""The CEL macros Kubernetes offers, which cel-python evaluates itself (its extra ``reduce`` and
``min`` macros are not Kubernetes CEL, so rules naming them are not evaluable)."""


def find(text: celtypes.StringType, pattern: celtypes.StringType) -> Any:
    """``s.find(re)``: the first match of the RE2 pattern, or the empty string."""
    try:
        match = re2.search(str(pattern), str(text))
    except re2.error as exc:
        return CELEvalError("invalid regex", exc.__class__, exc.args)
    return celtypes.StringType(match.group(0) if match else "")


def find_all(
    text: celtypes.StringType, pattern: celtypes.StringType, limit: celtypes.IntType | None = None
) -> Any:
    """``s.findAll(re[, n])``: every match (at most ``n`` when ``n`` is not negative)."""
    try:
        found = [m.group(0) for m in re2.finditer(str(pattern), str(text))]
    except re2.error as exc:
        return CELEvalError("invalid regex", exc.__class__, exc.args)
    if limit is not None and int(limit) >= 0:
        found = found[: int(limit)]
    return celtypes.ListType([celtypes.StringType(s) for s in found])


def split(
    text: celtypes.StringType, separator: celtypes.StringType, limit: celtypes.IntType | None = None
) -> Any:
    """``s.split(sep[, n])``: Go's ``strings.SplitN`` (n < 0: all parts, 0: none)."""
    value, sep = str(text), str(separator)
    count = -1 if limit is None else int(limit)
    if count == 0:
        return celtypes.ListType([])
    if sep == "":
        chars = list(value)
        short = count < 0 or len(chars) <= count
        parts = chars if short else [*chars[: count - 1], "".join(chars[count - 1 :])]
    else:
        parts = value.split(sep) if count < 0 else value.split(sep, count - 1)
    return celtypes.ListType([celtypes.StringType(p) for p in parts])


def lower_ascii(text: celtypes.StringType) -> Any:
    """``s.lowerAscii()``: ASCII letters lowered, everything else kept."""
    return celtypes.StringType("".join(c.lower() if c.isascii() else c for c in str(text)))


def upper_ascii(text: celtypes.StringType) -> Any:
    """``s.upperAscii()``: ASCII letters raised, everything else kept."""
    return celtypes.StringType("".join(c.upper() if c.isascii() else c for c in str(text)))


KUBERNETES_SHIMS: dict[str, Callable[..., Any]] = {
    "find": find,
    "findAll": find_all,
    "split": split,
    "lowerAscii": lower_ascii,
    "upperAscii": upper_ascii,
}
"""Kubernetes extension functions (regex and strings libraries) given to cel-python by name."""

SUPPORTED = frozenset(name for name in base_functions if name[0].isalpha()) | frozenset(
    KUBERNETES_SHIMS
)
"""Function names a rule may call and still be evaluated here."""
