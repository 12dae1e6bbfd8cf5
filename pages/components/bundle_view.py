"""Drawing helpers of the Export and Predict pages, and the one-per-run store of the built bundle.

Building a bundle takes seconds (ONNX export + parity check), so it happens once per run: the zip is
written into the workspace (``exports/<run id>.zip``) and its report kept as workspace state
``bundle``. Every later rerun, page switch or refresh reads them back instead of building again.

The parity check and the bundle's sample input use the data in the workspace when it fits the run:
the table's rows (a table, text or anomaly model), the whole series (a forecast: every window is
checked), or the image zip (an image model). Without fitting data the check uses made-up inputs
and the bundle says so.

On the Predict page the model is either the run just trained or an uploaded bundle; both have
``predict(raw, **opts)``, ``preprocessor`` and ``data_spec``, so the rest of the page does not care
which. Uploaded bundles are read once per content (cached by their SHA-256).
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from builder.data import parse_numeric
from builder.data.images import ImageSet, read_image_zip
from builder.data.preprocess import parse_datetime
from builder.data.sources import kind_of
from builder.errors import BuilderError
from builder.export import (
    PARITY_TOLERANCE,
    SAMPLE_FILE,
    SAMPLE_FOLDER,
    Bundle,
    bundle_samples,
    input_columns,
    read_bundle,
    write_bundle,
)
from builder.spec import FAMILIES
from builder.wording import count
from pages.components.i18n import shown_as, t, tcount, tm
from pages.components.state import AppState
from pages.components.ui import COLOURS, human_bytes, trained_time

log = logging.getLogger(__name__)

BUNDLE_STATE = "bundle"  # workspace state: the report of the bundle built for a run
SAMPLE_MEMBER = SAMPLE_FILE
EARLIEST, LATEST = datetime.date(1900, 1, 1), datetime.date(2100, 12, 31)  # the form's date picker range


# --- Export: build once per run, then reuse -----------------------------------------------------------


@dataclass(frozen=True)
class SavedBundle:
    """A bundle built for one run, as the Export page shows it."""

    run_id: str
    path: Path
    file_name: str
    files: list[dict[str, Any]]  # {"name", "size", "purpose"}, in the zip's order
    parity_max_diff: float
    parity_rows: int
    seconds: float
    kind: str = "table"
    sample_text: str = "5 example rows (sample_input.csv)"  # what of the user's data the zip holds
    notes: list[str] = field(default_factory=list)  # the export's warnings (e.g. no sample data)

    @property
    def parity_ok(self) -> bool:
        return self.parity_max_diff <= PARITY_TOLERANCE

    def data(self) -> bytes:
        return self.path.read_bytes()


def slug(text: str) -> str:
    """'Iris flowers (sample)' -> 'iris-flowers'; 'Titanic.csv' -> 'titanic'."""
    text = re.sub(r"\(sample\)|\.(csv|tsv|txt|xlsx|xlsm|parquet|jsonl?|ndjson|zip)$", "", text.strip(), flags=re.I)
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "model"


def bundle_file_name(state: AppState) -> str:
    """The zip's name from the data and the model family, e.g. ``titanic-mlp-bundle.zip``."""
    family = state.trained.spec.effective_family() if state.trained else "model"
    return f"{slug(state.table_name or 'model')}-{slug(family)}-bundle.zip"


def _bundle_path(state: AppState) -> Path:
    return state.workspace.root / "exports" / f"{state.run_id or 'current'}.zip"


def saved_bundle(state: AppState) -> SavedBundle | None:
    """The bundle already built for the current run, or ``None``."""
    info = state.workspace.load_state(BUNDLE_STATE)
    path = _bundle_path(state)
    if not info or info.get("run_id") != state.run_id or not path.is_file():
        return None
    extra = {key: info[key] for key in ("kind", "sample_text", "notes") if key in info}
    return SavedBundle(state.run_id, path, info["file_name"], info["files"], float(info["parity_max_diff"]),
                       int(info["parity_rows"]), float(info["seconds"]), **extra)


def export_sample(state: AppState) -> pd.DataFrame | ImageSet | None:
    """The workspace's data, when it fits the current run, for the parity check and the sample input.

    A table, text or anomaly model: the table if it has every input column; a forecast: the whole
    table (the history); an image model: the image zip's images if they have the run's classes.
    ``None`` when the data does not fit (another file was loaded since training).
    """
    pre = state.trained.preprocessor
    if kind_of(pre) == "images":
        images = _workspace_images(state)
        if images is not None and list(images.classes) == [str(c) for c in pre.classes]:
            return images
        return None
    df = state.df
    if df is not None and set(input_columns(pre)) <= set(df.columns):
        return df
    return None


