"""Why this forecast: attributions per past step (and per column) of the newest window."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from builder.errors import DataError
from builder.explain.explained import _attribute, _Explained, _outputs, _target
from builder.explain.results import RowExplanation
from builder.explain.sentences import _row_sentence, _time_text
from builder.trained import TrainedModel


def _explain_forecast(trained: TrainedModel, history: Any, target_class: Any, method: str) -> RowExplanation:
    pre = trained.preprocessor
    if not isinstance(history, pd.DataFrame):
        raise DataError("A forecast is explained from its history: a table with the time column and the series.")
    window_array, last_time = pre.last_window(history)
    X = torch.from_numpy(np.ascontiguousarray(window_array))  # (1, W, F)
    explained = _Explained(trained)
    baseline = torch.zeros_like(X)  # every column at its training mean: a flat series
    out, base = _outputs(explained, X)[0], _outputs(explained, baseline)[0]
    index, target = _target(trained, out, target_class)
    window, width = X.shape[1], X.shape[2]
    mask = torch.arange(window).view(1, window, 1).expand(1, window, width).contiguous()  # a step at a time
    attr, delta = _attribute(explained, X, baseline, index, method, mask=mask)
    if method == "shapley":
        per_step = attr[0, :, 0]
        by_column = {c: (per_step / width).tolist() for c in pre.columns}
    else:
        per_step = attr[0].sum(axis=1)  # (W,)
        by_column = {c: attr[0, :, j].tolist() for j, c in enumerate(pre.columns)}
    times = pre.regularise(history)[pre.time_column].iloc[-window:]
    iso = np.datetime_as_string(times.to_numpy(dtype="datetime64[s]"), unit="s").tolist()
    labels = [f"The value of {_time_text(t)}" for t in iso]
    sentence = _row_sentence(trained, target, out[index], base[index], list(zip(labels, per_step.tolist(), strict=True)),
                             baseline_words="a flat series at its training average")
    return RowExplanation("series", method, per_step.tolist(), float(out[index]), target, float(out[index]),
                          float(base[index]), delta, sentence,
                          {"times": iso, "by_column": by_column, "last_time": str(pd.Timestamp(last_time))})
