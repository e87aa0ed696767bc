# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The simulated Natural Scenes Dataset
#
# The `toy` profile needs data that behave like NSD without downloading it. `recon.simulate`
# writes a small NSD tree in the official layout (`nsd_expdesign.mat`, `nsd_stim_info_merged.csv`,
# `streams` ROI volumes with their colour table, per-session betas as int16 × 300 in NIfTI,
# `imgBrick` in `nsd_stimuli.hdf5`, COCO-style captions), deterministically from a seed, and the
# book reads it only through `recon.nsd.NSDReader`, the reader that serves the real dataset.
#
# **Stimuli.** Procedural scenes: one or two shapes (circle, square, triangle) in six colours, two
# sizes, at a horizontal position and a depth (nearer objects sit lower and look larger) over one
# of four backgrounds (grass field, beach, room, dark street), with five captions from a small
# grammar and a ground-truth depth map.
#
# **Subjects.** subj01, subj02, subj05 and subj07 each have their own voxel grid (so their own
# voxel count), ROI layout and noise level (subj01 least noisy, subj07 most, as the paper's
# accuracies rank them). Like NSD, each subject sees the shared test images and their own training
# images three times each, in sessions of trials.
#
# **Encoding model.** The simulated responses never use the decoders' features (VAE latents,
# CLIP, BLIP, DPT, VGG19). *Early* voxels have population receptive fields (Gaussian, random
# centre and size) over local luminance, red-green and blue-yellow opponency and contrast of a
# 16 × 16 version of the image. *Ventral* voxels are tuned (random sparse weights) to which shapes
# and colours are present, their conjunctions and the background. *Lateral* and *parietal* voxels
# are tuned to a 4 × 4 object-occupancy map, object size, nearness, horizon height and a 4 × 4
# depth map. The *mid* streams mix early-like receptive fields with their higher neighbour's
# tuning. Each voxel's response is z-scored over images, and every trial adds Gaussian noise at
# the subject's level, plus a per-session offset and gain, so per-session z-scoring matters.

# %% tags=["parameters"]
subject = "subj01"
profile = "toy"
n_samples = 5
seed = 0
device = "cpu"

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from myst_nb import glue

from recon import book, probe
from recon.config import SUBJECTS, STREAMS_ROIS

exp = book.start(profile, subject, n_samples=n_samples, seed=seed, device=device)
reader = exp.reader
glue("n_stimuli", reader.n_stimuli, display=False)

# %% [markdown]
# ## Stimuli and captions

# %%
ids = exp.data.test_ids[:8]
images, captions = reader.images(ids), reader.captions(ids)
fig, axes = plt.subplots(1, 8, figsize=(13, 2.3))
for ax, image, caption in zip(axes, images, captions):
    ax.imshow(image)
    ax.set_axis_off()
    ax.set_title("\n".join([caption[0][i:i + 24] for i in range(0, len(caption[0]), 24)]), fontsize=6)

# %% [markdown]
# ## Subjects

# %%
labels = reader.roi_labels("streams")
rows = {}
for name in SUBJECTS:
    volume = reader.roi_volume(name)
    trials = reader.trials(name, exp.profile.n_sessions)
    rows[name] = {roi: int((volume == labels[roi]).sum()) for roi in STREAMS_ROIS}
    rows[name] |= {"sessions": exp.profile.n_sessions, "train trials": int((~trials.shared).sum()),
                   "test images": int(trials[trials.shared].nsd_id.nunique())}
pd.DataFrame(rows).T

# %% [markdown]
# ## Does the simulated brain carry what it should?
#
# Ridge decoders from early or ventral voxels of this subject predict two simple descriptors of the
# test images: their 8 × 8 colour maps (low level) and which shape and colour words their captions
# use (semantics).

# %%
table = probe.roi_probe(reader, exp.data)
glue("early_low", float(table.loc["early"].iloc[0]), display=False)
glue("ventral_low", float(table.loc["ventral"].iloc[0]), display=False)
glue("early_sem", float(table.loc["early"].iloc[1]), display=False)
glue("ventral_sem", float(table.loc["ventral"].iloc[1]), display=False)
table.round(3)

# %% [markdown]
# Early voxels predict the low-level maps at r = {glue:text}`early_low:.2f` against
# {glue:text}`ventral_low:.2f` from ventral voxels; ventral voxels predict the caption semantics at
# r = {glue:text}`ventral_sem:.2f` against {glue:text}`early_sem:.2f` from early voxels. The tree
# holds {glue:text}`n_stimuli` stimuli.
