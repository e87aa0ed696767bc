"""Ridge decoding without per-trial targets: the normal equations from per-image sums, in column blocks.

The decoding targets (z, c, BLIP, DPT, VGG features) belong to images, not trials: at NSD's scale
(~25,000 trials of ~8,900 images, up to 2.4 M target columns) expanding them to one row per trial
costs hundreds of gigabytes. Ridge needs only

    XᵀX   and   XᵀY = Σ_t x_t y_img(t)ᵀ = Sᵀ Y_images,   S[i] = Σ_{t: img(t)=i} x_t,

so each cross-validation fold is solved from the eigendecomposition of its XᵀX and its per-image
sums S; targets are read in column blocks (memory maps welcome), and test predictions are written
block by block. The full coefficient matrix never exists: a block's coefficients are formed,
used and dropped.

The results equal himalaya's ``RidgeCV`` fitted on the expanded per-trial targets (standardised X,
contiguous K folds, L2 loss, per-target alpha, ties to the larger alpha); with ``fit_intercept=False``
(the authors' ``ridge.py``: himalaya's default, targets not centred) and with ``True`` (targets centred
by their per-trial mean, which is added back); ``tests/test_ridge_streamed.py`` and
``tests/test_authors_pipeline.py`` check both.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from scipy.sparse import issparse
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted, validate_data
from sklearn.model_selection import KFold
from tqdm.auto import tqdm


def image_sums(X: torch.Tensor, image_index: torch.Tensor, n_images: int) -> torch.Tensor:
    """(n_images, p): the sum of the rows of X shown on each image (zero for images not shown)."""
    return torch.zeros((n_images, X.shape[1]), dtype=X.dtype, device=X.device).index_add_(0, image_index, X)


def image_means(X: np.ndarray, image_index: np.ndarray, n_images: int) -> np.ndarray:
    """(n_images, p) float32: each image's trials averaged (for decoders fitted on averaged betas)."""
    X = torch.as_tensor(np.ascontiguousarray(X, dtype=np.float32))
    index = torch.as_tensor(image_index)
    counts = torch.bincount(index, minlength=n_images).clamp_min(1).float()
    return (image_sums(X, index, n_images) / counts[:, None]).numpy()


@dataclass
class _System:
    """One training set, diagonalised: everything a block of targets needs, none of the targets."""

    eigenvalues: torch.Tensor  # (p,) of XᵀX, in the decoder's dtype, negatives from round-off clipped to 0
    image_projection: torch.Tensor  # Vᵀ Sᵀ, (p, n_images): Vᵀ XᵀY = this @ Y_images
    sum_projection: torch.Tensor  # Vᵀ Σ_t x_t, (p,): the term of the target mean in XᵀY
    evaluation: torch.Tensor | None  # X_eval V, (n_eval, p): predictions of the evaluation rows

    def right_hand_side(self, Y_block: torch.Tensor, y_mean: torch.Tensor) -> torch.Tensor:
        """Vᵀ Xᵀ (Y_trials - mean), (p, block), from the per-image targets."""
        return self.image_projection @ Y_block - self.sum_projection[:, None] * y_mean[None, :]

    def predict(self, rhs: torch.Tensor, alphas: torch.Tensor) -> torch.Tensor:
        """Evaluation-row predictions for one alpha per column (alphas: (block,) or scalar)."""
        return self.evaluation @ (rhs / (self.eigenvalues[:, None] + alphas))


@contextmanager
def _single_threaded_on_cpu(tensor: torch.Tensor):
    """One thread for a CPU eigendecomposition: MKL's multithreaded syevd took 28 s for 1500² on
    2 cores shared with other work, against 1.2 s on one thread (2026-11, this project's CI machine)."""
    if tensor.device.type != "cpu":
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _diagonalise(X: torch.Tensor, image_index: torch.Tensor, n_images: int,
                 X_eval: torch.Tensor | None) -> tuple[_System, torch.Tensor]:
    """The system of one training set (rows of X shown on ``image_index``), and XᵀX's eigenvectors."""
    gram = (X.T @ X).double()
    with _single_threaded_on_cpu(gram):
        eigenvalues, vectors = torch.linalg.eigh(gram)  # float64: alphas reach 1e-6 of a ~1e4 spectrum
    vectors = vectors.to(X.dtype)
    system = _System(
        eigenvalues=eigenvalues.clamp_min(0).to(X.dtype),
        image_projection=vectors.T @ image_sums(X, image_index, n_images).T,
        sum_projection=vectors.T @ X.sum(0),
        evaluation=None if X_eval is None else X_eval @ vectors,
    )
    return system, vectors


