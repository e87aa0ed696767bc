# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The simulated Natural Scenes Dataset
#
# The `toy` profile needs data that behave like the Natural Scenes Dataset (NSD)
# {cite:p}`allen2022nsd` without downloading it. `recon.toy.simulate`
# writes a small NSD tree in the official layout (`nsd_expdesign.mat`, `nsd_stim_info_merged.csv`
# with NSD's columns, `streams` ROI volumes with their colour table, per-session betas as
# int16 × 300 in both of NSD's formats, `betas_sessionNN.nii.gz` and `betas_sessionNN.hdf5`, each
# subject's `behav/responses.tsv`, `imgBrick` in `nsd_stimuli.hdf5`, COCO-style captions),
# deterministically from a seed, and the book reads it only through `recon.nsd.NSDReader`, the
# reader that serves the real dataset. Because the tree holds what NSD ships, other NSD code runs
# on it too: the tests run the authors' data preparation (trials mapped to images through
# `responses.tsv`, HDF5 betas read with h5py) and get the same trials, voxels and test betas.
# Where the toy has no model (the subjects' old/new button presses, trial times, COCO crop boxes),
# those files hold simulated plausible values.
#
# **Stimuli.** Procedural scenes of one to three everyday objects: twelve categories that differ in
# silhouette and parts (ball, box, tent, star, ring, house, tree, car, mushroom, moon, kite,
# bottle; a car has wheels and windows, a house a roof, door and window, a tree a trunk), eight
# colours, two sizes, each at a horizontal position and a depth (nearer objects sit lower, look
# larger and occlude farther ones), over one of six patterned backgrounds (grass, a beach with
# its sea and waves, a room's wallpaper and floorboards, a dark street's road markings and stars,
# snow, a kitchen's floor tiles), lit from the left, the right or above, brightly or dimly. Each
# image has a ground-truth depth map and five captions from a grammar in the manner of COCO's
# {cite:p}`lin2014coco`: synonyms ("crate" for box, "donut" for ring), counts ("two red balls"),
# positions, relations ("a car to the left of a tree") and the light
# ({numref}`fig-simulated-stimuli`).
#
# **Subjects.** subj01, subj02, subj05 and subj07 each have their own voxel grid (so their own
# voxel count), ROI layout and noise, calibrated to NSD's (below). Like NSD, each subject sees the
# shared test images and their own training images three times each, in sessions of trials
# ({numref}`tbl-simulated-subjects`).
#
# **Encoding model.** The simulated responses never use the decoders' features (VAE latents,
# CLIP, BLIP, DPT, VGG19). *Early* voxels have population receptive fields (Gaussian, random
# centre and size) over local luminance, red-green and blue-yellow opponency and contrast of a
# 16 × 16 version of the image. *Ventral* voxels are tuned (random sparse weights) to which object
# categories and colours are present, their conjunctions, the number of objects and the background. *Lateral* and *parietal* voxels
# are tuned to a 4 × 4 object-occupancy map, object size, nearness, horizon height and a 4 × 4
# depth map. The *mid* streams mix early-like receptive fields with their higher neighbour's
# tuning. Each voxel's response is z-scored over images (its signal), and every trial adds
# Gaussian noise, plus a per-session offset and gain, so the betas drift between sessions as NSD's
# do (the last section measures how much per-session z-scoring matters here).
#
# **Noise, calibrated to NSD.** NSD measures each voxel's noise-ceiling SNR, `ncsnr`, the sd of its
# signal over the sd of its single-trial noise, from the images shown three times
# {cite:p}`allen2022nsd`: z-score each voxel's betas per session, take the noise sd as the root
# mean of the variance of each image's three betas, `ncsnr = sqrt(max(0, 1 - noisesd²)) / noisesd`,
# and the noise ceiling of a three-trial mean is `100 ncsnr² / (ncsnr² + 1/3)` %
# (`recon.noise_ceiling`). In NSD most voxels are noisy: over the nsdgeneral voxels of the
# betas we use (`betas_fithrf_GLMdenoise_RR`, 1.8 mm) the median ncsnr is 0.361 for subj01, 0.361
# for subj02, 0.415 for subj05 and 0.281 for subj07 (noise ceilings 28%, 28%, 34%, 19%), computed
# from NSD's released `ncsnr.nii.gz` files in the brain-score/vision repository's NSD packaging
# notebooks; Allen et al.'s own summary, on the cortical surface, ranks the subjects the same way
# (median ncsnr 0.490, 0.510, 0.542, 0.371; mean noise ceiling over the eight subjects 36.2%),
# higher because the surface has no partial-volume voxels. So each simulated voxel draws its
# ncsnr from `max(0, Normal(m, 0.952 m))`, `m` its subject's volume median: the rectification is
# NSD's own (a voxel whose noise estimate reaches its total variance gets 0), and the spread is
# fitted to the one subject whose mean is also given (subj01: median 0.361, mean 0.387); the other
# subjects keep that shape at their own median, since no other spread is published. About 15% of
# the voxels get ncsnr 0 and carry no signal at all. A trial is the voxel's signal plus noise of sd
# `1 / ncsnr`, written scaled to unit variance, so a voxel with ncsnr 0 is pure noise and every
# voxel's betas have the same scale. NSD's own estimator, run on the simulated betas through
# `recon.nsd.NSDReader`, recovers the target ({numref}`fig-simulated-ncsnr`); the estimate of each
# voxel scatters around its true value because only the shared and training images shown three
# times enter it, so voxels with ncsnr 0 can measure slightly above it. This simulated brain does
# not give early voxels a higher ncsnr than the ventral ones, as NSD's do.

