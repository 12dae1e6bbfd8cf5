"""A yes/no model's decision threshold: the one the model itself applies, the kept test rows'
answers at any threshold, and the report's section that explains it in words.
"""

from __future__ import annotations

import numpy as np

from builder.report.common import e, section
from builder.trained import TrainedModel

DEFAULT_THRESHOLD = 0.5  # a yes/no model says "yes" from this probability on, unless told otherwise


def model_threshold(trained: TrainedModel) -> float:
    """The decision threshold the model itself applies (its preprocessor's; 0.5 for older runs)."""
    found = getattr(trained.preprocessor, "decision_threshold", None)
    return float(found) if isinstance(found, int | float) else DEFAULT_THRESHOLD


def threshold_section(trained: TrainedModel, threshold: float) -> str:
    classes = [str(c) for c in trained.preprocessor.classes]
    if len(classes) != 2:
        return ""
    negative, positive = classes
    own = model_threshold(trained)
    chosen = getattr(trained.preprocessor, "decision_threshold_chosen", None) if threshold == own else None
    origin = f" It was chosen {e(chosen)}." if chosen else (
        " This is the usual one." if threshold == DEFAULT_THRESHOLD else "")
    body = (f"<p>For every row the model gives the probability that the answer is <b>{e(positive)}</b>. "
            f"It answers <b>{e(positive)}</b> when that probability is above <b class=\"num\">{threshold:g}</b>, "
            f"and <b>{e(negative)}</b> otherwise.{origin} A lower threshold finds more of the real {e(positive)} "
            "rows but raises more false alarms; a higher one the other way round.</p>")
    at = _binary_at_threshold(trained, threshold)
    if at is None:
        body += "<p class=\"note\">This run kept no test probabilities, so the effect of the threshold cannot be shown.</p>"
    else:
        n, said, real, hits, accuracy = at
        if not said:
            found = f"for none of them, so it finds none of the {real:,} real {e(positive)} rows"
        else:
            found = (f"for <b>{said:,}</b> of them; <b>{hits / said:.0%}</b> of those really are {e(positive)} "
                     "(precision)")
            found += (f", and they are <b>{hits / real:.0%}</b> of all the real {e(positive)} rows (recall)" if real
                      else f", but none of the test rows really is {e(positive)}")
        body += (f"<p>On the {n:,} test rows at this threshold the model answers {e(positive)} {found}. Accuracy: "
                 f"<b>{accuracy * 100:.1f}%</b>.</p>")
        if abs(threshold - own) > 1e-9:
            body += (f"<p class=\"note\">The scores under <i>The result</i> were measured with the model's own "
                     f"threshold, {own:g}; the sentence above and the table of mix-ups below use {threshold:g}.</p>")
    return section("threshold", "The decision threshold", "", body)


def binary_predictions(trained: TrainedModel, threshold: float) -> np.ndarray | None:
    """The kept test rows' answers at ``threshold`` (``None``: no probabilities were kept)."""
    results = trained.test_results or {}
    proba = results.get("probabilities")
    if not proba:
        return None
    classes = np.asarray(trained.preprocessor.classes, dtype=object)
    positive = np.asarray(proba, dtype=np.float64)[:, -1]  # (N,) probability of the second class
    return classes[(positive > threshold).astype(np.int64)]  # the rule of the model's own decoder


def _binary_at_threshold(trained: TrainedModel, threshold: float) -> tuple[int, int, int, int, float] | None:
    """(test rows, answered positive, really positive, both, accuracy) at ``threshold``."""
    predicted = binary_predictions(trained, threshold)
    if predicted is None:
        return None
    positive = str(trained.preprocessor.classes[1])
    said = np.asarray([str(p) for p in predicted]) == positive  # (N,)
    truth = np.asarray([str(a) for a in trained.test_results["actual"]]) == positive  # (N,)
    accuracy = float(np.mean(said == truth)) if len(truth) else 0.0
    return len(truth), int(said.sum()), int(truth.sum()), int(np.sum(said & truth)), accuracy
