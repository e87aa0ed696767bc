"""The streamed ridge decoder equals himalaya's RidgeCV fitted on per-trial targets, without building them."""

import numpy as np
import pytest

from recon.decode import RidgeDecoder
from recon.ridge_streamed import StreamedRidgeCV

ALPHAS = (1e-2, 1.0, 10.0, 100.0, 1e3, 1e5)


@pytest.fixture(scope="module")
def trials():
    """50 images seen 1-3 times (NSD-like repeats) by 100 trials of 20 voxels; targets of mixed difficulty."""
    rng = np.random.default_rng(0)
    n_images, n_voxels = 50, 20
    index = np.concatenate([rng.permutation(n_images), rng.permutation(n_images)[:30], rng.permutation(n_images)[:20]])
    Y = rng.normal(size=(n_images, 3, 4)).astype(np.float32)
    mixing = rng.normal(size=(12, n_voxels))
    signal = Y.reshape(n_images, -1)[index] @ mixing
    # columns differ in how much of the voxels' variance they explain, so the chosen alphas differ
    X = (signal * rng.uniform(0.05, 1.0, size=n_voxels) + 3 * rng.normal(size=signal.shape) + 5).astype(np.float32)
    X_test = (Y.reshape(n_images, -1)[:10] @ mixing + rng.normal(size=(10, n_voxels))).astype(np.float32)
    return X, Y, index, X_test


def test_equals_the_naive_per_trial_himalaya_fit(trials):
    X, Y, index, X_test = trials
    naive = RidgeDecoder(alphas=ALPHAS, cv=5, backend="numpy").fit(X, Y[index])
    streamed = StreamedRidgeCV(alphas=ALPHAS, cv=5, block_size=5).fit(X, Y, index)
    assert len(set(naive.best_alphas_.round(3))) > 1  # the check means something: alphas vary by target
    np.testing.assert_allclose(streamed.best_alphas_, naive.best_alphas_, rtol=1e-5)
    np.testing.assert_allclose(streamed.cv_scores_, naive.cv_scores_, rtol=1e-4, atol=1e-5)
    predicted = streamed.predict(X_test)
    assert predicted.shape == (10, 3, 4) and predicted.dtype == np.float64  # scikit-learn's convention
    np.testing.assert_allclose(predicted, naive.predict(X_test), atol=1e-4)


def test_block_size_and_parts_do_not_change_the_result(trials):
    X, Y, index, X_test = trials
    whole = StreamedRidgeCV(alphas=ALPHAS, block_size=10_000).fit(X, Y, index).predict(X_test)
    flat = Y.reshape(len(Y), -1)
    parts = StreamedRidgeCV(alphas=ALPHAS, block_size=3).fit(X, [flat[:, :5], flat[:, 5:]], index)
    first, second = parts.predict(X_test)
    np.testing.assert_allclose(np.concatenate([first, second], axis=1), whole.reshape(10, -1), atol=1e-6)


def test_targets_read_from_memory_maps_and_predictions_written_into_one(trials, tmp_path):
    X, Y, index, X_test = trials
    on_disk = np.lib.format.open_memmap(tmp_path / "y.npy", mode="w+", dtype=np.float16, shape=Y.shape)
    on_disk[:] = Y
    on_disk.flush()
    targets = np.load(tmp_path / "y.npy", mmap_mode="r")
    out = np.lib.format.open_memmap(tmp_path / "pred.npy", mode="w+", dtype=np.float32, shape=(10, 3, 4))
    decoder = StreamedRidgeCV(alphas=ALPHAS, block_size=4).fit(X, targets, index)
    assert decoder.predict(X_test, out=out) is out
    expected = StreamedRidgeCV(alphas=ALPHAS).fit(X, targets.astype(np.float32), index).predict(X_test)
    np.testing.assert_allclose(np.load(tmp_path / "pred.npy"), expected, atol=1e-5)


def test_one_trial_per_image_is_plain_ridge(trials):
    X, Y, index, X_test = trials
    naive = RidgeDecoder(alphas=ALPHAS, cv=4, backend="numpy").fit(X, Y[index])
    streamed = StreamedRidgeCV(alphas=ALPHAS, cv=4).fit(X, Y[index])
    np.testing.assert_allclose(streamed.predict(X_test), naive.predict(X_test), atol=1e-4)


def test_bad_inputs_fail_naming_the_value(trials):
    X, Y, index, _ = trials
    with pytest.raises(ValueError, match="n_trials, n_voxels"):
        StreamedRidgeCV().fit(X[:, :, None], Y, index)
    with pytest.raises(ValueError, match="one entry per trial"):
        StreamedRidgeCV().fit(X, Y, index[:-1])
    with pytest.raises(ValueError, match=r"rows of Y"):
        StreamedRidgeCV().fit(X, Y[:10], index)
    decoder = StreamedRidgeCV(alphas=ALPHAS).fit(X, Y, index)
    with pytest.raises(ValueError, match="X has 5 features, but StreamedRidgeCV is expecting 20"):
        decoder.predict(X[:, :5])
    with pytest.raises(ValueError, match=r"Input y contains NaN or infinity \(target part 0, columns 0-11: 1 values\)"):
        StreamedRidgeCV().fit(X, np.where(np.arange(Y.size).reshape(Y.shape) == 7, np.nan, Y), index)
    with pytest.raises(ValueError, match="Input X contains NaN"):
        StreamedRidgeCV().fit(np.where(X > 7, np.nan, X), Y, index)
    with pytest.raises(ValueError, match="C-contiguous"):
        decoder.predict(X[:3], out=np.zeros((3, 4, 3), np.float32).transpose(0, 2, 1))