# %% tags=["parameters", "hide-input"]
subject = "subj01"
profile = "toy"
n_samples = 5
seed = 0
device = "cpu"
n_sessions = None  # sessions per subject read from NSD (None: the profile's; 37 on nsd)

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from myst_nb import glue

from recon import book
from recon.toy import probe
from recon.config import SUBJECTS, STREAMS_ROIS

exp = book.start(profile, subject, n_samples=n_samples, seed=seed, device=device, n_sessions=n_sessions)
reader = exp.reader
glue("n_stimuli", reader.n_stimuli, display=False)

# %% [markdown]
# ## Stimuli and captions

# %% tags=["hide-input", "remove-output"]
ids = exp.data.test_ids[:8]
images, captions = reader.images(ids), reader.captions(ids)
fig, axes = plt.subplots(1, 8, figsize=(13, 2.3))
for ax, image, caption in zip(axes, images, captions):
    ax.imshow(image)
    ax.set_axis_off()
    ax.set_title("\n".join([caption[0][i:i + 24] for i in range(0, len(caption[0]), 24)]), fontsize=6)
book.glue_figure("fig_stimuli", fig)

# %% [markdown]
# ```{glue:figure} fig_stimuli
# :name: fig-simulated-stimuli
# :alt: Eight simulated scenes, one to three coloured objects (balls, boxes, houses, cars, trees and others) over patterned grass, beach, room, street, snow or kitchen backgrounds, each with its caption above.
#
# The first eight shared test images of the simulated NSD, read back through `recon.nsd.NSDReader`,
# each with the first of its five captions.
# ```
#
# ## Subjects

# %% tags=["hide-input", "remove-output"]
labels = reader.roi_labels("streams")
rows = {}
for name in SUBJECTS:
    volume = reader.roi_volume(name)
    trials = reader.trials(name, exp.profile.n_sessions)
    rows[name] = {roi: int((volume == labels[roi]).sum()) for roi in STREAMS_ROIS}
    rows[name] |= {"sessions": exp.profile.n_sessions, "train trials": int((~trials.shared).sum()),
                   "test images": int(trials[trials.shared].nsd_id.nunique())}
book.glue_table("tbl_subjects", pd.DataFrame(rows).T.rename_axis("subject"))

# %% [markdown]
# ::::{div} full-width
# :::{table} The four simulated subjects: voxels in each streams ROI, sessions, training trials and shared test images.
# :name: tbl-simulated-subjects
#
# ```{glue:md} tbl_subjects
# :format: myst
# ```
# :::
# ::::

# %% tags=["hide-input", "remove-output"]
from recon import figures
from recon.noise_ceiling import subject_ncsnr
from recon.toy.simulate import NCSNR_SD_OVER_MEDIAN, NSD_NCSNR_MEDIAN, NSD_SURFACE_NCSNR_MEDIAN

measured_ncsnr = {name: subject_ncsnr(reader, name, exp.profile.n_sessions) for name in SUBJECTS}
book.glue_figure("fig_ncsnr", figures.ncsnr_distributions(measured_ncsnr, NSD_NCSNR_MEDIAN, NCSNR_SD_OVER_MEDIAN,
                                                          NSD_SURFACE_NCSNR_MEDIAN))
for name, values in measured_ncsnr.items():
    glue(f"ncsnr_median_{name}", float(np.median(values)), display=False)

