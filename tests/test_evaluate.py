"""Two-way identification against small cases computed by hand."""

import numpy as np
import pandas as pd
import pytest

from recon import evaluate



def reference_correlation_matrix(originals, generated):
    """The former float64 einsum implementation, kept as the reference for the float32 one."""
    def zscore_rows(x):
        x = x - x.mean(axis=-1, keepdims=True)
        norm = np.linalg.norm(x, axis=-1, keepdims=True)
        return x / np.where(norm == 0, 1, norm)

    originals = np.asarray(originals, dtype=np.float64).reshape(len(originals), -1)
    generated = np.asarray(generated, dtype=np.float64)
    if generated.ndim == 2:
        generated = generated[:, None]
    generated = generated.reshape(generated.shape[0], generated.shape[1], -1)
    return np.einsum("id,jkd->ijk", zscore_rows(originals), zscore_rows(generated)).mean(axis=2)


def test_correlation_matrix_is_pearson_between_original_i_and_generated_j():
    rng = np.random.default_rng(0)
    originals = rng.normal(size=(3, 7))
    generated = rng.normal(size=(3, 7))
    R = evaluate.correlation_matrix(originals, generated)
    expected = np.array([[np.corrcoef(originals[i], generated[j])[0, 1] for j in range(3)] for i in range(3)])
    np.testing.assert_allclose(R, expected, atol=1e-6)


def test_correlations_are_averaged_over_samples_before_comparison():
    rng = np.random.default_rng(1)
    originals = rng.normal(size=(3, 6))
    generated = rng.normal(size=(3, 5, 6))
    R = evaluate.correlation_matrix(originals, generated)
    for i in range(3):
        for j in range(3):
            mean_r = np.mean([np.corrcoef(originals[i], generated[j, k])[0, 1] for k in range(5)])
            assert R[i, j] == pytest.approx(mean_r, abs=1e-6)



@pytest.mark.parametrize("shape", [(2, 1, 3), (5, 1, 40), (7, 5, 33), (12, 3, 2, 9, 4), (30, 5, 1000)])
def test_float32_products_equal_the_float64_einsum(shape):
    rng = np.random.default_rng(sum(shape))
    n, n_samples, *d = shape
    originals = rng.normal(size=(n, *d)) * 3 + 2  # an offset that the z-scoring must remove
    generated = rng.normal(size=(n, n_samples, int(np.prod(d))))
    generated[:, 0] += 0.5 * originals.reshape(n, -1)  # correlated, so r spans a range
    expected = reference_correlation_matrix(originals, generated)
    R = evaluate.correlation_matrix(originals, generated)
    assert R.dtype == np.float64 and R.shape == (n, n)
    np.testing.assert_allclose(R, expected, rtol=0, atol=1e-5)
    if n_samples == 1:  # (n, d) generated means one sample
        np.testing.assert_allclose(evaluate.correlation_matrix(originals, generated[:, 0]), expected, atol=1e-5)


def test_chunking_does_not_change_the_result(tmp_path):
    rng = np.random.default_rng(4)
    originals = rng.standard_normal((9, 257), dtype=np.float32)
    generated = np.lib.format.open_memmap(tmp_path / "g.npy", mode="w+", dtype=np.float32, shape=(9, 3, 257))
    generated[:] = rng.standard_normal((9, 3, 257), dtype=np.float32) + originals[:, None]
    whole = evaluate.correlation_matrix(originals, generated, chunk_size=257)
    for chunk_size in (1, 16, 100, 256, 10_000):
        np.testing.assert_allclose(evaluate.correlation_matrix(originals, generated, chunk_size=chunk_size), whole,
                                   rtol=0, atol=1e-6)
    np.testing.assert_allclose(whole, reference_correlation_matrix(originals, generated), rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="chunk_size must be >= 1 column, got 0"):
        evaluate.correlation_matrix(originals, generated, chunk_size=0)


def test_constant_rows_correlate_zero_as_before():
    originals = np.array([[0.1] * 6, [1.0, 2.0, 0.0, 1.0, 3.0, 1.0]], dtype=np.float32)
    generated = np.array([[1.0, 0.0, 2.0, 1.0, 0.0, 1.0], [7.0] * 6], dtype=np.float32)
    R = evaluate.correlation_matrix(originals, generated)
    assert (R[0] == 0).all() and (R[:, 1] == 0).all()
    np.testing.assert_allclose(R, reference_correlation_matrix(originals, generated), atol=1e-6)


