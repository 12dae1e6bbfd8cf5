"""Why this image's prediction: pixel attributions (patches for Shapley sampling) as a heatmap."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from builder.errors import DataError
from builder.explain.explained import _attribute, _Explained, _outputs, _target
from builder.explain.results import RowExplanation
from builder.explain.sentences import _label
from builder.jsonsafe import plain
from builder.trained import TrainedModel

IMAGE_PATCHES = 8  # Shapley sampling on images moves patches: about 8 x 8 of them per image


def _image_input(row: Any) -> Any:
    """An image as the image preprocessor reads it; arrays become Pillow images."""
    if not isinstance(row, np.ndarray):
        return row
    from PIL import Image

    array = np.asarray(row)
    if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[-1] not in (1, 3, 4):
        array = array.transpose(1, 2, 0)  # (C, H, W) -> (H, W, C)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3):
        raise DataError(f"An image array must be (H, W), (H, W, 3) or (C, H, W); got shape {row.shape}.")
    if array.dtype != np.uint8:
        values = array.astype(np.float64)
        array = np.clip(values * (255.0 if values.max(initial=0) <= 1.0 else 1.0), 0, 255).round().astype(np.uint8)
    return Image.fromarray(array)


def _explain_image(trained: TrainedModel, row: Any, target_class: Any, method: str) -> RowExplanation:
    pre = trained.preprocessor
    explained = _Explained(trained)
    X = torch.from_numpy(pre.transform([_image_input(row)]))  # (1, C, H, W)
    baseline = torch.zeros_like(X)  # the training mean colour everywhere
    out, base = _outputs(explained, X)[0], _outputs(explained, baseline)[0]
    index, target = _target(trained, out, target_class)
    _, channels, height, width = X.shape
    side = max(1, math.ceil(max(height, width) / IMAGE_PATCHES))
    rows_, cols_ = np.arange(height)[:, None] // side, np.arange(width)[None, :] // side
    patches = rows_ * math.ceil(width / side) + cols_  # (H, W) patch number of each pixel
    mask = torch.from_numpy(np.broadcast_to(patches, (1, channels, height, width)).copy()).long()
    attr, delta = _attribute(explained, X, baseline, index, method, mask=mask)
    if method == "shapley":  # each pixel holds its patch's value: share it out over the patch
        share = np.bincount(patches.ravel())[patches]  # (H, W) pixels per patch
        heatmap = attr[0, 0] / share
        per_channel = np.repeat(heatmap[None] / channels, channels, axis=0)
    else:
        per_channel = attr[0]  # (C, H, W)
        heatmap = per_channel.sum(axis=0)  # (H, W)
    prediction = plain(pre.decode_outputs(trained.predict_outputs(X.numpy()))["prediction"].iloc[0])
    sentence = (f"The model gives {_label(target)} a probability of {out[index]:.0%} ({base[index]:.0%} for an "
                "image of the average colour). Bright parts of the heatmap pushed it up, dark parts down.")
    return RowExplanation("images", method, heatmap, prediction, target, float(out[index]), float(base[index]),
                          delta, sentence, {"channels": per_channel})
