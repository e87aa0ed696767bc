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
# # 2.2 Nonlinear optimisation for a structural image (+G)
#
# Instead of decoding z linearly, the paper reconstructs a structural image by the feature-matching
# optimisation of Shen et al. (2019): VGG19 features are decoded from the same six regions, and a
# generator's input is optimised so that the VGG19 features of its image match the decoded ones.
# That image replaces the decoded z as img2img's init; the caption comes from +T.
#
# The authors used the deep generator network (DGN) of Shen et al., which has no public
# diffusers/transformers port. By default we optimise the image itself, in pixel space at the profile's
# `generator_size` (VGG19's 224 px on NSD) with a Gaussian-blur prior: Shen et al.'s reconstruction
# without the DGN. `generator = "vae"` optimises the diffusion model's VAE latent instead, an exact
# image prior that costs about 30 times as much at 512 px. The objective and the VGG19 layers follow
# Shen et al.; the VGG19 decoder is fitted on betas averaged over each image's trials, as in the
# authors' code.

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

# %% [markdown]
# ## Decoding VGG19 features

# %%
vgg = exp.decoded("vgg")
glue("r_vgg", float(vgg["test_r"].mean()), display=False)
print(f"VGG19 layers {exp.profile.vgg_layers}, {vgg['predicted'].shape[1]} decoded units, "
      f"mean test r = {vgg['test_r'].mean():.3f}")

# %% [markdown]
# ## Images from decoded features

# %%
figures.decoded_vs_true(exp.test_images, exp.gan_images, labels=("presented", "+G image"))

# %% [markdown]
# ## Reconstructions from the +G image and the decoded caption

# %%
recon = {"+T": exp.reconstruct("+T"), "+T+G": exp.reconstruct("+T+G")}
figures.reconstructions(exp.test_images, recon, rows=range(6), samples=(0, 1), gan_images=exp.gan_images)

# %%
scores = {method: exp.scores(method) for method in recon}
book.glue_scores("gan", scores["+T+G"])
book.scores_frame(scores).round(3)

# %% [markdown]
# The paper found +G helps most on low-level features; here CNN(Early) identification is
# {glue:text}`gan_CNN(Early):.3f` with +T+G (paper, same subject:
# {glue:text}`paper_+T+G_CNN(Early):.3f` against {glue:text}`paper_+T_CNN(Early):.3f` for +T).