def test_identical_reconstructions_tie_and_ties_still_fail():
    # Reconstructions 0 and 40 are the same image: R[0, 0] == R[0, 40] exactly, a failure for image 0,
    # wherever the two columns fall in the matrix product's tiles.
    rng = np.random.default_rng(5)
    originals = rng.standard_normal((41, 300), dtype=np.float32)
    generated = rng.standard_normal((41, 5, 300), dtype=np.float32) + originals[:, None]
    generated[40] = generated[0]
    for chunk_size in (None, 64):
        R = evaluate.correlation_matrix(originals, generated, chunk_size=chunk_size)
        assert R[0, 0] == R[0, 40] and R[40, 0] == R[40, 40]
        accuracy = evaluate.identification_accuracy(R)
        assert accuracy[0] == pytest.approx(39 / 40) and accuracy[1:40].min() == 1.0

def test_accuracy_by_hand():
    # row 0: 0.9 beats 0.1 and 0.5 -> 1; row 1: 0.2 beats 0.1 only -> 1/2; row 2: 0.0 beats nothing -> 0
    R = np.array([[0.9, 0.1, 0.5], [0.1, 0.2, 0.6], [0.3, 0.4, 0.0]])
    np.testing.assert_allclose(evaluate.identification_accuracy(R), [1.0, 0.5, 0.0])


def test_ties_count_as_failures():
    R = np.array([[0.5, 0.5, 0.1], [0.2, 0.7, 0.7], [0.3, 0.3, 0.3]])
    np.testing.assert_allclose(evaluate.identification_accuracy(R), [0.5, 0.5, 0.0])


def test_averaging_over_samples_changes_the_verdict():
    # One good and one bad sample: per-sample identification would give 1/2 for image 0, averaged r gives 1.
    originals = np.array([[1.0, 0.0, 0.0, -1.0], [0.0, 1.0, -1.0, 0.0]])
    good, bad = originals[0], originals[1]
    generated = np.stack([
        np.stack([good, 0.4 * bad + 0.6 * good]),   # image 0: mostly itself
        np.stack([originals[1], originals[1]]),
    ])
    assert evaluate.two_way_identification(originals, generated) == 1.0


def test_perfect_and_reversed_reconstructions():
    rng = np.random.default_rng(2)
    originals = rng.normal(size=(6, 10))
    perfect = np.repeat(originals[:, None], 5, axis=1)
    assert evaluate.two_way_identification(originals, perfect) == 1.0
    assert evaluate.two_way_identification(originals, -perfect) == 0.0


def test_reconstruction_anchor_differs_from_takagi_anchor():
    # R (originals x reconstructions): column-wise comparison for the peers' protocol.
    originals = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    recons = np.array([[1.0, 0.2, 0.0], [0.9, 0.8, 0.0], [0.0, 0.0, 1.0]])
    R = evaluate.correlation_matrix(originals, recons)
    takagi = evaluate.identification_accuracy(R).mean()
    anchor = evaluate.identification_accuracy(R.T).mean()
    assert evaluate.two_way_identification(originals, recons[:, None]) == pytest.approx(takagi)
    assert evaluate.two_way_identification_reconstruction_anchor(originals, recons[:, None]) == pytest.approx(anchor)
    assert takagi != anchor


def test_identification_scores_protocol_and_keep():
    rng = np.random.default_rng(3)
    feats = {m: rng.normal(size=(4, 8)) for m in evaluate.METRICS}
    generated = {m: np.repeat(v[:, None], 2, axis=1) for m, v in feats.items()}
    generated["CNN(Late)"][3] *= -1  # image 3 is anti-correlated in one metric
    scores = evaluate.identification_scores(feats, generated)
    assert set(scores) == set(evaluate.METRICS) and scores["CLIP(Late)"] == 1.0 and scores["CNN(Late)"] < 1.0
    kept = evaluate.identification_scores(feats, generated, keep=np.array([True, True, True, False]))
    assert kept["CNN(Late)"] == 1.0
    with pytest.raises(ValueError, match="unknown protocol"):
        evaluate.identification_scores(feats, generated, protocol="nope")


def test_shape_mismatch_and_single_image_fail():
    with pytest.raises(ValueError, match="do not match"):
        evaluate.correlation_matrix(np.zeros((3, 4)), np.zeros((2, 5, 4)))
    with pytest.raises(ValueError, match="at least two"):
        evaluate.identification_accuracy(np.ones((1, 1)))


