"""The model card: the bundle's ``README.md``.

What the model does, its data, how good it is against a baseline, its limits, how to use it and
the files next to it, in words an analyst can pass on.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import builder
from builder.data.preprocess import ANOMALY_TASK
from builder.data.sources import kind_of
from builder.errors import BuilderError
from builder.evaluate import METRICS, format_metric
from builder.export.layout import (
    BUNDLE_MODULES,
    FILE_PURPOSES,
    MANIFEST,
    ONNX_INPUT,
    ONNX_OUTPUT,
    SAMPLE_FILE,
    SAMPLE_FOLDER,
    SAMPLE_PURPOSES,
    WEIGHTS,
)
from builder.export.metrics import PERCENTILES, metrics_document
from builder.spec import FAMILIES
from builder.trained import TrainedModel
from builder.wording import count

TASK_WORDS = {
    "regression": "a number; regression",
    "binary": "one of two classes; binary classification",
    "multiclass": "one of several classes; multiclass classification",
    "forecast": "the next values of a time series; forecasting",
    ANOMALY_TASK: "how unusual each row is; anomaly detection",
}


def model_card(trained: TrainedModel, metrics: dict[str, Any] | None = None,
               samples: Sequence[str] | None = None) -> str:
    """The bundle's ``README.md``: data, task, quality against the baseline, limits, how to use.

    Args:
        trained: the trained model.
        metrics: the ``metrics.json`` document; built here when ``None``.
        samples: the bundle's sample members (``sample_input.csv`` or ``samples/...``).
    """
    metrics = metrics or metrics_document(trained, math.nan, 0)
    kind = kind_of(trained.preprocessor)
    samples = list(samples) if samples is not None else [SAMPLE_FILE]
    family = FAMILIES.get(trained.spec.effective_family())
    family_title = family.title if family else trained.spec.family
    rows = trained.info.get("rows", {})
    unit = {"images": "images", "text": "texts", "series": "windows"}.get(kind, "rows")
    lines = [
        f"# Model card: {_card_title(trained)}",
        "",
        f"Made with the visual model builder {builder.__version__} "
        f"on {trained.info.get('trained_at') or time.strftime('%Y-%m-%d')}.",
        "",
        "## What it does",
        "",
        *_what_it_does(trained),
        "",
        "## Data",
        "",
        *_data_section(trained),
        "",
    ]
    if rows:
        lines.append(
            f"{unit.capitalize()}: " + ", ".join(f"{n:,} for {split}" for split, n in rows.items())
            + f". The test {unit} were never used in training: the scores below come from them."
        )
    if trained.info.get("source"):
        lines.append(f"Source file: `{trained.info['source']}`.")
    shape = trained.input_shape
    lines += [
        "",
        "## Model",
        "",
        f"{family_title}: {count(len(trained.spec.layers), 'layer')} plus the output layer, "
        f"{shape[0] if len(shape) == 1 else 'x'.join(map(str, shape))} inputs "
        f"after preprocessing. Trained for {count(trained.history.epochs_run, 'epoch')} in "
        f"{trained.seconds:.1f} s on {trained.device}; "
        f"the weights of epoch {trained.history.best_epoch} (lowest validation loss) are kept.",
        "",
        "## How good it is (test data)",
        "",
        *_quality_section(trained, metrics),
        "",
        *_cv_section(metrics.get("cross_validation")),
        "## Limits",
        "",
        *_limits(trained, unit),
        "",
        "## How to use it",
        "",
        *_how_to_use(trained, metrics, samples),
        "",
        "A bundle is code: `predict.py`, `serve.py` and the modules beside them run on your machine like "
        "any script. Run only a bundle you trust. Before they predict, both check every file against the "
        "SHA-256 in `bundle.json` and stop if one was changed; they import only the bundle's own modules "
        "from its folder, so a file added there cannot stand in for an installed package.",
        "",
        "## Files",
        "",
        "| File | What it is |",
        "|---|---|",
        *[f"| `{name}` | {purpose} |" for name, purpose in _card_files(kind, samples)],
        "",
    ]
    return "\n".join(lines)


def _card_title(trained: TrainedModel) -> str:
    pre = trained.preprocessor
    kind = kind_of(pre)
    if trained.task == ANOMALY_TASK:
        return "finding unusual rows"
    if trained.task == "forecast":
        return f"forecasting `{pre.target}`"
    if kind == "images":
        return "classifying images"
    if kind == "text":
        return f"predicting `{trained.data_spec.target}` from text"
    return f"predicting `{trained.data_spec.target}`"


def _what_it_does(trained: TrainedModel) -> list[str]:
    pre = trained.preprocessor
    kind = kind_of(pre)
    classes = list(pre.classes)
    answers = [f"Possible answers: {', '.join(f'`{c}`' for c in classes)}."] if classes else []
    if trained.task == ANOMALY_TASK:
        threshold, quantile = pre.threshold, pre.threshold_quantile
        share = f" ({quantile:.0%} of the validation rows score at or below it)" if quantile else ""
        return [
            "It scores how unusual each row is. The network (an autoencoder) squeezes a row through "
            "a narrow layer and rebuilds it; rows like the training rows come back nearly unchanged, "
            "unusual ones do not.",
            "",
            "- `anomaly_score`: the mean squared difference between the row and its rebuild, after "
            "preprocessing (standardised numbers, one column per category). Higher is more unusual.",
            f"- `is_anomaly`: `True` when `anomaly_score` is above the threshold **{_number(threshold)}**{share}, "
            "so a row as ordinary as most training rows is flagged only rarely.",
        ]
    if trained.task == "forecast":
        from builder.data.timeseries import describe_step

        return [
            f"It forecasts the next **{count(pre.horizon, 'step')}** of **{pre.target}** (one step = "
            f"{describe_step(pre.step)}) from the last {pre.window} steps of "
            f"{', '.join(f'`{c}`' for c in pre.columns)}.",
        ]
    answers += _decision_threshold_lines(trained)
    if kind == "images":
        return [f"It tells images apart: each image gets one of {len(classes)} classes, with a probability "
                "for each.", *answers]
    if kind == "text":
        return [f"It reads the text in `{pre.text_column}` and predicts **{trained.data_spec.target}** "
                f"({TASK_WORDS.get(trained.task, trained.task)}).", *answers]
    return [f"It predicts **{trained.data_spec.target}** ({TASK_WORDS.get(trained.task, trained.task)}).",
            *answers]


def _decision_threshold_lines(trained: TrainedModel) -> list[str]:
    """A yes/no model's decision threshold: its value, the rule, and where it was chosen."""
    pre = trained.preprocessor
    threshold = getattr(pre, "decision_threshold", None) if trained.task == "binary" else None
    if threshold is None:
        return []
    negative, positive = (f"`{c}`" for c in pre.classes)
    unit = {"images": "An image", "text": "A text"}.get(kind_of(pre), "A row")
    chosen = pre.decision_threshold_chosen
    if chosen:
        where = f" It was chosen {chosen}."
    elif threshold == 0.5:
        where = " This is the default: no other threshold was chosen."
    else:
        where = ""
    return ["", f"Decision threshold: **{threshold:g}** (0.5 unless one was chosen). {unit} is predicted "
                f"{positive} when the probability of {positive} is above {threshold:g}, otherwise {negative}."
                f"{where} `predict.py --threshold F` applies another threshold for one run."]


