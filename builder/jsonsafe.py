"""Turning engine results into JSON: numpy values to Python values, and strict JSON for files.

``plain`` keeps NaN (Python's json reads its own NaN back, which a saved run's history may hold);
``strict`` also turns NaN and infinity into ``null`` for files and output other tools must read.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

# Values JSON writes as they are: a list of only these is returned without a call per item.
_JSON_SCALARS = frozenset({str, int, float, bool, type(None)})


def plain(value: Any) -> Any:
    """numpy scalars, arrays and tuples as Python values, recursively (NaN kept as a float)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        # Kept test results hold lists of 20,000 numbers: one type check each, not a call each.
        if all(type(v) in _JSON_SCALARS for v in value):
            return list(value)
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    return value


def strict(value: Any) -> Any:
    """``plain``, with NaN and infinity as ``None``: strict JSON any tool can read."""
    value = plain(value)
    if isinstance(value, dict):
        return {k: strict(v) for k, v in value.items()}
    if isinstance(value, list):
        return [strict(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