def test_summary_uses_population_sd_like_the_paper():
    paper = evaluate.paper_table()
    inception = paper["Inception-v3"].xs("[30]", level="method")
    summary = evaluate.summarise(paper)
    # The paper's [30] Inception-v3: 0.743 ± 0.017 over the four subjects (population sd).
    assert summary.loc["[30]", "Inception-v3"] == f"{inception.mean():.3f} ± {inception.std(ddof=0):.3f}"
    assert summary.loc["[30]", "Inception-v3"] == "0.743 ± 0.017"


def test_side_by_side_pairs_reproduced_with_paper():
    reproduced = evaluate.paper_table().iloc[:2] * 0 + 0.5
    frame = evaluate.side_by_side(reproduced)
    assert frame[("CLIP(Early)", "paper")].iloc[0] == 0.795
    assert frame[("CLIP(Early)", "reproduced")].iloc[0] == 0.5
    assert isinstance(frame, pd.DataFrame)


@pytest.mark.parametrize("protocol", ["takagi", "reconstruction_anchor"])
def test_scores_from_batched_correlations_equal_scores_from_whole_features(protocol):
    """The experiment builds R a batch of reconstructions at a time; the scores must not change."""
    rng = np.random.default_rng(3)
    n, k = 9, 3
    original = {m: rng.normal(size=(n, 20)) for m in evaluate.METRICS}
    generated = {m: original[m][:, None] + 2 * rng.normal(size=(n, k, 20)) for m in evaluate.METRICS}
    mean, first = {}, {}
    for m in evaluate.METRICS:
        mean[m] = np.concatenate([evaluate.cross_correlations(original[m], generated[m][rows])
                                  for rows in (slice(0, 4), slice(4, 9))], axis=1)
        first[m] = evaluate.cross_correlations(original[m], generated[m][:, :1])
    keep = np.array([True] * 7 + [False] * 2)
    for selection in (None, keep):
        expected = evaluate.identification_scores(original, generated, selection, protocol)
        got = evaluate.scores_from_correlations(mean, first, selection, protocol)
        assert got == pytest.approx(expected, abs=1e-12)


def test_pixel_metrics_follow_mindeyes_definitions():
    from skimage.color import rgb2gray
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(0)
    originals = rng.integers(0, 256, (3, 24, 24, 3), dtype=np.uint8)
    noisy = np.clip(originals + rng.normal(0, 40, originals.shape), 0, 255).astype(np.uint8)
    same = evaluate.pixel_metrics(originals, originals, size=32)
    assert np.allclose(same["PixCorr"], 1) and np.allclose(same["SSIM"], 1)
    scores = evaluate.pixel_metrics(originals, noisy, size=32, batch_size=2)
    assert set(scores) == set(evaluate.PIXEL_METRICS) and scores["PixCorr"].shape == (3,)
    assert (scores["PixCorr"] < 1).all() and (scores["SSIM"] < 1).all()
    # the same numbers by hand for image 1: resize, flatten, r; grayscale SSIM with sigma 1.5
    from recon.features import to_unit_tensor

    o = to_unit_tensor(originals[1:2], 32)[0].permute(1, 2, 0).double().numpy()
    g = to_unit_tensor(noisy[1:2], 32)[0].permute(1, 2, 0).double().numpy()
    assert scores["PixCorr"][1] == pytest.approx(np.corrcoef(o.ravel(), g.ravel())[0, 1])
    ssim = structural_similarity(rgb2gray(o), rgb2gray(g), gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False, data_range=1.0)
    assert scores["SSIM"][1] == pytest.approx(ssim)
    with pytest.raises(ValueError, match="2 reconstructions"):
        evaluate.pixel_metrics(originals, noisy[:2])


def test_per_image_scores_average_to_the_scores():
    rng = np.random.default_rng(2)
    R = {m: rng.normal(size=(6, 6)) for m in evaluate.METRICS}
    keep = np.array([True, False, True, True, True, False])
    for protocol in evaluate.PROTOCOLS:
        per_image = evaluate.per_image_scores_from_correlations(R, R, keep, protocol)
        scores = evaluate.scores_from_correlations(R, R, keep, protocol)
        assert all(per_image[m].shape == (4,) and per_image[m].mean() == scores[m] for m in evaluate.METRICS)