_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _is_parts(Y) -> bool:
    """Whether ``Y`` is a list of target arrays decoded as one column space (DPT's layers), rather than one target
    given as a list (of numbers or rows, as scikit-learn's checks pass it)."""
    return isinstance(Y, (list, tuple)) and len(Y) > 0 and all(isinstance(part, np.ndarray) for part in Y)


def _target_arrays(Y) -> list[np.ndarray]:
    """Each part of ``Y`` as an array of its own shape (one row per image), checked: dense, real, at least 1-d."""
    if Y is None:
        raise ValueError("StreamedRidgeCV requires y to be passed, but the target y is None")
    parts = list(Y) if _is_parts(Y) else [Y if isinstance(Y, np.ndarray) or issparse(Y) else np.asarray(Y)]
    for k, part in enumerate(parts):
        if issparse(part):
            raise ValueError("sparse targets are not supported: pass a dense array (or a memory map)")
        if part.dtype.kind == "O":  # numbers held as objects, as scikit-learn's checks pass them
            parts[k] = part = part.astype(np.float64)
        if part.dtype.kind == "c":
            raise ValueError("Complex data not supported: the targets must be real")
        if part.dtype.kind not in "biuf":  # memory maps stay maps: no conversion here
            raise ValueError(f"targets must be real numbers, got dtype {part.dtype}")
        if part.ndim == 0:
            raise ValueError("targets must have one row per image, got a scalar")
    return parts


def _as_parts(Y) -> list[np.ndarray]:
    """Each part of ``Y`` flattened to (n_images, columns)."""
    return [part.reshape(len(part), -1) for part in _target_arrays(Y)]


def _column_blocks(parts, block_size: int):
    """(part index, column slice) over every column of every part."""
    for k, part in enumerate(parts):
        for start in range(0, part.shape[1], block_size):
            yield k, slice(start, min(part.shape[1], start + block_size))


def memory_bytes(n_trials: int, n_images: int, n_test: int, p: int, block: int, n_alphas: int, folds: int) -> dict:
    """Bytes of the arrays :class:`StreamedRidgeCV` holds at once (float32 unless noted), by where they live
    ("device", "host"), for ``n_trials`` trials of ``n_images`` images, ``p`` voxels and target blocks of ``block``
    columns; benchmarks/nsd_scale.py checks it against a measurement, recon.gpu_budget plans cards with it."""
    n_val = n_trials // folds
    device = (
        2 * n_trials * p * 4  # X on the device and its standardised copy (freed after _prepare)
        + p * p * (8 + 8 + 4)  # Gram and eigenvectors in float64 (transient), eigenvectors in float32
        + folds * (p * n_images * 4 + n_val * p * 4)  # per fold: Vᵀ Sᵀ and X_val V
        + p * n_images * 4 + p * p * 4  # the whole-set system and its eigenvectors (kept for predict)
        + n_images * p * 4  # per-image sums (transient)
        + block * (n_images + p + 2 * n_val + n_test) * 4  # one column block: Y, right-hand side, truth, prediction
        + n_alphas * block * 8  # CV scores of the block
    )
    host = n_trials * p * 4 + n_test * p * 4 + n_images * block * 4  # betas, test betas, one block read and cast
    return {"device": device, "host": host}