def _data_section(trained: TrainedModel) -> list[str]:
    pre = trained.preprocessor
    kind = kind_of(pre)
    if kind == "images":
        channels, height, width = pre.input_shape
        colour = "grayscale" if channels == 1 else "colour (RGB)"
        return [
            "Input: image files (PNG, JPEG, BMP or GIF; the first frame of a GIF). Each image is "
            f"converted to {colour} (transparent parts laid on white), resized to {width}x{height} "
            "pixels (Pillow's bilinear filter), and its pixels are scaled with the mean and spread "
            "of the training images, per channel.",
        ]
    if kind == "text":
        return [
            f"Input: a table with the column `{pre.text_column}` holding the texts. Each text is "
            "normalised (NFKC, lower case) and cut into tokens: words and numbers; in Chinese, "
            "Japanese, Thai and similar scripts every character is a token. Punctuation is dropped.",
            f"The vocabulary holds {pre.vocab_size:,} tokens (padding and 'unknown' included); a "
            f"word never seen in training counts as unknown. The first {pre.max_length} tokens of "
            "a text are read; a missing text reads as empty.",
            *([f"The text is read as a bag of n-grams: each distinct word and pair of neighbouring "
               f"words (up to {pre.ngrams} words) counts once, in any order; the model averages "
               "their learned vectors (fastText-style)."] if pre.ngrams > 1 else []),
        ]
    if kind == "series":
        from builder.data.timeseries import FILL_WORDS, describe_step

        state = pre.to_dict()
        season = f"; one season is {pre.season} steps" if pre.season else ""
        return [
            f"Input: the history of the series as a table: the time column `{pre.time_column}` and the "
            f"value column(s) {', '.join(f'`{c}`' for c in pre.columns)}, in any row order.",
            f"The rows are put on a regular grid of {describe_step(pre.step)}{season}. Rows sharing a "
            "time stamp are averaged, a time stamp off the step moves to the nearest step, and gaps "
            f"and empty values are filled by {FILL_WORDS.get(state.get('fill'), state.get('fill'))}. "
            f"Each column is scaled with the mean and spread of the training part.",
        ]
    kinds = pre.kinds
    return [
        f"Input columns ({len(kinds)}), as they must appear in new files:",
        "",
        "| Column | Read as |",
        "|---|---|",
        *[f"| `{name}` | {how} |" for name, how in kinds.items()],
    ]