# %% [markdown]
# ```{glue:figure} fig_ncsnr
# :name: fig-simulated-ncsnr
# :alt: Four histograms, one per simulated subject, of the noise-ceiling SNR of its nsdgeneral voxels measured on the simulated betas, each with the target distribution as a curve, a bar for the voxels at zero, and dashed and dotted lines at NSD's published medians.
#
# The noise-ceiling SNR of every simulated nsdgeneral voxel, measured from the simulated betas
# with NSD's estimator (`recon.noise_ceiling`), per subject (blue; median in solid blue); the
# target it was drawn from, `max(0, Normal(m, 0.952 m))` (black curve, and the bar at 0 its 15% of
# untuned voxels); NSD's median `m` over nsdgeneral in the 1.8 mm volume (dashed red) and Allen et
# al.'s median on the cortical surface (dotted red) {cite:p}`allen2022nsd`. Measured medians:
# subj01 {glue:text}`ncsnr_median_subj01:.3f`, subj02 {glue:text}`ncsnr_median_subj02:.3f`, subj05
# {glue:text}`ncsnr_median_subj05:.3f`, subj07 {glue:text}`ncsnr_median_subj07:.3f`.
# ```
#
# ## Does the simulated brain carry what it should?
#
# Ridge decoders from early or ventral voxels of this subject predict two simple descriptors of the
# test images: their 8 × 8 colour maps (low level) and which category and colour words their captions
# use (semantics), in {numref}`tbl-simulated-probe`.

# %% tags=["hide-input", "remove-output"]
table = probe.roi_probe(reader, exp.data)
glue("early_low", float(table.loc["early"].iloc[0]), display=False)
glue("ventral_low", float(table.loc["ventral"].iloc[0]), display=False)
glue("early_sem", float(table.loc["early"].iloc[1]), display=False)
glue("ventral_sem", float(table.loc["ventral"].iloc[1]), display=False)
book.glue_table("tbl_probe", table)

# %% [markdown]
# :::{table} Mean test correlation of ridge decoders from this subject's early or ventral voxels for a low-level descriptor (8 × 8 colour maps) and a semantic one (category and colour words of the captions).
# :name: tbl-simulated-probe
#
# ```{glue:md} tbl_probe
# :format: myst
# ```
# :::
#
# Early voxels predict the low-level maps at r = {glue:text}`early_low:.2f` against
# {glue:text}`ventral_low:.2f` from ventral voxels; ventral voxels predict the caption semantics at
# r = {glue:text}`ventral_sem:.2f` against {glue:text}`early_sem:.2f` from early voxels. The tree
# holds {glue:text}`n_stimuli` stimuli.

# %% [markdown]
# ## Per-session z-scoring or the authors' preprocessing
#
# The simulated brain, like the real one, drifts between sessions: each session adds its own
# offset and gain to every voxel. `recon` can z-score each voxel within each session (the `toy`
# profile's `zscore_betas_per_session = True`), or do exactly what the authors' code does (the
# `nsd` profile's default): read the raw betas (here / 300) and let the ridge standardise each
# voxel over all training trials. One ridge decoder from this subject's early voxels, with the
# profile's alphas, predicts the test images' 8 × 8 colour maps both ways
# ({numref}`tbl-simulated-zscore`).

# %% tags=["hide-input", "remove-output"]
p = exp.profile
accuracy = probe.preprocessing_probe(reader, exp.data, subject, p.n_sessions, alphas=p.alphas_lowdim, cv=p.cv_folds,
                                     backend=p.ridge_backend)
z_scored, raw = float(accuracy["z-scored per session"]), float(accuracy["raw / 300, as the authors"])
glue("zscore_on_r", z_scored, display=False)
glue("zscore_off_r", raw, display=False)
glue("zscore_gain", z_scored - raw, display=False)
book.glue_table("tbl_zscore", accuracy.to_frame(), digits=4)

# %% [markdown]
# :::{table} One ridge decoder from this subject's early voxels predicting the test images' 8 × 8 colour maps, from betas z-scored per session or prepared as the authors did.
# :name: tbl-simulated-zscore
#
# ```{glue:md} tbl_zscore
# :format: myst
# ```
# :::
#
# With per-session z-scoring the decoder reaches r = {glue:text}`zscore_on_r:.4f`, on the raw
# betas r = {glue:text}`zscore_off_r:.4f` (a difference of {glue:text}`zscore_gain:.4f`). In the
# simulated brain a session's offset (variance 1) is on average about a fifth of a voxel's trial
# variance (amplitude² × gain², 4.6 on average); the `toy` profile keeps per-session z-scoring,
# the `nsd` profile follows the authors.
