"""NSD's noise-ceiling SNR (ncsnr) and noise ceiling of single-trial betas (Allen et al. 2022).

NSD z-scores each voxel's betas within each session, takes the images shown exactly ``n`` times
(3 in NSD), and estimates the trial-noise sd as the root mean, over those images, of the
variance of the image's ``n`` betas (``ddof=1``, unbiased)::

    noisesd = sqrt(mean_images(var(betas of the image)))
    ncsnr   = sqrt(max(0, 1 - noisesd**2)) / noisesd        # signal sd / noise sd
    NC      = 100 * ncsnr**2 / (ncsnr**2 + 1 / n)          # % variance explainable in an n-trial mean

as the authors' ``export_noiseceiling.m`` and ``translatevmetric.m`` (cvnlab/nsddatapaper) compute
it. Because the betas are z-scored, ``1 - noisesd**2`` is the signal variance; a voxel whose
noise estimate reaches 1 gets ncsnr 0.
"""

from __future__ import annotations

import numpy as np

from .nsd import zscore_in_place

__all__ = ["ncsnr", "noise_ceiling", "subject_ncsnr"]


def _zscore_within(betas: np.ndarray, sessions: np.ndarray) -> np.ndarray:
    """A float64 copy of ``betas`` z-scored per voxel within each session (``ddof=1``, as NSD)."""
    out = np.array(betas, dtype=np.float64)
    for session in np.unique(sessions):
        rows = np.flatnonzero(sessions == session)
        block = out[rows]
        zscore_in_place(block, ddof=1)
        out[rows] = block
    return out


def ncsnr(betas, image_ids, *, repetitions: int = 3, sessions=None) -> np.ndarray:
    """Per-voxel ncsnr of single-trial ``betas`` (trials, voxels), NSD's estimator.

    ``image_ids`` names the image of each trial. Only images shown exactly ``repetitions`` times
    count (NSD: 3); others are ignored. The betas should be z-scored per voxel within each
    session, as NSD's are before the estimate; pass ``sessions`` (the session of each trial) to
    have that done here. A voxel with zero noise gets ``inf``; NaN betas are ignored image-wise.
    """
    betas = np.asarray(betas)
    if not np.issubdtype(betas.dtype, np.floating):
        betas = betas.astype(np.float64)
    ids = np.asarray(image_ids)
    if betas.ndim != 2:
        raise ValueError(f"betas must be (trials, voxels), got shape {betas.shape}")
    if ids.shape != (betas.shape[0],):
        raise ValueError(f"image_ids must have one id per trial ({betas.shape[0]}), got shape {ids.shape}")
    if repetitions < 2:
        raise ValueError(f"the noise needs at least 2 repetitions of an image, got repetitions={repetitions}")
    if sessions is not None:
        sessions = np.asarray(sessions)
        if sessions.shape != ids.shape:
            raise ValueError(f"sessions must have one entry per trial ({len(ids)}), got shape {sessions.shape}")
        betas = _zscore_within(betas, sessions)
    _, inverse, counts = np.unique(ids, return_inverse=True, return_counts=True)
    keep = np.flatnonzero(counts == repetitions)
    if len(keep) < 2:
        raise ValueError(
            f"{len(keep)} image(s) are shown exactly {repetitions} times (shown counts: "
            f"{dict(zip(*np.unique(counts, return_counts=True)))}); the estimate needs at least 2"
        )
    # trials of the kept images, grouped: (images, repetitions) row indices
    trial_order = np.argsort(inverse, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rows = trial_order[starts[keep, None] + np.arange(repetitions)]
    variance = betas[rows].var(axis=1, ddof=1, dtype=np.float64)  # (images, voxels), float32 betas summed in float64
    noise_sd = np.sqrt(np.nanmean(variance, axis=0))
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.sqrt(np.clip(1 - noise_sd**2, 0, None)) / noise_sd
    return np.where(noise_sd == 0, np.inf, out)


def noise_ceiling(snr, n_trials: int = 3) -> np.ndarray:
    """NSD's noise ceiling (%) of the mean of ``n_trials`` betas: ``100 ncsnr^2 / (ncsnr^2 + 1/n)``."""
    if n_trials < 1:
        raise ValueError(f"n_trials must be at least 1, got {n_trials}")
    snr = np.asarray(snr, dtype=np.float64)
    if np.any(snr < 0):
        raise ValueError("ncsnr is a ratio of sds and cannot be negative")
    with np.errstate(invalid="ignore"):
        return np.where(np.isinf(snr), 100.0, 100 * snr**2 / (snr**2 + 1 / n_trials))


def subject_ncsnr(reader, subject: str, n_sessions: int, *, atlas: str = "nsdgeneral", roi: str = "nsdgeneral",
                  repetitions: int = 3) -> np.ndarray:
    """ncsnr of every voxel of ``roi`` for one subject, read through an :class:`recon.nsd.NSDReader`.

    Reads the first ``n_sessions`` sessions' single-trial betas, z-scores each session's block in
    place as it is read (``ddof=1``, as NSD; so the betas are held once, as float32: 1.7 GB for a
    full NSD subject) and applies :func:`ncsnr`; on the real NSD (all sessions, nsdgeneral) this
    reproduces NSD's ``ncsnr.nii.gz`` within the ROI.
    """
    mask, _ = reader.roi_selection(subject, [roi], atlas)
    trials = reader.trials(subject, n_sessions)
    betas = np.empty((len(trials), int(mask.sum())), dtype=np.float32)
    for session in range(1, n_sessions + 1):
        rows = np.flatnonzero(trials["session"].to_numpy() == session)
        block = reader.session_betas(subject, session, mask)
        if len(block) != len(rows):
            raise ValueError(f"{subject} session {session}: {len(block)} betas but {len(rows)} trials in the design")
        zscore_in_place(block, ddof=1)
        betas[rows] = block
    return ncsnr(betas, trials["nsd_id"].to_numpy(), repetitions=repetitions)
