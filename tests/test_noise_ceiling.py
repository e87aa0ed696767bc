"""NSD's ncsnr and noise ceiling: known answers, NSD's conventions, and clear failures."""

import numpy as np
import pytest

from recon.noise_ceiling import ncsnr, noise_ceiling


def simulate(true_snr, n_images=3000, repetitions=3, n_sessions=4, seed=0, drift=True):
    """Trials of signal (unit sd) + noise (sd 1 / snr), shuffled into sessions with offsets and gains."""
    rng = np.random.default_rng(seed)
    true_snr = np.asarray(true_snr, dtype=float)
    signal = rng.standard_normal((n_images, len(true_snr)))
    ids = np.tile(np.arange(n_images), repetitions)
    rng.shuffle(ids)
    with np.errstate(divide="ignore"):
        noise_sd = np.where(true_snr > 0, 1 / true_snr, 1.0)
    weight = np.where(true_snr > 0, 1.0, 0.0)  # snr 0: noise only
    betas = weight * signal[ids] + noise_sd * rng.standard_normal((len(ids), len(true_snr)))
    sessions = np.repeat(np.arange(n_sessions), -(-len(ids) // n_sessions))[: len(ids)]
    if drift:
        for s in range(n_sessions):
            rows = sessions == s
            betas[rows] = rng.uniform(0.8, 1.25, len(true_snr)) * betas[rows] + rng.normal(0, 1, len(true_snr))
    return betas, ids, sessions


def test_recovers_a_known_ncsnr():
    # NSD's shape: 10,000 images x 3 trials (the estimate of a low ncsnr needs them all)
    true = np.array([0.2, 0.4, 0.7, 1.0, 2.0])
    betas, ids, sessions = simulate(true, n_images=10_000, n_sessions=40)
    measured = ncsnr(betas, ids, sessions=sessions)
    np.testing.assert_allclose(measured, true, rtol=0.1, atol=0.03)


def test_untuned_voxels_measure_near_zero_and_never_nan():
    betas, ids, sessions = simulate(np.zeros(50))
    measured = ncsnr(betas, ids, sessions=sessions)
    assert np.isfinite(measured).all() and (measured >= 0).all()
    assert np.median(measured) < 0.1  # the estimate of 0 from 3000 images scatters by about 0.13
    assert (measured == 0).mean() > 0.3  # NSD clips 1 - noisesd^2 at 0


def test_prezscored_betas_give_the_same_answer():
    betas, ids, sessions = simulate([0.4, 0.8], drift=False)
    z = betas.copy()
    for s in np.unique(sessions):
        rows = sessions == s
        z[rows] = (z[rows] - z[rows].mean(0)) / z[rows].std(0, ddof=1)
    np.testing.assert_allclose(ncsnr(z, ids), ncsnr(betas, ids, sessions=sessions))


def test_only_images_with_all_repetitions_count():
    betas, ids, sessions = simulate([0.5, 1.0], n_images=500)
    base = ncsnr(betas, ids, sessions=sessions)
    # add images shown once or twice, with wildly different values: they must be ignored
    extra_ids = np.array([10_000, 10_001, 10_001])
    extra = np.full((3, 2), 50.0)
    z = np.concatenate([betas, extra])
    all_ids = np.concatenate([ids, extra_ids])
    all_sessions = np.concatenate([sessions, [99, 99, 99]])
    np.testing.assert_allclose(ncsnr(z, all_ids, sessions=all_sessions)[:], base, rtol=1e-12)


def test_fewer_repetitions_than_asked_fail_clearly():
    betas, ids, _ = simulate([0.5], n_images=20, repetitions=2, n_sessions=1)
    with pytest.raises(ValueError, match="exactly 3 times"):
        ncsnr(betas, ids)
    assert np.isfinite(ncsnr(betas, ids, repetitions=2)).all()
    with pytest.raises(ValueError, match="at least 2 repetitions"):
        ncsnr(betas, ids, repetitions=1)


def test_bad_shapes_fail_clearly():
    with pytest.raises(ValueError, match=r"\(trials, voxels\)"):
        ncsnr(np.zeros(9), np.arange(9))
    with pytest.raises(ValueError, match="one id per trial"):
        ncsnr(np.zeros((9, 2)), np.arange(8))
    with pytest.raises(ValueError, match="one entry per trial"):
        ncsnr(np.zeros((9, 2)), np.arange(9) % 3, sessions=np.zeros(4))


def test_zero_noise_is_infinite_snr_and_a_full_ceiling():
    betas = np.repeat(np.array([[1.0], [-1.0], [0.5]]), 3, axis=0)
    ids = np.repeat([0, 1, 2], 3)
    assert np.isinf(ncsnr(betas, ids)).all()
    assert noise_ceiling(np.inf) == 100


def test_noise_ceiling_is_nsds_formula():
    snr = np.array([0.0, 0.361, 1.0])
    np.testing.assert_allclose(noise_ceiling(snr, 3), 100 * snr**2 / (snr**2 + 1 / 3))
    # NSD subj01 over nsdgeneral (1.8 mm): median ncsnr 0.361, median noise ceiling 28.1%
    assert noise_ceiling(0.361, 3) == pytest.approx(28.1, abs=0.05)
    assert noise_ceiling(1.0, 1) == pytest.approx(50)
    with pytest.raises(ValueError, match="at least 1"):
        noise_ceiling(snr, 0)
    with pytest.raises(ValueError, match="negative"):
        noise_ceiling(-0.1)
