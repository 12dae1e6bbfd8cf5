"""Warm start of a forecast's linear side path: the output layer starts as a lagged ridge.

A forecast design that ends ``... -> AutoregressiveSkip -> output layer`` computes
``head_h(features) + head_lags(last values)``. Gradient descent alone fits the linear part badly on
the short series analysts bring: 144 monthly values give 74 training windows, two optimizer steps
per epoch, and early stopping ends the run long before the weights on the lags settle, so the
network lost to a lagged ridge fitted in closed form (issue 8). Here the output layer starts at
that closed-form fit instead: its weights on the lags are ridge coefficients (penalty chosen by
leave-one-out, as the baseline does) and its weights on the recurrent features are zero. The
untrained network *is* the linear forecast; training adds what the recurrent layer finds on top
of it, and early stopping keeps the epoch that did best on validation.

Only the starting weights change: the design, its code and its export are those of any network.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from sklearn.linear_model import RidgeCV
from torch import nn

from builder.modules import AutoregressiveSkip

log = logging.getLogger(__name__)

# The baseline's grid (builder.baselines.ridge_forecast): inputs are standardised, so penalties
# around 1 cover sensible strengths.
RIDGE_ALPHAS = np.logspace(-3, 3, 13)


def warm_start_side_path(model: nn.Module, X_train: np.ndarray, y_train: np.ndarray) -> bool:
    """Start the output layer after an ``AutoregressiveSkip`` at a ridge fit on the lags.

    Args:
        model: a built network (``nn.Sequential`` or a subclass); changed in place.
        X_train: training windows ``(M, window, F)``, scaled as the network sees them.
        y_train: their training targets ``(M, horizon)`` (the change from the naive forecast).

    Returns:
        Whether the model had a side path right before its output layer (and was warm-started).
    """
    layers = list(model.children()) if isinstance(model, nn.Sequential) else []
    if len(layers) < 2 or not isinstance(layers[-2], AutoregressiveSkip) or not isinstance(layers[-1], nn.Linear):
        return False
    skip, head = layers[-2], layers[-1]
    X = np.asarray(X_train, dtype=np.float64)
    y = np.asarray(y_train, dtype=np.float64).reshape(len(X), -1)  # (M, horizon)
    lagged = X[:, -skip.lags:, :].reshape(len(X), -1)  # (M, lags * F): what the side path hands on
    n_features = head.in_features - lagged.shape[1]  # the recurrent features come first
    if len(X) < 2 or n_features < 0 or y.shape[1] != head.out_features:
        return False
    ridge = RidgeCV(alphas=RIDGE_ALPHAS).fit(lagged, y)
    coef = np.asarray(ridge.coef_, dtype=np.float32).reshape(head.out_features, -1)  # (horizon, lags * F)
    with torch.no_grad():
        head.weight[:, :n_features] = 0.0  # the recurrent part starts silent and learns the rest
        head.weight[:, n_features:] = torch.from_numpy(coef)
        if head.bias is not None:
            head.bias.copy_(torch.from_numpy(np.asarray(ridge.intercept_, dtype=np.float32).reshape(-1)))
    log.info("output layer starts as a lagged ridge on the last %d steps (penalty %g)", skip.lags, ridge.alpha_)
    return True