def _workspace_images(state: AppState) -> ImageSet | None:
    images = getattr(state, "images", None)  # the Data page keeps the read zip here
    if isinstance(images, ImageSet):
        return images
    found = getattr(state.workspace, "image_zip_path", lambda: None)()
    if found is None:
        return None
    try:
        return read_image_zip(found[1])
    except BuilderError as exc:
        log.warning("the saved image zip could not be read for the bundle: %s", exc)
        return None


def _sample_text(kind: str, path: Path) -> str:
    """What of the user's data the zip holds, in words, read back from the zip itself.

    Kept in English in the workspace, like the export's notes; the page shows both through ``tm``.
    """
    sample = bundle_samples(path)
    if kind == "images":
        return f"{count(len(sample), 'example image')} ({SAMPLE_FOLDER}/)" if len(sample) else "no images"
    if not len(sample):
        return f"no rows, only the column names ({SAMPLE_FILE})"
    if kind == "series":
        return f"the latest {len(sample)} rows of the series ({SAMPLE_FILE})"
    return f"{len(sample)} example rows ({SAMPLE_FILE})"


def build_bundle(state: AppState) -> SavedBundle:
    """Write the current run's bundle into the workspace (replacing older runs' zips) and remember it.

    Raises:
        BundleError: the model cannot be exported or the ONNX model disagrees with the app.
    """
    kind = kind_of(state.trained.preprocessor)
    sample = export_sample(state)
    path = _bundle_path(state)
    for old in path.parent.glob("*.zip"):
        old.unlink(missing_ok=True)  # one bundle per workspace is enough: it is rebuilt in seconds
    report = write_bundle(state.trained, path, sample_rows=sample)
    info = {"run_id": state.run_id, "file_name": bundle_file_name(state),
            "files": [{"name": f.name, "size": f.size, "purpose": f.purpose} for f in report.files],
            "parity_max_diff": report.parity_max_diff, "parity_rows": report.parity_rows,
            "seconds": report.seconds, "kind": kind, "sample_text": _sample_text(kind, path),
            "notes": list(report.warnings)}
    state.workspace.save_state(BUNDLE_STATE, info)
    return saved_bundle(state)


BUILD_REQUEST = "export_build_request"  # session state: the run whose bundle the user asked for


def request_build(run_id: str | None) -> None:
    """The Export button's callback. It runs before the page, at the start of the run the click
    starts, and the request it leaves stays until a run of the page acts on it: so a click is not
    lost when another rerun overtakes the one carrying it (a button's own True lasts one run, and
    any run that ends first resets it)."""
    st.session_state[BUILD_REQUEST] = run_id


def bundle_bytes(state: AppState) -> bytes:
    """The zip of the current run: built the first time, read back afterwards."""
    saved = saved_bundle(state) or build_bundle(state)
    return saved.data()


def file_table(saved: SavedBundle) -> None:
    purpose = t("What it is for")
    rows = pd.DataFrame({t("File"): [f["name"] for f in saved.files],
                         t("Size"): [human_bytes(f["size"]) for f in saved.files],
                         purpose: [tm(f["purpose"]) for f in saved.files]})
    st.dataframe(rows, hide_index=True, width="stretch", height="content",
                 column_config={purpose: st.column_config.TextColumn(width="large")})


def inputs_checked(kind: str, n: int) -> str:
    """What the parity check compared, counted: "150 rows", "41 images", "11 texts", "80 windows of the series"."""
    noun, plural = {"images": ("image", None), "text": ("text", None),
                    "series": ("window of the series", "windows of the series")}.get(kind, ("row", None))
    return tcount(n, noun, plural)


