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
# # 2.1 Using decoded captions (+T)
#
# Semantic conditioning decoded directly as a text embedding is fragile. Instead, the paper
# decodes the ViT features of the **BLIP** image captioner {cite:p}`li2022blip` from six visual
# regions (early, ventral, midventral, midlateral, lateral, parietal), lets BLIP's BERT-style text
# decoder {cite:p}`devlin2018bert` write a caption from them (default settings, repetition
# penalty 1.5), and conditions Stable Diffusion on that caption. z is decoded as in the
# [baseline](baseline.ipynb). Decoded captions have improved reconstructions in other work too
# {cite:p}`ferrante2023captioning`.
#
# On the `nsd` profile BLIP is fed as in the authors' code (the [fidelity table](fidelity.ipynb)): the
# image resized to 240 px and given to the ViT as [0, 1] pixels, without BLIP's mean / std
# normalisation (226 tokens of 768), and the decoder starts from the prompt "a picture of ", which counts
# towards the 20-token limit and is cut from the caption. The toy profile's BLIP was trained by `recon`
# at 64 px on normalised inputs and bare captions, so it is fed that way.

# %% tags=["parameters", "hide-input"]
subject = "subj01"
profile = "toy"
n_samples = 5
seed = 0
device = "cpu"
n_sessions = None  # sessions per subject read from NSD (None: the profile's; 37 on nsd)

# %% tags=["hide-input"]
import pandas as pd
from myst_nb import glue

from recon import book, figures

exp = book.start(profile, subject, n_samples=n_samples, seed=seed, device=device, n_sessions=n_sessions)
book.glue_paper(subject)

# %% [markdown]
# ## Decoding BLIP features

# %% tags=["hide-input"]
blip = book.glue_decoding(exp, "blip")

# %% [markdown]
# BLIP's ViT features ({glue:text}`blip_shape` per image) are decoded with a mean correlation of
# {glue:text}`r_blip:.2f` between decoded and true values.
#
# ## Captions from the brain
#
# {numref}`tbl-captions` sets the captions decoded from the brain beside the presented images' own.

# %% tags=["hide-input", "remove-output"]
captions = exp.decoded_captions
book.glue_table("tbl_captions", pd.DataFrame({"presented image's caption": [c[0] for c in exp.test_captions[:10]],
                                               "caption decoded from the brain": captions[:10]}), index=False)

# %% [markdown]
# :::{table} The first ten test images: the first of each image's own captions, and the caption BLIP writes from the BLIP features decoded from the brain.
# :name: tbl-captions
#
# ```{glue:md} tbl_captions
# :format: myst
# ```
# :::
#
# ## Reconstructions with decoded captions

# %% tags=["hide-input", "remove-output"]
recon = {"[30]": exp.reconstruct("[30]"), "+T": exp.reconstruct("+T")}
book.glue_figure("fig_captions", figures.reconstructions(exp.test_images, recon, rows=range(6), samples=(0, 1),
                                                         captions=captions))
scores = {method: exp.scores(method) for method in recon}
book.glue_scores("text", scores["+T"])
book.glue_table("tbl_scores", book.scores_frame(scores))

# %% [markdown]
# ```{glue:figure} fig_captions
# :name: fig-captions-recons
# :alt: Six test images in red frames, each followed by two baseline reconstructions and two reconstructions conditioned on the decoded caption, which is printed below.
#
# Reconstructions without and with decoded captions. Left, in red: the presented image; then two
# generations of the baseline [30] and two of +T, conditioned on the caption decoded from the
# brain (under the first baseline image).
# ```
#
# :::{table} Two-way identification accuracy of this subject's reconstructions without ([30]) and with (+T) decoded captions (chance 0.5).
# :name: tbl-captions-scores
#
# ```{glue:md} tbl_scores
# :format: myst
# ```
# :::
#
# With decoded captions ({numref}`fig-captions-recons`), CLIP(Late) identification is
# {glue:text}`text_CLIP(Late):.3f` ({numref}`tbl-captions-scores`; paper, same subject:
# {glue:text}`paper_+T_CLIP(Late):.3f` against {glue:text}`paper_[30]_CLIP(Late):.3f` for the
# baseline).
