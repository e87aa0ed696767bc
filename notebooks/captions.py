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
# decodes the **BLIP** image captioner's ViT features from six visual regions (early, ventral,
# midventral, midlateral, lateral, parietal), lets BLIP's text decoder write a caption from them
# (default settings, repetition penalty 1.5), and conditions Stable Diffusion on that caption.
# z is decoded as in the baseline.

# %% tags=["parameters"]
subject = "subj01"
profile = "toy"
n_samples = 5
seed = 0
device = "cpu"

# %%
import pandas as pd
from myst_nb import glue

from recon import book, figures

exp = book.start(profile, subject, n_samples=n_samples, seed=seed, device=device)
book.glue_paper(subject)

# %% [markdown]
# ## Decoding BLIP features

# %%
blip = exp.decoded("blip")
glue("r_blip", float(blip["test_r"].mean()), display=False)
print(f"decoded BLIP ViT features {blip['predicted'].shape[1:]}: mean test r = {blip['test_r'].mean():.3f}")

# %% [markdown]
# Mean correlation of decoded and true BLIP features: {glue:text}`r_blip:.2f`.
#
# ## Captions from the brain

# %%
captions = exp.decoded_captions
pd.DataFrame({"presented image's caption": [c[0] for c in exp.test_captions[:10]],
              "caption decoded from the brain": captions[:10]})

# %% [markdown]
# ## Reconstructions with decoded captions

# %%
recon = {"[30]": exp.reconstruct("[30]"), "+T": exp.reconstruct("+T")}
figures.reconstructions(exp.test_images, recon, rows=range(6), samples=(0, 1), captions=captions)

# %%
scores = {method: exp.scores(method) for method in recon}
book.glue_scores("text", scores["+T"])
book.scores_frame(scores).round(3)

# %% [markdown]
# With decoded captions, CLIP(Late) identification is {glue:text}`text_CLIP(Late):.3f`
# (paper, same subject: {glue:text}`paper_+T_CLIP(Late):.3f` against
# {glue:text}`paper_[30]_CLIP(Late):.3f` for the baseline).