def model_summary(state: AppState) -> str:
    """One sentence of what the trained model does, for the top of the Export page."""
    trained = state.trained
    pre, kind, task = trained.preprocessor, kind_of(trained.preprocessor), trained.task
    family = family_title(state)
    if task == "anomaly":
        return t("Your **{family}** scores how unusual a row is, from {n} columns.", family=family,
                 n=len(input_columns(pre)))
    if task == "forecast":
        return t("Your **{family}** forecasts the next {horizon} steps of **'{target}'** from the last {window}.",
                 family=family, horizon=pre.horizon, target=pre.target, window=pre.window)
    if kind == "images":
        shape = pre.input_shape
        return t("Your **{family}** tells {n} classes of images apart ({width}x{height} pixels).", family=family,
                 n=len(pre.classes), width=shape[2], height=shape[1])
    if kind == "text":
        return t("Your **{family}** predicts **'{target}'** from the text in '{column}'.", family=family,
                 target=trained.data_spec.target, column=pre.text_column)
    return t("Your **{family}** predicts **'{target}'** from {n} columns.", family=family,
             target=trained.data_spec.target, n=len(trained.data_spec.features))


def _recipes(saved: SavedBundle) -> tuple[str, str, str]:
    """(the command line, how raw input is made in Python, the prediction call) for the bundle's kind."""
    names = {f["name"] for f in saved.files}
    if saved.kind == "images":
        folder = SAMPLE_FOLDER if any(n.startswith(f"{SAMPLE_FOLDER}/") for n in names) else "my_images"
        return (f"python predict.py {folder} > predictions.csv   # {t('or a .zip of images, or one image')}",
                f'files, images = read_images("{folder}")  # {t("a folder, a .zip or one image file")}',
                "pre.predict_with(images, run, files=files)")
    sample = SAMPLE_FILE if SAMPLE_FILE in names else "new_rows.csv"
    return (f"python predict.py {sample} > predictions.csv", f'rows = read_rows("{sample}")',
            "pre.predict_with(rows, run)")


def how_to_use(saved: SavedBundle, state: AppState) -> None:
    """Three short recipes with the real file names, for the bundle's kind of data."""
    folder = saved.file_name.removesuffix(".zip")
    command, raw, call = _recipes(saved)
    reader = "read_images" if saved.kind == "images" else "read_rows"
    output = {"forecast": t("one row per future step"), "anomaly": "anomaly_score, is_anomaly"}.get(
        state.trained.task if state.trained else "", t("prediction + probabilities"))
    cli, onnx, torch_tab = st.tabs([t("Command line (predict.py)"), t("Python with onnxruntime"),
                                    t("PyTorch (model.py)")])
    with cli:
        st.caption(t("For a colleague who runs scripts (no coding needed in this app: use the Predict page). "
                     "One command turns new data into predictions."))
        st.code(f"unzip {saved.file_name} -d {folder}\ncd {folder}\npip install -r requirements.txt\n{command}",
                language="bash")
    with onnx:
        st.caption(t("Inside your own Python code, next to the bundle's files; needs only numpy, pandas and "
                     "onnxruntime (and Pillow).") if saved.kind == "images" else
                   t("Inside your own Python code, next to the bundle's files; needs only numpy, pandas and "
                     "onnxruntime."))
        own_code = t("the app's own code, in the bundle")
        st.code("import onnxruntime as ort\n\n"
                f"from predict import load_preprocessor, {reader}, runner  # {own_code}\n\n"
                "pre = load_preprocessor()\n"
                'run = runner(ort.InferenceSession("model.onnx"), pre.n_outputs)\n'
                f"{raw}\nprint({call})  # {output}", language="python")
    with torch_tab:
        st.caption(t("To fine-tune or inspect the network; needs torch and safetensors."))
        plain = t("the network as plain PyTorch code, in eval mode")
        st.code("import torch\n\n"
                "from model import load\n"
                f"from predict import load_preprocessor, {reader}\n\n"
                f'net = load("model.safetensors")  # {plain}\n'
                "pre = load_preprocessor()\n"
                "run = lambda X: net(torch.from_numpy(X)).detach().numpy()\n"
                f"{raw}\nwith torch.no_grad():\n    print({call})", language="python")


def family_title(state: AppState) -> str:
    family = FAMILIES.get(state.trained.spec.effective_family()) if state.trained else None
    return tm(family.title) if family else t("model")


def trained_when(state: AppState) -> str:
    """' on 2026-11-23 15:25:07' (when the run was trained, as every page says it), or '' when unknown."""
    stamp = trained_time(state.trained.info) if state.trained else ""
    return t(" on {stamp}", stamp=stamp) if stamp else ""


# --- Predict: the model, its inputs, and the predictions ----------------------------------------------