def _quality_section(trained: TrainedModel, metrics: dict[str, Any]) -> list[str]:
    if trained.task == "forecast":
        return _forecast_table(metrics)
    if trained.task == ANOMALY_TASK:
        return _anomaly_section(metrics)
    return _metrics_table(trained, metrics)


def _metrics_table(trained: TrainedModel, metrics: dict[str, Any]) -> list[str]:
    test = metrics.get("test") or {}
    if not test:
        return ["No test data was scored."]
    baseline = metrics.get("baseline") or {}
    base_metrics = baseline.get("metrics", {})
    base_name = baseline.get("name", "baseline")
    lines = [
        f"| Metric | This model | {base_name} | Meaning |",
        "|---|---|---|---|",
    ]
    for name, value in test.items():
        info = METRICS.get(name)
        label = info.label if info else name
        meaning = info.help if info else ""
        base = base_metrics.get(name)
        base_text = _fmt(name, base) if base is not None else "-"
        lines.append(f"| {label} | {_fmt(name, value)} | {base_text} | {meaning} |")
    if baseline.get("verdict"):
        lines += ["", baseline["verdict"]]
    if baseline.get("description"):
        lines += ["", f"The baseline: {baseline['description']}"]
    return lines


def _cv_section(cv: dict[str, Any] | None) -> list[str]:
    """Cross-validation: each metric's mean ± spread over the folds, this model's design vs the baseline."""
    if not cv or not cv.get("network"):
        return []
    baseline = cv.get("baseline") or {}
    name = cv.get("baseline_name") or "Baseline"

    def spread(values: dict[str, float] | None, metric: str) -> str:
        return f"{_fmt(metric, values['mean'])} ± {_fmt(metric, values['std'])}" if values else "-"

    lines = [
        "## Cross-validation",
        "",
        f"Before the final model, the same design was trained {cv.get('completed', cv['folds'])} times "
        f"({cv.get('method', 'k-fold')}, {cv['folds']} folds of the rows outside the test set), each "
        "time scored on a different fold, next to the baseline on the same folds. Mean ± standard "
        "deviation over the folds:",
        "",
        f"| Metric | This design | {name} |",
        "|---|---|---|",
    ]
    for metric, values in cv["network"].items():
        info = METRICS.get(metric)
        lines.append(f"| {info.label if info else metric} | {spread(values, metric)} | "
                     f"{spread(baseline.get(metric), metric)} |")
    if cv.get("refit_epochs"):
        lines += ["", f"The final model then learnt from all those rows for {count(cv['refit_epochs'], 'epoch')}, "
                      "the median best epoch of the folds, and its last epoch is kept."]
    return [*lines, ""]


