"""Ridge decoders: shapes, cross-validated alphas, recovery of a linear map."""

import numpy as np
import pytest

from recon.decode import RidgeDecoder, target_correlations


@pytest.fixture(scope="module")
def linear_problem():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 30)).astype(np.float32)
    W = rng.normal(size=(30, 2, 3)).astype(np.float32)
    Y = np.einsum("nv,vab->nab", X, W) + 0.1 * rng.normal(size=(120, 2, 3)).astype(np.float32)
    return X, Y


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_fit_predict_shapes_and_accuracy(linear_problem, backend):
    X, Y = linear_problem
    decoder = RidgeDecoder(alphas=(0.01, 1.0, 1e4), cv=4, backend=backend).fit(X[:100], Y[:100])
    predicted = decoder.predict(X[100:])
    assert predicted.shape == (20, 2, 3) and predicted.dtype == np.float64  # scikit-learn's convention
    assert decoder.best_alphas_.shape == (6,)
    assert decoder.cv_scores_.shape == (6,)  # the best alpha's CV score per target
    assert decoder.score(X[100:], Y[100:]) > 0.95


def test_cross_validation_prefers_strong_penalty_for_pure_noise():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(100, 40)).astype(np.float32)
    Y = rng.normal(size=(100, 4)).astype(np.float32)
    decoder = RidgeDecoder(alphas=(1e-3, 1e5), cv=5, backend="numpy").fit(X, Y)
    np.testing.assert_allclose(decoder.best_alphas_, 1e5, rtol=1e-5)


def test_backends_agree(linear_problem):
    X, Y = linear_problem
    a = RidgeDecoder(cv=3, backend="numpy").fit(X, Y).predict(X[:5])
    b = RidgeDecoder(cv=3, backend="torch").fit(X, Y).predict(X[:5])
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-3)


def test_bad_shapes_fail_clearly():
    with pytest.raises(ValueError, match="n_samples, n_voxels"):
        RidgeDecoder().fit(np.zeros((10, 2, 2)), np.zeros((10, 1)))
    with pytest.raises(ValueError, match="10 samples but Y has 9"):
        RidgeDecoder().fit(np.zeros((10, 3)), np.zeros((9, 1)))


def test_target_correlations_by_hand():
    Y = np.array([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])
    predicted = np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0]])
    np.testing.assert_allclose(target_correlations(Y, predicted), [1.0, -1.0])