@dataclass
class LoadedBundle:
    """An uploaded bundle read back, with the sample input it carries: raw rows (may be empty), or
    for an image model its example images as ``(name, bytes)``."""

    bundle: Bundle
    sample: pd.DataFrame
    sample_images: list[tuple[str, bytes]] = field(default_factory=list)


@st.cache_resource(show_spinner=False, max_entries=4)
def _read_uploaded(digest: str, _data: bytes) -> LoadedBundle:
    # Keyed by the content's hash: the same file is read once; a different file is a new entry.
    bundle = read_bundle(_data)
    sample = bundle_samples(_data)
    if isinstance(sample, pd.DataFrame):
        return LoadedBundle(bundle, sample)
    return LoadedBundle(bundle, pd.DataFrame(), list(sample))


def load_uploaded_bundle(data: bytes) -> tuple[str, LoadedBundle]:
    """(a short key for widget names, the bundle). Raises ``BundleError`` for a wrong or unsafe file."""
    digest = hashlib.sha256(data).hexdigest()
    with st.spinner(t("Reading the bundle...")):
        return digest[:12], _read_uploaded(digest, data)


def form_columns(preprocessor: Any) -> list[dict[str, Any]]:
    """The fitted state of each input column (name, kind, fill, categories...), in input order.

    Only a table model has such columns; for images, text and series the list is empty.
    """
    if kind_of(preprocessor) != "table":
        return []
    return preprocessor.to_dict()["columns"]


def _tidy_number(number: float) -> float:
    """39.150000000000006 -> 39.15: a median or a parsed cell, as a person would type it."""
    return float(f"{float(number):.10g}")


def _field_value(column: dict[str, Any], raw: Any) -> Any:
    """A raw table value as the form widget of ``column`` holds it (``None`` when missing)."""
    kind = column["kind"]
    if kind == "numeric":
        number = parse_numeric(pd.Series([raw], dtype=object))[0]
        return None if np.isnan(number) else _tidy_number(number)
    if raw is None or (isinstance(raw, float) and np.isnan(raw)) or str(raw).strip() == "":
        return None
    if kind == "boolean":
        return "yes" if str(raw).strip().lower() in ("true", "yes", "y", "t", "1", "1.0") else "no"
    if kind == "datetime":
        stamp = parse_datetime(pd.Series([raw]), column.get("format")).iloc[0]
        return None if pd.isna(stamp) else stamp.date()
    return str(raw).strip()


def _date_text(column: dict[str, Any], day: datetime.date | None) -> str | None:
    """A picked date written the way the training file wrote dates, so it parses the same way."""
    if day is None:
        return None
    fmt = column.get("format")
    return day.strftime(fmt) if fmt and fmt.startswith("%") else day.isoformat()


def fill_form(key: str, columns: list[dict[str, Any]], sample: pd.DataFrame) -> None:
    """Button callback: copy the next sample row into the form's widgets."""
    if sample.empty:
        return
    turn = st.session_state.get(f"{key}:turn", -1) + 1
    st.session_state[f"{key}:turn"] = turn
    row = sample.iloc[turn % len(sample)]
    for column in columns:
        if column["name"] in row.index:
            st.session_state[f"{key}:{column['name']}"] = _field_value(column, row[column["name"]])


def default_value(column: dict[str, Any]) -> Any:
    kind, fill = column["kind"], column.get("fill")
    if kind == "numeric":
        return _tidy_number(fill) if fill is not None else None
    if kind == "boolean":
        return "yes" if fill else "no"
    if kind == "datetime":
        return None
    return fill


def one_row_form(key: str, columns: list[dict[str, Any]]) -> pd.DataFrame:
    """A widget per input column (number, known categories + own text, yes/no); returns one raw row."""
    values: dict[str, Any] = {}
    grid = st.columns(3)
    for i, column in enumerate(columns):
        name, kind, widget_key = column["name"], column["kind"], f"{key}:{column['name']}"
        if widget_key not in st.session_state:
            st.session_state[widget_key] = default_value(column)
        with grid[i % 3]:
            if kind == "numeric":
                big = max(abs(column.get("mean") or 0.0), column.get("std") or 0.0) >= 1000  # no 1.2e+06 for money
                values[name] = st.number_input(name, key=widget_key, format="%.2f" if big else "%g",
                                               placeholder=t("(empty)"),
                                               help=t("A number; left empty, the model uses {fill:g}.",
                                                      fill=column["fill"]))
            elif kind == "boolean":
                values[name] = st.selectbox(name, ["yes", "no"], key=widget_key,
                                            format_func=shown_as(["yes", "no"]))
            elif kind == "datetime":
                picked = st.date_input(name, key=widget_key, format="YYYY-MM-DD", min_value=EARLIEST,
                                       max_value=LATEST, help=t("Left empty, the model uses a typical date."))
                values[name] = _date_text(column, picked)
            else:
                values[name] = st.selectbox(name, column["categories"], key=widget_key, accept_new_options=True,
                                            placeholder=t("(empty)"),
                                            help=t("Pick a known value or type another one."))
    return pd.DataFrame([{name: np.nan if value is None else value for name, value in values.items()}])