def test_fit_targets_reuses_the_decomposition_for_other_targets(trials):
    X, Y, index, X_test = trials
    flat = Y.reshape(len(Y), -1)
    decoder = StreamedRidgeCV(alphas=ALPHAS).fit(X, flat[:, :6], index)
    first = decoder.predict(X_test)
    second = decoder.fit_targets(flat[:, 6:]).predict(X_test)
    together = StreamedRidgeCV(alphas=ALPHAS).fit(X, flat, index).predict(X_test)
    np.testing.assert_allclose(np.concatenate([first, second], axis=1), together, atol=1e-6)
    with pytest.raises(ValueError, match="50 rows"):
        decoder.fit_targets(flat[:10])


def test_the_decoders_recipe_fits_each_layer_as_a_fresh_decoder_would(trials):
    """recon.recipes.ridge_decode (the book's and the dry run's): DPT-like layers, decoded one at a time on one
    decomposition, predict what a decoder fitted on each layer alone predicts; every column's alpha is returned."""
    from recon import recipes

    X, Y, index, X_test = trials
    predicted = np.zeros((len(X_test), *Y.shape[1:]), dtype=np.float32)
    seen = []
    chosen = recipes.ridge_decode(StreamedRidgeCV(alphas=ALPHAS, cv=5), X, index, X_test,
                                  ((layer, Y[:, layer]) for layer in range(Y.shape[1])), predicted,
                                  on_target=lambda layer, target: seen.append((layer, target.shape)))
    assert seen == [(layer, (len(Y), Y.shape[2])) for layer in range(Y.shape[1])]
    for layer in range(Y.shape[1]):
        alone = StreamedRidgeCV(alphas=ALPHAS, cv=5).fit(X, Y[:, layer], index)
        np.testing.assert_allclose(predicted[:, layer], alone.predict(X_test), atol=1e-5)
        np.testing.assert_allclose(chosen[layer * Y.shape[2]:(layer + 1) * Y.shape[2]], alone.best_alphas_)
    whole = np.zeros_like(predicted)
    chosen_whole = recipes.ridge_decode(StreamedRidgeCV(alphas=ALPHAS, cv=5), X, index, X_test, [(None, Y)], whole)
    np.testing.assert_allclose(whole, StreamedRidgeCV(alphas=ALPHAS, cv=5).fit(X, Y, index).predict(X_test), atol=1e-5)
    assert chosen_whole.shape == (Y[0].size,)


def test_float64_equals_the_naive_fit_and_a_bad_dtype_fails(trials):
    X, Y, index, X_test = trials
    naive = RidgeDecoder(alphas=ALPHAS, cv=5, backend="numpy").fit(X.astype(np.float64), Y[index].astype(np.float64))
    streamed = StreamedRidgeCV(alphas=ALPHAS, cv=5, block_size=5, dtype="float64").fit(X, Y, index)
    np.testing.assert_allclose(streamed.best_alphas_, naive.best_alphas_, rtol=1e-6)  # himalaya keeps float32 alphas
    np.testing.assert_allclose(streamed.predict(X_test), naive.predict(X_test.astype(np.float64)), atol=1e-5)
    with pytest.raises(ValueError, match="dtype must be one of float32, float64, got 'float16'"):
        StreamedRidgeCV(dtype="float16").fit(X, Y, index)


_BRANCH_PROBE = """
import hashlib, sys
import numpy as np, torch
from recon.ridge_streamed import StreamedRidgeCV
torch.set_num_threads(1)
rng = np.random.default_rng(1)
n_images, n_voxels = 400, 300
index = np.concatenate([np.arange(n_images), rng.integers(0, n_images, 400)])
Y = rng.normal(size=(n_images, 500)).astype(np.float16)
X = (Y[index].astype(np.float32) @ rng.normal(size=(500, n_voxels)).astype(np.float32) / 10
     + rng.normal(size=(len(index), n_voxels)).astype(np.float32))
decoder = StreamedRidgeCV(alphas=(1e2, 1e3, 1e4), dtype=sys.argv[1]).fit(X, Y, index)
predicted = decoder.predict(X[:50], out=np.empty((50, 500), np.float16))
print(hashlib.sha256(predicted.tobytes()).hexdigest())
"""


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_float64_predictions_rounded_to_float16_do_not_depend_on_mkls_branch(dtype):
    """MKL picks its code path by CPU vendor and model; MKL_CBWR forces each of them on this machine. In float64
    the float16 predictions are the same bytes on every branch; in float32 they are not (the test's control)."""
    import os
    import subprocess
    import sys

    import torch

    if "mkl" not in torch.__config__.show().lower():
        pytest.skip("this PyTorch has no MKL")
    found = {}
    for branch in ("AVX2", "COMPATIBLE", None):
        env = {k: v for k, v in os.environ.items() if k != "MKL_CBWR"} | ({"MKL_CBWR": branch} if branch else {})
        found[branch] = subprocess.run([sys.executable, "-c", _BRANCH_PROBE, dtype], env=env, check=True,
                                       capture_output=True, text=True).stdout.strip()
    if dtype == "float64":
        assert len(set(found.values())) == 1, found
    else:
        assert len(set(found.values())) > 1, f"float32 agreed on every branch: the probe shows nothing ({found})"
