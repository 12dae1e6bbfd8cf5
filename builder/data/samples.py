"""Small sample tables to try the builder without a file of one's own.

All come bundled with scikit-learn (no download). Class numbers are replaced by readable labels and
the target is a named column of the table, so a sample looks like a file an analyst would upload.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import pandas as pd
from sklearn import datasets

from builder.errors import DataError


class Sample(NamedTuple):
    """How a sample is presented: a title, one line about it, its column to predict and task."""

    title: str
    description: str
    target: str
    task: str


SAMPLES: dict[str, Sample] = {
    "iris": Sample(
        "Iris flowers",
        "150 flowers measured in cm; predict the species (3 kinds).",
        "species",
        "multiclass",
    ),
    "wine": Sample(
        "Wine cultivars",
        "178 Italian wines by chemical analysis; predict which of 3 cultivars made each.",
        "cultivar",
        "multiclass",
    ),
    "breast_cancer": Sample(
        "Breast cancer biopsies",
        "569 tumour cell measurements; predict malignant or benign.",
        "diagnosis",
        "binary",
    ),
    "diabetes": Sample(
        "Diabetes progression",
        "442 patients' age, BMI, blood pressure and blood tests; predict disease progression "
        "a year later.",
        "progression",
        "regression",
    ),
    "digits": Sample(
        "Handwritten digits",
        "1,797 images of 8x8 pixels as 64 columns (0-16); predict the digit 0-9.",
        "digit",
        "multiclass",
    ),
}

# scikit-learn's short blood-test names, spelled out for analysts.
_DIABETES_COLUMNS = {
    "s1": "total_cholesterol",
    "s2": "ldl",
    "s3": "hdl",
    "s4": "cholesterol_hdl_ratio",
    "s5": "log_triglycerides",
    "s6": "blood_sugar",
}


def _labelled(bunch, target: str, labels: list[str] | None) -> pd.DataFrame:
    frame = bunch.frame.rename(columns={"target": target})
    if labels is not None:
        frame[target] = frame[target].map(dict(enumerate(labels))).astype("str")
    return frame


_LOADERS: dict[str, Callable[[], pd.DataFrame]] = {
    "iris": lambda: _labelled(
        datasets.load_iris(as_frame=True), "species", ["setosa", "versicolor", "virginica"]
    ),
    "wine": lambda: _labelled(
        datasets.load_wine(as_frame=True), "cultivar", ["cultivar 1", "cultivar 2", "cultivar 3"]
    ),
    # scikit-learn codes malignant as 0 and benign as 1.
    "breast_cancer": lambda: _labelled(
        datasets.load_breast_cancer(as_frame=True), "diagnosis", ["malignant", "benign"]
    ),
    # Unscaled, so age is in years and blood pressure in mm Hg, as an analyst would have them.
    "diabetes": lambda: _labelled(
        datasets.load_diabetes(as_frame=True, scaled=False), "progression", None
    ).rename(columns=_DIABETES_COLUMNS),
    "digits": lambda: _labelled(datasets.load_digits(as_frame=True), "digit", None),
}


def load_sample(name: str) -> pd.DataFrame:
    """Load a sample table, its column to predict included (see ``SAMPLES[name].target``).

    Args:
        name: a key of ``SAMPLES``.

    Returns:
        A new DataFrame each call.

    Raises:
        DataError: there is no sample of that name (the message lists them).
    """
    if name not in _LOADERS:
        raise DataError(f"There is no sample named '{name}'. Samples: {', '.join(SAMPLES)}.")
    return _LOADERS[name]()
