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
# The DPT depth model's backbone hidden states (the four layers its neck reads) are decoded from
# the six visual regions; DPT's own neck and head turn them into a depth map. The depth-conditioned
# Stable Diffusion 2 then generates from the +G image, the decoded caption and the decoded depth.

# %% tags=["parameters"]
subject = "subj01"
profile = "toy"
n_samples = 5
seed = 0
device = "cpu"

# %%
from myst_nb import glue

from recon import book, figures, methods, models

exp = book.start(profile, subject, n_samples=n_samples, seed=seed, device=device)
book.glue_paper(subject)

# %% [markdown]
# ## Decoding DPT features

# %%
dpt = exp.decoded("dpt")
glue("r_dpt", float(dpt["test_r"].mean()), display=False)
print(f"decoded DPT hidden states {dpt['predicted'].shape[1:]}: mean test r = {dpt['test_r'].mean():.3f}")

# %% [markdown]
# ## Depth from the brain
#
# Top: DPT's depth for the presented image (its true hidden states through neck and head);
# bottom: the same neck and head applied to the decoded hidden states.

# %%
dpt_model, _ = models.dpt(exp.profile)
true_depth = methods.depth_from_hidden_states(dpt_model, exp.stimulus_features("dpt", "test"), exp.profile.image_size,
                                              progress=False)
figures.decoded_vs_true(true_depth, exp.decoded_depth, cmap="magma", labels=("DPT on image", "decoded"))

# %% [markdown]
# ## Reconstructions with depth

# %%
recon = {"+T+G": exp.reconstruct("+T+G"), "+T+G+D": exp.reconstruct("+T+G+D")}
figures.reconstructions(exp.test_images, recon, rows=range(6), samples=(0, 1), depth_maps=exp.decoded_depth)

# %%
scores = {method: exp.scores(method) for method in recon}
book.glue_scores("depth", scores["+T+G+D"])
book.scores_frame(scores).round(3)

# %% [markdown]
# Depth conditioning raised CLIP(Late) in every subject of the paper (same subject:
# {glue:text}`paper_+T+G+D_CLIP(Late):.3f` against {glue:text}`paper_+T+G_CLIP(Late):.3f` for +T+G); here it is
# {glue:text}`depth_CLIP(Late):.3f`.