class StreamedRidgeCV(RegressorMixin, BaseEstimator):
    """Ridge with a per-target alpha chosen by K-fold CV, for targets defined per image.

    Parameters
    ----------
    alphas : candidate L2 penalties.
    cv : number of contiguous folds over trials (trials are in presentation order: no shuffling).
    device : torch device for the algebra (``"cuda"`` on a GPU).
    block_size : target columns held at once; bounds memory for 10⁵-10⁶ targets.
    progress : tqdm bar over column blocks.
    fit_intercept : centre the targets by their per-trial mean and add it back on predict (False: the
        authors' decoder, whose predictions carry no target mean).
    dtype : the algebra's precision, ``"float32"`` or ``"float64"``. In float32 the predictions' last bits
        depend on the BLAS's summation order, which MKL picks by CPU vendor and model, and a float16 copy of
        them then differs in about 1% of its values between an Intel and an AMD CPU. In float64 they differ
        by ~1e-16 relative, so their float16 (or float32) copy, rounded once from float64, is the same on
        every CPU but where a value lies within that distance of a rounding boundary.

    ``fit(X, Y, image_index)``: X is (n_trials, n_voxels); Y is (n_images, ...) (or a list of such
    arrays sharing rows, decoded as one column space, e.g. DPT's four layers), read block by block,
    so memory maps stay on disk; ``image_index[t]`` is the row of Y shown on trial t (``None``: one
    trial per row). Voxels are standardised over trials.
    """

    def __init__(self, alphas=(0.1, 1.0, 10.0), cv: int = 5, device: str = "cpu", block_size: int = 4096,
                 progress: bool = False, fit_intercept: bool = False, dtype: str = "float32"):
        self.fit_intercept = fit_intercept
        self.dtype = dtype
        self.alphas = alphas
        self.cv = cv
        self.device = device
        self.block_size = block_size
        self.progress = progress

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True  # every column of every part is a target
        return tags

    # ------------------------------------------------------------------ checks
    def _check_fit_inputs(self, X, Y, image_index):
        # scikit-learn's checks: dense, real, finite, at least one trial and voxel; sets n_features_in_
        X = validate_data(self, X, reset=True, dtype="numeric", copy=False, allow_nd=True)
        if X.ndim != 2:
            raise ValueError(f"X must be (n_trials, n_voxels), got shape {X.shape}")
        parts = _as_parts(Y)
        n_images = len(parts[0])
        if any(len(part) != n_images for part in parts):
            raise ValueError(f"target parts have different numbers of rows: {[len(p) for p in parts]}")
        if image_index is None:
            image_index = np.arange(len(X))
        image_index = np.asarray(image_index)
        if image_index.shape != (len(X),):
            raise ValueError(f"image_index must have one entry per trial ({len(X)}), got shape {image_index.shape}")
        if image_index.size and (image_index.min() < 0 or image_index.max() >= n_images):
            raise ValueError(f"image_index must be in [0, {n_images}) (rows of Y), got [{image_index.min()}, {image_index.max()}]")
        if len(X) < self.cv:
            raise ValueError(f"{len(X)} trials (n_samples={len(X)}) cannot make {self.cv} folds")
        return X, parts, image_index

    def _tensor(self, array) -> torch.Tensor:
        """``array`` on the decoder's device, in its dtype."""
        array = np.asarray(array)
        if not (array.flags.c_contiguous and array.flags.writeable):  # memory-map blocks: one copy, in RAM
            array = np.array(array, order="C")
        return torch.as_tensor(array, device=self.device).to(self._torch_dtype())

    def _torch_dtype(self) -> torch.dtype:
        if self.dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(_DTYPES)}, got {self.dtype!r}")
        return _DTYPES[self.dtype]

    def _standardised(self, X) -> torch.Tensor:
        return (self._tensor(X) - self.x_mean_) / self.x_scale_

    # ------------------------------------------------------------------ fit
    def fit(self, X, Y, image_index=None):
        X, parts, image_index = self._check_fit_inputs(X, Y, image_index)
        self._prepare(X, image_index, len(parts[0]))
        return self.fit_targets(Y)

    def _prepare(self, X, image_index, n_images) -> None:
        """The targets-free part of the fit: standardise X, diagonalise every fold and the whole set."""
        n_trials = len(X)
        Xt = self._tensor(X)
        self.x_mean_ = Xt.mean(0)
        scale = Xt.std(0, unbiased=False)
        self.x_scale_ = torch.where(scale == 0, torch.ones_like(scale), scale)  # StandardScaler's rule
        Xt = (Xt - self.x_mean_) / self.x_scale_
        counts = np.bincount(image_index, minlength=n_images).astype(np.float32)
        self._weights = self._tensor(counts / n_trials)
        index = torch.as_tensor(image_index, device=self.device)
        self._folds = []
        for train, val in KFold(self.cv).split(np.arange(n_trials)):
            system, _ = _diagonalise(Xt[train], index[train], n_images, Xt[val])
            self._folds.append((system, index[val], len(val)))
        self.system_, self.vectors_ = _diagonalise(Xt, index, n_images, None)
        self.n_features_in_ = X.shape[1]
        self.n_images_ = n_images

    def fit_targets(self, Y):
        """Fit other targets of the same images on the same trials, reusing :meth:`fit`'s decomposition
        (how DPT's layers are decoded one at a time without diagonalising four times)."""
        if not hasattr(self, "_folds"):
            raise RuntimeError("call fit(X, Y, image_index) before fit_targets(Y)")
        arrays = _target_arrays(Y)
        parts = [part.reshape(len(part), -1) for part in arrays]
        if any(len(part) != self.n_images_ for part in parts):
            raise ValueError(f"targets must have {self.n_images_} rows (the images fitted), got {[len(p) for p in parts]}")
        alphas = self._tensor(np.asarray(self.alphas, dtype=np.float64))
        folds, weights = self._folds, self._weights
        self.part_shapes_ = [part.shape[1:] for part in arrays]
        best_alpha, best_score, y_mean = [], [], []
        tie_break = torch.log(alphas.double()) * 1e-10  # himalaya's: equal scores pick the larger alpha
        for k, cols in tqdm(list(_column_blocks(parts, self.block_size)), desc="ridge CV blocks",
                            disable=not self.progress, leave=False):
            Yb = self._tensor(parts[k][:, cols])
            if not bool(torch.isfinite(Yb).all()):  # checked block by block: a memory map is read once
                raise ValueError(f"Input y contains NaN or infinity (target part {k}, columns {cols.start}-{cols.stop - 1}: "
                                 f"{int((~torch.isfinite(Yb)).sum())} values)")
            mean = weights @ Yb if self.fit_intercept else Yb.new_zeros(Yb.shape[1])
            scores = torch.zeros((len(alphas), Yb.shape[1]), dtype=torch.float64, device=self.device)
            for system, val_images, n_val in folds:
                rhs = system.right_hand_side(Yb, mean)
                truth = Yb[val_images] - mean
                for a, alpha in enumerate(alphas):
                    error = ((truth - system.predict(rhs, alpha)) ** 2).sum(0)
                    scores[a] -= (error / n_val).double()
            scores = scores / len(folds) + tie_break[:, None]
            best = scores.argmax(0)
            best_alpha.append(alphas[best].cpu().numpy())
            best_score.append((scores.max(0).values - tie_break[best]).float().cpu().numpy())
            y_mean.append(mean.cpu().numpy())
        self.best_alphas_ = np.concatenate(best_alpha)
        self.cv_scores_ = np.concatenate(best_score)
        self.y_mean_ = np.concatenate(y_mean)
        self.multi_part_ = _is_parts(Y)
        self.targets_ = parts  # read again, block by block, to predict
        return self

    # ------------------------------------------------------------------ predict
    def predict(self, X, out=None):
        """Predictions for X, written block by block into ``out`` (arrays or memory maps of any float dtype: each
        value is rounded once, from the decoder's dtype) if given, else into new float64 arrays.

        Returns one array of Y's trailing shape, or a list of them when Y was a list of parts."""
        check_is_fitted(self, "best_alphas_")
        X = validate_data(self, X, reset=False, dtype="numeric", copy=False)
        if out is None:
            out = [np.empty((len(X), *shape), dtype=np.float64) for shape in self.part_shapes_]
        else:
            out = list(out) if self.multi_part_ else [out]
        outs = [o.reshape(len(X), -1) for o in out]
        for original, flat, shape in zip(out, outs, self.part_shapes_):
            # reshape must be a view, or the predictions would land in a copy
            if flat.shape[1] != int(np.prod(shape)) or not np.may_share_memory(flat, original):
                raise ValueError(f"out must be C-contiguous ({len(X)}, {shape}) arrays, got {original.shape}")
        system = _System(self.system_.eigenvalues, self.system_.image_projection, self.system_.sum_projection,
                         self._standardised(X) @ self.vectors_)
        offset = 0
        for k, cols in tqdm(list(_column_blocks(self.targets_, self.block_size)), desc="ridge predict blocks",
                            disable=not self.progress, leave=False):
            width = cols.stop - cols.start
            Yb = self._tensor(self.targets_[k][:, cols])
            mean = self._tensor(self.y_mean_[offset : offset + width])
            alphas = self._tensor(self.best_alphas_[offset : offset + width])
            predicted = system.predict(system.right_hand_side(Yb, mean), alphas) + mean
            outs[k][:, cols] = predicted.cpu().numpy()
            offset += width
        return out if self.multi_part_ else out[0]