def _forecast_table(metrics: dict[str, Any]) -> list[str]:
    test = metrics.get("test") or {}
    if not test:
        return ["No test windows were scored."]
    naive = metrics.get("forecast_baselines") or {}
    names = list(naive)
    lines = [
        "Errors over every predicted step of every test window, in the units of the series, next "
        "to three naive forecasts any model should beat:",
        "",
        "| Metric | This model | " + " | ".join(f"{n.capitalize()} forecast" for n in names) + " | Meaning |",
        "|---|---|" + "---|" * len(names) + "---|",
    ]
    for name, value in test.items():
        info = METRICS.get(name)
        cells = [_fmt(name, naive[n][name]) if name in naive[n] else "-" for n in names]
        lines.append(f"| {info.label if info else name} | {_fmt(name, value)} | " + " | ".join(cells)
                     + f" | {info.help if info else ''} |")
    baseline = metrics.get("baseline") or {}
    if baseline.get("verdict"):
        best = str(baseline.get("name", "naive forecast")).lower()
        lines += ["", f"The best of them on these test windows is the {best}. {baseline['verdict']}"]
    return lines


def _anomaly_section(metrics: dict[str, Any]) -> list[str]:
    facts = metrics.get("anomaly") or {}
    test = metrics.get("test") or {}
    lines = []
    if test:
        lines += ["| Metric | Test rows | Meaning |", "|---|---|---|"]
        for name, value in test.items():
            info = METRICS.get(name)
            lines.append(f"| {info.label if info else name} | {_fmt(name, value)} | {info.help if info else ''} |")
        lines.append("")
    lines.append(f"Threshold: **{_number(facts.get('threshold'))}**"
                 + (f", the {facts['quantile']:.0%} point of the validation rows' scores."
                    if facts.get("quantile") else "."))
    percentiles = facts.get("error_percentiles") or {}
    if percentiles:
        lines += ["", "Anomaly scores of the held-out rows:", "",
                  "| Rows | Median | 90% below | 99% below | Highest |", "|---|---|---|---|---|"]
        for split, values in percentiles.items():
            lines.append(f"| {split} | " + " | ".join(_number(values.get(k)) for k, _ in PERCENTILES) + " |")
    lines += ["", "There is no baseline: nothing in the data says which rows really are anomalies. "
                  "Check the most unusual rows by hand before you act on them."]
    return lines


def _limits(trained: TrainedModel, unit: str) -> list[str]:
    pre = trained.preprocessor
    kind = kind_of(pre)
    trained_rows = trained.info.get("rows", {}).get("train")
    seen = f"the {trained_rows:,} training {unit}" if isinstance(trained_rows, int) else f"the training {unit}"
    causes = "- It finds patterns, not causes: do not read a prediction as the reason for an outcome."
    if trained.task == ANOMALY_TASK:
        quantile = pre.threshold_quantile
        rate = f" (about {1 - quantile:.1%} of them with this threshold)" if quantile else ""
        return [
            f"- It learned what ordinary looks like from {seen}. If those rows held anomalies, "
            "similar rows will look ordinary.",
            "- Unusual is not wrong: a flagged row deserves a look, not a verdict. By design a few "
            f"ordinary rows are flagged too{rate}.",
            "- Missing values are filled the way training filled them; categories never seen in "
            "training count as \"other\".",
        ]
    if trained.task == "forecast":
        return [
            f"- It learned from {seen} of one series. It assumes the future behaves like the past: "
            "a new trend, a holiday or a promotion it never saw will surprise it.",
            "- Forecasts further ahead are usually less accurate than the next step.",
            f"- Give it the newest history: it reads the last {pre.window} steps and forecasts from "
            "the last time stamp given. Gaps are filled, so a long gap weakens the forecast.",
        ]
    if kind == "images":
        return [
            f"- It knows only the classes it learned from {seen}: every image gets one of them, "
            "even a picture of something else entirely.",
            "- Images unlike the training ones (other lighting, angle, camera, background, or much "
            "larger and shrunk a lot) get less reliable answers.",
            causes,
        ]
    if kind == "text":
        return [
            f"- It learned from {seen}: texts on other topics, in another language or style get less "
            "reliable answers, and words never seen in training are ignored as unknown.",
            f"- Only the first {pre.max_length} tokens of a text are read.",
            causes,
            "- Texts may carry past biases. Check the errors per group before using it for decisions "
            "about people.",
        ]
    return [
        f"- It learned only from {seen} of one file. Rows unlike them (values outside the ranges "
        "seen, new kinds of customers or products) get less reliable predictions.",
        "- Missing values are filled the way training filled them (the median for numbers, the most "
        "common value for categories); categories never seen in training count as \"other\".",
        causes,
        "- The data may carry past biases. Check the errors per group (region, age band...) before "
        "using it for decisions about people, and re-train when the data changes.",
    ]


