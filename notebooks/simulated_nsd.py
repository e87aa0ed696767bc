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
# **Stimuli.** Procedural scenes: one or two shapes (circle, square, triangle) in six colours, two
# sizes, at a horizontal position and a depth (nearer objects sit lower and look larger) over one
# of four backgrounds (grass field, beach, room, dark street), with five captions from a small
# grammar (in the style of COCO's {cite:p}`lin2014coco`) and a ground-truth depth map
# ({numref}`fig-simulated-stimuli`).
#
# **Subjects.** subj01, subj02, subj05 and subj07 each have their own voxel grid (so their own
# voxel count), ROI layout and noise level (subj01 least noisy, subj07 most, as the paper's
# accuracies rank them). Like NSD, each subject sees the shared test images and their own training
# images three times each, in sessions of trials ({numref}`tbl-simulated-subjects`).
#
# **Encoding model.** The simulated responses never use the decoders' features (VAE latents,
# CLIP, BLIP, DPT, VGG19). *Early* voxels have population receptive fields (Gaussian, random
# centre and size) over local luminance, red-green and blue-yellow opponency and contrast of a
# 16 × 16 version of the image. *Ventral* voxels are tuned (random sparse weights) to which shapes
# and colours are present, their conjunctions and the background. *Lateral* and *parietal* voxels
# are tuned to a 4 × 4 object-occupancy map, object size, nearness, horizon height and a 4 × 4
# depth map. The *mid* streams mix early-like receptive fields with their higher neighbour's
# tuning. Each voxel's response is z-scored over images, and every trial adds Gaussian noise at
# the subject's level, plus a per-session offset and gain, so the betas drift between sessions as
# NSD's do (the last section measures how much per-session z-scoring matters here).

# %% tags=["parameters", "hide-input"]
subject = "subj01"
profile = "toy"
n_samples = 5
seed = 0
device = "cpu"

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from myst_nb import glue

from recon import book
from recon.toy import probe
from recon.config import SUBJECTS, STREAMS_ROIS

exp = book.start(profile, subject, n_samples=n_samples, seed=seed, device=device)
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
# :alt: Eight simulated scenes, coloured circles, squares and triangles over grass, beach, room or street backgrounds, each with its caption above.
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
#
# ## Does the simulated brain carry what it should?
#
# Ridge decoders from early or ventral voxels of this subject predict two simple descriptors of the
# test images: their 8 × 8 colour maps (low level) and which shape and colour words their captions
# use (semantics), in {numref}`tbl-simulated-probe`.

# %% tags=["hide-input", "remove-output"]
table = probe.roi_probe(reader, exp.data)
glue("early_low", float(table.loc["early"].iloc[0]), display=False)
glue("ventral_low", float(table.loc["ventral"].iloc[0]), display=False)
glue("early_sem", float(table.loc["early"].iloc[1]), display=False)
glue("ventral_sem", float(table.loc["ventral"].iloc[1]), display=False)
book.glue_table("tbl_probe", table)

# %% [markdown]
# :::{table} Mean test correlation of ridge decoders from this subject's early or ventral voxels for a low-level descriptor (8 × 8 colour maps) and a semantic one (shape and colour words of the captions).
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
from recon.decode import RidgeDecoder

p = exp.profile
train_unique, train_inverse = np.unique(exp.data.train_ids, return_inverse=True)
y_train = probe.low_level_descriptor(reader.images(train_unique))[train_inverse]
y_test = probe.low_level_descriptor(reader.images(exp.data.test_ids))
accuracy = {}
for zscore, label in ((True, "z-scored per session"), (False, "raw / 300, as the authors")):
    betas = reader.load_subject(subject, ["early"], p.n_sessions, zscore_per_session=zscore)
    decoder = RidgeDecoder(alphas=p.alphas_lowdim, cv=p.cv_folds, backend=p.ridge_backend)
    decoder.fit(betas.train_betas, y_train)
    accuracy[label] = decoder.score(betas.test_betas, y_test)
    glue("zscore_on_r" if zscore else "zscore_off_r", accuracy[label], display=False)
glue("zscore_gain", accuracy["z-scored per session"] - accuracy["raw / 300, as the authors"], display=False)
book.glue_table("tbl_zscore", pd.DataFrame({"mean test r": accuracy}).rename_axis("betas"), digits=4)

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
# simulated brain a session's offset is on average about a tenth of a voxel's variance, and on
# this strongly encoded target the two preparations decode about equally well; the `toy` profile
# keeps per-session z-scoring, the `nsd` profile follows the authors.