def predictions_csv(predictions: pd.DataFrame) -> bytes:
    """The predictions file: one row per input row in input order, ``prediction`` then
    ``probability_<class>`` columns, as the bundle's predict.py writes it."""
    return predictions.to_csv(index=False).encode("utf-8")


def _probability_columns(predictions: pd.DataFrame) -> list[str]:
    return [c for c in predictions.columns if str(c).startswith("probability_")]


def predictions_table(rows: pd.DataFrame, predictions: pd.DataFrame, features: list[str], target: str | None) -> None:
    """Predictions (probabilities as %) next to the input rows they belong to."""
    shown = [c for c in [*features, target] if c is not None and c in rows.columns and c not in predictions.columns]
    table = pd.concat([predictions.reset_index(drop=True), rows[shown].reset_index(drop=True)], axis=1)
    config: dict[str, Any] = {"prediction": st.column_config.Column(t("Prediction"))}
    for column in _probability_columns(predictions):
        config[column] = chance_column(column)
    if target in shown:
        config[target] = st.column_config.Column(t("{target} (in your file)", target=target))
    st.dataframe(table, hide_index=True, width="stretch", column_config=config, height=min(38 + 35 * len(table), 420))


def chance_column(column: str) -> Any:
    """The display of a ``probability_<class>`` column: "Chance of <class>", as a percentage bar."""
    return st.column_config.ProgressColumn(t("Chance of {label}", label=column.removeprefix("probability_")),
                                           format="percent", min_value=0.0, max_value=1.0)


def probability_figure(predictions: pd.DataFrame) -> go.Figure:
    """A horizontal bar per class for the first row, the predicted class in the accent colour."""
    columns = _probability_columns(predictions)
    labels = [c.removeprefix("probability_") for c in columns]
    chances = predictions.iloc[0][columns].to_numpy(dtype=np.float64)
    best = int(chances.argmax())
    fig = go.Figure(go.Bar(x=chances, y=labels, orientation="h", text=[f"{p:.0%}" for p in chances],
                           textposition="outside", cliponaxis=False, textfont=dict(size=14),
                           marker_color=[COLOURS["model"] if i == best else COLOURS["baseline"]
                                         for i in range(len(labels))]))
    fig.update_layout(template="plotly_white", height=80 + 44 * len(labels), margin=dict(l=10, r=40, t=10, b=10),
                      font=dict(family="Inter, Source Sans Pro, sans-serif", size=14, color="#3C4043"),
                      xaxis=dict(range=[0, 1], tickformat=".0%", title_text=t("chance")),
                      yaxis=dict(autorange="reversed", tickfont=dict(size=14)), showlegend=False)
    return fig


def score_against_target(rows: pd.DataFrame, predictions: pd.DataFrame, target: str | None, task: str) -> str | None:
    """When the uploaded rows also hold the answer, say how often the model got it right."""
    if target is None or target not in rows.columns or not len(rows):
        return None
    actual = rows[target].reset_index(drop=True)
    if task == "regression":
        numbers = parse_numeric(actual)
        known = ~np.isnan(numbers)
        if not known.any():
            return None
        error = np.abs(predictions["prediction"].to_numpy(dtype=np.float64)[known] - numbers[known]).mean()
        return t("Your file also has '{target}': on its {n} rows the model is off by {error:,.4g} on average.",
                 target=target, n=int(known.sum()), error=error)
    known = actual.notna().to_numpy()
    if not known.any():
        return None
    same = actual[known].astype(str).str.strip().to_numpy() == predictions["prediction"][known].astype(str).to_numpy()
    return t("Your file also has '{target}': the model got {right} of {n} rows right ({share:.0%}).",
             target=target, right=int(same.sum()), n=int(known.sum()), share=same.mean())