def _how_to_use(trained: TrainedModel, metrics: dict[str, Any], samples: list[str]) -> list[str]:
    pre = trained.preprocessor
    kind = kind_of(pre)
    packages = "numpy, pandas, Pillow and onnxruntime" if kind == "images" else "numpy, pandas and onnxruntime"
    if kind == "images":
        example = f"python predict.py {SAMPLE_FOLDER} > predictions.csv" if samples else \
            "python predict.py my_images > predictions.csv"
        commands = [example, "python predict.py photos.zip > predictions.csv",
                    "python predict.py one_image.png"]
        explain = (
            "The input is a folder of images (sub-folders included), a .zip of images, or one image "
            "file. Other files are skipped. The output has one row per image, sorted by path: `file` "
            "(the path inside the folder or zip), `prediction` (the class) and one "
            "`probability_<class>` column per class."
        )
        folder = SAMPLE_FOLDER if samples else "my_images"
        reader, raw = "read_images", f"files, images = read_images('{folder}')    # a folder, a .zip or one image"
        call = "pre.predict_with(images, run, files=files)"
    else:
        example = f"python predict.py {SAMPLE_FILE} > predictions.csv"
        commands = [example]
        reader, raw = "read_rows", f"rows = read_rows('{SAMPLE_FILE}')         # read as the app reads tables"
        call = "pre.predict_with(rows, run)"
        if trained.task == "forecast":
            explain = (
                f"The input is the history: a table file (.csv, .tsv, .txt, .xlsx, .parquet or .json) "
                f"with `{pre.time_column}` and {', '.join(f'`{c}`' for c in pre.columns)}, at least "
                f"{pre.window} steps, newest last or in any order. The output has {pre.horizon} rows, "
                f"one per future step after the last time stamp: `{pre.time_column}` and `prediction`."
            )
        elif trained.task == ANOMALY_TASK:
            explain = (
                "The input is a table file (.csv, .tsv, .txt, .xlsx, .parquet or .json) with the "
                "columns above. The output has one row per input row, in the same order: "
                "`anomaly_score` and `is_anomaly`."
            )
        else:
            columns = f"the column `{pre.text_column}`" if kind == "text" else "the columns above"
            target = trained.data_spec.target
            explain = (
                f"The input is a table file (.csv, .tsv, .txt, .xlsx, .parquet or .json) with {columns}; "
                f"`{target}` may be present and is ignored. The output has one row per input row, in "
                "the same order, with a `prediction` column"
                + (" and one `probability_<class>` column per class." if pre.classes
                   else " (in the units of the target).")
            )
    parity = metrics.get("onnx_parity", {})
    shape = ", ".join(map(str, trained.input_shape))
    return [
        f"Standalone, with only {packages}:",
        "",
        "```",
        "pip install -r requirements.txt",
        *commands,
        "```",
        "",
        explain,
        "",
        "In Python with PyTorch (`model.py` is the network as plain code; the same preprocessing as "
        "`predict.py`):",
        "",
        "```python",
        "import torch",
        "from model import load",
        f"from predict import load_preprocessor, {reader}",
        "pre = load_preprocessor()                    # the app's own preprocessing code",
        "net = load('model.safetensors')",
        "run = lambda X: net(torch.from_numpy(X)).detach().numpy()",
        raw,
        f"predictions = {call}",
        "```",
        "",
        f"With ONNX in any language: `model.onnx` takes a float32 input `{ONNX_INPUT}` of shape "
        f"(batch, {shape}) ({_onnx_input_words(trained)}) and gives `{ONNX_OUTPUT}` "
        f"(batch, {trained.n_outputs}): {_onnx_output_words(trained)} "
        f"It was checked against PyTorch before export: largest difference "
        f"{parity.get('max_abs_diff', float('nan')):.1g} on {parity.get('rows', 0)} inputs.",
        "",
        *_serving(kind, samples),
    ]


