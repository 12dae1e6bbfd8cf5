"""Small samples to try the builder without a file of one's own.

``SAMPLES`` are tables bundled with scikit-learn (no download). Class numbers are replaced by
readable labels and the target is a named column of the table, so a sample looks like a file an
analyst would upload.

``KIND_SAMPLES`` show the other kinds of data: scikit-learn's handwritten digits written as an
image zip (one folder per digit, built in memory), a generated daily sales series and generated
customer messages. Each comes with the ``DataSpec`` it is meant for (``kind_sample_spec``).
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from PIL import Image
from sklearn import datasets

from builder.data.prepare import DataSpec
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


# --- samples of the other kinds of data: images, a time series, texts ------------------------------


class KindSample(NamedTuple):
    """A sample that is not a plain table: how it is presented and the data choices it comes with."""

    title: str
    description: str
    kind: str  # "images", "series" or "text" (DataSpec.kind)
    file_name: str  # the name it is saved under, as if uploaded
    spec: dict[str, Any]  # DataSpec.to_dict() of the choices it is meant for


KIND_SAMPLES: dict[str, KindSample] = {
    "digit_images": KindSample(
        "Handwritten digit pictures",
        "1,797 small pictures of handwritten digits, one folder per digit; learn to read them.",
        "images",
        "digit-pictures.zip",
        {"target": None, "task": "multiclass", "features": [], "kind": "images",
         "options": {"augment": True}},
    ),
    "daily_sales": KindSample(
        "Daily shop sales",
        "Two years of a shop's daily sales and the temperature, closed on public holidays; "
        "forecast the next day.",
        "series",
        "daily-sales.csv",
        {"target": "sales", "task": "forecast", "features": ["sales"], "kind": "series",
         "options": {"time_column": "date", "window": 28, "horizon": 1, "stride": 1, "fill": "forward"}},
    ),
    "customer_messages": KindSample(
        "Customer messages",
        "800 messages to a web shop's support team; tell billing, delivery, login and product "
        "questions apart.",
        "text",
        "customer-messages.csv",
        {"target": "topic", "task": "multiclass", "features": ["message"], "kind": "text",
         "options": {"text_column": "message"}},
    ),
}

DIGIT_PICTURE_SIDE = 16  # pixels; scikit-learn's digits are 8x8, enlarged so a CNN can pool twice


def digit_pictures_zip(side: int = DIGIT_PICTURE_SIDE) -> bytes:
    """scikit-learn's handwritten digits as a zip of PNG pictures, ``digits/<digit>/<n>.png``.

    Args:
        side: width and height of each picture in pixels (the 8x8 scans are enlarged smoothly).

    Returns:
        The zip's bytes (about 0.5 MB).
    """
    digits = datasets.load_digits()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for i, (pixels, label) in enumerate(zip(digits.images, digits.target, strict=True)):
            ink = (pixels * (255.0 / 16.0)).round().astype(np.uint8)  # (8, 8), 0-16 -> 0-255
            picture = Image.fromarray(255 - ink, mode="L")  # dark ink on white paper, as scanned
            picture = picture.resize((side, side), Image.Resampling.BILINEAR)
            png = io.BytesIO()
            picture.save(png, format="PNG")
            zf.writestr(f"digits/{int(label)}/{i:04d}.png", png.getvalue())
    return buffer.getvalue()


HOLIDAYS = ("01-01", "05-01", "12-25", "12-26")  # the shop is closed: these days have no row


def daily_sales(days: int = 730, seed: int = 7) -> pd.DataFrame:
    """A shop's daily sales: trend, busy weekends, a summer high, warm days sell more, noise.

    Returns:
        Columns ``date`` (text, 2023-01-01 on), ``sales`` and ``temperature`` (deg C), in time
        order; public holidays (``HOLIDAYS``) are missing, as a shop's till export would have it.
    """
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2023-01-01", periods=days, freq="D")
    t = np.arange(days)
    year = 2 * np.pi * (dates.day_of_year.to_numpy() - 1) / 365.25
    temperature = 11 - 9 * np.cos(year) + rng.normal(0, 2.5, days)  # (days,), coldest in January
    weekend = np.isin(dates.day_of_week.to_numpy(), (4, 5))  # Friday and Saturday are busiest
    sales = (1_200 + 0.6 * t + 260 * weekend - 90 * (dates.day_of_week.to_numpy() == 6)
             + 14 * (temperature - 11) + rng.normal(0, 45, days))
    frame = pd.DataFrame({"date": dates.strftime("%Y-%m-%d"), "sales": sales.round(2),
                          "temperature": temperature.round(1)})
    closed = dates.strftime("%m-%d").isin(HOLIDAYS)
    return frame[~closed].reset_index(drop=True)


_TOPIC_WORDS = {
    "billing": ["invoice", "charged twice", "refund", "payment", "credit card", "bill", "receipt",
                "price", "discount code", "VAT", "bank transfer", "overcharged"],
    "delivery": ["parcel", "delivery", "courier", "tracking number", "shipped", "arrived late",
                 "address", "package", "delivered to the wrong", "postage", "dispatch", "lost in transit"],
    "login": ["password", "log in", "account", "locked out", "reset link", "email address",
              "two-factor code", "username", "sign in", "verification email", "profile", "app keeps logging me out"],
    "product": ["size", "colour", "broken", "instructions", "battery", "warranty", "fits",
                "material", "stopped working", "spare part", "quality", "does it work with"],
}
_FILLER = ["hello", "hi", "please", "thanks", "thank you", "I", "my", "the", "order", "today",
           "yesterday", "can you", "help", "again", "still", "why", "is", "it", "was", "a", "with",
           "urgent", "kind regards", "any news", "last week", "not happy", "quick question"]


def customer_messages(n: int = 800, seed: int = 3) -> pd.DataFrame:
    """Messages to a web shop's support team, each about one of four topics.

    A message mixes a few words of its topic with everyday filler and, sometimes, a word of
    another topic, so the topics overlap as real messages do.

    Returns:
        Columns ``message`` (text) and ``topic`` ("billing", "delivery", "login", "product").
    """
    rng = np.random.default_rng(seed)
    topics = sorted(_TOPIC_WORDS)
    messages, labels = [], []
    for _ in range(n):
        topic = topics[int(rng.integers(len(topics)))]
        words = list(rng.choice(_TOPIC_WORDS[topic], size=int(rng.integers(2, 5)), replace=False))
        words += list(rng.choice(_FILLER, size=int(rng.integers(4, 10))))
        if rng.random() < 0.35:  # another topic's word: real messages are not clean
            other = topics[int(rng.integers(len(topics)))]
            words.append(str(rng.choice(_TOPIC_WORDS[other])))
        rng.shuffle(words)
        text = " ".join(words)
        messages.append(text[:1].upper() + text[1:] + str(rng.choice([".", "!", "?", "..."])))
        labels.append(topic)
    return pd.DataFrame({"message": messages, "topic": labels})


_KIND_LOADERS: dict[str, Callable[[], pd.DataFrame | bytes]] = {
    "digit_images": digit_pictures_zip,
    "daily_sales": daily_sales,
    "customer_messages": customer_messages,
}


def load_kind_sample(name: str) -> pd.DataFrame | bytes:
    """Load a sample of ``KIND_SAMPLES``: the image zip's bytes, or the table of a series or texts.

    Raises:
        DataError: there is no such sample (the message lists them).
    """
    if name not in _KIND_LOADERS:
        raise DataError(f"There is no sample named '{name}'. Samples: {', '.join(KIND_SAMPLES)}.")
    return _KIND_LOADERS[name]()


def kind_sample_spec(name: str) -> DataSpec:
    """The data choices a sample of ``KIND_SAMPLES`` is meant for."""
    return DataSpec.from_dict(KIND_SAMPLES[name].spec)
