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
# The framework of Takagi & Nishimoto (2023, CVPR) [30] that this paper builds on (its Figure 1a):
# two linear decoders read fMRI activity. One predicts **z**, the latent of Stable Diffusion's
# VAE for the seen image, from the early visual cortex; the other predicts **c**, the text
# encoder's embedding of the image's captions, from the ventral stream. Decoded z is the init
# latent of an img2img diffusion (DDIM, strength 0.8, guidance 5.0) conditioned on decoded c.
# Each test image is reconstructed five times with different noise.

# %% tags=["parameters"]
subject = "subj01"
profile = "toy"
n_samples = 5
seed = 0
device = "cpu"

# %%
from myst_nb import glue

from recon import book, figures

exp = book.start(profile, subject, n_samples=n_samples, seed=seed, device=device)
book.glue_paper(subject)
print(f"profile {exp.profile.name}: NSD at {exp.profile.nsd_root}, diffusion model {exp.profile.models.sd}")

# %% [markdown]
# ## Data
#
# Betas (GLMdenoise, fitted HRF) are z-scored within each session. Training uses every trial of
# the subject's own images; the test set is the shared images, each averaged over its
# repetitions.

# %%
data = exp.data
glue("n_train", len(data.train_ids), display=False)
glue("n_test", len(data.test_ids), display=False)
glue("n_voxels", int(data.train_betas.shape[1]), display=False)
print(f"{subject}: {len(data.train_ids)} training trials, {len(data.test_ids)} test images, "
      f"{data.train_betas.shape[1]} streams voxels")

# %% [markdown]
# {glue:text}`n_train` training trials and {glue:text}`n_test` averaged test images,
# {glue:text}`n_voxels` voxels in the streams ROIs.
#
# ## Decoding z and c
#
# Ridge regression (himalaya), with the penalty chosen per target by 5-fold cross-validation on
# the training trials; the score is the correlation between decoded and true features of the
# test images, per feature dimension.

# %%
decoding = exp.decoding_summary().loc[["z", "c"]]
glue("r_z", float(decoding.loc["z", "mean test r"]), display=False)
glue("r_c", float(decoding.loc["c", "mean test r"]), display=False)
decoding

# %% [markdown]
# Decoded z correlates with the true latents at r = {glue:text}`r_z:.2f` on average per
# dimension, decoded c at r = {glue:text}`r_c:.2f`.
#
# ## Reconstructions
#
# On the `toy` profile, read them for background, colour, position and size: the tiny models do
# not resolve object shape (see [the toy model zoo](zoo.ipynb)).

# %%
recon = exp.reconstruct("[30]")
fig = figures.reconstructions(exp.test_images, {"[30]": recon}, rows=range(6), samples=(0, 1, 2),
                              true_captions=[c[0] for c in exp.test_captions])
glue("fig_baseline", fig, display=False)
fig

# %% [markdown]
# ## Two-way identification
#
# For each test image, its features (CLIP, AlexNet, Inception-v3) are correlated with those of
# every reconstruction, averaging the correlation over the five samples; accuracy is the share of
# other reconstructions that correlate less than its own (chance 0.5).

# %%
scores = exp.scores("[30]")
book.glue_scores("baseline", scores)
book.scores_frame({"[30]": scores}).round(3)

# %% [markdown]
# With the Inception-v3 features, baseline reconstructions are identified with accuracy
# {glue:text}`baseline_Inception-v3:.3f` (paper, same subject: {glue:text}`paper_[30]_Inception-v3:.3f`).