def _serving(kind: str, samples: list[str]) -> list[str]:
    """How to run the bundle as a prediction service (serve.py), locally and in a container."""
    if kind == "images":
        sample = next((s for s in samples if s.startswith(f"{SAMPLE_FOLDER}/")), "photo.png")
        call = f"curl -F files=@{sample} http://127.0.0.1:8000/predict"
        body = "images (or zips of images) as the multipart field `files`"
    else:
        call = f"curl -F file=@{SAMPLE_FILE} http://127.0.0.1:8000/predict"
        body = ('`{"rows": [{column: value, ...}, ...]}` (`null` for a missing value), a table file as the '
                "multipart field `file`, or a CSV body")
    return [
        "As a prediction service (FastAPI on uvicorn; `requirements-serve.txt` adds them):",
        "",
        "```",
        "pip install -r requirements-serve.txt",
        "python serve.py                     # http://127.0.0.1:8000, this machine only; --workers N for more",
        call,
        "```",
        "",
        f"`POST /predict` takes {body} and answers `{{\"predictions\": [...]}}` with the values "
        "`predict.py` writes. `GET /docs` shows how to call it, `GET /model` the input schema, `GET /health` "
        "that it is up. Input it cannot use gets status 422 with a sentence saying why. As a container: "
        "`docker build -t model . && docker run -p 8000:8000 model`. To scale out, run more workers or more "
        "containers behind a load balancer: each keeps no state between requests.",
    ]


def _onnx_input_words(trained: TrainedModel) -> str:
    kind = kind_of(trained.preprocessor)
    return {
        "images": "images as `ImagePreprocessor.transform` makes them: channels, height, width",
        "text": "token ids as `TextPreprocessor.transform` makes them, 0 = padding",
        "series": "windows of the scaled series as `SeriesPreprocessor.last_window` makes them: steps, columns",
    }.get(kind, "rows as `Preprocessor.transform` makes them")


def _onnx_output_words(trained: TrainedModel) -> str:
    return {
        "regression": "the prediction in standardised units (times the target's std plus its mean, "
                      "see `preprocess.json`).",
        "binary": "one logit; the probability of the second class is 1 / (1 + exp(-logit)).",
        "multiclass": "one logit per class; softmax gives the probabilities.",
        "forecast": "one value per future step; `SeriesPreprocessor.decode_forecast` turns them into "
                    "the series' units.",
        ANOMALY_TASK: "the rebuilt row; the anomaly score is the mean squared difference to the input.",
    }.get(trained.task, "raw outputs.")


def _card_files(kind: str, samples: list[str]) -> list[tuple[str, str]]:
    names = ["README.md", "predict.py", "serve.py", *BUNDLE_MODULES[kind], "preprocess.json", "model.onnx",
             WEIGHTS, "model.py", "spec.json", "metrics.json", "requirements.txt", "requirements-serve.txt",
             "Dockerfile"]
    rows = [(name, FILE_PURPOSES[name]) for name in names]
    if any(s.startswith(f"{SAMPLE_FOLDER}/") for s in samples):
        rows.append((f"{SAMPLE_FOLDER}/", FILE_PURPOSES[f"{SAMPLE_FOLDER}/"]))
    elif SAMPLE_FILE in samples:
        rows.append((SAMPLE_FILE, SAMPLE_PURPOSES.get(kind, FILE_PURPOSES[SAMPLE_FILE])))
    rows.append((MANIFEST, FILE_PURPOSES[MANIFEST]))
    return rows


def _fmt(metric: str, value: Any) -> str:
    try:
        return format_metric(metric, float(value))
    except (BuilderError, TypeError, ValueError, KeyError):
        return f"{value:.4g}" if isinstance(value, float) else str(value)


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, int | float) and not isinstance(value, bool) else "-"
