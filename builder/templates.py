"""Starter designs, one per model family, sized from the data.

A user who only clicks "Next" gets these, so they must train well without tuning: widths follow
the number of input features, depth and dropout follow the number of rows (small tables overfit
a deep network; large ones can feed it).
"""

from __future__ import annotations

from builder.errors import SpecError
from builder.spec import FAMILIES, LayerSpec, ModelSpec

SMALL_TABLE_ROWS = 1_000  # below this, one hidden layer and more dropout generalise better


def hidden_width(n_features: int) -> int:
    """A power of two near twice the feature count, kept between 32 and 256."""
    width = 32
    while width < 2 * n_features and width < 256:
        width *= 2
    return width


def starter_spec(family: str, n_features: int, n_rows: int) -> ModelSpec:
    """Return the starter design for ``family`` on data with ``n_features`` inputs and ``n_rows`` rows.

    Raises:
        SpecError: ``family`` is not one of ``FAMILIES``.
    """
    if family not in FAMILIES:
        raise SpecError(f"Unknown model family {family!r}. Choose one of: {', '.join(FAMILIES)}.")
    if family in ("linear", "logistic"):
        return ModelSpec(family=family, layers=[])  # one Linear layer: the output head alone
    width = hidden_width(n_features)
    small = n_rows < SMALL_TABLE_ROWS
    dropout = 0.2 if small else 0.1
    layers = [LayerSpec("Linear", {"out_features": width, "bias": True}), LayerSpec("ReLU"),
              LayerSpec("Dropout", {"p": dropout})]
    if not small:
        layers += [LayerSpec("Linear", {"out_features": width // 2, "bias": True}), LayerSpec("ReLU"),
                   LayerSpec("Dropout", {"p": dropout})]
    return ModelSpec(family=family, layers=layers).with_defaults()


def default_family(task: str) -> str:
    """The family ``--model auto`` picks for a table: an MLP, whatever the task."""
    return "mlp"
