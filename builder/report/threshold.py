"""A yes/no model's decision threshold: the one the model itself applies, the kept test rows'
answers at any threshold, and the report's section that explains it in words.
"""

from __future__ import annotations

import numpy as np

from builder.i18n import tr, tr_message
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
    origin = tr(" It was chosen {how}.", how=e(tr_message(chosen))) if chosen else (
        tr(" This is the usual one.") if threshold == DEFAULT_THRESHOLD else "")
    yes, no = e(positive), e(negative)
    body = ("<p>" + tr("For every row the model gives the probability that the answer is <b>{positive}</b>. It "
                       "answers <b>{positive}</b> when that probability is above <b class=\"num\">{threshold:g}</b>, "
                       "and <b>{negative}</b> otherwise.", threshold=threshold, positive=yes, negative=no)
            + origin + tr(" A lower threshold finds more of the real {positive} rows but raises more false alarms; a "
                          "higher one the other way round.", positive=yes) + "</p>")
    at = _binary_at_threshold(trained, threshold)
    if at is None:
        body += ("<p class=\"note\">" + tr("This run kept no test probabilities, so the effect of the threshold "
                                            "cannot be shown.") + "</p>")
    else:
        n, said, real, hits, accuracy = at
        if not said:
            found = tr("for none of them, so it finds none of the {real:,} real {positive} rows", real=real,
                       positive=yes)
        else:
            found = tr("for <b>{said:,}</b> of them; <b>{precision:.0%}</b> of those really are {positive} "
                       "(precision)", said=said, precision=hits / said, positive=yes)
            found += (tr(", and they are <b>{recall:.0%}</b> of all the real {positive} rows (recall)",
                         recall=hits / real, positive=yes) if real
                      else tr(", but none of the test rows really is {positive}", positive=yes))
        body += ("<p>" + tr("On the {n:,} test rows at this threshold the model answers {positive} {found}. "
                            "Accuracy: <b>{accuracy:.1f}%</b>.", n=n, positive=yes, found=found,
                            accuracy=accuracy * 100) + "</p>")
        if abs(threshold - own) > 1e-9:
            body += ("<p class=\"note\">" + tr("The scores under <i>The result</i> were measured with the model's "
                                                "own threshold, {own:g}; the sentence above and the table of mix-ups "
                                                "below use {threshold:g}.", own=own, threshold=threshold) + "</p>")
    return section("threshold", tr("The decision threshold"), "", body)


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
