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
# # Baseline [30]: decoded z and c into Stable Diffusion
#
# The framework of {cite:t}`takagi2023cvpr`, reference [30] of the paper and the baseline that it
# builds on (its Figure 1a): two linear decoders read fMRI activity. One predicts **z**, the latent
# of Stable Diffusion's VAE {cite:p}`rombach2022ldm` for the seen image, from the early visual
# cortex; the other predicts **c**, the CLIP text encoder's {cite:p}`radford2021clip` embedding of
# the image's captions, from the ventral stream. Decoded z is the init latent of an img2img
# diffusion (DDIM {cite:p}`song2021ddim`, strength 0.8, guidance 5.0) conditioned on decoded c. As in
# the authors' CompVis sampler, the init latent is noised one DDIM step above the first step denoised
# (`recon.sampling`; 801 and 781 for their 50 steps).
# Each test image is reconstructed five times with different noise.
#
# As in the authors' code (the [fidelity table](fidelity.ipynb) lists each step, and the tests that
# re-run it), z is the VAE latent of the image at 320 px (4 × 40 × 40, a sample of the posterior), and
# img2img does not start from decoded z itself: the VAE decodes it to an image, which is resized to the
# generation size and encoded again. The decoders have no intercept, as the authors' ridge has none:
# each decoded feature lacks its training mean (c's first token, the same for every caption, decodes
# to zero). The toy profile encodes z at 40 of its 64 px, the same ratio.

# %% tags=["parameters", "hide-input"]
subject = "subj01"
profile = "toy"
n_samples = 5
seed = 0
device = "cpu"
n_sessions = None  # sessions per subject read from NSD (None: the profile's; 37 on nsd)

# %% tags=["hide-input"]
from myst_nb import glue

from recon import book, figures

exp = book.start(profile, subject, n_samples=n_samples, seed=seed, device=device, n_sessions=n_sessions)
book.glue_paper(subject)
glue("profile", exp.profile.name, display=False)

# %% [markdown]
# ## Data
#
# The Natural Scenes Dataset {cite:p}`allen2022nsd` shows COCO images {cite:p}`lin2014coco`. Its
# betas are GLMsingle's {cite:p}`prince2022glmsingle` (fitted HRF, GLMdenoise, ridge). On the `nsd`
# profile they are prepared as the authors' `make_subjmri.py` does: the raw betas divided by 300, each
# voxel then standardised over the training trials by the decoder; the `toy` profile z-scores each
# voxel within each session instead (the [simulated NSD](simulated_nsd.ipynb) page measures both).
# Training uses every trial of the subject's own images; the test set is the shared images, each
# averaged over its repetitions.

# %% tags=["hide-input"]
data = exp.data
glue("n_train", len(data.train_ids), display=False)
glue("n_test", len(data.test_ids), display=False)
glue("n_voxels", int(data.train_betas.shape[1]), display=False)

# %% [markdown]
# On the {glue:text}`profile` profile, subject {glue:text}`subject` has {glue:text}`n_train` training
# trials and {glue:text}`n_test` averaged test images, with {glue:text}`n_voxels` voxels in the
# streams ROIs.
#
# ## Decoding z and c
#
# Ridge regression (himalaya {cite:p}`latour2022banded`), with the penalty chosen per target by
# 5-fold cross-validation on the training trials; the score is the correlation between decoded and
# true features of the test images, per feature dimension ({numref}`tbl-baseline-decoding`).

# %% tags=["hide-input", "remove-output"]
glue("subject", subject, display=False)
decoding = exp.decoding_summary().loc[["z", "c"]]
glue("r_z", float(decoding.loc["z", "mean test r"]), display=False)
glue("r_c", float(decoding.loc["c", "mean test r"]), display=False)
book.glue_table("tbl_decoding", decoding, formats={"median alpha": ".3g"})

# %% [markdown]
# :::{table} Decoding z and c: the regions each decoder reads, the number of target dimensions, the mean correlation of decoded and true values over the test images, and the median penalty.
# :name: tbl-baseline-decoding
#
# ```{glue:md} tbl_decoding
# :format: myst
# ```
# :::
#
# Decoded z correlates with the true latents at r = {glue:text}`r_z:.2f` on average per
# dimension, decoded c at r = {glue:text}`r_c:.2f`.
#
# ## Reconstructions
#
# {numref}`fig-baseline-recons` shows three of the five reconstructions of six test images. On the
# `toy` profile, read them with what the tiny models resolve in mind (see
# [the toy model zoo](zoo.ipynb)).

# %% tags=["hide-input", "remove-output"]
recon = exp.reconstruct("[30]")
fig = figures.reconstructions(exp.test_images, {"[30]": recon}, rows=range(6), samples=(0, 1, 2),
                              true_captions=[c[0] for c in exp.test_captions])
book.glue_figure("fig_baseline", fig)

# %% [markdown]
# ```{glue:figure} fig_baseline
# :name: fig-baseline-recons
# :alt: Six test images, each in a red frame with its caption below, followed by three baseline reconstructions from decoded z and c.
#
# Baseline [30] reconstructions. Left, in red: the presented image and its first caption; then
# three of the five generations from decoded z and c, each with different noise.
# ```
#
# ## Two-way identification
#
# For each test image, its features (CLIP {cite:p}`radford2021clip`, AlexNet
# {cite:p}`krizhevsky2012alexnet`, Inception-v3 {cite:p}`szegedy2016inception`) are correlated with
# those of every reconstruction, averaging the correlation over the five samples; accuracy is the
# share of other reconstructions that correlate less than its own (chance 0.5).

# %% tags=["hide-input", "remove-output"]
scores = exp.scores("[30]")
book.glue_scores("baseline", scores)
book.glue_table("tbl_scores", book.scores_frame({"[30]": scores}))

# %% [markdown]
# :::{table} Two-way identification accuracy of the baseline reconstructions of this subject (chance 0.5), one column per feature space of the paper's Table 1.
# :name: tbl-baseline-scores
#
# ```{glue:md} tbl_scores
# :format: myst
# ```
# :::
#
# With the Inception-v3 features, baseline reconstructions are identified with accuracy
# {glue:text}`baseline_Inception-v3:.3f` ({numref}`tbl-baseline-scores`; paper, same subject:
# {glue:text}`paper_[30]_Inception-v3:.3f`).
