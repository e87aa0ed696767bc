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
# # 2.3 Using decoded depth (+D)
#
# Depth is among what the visual cortex represents {cite:p}`lescroart2019scene`. The backbone
# hidden states of the DPT depth model {cite:p}`ranftl2021dpt` (`Intel/dpt-large` as implemented in
# Hugging Face transformers, as in {cite:t}`wang2022natural`; the four layers its neck reads) are
# decoded from the six visual regions; DPT's own neck and head turn them into a depth map. The
# depth-conditioned Stable Diffusion 2 {cite:p}`rombach2022ldm` then generates from the
# [+G image](gan.ipynb), the decoded caption and the decoded depth.

# %% tags=["parameters", "hide-input"]
subject = "subj01"
profile = "toy"
n_samples = 5
seed = 0
device = "cpu"
n_sessions = None  # sessions per subject read from NSD (None: the profile's; 37 on nsd)

# %% tags=["hide-input"]
from myst_nb import glue

from recon import book, figures, methods, models

exp = book.start(profile, subject, n_samples=n_samples, seed=seed, device=device, n_sessions=n_sessions)
book.glue_paper(subject)

# %% [markdown]
# ## Decoding DPT features

# %% tags=["hide-input"]
dpt = book.glue_decoding(exp, "dpt")

# %% [markdown]
# DPT's hidden states ({glue:text}`dpt_shape` values per image) are decoded with a mean
# correlation of {glue:text}`r_dpt:.2f` between decoded and true values.
#
# ## Depth from the brain
#
# {numref}`fig-depth-maps` compares the depth maps decoded from the brain with DPT's own.

# %% tags=["hide-input", "remove-output"]
dpt_model, _ = models.dpt(exp.profile)
true_depth = methods.depth_from_hidden_states(dpt_model, exp.stimulus_features("dpt", "test"), exp.profile.image_size,
                                              progress=False)
book.glue_figure("fig_depth_maps", figures.decoded_vs_true(true_depth, exp.decoded_depth, cmap="magma",
                                                           labels=("DPT on image", "decoded")))

# %% [markdown]
# ```{glue:figure} fig_depth_maps
# :name: fig-depth-maps
# :alt: Two rows of eight depth maps in a dark-to-bright colour scale; top, DPT's depth for the presented images; bottom, depth from the decoded hidden states.
#
# Depth from the brain. Top: DPT's depth for the presented image (its true hidden states through
# neck and head); bottom: the same neck and head applied to the hidden states decoded from the
# brain. Brighter is nearer.
# ```
#
# ## Reconstructions with depth

# %% tags=["hide-input", "remove-output"]
recon = {"+T+G": exp.reconstruct("+T+G"), "+T+G+D": exp.reconstruct("+T+G+D")}
book.glue_figure("fig_depth", figures.reconstructions(exp.test_images, recon, rows=range(6), samples=(0, 1),
                                                      depth_maps=exp.decoded_depth))
scores = {method: exp.scores(method) for method in recon}
book.glue_scores("depth", scores["+T+G+D"])
book.glue_table("tbl_scores", book.scores_frame(scores))

# %% [markdown]
# ```{glue:figure} fig_depth
# :name: fig-depth-recons
# :alt: Six test images in red frames, each followed by two reconstructions without depth, two with decoded depth, and the decoded depth map.
#
# Reconstructions with decoded depth. Left, in red: the presented image; then two generations of
# +T+G, two of +T+G+D (depth-conditioned Stable Diffusion 2) and, last, the decoded depth map.
# ```
#
# :::{table} Two-way identification accuracy of this subject's reconstructions without (+T+G) and with (+T+G+D) decoded depth.
# :name: tbl-depth-scores
#
# ```{glue:md} tbl_scores
# :format: myst
# ```
# :::
#
# Depth conditioning raised CLIP(Late) in every subject of the paper (same subject:
# {glue:text}`paper_+T+G+D_CLIP(Late):.3f` against {glue:text}`paper_+T+G_CLIP(Late):.3f` for +T+G);
# here it is {glue:text}`depth_CLIP(Late):.3f` ({numref}`tbl-depth-scores`, {numref}`fig-depth-recons`).
