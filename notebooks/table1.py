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
# # Table 1 and Figures 2-3
#
# Two-way identification accuracy for every method and subject, with the Takagi protocol: the
# original image is the anchor and the correlation is averaged over the five generations
# (chance 0.5). Each reproduced value stands beside the paper's. `subject` picks the subject of
# the figures.

# %% tags=["parameters"]
subject = "subj01"
profile = "toy"
n_samples = 5
seed = 0
device = "cpu"

# %%
import numpy as np
import pandas as pd
from myst_nb import glue

from recon import book, figures
from recon.config import METHODS
from recon.evaluate import METRICS, PROTOCOL, paper_table, side_by_side, summarise

exp = book.start(profile, subject, n_samples=n_samples, seed=seed, device=device)
book.glue_paper()  # means over subjects, as in the text below
subjects = book.experiments(exp)

# %%
table = pd.DataFrame(
    {(name, method): e.scores(method) for name, e in subjects.items() for method in METHODS}
).T.rename_axis(["subject", "method"])[list(METRICS)]
print(f"protocol: {PROTOCOL}; profile: {exp.profile.name}")

# %% [markdown]
# ## Table 1: mean ± sd over subjects

# %%
summary = pd.concat({"reproduced": summarise(table), "paper": summarise(paper_table())}, axis=1)
summary = summary.swaplevel(0, 1, axis=1).reindex(columns=list(METRICS), level=0)
for method in METHODS:
    for metric in METRICS:
        glue(f"mean_{method}_{metric}", float(table.xs(method, level="method")[metric].mean()), display=False)
summary

# %% [markdown]
# Averaged over subjects, CLIP(Late) identification goes from
# {glue:text}`mean_[30]_CLIP(Late):.3f` for the baseline to {glue:text}`mean_+T_CLIP(Late):.3f`
# with decoded captions and {glue:text}`mean_+T+G+D_CLIP(Late):.3f` with captions, the +G image
# and depth (paper: {glue:text}`paper_[30]_CLIP(Late):.3f`, {glue:text}`paper_+T_CLIP(Late):.3f`,
# {glue:text}`paper_+T+G+D_CLIP(Late):.3f`).
#
# ## Table 1 per subject

# %%
side_by_side(table).round(3)

# %%
figures.score_bars(table, paper_table())

# %% [markdown]
# Bars: reproduced means over subjects, with each subject as a dot; red ticks: the paper's means.
#
# ## Figure 2: one example per method
#
# The presented image (red frame), one reconstruction per method, and under them the decoded
# caption, the +G image and the decoded depth map.

# %%
recons = {method: exp.reconstruct(method) for method in METHODS}
figures.reconstructions(exp.test_images, recons, rows=range(4), samples=(0,), captions=exp.decoded_captions,
                        gan_images=exp.gan_images, depth_maps=exp.decoded_depth)

# %% [markdown]
# ## Figure 3: three of the five generations, chosen at random

# %%
rng = np.random.default_rng(exp.profile.seed)
rows = np.sort(rng.choice(len(exp.test_images), size=6, replace=False))
samples = tuple(np.sort(rng.choice(exp.profile.n_samples, size=min(3, exp.profile.n_samples), replace=False)))
figures.reconstructions(exp.test_images, recons, rows=rows, samples=samples)

# %% [markdown]
# ## The peers' protocol
#
# Brain-Diffuser and MindEye anchor on the reconstruction and use one generation; their numbers
# are not comparable with Table 1's. For reference, the same reconstructions scored that way:

# %%
peers = pd.DataFrame(
    {(name, method): e.scores(method, protocol="reconstruction_anchor")
     for name, e in subjects.items() for method in METHODS}
).T.rename_axis(["subject", "method"])[list(METRICS)]
summarise(peers)
