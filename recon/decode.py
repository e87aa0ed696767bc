"""Linear decoders from voxels to feature targets: himalaya ridge with alpha chosen by cross-validation.

The authors' ``codes/utils/ridge.py`` is ``make_pipeline(StandardScaler(), RidgeCV(alphas))``: voxels
standardised, then ``himalaya.ridge.RidgeCV`` (``fit_intercept=False``, targets not centred) picks an
alpha per target by 5-fold cross-validation on the training trials. ``fit_intercept=False`` here computes
exactly that (``tests/test_authors_pipeline.py`` runs their pipeline beside it); ``True`` also fits each
target's training mean, which their decoder leaves out. Targets of any shape are flattened for the fit
and reshaped on predict.
"""

from __future__ import annotations

import numpy as np
from himalaya.backend import get_backend, set_backend
from himalaya.ridge import RidgeCV
from himalaya.scoring import correlation_score
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.model_selection import KFold
from sklearn.preprocessing import StandardScaler
from sklearn.utils import check_array
from sklearn.utils.validation import check_is_fitted, validate_data


class RidgeDecoder(RegressorMixin, BaseEstimator):
    """scikit-learn-style ``fit(X, Y)`` / ``predict(X)`` around ``StandardScaler`` + ``RidgeCV``.

    Parameters
    ----------
    alphas : candidate L2 penalties.
    cv : number of contiguous folds (trials are in presentation order, so no shuffling).
    backend : himalaya backend, e.g. ``"numpy"``, ``"torch"`` or ``"torch_cuda"``.
    n_targets_batch : targets solved at once, bounds memory for wide targets.
    fit_intercept : fit each target's training mean (False: the authors' decoder, which predicts
        ``StandardScaler(X) @ W`` with no mean, so a target constant over images decodes to zero).
    """

    def __init__(self, alphas=(0.1, 1.0, 10.0), cv: int = 5, backend: str = "torch", n_targets_batch: int = 4096,
                 fit_intercept: bool = False):
        self.alphas = alphas
        self.cv = cv
        self.backend = backend
        self.n_targets_batch = n_targets_batch
        self.fit_intercept = fit_intercept

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True  # every column of Y is a target
        return tags

    def fit(self, X, Y):
        # scikit-learn's checks: dense, real, finite, at least one sample and voxel; sets n_features_in_
        X = validate_data(self, X, reset=True, dtype=np.float32, allow_nd=True)
        if X.ndim != 2:
            raise ValueError(f"X must be (n_samples, n_voxels), got shape {X.shape}")
        if Y is None:
            raise ValueError("RidgeDecoder requires y to be passed, but the target y is None")
        Y = check_array(Y, dtype=np.float32, ensure_2d=False, allow_nd=True, input_name="y")
        if len(Y) != len(X):
            raise ValueError(f"X has {len(X)} samples but Y has {len(Y)}")
        self.target_shape_ = Y.shape[1:]
        Y = Y.reshape(len(Y), -1)
        self.scaler_ = StandardScaler().fit(X)
        self.y_mean_ = Y.mean(axis=0) if self.fit_intercept else np.zeros(Y.shape[1], dtype=np.float32)
        previous = get_backend()
        backend = set_backend(self.backend, on_error="warn")
        try:
            self.ridge_ = RidgeCV(
                alphas=np.asarray(self.alphas, dtype=np.float32),
                cv=KFold(self.cv),
                solver_params={"n_targets_batch": self.n_targets_batch},
            )
            self.ridge_.fit(self.scaler_.transform(X), Y - self.y_mean_)
            self.best_alphas_ = backend.to_numpy(self.ridge_.best_alphas_)
            self.cv_scores_ = backend.to_numpy(self.ridge_.cv_scores_)
        finally:
            set_backend(previous)
        return self

    def predict(self, X) -> np.ndarray:
        check_is_fitted(self, "ridge_")
        X = validate_data(self, X, reset=False, dtype=np.float32)
        previous = get_backend()
        backend = set_backend(self.backend, on_error="warn")
        try:
            coef = backend.to_numpy(self.ridge_.coef_)
        finally:
            set_backend(previous)
        # himalaya's predict (X @ coef) in float64: a float32 product's last bit depends on where a row falls in the
        # BLAS's blocks, so a row's prediction would depend on the rows beside it
        pred = self.scaler_.transform(X).astype(np.float64) @ coef.astype(np.float64)
        return (pred + self.y_mean_).reshape(len(X), *self.target_shape_)

    def score(self, X, y) -> float:
        """Mean correlation across targets between prediction and truth (the authors' report)."""
        return float(np.mean(target_correlations(y, self.predict(X))))


def target_correlations(Y, predicted) -> np.ndarray:
    """Pearson r per target column between true and predicted values."""
    Y = np.asarray(Y, dtype=np.float64).reshape(len(Y), -1)
    predicted = np.asarray(predicted, dtype=np.float64).reshape(len(predicted), -1)
    return np.nan_to_num(np.asarray(correlation_score(Y, predicted)))


def column_correlations(Y, predicted, block_size: int = 65536) -> np.ndarray:
    """Pearson r per target column, read in column blocks (both may be memory maps of any shape)."""
    Y = Y.reshape(len(Y), -1)
    predicted = predicted.reshape(len(predicted), -1)
    if Y.shape != predicted.shape:
        raise ValueError(f"targets {Y.shape} and predictions {predicted.shape} differ in shape")
    out = np.empty(Y.shape[1], dtype=np.float32)
    for start in range(0, Y.shape[1], block_size):
        cols = slice(start, start + block_size)
        out[cols] = target_correlations(Y[:, cols], predicted[:, cols])
    return out


def column_std(Y, block_size: int = 65536) -> np.ndarray:
    """Standard deviation (ddof 1) of each column over rows, read in column blocks (a memory map stays on disk)."""
    Y = Y.reshape(len(Y), -1)
    out = np.empty(Y.shape[1], dtype=np.float64)
    for start in range(0, Y.shape[1], block_size):
        out[start : start + block_size] = np.asarray(Y[:, start : start + block_size], dtype=np.float64).std(0, ddof=1)
    return out
