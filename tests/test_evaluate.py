"""Two-way identification against small cases computed by hand."""

import numpy as np
import pandas as pd
import pytest

from recon import evaluate


def test_correlation_matrix_is_pearson_between_original_i_and_generated_j():
    rng = np.random.default_rng(0)
    originals = rng.normal(size=(3, 7))
    generated = rng.normal(size=(3, 7))
    R = evaluate.correlation_matrix(originals, generated)
    expected = np.array([[np.corrcoef(originals[i], generated[j])[0, 1] for j in range(3)] for i in range(3)])
    np.testing.assert_allclose(R, expected)


def test_correlations_are_averaged_over_samples_before_comparison():
    rng = np.random.default_rng(1)
    originals = rng.normal(size=(3, 6))
    generated = rng.normal(size=(3, 5, 6))
    R = evaluate.correlation_matrix(originals, generated)
    for i in range(3):
        for j in range(3):
            mean_r = np.mean([np.corrcoef(originals[i], generated[j, k])[0, 1] for k in range(5)])
            assert R[i, j] == pytest.approx(mean_r)


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
